#!/usr/bin/env python
"""Compute a dataset's optical flow once and store it in a ``FlowCache``.

Thin wrapper for a clone: the code is ``vosbench.cli.precompute_flow`` (installed as ``vosbench precompute-flow``).
"""
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run from a clone without install
    sys.path.insert(0, str(REPO))

from vosbench.cli.precompute_flow import (  # noqa: E402,F401
    _DATASETS, frame_pairs, main, parse_kv, precompute_sequence)

if __name__ == "__main__":
    sys.exit(main())
