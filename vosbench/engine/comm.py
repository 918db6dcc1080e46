"""Process-group helpers for ``torchrun`` (DDP training and sharded inference).

Everything here degrades to a no-op in a single process, so the same code path runs with and
without ``torchrun``. The process group is created from the environment variables ``torchrun``
sets (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``).
"""
from __future__ import annotations

import datetime
import os
from typing import Any

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def get_world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def get_local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", 0))


def is_main_process() -> bool:
    return get_rank() == 0


def launched_by_torchrun() -> bool:
    """True when the environment describes more than one process (``torchrun --nproc_per_node>1``)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def _export_slurm_env() -> None:
    """Under SLURM with several tasks (hydra-submitit-launcher, ``tasks_per_node > 1``) and no
    ``torchrun`` variables, derive ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``/``MASTER_*`` from
    submitit's view of the job, so each task becomes one DDP rank."""
    if "WORLD_SIZE" in os.environ or int(os.environ.get("SLURM_NTASKS", "1")) <= 1:
        return
    try:
        import submitit

        submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
    except (ImportError, RuntimeError):  # not inside a submitit job: leave the env alone
        return


def init_distributed(device: str) -> torch.device:
    """Create the default process group when launched by ``torchrun``; return this rank's device.

    Args:
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``. ``auto`` picks CUDA when available.
    Returns:
        The device this process should use (``cuda:<LOCAL_RANK>`` for multi-GPU runs).
    Backends: NCCL for CUDA, gloo for CPU.
    """
    _export_slurm_env()
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda, got {device!r}")
    use_cuda = torch.cuda.is_available() if device == "auto" else device == "cuda"
    if use_cuda and not torch.cuda.is_available():
        raise RuntimeError("device=cuda was requested but CUDA is not available on this machine")
    if use_cuda:
        torch.cuda.set_device(get_local_rank())
        dev = torch.device("cuda", get_local_rank())
    else:
        dev = torch.device("cpu")
    if launched_by_torchrun() and not is_distributed():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo",
                                timeout=datetime.timedelta(minutes=30))
    return dev


def destroy_distributed() -> None:
    if is_distributed():
        dist.destroy_process_group()


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def all_gather_object(obj: Any) -> list[Any]:
    """Gather a picklable object from every rank (a one-element list without a process group)."""
    if not is_distributed():
        return [obj]
    out: list[Any] = [None] * get_world_size()
    dist.all_gather_object(out, obj)
    return out


def gather_object(obj: Any, dst: int = 0) -> list[Any] | None:
    """Collect a picklable object from every rank on rank ``dst`` (others get None)."""
    if not is_distributed():
        return [obj]
    out: list[Any] | None = [None] * get_world_size() if get_rank() == dst else None
    dist.gather_object(obj, out, dst=dst)
    return out


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Send ``obj`` from rank ``src`` to every rank (identity without a process group)."""
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]
