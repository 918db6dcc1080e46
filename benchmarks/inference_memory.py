#!/usr/bin/env python
"""Does inference memory grow with video length? (goal: 400-frame peak <= 1.2x 100-frame peak)

For each method, runs the full streaming test pipeline (dataset loader -> method.predict ->
DAVIS PNG writer -> DAVIS-2017 evaluator, i.e. ``vosbench.engine.inference_on_dataset``) on one
built-in synthetic video of each length, each in a FRESH process so peaks do not carry over,
and prints the peak memory of each run and the long/short ratio, side by side.

Peak memory: on CPU, the peak resident set size sampled every 5 ms during inference
(``peak_rss_mb``) and its increase over the RSS before inference (``delta_mb``, which excludes
the fixed cost of the loaded libraries and weights, so it is the stricter ratio); on GPU, CUDA
``max_memory_allocated``.

    python benchmarks/inference_memory.py                       # first_frame_copy, flow_propagation
    python benchmarks/inference_memory.py --methods maskrnn_tiny --frames 100 400 --size 240 432
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def worker(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(1)
    from vosbench.config import compose
    from vosbench.engine.defaults import build_method
    from vosbench.engine.inference import DavisWriter, inference_on_dataset
    from vosbench.metrics import build_evaluator

    h, w = args.size
    data = [f"dataset.root={args.cache}", "dataset.split=val", "dataset.num_videos=1",
            f"dataset.num_frames={args.frames[0]}", f"dataset.height={h}", f"dataset.width={w}",
            "dataset.max_objects=3"]
    from vosbench.data import build_dataset

    cfg = compose([f"method={args.method}", "dataset=synthetic", *data, f"seed={args.seed}"])
    dataset = build_dataset(cfg.dataset)
    if args.prepare:  # generation holds whole videos in memory: do it in a separate process
        print(f"prepared {len(dataset)} video(s)")
        return
    method = build_method(cfg, args.device)
    if args.checkpoint:
        from vosbench.engine.checkpoint import load_model_weights

        load_model_weights(method, args.checkpoint)
    with tempfile.TemporaryDirectory() as out:
        metric = getattr(dataset, "metric", "davis2017")
        res = inference_on_dataset(method, dataset, evaluator=build_evaluator(metric),
                                   writer=DavisWriter(out), device=args.device, progress=False)
    out = {k: res[k] for k in ("num_frames", "fps", "peak_mem_mb", "peak_rss_mb", "peak_mem_delta_mb",
                                "J&F") if k in res}
    print("RESULT " + json.dumps(out))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--methods", nargs="+", default=["first_frame_copy", "flow_propagation"])
    p.add_argument("--frames", nargs="+", type=int, default=[100, 400])
    p.add_argument("--size", nargs=2, type=int, default=[240, 432], metavar=("H", "W"))
    p.add_argument("--device", default="cpu")
    p.add_argument("--checkpoint", default=None, help="weights for a trainable method")
    p.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "vosbench_memory_bench"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--method", help=argparse.SUPPRESS)
    p.add_argument("--prepare", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(args)
        return

    env = dict(os.environ, OMP_NUM_THREADS="1")
    rows = []
    for method in args.methods:
        res = {}
        for n in args.frames:
            cmd = [sys.executable, __file__, "--worker", "--method", method, "--frames", str(n),
                   "--size", *map(str, args.size), "--device", args.device, "--cache",
                   f"{args.cache}/{n}", "--seed", str(args.seed)]
            if args.checkpoint:
                cmd += ["--checkpoint", args.checkpoint]
            prep = subprocess.run(cmd + ["--prepare"], capture_output=True, text=True, env=env)
            if prep.returncode:
                print(f"{method} @ {n} frames: data preparation FAILED: {prep.stderr.strip()[-500:]}")
                break
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
            line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
            if proc.returncode or not line:
                tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
                print(f"{method} @ {n} frames: FAILED: {' | '.join(tail)}")
                break
            res[n] = json.loads(line[0][7:])
            print(f"{method} @ {n} frames: {res[n]}", flush=True)
        if len(res) == len(args.frames):
            rows.append((method, res))

    short, long = min(args.frames), max(args.frames)
    print(f"\nvideo {args.size[0]}x{args.size[1]}, device {args.device}; peak memory (MB) per run, "
          f"each in a fresh process")
    print(f"{'method':<24}" + "".join(f"{f'rss@{n}':>11}{f'delta@{n}':>11}" for n in args.frames)
          + f"{'rss ratio':>11}{'delta ratio':>13}{'fps@' + str(long):>10}  goal <= 1.2")
    for method, res in rows:
        r_rss = res[long]["peak_mem_mb"] / res[short]["peak_mem_mb"]
        r_delta = res[long]["peak_mem_delta_mb"] / max(res[short]["peak_mem_delta_mb"], 1e-6)
        cells = "".join(f"{res[n]['peak_mem_mb']:>11.1f}{res[n]['peak_mem_delta_mb']:>11.1f}"
                        for n in args.frames)
        ok = "ok" if r_rss <= 1.2 else "EXCEEDED"
        print(f"{method:<24}{cells}{r_rss:>11.3f}{r_delta:>13.3f}{res[long]['fps']:>10.1f}  {ok}")


if __name__ == "__main__":
    main()
