"""Engine test helpers: a tiny learnable VOS method and in-memory training batches.

The method is used only by the engine and tool tests.

It is registered as ``_tiny_test_method`` when this module is imported (tests import it; the
subprocess tests run the tools through ``tests/engine/run_tool.py``, which imports it first).
A 2-layer conv net predicts a foreground probability per pixel; ``predict`` keeps each reference
object's pixels that stay foreground (reference mask dilated, intersected with the foreground),
so the prediction depends on the learned weights.
"""
from __future__ import annotations

from typing import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset

from vosbench.models.base import VideoMethod
from vosbench.registry import METHODS
from vosbench.structures import FramePrediction, VideoBatch, VideoPrediction, VideoSample

NAME = "_tiny_test_method"


class TinyTestMethod(VideoMethod):
    task = "vos"
    trainable = True

    def __init__(self, *, hidden: int = 4, dropout: float = 0.0, step_delay: float = 0.0) -> None:
        super().__init__()
        self.step_delay = step_delay  # seconds slept per training step (kill-and-resume test)
        self.conv1 = nn.Conv2d(3, hidden, 3, padding=1)
        self.conv2 = nn.Conv2d(hidden, 1, 3, padding=1)
        self.dropout = nn.Dropout2d(dropout)
        self.register_buffer("mean", torch.tensor([0.5, 0.5, 0.5]).view(1, 3, 1, 1))

    def logits(self, images: Tensor) -> Tensor:
        """images Tensor[N, 3, H, W] in 0-1 -> foreground logits Tensor[N, 1, H, W]."""
        x = F.relu(self.conv1(images - self.mean))
        return self.conv2(self.dropout(x))

    def training_step(self, batch: VideoBatch) -> dict[str, Tensor]:
        if self.step_delay:
            import time

            time.sleep(self.step_delay)
        b, t, _, h, w = batch.images.shape
        logits = self.logits(batch.images.flatten(0, 1)).view(b, t, h, w)
        valid = batch.obj_valid[:, None, :, None, None]
        target = (batch.masks & valid).any(dim=2).float()  # [B, T, H, W] union of objects
        weight = (~batch.pad & ~batch.void & batch.annotated[:, :, None, None]).float()
        loss = F.binary_cross_entropy_with_logits(logits, target, weight=weight, reduction="sum")
        return {"loss_mask": loss / weight.sum().clamp(min=1.0)}

    def predict(self, sample: VideoSample) -> VideoPrediction:
        obj_ids = sample.obj_ids
        n = int(obj_ids.numel())
        h, w = sample.orig_size

        def frames() -> Iterator[FramePrediction]:
            prev = torch.zeros((n, h, w), dtype=torch.bool)
            pos = {int(i): k for k, i in enumerate(obj_ids)}
            for t, frame in enumerate(sample.frames):
                image = frame.image.to(self.device)
                fg = torch.sigmoid(self.logits(image[None]))[0, 0]
                fg = F.interpolate(fg[None, None], size=(h, w), mode="bilinear")[0, 0].cpu() > 0.5
                grown = F.max_pool2d(prev[:, None].float(), 5, stride=1, padding=2)[:, 0] > 0
                masks = grown & fg
                ref = sample.reference.get(t)
                if ref is not None:
                    for oid, m in zip(ref.obj_ids.tolist(), ref.masks):
                        masks[pos[oid]] = m
                prev = masks
                yield FramePrediction(index=t, masks=masks.clone())

        return VideoPrediction(sample.video_id, obj_ids, torch.ones(n), torch.full((n,), -1),
                               frames(), (h, w), sample.num_frames)


if NAME not in METHODS:
    METHODS.register(NAME, TinyTestMethod)


def make_batch(b: int = 2, t: int = 3, h: int = 16, w: int = 24, seed: int = 0) -> VideoBatch:
    """A random batch whose mask is 'bright pixels', so the tiny method can learn it."""
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(b, t, 3, h, w, generator=g)
    fg = images.mean(dim=2) > 0.5  # [B, T, H, W]
    masks = torch.stack([fg, torch.zeros_like(fg)], dim=2)  # two object slots, the 2nd padded
    return VideoBatch(
        images=images, masks=masks,
        obj_ids=torch.tensor([[1, -1]] * b), labels=torch.full((b, 2), -1),
        obj_valid=torch.tensor([[True, False]] * b), annotated=torch.ones(b, t, dtype=torch.bool),
        pad=torch.zeros(b, t, h, w, dtype=torch.bool), void=torch.zeros(b, t, h, w, dtype=torch.bool),
        frame_idx=torch.arange(t).repeat(b, 1))


class BatchItems(Dataset):
    """``n`` single-clip items (item ``i`` is always the same clip) for ``InfiniteLoader`` tests."""

    def __init__(self, n: int = 6, **kw) -> None:
        self.items = [make_batch(b=1, seed=100 + i, **kw) for i in range(n)]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> VideoBatch:
        return self.items[i]


def collate_items(items: list[VideoBatch]) -> VideoBatch:
    fields = {k: torch.cat([getattr(x, k) for x in items]) for k in
              ("images", "masks", "obj_ids", "labels", "obj_valid", "annotated", "pad", "void", "frame_idx")}
    return VideoBatch(**fields)


def make_video(video_id: str = "v0", num_frames: int = 5, h: int = 16, w: int = 24, seed: int = 0,
               task: str = "vos") -> VideoSample:
    """An in-memory video: object 1 from frame 0, object 2 appears at frame 2 (late entry)."""
    from vosbench.structures import Frame, ObjectMasks

    g = torch.Generator().manual_seed(seed)
    frames = []
    for t in range(num_frames):
        image = torch.rand(3, h, w, generator=g)
        m1 = torch.zeros(h, w, dtype=torch.bool)
        m1[2:8, 2 + t:8 + t] = True
        m2 = torch.zeros(h, w, dtype=torch.bool)
        if t >= 2:
            m2[9:14, 10:18] = True
        masks = torch.stack([m1, m2])
        frames.append(Frame(image=image, index=t, name=f"{t:05d}", masks=masks,
                            obj_ids=torch.tensor([1, 2]), labels=torch.tensor([3, 4]),
                            void=torch.zeros(h, w, dtype=torch.bool)))
    reference = {}
    if task == "vos":
        reference = {0: ObjectMasks(torch.tensor([1]), frames[0].masks[:1])}
        if num_frames > 2:
            reference[2] = ObjectMasks(torch.tensor([2]), frames[2].masks[1:])
    return VideoSample(video_id, frames, task=task, orig_size=(h, w), reference=reference,
                       frame_names=[f.name for f in frames], meta={"ytvis_id": int(seed) + 1})


class GTCopyVIS(VideoMethod):
    """A training-free VIS 'method' for writer tests: returns fixed instances."""

    task = "vis"
    trainable = False

    def predict(self, sample: VideoSample) -> VideoPrediction:
        h, w = sample.orig_size

        def frames():
            for t, _ in enumerate(sample.frames):
                m = torch.zeros(2, h, w, dtype=torch.bool)
                m[0, :4, :4] = True
                if t % 2:
                    m[1, -3:, -5:] = True
                yield FramePrediction(t, m)

        return VideoPrediction(sample.video_id, torch.tensor([7, 9]), torch.tensor([0.9, 0.4]),
                               torch.tensor([1, 2]), frames(), (h, w), sample.num_frames)
