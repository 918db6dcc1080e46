"""Paper-size MaskProp ``predict`` on CPU: time per frame, where it goes, peak memory.

Builds ``configs/method/maskprop.yaml`` as composed by Hydra (ResNet-50-FPN, 41 classes, test
short side 800 capped by max_size 1333, stride-8 propagation, clips of 13 frames, 1000 RPN
proposals at test time, refinement on 384x384 patches) from random weights (there are no
pretrained files offline; ``allow_random_init`` is set here and printed) and runs one
``predict`` on the first ``--frames`` frames of a real DAVIS-2016 video resized to ``--size``
(default 16 frames at 360x640, the issue's probe). A random detector still reports up to
``max_instances`` boxes per frame above the 0.1 score threshold, so this is close to the worst
case of the cap.

Prints the per-stage wall-clock split (``MaskProp.profile``: detector, propagation, linking,
refinement + output), the share of the grid the sparse propagation computes, the process CPU
time (user + system of this process, all threads) per frame, and the peak RSS.

    OMP_NUM_THREADS=1 python benchmarks/maskprop_paper_predict.py                # 16 x 360x640
    OMP_NUM_THREADS=1 python benchmarks/maskprop_paper_predict.py --frames 3 --dense   # the old path
    OMP_NUM_THREADS=1 python benchmarks/maskprop_paper_predict.py --override max_instances=5
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
DAVIS_MINI = REPO.parent / "shared" / "data" / "davis2016-mini"


def load_clip(root: Path, video: str, frames: int, size: tuple[int, int]):
    """The first ``frames`` JPEG frames of ``video`` resized (bilinear) to ``size`` = (H, W)."""
    from PIL import Image

    from vosbench.structures import Frame, VideoSample

    folder = root / "JPEGImages" / "480p" / video
    files = sorted(folder.glob("*.jpg"))[:frames]
    if len(files) < frames:
        raise SystemExit(f"error: {folder}: {len(files)} frames, {frames} asked")
    out = []
    for i, f in enumerate(files):
        im = Image.open(f).convert("RGB").resize((size[1], size[0]), Image.BILINEAR)
        t = torch.from_numpy(np.array(im)).permute(2, 0, 1).float() / 255.0
        out.append(Frame(image=t, index=i, name=f.stem))
    return VideoSample(video, out, task="vis", orig_size=size)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, default=DAVIS_MINI, help="a DAVIS-2016 folder (480p JPEGs)")
    ap.add_argument("--video", default="blackswan")
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--size", default="360x640", help="HxW the frames are resized to")
    ap.add_argument("--method", default="maskprop", help="configs/method/<name>.yaml")
    ap.add_argument("--override", nargs="*", default=[], help="method.<key>=<value> overrides (Hydra syntax, no prefix)")
    ap.add_argument("--dense", action="store_true", help="sparse_propagation=false (the dense path, for comparison)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    import vosbench_methods  # noqa: F401  (registers the methods)
    from vosbench.config import build, compose, to_dict
    from vosbench.models.weights import weights_policy
    from vosbench.registry import METHODS

    h, w = (int(v) for v in args.size.lower().split("x"))
    over = [f"method.{o}" for o in args.override]
    if args.dense:
        over.append("method.sparse_propagation=false")
    cfg = to_dict(compose([f"method={args.method}", "dataset=ytvis2019", "dataset.root=unused",
                           "allow_random_init=true", *over]).method)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, OMP_NUM_THREADS="
          f"{os.environ.get('OMP_NUM_THREADS')}; allow_random_init=true (no pretrained files offline)", flush=True)
    torch.manual_seed(args.seed)
    with weights_policy(allow_random_init=True):
        model = build(cfg, METHODS).eval()
    sample = load_clip(args.root, args.video, args.frames, (h, w))
    model.profile = {}
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    with torch.inference_mode():
        pred = model.predict(sample).materialize()
    wall = time.perf_counter() - t0
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    prof = dict(model.profile)
    stages = {k: prof.get(k, 0.0) for k in ("detector", "propagation", "linking", "refinement")}
    stages["other (output, upsampling)"] = max(wall - sum(stages.values()), 0.0)
    n = args.frames
    res = {
        "config": args.method, "overrides": over, "video": args.video, "frames": n, "size": [h, w],
        "test_min_size": model.detector.min_sizes[-1], "max_size": model.detector.transform.max_size,
        "max_instances": model.max_instances, "clip_radius": model.clip_radius,
        "sparse_propagation": model.sparse_propagation,
        "instances_out": int(len(pred.obj_ids)),
        "wall_s": wall, "cpu_s": cpu, "cpu_s_per_frame": cpu / n, "wall_s_per_frame": wall / n,
        "stages_wall_s": stages,
        "window_fraction": (prof.get("window_cells", 0) / prof["grid_cells"]) if prof.get("grid_cells") else None,
        "peak_rss_mb": ru1.ru_maxrss / 1024,
    }
    print(f"{args.method} predict: {n} frames {h}x{w} (detector short side {res['test_min_size']}, "
          f"max {res['max_size']}), max_instances {res['max_instances']}, K {res['clip_radius']}, "
          f"sparse {res['sparse_propagation']}")
    print(f"  cpu {cpu:.1f} s = {cpu / n:.2f} s/frame; wall {wall:.1f} s = {wall / n:.2f} s/frame; "
          f"peak RSS {res['peak_rss_mb']:.0f} MB; {res['instances_out']} video-level entries")
    print("  wall by stage: " + ", ".join(f"{k} {v:.1f} s ({100 * v / max(wall, 1e-9):.0f} %)" for k, v in stages.items()))
    if res["window_fraction"] is not None:
        print(f"  sparse propagation computed {100 * res['window_fraction']:.1f} % of the "
              f"instance x target x grid cells of the dense path")
    if args.json:
        tmp = args.json.with_suffix(".tmp")
        tmp.write_text(json.dumps(res, indent=2))
        os.replace(tmp, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
