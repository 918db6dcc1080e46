#!/usr/bin/env python
"""Run a method over a dataset, write official-format results, evaluate, report FPS and memory.

Thin wrapper for a clone: the code is ``vosbench.cli.test`` (installed as ``vosbench test``).
"""
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run from a clone without install
    sys.path.insert(0, str(REPO))

from vosbench.cli.test import main  # noqa: E402

if __name__ == "__main__":
    main()
