"""MaskProp (Bertasius & Torresani, CVPR 2020) and its per-frame linking baseline.

``MaskProp`` = Mask R-CNN (``vosbench.models.detector.MaskRCNNBase``) + the mask propagation
branch on the stride-8 FPN map (``heads.MaskPropagationHead``) + the high-resolution mask
refinement (``heads.MaskRefinementHead``). Training uses frame pairs (clips) with a random gap;
inference builds clip-level tracks for a clip of ``2K + 1`` frames centred on every frame, links
them into video-level instances (``tracking.VideoLevelLinker``, eq. 4-5), averages the masks of
matched tracks and the classification scores per category (``tracking.VideoAggregator``).

``MaskPropFrameLink`` (registered ``maskprop_framelink``) is the baseline: the same detector
(same weights, the same checkpoint loads), propagation off, greedy mask-IoU linking of per-frame
detections.
"""
from __future__ import annotations

import contextlib
import logging
import os
import random
import time
from collections import OrderedDict
from typing import Any, Iterable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models.detection.image_list import ImageList
from torchvision.ops import FrozenBatchNorm2d, nms

from vosbench.config import build
from vosbench.models.base import VideoMethod
from vosbench.models.detector import MaskRCNNBase
from vosbench.registry import BACKBONES, METHODS
from vosbench.structures import FramePrediction, VideoBatch, VideoPrediction, VideoSample
from vosbench.structures.masks import masks_to_boxes

from .heads import MaskPropagationHead, MaskRefinementHead
from .losses import propagation_loss, refinement_loss
from .tracking import ClipTrack, GreedyMaskLinker, VideoAggregator, VideoLevelLinker

logger = logging.getLogger("vosbench")


# ----------------------------------------------------------------------------- grid helpers
def image_to_grid(masks: Tensor, image_size: tuple[int, int], padded_size: tuple[int, int],
                  grid_size: tuple[int, int]) -> Tensor:
    """Masks in original image coordinates -> the feature grid of the resized, padded batch.

    Args:
        masks: Tensor[N, H, W] in [0, 1] (original image coordinates).
        image_size: (h, w) after the detector's resize; padded_size: (Hp, Wp) of the batch tensor.
        grid_size: (gh, gw) of the feature map (Hp / stride, Wp / stride).
    Returns:
        Tensor[N, gh, gw] area-averaged masks.
    """
    if masks.shape[0] == 0:
        return masks.new_zeros((0, *grid_size), dtype=torch.float32)
    m = masks.float()
    if tuple(m.shape[-2:]) != tuple(image_size):
        m = F.interpolate(m[None], size=image_size, mode="bilinear", align_corners=False)[0]
    return padded_to_grid(m, padded_size, grid_size)


def padded_to_grid(masks: Tensor, padded_size: tuple[int, int], grid_size: tuple[int, int]) -> Tensor:
    """Tensor[N, h, w] (top-left part of the padded canvas) -> Tensor[N, gh, gw] area average."""
    h, w = masks.shape[-2:]
    m = F.pad(masks.float(), (0, padded_size[1] - w, 0, padded_size[0] - h))
    return F.adaptive_avg_pool2d(m[None], grid_size)[0]


def grid_to_image(masks: Tensor, image_size: tuple[int, int], padded_size: tuple[int, int],
                  orig_size: tuple[int, int]) -> Tensor:
    """Inverse of ``image_to_grid``: Tensor[N, gh, gw] -> Tensor[N, H, W] (bilinear)."""
    if masks.shape[0] == 0:
        return masks.new_zeros((0, *orig_size))
    up = F.interpolate(masks[None].float(), size=padded_size, mode="bilinear", align_corners=False)[0]
    up = up[:, :image_size[0], :image_size[1]]
    if tuple(image_size) != tuple(orig_size):
        up = F.interpolate(up[None], size=orig_size, mode="bilinear", align_corners=False)[0]
    return up


class _FrameState:
    """What inference keeps per frame while its clips are processed."""

    def __init__(self, feat: Tensor, image_size: tuple[int, int], padded_size: tuple[int, int],
                 boxes: Tensor, class_probs: Tensor, masks_full: Tensor, masks_grid: Tensor,
                 image: Tensor | None = None) -> None:
        self.feat = feat                    # Tensor[1, C, gh, gw] propagation level
        self.image = image                  # Tensor[3, H, W] in 0-1 (the flow baseline reads it)
        self.flows: dict[int, Tensor] = {}  # flow baseline: other frame b -> flow(I_this, I_b)
        self.parts: dict[str, Tensor] | None = None  # MaskPropagationHead.frame_parts(feat), lazily
        self.image_size = image_size
        self.padded_size = padded_size
        self.boxes = boxes                  # Tensor[K, 4] xyxy original coordinates
        self.class_probs = class_probs      # Tensor[K, C] foreground class probabilities
        self.masks_full = masks_full        # Tensor[K, H, W] probabilities, original coordinates
        self.masks_grid = masks_grid        # Tensor[K, gh, gw]


# ----------------------------------------------------------------------------------- model
@METHODS.register("maskprop")
class MaskProp(VideoMethod):
    """Video instance segmentation by mask propagation.

    Args (keyword-only):
        backbone: an FPN backbone (``BackboneWithFPN`` contract; config: a BACKBONES mapping).
        num_classes: categories + 1 (YouTube-VIS: 41).
        min_size, max_size: detector input resize (a tuple ``min_size`` = multi-scale training,
            the last value is used at test time).
        detector: extra ``MaskRCNNBase`` keyword arguments (anchor sizes, head widths, ...).
        prop_level: FPN level the propagation branch reads ('1': stride 8, the second-largest map).
        prop_offset_channels: width of the offset residual block (paper: 128).
        prop_dilations: deformable convolution dilations (paper: 3, 6, 12).
        prop_background_logit: add a "no instance" logit to the softmax across instances
            (not in the paper; see ``MaskPropagationHead``).
        refine: use the high-resolution refinement; refine_channels (128), refine_blocks (3),
            refine_patch (patch side, 384), refine_context (patch side / box side).
        prop_loss_weight, refine_loss_weight: weights of the propagation (eq. 2) and refinement
            losses next to the Mask R-CNN losses.
        det_loss_all_frames: Mask R-CNN losses on every annotated frame of the training clip
            (True) or only on the source frame of the propagation (False, as eq. 2's L_t).
        clip_radius: K, clips of 2K + 1 frames (paper: T = 13, K = 6).
        score_thresh: detections above it feed the mask and propagation branches (paper: 0.1).
        agnostic_nms_thresh: box IoU of the class-agnostic NMS that keeps one detection per
            object (the detector's NMS is per class).
        max_instances: at most this many detections per frame (highest scores after the
            score threshold and the class-agnostic NMS; not a paper value: the paper keeps every
            box above 0.1). It bounds the cost per frame: every kept detection is propagated to
            the 2K other frames of its clip (see ``MaskPropagationHead.propagate_clip``).
        match_thresh: eq. 5 threshold for reusing a video-level id.
        mask_thresh: binarisation of the final (refined) probabilities.
        max_labels: categories reported per video-level instance (each with its own score).
        prop_train_masks: the instance masks ``M_t^i`` that training propagates: ``"gt"`` (the
            source frame's ground truth, default) or ``"predicted"`` (the mask head's masks on the
            ground-truth boxes, detached: what test time propagates, from a detector in training).
        sparse_propagation: inference computes the propagation only on the cells each instance
            can reach (``propagate_clip``, exact); False: the dense ``forward`` per frame pair.
        refine_chunk: refinement patches per batch at output time (bounds the peak memory: one
            patch is ``refine_channels * refine_patch^2`` floats per activation).
        refine_max_per_frame: refine at most this many masks per frame, those of the
            highest-scored video-level instances (the others keep their upsampled mask); None:
            all. Not in the paper; bounds the refinement's cost per frame (see README).
        weights: a vosbench checkpoint of the whole model to load (path; missing -> error).
        detector_weights: a torchvision Mask R-CNN state dict (e.g. COCO) to initialise the
            detector from (any published layout; non-matching class heads keep their init and
            are listed); null: no detector file (the backbone's ImageNet file applies).
    """

    task = "vis"

    def __init__(
        self,
        *,
        backbone: nn.Module,
        num_classes: int = 41,
        min_size: int | Sequence[int] = (640, 672, 704, 736, 768, 800),
        max_size: int = 1333,
        detector: dict[str, Any] | None = None,
        prop_level: str = "1",
        prop_offset_channels: int = 128,
        prop_dilations: Sequence[int] = (3, 6, 12),
        prop_background_logit: bool = False,
        refine: bool = True,
        refine_channels: int = 128,
        refine_blocks: int = 3,
        refine_patch: int = 384,
        refine_context: float = 1.25,
        prop_loss_weight: float = 1.0,
        refine_loss_weight: float = 1.0,
        det_loss_all_frames: bool = True,
        clip_radius: int = 6,
        score_thresh: float = 0.1,
        agnostic_nms_thresh: float = 0.7,
        max_instances: int = 20,
        match_thresh: float = 0.3,
        mask_thresh: float = 0.5,
        max_labels: int = 3,
        prop_train_masks: str = "gt",
        sparse_propagation: bool = True,
        refine_chunk: int = 4,
        refine_max_per_frame: int | None = None,
        weights: str | None = None,
        detector_weights: str | None = None,
    ) -> None:
        super().__init__()
        det_kw = dict(detector or {})
        det_kw.setdefault("box_score_thresh", min(score_thresh, 0.05))
        self.detector = MaskRCNNBase(backbone=backbone, num_classes=num_classes, min_size=min_size,
                                     max_size=max_size, **det_kw)
        channels = backbone.out_channels
        self.num_classes = num_classes
        self.prop_level = str(prop_level)
        self.propagation = MaskPropagationHead(in_channels=channels, offset_channels=prop_offset_channels,
                                               dilations=prop_dilations,
                                               background_logit=prop_background_logit)
        self.refinement = (MaskRefinementHead(channels=refine_channels, num_blocks=refine_blocks,
                                              patch_size=refine_patch, context=refine_context)
                           if refine else None)
        self.prop_loss_weight = prop_loss_weight
        self.refine_loss_weight = refine_loss_weight
        self.det_loss_all_frames = det_loss_all_frames
        self.clip_radius = int(clip_radius)
        self.score_thresh = score_thresh
        self.agnostic_nms_thresh = agnostic_nms_thresh
        self.max_instances = max_instances
        self.match_thresh = match_thresh
        self.mask_thresh = mask_thresh
        self.max_labels = max_labels
        if prop_train_masks not in ("gt", "predicted"):
            raise ValueError(f"method.prop_train_masks must be 'gt' or 'predicted', got {prop_train_masks!r}")
        self.prop_train_masks = prop_train_masks
        self.sparse_propagation = bool(sparse_propagation)
        self.refine_chunk = max(1, int(refine_chunk))
        self.refine_max_per_frame = None if refine_max_per_frame is None else int(refine_max_per_frame)
        # predict() adds wall-clock seconds per stage here when it is a dict (benchmarks)
        self.profile: dict[str, float] | None = None
        from vosbench.models.weights import load_weights, weights_policy

        # The paper initialises from a COCO Mask R-CNN (§4.4): a given file is under the weights
        # policy (missing -> error unless allow_random_init); null means no COCO init (detector
        # pre-training from the ImageNet trunk, whose own policy applies). A trained checkpoint
        # `weights` overwrites every tensor (strict), so the COCO file is not needed then.
        self.detector_weights_report = None
        if detector_weights:
            with weights_policy(covered_by=weights or None):
                self.load_detector_weights(detector_weights)
        if weights:
            load_weights(self, weights)
        # The trunk is random when its ImageNet file was missing (no COCO file given) or when the
        # COCO file that was to cover it was missing (allow_random_init): either way, frozen
        # layers and frozen BatchNorm keep random values and identity statistics.
        # (load_torchvision_weights returns no report when the file was missing and random init
        # allowed.)
        reports = getattr(backbone, "_weights_reports", None)
        if detector_weights:
            trunk_random = self.detector_weights_report is None
        else:
            trunk_random = bool(reports) and all(r.status == "random" for r in reports)
        if trunk_random and not weights:
            self._warn_frozen_random_trunk(backbone)

    @staticmethod
    def _warn_frozen_random_trunk(backbone: nn.Module) -> None:
        """Frozen trunk layers keep what they hold: pretrained values normally, random ones when
        no file was loaded (allow_random_init), which no training can fix: say so."""
        body = getattr(backbone, "body", None)
        if body is None:
            return
        frozen = [n for n in ("conv1", "layer1", "layer2", "layer3", "layer4")
                  if hasattr(body, n) and not any(p.requires_grad for p in getattr(body, n).parameters())]
        frozen_bn = any(isinstance(m, FrozenBatchNorm2d) for m in body.modules())
        if frozen or frozen_bn:
            what = []
            if frozen:
                what.append(f"keeps {', '.join(frozen)} frozen at those values (backbone.trainable_layers)")
            if frozen_bn:
                # identity statistics: nothing normalises the activations, which grow through the
                # 50+ layers (the paper-size smoke from random init shows loss_mask ~ 1e4)
                what.append("normalises with frozen BatchNorm that has no statistics (mean 0, var 1)")
            logger.warning("MaskProp: the backbone starts from random weights and %s; losses from this "
                           "init are not meaningful. From random init use backbone.trainable_layers=5 "
                           "and backbone.norm=gn", " and ".join(what))

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> dict[str, Any]:
        from vosbench.models.weights import weights_policy

        cfg = dict(cfg)
        if isinstance(cfg.get("backbone"), dict) or hasattr(cfg.get("backbone"), "keys"):
            # A trained checkpoint (`weights`, loaded strictly by __init__) or the COCO detector
            # file (`detector_weights`: trunk + FPN are in it) overwrites every backbone tensor,
            # so the ImageNet file is not needed then (vosbench.models.weights, `covered_by`).
            cover = cfg.get("weights") or cfg.get("detector_weights") or None
            with weights_policy(covered_by=cover) as reports:
                cfg["backbone"] = build(cfg["backbone"], BACKBONES)
            # __init__ warns when the trunk ends up random with frozen layers (see there)
            cfg["backbone"]._weights_reports = list(reports)
        for k in ("min_size", "prop_dilations"):
            if isinstance(cfg.get(k), list):
                cfg[k] = tuple(cfg[k])
        return cfg

    def load_detector_weights(self, path: str | None) -> None:
        """Initialise the detector from a torchvision ``maskrcnn_*`` state dict (COCO weights).

        Goes through ``MaskRCNNBase.load_torchvision_weights``: any published layout (the COCO
        file is in the pre-0.13 one) loads through torchvision's upgrade hooks; every key must
        fit except the class-dependent layers (81 COCO classes vs ours), which keep their init.
        What was loaded / kept is in ``self.detector_weights_report`` (a ``LoadReport``).

        Raises:
            MissingWeightsError: no file (nothing is downloaded) and random init not allowed.
            WeightsError: the file does not fit the detector (keys listed).
        """
        self.detector_weights_report = self.detector.load_torchvision_weights(path)

    # --------------------------------------------------------------------------- training
    def training_step(self, batch: VideoBatch) -> dict[str, Tensor]:
        """Losses of a batch of training clips (frame pairs with a random gap, or longer clips).

        For each clip a random annotated frame with instances is the source ``t``; its ground
        truth instance masks are propagated to every other annotated frame of the clip (eq. 2
        sums over the clip; at ``t`` itself the clip track uses the mask head's masks) and
        compared with the soft IoU loss.

        Returns:
            ``loss_objectness, loss_rpn_box_reg, loss_classifier, loss_box_reg, loss_mask``
            (Mask R-CNN), ``loss_prop`` (eq. 2) and ``loss_refine``.
        """
        B, T = batch.images.shape[:2]
        dev = self.device
        images, targets = [], []
        for b in range(B):
            valid = batch.obj_valid[b]
            for t in range(T):
                images.append(batch.images[b, t].to(dev))
                m = batch.masks[b, t][valid].to(dev)
                ids = batch.obj_ids[b][valid].to(dev)
                labels = batch.labels[b][valid].to(dev)
                keep = m.flatten(1).any(1) if m.numel() else torch.zeros(0, dtype=torch.bool, device=dev)
                if not bool(batch.annotated[b, t]):
                    keep = torch.zeros_like(keep)
                if keep.any() and (labels[keep] < 1).any():
                    raise ValueError("MaskProp needs category labels >= 1 (a VIS dataset); got "
                                     f"{labels[keep].tolist()} in {batch.samples[b].video_id if batch.samples else b}")
                m, ids, labels = m[keep], ids[keep], labels[keep]
                targets.append({"boxes": masks_to_boxes(m.cpu()).to(dev), "labels": labels,
                                "masks": m.to(torch.uint8), "obj_ids": ids})
        # One scale per clip (drawn with the training RNG), the same for all T frames of a clip:
        # the propagation never learns to warp across a scale change that test time lacks.
        sizes = [s for s in self.detector.draw_min_size(B) for _ in range(T)]
        image_list, targets_t, features, _ = self.detector.extract_features(images, targets, min_size=sizes)
        # ---- Mask R-CNN losses
        src = []
        for b in range(B):
            cand = [t for t in range(T) if bool(batch.annotated[b, t]) and len(targets_t[b * T + t]["labels"])]
            src.append(random.choice(cand) if cand else None)
        if self.det_loss_all_frames:
            det_idx = [b * T + t for b in range(B) for t in range(T) if bool(batch.annotated[b, t])]
        else:
            det_idx = [b * T + s for b, s in enumerate(src) if s is not None]
        losses: dict[str, Tensor] = {}
        if det_idx:
            sub = ImageList(image_list.tensors[det_idx], [image_list.image_sizes[i] for i in det_idx])
            sub_feats = OrderedDict((k, v[det_idx]) for k, v in features.items())
            _, det_losses = self.detector.heads(sub, sub_feats, [targets_t[i] for i in det_idx])
            losses.update(det_losses)
        # ---- propagation (eq. 2) and refinement losses
        feat = features[self.prop_level]
        grid = tuple(feat.shape[-2:])
        padded = tuple(image_list.tensors.shape[-2:])
        prop_terms, refine_logits, refine_targets = [], [], []
        for b, s in enumerate(src):
            if s is None:
                continue
            i_src = b * T + s
            src_ids = targets_t[i_src]["obj_ids"]
            if self.prop_train_masks == "predicted":
                src_masks = self._predicted_masks_on_gt(features, i_src, targets_t[i_src],
                                                        tuple(image_list.image_sizes[i_src]))
            else:
                src_masks = targets_t[i_src]["masks"].float()
            inst = padded_to_grid(src_masks, padded, grid)                                # [N, gh, gw]
            for t in range(T):
                # the source frame's own masks come from the mask head (frame-level masks), so
                # only the other frames of the clip are propagation targets
                if t == s or not bool(batch.annotated[b, t]):
                    continue
                i_tgt = b * T + t
                probs = self.propagation(feat[i_src:i_src + 1], feat[i_tgt:i_tgt + 1], inst)
                probs = F.interpolate(probs[None], size=padded, mode="bilinear", align_corners=False)[0]
                gt = self._gt_for(targets_t[i_tgt], src_ids, padded)                          # [N, Hp, Wp]
                valid = torch.zeros(padded, dtype=torch.bool, device=dev)
                h, w = image_list.image_sizes[i_tgt]
                valid[:h, :w] = True
                prop_terms.append(propagation_loss(probs, gt, valid))
                if self.refinement is not None:
                    lg, tg = self._refine_train(image_list.tensors[i_tgt], probs.detach(), gt)
                    refine_logits.append(lg)
                    refine_targets.append(tg)
        zero = feat.sum() * 0.0
        losses["loss_prop"] = (self.prop_loss_weight * torch.stack(prop_terms).mean()
                               if prop_terms else zero + sum(p.sum() * 0.0 for p in self.propagation.parameters()))
        if self.refinement is not None:
            if refine_logits and sum(len(x) for x in refine_logits):
                losses["loss_refine"] = self.refine_loss_weight * refinement_loss(
                    torch.cat(refine_logits), torch.cat(refine_targets))
            else:
                losses["loss_refine"] = zero + sum(p.sum() * 0.0 for p in self.refinement.parameters())
        if not det_idx:  # no annotated instance at all: keep the graph connected, no signal
            for k in ("loss_objectness", "loss_rpn_box_reg", "loss_classifier", "loss_box_reg", "loss_mask"):
                losses[k] = zero + sum(p.sum() * 0.0 for p in self.detector.parameters())
        return losses

    @torch.no_grad()
    def _predicted_masks_on_gt(self, features: "OrderedDict[str, Tensor]", index: int,
                               target: dict[str, Tensor], image_size: tuple[int, int]) -> Tensor:
        """The mask head's masks for the ground-truth boxes of one training frame, detached.

        ``prop_train_masks="predicted"``: the propagation then learns from masks like the ones
        it gets at test time (the mask head's, with their errors) instead of the ground truth.
        The ground-truth boxes keep each mask tied to its object id (detections would need a
        matching step that can fail early in training); no gradient flows into the mask head
        from eq. 2, as at test time.

        Returns:
            Tensor[N, h, w] probabilities in the resized image (the ground truth's canvas).
        """
        from torchvision.models.detection.roi_heads import paste_masks_in_image

        det = self.detector
        boxes, labels = target["boxes"], target["labels"]
        h, w = target["masks"].shape[-2:]
        if len(boxes) == 0:
            return target["masks"].float()
        feats = OrderedDict((k, v[index:index + 1]) for k, v in features.items())
        x = det.roi_features(feats, [boxes], [image_size], kind="mask")                    # [N, C, 14, 14]
        logits = det.roi_heads.mask_predictor(det.roi_heads.mask_head(x))                 # [N, classes, 28, 28]
        probs = logits[torch.arange(len(labels), device=logits.device), labels].sigmoid()  # [N, 28, 28]
        return paste_masks_in_image(probs[:, None], boxes, (h, w), padding=1)[:, 0].detach()

    @staticmethod
    def _gt_for(target: dict[str, Tensor], obj_ids: Tensor, padded: tuple[int, int]) -> Tensor:
        """Ground truth of ``obj_ids`` on a target frame (zeros where absent) -> Tensor[N, Hp, Wp]."""
        out = torch.zeros((len(obj_ids), *padded), device=obj_ids.device)
        m = target["masks"]
        for n, oid in enumerate(obj_ids.tolist()):
            hit = (target["obj_ids"] == oid).nonzero()
            if len(hit):
                k = int(hit[0, 0])
                out[n, :m.shape[-2], :m.shape[-1]] = m[k].float()
        return out

    def _refine_train(self, image: Tensor, probs: Tensor, gt: Tensor) -> tuple[Tensor, Tensor]:
        """Refinement patches of one target frame: crops around jittered ground-truth boxes.

        Args:
            image: Tensor[3, Hp, Wp] normalised; probs: Tensor[N, Hp, Wp] propagated (detached);
            gt: Tensor[N, Hp, Wp].
        Returns:
            (logits Tensor[K, 1, S, S], targets Tensor[K, 1, S, S]) for the K present instances.
        """
        present = gt.flatten(1).any(1)
        if not present.any():
            s = self.refinement.patch_size
            return image.new_zeros((0, 1, s, s)), image.new_zeros((0, 1, s, s))
        boxes = masks_to_boxes(gt[present].bool().cpu()).to(image.device)
        wh = (boxes[:, 2:] - boxes[:, :2]).repeat(1, 2)
        boxes = boxes + (torch.rand_like(boxes) - 0.5) * 0.2 * wh   # +-10 % jitter: test boxes come from masks
        pb = self.refinement.patch_boxes(boxes)
        rgb, m = self.refinement.crop(image, probs[present], pb)
        _, tgt = self.refinement.crop(image, gt[present], pb)
        return self.refinement(rgb, m), (tgt > 0.5).float()

    # -------------------------------------------------------------------------- inference
    @torch.no_grad()
    def _frame_state(self, image: Tensor) -> _FrameState:
        """Run the detector on one frame and keep what the clips need.

        The Mask R-CNN test pass (torchvision's RPN, box branch, per-class NMS, mask branch,
        pasting), with the clip-level selection (score threshold, class-agnostic NMS,
        ``max_instances``) moved between the box and the mask branch: the mask head and the
        pasting then run on the kept boxes only (the mask of a box does not depend on the other
        boxes, so the result is the same; the mask head on the detector's up to 100 boxes cost
        ~46 GMAC per frame at the paper's width).
        """
        from torchvision.models.detection.roi_heads import maskrcnn_inference
        from torchvision.models.detection.transform import resize_boxes

        det = self.detector
        rh = det.roi_heads
        image = image.to(self.device)
        H, W = image.shape[-2:]
        image_list, _, features, _ = det.extract_features([image])
        proposals, _ = det.rpn(image_list, features)
        image_size = tuple(image_list.image_sizes[0])
        x = rh.box_head(rh.box_roi_pool(features, proposals, image_list.image_sizes))
        cls_logits, box_reg = rh.box_predictor(x)
        boxes_r, scores, labels = (v[0] for v in rh.postprocess_detections(
            cls_logits, box_reg, proposals, image_list.image_sizes))              # resized coordinates
        feat = features[self.prop_level]
        padded = tuple(int(s) * 1 for s in self._padded_size(features, feat))
        boxes = resize_boxes(boxes_r, image_size, (H, W))                         # original coordinates
        keep = scores >= self.score_thresh
        boxes, boxes_r, scores, labels = boxes[keep], boxes_r[keep], scores[keep], labels[keep]
        keep = nms(boxes, scores, self.agnostic_nms_thresh)[: self.max_instances]
        boxes, boxes_r, scores, labels = boxes[keep], boxes_r[keep], scores[keep], labels[keep]
        if len(boxes):
            mask_logits = rh.mask_predictor(rh.mask_head(rh.mask_roi_pool(features, [boxes_r], [image_size])))
            probs = maskrcnn_inference(mask_logits, [labels])[0]                    # [K, 1, 28, 28]
            masks = det.transform.postprocess([{"boxes": boxes_r, "masks": probs}], [image_size],
                                              [(H, W)])[0]["masks"][:, 0]          # [K, H, W]
        else:
            masks = image.new_zeros((0, H, W))
        # full class distribution of each kept box (the detector returns one label per box)
        if len(boxes):
            sy, sx = image_size[0] / H, image_size[1] / W
            rb = boxes * torch.tensor([sx, sy, sx, sy], device=boxes.device)
            x = det.roi_features(features, [rb], [image_size], kind="box")
            logits, _ = det.roi_heads.box_predictor(det.roi_heads.box_head(x))
            class_probs = logits.softmax(-1)[:, 1:]
        else:
            class_probs = boxes.new_zeros((0, self.num_classes - 1))
        grid = tuple(feat.shape[-2:])
        masks_grid = image_to_grid(masks, image_size, padded, grid)
        return _FrameState(feat, image_size, padded, boxes, class_probs, masks, masks_grid, image)

    def _padded_size(self, features: "OrderedDict[str, Tensor]", feat: Tensor) -> tuple[int, int]:
        """Padded batch size: the stride-4 map '0' times 4 (torchvision pads to a multiple of 32)."""
        f0 = features["0"] if "0" in features else feat
        stride = 4 if "0" in features else 8
        return int(f0.shape[-2]) * stride, int(f0.shape[-1]) * stride

    @torch.no_grad()
    def clip_tracks(self, center: int, states: dict[int, _FrameState], num_frames: int) -> list[ClipTrack]:
        """Clip-level tracks of the instances detected at ``center`` (propagated to t-K..t+K)."""
        st = states[center]
        if len(st.boxes) == 0:
            return []
        frames = list(range(max(0, center - self.clip_radius), min(num_frames, center + self.clip_radius + 1)))
        others = [f for f in frames if f != center]
        # M^i_{t, t'} for every other frame t' of the clip, all instances and targets at once
        prop = self.propagate_instances(center, others, states)                          # [N, F-1, gh, gw]
        # the centre frame keeps the frame-level masks of the mask head
        at = frames.index(center)
        masks = torch.cat([prop[:, :at], st.masks_grid[:, None], prop[:, at:]], dim=1)   # [N, F, gh, gw]
        return [ClipTrack(center, frames, masks[i].half() if masks.is_cuda else masks[i], st.class_probs[i])
                for i in range(masks.shape[0])]

    def propagate_instances(self, center: int, targets: list[int], states: dict[int, _FrameState]) -> Tensor:
        """The propagation branch on one clip: Tensor[N, len(targets), gh, gw] probabilities.

        Features of every frame come from ``states`` (one detector pass per frame, shared by the
        2K + 1 clips that contain it), and so do the per-frame terms of the offset block
        (``frame_parts``, computed once per frame); the N instances and the 2K targets of the
        clip go through the branch together (``MaskPropagationHead.propagate_clip``, exact), or
        through the dense ``forward`` per pair when ``sparse_propagation`` is off.
        """
        st = states[center]
        if not targets or len(st.masks_grid) == 0:
            return st.masks_grid.new_zeros((len(st.masks_grid), len(targets), *st.masks_grid.shape[-2:]))
        if self.sparse_propagation:
            head = self.propagation
            for f in [center, *targets]:
                if states[f].parts is None:
                    states[f].parts = head.frame_parts(states[f].feat)
            feats = torch.cat([states[f].feat for f in targets])                         # [T, C, gh, gw]
            tgt_parts = {k: torch.cat([states[f].parts[k] for f in targets]) for k in st.parts}
            return head.propagate_clip(st.feat, feats, st.masks_grid, src_parts=st.parts,
                                       tgt_parts=tgt_parts, stats=self.profile)
        return torch.stack([self.propagation(st.feat, states[f].feat, st.masks_grid) for f in targets], 1)

    def _norm_image(self, image: Tensor) -> Tensor:
        tr = self.detector.transform
        mean = torch.as_tensor(tr.image_mean, device=image.device).view(3, 1, 1)
        std = torch.as_tensor(tr.image_std, device=image.device).view(3, 1, 1)
        return (image - mean) / std

    def refine_masks(self, image: Tensor, probs: Tensor, priority: Tensor | None = None) -> Tensor:
        """High-resolution refinement of low-resolution probabilities on one frame.

        Args:
            image: Tensor[3, H, W] in 0-1; probs: Tensor[N, H, W] upsampled low-res masks.
            priority: Tensor[N] (e.g. the video-level scores): with ``refine_max_per_frame``
                set, only that many non-empty masks are refined, the highest first.
        Returns:
            Tensor[N, H, W] refined probabilities (unchanged rows for empty or unrefined masks).
        """
        if self.refinement is None or probs.shape[0] == 0:
            return probs
        fg = probs > self.mask_thresh
        present = fg.flatten(1).any(1)
        if not present.any():
            return probs
        out = probs.clone()
        idx = present.nonzero()[:, 0]
        cap = self.refine_max_per_frame
        if cap is not None and len(idx) > cap:
            # one patch costs refine_channels^2 * 9 * 6 * refine_patch^2 MACs (131 G at 128 /
            # 384): the cap keeps a frame's refinement cost bounded whatever the detector does
            pr = priority[idx] if priority is not None else torch.zeros(len(idx))
            idx = idx[torch.argsort(-pr.to(idx.device), stable=True)[:cap]].sort().values
        boxes = masks_to_boxes(fg[idx].cpu()).to(probs.device)
        pb = self.refinement.patch_boxes(boxes)
        norm = self._norm_image(image)
        # patches in chunks: one 384x384 patch of 128 channels is 75 MB per activation
        for s in range(0, len(idx), self.refine_chunk):
            rows, boxes_c = idx[s:s + self.refine_chunk], pb[s:s + self.refine_chunk]
            rgb, m = self.refinement.crop(norm, probs[rows], boxes_c)
            refined = torch.sigmoid(self.refinement(rgb, m))
            out[rows] = self.refinement.paste(refined, boxes_c, tuple(probs.shape[-2:]))
        return out

    @torch.no_grad()
    def predict(self, sample: VideoSample) -> VideoPrediction:
        """Video-level instances of ``sample`` (YouTube-VIS style: labels + scores + masks)."""
        n = sample.num_frames
        K = self.clip_radius
        states: dict[int, _FrameState] = {}
        sizes: dict[int, tuple] = {}
        linker = VideoLevelLinker(match_thresh=self.match_thresh)
        agg = VideoAggregator()
        for t in range(n + K):
            if t < n:
                with self._timed("detector"):
                    states[t] = self._frame_state(sample.frames[t].image)
                sizes[t] = (states[t].image_size, states[t].padded_size)
            c = t - K
            if 0 <= c < n:
                with self._timed("propagation"):
                    tracks = self.clip_tracks(c, states, n)
                with self._timed("linking"):
                    for tr, vid in zip(tracks, linker.add_clip(tracks)):
                        agg.add(tr, vid)
                states.pop(c - K, None)  # no later clip reaches back to c - K
        return self._prediction(sample, agg, sizes, refine=True)

    @contextlib.contextmanager
    def _timed(self, key: str) -> Iterator[None]:
        """Add the wall-clock seconds of the block to ``self.profile[key]`` (when profiling)."""
        if self.profile is None:
            yield
            return
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.profile[key] = self.profile.get(key, 0.0) + time.perf_counter() - t0

    def _prediction(self, sample: VideoSample, agg: VideoAggregator, sizes: dict[int, tuple],
                    refine: bool) -> VideoPrediction:
        entries = agg.entries(self.max_labels, min_peak=self.mask_thresh)
        H, W = sample.orig_size if sample.orig_size != (0, 0) else sample.frames[0].size
        obj_ids = torch.arange(1, len(entries) + 1, dtype=torch.int64)
        scores = torch.tensor([e[2] for e in entries], dtype=torch.float32)
        labels = torch.tensor([e[1] for e in entries], dtype=torch.int64)
        seq_of_entry = [e[0] for e in entries]
        seqs = sorted(set(seq_of_entry))
        seq_score: dict[int, float] = {}
        for v, _, sc in entries:
            seq_score[v] = max(seq_score.get(v, 0.0), sc)

        def frames() -> Iterator[FramePrediction]:
            for t in range(sample.num_frames):
                present = [(v, agg.mask(t, v)) for v in seqs]
                present = [(v, m) for v, m in present if m is not None]
                by_seq: dict[int, Tensor] = {}
                if present:
                    grid = torch.stack([m for _, m in present])
                    image_size, padded = sizes[t]
                    probs = grid_to_image(grid, image_size, padded, (H, W))
                    if refine and self.refinement is not None:
                        with self._timed("refinement"):
                            prio = torch.tensor([seq_score[v] for v, _ in present])
                            probs = self.refine_masks(sample.frames[t].image.to(probs.device), probs, prio)
                    by_seq = {v: (probs[k] > self.mask_thresh).cpu() for k, (v, _) in enumerate(present)}
                empty = torch.zeros((H, W), dtype=torch.bool)
                masks = torch.stack([by_seq.get(v, empty) for v in seq_of_entry]) if entries else \
                    torch.zeros((0, H, W), dtype=torch.bool)
                yield FramePrediction(index=t, masks=masks, scores=None)

        return VideoPrediction(sample.video_id, obj_ids, scores, labels, frames(), (H, W), sample.num_frames,
                               meta={"sequence_of_entry": seq_of_entry})


@METHODS.register("maskprop_framelink")
class MaskPropFrameLink(MaskProp):
    """Baseline: MaskProp's detector per frame, greedy mask-IoU linking, no propagation.

    Takes MaskProp's arguments (so ``maskprop`` checkpoints load unchanged) plus
    ``link_iou_thresh`` and ``link_max_age`` (see ``tracking.GreedyMaskLinker``). Masks are the
    detector's own (28x28 RoI masks pasted at full resolution); scores are averaged per category
    exactly as in MaskProp.
    """

    def __init__(self, *, link_iou_thresh: float = 0.3, link_max_age: int = 3, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.link_iou_thresh = link_iou_thresh
        self.link_max_age = link_max_age

    @torch.no_grad()
    def predict(self, sample: VideoSample) -> VideoPrediction:
        return self.link_frames(sample, (self._frame_state(f.image) for f in sample.frames))

    @torch.no_grad()
    def link_frames(self, sample: VideoSample, states: Iterable[_FrameState]) -> VideoPrediction:
        """Link given per-frame detector states (one per frame, in order) into video instances.

        ``predict`` feeds ``_frame_state`` of every frame; a grid search over the linking
        parameters (``benchmarks/maskprop_synthetic.py --tune-framelink``) feeds cached ones.
        """
        linker = GreedyMaskLinker(iou_thresh=self.link_iou_thresh, max_age=self.link_max_age)
        agg = VideoAggregator()
        for t, st in enumerate(states):
            # link at full resolution (the detector's masks); store on the grid like MaskProp
            # would be lossy, so keep the full-resolution masks as the frame observation
            ids = linker.step(t, st.masks_full)
            for k, vid in enumerate(ids):
                agg.add_frame_mask(t, vid, (st.masks_full[k] > self.mask_thresh).to(torch.uint8),
                                   st.class_probs[k])
        return self._full_res_prediction(sample, agg)

    def _full_res_prediction(self, sample: VideoSample, agg: VideoAggregator) -> VideoPrediction:
        entries = agg.entries(self.max_labels, min_peak=self.mask_thresh)
        H, W = sample.orig_size if sample.orig_size != (0, 0) else sample.frames[0].size
        seq_of_entry = [e[0] for e in entries]

        def frames() -> Iterator[FramePrediction]:
            empty = torch.zeros((H, W), dtype=torch.bool)
            for t in range(sample.num_frames):
                rows = []
                for v in seq_of_entry:
                    m = agg.mask(t, v)
                    rows.append(empty if m is None else (m > 0.5).cpu())
                masks = torch.stack(rows) if rows else torch.zeros((0, H, W), dtype=torch.bool)
                yield FramePrediction(index=t, masks=masks)

        return VideoPrediction(sample.video_id, torch.arange(1, len(entries) + 1, dtype=torch.int64),
                               torch.tensor([e[2] for e in entries], dtype=torch.float32),
                               torch.tensor([e[1] for e in entries], dtype=torch.int64),
                               frames(), (H, W), sample.num_frames,
                               meta={"sequence_of_entry": seq_of_entry})


@METHODS.register("maskprop_flowprop")
class MaskPropFlowProp(MaskProp):
    """Baseline: MaskProp with the propagation branch replaced by optical flow (Table 3's
    "FlowNet2 propagation": "exactly the same setup as for our MaskProp, except that instance
    masks are propagated using the optical flow").

    Per-frame detections of the same detector (same checkpoint), clips of 2K + 1 frames centred
    on every frame, eq. 4-5 linking, mask aggregation, per-category scoring and refinement are
    MaskProp's; only ``M^i_{t, t'}`` differs: the centre frame's full-resolution mask
    probabilities are backward-warped onto frame t' by optical flow from a FLOWS estimator
    (FlowNet2 is not available here: DIS, Farneback, or ``raft_small``/``raft_large`` with their
    local weights), then area-averaged to the same grid as MaskProp's clip tracks. The paper
    does not say whether the flow is computed between t and t' directly or chained through the
    frames in between: ``flow_chain`` chooses (chained: ``flow(I_s, I_{s-1})`` of consecutive
    frames, each computed once per video and shared by all clips, applied step by step).

    Args: MaskProp's (so ``maskprop`` checkpoints load unchanged; the propagation branch's
    weights are loaded but unused), plus
        flow: a FLOWS name or mapping (``configs/flow/*.yaml``), or a built ``FlowEstimator``.
        flow_chain: warp through consecutive frames (True) or with one flow from t' to t (False).
    """

    def __init__(self, *, flow: Any = "dis", flow_chain: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        from vosbench.models.flow import build_flow

        # kept outside the module tree: its tensors (RAFT) are not part of a maskprop checkpoint,
        # so the same checkpoint loads strictly into all three registered methods
        self.__dict__["flow"] = build_flow(flow)
        self.flow_chain = bool(flow_chain)

    def _pair_flow(self, states: dict[int, _FrameState], a: int, b: int) -> Tensor:
        """Tensor[2, H, W] = flow(I_a, I_b) (warps frame-b values onto frame a), cached on
        frame a's state (states leave the window with their frame, so the cache is bounded)."""
        cache = states[a].flows
        if b not in cache:
            flow = self.flow.to(states[a].image.device) if isinstance(self.flow, nn.Module) else self.flow
            cache[b] = flow(states[a].image, states[b].image)
        return cache[b]

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> dict[str, Any]:
        from vosbench.models.flow import FlowEstimator, build_flow

        cfg = super().from_config(cfg)
        if cfg.get("flow") is not None and not isinstance(cfg["flow"], FlowEstimator):
            cfg["flow"] = build_flow(dict(cfg["flow"]) if hasattr(cfg["flow"], "keys") else cfg["flow"])
        return cfg

    def propagate_instances(self, center: int, targets: list[int], states: dict[int, _FrameState]) -> Tensor:
        """Flow-warped centre masks on every target frame -> Tensor[N, len(targets), gh, gw]."""
        from vosbench.models.flow import warp

        st = states[center]
        grid = tuple(st.masks_grid.shape[-2:])
        if not targets or len(st.masks_full) == 0:
            return st.masks_grid.new_zeros((len(st.masks_grid), len(targets), *grid))
        out: dict[int, Tensor] = {}
        for sign in (-1, 1):
            m, prev = st.masks_full[:, None].float(), center                       # [N, 1, H, W]
            for f in sorted((t for t in targets if (t - center) * sign > 0), key=lambda t: abs(t - center)):
                if self.flow_chain:   # one step: frame prev -> frame f (consecutive frames)
                    m, prev = warp(m, self._pair_flow(states, f, prev)), f
                else:                 # directly from the centre frame
                    m = warp(st.masks_full[:, None].float(), self._pair_flow(states, f, center))
                tf = states[f]
                out[f] = image_to_grid(m[:, 0], tf.image_size, tf.padded_size, grid)
        return torch.stack([out[f] for f in targets], 1)


__all__ = ["MaskProp", "MaskPropFrameLink", "MaskPropFlowProp", "image_to_grid", "grid_to_image"]
