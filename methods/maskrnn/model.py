"""MaskRNN: Instance Level Video Object Segmentation (Hu, Huang, Schwing, NIPS 2017).

One deep net per object (offline: shared weights, objects are a batch dimension; after online
fine-tuning: one tuned copy of the weights per object), each with

* a binary segmentation net of two identical ``vgg16_side`` streams (§3.3): the appearance stream
  sees ``[I_t, phi(y_{t-1})]`` (RGB + warped previous mask), the flow stream sees
  ``[|F_{t->t-1}|, |F_{t->t+1}|, phi(y_{t-1})]``; their single-channel outputs are combined
  linearly and a sigmoid gives ``b_t``;
* an object localization net (§3.3): a proposal box from the warped mask, RoI pooling on the
  appearance stream's conv5_3, two FC layers and Fast R-CNN box regression; at test time ``b_t``
  is zeroed outside the predicted box enlarged 1.25x.

The N objects are fused by argmax with background by threshold (§3.2). The prediction of frame
t-1 feeds frame t (the recurrence, §3.1), trained by back-propagation through time over clips
(§4). Online fine-tuning on the reference frame(s) runs inside ``predict`` (§4). The paper's
recipe per stage: ``configs/experiment/maskrnn/*.yaml``; deviations: ``README.md``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

import vosbench.models.backbones  # noqa: F401  (registers vgg16_side)
from vosbench.config import build
from vosbench.data.mask_perturb import MaskPerturbation, perturb_mask
from vosbench.engine.online_finetune import FinetuneAugment, finetune_on_reference, restore_weights
from vosbench.models.base import VideoMethod
from vosbench.models.flow import FlowCache, build_flow, warp
from vosbench.models.weights import read_state_dict, resolve_pretrained, weights_policy
from vosbench.registry import BACKBONES, METHODS
from vosbench.structures import FramePrediction, VideoBatch, VideoPrediction, VideoSample
from vosbench.structures.masks import probs_to_index, resize_masks

from vosbench_methods.maskrnn.heads import (LocalizationHead, TwoStreamFusion, boxes_to_masks,
                                   decode_boxes, encode_boxes, enlarge_boxes, mask_boxes)
from vosbench_methods.maskrnn.losses import BOX_LOSS_WEIGHT, MaskRNNCriterion



@dataclass
class MaskRNNState:
    """Per-video recurrent state of ``MaskRNN.predict`` (STYLE.md §4).

    Attributes:
        obj_ids: Tensor[N] int64, every reference object in first-appearance order.
        join_frame: Tensor[N] int64, the frame whose reference mask introduces each object.
        prev_masks: Tensor[N, h, w] float, ``y_{t-1}`` per object at the working size (zeros for
            objects that have not joined yet).
        images: working-size frames kept for the flow (``t-1``, ``t``, ``t+1``), by index.
        t: the next frame to predict.
        object_params: per-object online fine-tuning: for each object (row of ``obj_ids``) the
            values of the trainable parameters of its own net; None when one net serves all
            objects (no fine-tuning, or ``finetune_per_object=False``).
        loaded: the row whose parameters are currently in the module (-1: the offline ones).
    """

    obj_ids: Tensor
    join_frame: Tensor
    prev_masks: Tensor
    images: dict[int, Tensor] = field(default_factory=dict)
    t: int = 0
    object_params: list[list[Tensor]] | None = None
    loaded: int = -1


@METHODS.register("maskrnn")
class MaskRNN(VideoMethod):
    """MaskRNN with the paper's Table 2 switches.

    Args:
        appearance: the appearance stream (``vgg16_side`` built with ``in_channels=4``) or None.
        flow_net: the flow stream (``vgg16_side`` built with ``in_channels=3``) or None.
        flow_estimator: a ``FlowEstimator`` (RAFT / DIS); required when ``flow_net`` is given or
            ``warp_mask`` is True. Kept out of the state dict (it has its own weights).
        flow_cache: folder of a ``FlowCache`` used at test time (None: compute every flow).
        warp_mask: warp ``y_{t-1}`` with the flow before feeding it (Table 2 "Warp mask").
        train_localization: train the localization net with the box loss (Table 2 "Train").
        apply_localization: restrict masks to the enlarged predicted box (Table 2 "Apply").
        recurrent: after ``single_frame_iters`` training steps on single frames with perturbed
            previous masks, train on clips with the own previous prediction through time
            (Table 2 "RNN"); False keeps single-frame training.
        single_frame_iters: length of the single-frame stage of offline training.
        box_enlarge: enlargement of the predicted box at test time (1.25 in the paper).
        roi_size, fc_dim, pooler: localization net (RoI pooling 7x7, two FC layers).
        box_loss_weight: weight of ``loss_box`` (see ``losses.BOX_LOSS_WEIGHT`` for the choice).
        mask_loss_reduction: ``"mean"`` over the valid pixels (default: resolution independent)
            or ``"sum"`` (OSVOS' code; the mask loss then grows with the image area).
        recurrent_train_localization: also train the localization net with the box loss in the
            recurrent stage. False (default) follows §4: after both nets are trained on single
            frames, the recurrent stage "further optimize[s] the segmentation net"; the boxes
            are still predicted and applied, the localization head gets no gradient.
        next_frame_flow: with the flow stream, the last frame of a training clip only supplies
            ``I_{t+1}`` for the forward flow of the frame before it and is not a training target,
            so every trained frame sees a real ``|F_{t->t+1}|`` (at test time only a video's
            last frame lacks one). False: the clip's last frame is trained too, with its
            backward magnitude reused as the forward one.
        threshold: background threshold of the argmax fusion.
        resize_short: working short side at test time (None: the original size).
        finetune_iters, finetune_lr, finetune_batch: online fine-tuning on the reference masks
            (200 iterations, lr 1e-5 decayed in the paper); ``finetune_iters=0`` disables it.
        finetune_per_object: True (the paper, §3.1/§4): one copy of the net per object, each
            fine-tuned on its own reference mask and used for that object only; False: one copy
            fine-tuned on all reference objects jointly (N times cheaper).
        max_train_objects: train on at most this many (random) objects per clip (None: all);
            bounds the memory of a training step (``configs/experiment/maskrnn/stage2_recurrent.yaml``).
        pixel_mean, pixel_std: RGB normalisation of the appearance stream (ImageNet).
        fc_init: a torchvision VGG-16 state dict whose ``classifier.0/3`` (fc6/fc7) initialise
            the localization net's two FC layers, as Fast R-CNN does (needs ``fc_dim=4096``,
            ``roi_size=7`` and a full-width appearance stream).
        perturb: ``MaskPerturbation`` fields overriding the shared defaults (magnitudes of the
            previous-mask perturbation; the paper gives the kinds, not the magnitudes).
        seed: seed of the mask perturbation and fine-tuning augmentation generators.
    """

    task = "vos"
    trainable = True
    needs_grad_at_test = True  # online fine-tuning; set per instance from finetune_iters

    def __init__(self, *, appearance: nn.Module | None, flow_net: nn.Module | None = None,
                 flow_estimator: nn.Module | None = None, flow_cache: str | None = None,
                 warp_mask: bool = True, train_localization: bool = True,
                 apply_localization: bool = True, recurrent: bool = True,
                 single_frame_iters: int = 1000, box_enlarge: float = 1.25, roi_size: int = 7,
                 fc_dim: int = 4096, pooler: str = "roi_pool",
                 box_loss_weight: float = BOX_LOSS_WEIGHT, mask_loss_reduction: str = "mean",
                 recurrent_train_localization: bool = False, next_frame_flow: bool = True,
                 threshold: float = 0.5, resize_short: int | None = None,
                 finetune_iters: int = 200, finetune_lr: float = 1e-5, finetune_batch: int = 1,
                 finetune_per_object: bool = True, max_train_objects: int | None = None,
                 pixel_mean: tuple = (0.485, 0.456, 0.406),
                 pixel_std: tuple = (0.229, 0.224, 0.225), fc_init: str | None = None,
                 perturb: dict | None = None, seed: int = 0) -> None:
        super().__init__()
        if appearance is None and flow_net is None:
            raise ValueError("maskrnn: at least one of the appearance and flow streams is needed")
        if apply_localization and not train_localization:
            raise ValueError("maskrnn: apply_localization needs train_localization (an untrained "
                             "localization net would restrict masks to random boxes)")
        if (train_localization or apply_localization) and appearance is None:
            raise ValueError("maskrnn: the localization net pools the appearance stream's conv5_3; "
                             "it needs appearance_stream=True")
        if (flow_net is not None or warp_mask) and flow_estimator is None:
            raise ValueError("maskrnn: the flow stream and mask warping need a flow estimator")
        self.appearance = appearance
        self.flow_net = flow_net
        # A plain tuple so a learned flow estimator's weights stay out of this method's state dict.
        self._flow_holder = (flow_estimator,)
        self.flow_cache_root = flow_cache
        self.warp_mask = bool(warp_mask)
        self.train_localization = bool(train_localization)
        self.apply_localization = bool(apply_localization)
        self.recurrent = bool(recurrent)
        self.recurrent_train_localization = bool(recurrent_train_localization)
        self.next_frame_flow = bool(next_frame_flow)
        self.single_frame_iters = int(single_frame_iters)
        self.box_enlarge = float(box_enlarge)
        self.threshold = float(threshold)
        self.resize_short = resize_short
        self.finetune_iters = int(finetune_iters)
        self.finetune_lr = float(finetune_lr)
        self.finetune_batch = int(finetune_batch)
        self.finetune_per_object = bool(finetune_per_object)
        if max_train_objects is not None and int(max_train_objects) < 1:
            raise ValueError(f"maskrnn: max_train_objects must be >= 1 or null, got {max_train_objects}")
        self.max_train_objects = None if max_train_objects is None else int(max_train_objects)
        self.needs_grad_at_test = self.finetune_iters > 0
        self.fusion = TwoStreamFusion(num_streams=int(appearance is not None) + int(flow_net is not None))
        self.localization = None
        if train_localization:
            c5, stride = self._probe_conv5(appearance)
            self.localization = LocalizationHead(in_channels=c5, spatial_scale=1.0 / stride,
                                                 roi_size=roi_size, fc_dim=fc_dim, pooler=pooler)
            if fc_init is not None:
                # The weights policy decides ("" = requested without a path): None means random
                # init is allowed (or the tensors come from a covering checkpoint).
                path = resolve_pretrained(fc_init or None, component="vgg16",
                                          key="method.backbone.weights",
                                          name="maskrnn localization fc6/fc7", module=self.localization)
                if path is not None:
                    self._load_fc(str(path))
        self.criterion = MaskRNNCriterion(box_weight=box_loss_weight, mask_reduction=mask_loss_reduction)
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std).view(1, 3, 1, 1), persistent=False)
        # Counts training steps (saved with the weights) to switch from the single-frame stage to
        # the recurrent stage, also across resumed runs.
        self.register_buffer("train_iter", torch.zeros((), dtype=torch.long))
        self.perturbation = MaskPerturbation(**{k: tuple(v) if isinstance(v, list) else v
                                                for k, v in (perturb or {}).items()})
        self._rng = np.random.default_rng(seed)
        self._seed = seed
        self.finetune_losses: dict[Any, list[float]] = {}  # set by ``finetune`` (per object id)

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> dict[str, Any]:
        """Build both streams from ``backbone`` and the flow estimator from ``flow``.

        Config keys (besides the constructor's): ``backbone`` (a BACKBONES config, e.g.
        ``{name: vgg16_side, weights: /path/vgg16.pth}``), ``flow`` (a FLOWS config),
        ``appearance_stream`` and ``flow_stream`` (Table 2 switches, default True),
        ``init_fc_from_backbone`` (fc6/fc7 from the backbone weights' ImageNet classifier).
        Pretrained files follow the weights policy (``vosbench.models.weights``): a missing
        ImageNet VGG-16 is an error unless random init is allowed.
        """
        cfg = dict(cfg)
        backbone = cfg.pop("backbone", {"name": "vgg16_side"})
        flow_cfg = cfg.pop("flow", "dis")
        use_app = bool(cfg.pop("appearance_stream", True))
        use_flow = bool(cfg.pop("flow_stream", True))
        if cfg.pop("init_fc_from_backbone", False) and cfg.get("train_localization", True):
            cfg["fc_init"] = backbone.get("weights") or ""  # "": no path, the policy decides
        cfg["appearance"] = build(backbone, BACKBONES, in_channels=4) if use_app else None
        cfg["flow_net"] = None
        if use_flow:
            with weights_policy() as reports:
                cfg["flow_net"] = build(backbone, BACKBONES, in_channels=3)
            if any(r.status == "loaded" for r in reports):
                init_flow_stream_input(cfg["flow_net"])
        needs_flow = use_flow or bool(cfg.get("warp_mask", True))
        cfg["flow_estimator"] = build_flow(flow_cfg) if needs_flow and flow_cfg is not None else None
        return cfg

    def _load_fc(self, path: str) -> None:
        """Initialise fc6/fc7 from VGG-16's ImageNet classifier (Fast R-CNN initialisation)."""
        sd = read_state_dict(path, prefix="classifier.")
        head = self.localization
        pairs = {"fc6": "0", "fc7": "3"}
        for name, idx in pairs.items():
            layer = getattr(head, name)
            w, b = sd.get(f"{idx}.weight"), sd.get(f"{idx}.bias")
            if w is None or b is None or tuple(w.shape) != tuple(layer.weight.shape):
                raise ValueError(
                    f"{path}: classifier.{idx} {None if w is None else tuple(w.shape)} cannot "
                    f"initialise the localization {name} {tuple(layer.weight.shape)} (needs the "
                    "full VGG-16, fc_dim=4096, roi_size=7)")
            with torch.no_grad():
                layer.weight.copy_(w)
                layer.bias.copy_(b)

    @staticmethod
    def _probe_conv5(backbone: nn.Module) -> tuple[int, int]:
        """(channels, stride) of the backbone's conv5_3 (from ``output_shape()`` or one dry run)."""
        if hasattr(backbone, "output_shape"):
            shape = backbone.output_shape()
            spec = shape.get("conv5_3") if isinstance(shape, dict) else None
            if spec is not None:
                ch = getattr(spec, "channels", None) or spec["channels"]
                st = getattr(spec, "stride", None) or spec["stride"]
                return int(ch), int(st)
        with torch.no_grad():
            x = torch.zeros(1, 4, 64, 64)
            out = backbone(x)["conv5_3"]
        return int(out.shape[1]), 64 // int(out.shape[-1])

    @property
    def flow_estimator(self):
        return self._flow_holder[0]

    # ------------------------------------------------------------------ network
    def _flow_inputs(self, back_flow: Tensor | None, fwd_flow: Tensor | None) -> Tensor:
        """Flow stream magnitudes: Tensor[N, 2, H, W] flows -> Tensor[N, 2, H, W] in 0-1.

        Each magnitude map is divided by its maximum (at least 1 px), as flow magnitude images
        are rendered for MaskTrack/MaskRNN; this keeps the input range fixed across videos.
        """
        mags = []
        for f in (back_flow, fwd_flow):
            # == vosbench.models.flow.flow_magnitude(f); hypot is ~40x faster on CPU than the
            # vector_norm over dim -3 that flow_magnitude uses, and this runs every step.
            m = torch.hypot(f[:, 0:1], f[:, 1:2])  # [N, 1, H, W]
            peak = m.flatten(1).amax(dim=1).clamp(min=1.0).view(-1, 1, 1, 1)
            mags.append(m / peak)
        return torch.cat(mags, dim=1)

    def forward_objects(self, images: Tensor, prev: Tensor, mags: Tensor | None,
                        box_grad: bool = True) -> dict[str, Tensor]:
        """Run the per-object deep nets (objects are the batch dimension).

        Args:
            images: Tensor[N, 3, H, W] in 0-1, the current frame of each object.
            prev: Tensor[N, H, W] in 0-1, the (warped) previous mask ``phi(y_{t-1})``.
            mags: Tensor[N, 2, H, W] normalised flow magnitudes (None without a flow stream).
            box_grad: False runs the localization net without autograd (its deltas are then
                constants: the recurrent stage does not train it).
        Returns:
            dict with ``logits`` Tensor[N, H, W]; with a localization net also ``deltas``
            Tensor[N, 4], ``proposals`` Tensor[N, 4] and ``boxes`` Tensor[N, 4] (decoded, xyxy).
        """
        m = prev[:, None] * 2.0 - 1.0  # mask channel in [-1, 1], like the normalised RGB range
        sides, feats = [], None
        if self.appearance is not None:
            x = torch.cat([(images - self.pixel_mean) / self.pixel_std, m], dim=1)
            out = self.appearance(x)
            sides.append(out["side"])
            feats = out["conv5_3"]
        if self.flow_net is not None:
            x = torch.cat([mags * 2.0 - 1.0, m], dim=1)
            sides.append(self.flow_net(x)["side"])
        result = {"logits": self.fusion(sides)}
        if self.localization is not None:
            # Proposal: the box of the warped previous mask (full image when it is empty).
            proposals, _ = mask_boxes(prev.detach() > 0.5)
            with torch.set_grad_enabled(box_grad and torch.is_grad_enabled()):
                deltas = self.localization(feats, proposals)
            result.update(proposals=proposals, deltas=deltas,
                          boxes=decode_boxes(deltas.detach(), proposals))
        return result

    def restrict_to_boxes(self, probs: Tensor, boxes: Tensor) -> Tensor:
        """Zero ``probs`` (Tensor[N, H, W]) outside ``boxes`` (Tensor[N, 4]) enlarged by ``box_enlarge``."""
        size = tuple(probs.shape[-2:])
        keep = boxes_to_masks(enlarge_boxes(boxes, self.box_enlarge, size), size)
        return probs * keep.to(probs.dtype)

    # ----------------------------------------------------------------- training
    @torch.no_grad()
    def _clip_flows(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """Backward and forward flows of every clip frame.

        Args:
            images: Tensor[B, T, 3, H, W].
        Returns:
            (back Tensor[B, T, 2, H, W] = flow(I_t, I_{t-1}) (zero at t=0),
             fwd Tensor[B, T, 2, H, W] = flow(I_t, I_{t+1}) (the backward flow at the last frame,
             which has no successor in the clip)).
        """
        B, T = images.shape[:2]
        est = self.flow_estimator
        cur = images[:, 1:].reshape(-1, *images.shape[2:])
        prv = images[:, :-1].reshape(-1, *images.shape[2:])
        back_pairs = est(cur, prv).view(B, T - 1, 2, *images.shape[-2:])
        fwd_pairs = est(prv, cur).view(B, T - 1, 2, *images.shape[-2:])
        zero = torch.zeros_like(back_pairs[:, :1])
        back = torch.cat([zero, back_pairs], dim=1)
        fwd = torch.cat([fwd_pairs, back_pairs[:, -1:]], dim=1)
        return back.to(images.device), fwd.to(images.device)

    def _perturb(self, masks: Tensor, rng: np.random.Generator | None = None) -> Tensor:
        """Perturb Tensor[N, H, W] bool ground-truth masks (§4: dilation, deformation, resize,
        rotation, translation) -> Tensor[N, H, W] float. ``rng``: the generator to draw from
        (default: the training stream ``self._rng``)."""
        rng = self._rng if rng is None else rng
        out = [perturb_mask(m.cpu(), rng, self.perturbation) if bool(m.any()) else m.cpu()
               for m in masks]
        return torch.stack(out).to(device=masks.device, dtype=torch.float32) if out else \
            masks.float()

    def training_step(self, batch: VideoBatch) -> dict[str, Tensor]:
        """Losses of a batch of clips.

        Stage 1 (``train_iter < single_frame_iters`` or ``recurrent=False``): every pair
        (t-1, t) of every clip is an independent sample whose previous mask is the perturbed
        ground truth of frame t-1. Stage 2: each clip is unrolled from its ground truth at the
        object's first visible frame, feeding the own soft prediction forward, and the losses of
        all later frames are back-propagated through time.

        Args:
            batch: ``VideoBatch`` with ``images[B, T, 3, H, W]``, ``masks[B, T, O, H, W]``.
        Returns:
            ``{"loss_mask": Tensor[]}`` (+ ``"loss_box"`` when the localization net is trained).
        """
        if batch.num_frames < 2:
            raise ValueError(f"maskrnn: training clips need >= 2 frames, got {batch.num_frames}")
        dev = self.device
        images = batch.images.to(dev)
        gt = batch.masks.to(dev)
        valid_pix = ~(batch.pad | batch.void).to(dev)  # [B, T, H, W]
        annotated = batch.annotated.to(dev)
        pairs = batch.obj_valid.nonzero()  # [K, 2] (clip, object slot)
        if self.max_train_objects is not None:
            pairs = self._cap_objects(pairs)
        pairs = pairs.to(dev)
        stage_recurrent = self.recurrent and int(self.train_iter) >= self.single_frame_iters
        self.train_iter += 1
        if pairs.shape[0] == 0:
            # No object in the batch: zero losses that still reach every parameter.
            zero = sum(p.sum() * 0.0 for p in self.parameters())
            out = {"loss_mask": zero}
            if self.train_localization and (not stage_recurrent or self.recurrent_train_localization):
                out["loss_box"] = zero  # the same keys as a step with objects
            return out
        need_flow = self.flow_net is not None or self.warp_mask
        back, fwd = self._clip_flows(images) if need_flow else (None, None)
        if stage_recurrent:
            return self._recurrent_losses(images, gt, valid_pix, annotated, pairs, back, fwd)
        return self._single_frame_losses(images, gt, valid_pix, annotated, pairs, back, fwd)

    def _cap_objects(self, pairs: Tensor) -> Tensor:
        """At most ``max_train_objects`` random object slots per clip: Tensor[K, 2] -> Tensor[K', 2].

        Training memory grows with the objects of a clip (they are the batch of the per-object
        nets); the draw uses torch's global RNG (seeded by the trainer, restored on resume) and
        happens only for clips above the cap.
        """
        keep = []
        for b in pairs[:, 0].unique():
            rows = (pairs[:, 0] == b).nonzero()[:, 0]
            if rows.numel() > self.max_train_objects:
                rows = rows[torch.randperm(rows.numel())[:self.max_train_objects]].sort().values
            keep.append(rows)
        return pairs[torch.cat(keep)] if keep else pairs

    def _num_trained_frames(self, T: int) -> int:
        """Frames ``0..n-1`` of a T-frame clip that can be inputs/targets (see ``next_frame_flow``)."""
        if self.flow_net is not None and self.next_frame_flow:
            if T < 3:
                raise ValueError(
                    f"maskrnn: training clips of {T} frames are too short with the flow stream and "
                    "next_frame_flow=true (frame t needs t-1 for the warp and t+1 for the forward "
                    "flow): use trainer.clip.num_frames >= 3, or method.next_frame_flow=false")
            return T - 1
        return T

    def _losses(self, out, target, valid, weight, with_box: bool = True):
        kw = {}
        if self.train_localization and with_box:
            gt_boxes, visible = mask_boxes(target)
            kw = dict(deltas=out["deltas"], target_deltas=encode_boxes(gt_boxes, out["proposals"]),
                      box_weight=visible.float())
        return self.criterion(out["logits"], target, valid, weight, **kw)

    def _single_frame_losses(self, images, gt, valid_pix, annotated, pairs, back, fwd):
        T = self._num_trained_frames(images.shape[1])
        b, o = pairs[:, 0], pairs[:, 1]
        bidx = b.repeat(T - 1)
        oidx = o.repeat(T - 1)
        tidx = torch.arange(1, T, device=b.device).repeat_interleave(b.numel())
        prev_gt = gt[bidx, tidx - 1, oidx]  # [N, H, W]
        target = gt[bidx, tidx, oidx]
        # A sample needs a visible object in frame t-1 (otherwise there is nothing to propagate)
        # and ground truth in both frames.
        weight = (prev_gt.flatten(1).any(1) & annotated[bidx, tidx] & annotated[bidx, tidx - 1]).float()
        prev = self._perturb(prev_gt)
        img = images[bidx, tidx]
        if self.warp_mask:
            prev = warp(prev[:, None], back[bidx, tidx])[:, 0]
        mags = self._flow_inputs(back[bidx, tidx], fwd[bidx, tidx]) if self.flow_net is not None else None
        out = self.forward_objects(img, prev, mags)
        return self._losses(out, target, valid_pix[bidx, tidx], weight)

    def _recurrent_losses(self, images, gt, valid_pix, annotated, pairs, back, fwd):
        T = self._num_trained_frames(images.shape[1])
        b, o = pairs[:, 0], pairs[:, 1]
        seq = gt[b, :T, o]  # [K, T, H, W]
        visible = seq.flatten(2).any(2) & annotated[b, :T]  # [K, T]
        ar = torch.arange(T, device=b.device)
        # First visible frame of each object (T when never visible: no supervision at all).
        start = torch.where(visible, ar, T).min(dim=1).values  # [K]
        # §4: the recurrent stage "further optimize[s] the segmentation net"; the localization
        # net trained in stage 1 still predicts (and restricts) the boxes, without gradient.
        train_box = self.recurrent_train_localization
        own_prev = seq[:, 0].float()
        totals: dict[str, Tensor] = {}
        for t in range(1, T):
            # Before and at its start frame an object is fed its ground truth (teacher init),
            # afterwards its own prediction (the recurrence).
            use_own = (start < t - 1)[:, None, None]
            prev = torch.where(use_own, own_prev, seq[:, t - 1].float())
            img = images[b, t]
            if self.warp_mask:
                prev = warp(prev[:, None], back[b, t])[:, 0]
            mags = self._flow_inputs(back[b, t], fwd[b, t]) if self.flow_net is not None else None
            out = self.forward_objects(img, prev, mags, box_grad=train_box)
            weight = ((start < t) & annotated[b, t]).float()
            losses = self._losses(out, seq[:, t], valid_pix[b, t], weight, with_box=train_box)
            for k, v in losses.items():
                totals[k] = totals.get(k, 0.0) + v / (T - 1)
            probs = torch.sigmoid(out["logits"])
            if self.apply_localization:
                probs = self.restrict_to_boxes(probs, out["boxes"])
            own_prev = probs
        return totals

    # ---------------------------------------------------------------- inference
    def _work_size(self, orig: tuple[int, int]) -> tuple[int, int]:
        h, w = orig
        if self.resize_short is None or min(h, w) == self.resize_short:
            return h, w
        s = self.resize_short / min(h, w)
        return max(1, round(h * s)), max(1, round(w * s))

    def _image(self, sample: VideoSample, state: MaskRNNState, t: int, size) -> Tensor:
        if t not in state.images:
            img = sample.frames[t].image.to(self.device, torch.float32)
            if tuple(img.shape[-2:]) != tuple(size):
                img = F.interpolate(img[None], size=size, mode="bilinear", align_corners=False)[0]
            state.images[t] = img
        return state.images[t]

    def _flow(self, sample: VideoSample, cache: FlowCache | None, a: int, b: int,
              img_a: Tensor, img_b: Tensor) -> Tensor:
        if cache is not None:
            names = sample.frame_names or [str(i) for i in range(sample.num_frames)]
            return cache.get(sample.video_id, names[a], names[b], img_a, img_b)
        return self.flow_estimator(img_a, img_b).to(img_a.device)

    def init_state(self, sample: VideoSample, size: tuple[int, int]) -> MaskRNNState:
        obj_ids = sample.obj_ids
        join = torch.zeros(obj_ids.numel(), dtype=torch.int64)
        for t in sorted(sample.reference, reverse=True):
            for i in sample.reference[t].obj_ids.tolist():
                join[(obj_ids == i).nonzero()[0, 0]] = t
        return MaskRNNState(obj_ids=obj_ids, join_frame=join,
                            prev_masks=torch.zeros(obj_ids.numel(), *size, device=self.device))

    def _object_probs(self, images: Tensor, prev: Tensor, mags: Tensor | None) -> Tensor:
        """``b_t`` of N objects: Tensor[N, 3, H, W], Tensor[N, H, W], Tensor[N, 2, H, W] | None ->
        Tensor[N, H, W] probabilities (restricted to the enlarged predicted box when applied)."""
        out = self.forward_objects(images, prev, mags)
        p = torch.sigmoid(out["logits"])
        if self.apply_localization:
            p = self.restrict_to_boxes(p, out["boxes"])
        return p

    def _tunable(self) -> list[nn.Parameter]:
        """The parameters online fine-tuning changes (every trainable one), in a fixed order."""
        return [p for p in self.parameters() if p.requires_grad]

    @torch.no_grad()
    def _load_params(self, values: list[Tensor]) -> None:
        for p, v in zip(self._tunable(), values):
            p.copy_(v)

    def step(self, sample: VideoSample, state: MaskRNNState, size, cache) -> FramePrediction:
        """Predict frame ``state.t``: the N per-object nets, box restriction, argmax fusion.

        With per-object fine-tuning (``state.object_params``) each object runs through its own
        net (its parameters are loaded into the module in turn); otherwise the objects are one
        batch of the shared net. Returns the ``FramePrediction`` at the original size and
        updates ``state``.
        """
        t = state.t
        n = state.obj_ids.numel()
        H, W = sample.orig_size
        probs = torch.zeros(n, *size, device=self.device)
        active = (state.join_frame < t).to(self.device)  # objects already tracked
        if bool(active.any()):
            idx = active.nonzero()[:, 0]
            img = self._image(sample, state, t, size)
            prev = state.prev_masks[idx]
            back = fwd = None
            if self.flow_net is not None or self.warp_mask:
                back = self._flow(sample, cache, t, t - 1, img, self._image(sample, state, t - 1, size))
                if t + 1 < sample.num_frames:
                    fwd = self._flow(sample, cache, t, t + 1, img, self._image(sample, state, t + 1, size))
                else:
                    fwd = back  # the last frame has no successor: reuse the backward magnitude
            if self.warp_mask:
                prev = warp(prev[:, None], back)[:, 0]
            mags = None
            if self.flow_net is not None:
                mags = self._flow_inputs(back[None], fwd[None])  # [1, 2, h, w], same for all objects
            if state.object_params is None:
                k = idx.numel()
                p = self._object_probs(img[None].expand(k, -1, -1, -1), prev,
                                       None if mags is None else mags.expand(k, -1, -1, -1))
            else:
                rows = []
                for j, row in enumerate(idx.tolist()):
                    if state.loaded != row:
                        self._load_params(state.object_params[row])
                        state.loaded = row
                    rows.append(self._object_probs(img[None], prev[j:j + 1], mags))
                p = torch.cat(rows)
            probs[idx] = p
        # Objects whose reference mask is this frame: their ground truth is the prediction.
        ref = sample.reference.get(t)
        ref_rows: dict[int, Tensor] = {}
        if ref is not None:
            for i, m in zip(ref.obj_ids.tolist(), ref.masks):
                row = int((state.obj_ids == i).nonzero()[0, 0])
                ref_rows[row] = m.to(self.device)
                probs[row] = _resize_probs(m.to(self.device).float()[None], size)[0]
        # Argmax fusion at the working size (the recurrent state y_t) and at the original size.
        state.prev_masks = _fuse(probs, self.threshold).float()
        full = _resize_probs(probs, (H, W)) if tuple(size) != (H, W) else probs
        masks = _fuse(full, self.threshold)
        for row, m in ref_rows.items():  # keep the reference masks exact at the original size
            m = resize_masks(m.bool(), (H, W))  # dataset.resize_short: the reference comes resized
            masks[:, m] = False
            masks[row] = m
        # Drop frames no longer needed for the flow.
        for k in [k for k in state.images if k < t]:
            del state.images[k]
        state.t += 1
        return FramePrediction(index=t, masks=masks.cpu())

    def predict(self, sample: VideoSample) -> VideoPrediction:
        """Segment ``sample`` frame by frame (a generator; online fine-tuning runs first).

        The offline weights are restored when the generator finishes or is closed.
        ``meta["online_log"]`` gets one ``{"event": "finetune", "obj_id", "iters", "first_loss",
        "losses": {"loss": last}}`` per fine-tuned net (``obj_id`` is ``"shared"`` for the shared net).
        """
        obj_ids = sample.obj_ids
        n = obj_ids.numel()
        size = self._work_size(sample.orig_size)

        online_log: list[dict[str, Any]] = []  # filled when the frames are consumed

        def frames() -> Iterator[FramePrediction]:
            state = self.init_state(sample, size)
            cache = None
            if self.flow_cache_root and self.flow_estimator is not None:
                name = f"{sample.meta.get('dataset', 'dataset')}-{size[0]}x{size[1]}"
                cache = FlowCache(self.flow_cache_root, self.flow_estimator, name)
            # Offline weights, flags and train/eval modes come back when the video is done (or
            # the generator is closed early).
            with restore_weights(self):
                if self.finetune_iters > 0 and n > 0:
                    state.object_params = self.finetune(sample, size, cache)
                    for key, losses in self.finetune_losses.items():  # one event per tuned net
                        online_log.append({"event": "finetune", "obj_id": key, "iters": len(losses),
                                           "first_loss": losses[0] if losses else None,
                                           "losses": {"loss": losses[-1]} if losses else {}})
                self.eval()
                for _ in range(sample.num_frames):
                    with torch.no_grad():
                        fp = self.step(sample, state, size, cache)
                    yield fp

        return VideoPrediction(video_id=sample.video_id, obj_ids=obj_ids,
                               scores=torch.ones(n), labels=torch.full((n,), -1, dtype=torch.int64),
                               frames=frames(), orig_size=tuple(sample.orig_size),
                               num_frames=sample.num_frames,
                               meta={"method": "maskrnn", "online_log": online_log})

    # ------------------------------------------------------- online fine-tuning
    def _reference_inputs(self, sample: VideoSample, size, cache) -> dict[int, dict[str, Any]]:
        """Reference frame index -> ``{"image": Tensor[3, h, w], "masks": Tensor[K, h, w] bool,
        "obj_ids": list[int], "mags": Tensor[2, h, w] | None}`` at the working size.

        The flow magnitudes are the reference frame's own (to t-1 and t+1 where they exist).
        """
        state = MaskRNNState(obj_ids=sample.obj_ids, join_frame=torch.zeros(0),
                             prev_masks=torch.zeros(0))
        out = {}
        with torch.inference_mode(False), torch.no_grad():
            for t in sorted(sample.reference):
                img = self._image(sample, state, t, size).clone()
                ref = sample.reference[t]
                m = _resize_probs(ref.masks.to(self.device).float(), size) > 0.5
                mags = None
                if self.flow_net is not None:
                    nb = t - 1 if t > 0 else min(t + 1, sample.num_frames - 1)
                    na = t + 1 if t + 1 < sample.num_frames else nb
                    back = self._flow(sample, cache, t, nb, img, self._image(sample, state, nb, size))
                    fwd = self._flow(sample, cache, t, na, img, self._image(sample, state, na, size))
                    mags = self._flow_inputs(back[None].clone(), fwd[None].clone())[0]
                out[t] = {"image": img, "masks": m.clone(), "obj_ids": ref.obj_ids.tolist(), "mags": mags}
        return out

    def _finetune_on(self, images: Tensor, masks: Tensor, mags: Tensor | None,
                     key: list[int]) -> list[float]:
        """Fine-tune the module's weights in place on reference frames (§4).

        Args:
            images: Tensor[R, 3, h, w]; masks: Tensor[R, K, h, w] bool (every object row of a
                drawn frame is one sample); mags: Tensor[R, 2, h, w] or None.
            key: seeds the perturbation and augmentation generators together with ``seed``, so
                a video's result does not depend on the videos predicted before it.
        Returns:
            The loss of every iteration.
        """
        seq = np.random.SeedSequence([int(self._seed), *[int(k) for k in key]])
        rng = np.random.default_rng(seq)
        gen = torch.Generator().manual_seed(int(seq.generate_state(1, np.uint64)[0] >> 1))

        def loss_fn(imgs: Tensor, ms: Tensor, valid: Tensor, *ex: Tensor) -> Tensor:
            # imgs [R', 3, h, w], ms [R', K, h, w], valid [R', h, w] -> one sample per object.
            k = ms.shape[1]
            target = ms.flatten(0, 1)
            x_mags = ex[0].repeat_interleave(k, 0) if ex else None
            out = self.forward_objects(imgs.repeat_interleave(k, 0), self._perturb(target, rng), x_mags)
            weight = target.flatten(1).any(1).float()
            return sum(self._losses(out, target, valid.repeat_interleave(k, 0), weight).values())

        self.train()
        with torch.inference_mode(False), torch.enable_grad():
            losses = finetune_on_reference(
                loss_fn, self.parameters(), images, masks, num_iters=self.finetune_iters,
                lr=self.finetune_lr, batch_size=self.finetune_batch, lr_decay="linear",
                augment=FinetuneAugment(), extras=[] if mags is None else [mags], generator=gen)
        self.eval()
        return losses

    def finetune(self, sample: VideoSample, size, cache) -> list[list[Tensor]] | None:
        """Online fine-tuning on the reference masks (§4): no recurrence, augmented copies.

        ``vosbench.engine.online_finetune.finetune_on_reference`` draws ``finetune_batch``
        reference frames per iteration and warps each with a random affine transform (resize,
        rotation, crop, flip), jointly with its flow magnitudes. The previous-mask input of a
        sample is its perturbed (augmented) reference mask, as in the single-frame stage of
        offline training. Adam, lr ``finetune_lr`` decayed linearly to zero. Objects that join
        late are fine-tuned on their reference frame before the video starts (every reference
        mask is known upfront in the semi-supervised protocol).

        Per object (``finetune_per_object``, the paper): every object's net starts from the
        offline weights and is fine-tuned on that object's reference mask alone.

        Returns:
            Per object: for each row of ``sample.obj_ids`` the values of ``_tunable()`` after
            its fine-tuning (the offline values for an object with an empty reference mask);
            the module holds the offline weights again on return. Shared (per object off): None;
            the module's weights are fine-tuned in place on all reference objects jointly. The
            caller restores the offline weights (``restore_weights``) in both cases.
        Also sets ``self.finetune_losses``: ``{obj_id or "shared": [loss per iteration]}``.
        """
        refs = self._reference_inputs(sample, size, cache)
        self.finetune_losses: dict[Any, list[float]] = {}
        if not self.finetune_per_object:
            k_max = max(len(r["obj_ids"]) for r in refs.values())
            masks = []
            for r in refs.values():
                m = torch.zeros(k_max, *size, dtype=torch.bool, device=self.device)
                m[:len(r["obj_ids"])] = r["masks"]
                masks.append(m)
            masks_t = torch.stack(masks)
            if not bool(masks_t.any()):
                return None  # only empty reference masks: nothing to learn from
            mags = [r["mags"] for r in refs.values()]
            self.finetune_losses["shared"] = self._finetune_on(
                torch.stack([r["image"] for r in refs.values()]), masks_t,
                torch.stack(mags) if mags[0] is not None else None, key=[0])
            return None
        with torch.no_grad():
            offline = [p.detach().clone() for p in self._tunable()]
        tuned: list[list[Tensor]] = []
        for oid in sample.obj_ids.tolist():
            # The object's first reference frame (its join frame).
            t = min(t for t, r in refs.items() if oid in r["obj_ids"])
            r = refs[t]
            m = r["masks"][r["obj_ids"].index(oid)]
            if not bool(m.any()):
                tuned.append(offline)
                continue
            self._load_params(offline)
            self.finetune_losses[oid] = self._finetune_on(
                r["image"][None], m[None, None], None if r["mags"] is None else r["mags"][None],
                key=[1, oid])
            with torch.no_grad():
                tuned.append([p.detach().clone() for p in self._tunable()])
        self._load_params(offline)
        return tuned


def init_flow_stream_input(net: nn.Module) -> None:
    """Re-initialise the first kernel of an ImageNet-loaded flow stream for its own inputs.

    The flow stream's input is ``[|F_{t->t-1}|, |F_{t->t+1}|, phi(y_{t-1})]``, three channels, so
    an ImageNet VGG-16 loads unchanged and would treat the two magnitudes as R and G and the mask
    as B. Instead each magnitude channel gets half of the sum of the RGB filters (the same
    magnitude in both channels then gives exactly the response of a grey image of it), and the
    mask channel starts at zero, as the appearance stream's mask channel does
    (``extend_first_conv(mode="zeros")``): at initialisation the stream computes ImageNet
    features of the motion and learns to use the mask. The paper does not say how it
    initialises this stream.

    Args:
        net: a ``vgg16_side`` with ``in_channels=3`` whose ``features[0]`` holds RGB filters.
    """
    conv = net.features[0]
    with torch.no_grad():
        w = conv.weight  # [O, 3, k, k]: (R, G, B) filters
        grey = w.sum(dim=1, keepdim=True) / 2
        w.copy_(torch.cat([grey, grey, torch.zeros_like(grey)], dim=1))


def _resize_probs(probs: Tensor, size) -> Tensor:
    """Bilinear resize of Tensor[N, h, w] probabilities to ``size``."""
    if tuple(probs.shape[-2:]) == tuple(size) or probs.shape[0] == 0:
        return probs if probs.shape[0] else probs.new_zeros(0, *size)
    return F.interpolate(probs[None], size=tuple(size), mode="bilinear", align_corners=False)[0]


def _fuse(probs: Tensor, threshold: float) -> Tensor:
    """Argmax fusion (§3.2): Tensor[N, H, W] probs -> Tensor[N, H, W] bool, disjoint masks;
    a pixel goes to its most probable object if that probability exceeds ``threshold``."""
    rows = torch.arange(1, probs.shape[0] + 1, device=probs.device)
    index = probs_to_index(probs, rows, threshold)  # [H, W], 0 = background, row + 1 = object
    return index[None] == rows.view(-1, 1, 1)
