"""DAVIS-2016 and DAVIS-2017 readers (the official on-disk layouts).

DAVIS-2017::

    root/JPEGImages/<res>/<seq>/00000.jpg        res = 480p | Full-Resolution
    root/Annotations/<res>/<seq>/00000.png       palette PNG: 0 background, 1..N objects, 255 void
    root/ImageSets/2017/{train,val,test-dev,test-challenge}.txt   one sequence name per line

DAVIS-2016::

    root/JPEGImages/<res>/<seq>/00000.jpg        res = 480p | 1080p
    root/Annotations/<res>/<seq>/00000.png       8-bit grey, 0 / 255 (one object)
    root/ImageSets/<res>/{train,val}.txt         lines "/JPEGImages/480p/x/00000.jpg /Annotations/480p/x/00000.png"
                                                 (or ImageSets/2016/<split>.txt: sequence names)

These classes are THE readers of both formats: the training/test loaders, ``check_dataset``
(``check_root``), ``train``'s pre-flight check (``check_root(level="header")``) and ``eval.py``
(``gt_label_maps``) all go through them, so a file one tool rejects no other tool scores.

What is validated (a ``DataError`` naming the file, or a collected problem in check mode):

* layout: split file, frame and annotation folders, consecutive frame numbering, every frame
  annotated (test splits: the first), no annotation without its frame; DAVIS-2016 split lines
  must pair an image with the annotation of the SAME sequence and frame.
* files: missing, empty, unreadable, truncated, corrupt; annotation size = its frame's size.
* DAVIS-2017 annotations: palette (``P``) PNGs only (a grey ``L`` PNG would be read as other ids;
  a 0/255 grey mask saved with a grey palette would read as all void); opaque ``PA`` reads as ``P``.
* DAVIS-2016 annotations: grey (``L``, or ``LA`` with an opaque alpha, as the release's
  ``bear/00077.png``) with values 0/255 only; a palette PNG reads as the union of its non-zero
  labels (what the DAVIS-2016 toolkit, which reads PNGs as grey, does).
* DAVIS-2017 object ids (per sequence): the evaluated objects are ``1..max(first frame)`` (the
  official rule). An id in that range that is never annotated in any frame is an error: the
  official evaluator would score that phantom object J = F = 1. Ids above the first frame's
  count ("late objects", annotated only from a later frame) are fine for training (their
  reference is their first appearance) but the DAVIS-2017 protocol never scores them, and a
  method that segments them makes ``eval.py`` stop: ``late_objects="problem"`` reports them
  (``check_dataset`` on evaluation splits), ``"allow"`` (loaders) accepts them.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from vosbench.data.datasets.base import Problems, VideoDataset, VideoRecord, to_image_tensor
from vosbench.registry import DATASETS
from vosbench.structures import Frame
from vosbench.structures.masks import VOID_LABEL
from vosbench.utils.io import DataError, image_header, list_dir, open_label_image, read_image, read_text

_IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp")
LATE_OBJECT_POLICIES = ("allow", "problem")


def _read_png_with_mode(path: Path) -> tuple[np.ndarray, str, np.ndarray, list | None]:
    """(labels uint8[H, W], PIL mode, sorted label values present, palette) of an annotation PNG.

    ``DataError`` for a missing, corrupt, colour or other non-label image.
    """
    img = open_label_image(path)
    # PIL's C histogram of the decoded label image: the values present without another pass
    # over a numpy copy (np.unique sorts the whole map; this matters for the loader's speed)
    present = np.flatnonzero(np.asarray(img.histogram()[:256]))
    return np.asarray(img), img.mode, present, img.getpalette() if img.mode == "P" else None


def _is_grey_void_mask(present: np.ndarray, palette: list | None) -> bool:
    """True for a 0/255 grey mask saved as a palette PNG with a grey palette: 255 is DAVIS void,
    so every object pixel would silently become void. (The DAVIS palette maps 255 to
    (224, 224, 192), never to grey.)"""
    if palette is None or len(palette) < 768:
        return False
    nonzero = [int(v) for v in present if v]
    return nonzero == [255] and palette[765:768] == [255, 255, 255]


def _numbered_frames(folder: Path, problems: Problems, exts=(".jpg",)) -> list[Path]:
    """Sorted frame files of ``folder``; a gap in the 00000, 00001, ... numbering is a missing frame."""
    if not folder.is_dir():
        problems.add(f"{folder}: missing frame folder" if not folder.exists()
                     else f"{folder}: is a file, expected a frame folder")
        return []
    files = [p for p in list_dir(folder) if p.suffix.lower() in exts]
    if not files:
        problems.add(f"{folder}: no frames")
        return []
    stems = [p.stem for p in files]
    if all(s.isdigit() for s in stems):
        nums = [int(s) for s in stems]
        expected = set(range(nums[0], nums[0] + len(nums)))
        missing = sorted(expected - set(nums))
        if missing:
            problems.add(f"{folder}: missing frame {missing[0]:05d} (frames are not consecutively numbered)")
        elif len(set(nums)) != len(nums):
            problems.add(f"{folder}: two frame files with the same number "
                         f"({', '.join(p.name for p in files if nums.count(int(p.stem)) > 1)})")
    return files


class _DavisBase(VideoDataset):
    """Frame decoding and validation shared by both DAVIS versions."""

    binary: bool = False  # DAVIS-2016: grey 0/255 masks, one object
    label_modes: tuple[str, ...] = ("P",)  # annotation PNG modes a header check accepts

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        # Annotations/db_info.yml (DAVIS-2016 attributes and eval_t; the synthetic generator's
        # tags) -> VideoSample.meta["db_info"]; see vosbench/data/datasets/davis_info.py
        from vosbench.data.datasets.davis_info import load_db_info

        problems = kwargs.get("_problems") or Problems(collect=False)
        self.db_info = problems.guard(lambda: load_db_info(self.root)) if self.root.is_dir() else None
        for rec in self.videos if self.db_info is not None else ():
            rec.extra["db_info"] = self.db_info.meta_for(rec.video_id)

    # -- decoding ---------------------------------------------------------------------------
    def _read_frame(self, rec: VideoRecord, t: int) -> Frame:
        rgb = read_image(rec.frame_paths[t])
        ann: Path | None = rec.extra["_ann_paths"].get(t)
        fr = Frame(image=to_image_tensor(rgb), index=t, name=rec.frame_names[t])
        if ann is None:
            return fr
        lab, ids, values = self._read_label(ann)
        self._check_sizes(ann, lab.shape, rec.frame_paths[t], rgb.shape[:2])
        # numpy's uint8 comparisons are ~15x faster than torch's broadcast ``eq`` on one thread;
        # the results are new (writable) arrays, so torch can own them without a copy
        fr.obj_ids = torch.tensor(ids, dtype=torch.int64)
        fr.masks = torch.from_numpy(lab[None] == np.asarray(values, np.uint8).reshape(-1, 1, 1))
        fr.labels = torch.full((len(ids),), -1, dtype=torch.int64)
        fr.void = torch.from_numpy(lab == VOID_LABEL) if not self.binary else None
        return fr

    @staticmethod
    def _check_sizes(ann: Path, ann_hw, frame: Path, frame_hw) -> None:
        if tuple(ann_hw) != tuple(frame_hw):
            raise DataError(f"{ann}: annotation size {ann_hw[0]}x{ann_hw[1]} differs from its frame "
                            f"{frame.name} ({frame_hw[0]}x{frame_hw[1]})")

    def _read_labels_only(self, rec: VideoRecord, t: int):
        ann = rec.extra["_ann_paths"].get(t)
        if ann is None:
            return [], None
        return self._read_label(ann)[1], None

    def _read_label(self, path: Path) -> tuple[np.ndarray, list[int], list[int]]:
        """(label map uint8[H, W], object ids present, the label value of each id)."""
        raise NotImplementedError

    def gt_label_maps(self, video: str | int) -> Iterator[tuple[str, Path, np.ndarray]]:
        """The validated ground truth of one video as ``(frame name, annotation path, labels
        uint8[H, W])`` for every annotated frame, without decoding the JPEG frames (their headers
        give the sizes): what ``eval.py`` scores. DAVIS-2017: object ids, 255 = void; DAVIS-2016:
        0 / 255. Every check of the loader applies (modes, values, sizes, object ids)."""
        rec = self.videos[video] if isinstance(video, int) else self.videos[self.video_ids.index(video)]
        ids: dict[int, list[int]] = {}
        for t, name in enumerate(rec.frame_names):
            ann = rec.extra["_ann_paths"].get(t)
            if ann is None:
                continue
            lab, ids[t], _ = self._read_label(ann)
            self._check_sizes(ann, lab.shape, rec.frame_paths[t], image_header(rec.frame_paths[t])[2])
            yield name, ann, lab
        # the per-sequence id rules need every frame: checked once the last one was read, so a
        # caller consuming the generator never gets to a score for a sequence that breaks them
        self._validate_objects(rec, None, ids)

    # -- object ids of a sequence --------------------------------------------------------------
    def first_appearance(self, rec: VideoRecord) -> dict[int, int]:
        if self.single_object:
            return super().first_appearance(rec)
        if rec.video_id not in self._first_appearance:
            ids = self._ids_per_frame(rec)  # every label map is read once, for both uses
            self._validate_objects(rec, None, ids)
            seen: dict[int, int] = {}
            for t in sorted(ids):
                for i in ids[t]:
                    seen.setdefault(int(i), t)
            self._first_appearance[rec.video_id] = seen
        return self._first_appearance[rec.video_id]

    def _ids_per_frame(self, rec: VideoRecord) -> dict[int, list[int]]:
        """Frame index -> object ids annotated in it (every annotation decoded once, cached)."""
        key = ("ids", rec.video_id)
        if key not in self._cache:
            self._cache[key] = {t: self._read_labels_only(rec, t)[0]
                                for t in sorted(rec.extra["_ann_paths"])}
        return self._cache[key]

    def _validate_objects(self, rec: VideoRecord, problems: Problems | None,
                          ids_per_frame: dict[int, list[int]] | None = None) -> None:
        """DAVIS-2017 object-id rules (module docstring); raises, or records into ``problems``."""
        if self.single_object:
            return
        problems = problems or Problems(collect=False)
        ids = ids_per_frame if ids_per_frame is not None else self._ids_per_frame(rec)
        first_t = min(ids) if ids else None
        if first_t is None:
            return
        first = [i for i in ids[first_t] if i != VOID_LABEL]
        n = max(first) if first else 0
        anywhere = {i for v in ids.values() for i in v}
        phantom = [i for i in range(1, n + 1) if i not in anywhere]
        ann0 = rec.extra["_ann_paths"][first_t]
        if phantom:
            problems.add(f"{ann0}: object id(s) {_ranges(phantom)} are below the first frame's "
                         f"highest id {n} but never annotated in any frame of {rec.video_id}: the "
                         "DAVIS-2017 evaluator would score them as perfectly segmented phantom objects "
                         f"(ids must be 1..N; ids in this frame: {sorted(first)})")
        late = sorted(i for i in anywhere if i > n and i != VOID_LABEL)
        rec.extra["late_objects"] = late
        if late and self.late_objects == "problem":
            t_late = min(t for t, v in ids.items() if any(i > n for i in v))
            problems.add(f"{rec.extra['_ann_paths'][t_late]}: label(s) {_ranges(late)} above the first "
                         f"frame's object count {n} of {rec.video_id}: objects entering after the first "
                         "frame are not scored by the DAVIS-2017 protocol, and a prediction of them "
                         "stops eval.py (allowed in training splits: check_dataset --late-objects ok)")

    # -- full validation -------------------------------------------------------------------------
    def _check_frame(self, rec: VideoRecord, t: int, problems: Problems,
                     level: str = "full") -> tuple[int, int] | None:
        # image and annotation are checked separately, so one bad file does not hide the other
        ann = rec.extra["_ann_paths"].get(t)
        if level == "header":
            hdr = problems.guard(lambda: image_header(rec.frame_paths[t]))
            size = None if hdr is None else hdr[2]
            ahdr = None if ann is None else problems.guard(lambda: image_header(ann))
            if ahdr is not None:
                fmt, mode, asize = ahdr
                if fmt != "PNG":
                    problems.add(f"{ann}: annotation is a {fmt or 'non-image'} file, expected a PNG")
                elif mode not in self.label_modes:
                    problems.add(f"{ann}: {self._mode_message(mode)}")
                elif size is not None and asize != size:
                    problems.guard(lambda: self._check_sizes(ann, asize, rec.frame_paths[t], size))
            return size
        rgb = problems.guard(lambda: read_image(rec.frame_paths[t]))
        got = None if ann is None else problems.guard(lambda: self._read_label(ann))
        if got is not None:
            self._check_ids.setdefault(rec.video_id, {})[t] = got[1]
        if rgb is not None and got is not None:
            problems.guard(lambda: self._check_sizes(ann, got[0].shape, rec.frame_paths[t], rgb.shape[:2]))
        return None if rgb is None else (int(rgb.shape[0]), int(rgb.shape[1]))

    def _check_sequence(self, rec: VideoRecord, problems: Problems, level: str = "full") -> None:
        ids = self._check_ids.pop(rec.video_id, {})
        if level == "full" and len(ids) == len(rec.extra["_ann_paths"]):  # every label map read
            self._validate_objects(rec, problems, ids)

    def _mode_message(self, mode: str) -> str:
        return f"not an indexed (palette) PNG (mode {mode})"


def _ranges(ids: list[int]) -> str:
    """[3, 4, 5, 9] -> '3-5, 9'."""
    out, start = [], None
    for k, i in enumerate(ids):
        if start is None:
            start = i
        if k + 1 == len(ids) or ids[k + 1] != i + 1:
            out.append(str(start) if start == i else f"{start}-{i}")
            start = None
    return ", ".join(out)


@DATASETS.register("davis2017")
class DAVIS2017(_DavisBase):
    """DAVIS-2017 semi-supervised VOS (multi-object palette annotations).

    Args:
        root: the DAVIS folder.
        split: an ``ImageSets/<year>/<split>.txt`` name. ``test-dev`` / ``test-challenge`` carry
            first-frame annotations only: samples have references but no ground truth.
        resolution: ``480p`` or ``Full-Resolution``.
        resize_short: optional short-side size of the decoded frames (masks nearest).
        late_objects: ``allow`` (default) or ``problem``: objects first annotated after the first
            frame (see the module docstring).
        annotations: annotation folder name (``Annotations_unsupervised`` for the unsupervised
            task).
        imageset_year: ``ImageSets/<year>/`` (default 2017; 2019 holds the unsupervised test sets).
        sequences: read these sequence folders instead of a split file (``eval.py`` on a GT
            folder without ``ImageSets``).
    """

    metric = "davis2017"
    dataset_name = "davis2017"
    REFERENCE_ONLY_SPLITS = ("test-dev", "test-challenge")

    def __init__(self, *, root: str | Path, split: str = "val", resolution: str = "480p",
                 resize_short: int | None = None, late_objects: str = "allow",
                 annotations: str = "Annotations", imageset_year: str = "2017",
                 sequences: list[str] | None = None, _problems: Problems | None = None) -> None:
        if late_objects not in LATE_OBJECT_POLICIES:
            raise DataError(f"late_objects must be one of {LATE_OBJECT_POLICIES}, got {late_objects!r}")
        self.resolution = resolution
        self.late_objects = late_objects
        self.annotations = annotations
        self.imageset_year = str(imageset_year)
        self.sequences = list(sequences) if sequences is not None else None
        super().__init__(root=root, split=split, resize_short=resize_short, _problems=_problems)

    def _read_label(self, path: Path) -> tuple[np.ndarray, list[int], list[int]]:
        lab, mode, present, palette = _read_png_with_mode(path)
        if mode != "P":
            # a grey (DAVIS-2016 style 0/255) or colour PNG would silently read as void/garbage ids
            raise DataError(f"{path}: DAVIS-2017 annotations must be palette (mode P) PNGs, got mode {mode}")
        if _is_grey_void_mask(present, palette):
            raise DataError(f"{path}: a 0/255 grey mask saved as a palette PNG (grey palette): 255 is "
                            "DAVIS-2017 void, so every object pixel would be ignored; write object ids "
                            "1..N with the DAVIS palette (vosbench.utils.io.write_index_png)")
        ids = [int(v) for v in present if v not in (0, VOID_LABEL)]
        return lab, ids, ids

    def _mode_message(self, mode: str) -> str:
        return f"DAVIS-2017 annotations must be palette (mode P) PNGs, got mode {mode}"

    def _index(self, problems: Problems) -> list[VideoRecord]:
        ann_root = self.root / self.annotations / self.resolution
        if self.sequences is not None:
            seqs = list(self.sequences)
            list_name = str(ann_root)
        else:
            list_file = self.root / "ImageSets" / self.imageset_year / f"{self.split}.txt"
            if not list_file.is_file():
                problems.add(f"{list_file}: missing split file")
                return []
            seqs = [ln.strip() for ln in read_text(list_file).splitlines() if ln.strip()]
            list_name = list_file.name
            dup = sorted({s for s in seqs if seqs.count(s) > 1})
            if dup:
                problems.add(f"{list_file}: sequence(s) listed twice: {dup[:5]}")
                seqs = list(dict.fromkeys(seqs))
        ref_only = self.split in self.REFERENCE_ONLY_SPLITS
        recs = []
        for seq in seqs:
            jdir = self.root / "JPEGImages" / self.resolution / seq
            adir = ann_root / seq
            frames = _numbered_frames(jdir, problems)
            if not frames:
                continue
            if not adir.is_dir():
                problems.add(f"{adir}: missing annotation folder (sequence {seq} of {list_name})")
                continue
            anns = problems.guard(lambda: [p for p in list_dir(adir) if p.suffix.lower() == ".png"])
            if anns is None:
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
        split: ``train`` or ``val``: ``ImageSets/<resolution>/<split>.txt`` (image/annotation
            pairs), else ``ImageSets/2016/<split>.txt`` (sequence names).
        resolution: ``480p`` or ``1080p``.
        resize_short: optional short-side size of the decoded frames.
        sequences: read these sequence folders instead of a split file.
    """

    metric = "davis2016"
    dataset_name = "davis2016"
    binary = True
    single_object = True
    label_modes = ("L", "LA", "P")

    def __init__(self, *, root: str | Path, split: str = "val", resolution: str = "480p",
                 resize_short: int | None = None, sequences: list[str] | None = None,
                 _problems: Problems | None = None) -> None:
        self.resolution = resolution
        self.sequences = list(sequences) if sequences is not None else None
        super().__init__(root=root, split=split, resize_short=resize_short, _problems=_problems)

    def _read_label(self, path: Path) -> tuple[np.ndarray, list[int], list[int]]:
        lab, mode, present, _ = _read_png_with_mode(path)  # L (opaque LA included) or P
        if mode == "P":
            # a palette (DAVIS-2017 style) file: the union of its non-zero labels is the object,
            # as the DAVIS-2016 toolkit reading it as grey sees it
            if not present[present > 0].size:
                return lab, [], []
            return np.where(lab != 0, np.uint8(255), np.uint8(0)), [1], [255]
        odd = [int(v) for v in present if v not in (0, 255)]
        if odd:
            raise DataError(f"{path}: DAVIS-2016 masks must be 0/255, found values {odd[:5]}")
        # one object, id 1, stored as 255; the map is kept as is (no relabelling copy)
        return (lab, [1], [255]) if 255 in present else (lab, [], [])

    def _mode_message(self, mode: str) -> str:
        return f"not an 8-bit grey (or palette) PNG (mode {mode})"

    def _pairs_from_list(self, list_file: Path, problems: Problems) -> dict[str, list[tuple[Path, Path]]]:
        """``ImageSets/<res>/<split>.txt`` -> sequence -> [(image, annotation)], every line checked:
        two paths, the image under ``JPEGImages/<res>/<seq>/`` and the annotation of the SAME
        sequence and frame under ``Annotations/<res>/<seq>/`` (a line pairing one sequence's image
        with another's annotation would make the loader and the evaluator disagree)."""
        by_seq: dict[str, list[tuple[Path, Path]]] = {}
        seen: set[Path] = set()
        for n, line in enumerate(read_text(list_file).splitlines(), start=1):
            if not line.strip():
                continue
            where = f"{list_file}:{n}"
            parts = line.split()
            if len(parts) != 2:
                problems.add(f"{where}: expected 'image annotation' paths, got {line.strip()!r}")
                continue
            rel_img, rel_ann = (Path(p.lstrip("/")) for p in parts)
            ok_img = rel_img.parts[:2] == ("JPEGImages", self.resolution) and len(rel_img.parts) == 4
            ok_ann = rel_ann.parts[:2] == ("Annotations", self.resolution) and len(rel_ann.parts) == 4
            if not (ok_img and ok_ann):
                problems.add(f"{where}: expected '/JPEGImages/{self.resolution}/<seq>/<frame>.jpg "
                             f"/Annotations/{self.resolution}/<seq>/<frame>.png', got {line.strip()!r}")
                continue
            if (rel_img.parts[2], rel_img.stem) != (rel_ann.parts[2], rel_ann.stem):
                problems.add(f"{where}: image {'/'.join(rel_img.parts[2:])} is paired with the annotation "
                             f"{'/'.join(rel_ann.parts[2:])} of another "
                             f"{'sequence' if rel_img.parts[2] != rel_ann.parts[2] else 'frame'}")
                continue
            img, ann = self.root / rel_img, self.root / rel_ann
            if img in seen:
                problems.add(f"{where}: frame {'/'.join(rel_img.parts[2:])} listed twice")
                continue
            seen.add(img)
            by_seq.setdefault(rel_img.parts[2], []).append((img, ann))
        return by_seq

    def _index(self, problems: Problems) -> list[VideoRecord]:
        jroot = self.root / "JPEGImages" / self.resolution
        aroot = self.root / "Annotations" / self.resolution
        pairs_file = self.root / "ImageSets" / self.resolution / f"{self.split}.txt"
        names_file = self.root / "ImageSets" / "2016" / f"{self.split}.txt"
        if self.sequences is None and pairs_file.is_file():
            by_seq = self._pairs_from_list(pairs_file, problems)
            list_name = pairs_file.name
        else:
            if self.sequences is not None:
                seqs, list_name = list(self.sequences), str(aroot)
            elif names_file.is_file():
                seqs = [ln.strip() for ln in read_text(names_file).splitlines() if ln.strip()]
                list_name = names_file.name
            else:
                problems.add(f"{pairs_file}: missing split file")
                return []
            by_seq = {}
            for seq in seqs:
                frames = _numbered_frames(jroot / seq, problems)
                by_seq[seq] = [(f, aroot / seq / f"{f.stem}.png") for f in frames]
                extra = sorted({p.stem for p in problems.guard(lambda: list_dir(aroot / seq)) or []
                                if p.suffix.lower() == ".png"} - {f.stem for f in frames})
                if frames and extra:
                    problems.add(f"{aroot / seq / (extra[0] + '.png')}: annotation has no frame "
                                 f"{extra[0]}.jpg in {jroot / seq}")
        recs = []
        for seq, pairs in by_seq.items():
            frames, ann_paths = [], {}
            for img, ann in pairs:
                if not img.is_file():
                    problems.add(f"{img}: missing frame (listed in {list_name})")
                    continue
                if not ann.is_file():
                    problems.add(f"{ann}: missing annotation (listed in {list_name})")
                    continue
                ann_paths[len(frames)] = ann
                frames.append(img)
            if self.sequences is None and pairs_file.is_file() and frames:
                on_disk = problems.guard(lambda: [p for p in list_dir(jroot / seq) if p.suffix == ".jpg"])
                if on_disk is not None and len(on_disk) != len(pairs):
                    problems.add(f"{jroot / seq}: {len(on_disk)} frames on disk but {len(pairs)} "
                                 f"listed in {list_name}")
                stems = [p.stem for p in frames]
                if all(s.isdigit() for s in stems) and [int(s) for s in stems] != \
                        list(range(int(stems[0]), int(stems[0]) + len(stems))):
                    problems.add(f"{pairs_file}: frames of {seq} are not listed in consecutive order "
                                 f"({', '.join(stems[:6])}{' ...' if len(stems) > 6 else ''})")
            if frames:
                recs.append(VideoRecord(seq, frames, [p.stem for p in frames],
                                        extra={"_ann_paths": ann_paths}))
        return recs
