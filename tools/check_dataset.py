#!/usr/bin/env python
"""List every problem of a dataset folder at once; exit 1 if there is any.

Thin wrapper for a clone: the code is ``vosbench.cli.check`` (installed as ``vosbench check``).
"""
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run from a clone without install
    sys.path.insert(0, str(REPO))

from vosbench.cli.check import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
