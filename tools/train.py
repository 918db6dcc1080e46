#!/usr/bin/env python
"""Train a method: ``python tools/train.py method=NAME dataset=NAME trainer=debug output_dir=DIR``.

Thin wrapper for a clone: the code is ``vosbench.cli.train`` (installed as ``vosbench train``).
"""
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run from a clone without install
    sys.path.insert(0, str(REPO))

from vosbench.cli.train import main  # noqa: E402

if __name__ == "__main__":
    main()
