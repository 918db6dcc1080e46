"""Seeded synthetic ground truth + perturbed results in the official layouts.

Used by ``benchmarks/metrics_speed.py`` (DAVIS-2017-val-sized and YouTube-VIS-sized sets) and
by the metric tests (tiny sets). Only numpy, PIL and pycocotools: nothing here reads the
official toolkits.

* ``make_davis_set(root, ...)`` writes ``<root>/gt/{JPEGImages,Annotations,ImageSets}`` in the
  DAVIS-2017 layout (``Annotations_unsupervised`` too) and ``<root>/results/<seq>/<frame>.png``.
* ``make_ytvis_set(root, ...)`` writes ``<root>/gt.json`` and ``<root>/results.json``.
"""
from __future__ import annotations

import io

import json
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from vosbench.utils.io import write_index_png


def _ellipse(H, W, cy, cx, ry, rx, angle):
    yy, xx = np.mgrid[:H, :W].astype(np.float32)
    ca, sa = np.cos(angle), np.sin(angle)
    y, x = yy - cy, xx - cx
    u = (x * ca + y * sa) / max(rx, 0.5)
    v = (-x * sa + y * ca) / max(ry, 0.5)
    return (u * u + v * v) < 1.0


def _object_track(rng, H, W, T):
    """Parameters of a moving, deforming ellipse with a notch (holes / concavities)."""
    cy, cx = rng.uniform(0.2, 0.8) * H, rng.uniform(0.2, 0.8) * W
    ry, rx = rng.uniform(0.06, 0.25) * H, rng.uniform(0.06, 0.25) * W
    vy, vx = rng.normal(0, 0.004 * H), rng.normal(0, 0.004 * W)
    ang, va = rng.uniform(0, np.pi), rng.normal(0, 0.02)
    hole = rng.random() < 0.3
    out = []
    for t in range(T):
        s = 1 + 0.1 * np.sin(t / 7.0)
        m = _ellipse(H, W, cy + vy * t, cx + vx * t, ry * s, rx, ang + va * t)
        if hole:
            m &= ~_ellipse(H, W, cy + vy * t, cx + vx * t, ry * 0.3, rx * 0.3, 0)
        out.append(m)
    return out


def _perturb(rng, m, H, W):
    """A plausible prediction: shifted, dilated/eroded, with noise blobs; sometimes empty."""
    r = rng.random()
    if r < 0.03:
        return np.zeros_like(m)
    dy, dx = rng.integers(-4, 5), rng.integers(-6, 7)
    p = np.roll(np.roll(m, dy, 0), dx, 1)
    if rng.random() < 0.5:
        import cv2
        k = np.ones((3, 3), np.uint8)
        p = (cv2.dilate if rng.random() < 0.5 else cv2.erode)(p.astype(np.uint8), k).astype(bool)
    if rng.random() < 0.3:
        p |= _ellipse(H, W, rng.uniform(0, H), rng.uniform(0, W), rng.uniform(2, 0.05 * H + 3),
                      rng.uniform(2, 0.05 * W + 3), 0)
    return p


def make_davis_set(root, *, num_sequences=30, num_frames=60, height=480, width=854,
                   max_objects=4, seed=0, split="val") -> Path:
    """Write a DAVIS-2017-format GT + results set; returns ``root``.

    GT: ``num_sequences`` sequences of 1..``max_objects`` moving ellipses (some with holes,
    some leaving the image, occlusion by id order); results: perturbed copies (label above the
    object count never occurs). Each frame also gets a black JPEG of the annotation's size (the
    official toolkit lists the images; vosbench's GT reader checks each annotation's size
    against its frame's).
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    H, W = height, width
    gt = root / "gt"
    buf = io.BytesIO()
    Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(buf, format="JPEG")
    jpg = buf.getvalue()  # one encoding, written for every frame
    names = []
    for s in range(num_sequences):
        seq = f"seq{s:03d}"
        names.append(seq)
        K = int(rng.integers(1, max_objects + 1))
        tracks = [_object_track(rng, H, W, num_frames) for _ in range(K)]
        (gt / "JPEGImages" / "480p" / seq).mkdir(parents=True, exist_ok=True)
        for t in range(num_frames):
            g = np.zeros((H, W), np.uint8)
            p = np.zeros((H, W), np.uint8)
            for k in range(K):
                g[tracks[k][t]] = k + 1
            for k in range(K):
                p[_perturb(rng, g == k + 1, H, W)] = k + 1
            if t == 0:  # the first frame must name every object (object count = its max)
                g[0, 0] = g[0, 0] or K
            name = f"{t:05d}"
            write_index_png(gt / "Annotations" / "480p" / seq / f"{name}.png", g)
            write_index_png(gt / "Annotations_unsupervised" / "480p" / seq / f"{name}.png", g)
            write_index_png(root / "results" / seq / f"{name}.png", p)
            (gt / "JPEGImages" / "480p" / seq / f"{name}.jpg").write_bytes(jpg)
    for year in ("2017",):
        d = gt / "ImageSets" / year
        d.mkdir(parents=True, exist_ok=True)
        (d / f"{split}.txt").write_text("\n".join(names) + "\n")
    return root


def make_ytvis_set(root, *, num_videos=300, num_frames=30, height=360, width=640,
                   num_categories=40, max_instances=4, seed=0) -> Path:
    """Write a YouTube-VIS GT json (RLE, ``areas``, ``iscrowd``) and a results json.

    Detections: a perturbed copy of most GT instances with a random (sometimes wrong)
    category, plus false positives; scores drawn from a small set so that ties occur; some
    frames absent (null). GT ``areas`` come from the masks, except a few edited on purpose so
    that using the json ``areas`` (official) is visible.
    """
    from pycocotools import mask as mask_utils

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    H, W = height, width
    videos, anns, res = [], [], []
    cats = [{"id": c, "name": f"cat{c}"} for c in range(1, num_categories + 1)]

    def enc(m):
        r = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
        return {"size": [H, W], "counts": r["counts"].decode("ascii")}

    ann_id = 1
    for v in range(1, num_videos + 1):
        videos.append({"id": v, "width": W, "height": H, "length": num_frames,
                       "file_names": [f"v{v}/{t:05d}.jpg" for t in range(num_frames)]})
        n = int(rng.integers(1, max_instances + 1))
        for _ in range(n):
            cat = int(rng.integers(1, num_categories + 1))
            track = _object_track(rng, H, W, num_frames)
            start = int(rng.integers(0, num_frames // 3))
            segs, areas = [], []
            for t in range(num_frames):
                if t < start:
                    segs.append(None)
                    areas.append(None)
                else:
                    segs.append(enc(track[t]))
                    areas.append(int(track[t].sum()))
            if rng.random() < 0.05:
                areas = [a * 3 if a else a for a in areas]  # json areas != mask areas
            anns.append({"id": ann_id, "video_id": v, "category_id": cat, "segmentations": segs,
                         "areas": areas, "bboxes": [None] * num_frames,
                         "iscrowd": int(rng.random() < 0.05), "height": H, "width": W,
                         "length": 1})
            ann_id += 1
            for _rep in range(int(rng.integers(0, 3))):
                dcat = cat if rng.random() < 0.8 else int(rng.integers(1, num_categories + 1))
                dsegs = []
                for t in range(num_frames):
                    if t < start and rng.random() < 0.7:
                        dsegs.append(None)
                        continue
                    base = track[t] if t >= start else np.zeros((H, W), bool)
                    dsegs.append(enc(_perturb(rng, base, H, W)))
                res.append({"video_id": v, "category_id": dcat,
                            "score": float(rng.choice([0.3, 0.5, 0.7, 0.9, rng.random()])),
                            "segmentations": dsegs})
        for _fp in range(int(rng.integers(0, 3))):
            tr = _object_track(rng, H, W, num_frames)
            res.append({"video_id": v, "category_id": int(rng.integers(1, num_categories + 1)),
                        "score": float(rng.choice([0.1, 0.5, rng.random()])),
                        "segmentations": [enc(m) for m in tr]})
    with open(root / "gt.json", "w") as f:
        json.dump({"videos": videos, "annotations": anns, "categories": cats,
                   "info": {}, "licenses": []}, f)
    with open(root / "results.json", "w") as f:
        json.dump(res, f)
    return root


def clean(root) -> None:
    shutil.rmtree(root, ignore_errors=True)


def t_fixture_pairs(davis2016_root) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Mask pairs of real DAVIS-2016 annotations for the T golden test (fixture values in
    ``tests/fixtures/metrics/official_values.json``, key ``t_official_davis2016_mini``).

    Per sequence, frames (k, k+1) for k = 0, 10, 20, 30 as annotated, and the same pairs
    perturbed like a prediction: dilated (k // 10 even) or eroded (odd) by a 3x3 square,
    then 0.2 % of the pixels flipped (seeded), which adds diagonal junctions, holes and specks.

    Returns:
        (name "<seq>/<k>" or "<seq>/<k>/perturbed", mask_a bool[H, W], mask_b bool[H, W]).
    """
    from scipy import ndimage
    root = Path(davis2016_root) / "Annotations" / "480p"
    out = []
    for s, seq in enumerate(sorted(p.name for p in root.iterdir() if p.is_dir())):
        names = sorted(p.name for p in (root / seq).glob("*.png"))
        for k in (0, 10, 20, 30):
            if k + 1 >= len(names):
                continue
            a, b = (np.asarray(Image.open(root / seq / names[i]).convert("L")) > 0
                    for i in (k, k + 1))
            out.append((f"{seq}/{k}", a, b))
            rng = np.random.default_rng(1000 * s + k)
            op = ndimage.binary_dilation if (k // 10) % 2 == 0 else ndimage.binary_erosion
            pa, pb = (op(m, structure=np.ones((3, 3), bool)) ^ (rng.random(m.shape) < 0.002)
                      for m in (a, b))
            out.append((f"{seq}/{k}/perturbed", pa, pb))
    return out
