"""Real-format fixtures of the fuzz suite and the tools run on them.

Every builder writes a folder in the official on-disk layout (JPEG frames, palette / grey PNGs,
split files, YouTube-VIS json with compressed RLE), small enough that a tool runs in well under a
second, plus a results folder/file for the evaluator that scores neither 0 nor 1 (so a changed
number is visible). ``real_*`` copy trimmed pieces of the shared real data (skipped when
``/work/shared`` is absent).

``run_eval`` / ``run_check`` call the tools in-process (``main(argv) -> exit status``) and
capture what they print; ``run_subprocess`` runs ``python -m vosbench`` for the exit-code and
traceback checks that need a real process.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("VOSBENCH_SHARED_DATA", REPO.parent / "shared" / "data"))
if not SHARED.is_dir():
    SHARED = Path("/work/shared/data")
MINI = SHARED / "davis2016-mini"
TRAIN16 = SHARED / "davis2016-train"
FORMATS = SHARED / "formats"

H, W, T = 24, 32, 6


def _box(t: int, k: int) -> tuple[slice, slice]:
    """Object k's box in frame t: moves one pixel per frame."""
    y, x = 3 + 9 * k, 3 + t + 6 * k
    return slice(y, y + 7), slice(x, x + 9)


def _frame(t: int) -> np.ndarray:
    rng = np.random.default_rng(t)
    return (rng.integers(0, 255, (H, W, 3))).astype(np.uint8)


def write_palette(path: Path, lab: np.ndarray) -> None:
    from vosbench.utils.io import write_index_png

    write_index_png(path, lab)


def make_davis2017(root: Path, *, seqs=("s0", "s1"), objects=2, split="val") -> Path:
    """DAVIS-2017 layout: ``objects`` moving boxes per sequence (ids 1..objects), T frames."""
    for seq in seqs:
        for t in range(T):
            j = root / "JPEGImages" / "480p" / seq / f"{t:05d}.jpg"
            j.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(_frame(t)).save(j, quality=90)
            lab = np.zeros((H, W), np.uint8)
            for k in range(objects):
                lab[_box(t, k)] = k + 1
            write_palette(root / "Annotations" / "480p" / seq / f"{t:05d}.png", lab)
    sets = root / "ImageSets" / "2017"
    sets.mkdir(parents=True, exist_ok=True)
    (sets / f"{split}.txt").write_text("\n".join(seqs) + "\n")
    return root


def make_davis2017_results(gt: Path, out: Path) -> Path:
    """Predictions: every object's box shifted right by 2 pixels (J in (0, 1))."""
    for a in sorted((gt / "Annotations" / "480p").glob("*/*.png")):
        lab = np.asarray(Image.open(a))
        write_palette(out / a.parent.name / a.name, np.roll(lab, 2, axis=1))
    return out


def make_davis2016(root: Path, *, seqs=("s0", "s1"), split="val") -> Path:
    """DAVIS-2016 layout: grey 0/255 masks, ``ImageSets/480p/<split>.txt`` image/annotation pairs."""
    lines = []
    for seq in seqs:
        for t in range(T):
            j = root / "JPEGImages" / "480p" / seq / f"{t:05d}.jpg"
            j.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(_frame(t)).save(j, quality=90)
            m = np.zeros((H, W), np.uint8)
            m[_box(t, 0)] = 255
            a = root / "Annotations" / "480p" / seq / f"{t:05d}.png"
            a.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(m, mode="L").save(a)
            lines.append(f"/JPEGImages/480p/{seq}/{t:05d}.jpg /Annotations/480p/{seq}/{t:05d}.png")
    sets = root / "ImageSets" / "480p"
    sets.mkdir(parents=True, exist_ok=True)
    (sets / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return root


def make_davis2016_results(gt: Path, out: Path) -> Path:
    for a in sorted((gt / "Annotations" / "480p").glob("*/*.png")):
        m = np.asarray(Image.open(a).convert("L"))
        write_palette(out / a.parent.name / a.name, (np.roll(m, 2, axis=1) > 0).astype(np.uint8))
    return out


def make_segtrack(root: Path) -> Path:
    """SegTrack v2: one single-object sequence (1-channel PNG masks), one with 2 objects
    (3-channel BMP masks in folders 1 and 2)."""
    (root / "ImageSets").mkdir(parents=True, exist_ok=True)
    (root / "ImageSets" / "all.txt").write_text("girl\n*drift\n")
    for seq, objs in (("girl", [None]), ("drift", ["1", "2"])):
        stems = [f"{seq}_{t:03d}" for t in range(T)]
        (root / "ImageSets" / f"{seq}.txt").write_text("/prefix/\n" + "\n".join(stems) + "\n")
        for t, stem in enumerate(stems):
            p = root / "JPEGImages" / seq / f"{stem}.png"
            p.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(_frame(t)).save(p)
            for k, o in enumerate(objs):
                d = root / "GroundTruth" / seq / (o or "")
                d.mkdir(parents=True, exist_ok=True)
                m = np.zeros((H, W), np.uint8)
                m[_box(t, k)] = 255
                (Image.fromarray(np.stack([m] * 3, -1)) if o else Image.fromarray(m)).save(
                    d / (stem + (".bmp" if o else ".png")))
    return root


def make_segtrack_results(gt: Path, out: Path) -> Path:
    for seq, ids in (("girl", [1]), ("drift", [1, 2])):
        for t in range(T):
            lab = np.zeros((H, W), np.uint8)
            for k, i in enumerate(ids):
                y, x = _box(t, k)
                lab[y, slice(x.start + 2, x.stop + 2)] = i
            write_palette(out / seq / f"{seq}_{t:03d}.png", lab)
    return out


def make_ytvis(root: Path, *, split="train") -> Path:
    """YouTube-VIS (per-video layout): 2 videos, 2 instances each, compressed RLE."""
    from vosbench.structures.masks import rle_encode
    import torch

    videos, anns = [], []
    for v in (1, 2):
        names = [f"v{v}/{t:05d}.jpg" for t in range(T)]
        for t, n in enumerate(names):
            p = root / "JPEGImages" / n
            p.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(_frame(t)).save(p, quality=90)
        videos.append({"id": v, "file_names": names, "height": H, "width": W, "length": T})
        for k in range(2):
            segs, areas = [], []
            for t in range(T):
                m = np.zeros((1, H, W), bool)
                m[0][_box(t, k)] = True
                r = rle_encode(torch.from_numpy(m))[0]
                segs.append({"size": [H, W], "counts": r["counts"] if isinstance(r["counts"], str)
                             else r["counts"].decode()})
                areas.append(int(m.sum()))
            anns.append({"id": 10 * v + k, "video_id": v, "category_id": k + 1, "iscrowd": 0,
                         "segmentations": segs, "areas": areas})
    data = {"videos": videos, "annotations": anns,
            "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]}
    (root / f"{split}.json").write_text(json.dumps(data))
    return root


def make_ytvis_results(gt_json: Path, out: Path, *, shift: int = 2) -> Path:
    """Results from a GT json: each instance's masks shifted right, scores 0.9 / 0.6."""
    from pycocotools import mask as mask_utils

    from vosbench.structures.masks import rle_decode, rle_encode
    import torch

    data = json.loads(Path(gt_json).read_text())
    vids = {v["id"]: v for v in data["videos"]}
    res = []
    for n, a in enumerate(data["annotations"]):
        v = vids[a["video_id"]]
        segs = []
        for s in a["segmentations"]:
            if not s:
                segs.append(None)
                continue
            if isinstance(s, list):
                s = mask_utils.merge(mask_utils.frPyObjects(s, v["height"], v["width"]))
            m = np.roll(rle_decode(s, (v["height"], v["width"])), shift, axis=1)
            r = rle_encode(torch.from_numpy(m[None]))[0]
            segs.append({"size": list(r["size"]), "counts": r["counts"] if isinstance(r["counts"], str)
                         else r["counts"].decode()})
        res.append({"video_id": a["video_id"], "category_id": a["category_id"],
                    "score": 0.9 if n % 2 == 0 else 0.6, "segmentations": segs})
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res))
    return out


# ------------------------------------------------------------------------ real data pieces
def real_davis2016(root: Path, *, seqs=("blackswan", "car-shadow"), frames=6) -> Path:
    """The first ``frames`` frames of two davis2016-mini sequences, the real files unchanged."""
    lines = []
    for seq in seqs:
        for t in range(frames):
            for sub, ext in (("JPEGImages", "jpg"), ("Annotations", "png")):
                src = MINI / sub / "480p" / seq / f"{t:05d}.{ext}"
                dst = root / sub / "480p" / seq / src.name
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, dst)
            lines.append(f"/JPEGImages/480p/{seq}/{t:05d}.jpg /Annotations/480p/{seq}/{t:05d}.png")
    (root / "ImageSets" / "480p").mkdir(parents=True, exist_ok=True)
    (root / "ImageSets" / "480p" / "val.txt").write_text("\n".join(lines) + "\n")
    return root


# ------------------------------------------------------------------------------ running tools
@dataclass
class Run:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


def _inproc(main, argv) -> Run:
    o, e = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(o), contextlib.redirect_stderr(e):
        try:
            code = main(argv)
        except SystemExit as x:  # argparse
            code = x.code if isinstance(x.code, int) else 2
    return Run(int(code), o.getvalue(), e.getvalue())


def run_eval(*argv: str) -> Run:
    from vosbench.cli.eval import main

    return _inproc(main, [*map(str, argv), "--quiet", "--workers", "1"])


def run_check(*argv: str) -> Run:
    from vosbench.cli.check import main

    return _inproc(main, list(map(str, argv)))


def run_subprocess(*argv: str, timeout: float = 300, env: dict | None = None) -> Run:
    e = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", HYDRA_FULL_ERROR="0")
    e.pop("VOSBENCH_DEBUG", None)
    e.update(env or {})
    p = subprocess.run([sys.executable, "-m", "vosbench", *map(str, argv)], cwd=REPO, env=e,
                       capture_output=True, text=True, timeout=timeout)
    return Run(p.returncode, p.stdout, p.stderr)


def assert_clean_error(r: Run, code: int, *needles: str) -> None:
    """Exit ``code``, no traceback, and each needle (a file name...) in what was printed."""
    assert r.code == code, (r.code, r.text[-3000:])
    assert "Traceback" not in r.text, r.text[-3000:]
    for n in needles:
        assert n in r.text, (n, r.text[-3000:])


def report_files(out: Path) -> list[str]:
    """The report files an evaluation left in ``out`` (not its cache / lock)."""
    if not out.is_dir():
        return []
    return sorted(p.name for p in out.iterdir() if p.is_file() and not p.name.startswith("."))
