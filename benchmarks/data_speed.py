#!/usr/bin/env python
"""Frames+masks per second through the DAVIS loader vs a bare PIL decode of the same files.

    python benchmarks/data_speed.py [--root ../shared/data/davis2016-mini] [--repeats 3]

Both sides decode every JPEG frame and PNG annotation of the split once per repeat, in the same
process, alternating, and the ratio loader/bare is printed (goal >= 0.8). The loader's extra
work is validation (sizes, label values), per-object masks and the float tensor conversion.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vosbench.data.datasets import DAVIS2016  # noqa: E402


def bare(paths: list[tuple[Path, Path]]) -> int:
    for img, ann in paths:
        np.asarray(Image.open(img).convert("RGB"))
        np.asarray(Image.open(ann))
    return len(paths)


def loader(ds: DAVIS2016) -> int:
    n = 0
    for rec in ds.videos:
        for t in range(len(rec.frame_paths)):
            f = ds._frame(rec, t)  # exactly what sample.frames[t] does, minus the reference scan
            assert f.masks is not None
            n += 1
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--root", default=str(Path(__file__).resolve().parents[2] / "shared/data/davis2016-mini"))
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    ds = DAVIS2016(root=args.root, split="val")
    paths = [(rec.frame_paths[t], rec.extra["_ann_paths"][t]) for rec in ds.videos
             for t in range(len(rec.frame_paths))]
    bare(paths[:5]), loader  # warm the page cache
    tb, tl = [], []
    for _ in range(args.repeats):
        t0 = time.perf_counter(); n = bare(paths); tb.append(time.perf_counter() - t0)
        t0 = time.perf_counter(); m = loader(ds); tl.append(time.perf_counter() - t0)
    assert n == m
    fb, fl = n / np.median(tb), n / np.median(tl)
    print(f"frames: {n} ({args.root})")
    print(f"bare PIL decode: {fb:.1f} frames+masks/s (median of {args.repeats})")
    print(f"vosbench loader: {fl:.1f} frames+masks/s (median of {args.repeats})")
    print(f"ratio loader/bare: {fl / fb:.2f} (goal >= 0.8)")


if __name__ == "__main__":
    main()
