"""Training clips: random T-frame windows of the videos, and their collation into a VideoBatch."""
from __future__ import annotations

import dataclasses
import math
import random
from typing import Sequence

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from vosbench.structures import Frame, VideoBatch, VideoSample
from vosbench.structures.masks import resize_masks


class ClipDataset(Dataset):
    """Random clips of ``num_frames`` frames, the stride drawn in ``1..max_stride`` per clip.

    Index ``i`` is deterministic given ``(seed, epoch, i)``, so a ``DistributedSampler`` over this
    dataset gives every rank disjoint clips, and a resumed run sees the same clips again. Call
    ``set_epoch`` to draw new clips.

    Args:
        dataset: a sequence of ``VideoSample`` (any registered dataset).
        num_frames: frames per clip (videos shorter than that repeat their last frame).
        max_stride: largest gap between consecutive clip frames.
        samples_per_epoch: dataset length; default one clip per video.
        crop_size: optional (h, w) random crop (padded when the frame is smaller).
        resize_short: optional short-side resize before cropping.
        hflip: random horizontal flip of the whole clip.
        reverse: probability of reversing the clip in time (LIP's augmentation).
        scale_range: optional (min, max) random resize factor, one draw per clip, applied after
            ``resize_short`` and before the crop (MaskRNN §4 "randomly resizing"). Default off.
        max_rotation: rotate the whole clip about the frame centre by an angle drawn uniformly
            in +-``max_rotation`` degrees, one draw per clip, frame size kept (MaskRNN §4
            "rotating"). Default 0 (off).
        seed: base seed.

    Geometric augmentation order: ``resize_short`` -> ``scale_range`` -> rotation -> crop ->
    flip; images bilinear, masks and void nearest. With ``scale_range`` or ``max_rotation`` set,
    pixels that come from outside the frame (rotated-in corners, crop padding) are marked void,
    so losses that skip void pixels ignore them. With both off, the draws and the output are
    exactly those of the plain clip sampler (the new options consume no random numbers).
    Yields:
        ``VideoSample`` whose ``frames`` is a list of ``Frame`` with ground truth, the clip's
        object ids fixed to those annotated in it.
    """

    def __init__(self, dataset: Sequence[VideoSample], *, num_frames: int, max_stride: int = 1,
                 samples_per_epoch: int | None = None, crop_size: Sequence[int] | None = None,
                 resize_short: int | None = None, hflip: bool = True, reverse: float = 0.0,
                 scale_range: Sequence[float] | None = None, max_rotation: float = 0.0,
                 seed: int = 0) -> None:
        if len(dataset) == 0:
            raise ValueError("ClipDataset: the dataset has no videos")
        if num_frames < 1 or max_stride < 1:
            raise ValueError("ClipDataset: num_frames and max_stride must be >= 1")
        self.dataset = dataset
        self.num_frames = num_frames
        self.max_stride = max_stride
        self.samples_per_epoch = samples_per_epoch or len(dataset)
        self.crop_size = tuple(crop_size) if crop_size else None
        self.resize_short = resize_short
        self.hflip = hflip
        self.reverse = reverse
        if scale_range is not None:
            scale_range = tuple(float(v) for v in scale_range)
            if len(scale_range) != 2 or not 0 < scale_range[0] <= scale_range[1]:
                raise ValueError(f"ClipDataset: scale_range must be (min, max) with 0 < min <= max, "
                                 f"got {scale_range}")
        self.scale_range = scale_range
        if max_rotation < 0:
            raise ValueError(f"ClipDataset: max_rotation must be >= 0 degrees, got {max_rotation}")
        self.max_rotation = float(max_rotation)
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.samples_per_epoch

    def __getitem__(self, i: int) -> VideoSample:
        rng = random.Random(hash((self.seed, self.epoch, i)) & 0xFFFFFFFF)
        video = self.dataset[i % len(self.dataset)]
        n = len(video)
        stride = rng.randint(1, self.max_stride)
        span = (self.num_frames - 1) * stride
        while span >= n and stride > 1:
            stride -= 1
            span = (self.num_frames - 1) * stride
        start = rng.randint(0, max(0, n - 1 - span))
        idx = [min(start + k * stride, n - 1) for k in range(self.num_frames)]
        if self.reverse and rng.random() < self.reverse:
            idx = idx[::-1]
        frames = [video.frames[t] for t in idx]
        frames = self._augment(frames, rng)
        return VideoSample(video.video_id, frames, video.task, video.orig_size, reference={},
                           frame_names=[video.frame_names[t] for t in idx] if video.frame_names else [],
                           categories=video.categories, meta={**video.meta, "clip_frame_idx": idx})

    def _augment(self, frames: list[Frame], rng: random.Random) -> list[Frame]:
        # Shallow copies: the transforms below replace tensors, never the caller's frames (an
        # in-memory dataset, or a short video whose last frame repeats in the clip).
        frames = [dataclasses.replace(f) for f in frames]
        H, W = frames[0].size
        geometric = bool(self.scale_range) or self.max_rotation > 0
        if self.resize_short:
            s = self.resize_short / min(H, W)
            H, W = round(H * s), round(W * s)
            for f in frames:
                f.image = F.interpolate(f.image[None], size=(H, W), mode="bilinear", align_corners=False,
                                        antialias=True)[0]
                if f.masks is not None:
                    f.masks = resize_masks(f.masks, (H, W))
                if f.void is not None:
                    f.void = resize_masks(f.void, (H, W))
        if self.scale_range:
            s = rng.uniform(*self.scale_range)
            H, W = max(1, round(H * s)), max(1, round(W * s))
            for f in frames:
                f.image = F.interpolate(f.image[None], size=(H, W), mode="bilinear", align_corners=False,
                                        antialias=s < 1)[0]
                if f.masks is not None:
                    f.masks = resize_masks(f.masks, (H, W))
                if f.void is not None:
                    f.void = resize_masks(f.void, (H, W))
        if self.max_rotation > 0:
            angle = rng.uniform(-self.max_rotation, self.max_rotation)
            for f in frames:
                _rotate_frame(f, angle)
        if self.crop_size:
            ch, cw = self.crop_size
            y0 = rng.randint(0, max(0, H - ch))
            x0 = rng.randint(0, max(0, W - cw))
            for f in frames:
                if geometric and f.void is None and (ch > H or cw > W):
                    f.void = torch.zeros(H, W, dtype=torch.bool)
                f.image = _crop_pad(f.image, y0, x0, ch, cw)
                if f.masks is not None:
                    f.masks = _crop_pad(f.masks, y0, x0, ch, cw)
                if f.void is not None:
                    # Geometric augmentation on: crop padding is outside the frame, i.e. void.
                    f.void = _crop_pad(f.void[None], y0, x0, ch, cw, value=geometric)[0]
        if self.hflip and rng.random() < 0.5:
            for f in frames:
                f.image = f.image.flip(-1)
                if f.masks is not None:
                    f.masks = f.masks.flip(-1)
                if f.void is not None:
                    f.void = f.void.flip(-1)
        return frames


def _crop_pad(x: torch.Tensor, y0: int, x0: int, h: int, w: int, value: float = 0.0) -> torch.Tensor:
    """Crop ``x[..., y0:y0+h, x0:x0+w]``, padding with ``value`` at the bottom/right when it is smaller."""
    out = x[..., y0:y0 + h, x0:x0 + w]
    ph, pw = h - out.shape[-2], w - out.shape[-1]
    if ph or pw:
        out = F.pad(out.float(), (0, pw, 0, ph), value=float(value)).to(x.dtype)
    return out


def _rotate_frame(f: Frame, angle_deg: float) -> None:
    """Rotate ``f`` in place about its centre by ``angle_deg`` (counter-clockwise on screen),
    keeping its size: image bilinear (zeros outside), masks nearest (False outside), void nearest
    with every pixel from outside the frame set (created when the frame had no void map)."""
    h, w = f.size
    a = math.radians(angle_deg)
    cos, sin = math.cos(a), math.sin(a)
    # Output -> input map in normalised coordinates; the aspect-ratio factors make it a rotation
    # in pixel units (not a shear) on a non-square frame.
    theta = torch.tensor([[cos, -sin * h / w, 0.0], [sin * w / h, cos, 0.0]], dtype=torch.float32)
    grid = F.affine_grid(theta[None], [1, 1, h, w], align_corners=False)

    def sample(x: torch.Tensor, mode: str) -> torch.Tensor:  # [C, h, w] float -> [C, h, w]
        return F.grid_sample(x[None], grid, mode=mode, padding_mode="zeros", align_corners=False)[0]

    f.image = sample(f.image, "bilinear")
    if f.masks is not None and f.masks.shape[0]:
        f.masks = sample(f.masks.float(), "nearest") > 0.5
    inside = sample(torch.ones(1, h, w), "nearest")[0] > 0.5
    void = f.void if f.void is not None else torch.zeros(h, w, dtype=torch.bool)
    f.void = (sample(void[None].float(), "nearest")[0] > 0.5) | ~inside


def collate_clips(clips: list[VideoSample]) -> VideoBatch:
    """Stack clips into a ``VideoBatch``; objects are aligned by id across the clip's frames.

    An object slot holds one object id of the clip (every id annotated in any of its frames);
    frames where it is not annotated have an all-False mask. Frames are padded to the largest
    H, W (``pad`` marks padded pixels); clips of different lengths are not allowed.
    """
    B = len(clips)
    T = len(clips[0].frames)
    if any(len(c.frames) != T for c in clips):
        raise ValueError("collate_clips: all clips must have the same number of frames")
    H = max(f.size[0] for c in clips for f in c.frames)
    W = max(f.size[1] for c in clips for f in c.frames)
    ids_per_clip = []
    for c in clips:
        ids: list[int] = []
        for f in c.frames:
            if f.masks is not None:
                ids += [int(i) for i in f.obj_ids if int(i) not in ids]
        ids_per_clip.append(ids)
    O = max((len(i) for i in ids_per_clip), default=0)
    images = torch.zeros(B, T, 3, H, W)
    masks = torch.zeros(B, T, O, H, W, dtype=torch.bool)
    obj_ids = torch.full((B, O), -1, dtype=torch.int64)
    labels = torch.full((B, O), -1, dtype=torch.int64)
    obj_valid = torch.zeros(B, O, dtype=torch.bool)
    annotated = torch.zeros(B, T, dtype=torch.bool)
    pad = torch.ones(B, T, H, W, dtype=torch.bool)
    void = torch.zeros(B, T, H, W, dtype=torch.bool)
    frame_idx = torch.zeros(B, T, dtype=torch.int64)
    for b, (c, ids) in enumerate(zip(clips, ids_per_clip)):
        obj_ids[b, :len(ids)] = torch.tensor(ids, dtype=torch.int64)
        obj_valid[b, :len(ids)] = True
        clip_idx = c.meta.get("clip_frame_idx")
        for t, f in enumerate(c.frames):
            h, w = f.size
            images[b, t, :, :h, :w] = f.image
            pad[b, t, :h, :w] = False
            frame_idx[b, t] = clip_idx[t] if clip_idx else f.index
            if f.void is not None:
                void[b, t, :h, :w] = f.void
            if f.masks is None:
                continue
            annotated[b, t] = True
            for row, oid in enumerate(f.obj_ids.tolist()):
                k = ids.index(int(oid))
                masks[b, t, k, :h, :w] = f.masks[row]
                labels[b, k] = int(f.labels[row]) if f.labels.numel() else -1
    return VideoBatch(images=images, masks=masks, obj_ids=obj_ids, labels=labels, obj_valid=obj_valid,
                      annotated=annotated, pad=pad, void=void, frame_idx=frame_idx, samples=list(clips))
