"""CPU thread defaults of every vosbench tool: one intra-op thread per process unless asked.

Why: the shipped tiny models run tensors of a few thousand elements, for which OpenMP threads do
not pay off, and on a shared machine threads that wait for each other cost 3-20x (issue #20:
``test method=maskrnn_tiny`` took 2 min 33 s with torch's default threads under contention and
14 s with one; training 4.18 vs 0.22 s/iteration). The tools that need more throughput use more
*processes* instead (``eval --workers``, ``bench --workers``), each with one thread.

The number of threads, first match wins:

1. an explicit request: ``threads=N`` (train/test config key), ``--threads N`` (argparse tools);
   ``0`` means torch's own default (all cores);
2. ``$OMP_NUM_THREADS`` when the user set it;
3. ``1``.

The choice also goes into ``$OMP_NUM_THREADS`` / ``$MKL_NUM_THREADS`` so that child processes
(DataLoader workers, ``eval --workers``, spawned pools) start with the same setting.
"""
from __future__ import annotations

import os

ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def resolve_threads(requested: int | str | None = None) -> int:
    """The thread count to use (``0`` = torch's default), following the rules above."""
    if requested is not None and str(requested).strip() != "":
        n = int(requested)
        if n < 0:
            raise ValueError(f"threads must be >= 0 (0 = torch's default), got {requested!r}")
        return n
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            pass
    return 1


def limit_threads(requested: int | str | None = None, *, device: str = "cpu") -> int:
    """Apply the thread rule to torch (and OpenCV) in this process; returns the count used.

    Args:
        requested: explicit count (``None``: ``$OMP_NUM_THREADS`` or 1; ``0``: torch's default).
        device: only CPU work is limited; on ``cuda*`` the CPU side keeps torch's default unless a
            count is requested explicitly.
    """
    if str(device).startswith("cuda") and requested is None:
        return 0
    n = resolve_threads(requested)
    if n == 0:
        return 0
    for var in ENV_VARS:
        os.environ[var] = str(n)
    import torch

    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    try:
        import cv2

        cv2.setNumThreads(n)
    except ImportError:  # pragma: no cover - opencv is a dependency, but limiting it is optional
        pass
    return n


def cpu_cores() -> int:
    """Cores this process may run on (the affinity mask, which containers and taskset narrow)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not on Linux
        return max(1, os.cpu_count() or 1)


def add_threads_argument(parser) -> None:
    """``--threads N`` for an argparse tool (default: the rule above)."""
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help="intra-op CPU threads per process (default: $OMP_NUM_THREADS if set, "
                             "else 1; 0 = torch's default, all cores)")
