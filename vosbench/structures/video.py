"""The data contract shared by every dataset, method, evaluator and writer.

Conventions (all tensors are torch tensors on CPU unless a method moves them):

* images are ``float32[3, H, W]`` RGB in 0-1; normalisation is a model buffer.
* masks are per object, ``bool[O, H, W]``; index masks exist only at I/O edges
  (``vosbench.structures.masks``).
* ``obj_ids`` are stable inside a video (DAVIS palette id, YouTube-VIS instance id).
* ``labels`` are category ids (YouTube-VIS ``category_id``), ``-1`` when class-agnostic.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterator, Literal, Sequence

import torch
from torch import Tensor

Task = Literal["vos", "vis"]


@dataclass
class ObjectMasks:
    """Masks of some objects in one frame.

    Attributes:
        obj_ids: Tensor[K] int64.
        masks: Tensor[K, H, W] bool.
        labels: Tensor[K] int64 (``-1`` when class-agnostic).
    """

    obj_ids: Tensor
    masks: Tensor
    labels: Tensor | None = None

    def __post_init__(self) -> None:
        if self.labels is None:
            self.labels = torch.full_like(self.obj_ids, -1)
        if self.masks.dim() != 3 or self.masks.shape[0] != self.obj_ids.shape[0]:
            raise ValueError(
                f"ObjectMasks: masks {tuple(self.masks.shape)} do not match obj_ids "
                f"{tuple(self.obj_ids.shape)}"
            )

    def __len__(self) -> int:
        return int(self.obj_ids.numel())


@dataclass
class Frame:
    """One decoded frame with its (optional) ground truth.

    Attributes:
        image: Tensor[3, H, W] float32 in 0-1.
        index: position of the frame in the video (0-based).
        name: file stem of the frame (``00000``), used by writers.
        masks: Tensor[O, H, W] bool ground truth of the objects annotated in this frame, or None
            when the frame has no annotation (test sets, unsampled YouTube-VIS frames).
        obj_ids: Tensor[O] int64, the ids of ``masks`` rows.
        labels: Tensor[O] int64 categories (``-1`` when class-agnostic).
        void: Tensor[H, W] bool (DAVIS 255) or None.
    """

    image: Tensor
    index: int
    name: str = ""
    masks: Tensor | None = None
    obj_ids: Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.int64))
    labels: Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.int64))
    void: Tensor | None = None

    @property
    def size(self) -> tuple[int, int]:
        return int(self.image.shape[-2]), int(self.image.shape[-1])

    @property
    def has_gt(self) -> bool:
        return self.masks is not None


class LazyFrames(Sequence[Frame]):
    """A read-only sequence that decodes frame ``i`` only when it is indexed.

    Nothing is cached, so iterating over a long video holds one frame at a time.
    """

    def __init__(self, num_frames: int, load: Callable[[int], Frame]) -> None:
        self._n = num_frames
        self._load = load

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self._load(j) for j in range(*i.indices(self._n))]
        if i < 0:
            i += self._n
        if not 0 <= i < self._n:
            raise IndexError(f"frame index {i} out of range for a video of {self._n} frames")
        return self._load(i)

    def __iter__(self) -> Iterator[Frame]:
        for i in range(self._n):
            yield self._load(i)


@dataclass
class VideoSample:
    """One video as a dataset yields it (frames decoded lazily).

    Attributes:
        video_id: dataset-unique name (DAVIS sequence name, YouTube-VIS video id as str).
        frames: sequence of ``Frame`` (``LazyFrames`` for datasets, a list in tests).
        task: ``"vos"`` (semi-supervised, uses ``reference``) or ``"vis"`` (instances found by
            the method).
        orig_size: (H, W) of the original frames; predictions are given at this size.
        reference: frame index -> ``ObjectMasks`` of the objects whose first annotated
            appearance is that frame. The only annotation a semi-supervised method may see at
            test time. Empty for VIS.
        frame_names: the frame file stems, in order.
        categories: category id -> name (VIS), empty otherwise.
        meta: free-form extras (dataset name, root, file paths...).
    """

    video_id: str
    frames: Sequence[Frame]
    task: Task = "vos"
    orig_size: tuple[int, int] = (0, 0)
    reference: dict[int, ObjectMasks] = field(default_factory=dict)
    frame_names: list[str] = field(default_factory=list)
    categories: dict[int, str] = field(default_factory=dict)
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def num_frames(self) -> int:
        return len(self.frames)

    @property
    def obj_ids(self) -> Tensor:
        """Tensor[N] int64: every object id in ``reference``, in order of first appearance."""
        ids: list[int] = []
        for t in sorted(self.reference):
            ids += [int(i) for i in self.reference[t].obj_ids if int(i) not in ids]
        return torch.tensor(ids, dtype=torch.int64)


@dataclass
class VideoBatch:
    """A collated batch of training clips (tensor-only; cf. sam2 ``BatchedVideoDatapoint``).

    Objects are padded to ``Omax`` per batch; frames to the largest H, W.

    Attributes:
        images: Tensor[B, T, 3, H, W] float32 in 0-1.
        masks: Tensor[B, T, Omax, H, W] bool (all False where not annotated / padded).
        obj_ids: Tensor[B, Omax] int64 (``-1`` for padding).
        labels: Tensor[B, Omax] int64 (``-1`` class-agnostic or padding).
        obj_valid: Tensor[B, Omax] bool, False for padded object slots.
        annotated: Tensor[B, T] bool, True where the frame has ground truth.
        pad: Tensor[B, T, H, W] bool, True on padded pixels.
        void: Tensor[B, T, H, W] bool (DAVIS 255), all False when absent.
        samples: the ``VideoSample`` each clip came from (metadata only).
        frame_idx: Tensor[B, T] int64, the frame index of each clip frame in its video.
    """

    images: Tensor
    masks: Tensor
    obj_ids: Tensor
    labels: Tensor
    obj_valid: Tensor
    annotated: Tensor
    pad: Tensor
    void: Tensor
    frame_idx: Tensor
    samples: list[VideoSample] = field(default_factory=list)

    @property
    def batch_size(self) -> int:
        return int(self.images.shape[0])

    @property
    def num_frames(self) -> int:
        return int(self.images.shape[1])

    def to(self, device: torch.device | str) -> "VideoBatch":
        """Move every tensor to ``device`` (samples stay as they are)."""
        kw = {
            k: (v.to(device, non_blocking=True) if isinstance(v, Tensor) else v)
            for k, v in self.__dict__.items()
        }
        return VideoBatch(**kw)
