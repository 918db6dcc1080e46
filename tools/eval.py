#!/usr/bin/env python
"""Evaluate results made by any tool, in the official layouts, with the official numbers.

Thin wrapper for a clone: the code is ``vosbench.cli.eval`` (installed as ``vosbench eval``).
"""
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run from a clone without install
    sys.path.insert(0, str(REPO))

from vosbench.cli.eval import main, parse_args  # noqa: E402,F401

if __name__ == "__main__":
    sys.exit(main())
