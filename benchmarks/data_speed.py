#!/usr/bin/env python
"""Frames+masks per second through the DAVIS loader vs a bare PIL decode of the same files.

    python benchmarks/data_speed.py [--root ../shared/data/davis2016-mini] [--repeats 5]

Both sides decode every JPEG frame and PNG annotation of the split once per repeat, in the same
process, alternating, and the ratio loader/bare is printed (goal >= 0.8), alternating frame by
frame (so load from other processes on a shared CPU hits both sides alike); the public path
(fresh dataset, ``dataset[i]`` incl. the first-appearance scan, ``sample.frames``) is timed
against a bare pass run right after it. The loader's extra
work is validation (sizes, label values), per-object masks and the float tensor conversion.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vosbench.data.datasets import DAVIS2016  # noqa: E402


def bare_one(img: Path, ann: Path) -> None:
    np.asarray(Image.open(img).convert("RGB"))
    np.asarray(Image.open(ann))


def interleaved(ds: DAVIS2016) -> tuple[float, float, int]:
    """Seconds spent in (bare decode, loader) over every frame, alternating frame by frame, so
    load from other processes on a shared CPU falls on both sides alike."""
    tb = tl = 0.0
    n = 0
    for rec in ds.videos:
        for t in range(len(rec.frame_paths)):
            t0 = time.perf_counter()
            bare_one(rec.frame_paths[t], rec.extra["_ann_paths"][t])
            t1 = time.perf_counter()
            f = ds._frame(rec, t)  # exactly what sample.frames[t] does, minus the reference scan
            t2 = time.perf_counter()
            assert f.masks is not None
            tb, tl, n = tb + (t1 - t0), tl + (t2 - t1), n + 1
    return tb, tl, n


def loader_public(root: str) -> int:
    """The public path: a fresh dataset, ``dataset[i]`` (first-appearance scan of every
    annotation, reference masks) and iteration over ``sample.frames``."""
    ds = DAVIS2016(root=root, split="val")
    n = 0
    for sample in ds:
        for f in sample.frames:
            assert f.masks is not None
            n += 1
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--root", default=str(Path(__file__).resolve().parents[2] / "shared/data/davis2016-mini"))
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(1)
    ds = DAVIS2016(root=args.root, split="val")
    interleaved(ds)  # warm the page cache and the allocator
    ratios, fb, fl, fp = [], [], [], []
    for _ in range(args.repeats):
        tb, tl, n = interleaved(ds)
        t0 = time.perf_counter(); k = loader_public(args.root); tp = time.perf_counter() - t0
        t0 = time.perf_counter()
        for rec in ds.videos:
            for t in range(len(rec.frame_paths)):
                bare_one(rec.frame_paths[t], rec.extra["_ann_paths"][t])
        tb2 = time.perf_counter() - t0  # bare pass right next to the public-path pass
        assert n == k
        ratios.append(tb / tl)
        fb.append(n / tb); fl.append(n / tl); fp.append(tp and tb2 / tp)
    print(f"frames: {n} ({args.root}), {args.repeats} repeats, 1 thread")
    print(f"bare PIL decode (jpg->RGB array, png->array): median {np.median(fb):.1f} frames+masks/s")
    print(f"vosbench loader (sample.frames[t]):            median {np.median(fl):.1f} frames+masks/s")
    print(f"ratio loader/bare (frame-by-frame alternation): median {np.median(ratios):.2f}, "
          f"range {min(ratios):.2f}-{max(ratios):.2f} (goal >= 0.8)")
    print(f"ratio public path/bare (fresh dataset, dataset[i] with reference scan, sample.frames): "
          f"median {np.median(fp):.2f}")

if __name__ == "__main__":
    main()
