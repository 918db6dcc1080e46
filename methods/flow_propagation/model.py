"""``flow_propagation``: carry the previous prediction to the next frame along optical flow.

For t = 1..T-1 (object k joins at its reference frame r_k, where its mask is the reference):

    p_t^k = warp(onehot_{t-1}^k, flow(I_t, I_{t-1}))     bilinear backward warping, in [0, 1]
    y_t   = probs_to_index(p_t, obj_ids, threshold=0.5)   argmax fusion, background below 0.5
    onehot_t^k = [y_t == id_k]                            the prediction carried to t+1

so what propagates is the fused (disjoint, hard) prediction, as MaskRNN §3.1 fuses its per-object
binary masks by argmax each frame. A newly joining object's reference pixels are taken from the
objects already tracked (the ground truth of that frame assigns them to the new object).
Flow is computed at the frames' (working) resolution; masks are resized to ``orig_size`` only
for output. With ``cache_dir`` flows are read from / written to a ``FlowCache`` (keyed by
``sample.meta["dataset"]`` or ``cache_name``, the video id and the frame names), e.g. one filled by
``tools/precompute_flow.py --pairs prev``.
"""
from __future__ import annotations

import os
from typing import Iterator

import torch

from vosbench.models.base import VideoMethod
from vosbench.models.flow import FlowCache, FlowEstimator, build_flow, warp
from vosbench.registry import METHODS
from vosbench.structures import FramePrediction, VideoPrediction, VideoSample, probs_to_index, resize_masks


@METHODS.register("flow_propagation")
class FlowPropagation(VideoMethod):
    """Optical-flow mask propagation (training-free).

    Args:
        flow: a built ``FlowEstimator``, a FLOWS name, or None for DIS (``preset="medium"``).
        threshold: probability below which a warped pixel becomes background (0.5).
        cache_dir: optional ``FlowCache`` root; flows of a dataset are then computed once.
        cache_name: the cache's dataset name (default ``sample.meta["dataset"]``; the folder is
            ``<name>-<H>x<W>``, see ``FlowCache.dataset_name_for``).
    """

    task = "vos"
    trainable = False

    def __init__(self, *, flow: FlowEstimator | str | None = None, threshold: float = 0.5,
                 cache_dir: str | os.PathLike | None = None, cache_name: str | None = None) -> None:
        super().__init__()
        self.flow = build_flow("dis" if flow is None else flow)
        self.threshold = float(threshold)
        self.cache_dir = None if cache_dir is None else str(cache_dir)
        self.cache_name = cache_name

    @classmethod
    def from_config(cls, cfg: dict) -> dict:
        """Build the ``flow`` sub-config (a FLOWS mapping or name) through the FLOWS registry."""
        cfg = dict(cfg)
        if "flow" in cfg and not isinstance(cfg["flow"], FlowEstimator) and cfg["flow"] is not None:
            cfg["flow"] = build_flow(cfg["flow"])
        return cfg

    def predict(self, sample: VideoSample) -> VideoPrediction:
        """Returns a streaming ``VideoPrediction`` with masks ``bool[N, H, W]`` at ``orig_size``."""
        obj_ids = sample.obj_ids
        h, w = sample.orig_size
        if not (h > 0 and w > 0):
            h, w = sample.frames[0].size
        n = len(obj_ids)
        return VideoPrediction(
            video_id=sample.video_id,
            obj_ids=obj_ids,
            scores=torch.ones(n),
            labels=torch.full((n,), -1, dtype=torch.int64),
            frames=self._frames(sample, obj_ids, (int(h), int(w))),
            orig_size=(int(h), int(w)),
            num_frames=sample.num_frames,
            meta={"method": "flow_propagation", "flow": self.flow.cache_key},
        )

    def _flow_t_prev(self, sample: VideoSample, cache: FlowCache | None, t: int, name_t: str,
                     name_prev: str, img_t: torch.Tensor, img_prev: torch.Tensor) -> torch.Tensor:
        """Tensor[2, h, w] = flow(I_t, I_{t-1}), what warps frame t-1 values onto frame t."""
        if cache is not None:
            return cache.get(sample.video_id, name_t, name_prev, img_t, img_prev)
        return self.flow(img_t, img_prev)

    def _frames(self, sample: VideoSample, obj_ids: torch.Tensor, size: tuple[int, int]) -> Iterator[FramePrediction]:
        n = len(obj_ids)
        row = {int(i): k for k, i in enumerate(obj_ids.tolist())}
        cache = None
        dev = self.device
        onehot: torch.Tensor | None = None  # Tensor[N, h, w] float, the previous fused prediction
        prev = None  # (name, image) of frame t-1
        for t in range(sample.num_frames):
            if n == 0:  # nothing to track: do not decode or compute anything
                yield FramePrediction(index=t, masks=torch.zeros((0, *size), dtype=torch.bool))
                continue
            frame = sample.frames[t]
            img = frame.image.to(dev)
            name = frame.name or f"{t:05d}"
            hw = tuple(img.shape[-2:])
            if cache is None and self.cache_dir is not None:
                cache = FlowCache(self.cache_dir, self.flow,
                                  FlowCache.dataset_name_for(sample, self.cache_name, size=hw))
            if onehot is None:
                probs = torch.zeros((n, *hw), device=dev)
            elif onehot.any():
                flow = self._flow_t_prev(sample, cache, t, name, prev[0], img, prev[1]).to(dev)
                probs = warp(onehot[:, None], flow)[:, 0]  # [N, h, w]
            else:  # no object has joined yet: skip the flow
                probs = onehot
            ref = sample.reference.get(t)
            if ref is not None and len(ref):
                masks = resize_masks(ref.masks.bool(), hw).to(dev)
                for oid, m in zip(ref.obj_ids.tolist(), masks):
                    probs[:, m] = 0.0
                    probs[row[int(oid)]] = m.float()
            index = probs_to_index(probs, obj_ids.to(dev), threshold=self.threshold)  # [h, w]
            hard = index[None] == obj_ids.to(dev).view(-1, 1, 1)  # [N, h, w]
            onehot = hard.float()
            prev = (name, img)
            yield FramePrediction(index=t, masks=resize_masks(hard.cpu(), size))
