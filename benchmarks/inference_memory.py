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
    try:
        from vosbench.data import build_dataset

        cfg = compose([f"method={args.method}", "dataset=synthetic", *data, f"seed={args.seed}"])
        dataset = build_dataset(cfg.dataset)
        source = "loader"
    except Exception as e:  # the dataset package is not there yet: read the folder ourselves
        print(f"(dataset=synthetic unavailable: {type(e).__name__}: {str(e).splitlines()[0][:100]}; "
              "reading the generated DAVIS folder with a minimal lazy reader)", file=sys.stderr)
        cfg = compose([f"method={args.method}", f"seed={args.seed}", "~dataset"])
        dataset = [_lazy_davis_video(args.cache, args.frames[0], h, w, args.seed)]
        source = "minimal reader"
    if args.prepare:  # generation holds whole videos in memory: do it in a separate process
        print(f"prepared {len(dataset)} video(s) from the {source}")
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
    print("RESULT " + json.dumps({**out, "source": source}))


def _lazy_davis_video(cache: str, num_frames: int, h: int, w: int, seed: int):
    """One synthetic video written in DAVIS-2017 layout by ``vosbench.data.synthetic.generate``,
    read back lazily (JPEG + palette PNG decoded per frame access; only the reference masks are
    kept). A stand-in for the DAVIS loader, used only when ``vosbench.data`` lacks it."""
    import numpy as np
    import torch

    from vosbench.data.synthetic import generate
    from vosbench.structures import Frame, LazyFrames, ObjectMasks, VideoSample
    from vosbench.utils.io import read_image, read_index_png

    root = generate(cache, fmt="davis2017", split="val", num_videos=1, num_frames=num_frames,
                    height=h, width=w, max_objects=3, seed=seed)
    seq = (root / "ImageSets" / "2017" / "val.txt").read_text().split()[0]
    img_dir, ann_dir = root / "JPEGImages" / "480p" / seq, root / "Annotations" / "480p" / seq
    names = sorted(p.stem for p in img_dir.glob("*.jpg"))
    reference, seen = {}, set()
    for t, name in enumerate(names):
        lab = read_index_png(ann_dir / f"{name}.png")
        new = [int(i) for i in np.unique(lab) if i not in (0, 255) and int(i) not in seen]
        if new:
            seen.update(new)
            ids = torch.tensor(new)
            reference[t] = ObjectMasks(ids, torch.from_numpy(lab)[None] == ids[:, None, None])
    all_ids = torch.tensor(sorted(seen), dtype=torch.int64)

    def load(t: int) -> Frame:
        img = torch.from_numpy(read_image(img_dir / f"{names[t]}.jpg")).permute(2, 0, 1).float() / 255
        lab = torch.from_numpy(read_index_png(ann_dir / f"{names[t]}.png"))
        return Frame(image=img, index=t, name=names[t], masks=lab[None] == all_ids[:, None, None],
                     obj_ids=all_ids, labels=torch.full_like(all_ids, -1), void=lab == 255)

    return VideoSample(seq, LazyFrames(len(names), load), task="vos", orig_size=(h, w),
                       reference=reference, frame_names=names, meta={"dataset": "synthetic"})


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
