#!/usr/bin/env python
"""Training throughput (iterations/s) of every tiny method config, side by side.

For each ``configs/method/*_tiny.yaml`` (or the ones named), composes
``method=<name> dataset=synthetic trainer=debug`` (plus your overrides), builds the method, the
clip loader and the optimizer exactly as ``tools/train.py`` does, runs ``--warmup`` iterations,
then times ``--iters`` iterations of ``SimpleTrainer`` (data loading included, as in training).

    python benchmarks/train_speed.py
    python benchmarks/train_speed.py --methods maskrnn_tiny lip_tiny --iters 20 trainer.batch_size=4
"""
from __future__ import annotations

import argparse
import sys
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def measure(name: str, overrides: list[str], warmup: int, iters: int, device: str) -> dict:
    import torch

    from vosbench.config import compose
    from vosbench.data import ClipDataset, build_dataset, collate_clips
    from vosbench.engine.checkpoint import plain_config
    from vosbench.engine.data import InfiniteLoader
    from vosbench.engine.defaults import build_method, build_optimizer, build_scheduler, seed_everything
    from vosbench.engine.train_loop import SimpleTrainer

    import vosbench_methods  # noqa: F401
    from vosbench.registry import METHODS

    data = "synthetic"
    cfg = compose([f"method={name}", f"dataset={data}", "trainer=debug", *overrides])
    if getattr(METHODS.get(cfg.method.name), "task", "vos") == "vis":  # MaskProp trains on VIS data
        data = "synthetic_vis"
        cfg = compose([f"method={name}", f"dataset={data}", "trainer=debug", *overrides])
    t = cfg.trainer
    seed_everything(int(cfg.seed))
    method = build_method(cfg, device)
    dataset = build_dataset(cfg.dataset, split=t.train_split)
    clips = ClipDataset(dataset, seed=int(cfg.seed), **plain_config(t.clip))
    loader = InfiniteLoader(clips, batch_size=t.batch_size, collate_fn=collate_clips,
                            num_workers=t.num_workers, seed=int(cfg.seed))
    opt = build_optimizer(t.optimizer, method)
    sched = build_scheduler(t.scheduler, opt, warmup_iters=t.warmup_iters, warmup_factor=t.warmup_factor)
    trainer = SimpleTrainer(method, loader, opt, scheduler=sched, grad_clip=t.grad_clip, amp=t.amp,
                            accum_steps=t.accum_steps)
    trainer.train(0, warmup)
    start = time.perf_counter()
    trainer.train(warmup, warmup + iters)
    dt = time.perf_counter() - start
    params = sum(p.numel() for p in method.parameters() if p.requires_grad)
    h, w = cfg.dataset.get("height", "?"), cfg.dataset.get("width", "?")
    return {"it_s": iters / dt, "s_it": dt / iters, "batch": int(t.batch_size), "dataset": data,
            "frames": int(t.clip.num_frames), "size": f"{h}x{w}", "params_m": params / 1e6,
            "loss": trainer.metrics.get("total_loss", float("nan")),
            "threads": torch.get_num_threads()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("overrides", nargs="*", help="Hydra overrides applied to every method")
    p.add_argument("--methods", nargs="+", help="method configs (default: configs/method/*_tiny.yaml)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    names = args.methods or sorted(f.stem for f in (REPO / "configs" / "method").glob("*_tiny.yaml"))
    if not names:
        print("no configs/method/*_tiny.yaml found")
        return
    print(f"{'method':<28}{'dataset':>14}{'it/s':>8}{'s/it':>8}{'batch':>7}{'T':>4}{'size':>9}"
          f"{'params(M)':>11}{'loss':>10}")
    for name in names:
        try:
            r = measure(name, args.overrides, args.warmup, args.iters, args.device)
        except Exception as e:  # report and go on with the other methods
            print(f"{name:<28}FAILED: {type(e).__name__}: {str(e).splitlines()[0][:120]}")
            traceback.print_exc(limit=2, file=sys.stderr)
            continue
        print(f"{name:<28}{r['dataset']:>14}{r['it_s']:>8.2f}{r['s_it']:>8.3f}{r['batch']:>7}{r['frames']:>4}"
              f"{r['size']:>9}{r['params_m']:>11.3f}{r['loss']:>10.4f}")
    print(f"(device {args.device}, {args.threads} thread(s), {args.iters} timed iterations after "
          f"{args.warmup} warm-up, data loading included)")


if __name__ == "__main__":
    main()
