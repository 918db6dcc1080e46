#!/usr/bin/env python
"""Run a benchmark suite and print its leaderboard: the main job of vosbench.

Thin wrapper for a clone: the code is ``vosbench.cli.bench`` (installed as ``vosbench bench``).
"""
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run from a clone without install
    sys.path.insert(0, str(REPO))

from vosbench.cli.bench import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
