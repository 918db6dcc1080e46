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

import random
from collections import OrderedDict
from typing import Any, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models.detection.image_list import ImageList
from torchvision.ops import nms

from vosbench.config import build
from vosbench.models.base import VideoMethod
from vosbench.models.detector import MaskRCNNBase
from vosbench.registry import BACKBONES, METHODS
from vosbench.structures import FramePrediction, VideoBatch, VideoPrediction, VideoSample
from vosbench.structures.masks import masks_to_boxes

from .heads import MaskPropagationHead, MaskRefinementHead
from .losses import propagation_loss, refinement_loss
from .tracking import ClipTrack, GreedyMaskLinker, VideoAggregator, VideoLevelLinker


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
                 boxes: Tensor, class_probs: Tensor, masks_full: Tensor, masks_grid: Tensor) -> None:
        self.feat = feat                    # Tensor[1, C, gh, gw] propagation level
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
        max_instances: at most this many detections per frame (highest scores).
        match_thresh: eq. 5 threshold for reusing a video-level id.
        mask_thresh: binarisation of the final (refined) probabilities.
        max_labels: categories reported per video-level instance (each with its own score).
        weights: a vosbench checkpoint of the whole model to load (path; missing -> error).
        detector_weights: a torchvision Mask R-CNN state dict (e.g. COCO) to initialise the
            detector from (non-matching class heads are skipped and listed).
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
        if detector_weights:
            self.load_detector_weights(detector_weights)
        if weights:
            from vosbench.models.weights import load_weights

            load_weights(self, weights)

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> dict[str, Any]:
        cfg = dict(cfg)
        if isinstance(cfg.get("backbone"), dict) or hasattr(cfg.get("backbone"), "keys"):
            cfg["backbone"] = build(cfg["backbone"], BACKBONES)
        for k in ("min_size", "prop_dilations"):
            if isinstance(cfg.get(k), list):
                cfg[k] = tuple(cfg[k])
        return cfg

    def load_detector_weights(self, path: str) -> None:
        """Initialise the detector from a torchvision ``maskrcnn_*`` state dict (COCO weights).

        The torchvision key layout (``backbone.*``, ``rpn.*``, ``roi_heads.*``) is the detector's.
        Class-dependent layers whose shapes differ (81 COCO classes vs ours) are skipped; the
        skipped and missing keys are kept in ``self.detector_weights_report``.

        Raises:
            FileNotFoundError: ``path`` does not exist (nothing is downloaded).
        """
        from vosbench.models.weights import read_state_dict

        sd = read_state_dict(path)
        own = self.detector.state_dict()
        keep = {k: v for k, v in sd.items() if k in own and own[k].shape == v.shape}
        if not keep:
            raise ValueError(f"MaskProp detector_weights {path!r}: no key fits the detector "
                             f"(first keys: {sorted(sd)[:5]})")
        self.detector.load_state_dict(keep, strict=False)
        self.detector_weights_report = {"skipped": sorted(set(sd) - set(keep)),
                                        "missing": sorted(set(own) - set(keep))}

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
        image_list, targets_t, features, _ = self.detector.extract_features(images, targets)
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
            inst = padded_to_grid(targets_t[i_src]["masks"].float(), padded, grid)        # [N, gh, gw]
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
        """Run the detector on one frame and keep what the clips need."""
        det = self.detector
        image = image.to(self.device)
        out = det([image])
        d = out.detections[0]
        feat = out.features[self.prop_level]
        image_size = tuple(out.image_sizes[0])
        padded = tuple(int(s) * 1 for s in self._padded_size(out.features, feat))
        H, W = image.shape[-2:]
        boxes, scores, masks = d["boxes"], d["scores"], d["masks"][:, 0]
        keep = scores >= self.score_thresh
        boxes, scores, masks = boxes[keep], scores[keep], masks[keep]
        keep = nms(boxes, scores, self.agnostic_nms_thresh)[: self.max_instances]
        boxes, masks = boxes[keep], masks[keep]
        # full class distribution of each kept box (the detector returns one label per box)
        if len(boxes):
            sy, sx = image_size[0] / H, image_size[1] / W
            rb = boxes * torch.tensor([sx, sy, sx, sy], device=boxes.device)
            x = det.roi_features(out.features, [rb], [image_size], kind="box")
            logits, _ = det.roi_heads.box_predictor(det.roi_heads.box_head(x))
            class_probs = logits.softmax(-1)[:, 1:]
        else:
            class_probs = boxes.new_zeros((0, self.num_classes - 1))
        grid = tuple(feat.shape[-2:])
        masks_grid = image_to_grid(masks, image_size, padded, grid)
        return _FrameState(feat, image_size, padded, boxes, class_probs, masks, masks_grid)

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
        masks = []
        for f in frames:
            if f == center:  # the frame-level masks of the mask head
                masks.append(st.masks_grid)
            else:            # M^i_{t, t'}: propagated by the branch
                masks.append(self.propagation(st.feat, states[f].feat, st.masks_grid))     # [N, gh, gw]
        masks = torch.stack(masks, dim=1)                                                 # [N, F, gh, gw]
        return [ClipTrack(center, frames, masks[i].half() if masks.is_cuda else masks[i], st.class_probs[i])
                for i in range(masks.shape[0])]

    def _norm_image(self, image: Tensor) -> Tensor:
        tr = self.detector.transform
        mean = torch.as_tensor(tr.image_mean, device=image.device).view(3, 1, 1)
        std = torch.as_tensor(tr.image_std, device=image.device).view(3, 1, 1)
        return (image - mean) / std

    def refine_masks(self, image: Tensor, probs: Tensor) -> Tensor:
        """High-resolution refinement of low-resolution probabilities on one frame.

        Args:
            image: Tensor[3, H, W] in 0-1; probs: Tensor[N, H, W] upsampled low-res masks.
        Returns:
            Tensor[N, H, W] refined probabilities (unchanged rows for empty masks).
        """
        if self.refinement is None or probs.shape[0] == 0:
            return probs
        fg = probs > self.mask_thresh
        present = fg.flatten(1).any(1)
        if not present.any():
            return probs
        out = probs.clone()
        boxes = masks_to_boxes(fg[present].cpu()).to(probs.device)
        pb = self.refinement.patch_boxes(boxes)
        rgb, m = self.refinement.crop(self._norm_image(image), probs[present], pb)
        refined = torch.sigmoid(self.refinement(rgb, m))
        out[present] = self.refinement.paste(refined, pb, tuple(probs.shape[-2:]))
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
                states[t] = self._frame_state(sample.frames[t].image)
                sizes[t] = (states[t].image_size, states[t].padded_size)
            c = t - K
            if 0 <= c < n:
                tracks = self.clip_tracks(c, states, n)
                for tr, vid in zip(tracks, linker.add_clip(tracks)):
                    agg.add(tr, vid)
                states.pop(c - K, None)  # no later clip reaches back to c - K
        return self._prediction(sample, agg, sizes, refine=True)

    def _prediction(self, sample: VideoSample, agg: VideoAggregator, sizes: dict[int, tuple],
                    refine: bool) -> VideoPrediction:
        entries = agg.entries(self.max_labels, min_peak=self.mask_thresh)
        H, W = sample.orig_size if sample.orig_size != (0, 0) else sample.frames[0].size
        obj_ids = torch.arange(1, len(entries) + 1, dtype=torch.int64)
        scores = torch.tensor([e[2] for e in entries], dtype=torch.float32)
        labels = torch.tensor([e[1] for e in entries], dtype=torch.int64)
        seq_of_entry = [e[0] for e in entries]
        seqs = sorted(set(seq_of_entry))

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
                        probs = self.refine_masks(sample.frames[t].image.to(probs.device), probs)
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
        linker = GreedyMaskLinker(iou_thresh=self.link_iou_thresh, max_age=self.link_max_age)
        agg = VideoAggregator()
        sizes: dict[int, tuple] = {}
        for t in range(sample.num_frames):
            st = self._frame_state(sample.frames[t].image)
            sizes[t] = (st.image_size, st.padded_size)
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


__all__ = ["MaskProp", "MaskPropFrameLink", "image_to_grid", "grid_to_image"]
