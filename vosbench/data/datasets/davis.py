"""DAVIS-2016 and DAVIS-2017 loaders (the official on-disk layouts).

DAVIS-2017::

    root/JPEGImages/<res>/<seq>/00000.jpg        res = 480p | Full-Resolution
    root/Annotations/<res>/<seq>/00000.png       palette PNG: 0 background, 1..N objects, 255 void
    root/ImageSets/2017/{train,val,test-dev,test-challenge}.txt   one sequence name per line

DAVIS-2016::

    root/JPEGImages/<res>/<seq>/00000.jpg        res = 480p | 1080p
    root/Annotations/<res>/<seq>/00000.png       8-bit grey, 0 / 255 (one object)
    root/ImageSets/<res>/{train,val}.txt         lines "/JPEGImages/480p/x/00000.jpg /Annotations/480p/x/00000.png"
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from vosbench.data.datasets.base import Problems, VideoDataset, VideoRecord, to_image_tensor
from vosbench.registry import DATASETS
from vosbench.structures import Frame
from vosbench.structures.masks import VOID_LABEL
from vosbench.utils.io import DataError, open_label_image, read_image

_IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp")


def _read_png_with_mode(path: Path) -> tuple[np.ndarray, str, np.ndarray]:
    """(labels uint8[H, W], PIL mode, sorted label values present) of an annotation PNG.

    ``DataError`` for a missing, corrupt, colour or other non-label image.
    """
    img = open_label_image(path)
    # PIL's C histogram of the decoded label image: the values present without another pass
    # over a numpy copy (np.unique sorts the whole map; this matters for the loader's speed)
    present = np.flatnonzero(np.asarray(img.histogram()[:256]))
    return np.asarray(img), img.mode, present


def _numbered_frames(folder: Path, problems: Problems, exts=(".jpg",)) -> list[Path]:
    """Sorted frame files of ``folder``; a gap in the 00000, 00001, ... numbering is a missing frame."""
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in exts) if folder.is_dir() else []
    if not folder.is_dir():
        problems.add(f"{folder}: missing frame folder")
        return []
    if not files:
        problems.add(f"{folder}: no frames")
        return []
    stems = [p.stem for p in files]
    if all(s.isdigit() for s in stems):
        nums = [int(s) for s in stems]
        expected = set(range(nums[0], nums[0] + len(nums)))
        missing = sorted(expected - set(nums))
        extra = [n for n in nums if n not in expected]
        if missing or extra:
            gap = missing[0] if missing else None
            problems.add(f"{folder}: missing frame {gap:05d} (frames are not consecutively numbered)"
                         if gap is not None else f"{folder}: frame numbering has gaps")
    return files


class _DavisBase(VideoDataset):
    """Frame decoding shared by both DAVIS versions."""

    binary: bool = False  # DAVIS-2016: grey 0/255 masks, one object

    def _read_frame(self, rec: VideoRecord, t: int) -> Frame:
        rgb = read_image(rec.frame_paths[t])
        ann: Path | None = rec.extra["_ann_paths"].get(t)
        fr = Frame(image=to_image_tensor(rgb), index=t, name=rec.frame_names[t])
        if ann is None:
            return fr
        lab, ids, values = self._read_label(ann)
        if lab.shape != rgb.shape[:2]:
            raise DataError(f"{ann}: annotation size {lab.shape[0]}x{lab.shape[1]} differs from its frame "
                            f"{rec.frame_paths[t].name} ({rgb.shape[0]}x{rgb.shape[1]})")
        # numpy's uint8 comparisons are ~15x faster than torch's broadcast ``eq`` on one thread;
        # the results are new (writable) arrays, so torch can own them without a copy
        fr.obj_ids = torch.tensor(ids, dtype=torch.int64)
        fr.masks = torch.from_numpy(lab[None] == np.asarray(values, np.uint8).reshape(-1, 1, 1))
        fr.labels = torch.full((len(ids),), -1, dtype=torch.int64)
        fr.void = torch.from_numpy(lab == VOID_LABEL) if not self.binary else None
        return fr

    def _check_frame(self, rec: VideoRecord, t: int, problems: Problems) -> tuple[int, int] | None:
        # image and annotation are checked separately, so one bad file does not hide the other
        rgb = problems.guard(lambda: read_image(rec.frame_paths[t]))
        ann = rec.extra["_ann_paths"].get(t)
        got = None if ann is None else problems.guard(lambda: self._read_label(ann))
        lab = None if got is None else got[0]
        if rgb is not None and lab is not None and lab.shape != rgb.shape[:2]:
            problems.add(f"{ann}: annotation size {lab.shape[0]}x{lab.shape[1]} differs from its frame "
                         f"{rec.frame_paths[t].name} ({rgb.shape[0]}x{rgb.shape[1]})")
        return None if rgb is None else (int(rgb.shape[0]), int(rgb.shape[1]))

    def _read_labels_only(self, rec: VideoRecord, t: int):
        ann = rec.extra["_ann_paths"].get(t)
        if ann is None:
            return [], None
        return self._read_label(ann)[1], None

    def _read_label(self, path: Path) -> tuple[np.ndarray, list[int], list[int]]:
        """(label map uint8[H, W], object ids present, the label value of each id)."""
        raise NotImplementedError


@DATASETS.register("davis2017")
class DAVIS2017(_DavisBase):
    """DAVIS-2017 semi-supervised VOS (multi-object palette annotations).

    Args:
        root: the DAVIS folder.
        split: an ``ImageSets/2017/<split>.txt`` name. ``test-dev`` / ``test-challenge`` carry
            first-frame annotations only: samples have references but no ground truth.
        resolution: ``480p`` or ``Full-Resolution``.
        resize_short: optional short-side size of the decoded frames (masks nearest).
    """

    metric = "davis2017"
    dataset_name = "davis2017"
    REFERENCE_ONLY_SPLITS = ("test-dev", "test-challenge")

    def __init__(self, *, root: str | Path, split: str = "val", resolution: str = "480p",
                 resize_short: int | None = None, _problems: Problems | None = None) -> None:
        self.resolution = resolution
        super().__init__(root=root, split=split, resize_short=resize_short, _problems=_problems)

    def _read_label(self, path: Path) -> tuple[np.ndarray, list[int], list[int]]:
        lab, mode, present = _read_png_with_mode(path)
        if mode != "P":
            # a grey (DAVIS-2016 style 0/255) or colour PNG would silently read as void/garbage ids
            raise DataError(f"{path}: DAVIS-2017 annotations must be palette (mode P) PNGs, got mode {mode}")
        ids = [int(v) for v in present if v not in (0, VOID_LABEL)]
        return lab, ids, ids

    def _index(self, problems: Problems) -> list[VideoRecord]:
        list_file = self.root / "ImageSets" / "2017" / f"{self.split}.txt"
        if not list_file.is_file():
            problems.add(f"{list_file}: missing split file")
            return []
        seqs = [ln.strip() for ln in list_file.read_text().splitlines() if ln.strip()]
        ref_only = self.split in self.REFERENCE_ONLY_SPLITS
        recs = []
        for seq in seqs:
            jdir = self.root / "JPEGImages" / self.resolution / seq
            adir = self.root / "Annotations" / self.resolution / seq
            frames = _numbered_frames(jdir, problems)
            if not frames:
                continue
            anns = sorted(adir.glob("*.png")) if adir.is_dir() else []
            if not adir.is_dir():
                problems.add(f"{adir}: missing annotation folder")
                continue
            pos = {p.stem: i for i, p in enumerate(frames)}
            ann_paths: dict[int, Path] = {}
            for a in anns:
                if a.stem not in pos:
                    problems.add(f"{a}: annotation has no frame {a.stem}.jpg in {jdir}")
                    continue
                ann_paths[pos[a.stem]] = a
            if not ref_only:
                for i, f in enumerate(frames):
                    if i not in ann_paths:
                        problems.add(f"{adir / (f.stem + '.png')}: missing annotation "
                                     f"({len(anns)} annotations for {len(frames)} frames)")
                        break
            elif 0 not in ann_paths:
                problems.add(f"{adir}: {self.split} needs the first frame's annotation")
            recs.append(VideoRecord(seq, frames, [p.stem for p in frames],
                                    extra={"_ann_paths": ann_paths}))
        return recs

    @property
    def hides_gt(self) -> bool:
        # test splits: the first-frame masks are references, not ground truth to score
        return self.split in self.REFERENCE_ONLY_SPLITS


@DATASETS.register("davis2016")
class DAVIS2016(_DavisBase):
    """DAVIS-2016 single-object VOS (grey 0/255 annotations, object id 1).

    Args:
        root: the DAVIS folder.
        split: ``train`` or ``val`` (``ImageSets/<resolution>/<split>.txt``).
        resolution: ``480p`` or ``1080p``.
        resize_short: optional short-side size of the decoded frames.
    """

    metric = "davis2016"
    dataset_name = "davis2016"
    binary = True
    single_object = True

    def __init__(self, *, root: str | Path, split: str = "val", resolution: str = "480p",
                 resize_short: int | None = None, _problems: Problems | None = None) -> None:
        self.resolution = resolution
        super().__init__(root=root, split=split, resize_short=resize_short, _problems=_problems)

    def _read_label(self, path: Path) -> tuple[np.ndarray, list[int], list[int]]:
        lab, _, present = _read_png_with_mode(path)  # grey (L) or palette with values 0/255
        odd = [int(v) for v in present if v not in (0, 255)]
        if odd:
            raise DataError(f"{path}: DAVIS-2016 masks must be 0/255, found values {odd[:5]}")
        # one object, id 1, stored as 255; the map is kept as is (no relabelling copy)
        return (lab, [1], [255]) if 255 in present else (lab, [], [])

    def _index(self, problems: Problems) -> list[VideoRecord]:
        list_file = self.root / "ImageSets" / self.resolution / f"{self.split}.txt"
        if not list_file.is_file():
            problems.add(f"{list_file}: missing split file")
            return []
        by_seq: dict[str, list[tuple[Path, Path]]] = {}
        for n, line in enumerate(list_file.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) != 2:
                problems.add(f"{list_file}:{n}: expected 'image annotation' paths, got {line.strip()!r}")
                continue
            img, ann = (self.root / p.lstrip("/") for p in parts)
            by_seq.setdefault(img.parent.name, []).append((img, ann))
        recs = []
        for seq, pairs in by_seq.items():
            frames, ann_paths = [], {}
            for img, ann in pairs:
                if not img.is_file():
                    problems.add(f"{img}: missing frame (listed in {list_file.name})")
                    continue
                if not ann.is_file():
                    problems.add(f"{ann}: missing annotation (listed in {list_file.name})")
                    continue
                ann_paths[len(frames)] = ann
                frames.append(img)
            on_disk = sorted((self.root / "JPEGImages" / self.resolution / seq).glob("*.jpg"))
            if frames and len(on_disk) != len(pairs):
                problems.add(f"{self.root / 'JPEGImages' / self.resolution / seq}: {len(on_disk)} frames on "
                             f"disk but {len(pairs)} listed in {list_file.name}")
            if frames:
                recs.append(VideoRecord(seq, frames, [p.stem for p in frames],
                                        extra={"_ann_paths": ann_paths}))
        return recs
