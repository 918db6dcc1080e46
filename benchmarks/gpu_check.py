#!/usr/bin/env python
"""GPU check of every method's paper recipe: bf16 training speed, a DDP/NCCL step, video inference.

With CUDA, for each method (configs/experiment/<method>/) and each stage of its recipe:

* stages that train: ``--iters`` (20) training iterations at the paper's resolution under bf16
  autocast (one clip per step, the stage's optimizer and clip sampling), then ONE DDP step launched
  through ``torchrun --standalone --nproc_per_node=1`` on the NCCL backend;
* stages that predict: one inference of a real davis2016-mini video (``--video-frames``, default
  the whole first video) at the paper's resolution, bf16 autocast, online fine-tuning capped by the
  stage's ``recipe.harness``;

and prints it/s, peak GPU memory and FPS, one line per stage. Without CUDA it says so and exits 0.
``--device cpu`` runs the same logic on CPU (gloo instead of NCCL, no autocast) for tests and dry
runs, e.g. on the tiny configs::

    python benchmarks/gpu_check.py                       # on a GPU machine: everything
    python benchmarks/gpu_check.py --methods lip --iters 5
    python benchmarks/gpu_check.py --device cpu --methods lip --stage stage2_video --iters 1 \\
        --override method=lip_tiny                        # CPU dry run of the code path
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import paper_scale as ps  # noqa: E402  (the stage contract and the measurements are shared)

DEFAULT_METHODS = ("lip", "maskprop", "maskrnn")


def ddp_command(method: str, stage: str, device: str, extra: Sequence[str]) -> list[str]:
    """The torchrun command of the one-step DDP check (1 process; NCCL on CUDA, gloo on CPU)."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1",
           str(Path(__file__).resolve()), "--ddp-step", "--methods", method, "--stage", stage,
           "--device", device]
    for o in extra:
        cmd += ["--override", o]
    return cmd


def ddp_step(method: str, stage: str, device: str, extra: Sequence[str]) -> str:
    """Inside torchrun: one DDP training step of the stage; returns the result line."""
    import torch
    import torch.distributed as dist

    from vosbench.data import ClipDataset, build_dataset, collate_clips
    from vosbench.engine import comm
    from vosbench.engine.defaults import build_method, build_optimizer, epoch_schedule, seed_everything
    from vosbench.engine.train_loop import TrainingStepModule

    import vosbench_methods  # noqa: F401

    dev = comm.init_distributed(device)
    if not dist.is_initialized():
        # comm.init_distributed joins a group only for WORLD_SIZE > 1; this check is 1 process
        if "RANK" not in os.environ or "MASTER_ADDR" not in os.environ:
            raise RuntimeError("--ddp-step must run under torchrun (no RANK/MASTER_ADDR in the environment)")
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            cfg, _ = ps.compose_stage(method, stage, smoke=False, workdir=Path(tmp), extra=extra, device=device)
            seed_everything(int(cfg.seed))
            model = build_method(cfg, dev)
            ddp = torch.nn.parallel.DistributedDataParallel(
                TrainingStepModule(model), device_ids=[dev.index] if dev.type == "cuda" else None,
                find_unused_parameters=True)
            t = cfg.trainer
            dataset = build_dataset(cfg.dataset, split=t.train_split)
            _, _, clip_cfg = epoch_schedule(t, dataset)
            batch = collate_clips([ClipDataset(dataset, seed=int(cfg.seed), **clip_cfg)[0]]).to(dev)
            opt = build_optimizer(t.optimizer, model)
            t0 = time.perf_counter()
            with ps.amp_context(dev, torch.bfloat16 if dev.type == "cuda" else None):
                losses = ddp(batch)
            total = sum(v.float() for v in losses.values())
            opt.zero_grad(set_to_none=True)
            total.backward()  # the all-reduce happens here
            opt.step()
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            dt = time.perf_counter() - t0
            return (f"ddp_step: ok  backend {dist.get_backend()}  world {dist.get_world_size()}  "
                    f"loss {float(total.detach()):.4f}  {dt:.2f}s")
    finally:
        comm.destroy_distributed()


def run_ddp(method: str, stage: str, device: str, extra: Sequence[str], timeout: int) -> str:
    """Launch ``ddp_command`` and return its ``ddp_step:`` line (or why it failed)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    try:
        p = subprocess.run(ddp_command(method, stage, device, extra), capture_output=True, text=True,
                           timeout=timeout, env=env, cwd=str(REPO))
    except subprocess.TimeoutExpired:
        return f"ddp_step: FAILED  timeout after {timeout}s"
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("ddp_step:")]
    if p.returncode == 0 and lines:
        return lines[-1]
    tail = (p.stderr or p.stdout).strip().splitlines()[-3:]
    return f"ddp_step: FAILED  exit {p.returncode}: " + " | ".join(tail)


def check_stage(method: str, stage: str, *, device: str, iters: int, extra: Sequence[str],
                video_frames: int, ddp: bool, ddp_timeout: int = 900) -> tuple[bool, list[str]]:
    """The checks of one stage; returns (ok, printed lines)."""
    import torch

    from vosbench.engine.defaults import build_method, seed_everything

    import vosbench_methods  # noqa: F401

    amp = torch.bfloat16 if torch.device(device).type == "cuda" else None
    out, ok = [], True
    with tempfile.TemporaryDirectory() as tmp:
        try:
            cfg, recipe = ps.compose_stage(method, stage, smoke=False, workdir=Path(tmp), extra=extra, device=device)
            seed_everything(int(cfg.seed))
            model = build_method(cfg, device)
            if "train" in recipe["runs"]:
                if torch.device(device).type == "cuda":
                    torch.cuda.reset_peak_memory_stats()
                tr = ps.train_iterations(cfg, model, device, iters, amp_dtype=amp)
                out.append(f"{method}/{stage}: train {iters} it {'bf16' if amp else 'fp32'}  "
                           f"{1 / tr['s_per_it']:.2f} it/s  peak {tr['peak_mb']:.0f}MB  loss {tr['loss']:.4f}")
                if ddp:
                    line = run_ddp(method, stage, device, extra, ddp_timeout)
                    ok &= "FAILED" not in line
                    out.append(f"{method}/{stage}: {line}")
            if "predict" in recipe["runs"]:
                task = getattr(model, "task", "vos")
                sample = ps.predict_sample(task, video_frames or 10**6)
                pr = ps.run_predict(model, sample, device, amp_dtype=amp)
                out.append(f"{method}/{stage}: inference {pr['num_frames']} frames  "
                           f"{pr['num_frames'] / pr['seconds']:.2f} FPS  peak {pr['peak_mb']:.0f}MB")
            if not out:
                out.append(f"{method}/{stage}: nothing to check (runs {recipe['runs']})")
        except Exception as e:
            ok = False
            out.append(f"{method}/{stage}: FAILED  {type(e).__name__}: {e}")
    return ok, out


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS))
    ap.add_argument("--stage", action="append", help="only these stages (repeatable)")
    ap.add_argument("--device", default="cuda", help="cuda (default) | cpu (dry run of the code path)")
    ap.add_argument("--iters", type=int, default=20, help="bf16 training iterations per training stage")
    ap.add_argument("--video-frames", type=int, default=0, help="frames of the inference video (0: all)")
    ap.add_argument("--no-ddp", action="store_true", help="skip the torchrun DDP step")
    ap.add_argument("--override", action="append", default=[], help="extra Hydra override (repeatable)")
    ap.add_argument("--ddp-step", action="store_true", help=argparse.SUPPRESS)  # inside torchrun
    args = ap.parse_args(argv)

    import torch

    if args.ddp_step:
        print(ddp_step(args.methods[0], args.stage[0], args.device, args.override), flush=True)
        return 0
    if args.device == "cuda" and not torch.cuda.is_available():
        print(f"gpu_check: CUDA is not available here (torch {torch.__version__}, CUDA build "
              f"{torch.version.cuda}); nothing to check. Run it on a GPU machine "
              "(or --device cpu for a dry run of the code path).")
        return 0
    name = torch.cuda.get_device_name() if args.device == "cuda" else "cpu"
    print(f"gpu_check: device {name}, torch {torch.__version__}, methods {args.methods}", flush=True)
    failed = 0
    for m in args.methods:
        stages = ps.find_stages(m)
        if args.stage:
            stages = [s for s in stages if s in args.stage]
        if not stages:
            print(f"{m}: no stage configs in configs/experiment/{m}/")
            failed += 1
            continue
        for s in stages:
            ok, lines = check_stage(m, s, device=args.device, iters=args.iters, extra=args.override,
                                    video_frames=args.video_frames, ddp=not args.no_ddp)
            for ln in lines:
                print(ln, flush=True)
            failed += not ok
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
