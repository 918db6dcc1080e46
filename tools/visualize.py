#!/usr/bin/env python
"""Overlay predictions and/or ground truth on the frames of a dataset's videos.

Thin wrapper for a clone: the code is ``vosbench.cli.visualize`` (installed as ``vosbench visualize``).
"""
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run from a clone without install
    sys.path.insert(0, str(REPO))

from vosbench.cli.visualize import main, parse_args  # noqa: E402,F401

if __name__ == "__main__":
    sys.exit(main())
