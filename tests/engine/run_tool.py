#!/usr/bin/env python
"""Run a tool with the test-only method registered (for subprocess / torchrun tests).

    python tests/engine/run_tool.py train  <hydra overrides>
    torchrun --nproc_per_node=2 tests/engine/run_tool.py train <hydra overrides>

Imports ``engine_testing`` (registers ``_tiny_test_method``) and then runs ``tools/<tool>.py``
as ``__main__``. Pass ``hydra.searchpath=[file://<this folder>/configs]`` so that
``method=_tiny_test_method`` finds its config.
"""
import runpy
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO))

import engine_testing  # noqa: E402,F401  (registers _tiny_test_method)

if __name__ == "__main__":
    tool = sys.argv.pop(1)
    sys.argv[0] = str(REPO / "tools" / f"{tool}.py")
    runpy.run_path(sys.argv[0], run_name="__main__")
