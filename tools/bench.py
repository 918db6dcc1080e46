#!/usr/bin/env python
"""Run a benchmark suite and print its leaderboard: the main job of vosbench.

    python tools/bench.py                    # default suite, ~10 min on a 2-core CPU
    python tools/bench.py davis2017 --davis2017-root /data/DAVIS --verify
    python tools/bench.py --help

Everything lives in ``vosbench/bench/`` (suites, cache, runner, report); this file only makes the
repository importable when it is not pip-installed.
"""
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from vosbench.bench.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
