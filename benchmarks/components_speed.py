#!/usr/bin/env python
"""Speed of the shared components, and the two baselines' accuracy, measured side by side.

    OMP_NUM_THREADS=1 python benchmarks/components_speed.py --threads 1 \\
        [--davis ../shared/data/davis2016-mini] [--skip-large] [--device cpu]

Sections (each prints a table; ratios are relative to the first row of the table):

1. flow: seconds per 854x480 frame pair for every FLOWS provider (DIS presets, Farneback,
   zero, RAFT small/large). RAFT is timed with random weights (``allow_random_init``): its run
   time does not depend on the weight values, and no weight file can be downloaded here.
2. backbone: seconds per 854x480 frame (batch 1, inference mode) for every BACKBONES entry.
3. baselines: J and F (``davis2016`` evaluator of ``vosbench.metrics``: frames 1..N-2, union
   foreground) and method FPS of ``first_frame_copy`` and ``flow_propagation`` (per flow
   provider) on the real DAVIS-2016 sequences in ``--davis`` (skipped when absent).
"""
from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import vosbench_methods  # noqa: E402,F401  (registers the baselines)
import vosbench.models  # noqa: E402,F401  (registers backbones and flows)
from vosbench.config import build  # noqa: E402
from vosbench.models.flow import build_flow  # noqa: E402
from vosbench.registry import BACKBONES, METHODS  # noqa: E402

H, W = 480, 854


def timeit(fn, repeats: int, warmup: int = 1) -> float:
    """Median wall seconds of ``fn()`` over ``repeats`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def table(title: str, rows: list[tuple[str, float]], unit: str) -> None:
    print(f"\n## {title}\n")
    print(f"| {'name':<34} | {unit:>12} | ratio to first |")
    print(f"|{'-' * 36}|{'-' * 14}|{'-' * 16}|")
    ref = rows[0][1] if rows else 1.0
    for name, v in rows:
        print(f"| {name:<34} | {v:>12.4f} | {v / ref:>14.2f} |")


def real_pair(davis: Path | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Two consecutive 854x480 frames (real blackswan frames when available, else noise)."""
    if davis is not None and (davis / "JPEGImages/480p/blackswan/00000.jpg").is_file():
        from vosbench.utils.io import read_image

        img = [torch.from_numpy(read_image(davis / f"JPEGImages/480p/blackswan/0000{i}.jpg").copy())
               .permute(2, 0, 1).float() / 255 for i in (0, 1)]
        return img[0], img[1]
    g = torch.Generator().manual_seed(0)
    a = torch.rand(3, H, W, generator=g)
    return a, a.roll(2, dims=-1)


def bench_flow(a, b, args) -> None:
    providers = [("dis (medium)", {"name": "dis", "preset": "medium"}, 5),
                 ("dis (fast)", {"name": "dis", "preset": "fast"}, 5),
                 ("dis (ultrafast)", {"name": "dis", "preset": "ultrafast"}, 5),
                 ("farneback", {"name": "farneback"}, 3),
                 ("zero", {"name": "zero"}, 5),
                 ("raft_small (12 it, random w.)", {"name": "raft_small", "allow_random_init": True}, 1)]
    if not args.skip_large:
        providers.append(("raft_large (12 it, random w.)", {"name": "raft_large", "allow_random_init": True}, 1))
    rows = []
    for label, cfg, rep in providers:
        est = build_flow(cfg).to(args.device)
        aa, bb = a.to(args.device), b.to(args.device)
        rows.append((label, timeit(lambda: est(aa, bb), rep)))
    table(f"flow: seconds per {W}x{H} pair ({args.device})", rows, "s / pair")


def bench_backbones(args) -> None:
    nets = [("vgg16_side (in=4)", {"name": "vgg16_side", "in_channels": 4}, 4),
            ("resnet50_fpn (frozen BN)", {"name": "resnet50_fpn"}, 3),
            ("resnet101_fpn (GN)", {"name": "resnet101_fpn", "norm": "gn"}, 3)]
    if not args.skip_large:
        nets.append(("resnext101_fpn (64x4d)", {"name": "resnext101_fpn"}, 2))
    nets += [("vgg16_side_tiny (in=4)", {"name": "vgg16_side_tiny", "in_channels": 4}, 5),
             ("resnet_tiny_fpn", {"name": "resnet_tiny_fpn"}, 5)]
    rows = []
    from vosbench.models.weights import weights_policy

    for label, cfg, rep in nets:
        with weights_policy(allow_random_init=True):  # speed only: random weights are fine (and logged)
            net = build(cfg, BACKBONES).eval().to(args.device)
        x = torch.rand(1, net.in_channels if hasattr(net, "in_channels") else 3, H, W, device=args.device)

        def run(net=net, x=x):
            with torch.inference_mode():
                net(x)
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()

        rows.append((label, timeit(run, rep)))
        del net
    table(f"backbone: seconds per {W}x{H} frame, batch 1 ({args.device})", rows, "s / frame")


def load_davis_mini(root: Path):
    """The DAVIS-2016 sequences of ``root`` as ``VideoSample``s, through the registered loader."""
    from vosbench.data import build_dataset

    return list(build_dataset({"name": "davis2016", "root": str(root), "split": "val"})), "vosbench.data davis2016"


def bench_baselines(davis: Path, args) -> None:
    from vosbench.metrics import build_evaluator

    samples, how = load_davis_mini(davis)
    methods_ = [("first_frame_copy", {"name": "first_frame_copy"}),
                ("flow_propagation + dis (medium)", {"name": "flow_propagation", "flow": {"name": "dis", "preset": "medium"}}),
                ("flow_propagation + dis (fast)", {"name": "flow_propagation", "flow": {"name": "dis", "preset": "fast"}}),
                ("flow_propagation + farneback", {"name": "flow_propagation", "flow": {"name": "farneback"}}),
                ("flow_propagation + zero", {"name": "flow_propagation", "flow": {"name": "zero"}})]
    print(f"\n## baselines on {davis} ({len(samples)} sequences; data: {how})\n")
    print("davis2016 evaluator (frames 1..N-2, union foreground); per-sequence J_mean in brackets;"
          " fps = frames / seconds spent inside the method's frame generator (decoding included)\n")
    print(f"| {'method':<33} | J_mean | F_mean |  J&F  | fps  | per-sequence J_mean |")
    print(f"|{'-' * 35}|--------|--------|-------|------|---------------------|")
    for label, cfg in methods_:
        method = build(cfg, METHODS)
        ev = build_evaluator("davis2016", with_t=False)
        ev.reset()
        secs, frames = 0.0, 0
        per_seq = []
        for s in samples:
            pred = method.predict(s)
            gen = iter(pred.frames)

            def timed(gen=gen):
                nonlocal secs, frames
                while True:
                    t0 = time.perf_counter()
                    try:
                        fp = next(gen)
                    except StopIteration:
                        return
                    secs += time.perf_counter() - t0
                    frames += 1
                    yield fp

            pred.frames = timed()
            ev.process(s, pred)
            per_seq.append((s.video_id, float(ev._results[-1].J.mean())))
        r = ev.evaluate()
        seqs = ", ".join(f"{n} {j:.3f}" for n, j in per_seq)
        print(f"| {label:<33} | {r['J_mean']:.3f}  | {r['F_mean']:.3f}  | {r['J&F']:.3f} | {frames / secs:4.0f} | {seqs} |",
              flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--davis", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/davis2016-mini")
    ap.add_argument("--skip-large", action="store_true", help="skip raft_large and resnext101_fpn")
    ap.add_argument("--sections", nargs="*", default=["flow", "backbone", "baselines"])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    import cv2

    cv2.setNumThreads(args.threads)
    print(f"# components benchmark: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
          f"{platform.processor() or platform.machine()}, torch {torch.__version__}, cv2 {cv2.__version__}, "
          f"threads {args.threads}, device {args.device}")
    davis = args.davis if (args.davis / "JPEGImages").is_dir() else None
    if "flow" in args.sections:
        bench_flow(*real_pair(davis), args)
    if "backbone" in args.sections:
        bench_backbones(args)
    if "baselines" in args.sections:
        if davis is None:
            print(f"\n(baselines skipped: no DAVIS data at {args.davis})")
        else:
            bench_baselines(davis, args)


if __name__ == "__main__":
    main()
