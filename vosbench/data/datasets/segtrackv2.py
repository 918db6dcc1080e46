"""SegTrack v2 loader.

On disk::

    root/JPEGImages/<seq>/<stem>.png|.bmp|.jpg      (extensions are mixed across sequences)
    root/GroundTruth/<seq>/<stem>.png|.bmp          one object, or
    root/GroundTruth/<seq>/1/<stem>.png, 2/...      several objects, one numbered folder each
    root/ImageSets/<seq>.txt                        first line: a path prefix; then one frame stem per line
    root/ImageSets/all.txt                          sequence names; a leading '*' marks multi-object ones

Masks are 1- or 3-channel (grey) images with 255 (or any single non-zero value) = object; a
grey+alpha or RGBA file with an opaque alpha reads as its grey/RGB part, a varying alpha is an
error. Object folders are numbered ``1..K`` (``01`` and ``1`` together, or a gap such as ``1, 3``,
is an error: object ids would collide or an object would be silently missing). This class is the
reader of the format for the loader, ``check_dataset`` and ``eval.py``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from vosbench.data.datasets.base import Problems, VideoDataset, VideoRecord, to_image_tensor
from vosbench.registry import DATASETS
from vosbench.structures import Frame
from vosbench.utils.io import DataError, image_header, list_dir, read_image, read_index_png, read_text

_EXTS = (".png", ".bmp", ".jpg", ".jpeg")


def _find(folder: Path, stem: str) -> Path | None:
    for ext in _EXTS:
        for e in (ext, ext.upper()):
            p = folder / f"{stem}{e}"
            if p.is_file():
                return p
    return None


@DATASETS.register("segtrackv2")
class SegTrackV2(VideoDataset):
    """SegTrack v2 (14 sequences, some with several objects), evaluated per object.

    Args:
        root: the SegTrackv2 folder.
        split: ``all`` (every sequence of ``ImageSets/all.txt``) or one sequence name.
        resize_short: optional short-side size of the decoded frames.
    """

    metric = "segtrackv2"
    dataset_name = "segtrackv2"

    def __init__(self, *, root: str | Path, split: str = "all", resize_short: int | None = None,
                 _problems: Problems | None = None) -> None:
        super().__init__(root=root, split=split, resize_short=resize_short, _problems=_problems)

    def _index(self, problems: Problems) -> list[VideoRecord]:
        sets = self.root / "ImageSets"
        all_file = sets / "all.txt"
        if not all_file.is_file():
            problems.add(f"{all_file}: missing sequence list")
            return []
        entries = [ln.strip() for ln in read_text(all_file).splitlines() if ln.strip()]
        seqs = [(e.lstrip("*").strip(), e.startswith("*")) for e in entries]
        if self.split != "all":
            seqs = [s for s in seqs if s[0] == self.split]
            if not seqs:
                problems.add(f"{all_file}: no sequence named {self.split!r}")
        recs = []
        for seq, multi in seqs:
            list_file = sets / f"{seq}.txt"
            if not list_file.is_file():
                problems.add(f"{list_file}: missing frame list of sequence {seq}")
                continue
            lines = problems.guard(lambda: [ln.strip() for ln in read_text(list_file).splitlines()
                                            if ln.strip()])
            if lines is None:
                continue
            stems = [Path(s).stem for s in lines[1:]]  # first line is a path prefix
            if not stems:
                problems.add(f"{list_file}: lists no frames")
                continue
            jdir, gdir = self.root / "JPEGImages" / seq, self.root / "GroundTruth" / seq
            if not gdir.is_dir():
                problems.add(f"{gdir}: missing ground-truth folder")
                continue
            entries_g = problems.guard(lambda: list_dir(gdir))
            if entries_g is None:
                continue
            obj_dirs = sorted((d for d in entries_g if d.is_dir() and d.name.isdigit()),
                              key=lambda d: (int(d.name), d.name))
            if multi and not obj_dirs:
                problems.add(f"{gdir}: marked multi-object in all.txt but has no numbered object folders")
                continue
            if not multi and obj_dirs:
                problems.add(f"{gdir}: has numbered object folders but all.txt does not mark it with '*'")
                continue
            nums = [int(d.name) for d in obj_dirs]
            dup = sorted({n for n in nums if nums.count(n) > 1})
            if dup:
                names = [d.name for d in obj_dirs if int(d.name) in dup]
                problems.add(f"{gdir}: object folders {names} name the same object id {dup[0]}")
                continue
            if obj_dirs and nums != list(range(1, len(nums) + 1)):
                gaps = sorted(set(range(1, max(nums) + 1)) - set(nums))
                problems.add(f"{gdir}: object folders must be numbered 1..{len(nums)}, found "
                             f"{[d.name for d in obj_dirs]}" + (f" (missing {gaps})" if gaps else ""))
                continue
            if not jdir.is_dir():
                problems.add(f"{jdir}: missing frame folder")
                continue
            obj_dirs = obj_dirs or [gdir]
            frames, masks = [], []
            for stem in stems:
                f = _find(jdir, stem)
                if f is None:
                    problems.add(f"{jdir}/{stem}.*: missing frame (listed in {list_file.name})")
                    continue
                per_obj = []
                for d in obj_dirs:
                    m = _find(d, stem)
                    if m is None:
                        problems.add(f"{d}/{stem}.*: missing mask (listed in {list_file.name})")
                    per_obj.append(m)
                frames.append(f)
                masks.append(per_obj)
            if frames:
                ids = [int(d.name) if d is not gdir else 1 for d in obj_dirs]
                recs.append(VideoRecord(seq, frames, [p.stem for p in frames],
                                        extra={"_masks": masks, "_ids": ids}))
        return recs

    def _read_mask(self, path: Path) -> np.ndarray:
        a = read_index_png(path, allow_binary_rgb=True)
        vals = np.flatnonzero(np.bincount(a.ravel(), minlength=256))
        if len(vals) > 2 or (len(vals) == 2 and vals[0] != 0):
            raise DataError(f"{path}: mask is not binary (values {vals[:6].tolist()})")
        return a > 0

    def _check_frame(self, rec: VideoRecord, t: int, problems: Problems,
                     level: str = "full") -> tuple[int, int] | None:
        if level != "header":
            return super()._check_frame(rec, t, problems, level)
        hdr = problems.guard(lambda: image_header(rec.frame_paths[t]))
        size = None if hdr is None else hdr[2]
        for p in rec.extra["_masks"][t]:
            mh = None if p is None else problems.guard(lambda: image_header(p))
            if mh is None:
                continue
            if mh[1] not in ("1", "L", "LA", "P", "RGB", "RGBA"):
                problems.add(f"{p}: not a 1- or 3-channel mask image (mode {mh[1]})")
            elif size is not None and mh[2] != size:
                problems.add(f"{p}: mask size {mh[2][0]}x{mh[2][1]} differs from its frame "
                             f"({size[0]}x{size[1]})")
        return size

    def _read_frame(self, rec: VideoRecord, t: int) -> Frame:
        rgb = read_image(rec.frame_paths[t])
        ids, ms = [], []
        for oid, p in zip(rec.extra["_ids"], rec.extra["_masks"][t]):
            if p is None:
                raise DataError(f"{rec.frame_paths[t]}: no mask of object {oid} for this frame")
            m = self._read_mask(p)
            if m.shape != rgb.shape[:2]:
                raise DataError(f"{p}: mask size {m.shape[0]}x{m.shape[1]} differs from its frame "
                                f"({rgb.shape[0]}x{rgb.shape[1]})")
            if m.any():
                ids.append(oid)
                ms.append(torch.from_numpy(m))
        fr = Frame(image=to_image_tensor(rgb), index=t, name=rec.frame_names[t])
        fr.obj_ids = torch.tensor(ids, dtype=torch.int64)
        fr.labels = torch.full((len(ids),), -1, dtype=torch.int64)
        fr.masks = torch.stack(ms) if ms else torch.zeros((0, *rgb.shape[:2]), dtype=torch.bool)
        return fr
