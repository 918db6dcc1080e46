"""Tool-test helpers: run tools/*.py in subprocesses (test-only method registered), compose configs."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


REPO = Path(__file__).resolve().parent.parent.parent
RUN_TOOL = REPO / "tests" / "engine" / "run_tool.py"
SEARCHPATH = f"hydra.searchpath=[file://{REPO / 'tests' / 'engine' / 'configs'}]"


def tool_env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", HYDRA_FULL_ERROR="0")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    return env


def run_tool(tool: str, *overrides: str, nproc: int = 0, timeout: float = 180,
             check: bool = True) -> subprocess.CompletedProcess:
    """``python tests/engine/run_tool.py <tool> <overrides>`` (under torchrun when ``nproc``)."""
    if nproc:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc_per_node={nproc}", str(RUN_TOOL), tool]
    else:
        cmd = [sys.executable, str(RUN_TOOL), tool]
    cmd += [*overrides, SEARCHPATH]
    proc = subprocess.run(cmd, cwd=REPO, env=tool_env(), capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n"
                             f"{proc.stderr[-5000:]}")
    return proc


def data_overrides(root: Path) -> list[str]:
    """The tiny synthetic dataset: 4 videos of 6 frames, 32x48 pixels."""
    return ["dataset=synthetic", f"dataset.root={root}", "dataset.num_videos=4",
            "dataset.num_frames=6", "dataset.height=32", "dataset.width=48", "dataset.max_objects=2"]


sys.path.insert(0, str(REPO / "tests" / "engine"))
import engine_testing  # noqa: E402,F401  (registers _tiny_test_method in this process too)


def compose_cfg(*overrides: str):
    """The config tools/train.py would compose for these overrides (test configs included)."""
    from vosbench.config import compose

    return compose([*overrides, SEARCHPATH])
