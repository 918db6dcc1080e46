"""The only output format of a method, for VOS and VIS alike."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Iterator

import torch
from torch import Tensor


@dataclass
class FramePrediction:
    """One frame of a prediction.

    Attributes:
        index: frame index in the video.
        masks: Tensor[N, H, W] bool at the original resolution, row ``n`` belongs to
            ``VideoPrediction.obj_ids[n]`` (all False where the object is absent).
        scores: optional Tensor[N] float per-frame confidences (VIS methods may fill it).
    """

    index: int
    masks: Tensor
    scores: Tensor | None = None


@dataclass
class VideoPrediction:
    """A method's result on one video, streamed frame by frame.

    Attributes:
        video_id: the ``VideoSample.video_id`` it answers.
        obj_ids: Tensor[N] int64 predicted object / instance ids (for VOS: the reference ids).
        scores: Tensor[N] float video-level confidences (1.0 for VOS).
        labels: Tensor[N] int64 categories (-1 for VOS).
        frames: iterable of ``FramePrediction`` in frame order; a generator for streaming
            methods, so memory stays bounded by one frame. Consume it once.
        orig_size: (H, W) every frame's masks must have.
        num_frames: number of frames the iterable yields.
        meta: extras (timings, per-frame model seconds, ...).
    """

    video_id: str
    obj_ids: Tensor
    scores: Tensor
    labels: Tensor
    frames: Iterable[FramePrediction]
    orig_size: tuple[int, int]
    num_frames: int
    meta: dict = field(default_factory=dict)

    def validate(self) -> None:
        """Check the video-level fields (the frames are checked as they stream, see ``iter_frames``)."""
        n = self.obj_ids.shape[0] if self.obj_ids.dim() == 1 else -1
        problems = []
        if self.obj_ids.dim() != 1 or self.obj_ids.dtype != torch.int64:
            problems.append(f"obj_ids must be int64[N], got {self.obj_ids.dtype}{tuple(self.obj_ids.shape)}")
        if tuple(self.scores.shape) != (n,) or not self.scores.is_floating_point():
            problems.append(f"scores must be float[{n}], got {self.scores.dtype}{tuple(self.scores.shape)}")
        if tuple(self.labels.shape) != (n,) or self.labels.dtype != torch.int64:
            problems.append(f"labels must be int64[{n}], got {self.labels.dtype}{tuple(self.labels.shape)}")
        if len(set(self.obj_ids.tolist())) != n:
            problems.append(f"obj_ids are not unique: {self.obj_ids.tolist()}")
        if problems:
            raise ValueError(f"invalid VideoPrediction for {self.video_id!r}: " + "; ".join(problems))

    def check_frame(self, fp: FramePrediction, expected_index: int | None = None) -> None:
        """Raise ``ValueError`` if ``fp`` does not fit this prediction."""
        n = int(self.obj_ids.shape[0])
        H, W = self.orig_size
        if fp.masks.dtype != torch.bool or tuple(fp.masks.shape) != (n, H, W):
            raise ValueError(
                f"{self.video_id!r} frame {fp.index}: masks must be bool[{n}, {H}, {W}], got "
                f"{fp.masks.dtype}{tuple(fp.masks.shape)}"
            )
        if expected_index is not None and fp.index != expected_index:
            raise ValueError(f"{self.video_id!r}: expected frame {expected_index}, got {fp.index}")

    def iter_frames(self) -> Iterator[FramePrediction]:
        """Iterate over the frames, validating each one and the count."""
        self.validate()
        count = 0
        for count, fp in enumerate(self.frames, start=1):
            self.check_frame(fp, expected_index=count - 1)
            yield fp
        if count != self.num_frames:
            raise ValueError(
                f"{self.video_id!r}: prediction yielded {count} frames, expected {self.num_frames}"
            )

    def materialize(self) -> "VideoPrediction":
        """Return a copy whose ``frames`` is a list (for tests and small videos)."""
        frames = list(self.iter_frames())
        return VideoPrediction(self.video_id, self.obj_ids, self.scores, self.labels, frames,
                               self.orig_size, self.num_frames, dict(self.meta))
