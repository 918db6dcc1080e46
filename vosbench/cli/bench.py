"""``vosbench bench [SUITE] [options]``: run a benchmark suite and print its leaderboard.

    vosbench bench                        # default suite on the built-in data
    vosbench bench davis2017 --davis2017-root /data/DAVIS --verify
    vosbench bench --help

Everything lives in ``vosbench/bench/`` (suites, cache, runner, report); this is its entry point.
"""
from __future__ import annotations

import sys

from vosbench.bench.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
