"""Shared machinery of the video dataset loaders.

A loader indexes its folder once at construction (file lists, counts, JSON structure) and raises
``DataError`` on the first structural problem. Frames are decoded lazily when a sample's frame
is indexed; decoding validates sizes and label values. ``check()`` walks the whole dataset and
returns every problem instead of stopping at the first one (``tools/check_dataset.py``), either
decoding every file (``level="full"``) or reading only the headers (``level="header"``: every
file exists, is a complete image of the right kind and size; what ``train`` runs before it builds
the model). ``check_config`` does the same from a dataset config (registered name + kwargs).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterator, Sequence

import cv2
import numpy as np
import torch

from vosbench.structures import Frame, LazyFrames, ObjectMasks, VideoSample
from vosbench.structures.masks import resize_masks
from vosbench.utils.io import DataError, image_header, read_image


class Problems:
    """Collects ``DataError`` messages in check mode, raises them otherwise."""

    def __init__(self, collect: bool) -> None:
        self.collect = collect
        self.items: list[str] = []

    def add(self, msg: str) -> None:
        if not self.collect:
            raise DataError(msg)
        self.items.append(msg)

    def guard(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn``; in check mode record a ``DataError`` and return None."""
        try:
            return fn()
        except DataError as e:
            if not self.collect:
                raise
            self.items.append(str(e))
            return None


@dataclass
class VideoRecord:
    """What the index knows of one video before decoding anything."""

    video_id: str
    frame_paths: list[Path]
    frame_names: list[str]
    size: tuple[int, int] | None = None  # (H, W) when the format states it (YouTube-VIS)
    extra: dict = field(default_factory=dict)


def scaled_size(size: tuple[int, int], resize_short: int | None) -> tuple[int, int]:
    """(H, W) after scaling the short side to ``resize_short`` (None: unchanged)."""
    if not resize_short:
        return size
    h, w = size
    s = resize_short / min(h, w)
    return max(1, round(h * s)), max(1, round(w * s))


def to_image_tensor(rgb: np.ndarray, size: tuple[int, int] | None = None) -> torch.Tensor:
    """uint8[H, W, 3] -> float32[3, h, w] in 0-1, resized (area/linear) to ``size`` if given."""
    if size is not None and tuple(rgb.shape[:2]) != tuple(size):
        interp = cv2.INTER_AREA if size[0] < rgb.shape[0] else cv2.INTER_LINEAR
        rgb = cv2.resize(rgb, (size[1], size[0]), interpolation=interp)
    rgb = np.ascontiguousarray(rgb)
    if rgb.flags.writeable:
        return torch.from_numpy(rgb).permute(2, 0, 1).float().div_(255.0)
    # PIL-backed arrays are read-only. ``.float()`` allocates new memory, so the read-only
    # buffer is never written: silence torch's warning instead of paying a full-frame copy.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        src = torch.from_numpy(rgb)
    return src.permute(2, 0, 1).float().div_(255.0)


class VideoDataset(Sequence[VideoSample]):
    """Base class: a sequence of lazily decoded ``VideoSample``s.

    Subclasses implement ``_index(problems) -> list[VideoRecord]`` and
    ``_read_frame(record, t) -> (rgb uint8[H, W, 3], Frame fields dict)``, and may override
    ``_reference``.

    Attributes:
        task: "vos" or "vis".
        metric: the METRICS name that evaluates this dataset.
        categories: category id -> name (VIS).
    """

    task: ClassVar[str] = "vos"
    metric: ClassVar[str] = "davis2017"
    dataset_name: ClassVar[str] = "dataset"
    #: every video has exactly one object (id 1): the first-appearance scan stops at it
    single_object: ClassVar[bool] = False

    def __init__(self, *, root: str | Path, split: str, resize_short: int | None = None,
                 _problems: Problems | None = None) -> None:
        # ``_problems`` (private) switches to check mode: problems are collected, not raised.
        self.root = Path(root).expanduser()
        self.split = split
        self.resize_short = resize_short
        self.categories: dict[int, str] = {}
        self._first_appearance: dict[str, dict[int, int]] = {}
        self._cache: dict = {}  # per-video facts decoded once (DAVIS object ids per frame)
        self._check_ids: dict = {}  # check mode: what ``_check_frame`` saw, for ``_check_sequence``
        problems = _problems or Problems(collect=False)
        if not self.root.is_dir():
            problems.add(f"{self.root}: dataset folder does not exist")
            self.videos: list[VideoRecord] = []
            return
        self.videos = problems.guard(lambda: self._index(problems)) or []

    # -- to implement -------------------------------------------------------------------
    def _index(self, problems: Problems) -> list[VideoRecord]:
        raise NotImplementedError

    def _read_frame(self, rec: VideoRecord, t: int) -> Frame:
        """Decode frame ``t`` at its ORIGINAL size (validated)."""
        raise NotImplementedError

    def _read_labels_only(self, rec: VideoRecord, t: int) -> tuple[list[int], Any]:
        """(object ids annotated in frame t, anything needed to build their masks)."""
        fr = self._read_frame(rec, t)
        return ([] if fr.masks is None else fr.obj_ids.tolist()), fr

    # -- Sequence API --------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if isinstance(i, str):
            i = self.video_ids.index(i)
        return self._sample(self.videos[i])

    def __iter__(self) -> Iterator[VideoSample]:
        for rec in self.videos:
            yield self._sample(rec)

    @property
    def video_ids(self) -> list[str]:
        return [v.video_id for v in self.videos]

    # -- decoding ----------------------------------------------------------------------------
    def _orig_size(self, rec: VideoRecord) -> tuple[int, int]:
        if rec.size is None:
            rgb = read_image(rec.frame_paths[0])
            rec.size = (int(rgb.shape[0]), int(rgb.shape[1]))
        return rec.size

    @property
    def hides_gt(self) -> bool:
        """True for splits whose annotations are references only (no ground truth to score)."""
        return False

    def _frame(self, rec: VideoRecord, t: int) -> Frame:
        fr = self._frame_with_gt(rec, t)
        if self.hides_gt:
            fr.masks, fr.void = None, None
            fr.obj_ids = fr.labels = torch.zeros(0, dtype=torch.int64)
        return fr

    def _frame_with_gt(self, rec: VideoRecord, t: int) -> Frame:
        fr = self._read_frame(rec, t)
        H, W = self._orig_size(rec)
        if fr.size != (H, W):
            raise DataError(f"{rec.frame_paths[t]}: frame size {fr.size[0]}x{fr.size[1]} differs from "
                            f"the video's {H}x{W}")
        return self._resize(fr, scaled_size((H, W), self.resize_short))

    @staticmethod
    def _resize(fr: Frame, size: tuple[int, int]) -> Frame:
        if fr.size == tuple(size):
            return fr
        rgb = (fr.image.permute(1, 2, 0).numpy() * 255.0 + 0.5).astype(np.uint8)
        fr.image = to_image_tensor(rgb, size)
        if fr.masks is not None:
            fr.masks = resize_masks(fr.masks, size)
        if fr.void is not None:
            fr.void = resize_masks(fr.void, size)
        return fr

    def first_appearance(self, rec: VideoRecord) -> dict[int, int]:
        """Object id -> index of the first frame where it is annotated (non-empty)."""
        if rec.video_id not in self._first_appearance:
            seen: dict[int, int] = {}
            for t in range(len(rec.frame_paths)):
                ids, _ = self._read_labels_only(rec, t)
                for i in ids:
                    seen.setdefault(int(i), t)
                if seen and self.single_object:
                    break  # one object per video: its first appearance is found, skip the rest
            self._first_appearance[rec.video_id] = seen
        return self._first_appearance[rec.video_id]

    def _reference(self, rec: VideoRecord) -> dict[int, ObjectMasks]:
        """Each object's first-appearance mask (semi-supervised VOS input)."""
        if self.task != "vos":
            return {}
        by_frame: dict[int, list[int]] = {}
        for oid, t in self.first_appearance(rec).items():
            by_frame.setdefault(t, []).append(oid)
        ref = {}
        for t in sorted(by_frame):
            fr = self._frame_with_gt(rec, t)
            assert fr.masks is not None
            rows = [fr.obj_ids.tolist().index(i) for i in sorted(by_frame[t])]
            ref[t] = ObjectMasks(fr.obj_ids[rows].clone(), fr.masks[rows].clone(), fr.labels[rows].clone())
        return ref

    def _sample(self, rec: VideoRecord) -> VideoSample:
        return VideoSample(
            video_id=rec.video_id,
            frames=LazyFrames(len(rec.frame_paths), lambda t, rec=rec: self._frame(rec, t)),
            task=self.task,  # type: ignore[arg-type]
            orig_size=self._orig_size(rec),
            reference=self._reference(rec),
            frame_names=list(rec.frame_names),
            categories=dict(self.categories),
            meta={"dataset": self.dataset_name, "split": self.split, "root": str(self.root),
                  "frame_paths": [str(p) for p in rec.frame_paths],
                  **{k: v for k, v in rec.extra.items() if not k.startswith("_")}},
        )

    def original_size(self) -> "VideoDataset":
        """This dataset without ``resize_short``: the ground truth at its original size, which
        is what every evaluation scores (predictions are given at the original size)."""
        if not self.resize_short:
            return self
        import copy

        twin = copy.copy(self)
        twin.resize_short = None
        twin._first_appearance, twin._cache = {}, {}
        return twin

    # -- full validation -------------------------------------------------------------------------
    @classmethod
    def check_root(cls, *, level: str = "full", **kwargs: Any) -> list[str]:
        """Every problem of a dataset folder (structure, then every file), in order.

        Takes the constructor's keyword arguments; never raises ``DataError``.

        Args:
            level: ``full`` decodes every frame and annotation; ``header`` reads headers only.
        """
        problems = Problems(collect=True)
        self = cls(**kwargs, _problems=problems)
        self.check(problems, level=level)
        return problems.items

    def check(self, problems: Problems | None = None, *, level: str = "full") -> list[str]:
        """Every problem of this dataset's files (``level`` as in ``check_root``)."""
        if level not in CHECK_LEVELS:
            raise ValueError(f"check level must be one of {CHECK_LEVELS}, got {level!r}")
        problems = problems or Problems(collect=True)
        for rec in self.videos:
            size_ref: tuple[int, int] | None = rec.size
            for t in range(len(rec.frame_paths)):
                size = self._check_frame(rec, t, problems, level)
                if size is None:
                    continue
                size_ref = size_ref or size
                if size != size_ref:
                    problems.add(f"{rec.frame_paths[t]}: frame size {size[0]}x{size[1]} differs "
                                 f"from the video's {size_ref[0]}x{size_ref[1]}")
            self._check_sequence(rec, problems, level)
        return problems.items

    def _check_frame(self, rec: VideoRecord, t: int, problems: Problems,
                     level: str = "full") -> tuple[int, int] | None:
        """Check frame ``t`` recording its problems; returns its (H, W) or None."""
        if level == "header":
            hdr = problems.guard(lambda: image_header(rec.frame_paths[t]))
            return None if hdr is None else hdr[2]
        fr = problems.guard(lambda: self._read_frame(rec, t))
        return None if fr is None else fr.size

    def _check_sequence(self, rec: VideoRecord, problems: Problems, level: str = "full") -> None:
        """Per-video rules that need every frame (DAVIS-2017 object ids); default none."""


CHECK_LEVELS = ("header", "full")


def check_config(cfg: Any, *, level: str = "full", **overrides: Any) -> tuple["VideoDataset | None", list[str]]:
    """Build the dataset of a config in check mode and list every problem of its files.

    Args:
        cfg: a dataset config (``name`` + constructor kwargs), e.g. ``cfg.dataset``.
        level: ``full`` or ``header`` (see ``VideoDataset.check``).
        overrides: constructor kwargs that win over ``cfg`` (``split=...``).
    Returns:
        ``(dataset or None, problems)``: the dataset (usable when there is no problem) and every
        problem found, structure first.
    """
    from vosbench.config import build
    from vosbench.registry import DATASETS

    problems = Problems(collect=True)
    try:
        ds = build(cfg, DATASETS, **overrides, _problems=problems)
    except DataError as e:  # a problem a registered builder raises before the loader runs
        return None, [*problems.items, str(e)]
    ds.check(problems, level=level)
    return ds, problems.items
