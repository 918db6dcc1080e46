"""``first_frame_copy``: every object keeps its reference mask for the rest of the video.

The zero-motion lower bound of semi-supervised VOS: no image is ever looked at. An object is
absent (all-False row) before its reference frame and equals its reference mask from then on.
When an object's reference mask overlaps masks copied earlier, the newer reference wins on those
pixels (at that frame the ground truth says they belong to the new object), so the per-object
masks stay disjoint like the index masks they are evaluated as.
"""
from __future__ import annotations

from typing import Iterator

import torch

from vosbench.models.base import VideoMethod
from vosbench.registry import METHODS
from vosbench.structures import FramePrediction, VideoPrediction, VideoSample, resize_masks


def _video_size(sample: VideoSample) -> tuple[int, int]:
    h, w = sample.orig_size
    if h > 0 and w > 0:
        return int(h), int(w)
    if len(sample.frames) == 0:
        raise ValueError(f"{sample.video_id!r}: video has no frames and no orig_size")
    return sample.frames[0].size


@METHODS.register("first_frame_copy")
class FirstFrameCopy(VideoMethod):
    """Repeat each object's first-appearance mask (training-free, no parameters)."""

    task = "vos"
    trainable = False

    def __init__(self) -> None:
        super().__init__()

    def predict(self, sample: VideoSample) -> VideoPrediction:
        """Returns a streaming ``VideoPrediction`` with masks ``bool[N, H, W]`` at ``orig_size``."""
        obj_ids = sample.obj_ids
        size = _video_size(sample)
        return VideoPrediction(
            video_id=sample.video_id,
            obj_ids=obj_ids,
            scores=torch.ones(len(obj_ids)),
            labels=torch.full((len(obj_ids),), -1, dtype=torch.int64),
            frames=self._frames(sample, obj_ids, size),
            orig_size=size,
            num_frames=sample.num_frames,
            meta={"method": "first_frame_copy"},
        )

    @staticmethod
    def _frames(sample: VideoSample, obj_ids: torch.Tensor, size: tuple[int, int]) -> Iterator[FramePrediction]:
        row = {int(i): k for k, i in enumerate(obj_ids.tolist())}
        current = torch.zeros((len(row), *size), dtype=torch.bool)  # [N, H, W]
        for t in range(sample.num_frames):
            ref = sample.reference.get(t)
            if ref is not None and len(ref):
                masks = resize_masks(ref.masks.bool(), size)  # reference may be at the working size
                for oid, m in zip(ref.obj_ids.tolist(), masks):
                    current[:, m] = False  # the newest reference owns its pixels
                    current[row[int(oid)]] = m
            yield FramePrediction(index=t, masks=current.clone())
