"""LIP: convolutional gated recurrent Mask R-CNN (Lyu, Vosselman, Xia, Yang, 2019).

A Mask R-CNN (``vosbench.models.detector.MaskRCNNBase``, ResNet-101-FPN-GN) with a Conv-GRU
memory per FPN level + bottom-up path augmentation as its neck (``ConvGRUNeck``), an id head
(the class head predicting object ids), class-agnostic boxes/masks offline that become
class-specific online (Fig. 5), a 28x28 mask head with a RoI-feature shortcut (Fig. 4), and the
online inference constraints of §3.3/§5.1. See ``methods/lip/README.md`` for the component map.

Training (``training_step``) has two offline stages, picked by ``stage``:

* ``"image"`` (§4.1.1): every annotated frame is an independent image (COCO: ``dataset=coco``),
  hidden states are zero, the id head learns the dataset's classes (``num_ids: 80`` on COCO) or one
  generic foreground class (``num_ids: 1``), class-agnostic boxes/masks.
* ``"video"`` (§4.1.2): clips run through the recurrence; everything but the backbone trains;
  the gradient is stopped every ``recurrence`` frames (4 -> 8 frames); clips are reversed with
  probability ``reverse_prob``; GT boxes come from masks widened by ``box_widen`` (10 %); the id
  layer predicts the ids of the training set (video + object index).

Online (``predict``): per video, copies of the RPN and RoI heads are fine-tuned on each reference
frame (§4.2) and used with the one-maximum and location-continuity constraints; the offline
weights are never modified, so nothing has to be restored between videos.
"""
from __future__ import annotations

import copy
import hashlib
import time
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

import torch
from torch import Tensor, nn
from torchvision.models.detection.roi_heads import paste_masks_in_image
from torchvision.models.detection.transform import resize_boxes
from torchvision.ops import MultiScaleRoIAlign, box_iou

from vosbench.config import build
from vosbench.models.base import VideoMethod
from vosbench.models.detector import MaskRCNNBase, targets_from_masks
from vosbench.registry import BACKBONES, METHODS
from vosbench.structures import FramePrediction, VideoBatch, VideoPrediction, VideoSample
from vosbench.structures.masks import masks_to_boxes, probs_to_index, resize_masks

from vosbench_methods.lip.heads import ConvGRUNeck, IdBoxPredictor, ShortcutMaskPredictor
from vosbench_methods.lip.losses import HEAD_LOSSES, HeadEarlyStopping, LIPCriterion, focal_loss

STAGES = ("image", "video")


@dataclass
class LIPVideoState:
    """Everything LIP carries from one frame of a video to the next (per video, typed).

    Attributes:
        hidden: Conv-GRU hidden states, one ``Tensor[1, C, h_l, w_l]`` per FPN level, or None.
        heads: the per-video ``OnlineHeads`` (class-specific copies fine-tuned online), or None
            before the first reference frame.
        obj_ids: the object ids known so far; id class ``c`` (1-based) is ``obj_ids[c - 1]``.
        prev_boxes: obj id -> ``Tensor[4]`` xyxy box detected in the previous frame (original
            image coordinates); absent when not detected there.
        prev_scores: obj id -> id score of that detection.
        frame: index of the last processed frame.
        log: per-event records (fine-tuning iterations, active heads) for ``VideoPrediction.meta``.
    """

    hidden: tuple[Tensor, ...] | None = None
    heads: "OnlineHeads | None" = None
    obj_ids: list[int] = field(default_factory=list)
    prev_boxes: dict[int, Tensor] = field(default_factory=dict)
    prev_scores: dict[int, float] = field(default_factory=dict)
    frame: int = -1
    log: list[dict] = field(default_factory=list)


class OnlineHeads(nn.Module):
    """Per-video copies of the RPN and RoI heads (fine-tuned online; backbone + GRU stay shared
    and frozen, §4.2)."""

    def __init__(self, rpn: nn.Module, roi_heads: nn.Module) -> None:
        super().__init__()
        self.rpn = copy.deepcopy(rpn)
        self.roi_heads = copy.deepcopy(roi_heads)


def select_per_id(boxes: Tensor, scores: Tensor, labels: Tensor, obj_ids: Sequence[int],
                  prev_boxes: dict[int, Tensor], prev_scores: dict[int, float], *, topk: int = 10,
                  continuity_iou: float = 0.3, continuity_score: float = 0.4) -> tuple[list[int], list[int]]:
    """LIP's online constraints (§3.3, §5.1): at most one detection per id.

    For id class ``c`` (object ``obj_ids[c - 1]``) the ``topk`` best detections labelled ``c``
    are candidates (the caller already dropped scores <= 0.2). A candidate is suppressed by the
    location-continuity constraint when the object was detected in the previous frame with score
    > ``continuity_score`` and the candidate's box IoU with that box is < ``continuity_iou``.
    The one-maximum constraint keeps the best remaining candidate.

    Args:
        boxes: Tensor[D, 4] xyxy detections (same coordinates as ``prev_boxes``).
        scores: Tensor[D] id scores; labels: Tensor[D] id classes (1-based).
        obj_ids: object id of each class; prev_boxes / prev_scores: previous-frame detections.
    Returns:
        (indices into the detections, their id classes), at most one per id.
    """
    chosen_idx, chosen_cls = [], []
    for c, oid in enumerate(obj_ids, start=1):
        cand = torch.nonzero(labels == c).flatten()
        cand = cand[scores[cand].argsort(descending=True)][:topk]
        prev = prev_boxes.get(oid)
        check = prev is not None and prev_scores.get(oid, 0.0) > continuity_score
        for i in cand.tolist():
            if check and float(box_iou(boxes[i:i + 1], prev[None].to(boxes))[0, 0]) < continuity_iou:
                continue  # too far from where the object was: location-continuity constraint
            chosen_idx.append(i)  # one-maximum constraint: the best remaining candidate only
            chosen_cls.append(c)
            break
    return chosen_idx, chosen_cls


def online_id_labels(proposals: Tensor, boxes: Tensor, classes: Tensor, confident: Tensor, *,
                     fg_iou: float = 0.5, bg_iou: float = 0.5) -> Tensor:
    """Id labels of a frame's proposals for the id-head fine-tuning during inference (§3.3).

    The paper sets the box of a detection with a "high enough id prediction score" as ground
    truth. Each proposal is matched to the selected detection (one per tracked object) it
    overlaps most, as Mask R-CNN's RoI sampling matches proposals to ground truth:

    * positive (that detection's id class): IoU >= ``fg_iou`` and the detection is confident;
    * ignored (-1): IoU >= ``bg_iou`` with a detection that is not confident, or between the two
      thresholds. The object is tracked there, so it is no evidence for background; a score
      below the confidence threshold is no evidence for its id either;
    * negative (0, background): IoU < ``bg_iou`` with every selected detection.

    The thresholds default to the RoI heads' matcher (0.5 / 0.5, Mask R-CNN's); the caller
    passes the heads' own values.

    Args:
        proposals: Tensor[P, 4] xyxy; boxes: Tensor[K, 4] the selected detections (same
            coordinates); classes: Tensor[K] int64 their id classes (>= 1); confident: Tensor[K]
            bool, id score above the confidence threshold.
    Returns:
        Tensor[P] int64: id class, 0 (background) or -1 (ignored).
    """
    P = int(proposals.shape[0])
    if boxes.shape[0] == 0:
        return torch.zeros(P, dtype=torch.int64, device=proposals.device)
    best, arg = box_iou(proposals, boxes.to(proposals)).max(1)  # [P]
    classes = classes.to(proposals.device)
    confident = confident.to(proposals.device)
    labels = torch.full((P,), -1, dtype=torch.int64, device=proposals.device)
    labels[best < bg_iou] = 0
    pos = (best >= fg_iou) & confident[arg]
    labels[pos] = classes[arg][pos]
    return labels


def mirror_state(hidden: Sequence[Tensor], *, content_width: int, padded_width: int) -> tuple[Tensor, ...]:
    """Mirror a Conv-GRU memory horizontally about the image content (online hflip view).

    A frame of ``content_width`` resized pixels is padded on the right to ``padded_width``
    (a multiple of 32); its mirror image is padded on the right as well, so flipping the whole
    padded map would shift the content by the padding. Cell ``j`` of a level with ``w`` cells
    (stride ``s = padded_width / w``) is centred at ``x = (j + 0.5) s``; the mirrored frame shows
    there what the frame shows at ``content_width - x``, i.e. at cell position ``n - 1 - j`` with
    ``n = content_width / s`` (fractional when the content is not a multiple of the stride:
    linear interpolation of the two neighbouring cells). Cells centred in the padding keep the
    padding cells' state. With ``content_width == padded_width`` this is a plain flip.

    Args:
        hidden: per level Tensor[B, C, h_l, w_l] (one video, all levels of one frame).
        content_width, padded_width: resized image width and batched (padded) width, pixels.
    Returns:
        tuple of Tensor[B, C, h_l, w_l].
    """
    out = []
    for h in hidden:
        w = int(h.shape[-1])
        n = w * float(content_width) / float(padded_width)
        j = torch.arange(w, device=h.device, dtype=torch.float64)
        src = (n - 1 - j).clamp(0, w - 1)
        lo = src.floor().long().clamp(max=max(w - 2, 0))
        hi = (lo + 1).clamp(max=w - 1)
        frac = (src - lo).to(h.dtype)
        mirrored = h[..., lo] * (1 - frac) + h[..., hi] * frac
        inside = ((j + 0.5) < n).to(h.device)
        out.append(torch.where(inside, mirrored, h))
    return tuple(out)


def _key_hash(video_id: str, obj_id: int) -> int:
    """Stable 62-bit id of (video, object) for the training-id table (no Python ``hash``)."""
    h = hashlib.blake2b(f"{video_id}\x00{int(obj_id)}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "little") >> 2


@METHODS.register("lip")
class LIP(VideoMethod):
    """Convolutional gated recurrent Mask R-CNN for semi-supervised VOS.

    Args (keyword-only; paper values in ``configs/method/lip.yaml``):
        backbone: FPN backbone module (``BACKBONES`` contract, keys '0'..'3', 'pool').
        stage: offline training stage, ``"image"`` or ``"video"`` (see module docstring).
        num_ids: id classes of the offline id layer (without background). Image stage: the
            dataset's classes (80 on COCO, labels 1..80) or 1 (one foreground class); video stage:
            the capacity of the training-id table.
        zero_hidden_state: Table-3 ablation, hidden states fixed at zero (train and test).
        gru_kernel, norm_groups, path_augmentation: Conv-GRU / GN / PANet-style augmentation.
        min_size, max_size: input resize (torchvision semantics; a tuple of min sizes trains
            multi-scale).
        anchor_sizes, aspect_ratios: RPN anchors (5 levels).
        representation_size: box/id head MLP width.
        mask_head_channels, mask_head_convs: 28x28 mask tower.
        rpn_batch_size_per_image, box_batch_size_per_image: sampled anchors / RoIs per image
            (512 RoIs in pre-training, 128 in video fine-tuning).
        rpn_pre_nms_top_n_*, rpn_post_nms_top_n_*: proposals per level before / per image after
            RPN NMS (torchvision semantics).
        recurrence: frames between gradient stops in video training (4).
        reverse_prob: probability of reversing a training clip (time-reversal augmentation).
        box_widen: relative widening of GT boxes from masks (0.1).
        freeze_backbone_in_video: do not train the backbone in the video stage (paper).
        finetune_iters, finetune_lr, finetune_thresholds, finetune_hflip, focal_gamma: online
            fine-tuning on each reference frame (at most ``finetune_iters`` SGD steps; a head whose
            loss is below its threshold is ignored, all ignored -> stop).
        finetune_memory_view: also fine-tune on the reference frame seen a second time through
            the memory it has just written (``h = GRU(x, GRU(x, h_in))``, a one-frame static
            video), so the heads are not adapted to zero-memory features only (off in the paper
            recipe; a deviation, see methods/lip/README.md). Ignored with ``zero_hidden_state``.
        topk_per_id, id_score_thresh: candidates kept per id (10 with score > 0.2).
        continuity_iou, continuity_score: location-continuity constraint (0.3, 0.4).
        online_id_iters, online_id_score, online_id_lr, online_id_loss_thresh: light fine-tuning
            of the last id layer during inference, from detections above ``online_id_score``
            (0 iterations disables it).
        mask_threshold: probability threshold of the merged label map.
        weights: optional path of a trained vosbench checkpoint / state dict to load.
        pretrained: optional path of an earlier-stage checkpoint whose id layer is replaced
            (a fresh last id layer, §4.1.2) when its size differs.
    """

    needs_grad_at_test = True

    def __init__(
        self,
        *,
        backbone: nn.Module,
        stage: str = "video",
        num_ids: int = 1,
        zero_hidden_state: bool = False,
        gru_kernel: int = 3,
        norm_groups: int = 32,
        path_augmentation: bool = True,
        min_size: int | Sequence[int] = 480,
        max_size: int = 1333,
        anchor_sizes: Sequence[Sequence[int]] = ((32,), (64,), (128,), (256,), (512,)),
        aspect_ratios: Sequence[float] = (0.2, 0.5, 1.0, 2.0, 5.0),
        representation_size: int = 1024,
        mask_head_channels: int = 256,
        mask_head_convs: int = 4,
        rpn_batch_size_per_image: int = 256,
        box_batch_size_per_image: int = 128,
        rpn_pre_nms_top_n_train: int = 2000,
        rpn_pre_nms_top_n_test: int = 1000,
        rpn_post_nms_top_n_train: int = 2000,
        rpn_post_nms_top_n_test: int = 1000,
        recurrence: int = 4,
        reverse_prob: float = 0.5,
        box_widen: float = 0.1,
        freeze_backbone_in_video: bool = True,
        finetune_iters: int = 1000,
        finetune_lr: float = 0.002,
        finetune_thresholds: dict[str, float] | None = None,
        finetune_hflip: bool = True,
        finetune_memory_view: bool = False,
        focal_gamma: float = 2.0,
        topk_per_id: int = 10,
        id_score_thresh: float = 0.2,
        continuity_iou: float = 0.3,
        continuity_score: float = 0.4,
        online_id_iters: int = 500,
        online_id_score: float = 0.8,
        online_id_lr: float = 0.01,
        online_id_loss_thresh: float = 0.05,
        mask_threshold: float = 0.5,
        weights: str | None = None,
        pretrained: str | None = None,
    ) -> None:
        super().__init__()
        if stage not in STAGES:
            raise ValueError(f"LIP: stage must be one of {STAGES}, got {stage!r}")
        if num_ids < 1:
            raise ValueError(f"LIP: num_ids must be >= 1, got {num_ids}")
        if len(anchor_sizes) != 5:
            raise ValueError(f"LIP: the RPN runs on 5 FPN levels, got {len(anchor_sizes)} anchor sizes")
        c = backbone.out_channels
        # The backbone parameters its builder left trainable (``trainable_layers``): the stages
        # only ever freeze/unfreeze within this set, so a frozen stem stays frozen in stage 1.
        self._backbone_trainable = frozenset(n for n, p in backbone.named_parameters() if p.requires_grad)
        self.stage = stage
        self.num_ids = num_ids
        self.zero_hidden_state = zero_hidden_state
        self.recurrence = recurrence
        self.reverse_prob = reverse_prob
        self.box_widen = box_widen
        self.freeze_backbone_in_video = freeze_backbone_in_video
        self.finetune_iters = finetune_iters
        self.finetune_lr = finetune_lr
        self.finetune_thresholds = dict({"rpn": 0.05, "id": 0.05, "box": 0.05, "mask": 0.15}
                                        if finetune_thresholds is None else finetune_thresholds)
        HeadEarlyStopping(self.finetune_thresholds)  # validate the head names now
        self.finetune_hflip = finetune_hflip
        self.finetune_memory_view = finetune_memory_view
        self.topk_per_id = topk_per_id
        self.id_score_thresh = id_score_thresh
        self.continuity_iou = continuity_iou
        self.continuity_score = continuity_score
        self.online_id_iters = online_id_iters
        self.online_id_score = online_id_score
        self.online_id_lr = online_id_lr
        self.online_id_loss_thresh = online_id_loss_thresh
        self.mask_threshold = mask_threshold
        self.criterion = LIPCriterion(id_loss="focal", focal_gamma=focal_gamma)

        neck = ConvGRUNeck(channels=c, kernel_size=gru_kernel, num_groups=norm_groups,
                           zero_hidden_state=zero_hidden_state, path_augmentation=path_augmentation)
        num_classes = num_ids + 1
        self.detector = MaskRCNNBase(
            backbone=backbone, num_classes=num_classes, class_agnostic=True, neck=neck,
            min_size=min_size, max_size=max_size,
            roi_featmap_names=("0", "1", "2", "3"),  # RoI heads on the 4 lower levels (Fig. 3)
            anchor_sizes=tuple(tuple(a) for a in anchor_sizes), aspect_ratios=tuple(aspect_ratios),
            representation_size=representation_size,
            box_predictor=IdBoxPredictor(representation_size, num_classes, class_agnostic=True),
            mask_head=nn.Identity(),  # the tower lives in the predictor (needs the RoI feature)
            mask_predictor=ShortcutMaskPredictor(
                in_channels=c, conv_channels=mask_head_channels, num_convs=mask_head_convs,
                num_classes=num_classes, class_agnostic=True, num_groups=norm_groups),
            rpn_batch_size_per_image=rpn_batch_size_per_image,
            box_batch_size_per_image=box_batch_size_per_image,
            rpn_pre_nms_top_n_train=rpn_pre_nms_top_n_train,
            rpn_pre_nms_top_n_test=rpn_pre_nms_top_n_test,
            rpn_post_nms_top_n_train=rpn_post_nms_top_n_train,
            rpn_post_nms_top_n_test=rpn_post_nms_top_n_test,
        )
        # RoIs are aligned at 28x28 for the mask head (§5.1; torchvision's default is 14x14).
        self.detector.roi_heads.mask_roi_pool = MultiScaleRoIAlign(
            featmap_names=["0", "1", "2", "3"], output_size=28, sampling_ratio=2)
        # Training-id table of the video stage: row r of the id layer (class r + 1) belongs to
        # the (video, object) whose stable hash is train_id_keys[r]; -1 = free. A tensor buffer,
        # so checkpoints stay plain tensor state dicts (weights_only loading).
        self.register_buffer("train_id_keys", torch.full((num_ids,), -1, dtype=torch.int64))
        self.load_report: dict[str, Any] = {}
        if pretrained:
            self.load_checkpoint(pretrained, replace_id_layer=True)
        if weights:
            self.load_checkpoint(weights, replace_id_layer=True)
        self.set_stage(stage)

    # ------------------------------------------------------------------ construction helpers
    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> dict[str, Any]:
        from vosbench.models.weights import weights_policy

        cfg = dict(cfg)
        bb = cfg.get("backbone")
        if isinstance(bb, dict) or (bb is not None and hasattr(bb, "keys") and not isinstance(bb, nn.Module)):
            # A trained LIP checkpoint (`weights`, or the earlier stage's `pretrained`) is loaded
            # strictly by __init__ and overwrites every backbone tensor: the ImageNet file is not
            # needed then (vosbench.models.weights, `covered_by`).
            with weights_policy(covered_by=cfg.get("weights") or cfg.get("pretrained") or None):
                cfg["backbone"] = build(bb, BACKBONES)
        for k in ("anchor_sizes", "aspect_ratios", "min_size"):
            v = cfg.get(k)
            if isinstance(v, list):
                cfg[k] = tuple(tuple(x) if isinstance(x, list) else x for x in v)
        if cfg.get("finetune_thresholds") is not None:
            cfg["finetune_thresholds"] = dict(cfg["finetune_thresholds"])
        return cfg

    def set_stage(self, stage: str) -> None:
        """Switch the offline training stage: ``"video"`` freezes the backbone (§4.1.2),
        ``"image"`` trains the backbone parameters its builder left trainable
        (``backbone.trainable_layers``; the others stay frozen in every stage)."""
        if stage not in STAGES:
            raise ValueError(f"LIP: stage must be one of {STAGES}, got {stage!r}")
        self.stage = stage
        frozen = stage == "video" and self.freeze_backbone_in_video
        for n, p in self.detector.backbone.named_parameters():
            p.requires_grad_(not frozen and n in self._backbone_trainable)

    def replace_id_layer(self, num_ids: int) -> None:
        """A fresh last id layer with ``num_ids`` + 1 outputs (§4.1.2), resetting the id table."""
        self.detector.roi_heads.box_predictor.replace_id_layer(num_ids + 1)
        self.detector.roi_heads.mask_predictor.num_classes = num_ids + 1
        self.detector.num_classes = num_ids + 1
        self.num_ids = num_ids
        self.train_id_keys = torch.full((num_ids,), -1, dtype=torch.int64, device=self.train_id_keys.device)

    def load_checkpoint(self, path: str, *, replace_id_layer: bool = False) -> None:
        """Load a trained LIP checkpoint (``weights_only``); every key must match.

        Args:
            replace_id_layer: when the file's id layer (``cls_score``) or id table has another size,
                keep this model's fresh layer instead (the paper's id-layer replacement between
                stages and before online fine-tuning); any other mismatch is an error.
        """
        from vosbench.models.weights import load_state_dict_checked, read_state_dict

        sd = read_state_dict(path)
        own = self.state_dict()
        skipped = []
        if replace_id_layer:
            for k in list(sd):
                if (k.endswith("box_predictor.cls_score.weight") or k.endswith("box_predictor.cls_score.bias")
                        or k == "train_id_keys") and k in own and sd[k].shape != own[k].shape:
                    skipped.append(k)
                    sd.pop(k)
        load_state_dict_checked(self, {**{k: own[k] for k in skipped}, **sd}, strict=True, source=str(path))
        self.load_report = {"path": str(path), "replaced_id_layer": skipped}

    # ------------------------------------------------------------------ training
    def _train_ids(self, video_id: str, obj_ids: Tensor) -> Tensor:
        """Id classes (1-based) of ``obj_ids`` of ``video_id`` in the training-id table."""
        keys = self.train_id_keys
        out = []
        for o in obj_ids.tolist():
            h = _key_hash(video_id, o)
            hit = torch.nonzero(keys == h).flatten()
            if hit.numel() == 0:
                free = torch.nonzero(keys < 0).flatten()
                if free.numel() == 0:
                    raise RuntimeError(
                        f"LIP: more than num_ids={self.num_ids} training ids (video, object); raise "
                        "`num_ids` in the method config to the number of objects in the training set")
                keys[free[0]] = h
                hit = free[:1]
            out.append(int(hit[0]) + 1)
        return torch.tensor(out, dtype=torch.int64)

    def _targets(self, batch: VideoBatch, b: int, t: int, labels: Tensor, widen: float) -> dict[str, Tensor]:
        valid = batch.obj_valid[b]
        masks = batch.masks[b, t][valid]  # [O_b, H, W]
        return targets_from_masks(masks, labels, box_widen=widen)

    def training_step(self, batch: VideoBatch) -> dict[str, Tensor]:
        """Losses of one batch of clips (keys ``loss_*``: torchvision's Mask R-CNN losses).

        ``stage="image"``: all annotated frames as independent images, zero hidden state,
        per-class labels (``_image_labels``). ``stage="video"``: the clips run through the Conv-GRU.
        """
        self.detector.train()
        losses = self._image_step(batch) if self.stage == "image" else self._video_step(batch)
        # torchvision's "classifier" is LIP's id head.
        return {("loss_id" if k == "loss_classifier" else k): v for k, v in losses.items()}

    def _image_labels(self, batch: VideoBatch, b: int) -> Tensor:
        """Classes of clip ``b``'s objects in the image stage, Tensor[O_b] int64 in 1..num_ids.

        ``num_ids == 1``: one generic foreground class (class-agnostic data such as DAVIS frames).
        ``num_ids > 1``: the dataset's contiguous category labels (COCO: 1..80, §4.1.1 "learns to
        differentiate general objects by classes defined on Ms-COCO"); data without labels
        (``-1``) or with labels beyond ``num_ids`` is an error, never a silent class 1.
        """
        n = int(batch.obj_valid[b].sum())
        if self.num_ids == 1:
            return torch.ones(n, dtype=torch.int64)
        labels = batch.labels[b][batch.obj_valid[b]].to(torch.int64).cpu()
        bad = (labels < 1) | (labels > self.num_ids)
        if bool(bad.any()):
            vid = batch.samples[b].video_id if batch.samples else str(b)
            raise ValueError(
                f"LIP image stage: method.num_ids={self.num_ids} trains per-class labels 1..{self.num_ids}, "
                f"but {vid!r} has labels {labels.tolist()} (-1 = class-agnostic data); use a dataset "
                "with category labels (dataset=coco) or method.num_ids=1 (one foreground class)")
        return labels

    def _image_step(self, batch: VideoBatch) -> dict[str, Tensor]:
        images, targets, sizes = [], [], []
        clip_sizes = self.detector.draw_min_size(batch.batch_size)  # one scale per clip (§5.1)
        for b in range(batch.batch_size):
            labels = self._image_labels(batch, b)
            for t in range(batch.num_frames):
                if not bool(batch.annotated[b, t]):
                    continue
                images.append(batch.images[b, t])
                targets.append(self._targets(batch, b, t, labels, 0.0))
                sizes.append(clip_sizes[b])
        if not images:
            raise ValueError("LIP image stage: the batch has no annotated frame")
        out = self.detector(images, targets, neck_state=None, min_size=sizes)  # zero hidden states (§4.1.1)
        return out.losses

    def _video_step(self, batch: VideoBatch) -> dict[str, Tensor]:
        det = self.detector
        B, T = batch.batch_size, batch.num_frames
        labels = [self._train_ids(batch.samples[b].video_id if batch.samples else str(b),
                                  batch.obj_ids[b][batch.obj_valid[b]]) for b in range(B)]
        order = list(range(T))
        if self.reverse_prob > 0 and float(torch.rand(())) < self.reverse_prob:
            order = order[::-1]  # no causal reasoning in the task: reversed clips are new data
        frozen = self.freeze_backbone_in_video
        # One scale per clip, drawn once (training RNG) and used for every frame: the Conv-GRU
        # state keeps its shape and the memory never sees a scale change within a clip.
        clip_sizes = det.draw_min_size(B)
        state = None
        totals: dict[str, Tensor] = {}
        counted = 0
        for step, t in enumerate(order):
            if step and step % self.recurrence == 0 and state is not None:
                state = tuple(h.detach() for h in state)  # stop the gradient (4 -> 8 frames)
            images = [batch.images[b, t] for b in range(B)]
            targets = [self._targets(batch, b, t, labels[b], self.box_widen) for b in range(B)]
            image_list, targets_r = det.resize(images, targets, min_size=clip_sizes)
            with torch.set_grad_enabled(torch.is_grad_enabled() and not frozen):
                feats = det.backbone(image_list.tensors)
            feats, state = det.neck(feats, state)
            if not bool(batch.annotated[:, t].any()):
                continue  # no ground truth here: only the memory is updated
            image_list.original_sizes = [tuple(im.shape[-2:]) for im in images]  # type: ignore[attr-defined]
            # Frames without GT in some clips get empty targets (background-only images).
            targets_r = [tr if bool(batch.annotated[b, t]) else {k: v[:0] for k, v in tr.items()}
                         for b, tr in enumerate(targets_r)]
            _, losses = det.heads(image_list, feats, targets_r)
            for k, v in losses.items():
                totals[k] = totals[k] + v if k in totals else v
            counted += 1
        if not counted:
            raise ValueError("LIP video stage: the batch has no annotated frame")
        return {k: v / counted for k, v in totals.items()}

    # ------------------------------------------------------------------ online: heads
    def _grow_heads(self, st: LIPVideoState, new_ids: list[int]) -> None:
        """Add ``new_ids`` to the per-video heads: fresh id rows, class-specific box/mask rows
        copied from the offline class-agnostic weights (Fig. 5)."""
        det = self.detector
        keep = len(st.obj_ids) + 1 if st.heads is not None else 0  # bg + old objects
        if st.heads is None:
            st.heads = OnlineHeads(det.rpn, det.roi_heads)
        st.obj_ids += new_ids
        n = len(st.obj_ids) + 1
        rh = st.heads.roi_heads
        rh.box_predictor.replace_id_layer(n, keep=keep)  # a fresh last id layer (§4.2)
        rh.box_predictor.to_class_specific(det.roi_heads.box_predictor, keep=keep)
        rh.mask_predictor.num_classes = n
        rh.mask_predictor.to_class_specific(det.roi_heads.mask_predictor, keep=keep)
        # Score threshold of the per-id candidates (§5.1) and enough detections for 10 per id.
        rh.score_thresh = self.id_score_thresh
        rh.detections_per_img = max(100, self.topk_per_id * (n - 1))

    def _finetune(self, st: LIPVideoState, views: list[tuple[Any, dict, dict]]) -> dict:
        """Online fine-tuning (§4.2, §5.1) of the per-video heads on cached frame features.

        Args:
            views: (image_list, features, resized targets) per augmented view of the frame.
        Returns:
            a log record (iterations run, heads still active at the end, last losses, and
            ``loss_curve``: the summed loss of the active heads at every iteration).
        """
        heads = st.heads
        assert heads is not None
        heads.train()
        bp = heads.roi_heads.box_predictor
        bp.detach_id_input = True  # the id loss stops at the last FC layer (§5.1)
        opt = torch.optim.SGD([p for p in heads.parameters() if p.requires_grad],
                              lr=self.finetune_lr, momentum=0.9, weight_decay=1e-4)
        stopper = HeadEarlyStopping(self.finetune_thresholds)
        it, active, last, curve = 0, list(HEAD_LOSSES), {}, []
        try:
            for it in range(self.finetune_iters):
                image_list, feats, targets = views[it % len(views)]
                proposals, rpn_losses = heads.rpn(image_list, feats, [targets])
                losses = {**rpn_losses, **self.criterion.roi_losses(
                    heads.roi_heads, feats, proposals, image_list.image_sizes, [targets])}
                total, active = stopper.active_loss(losses)
                last = {k: float(v.detach()) for k, v in losses.items()}
                if total is None:  # every head below its threshold: early stop
                    break
                curve.append(round(float(total.detach()), 5))
                opt.zero_grad(set_to_none=True)
                total.backward()
                opt.step()
            else:
                it = self.finetune_iters
        finally:
            bp.detach_id_input = False
            heads.eval()
        return {"iters": it, "active_heads": active, "losses": last, "loss_curve": curve}

    def _finetune_id_layer(self, st: LIPVideoState, box_feats: Tensor, proposals: Tensor,
                           boxes: Tensor, classes: Tensor, confident: Tensor) -> int:
        """Light fine-tuning of the last id layer during inference (§3.3): confident detections
        become pseudo ground truth; features of this frame's proposals are reused. Labels:
        ``online_id_labels`` (proposals on a tracked but unconfident object are ignored, not
        negatives).

        Args:
            box_feats: Tensor[P, R] box-head representations of this frame's proposals.
            proposals: Tensor[P, 4]; boxes: Tensor[K, 4] every detection selected in this frame
                (resized coordinates); classes: Tensor[K] their id classes; confident:
                Tensor[K] bool, id score above ``online_id_score`` (the pseudo ground truth).
        Returns:
            iterations run.
        """
        rh = st.heads.roi_heads  # type: ignore[union-attr]
        labels = online_id_labels(proposals, boxes, classes, confident,
                                  fg_iou=rh.proposal_matcher.high_threshold,
                                  bg_iou=rh.proposal_matcher.low_threshold)
        keep = labels >= 0
        if not bool(keep.any()):
            return 0
        labels = labels[keep]
        layer = rh.box_predictor.cls_score
        opt = torch.optim.SGD(layer.parameters(), lr=self.online_id_lr, momentum=0.9)
        feats = box_feats.detach()[keep]
        it = 0
        for it in range(1, self.online_id_iters + 1):
            loss = focal_loss(layer(feats), labels, gamma=self.criterion.focal_gamma)
            if float(loss.detach()) < self.online_id_loss_thresh:
                break
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        return it

    # ------------------------------------------------------------------ online: detection
    def _detect(self, st: LIPVideoState, image_list, feats, size: tuple[int, int]
                ) -> tuple[dict[int, tuple[Tensor, float, Tensor]], int]:
        """Detect every known object in one frame with the §3.3 constraints.

        Returns:
            (obj id -> (box Tensor[4] in ``size`` coordinates, id score, mask probabilities
            Tensor[H, W] at ``size``), online id fine-tuning iterations)
        """
        rh = st.heads.roi_heads  # type: ignore[union-attr]
        sizes = image_list.image_sizes
        with torch.no_grad():
            proposals, _ = st.heads.rpn(image_list, feats)  # type: ignore[union-attr]
            box_feats = rh.box_head(rh.box_roi_pool(feats, proposals, sizes))
            logits, deltas = rh.box_predictor(box_feats)
            boxes, scores, labels = rh.postprocess_detections(logits, deltas, proposals, sizes)
        boxes, scores, labels = boxes[0], scores[0], labels[0]  # scores > id_score_thresh
        boxes_orig = resize_boxes(boxes, sizes[0], size)
        chosen_idx, chosen_cls = select_per_id(
            boxes_orig, scores, labels, st.obj_ids, st.prev_boxes, st.prev_scores,
            topk=self.topk_per_id, continuity_iou=self.continuity_iou,
            continuity_score=self.continuity_score)
        out: dict[int, tuple[Tensor, float, Tensor]] = {}
        ft_iters = 0
        if chosen_idx:
            idx = torch.tensor(chosen_idx)
            cls = torch.tensor(chosen_cls)
            with torch.no_grad():
                mlog = rh.mask_predictor(rh.mask_head(rh.mask_roi_pool(feats, [boxes[idx]], sizes)))
                probs = mlog[torch.arange(len(idx)), cls].sigmoid()[:, None]  # [K, 1, 28, 28]
                pasted = paste_masks_in_image(probs, boxes_orig[idx], size)[:, 0]  # [K, H, W]
            for j, (i, c) in enumerate(zip(chosen_idx, chosen_cls)):
                out[st.obj_ids[c - 1]] = (boxes_orig[i], float(scores[i]), pasted[j])
            conf = scores[idx] > self.online_id_score
            if self.online_id_iters > 0 and bool(conf.any()):
                with torch.enable_grad():
                    ft_iters = self._finetune_id_layer(st, box_feats, proposals[0], boxes[idx], cls, conf)
        return out, ft_iters

    # ------------------------------------------------------------------ online: streaming
    def _features(self, image: Tensor, hidden):
        with torch.no_grad():
            image_list, _, feats, new_hidden = self.detector.extract_features([image], None, hidden)
        return image_list, feats, new_hidden

    def _views(self, image: Tensor, hidden_in, image_list, feats, masks: Tensor, classes: Tensor,
               hidden_out=None) -> list:
        """Training views of a reference frame: the frame (+ its mirror image), resized targets.

        ``hidden_out`` (the state this frame wrote) adds, with ``finetune_memory_view``, the same
        views computed once more through that memory.
        """
        memory = self.finetune_memory_view and not self.zero_hidden_state and hidden_out is not None
        views = []

        def add(img: Tensor, msk: Tensor, il, fts, h_out) -> None:
            # Eval mode: the test size min_size[-1], the same as every frame of the video.
            _, tr = self.detector.resize([img], [targets_from_masks(msk, classes, box_widen=self.box_widen)])
            views.append((il, fts, tr[0]))
            if memory:
                il_m, fts_m, _ = self._features(img, h_out)
                views.append((il_m, fts_m, tr[0]))

        add(image, masks, image_list, feats, hidden_out)
        if self.finetune_hflip:
            # Mirror the input and its memory (exact at a video's first frame: zero state). The
            # memory is mirrored about the image content, not the padded canvas: the resized
            # frame is padded on the right to a multiple of 32 (DAVIS 854 -> 864), and the
            # mirrored frame is padded on the right too (mirror_state).
            flip_hidden = None if hidden_in is None else mirror_state(
                hidden_in, content_width=int(image_list.image_sizes[0][1]),
                padded_width=int(image_list.tensors.shape[-1]))
            il_f, feats_f, flip_out = self._features(image.flip(-1), flip_hidden)
            add(image.flip(-1), masks.flip(-1), il_f, feats_f, flip_out)
        return views

    def _step(self, sample: VideoSample, st: LIPVideoState, t: int, ids: list[int]) -> FramePrediction:
        """Process frame ``t``: memory update, detection, reference handling, merging."""
        H, W = sample.orig_size
        frame = sample.frames[t]
        dev = self.device
        image = frame.image.to(dev)
        h, w = int(image.shape[-2]), int(image.shape[-1])
        hidden_in = st.hidden
        image_list, feats, st.hidden = self._features(image, hidden_in)
        probs: dict[int, Tensor] = {}
        if st.heads is not None and st.obj_ids:
            dets, ft = self._detect(st, image_list, feats, (h, w))
            if ft:
                st.log.append({"frame": t, "event": "id_finetune", "iters": ft})
            st.prev_boxes = {o: d[0] for o, d in dets.items()}
            st.prev_scores = {o: d[1] for o, d in dets.items()}
            probs = {o: d[2] for o, d in dets.items()}
        ref = sample.reference.get(t)
        ref_masks: dict[int, Tensor] = {}
        if ref is not None and len(ref):
            for o, m in zip(ref.obj_ids.tolist(), resize_masks(ref.masks.to(dev), (h, w))):
                ref_masks[int(o)] = m.bool()
        # Merge into one label map: argmax of the pasted probabilities, reference masks on top.
        index = torch.zeros((h, w), dtype=torch.int64, device=dev)
        if probs:
            pid = list(probs)
            index = probs_to_index(torch.stack([probs[o] for o in pid]), pid, self.mask_threshold).to(dev)
        for o, m in ref_masks.items():
            index[m] = o
        if ref_masks:
            new_ids = [o for o in ref_masks if o not in st.obj_ids]
            if new_ids:
                self._grow_heads(st, new_ids)
            # Fine-tune on this frame: reference objects with their GT, objects already tracked
            # with this frame's (merged) prediction as pseudo GT when they were found.
            cls_of = {o: c for c, o in enumerate(st.obj_ids, start=1)}
            objs = [o for o in st.obj_ids if bool((index == o).any())]
            masks = torch.stack([index == o for o in objs]) if objs else torch.zeros((0, h, w), dtype=torch.bool)
            classes = torch.tensor([cls_of[o] for o in objs], dtype=torch.int64)
            with torch.enable_grad():
                views = self._views(image, hidden_in, image_list, feats, masks, classes, hidden_out=st.hidden)
                rec = self._finetune(st, views)
            st.log.append({"frame": t, "event": "finetune", **rec})
            for o, m in ref_masks.items():  # the reference box seeds the continuity constraint
                if bool(m.any()):
                    st.prev_boxes[o] = masks_to_boxes(m[None].cpu())[0].to(dev)
                    st.prev_scores[o] = 1.0
        st.frame = t
        masks = torch.stack([index == o for o in ids]) if ids else torch.zeros((0, h, w), dtype=torch.bool)
        masks = resize_masks(masks.cpu(), (H, W))
        return FramePrediction(index=t, masks=masks)

    def _stream(self, sample: VideoSample, ids: list[int], meta: dict) -> Iterator[FramePrediction]:
        st = LIPVideoState()
        was_training = self.training
        try:
            for t in range(sample.num_frames):
                self.eval()
                t0 = time.perf_counter()
                # Fine-tuning needs autograd even if the caller streams under inference mode.
                with torch.inference_mode(False), torch.no_grad():
                    fp = self._step(sample, st, t, ids)
                meta.setdefault("frame_seconds", []).append(time.perf_counter() - t0)
                self.train(was_training)
                yield fp
        finally:
            meta["online_log"] = st.log
            self.train(was_training)

    def predict(self, sample: VideoSample) -> VideoPrediction:
        """Segment one video, streaming ``FramePrediction``s (objects join at their reference frame).

        The per-video heads are copies, so the offline weights are untouched afterwards.
        """
        ids_t = sample.obj_ids
        ids = [int(i) for i in ids_t]
        n = len(ids)
        meta: dict = {"method": "lip"}
        if sample.num_frames == 0:
            raise ValueError(f"LIP.predict: video {sample.video_id!r} has no frames")
        return VideoPrediction(
            video_id=sample.video_id, obj_ids=ids_t, scores=torch.ones(n), labels=torch.full((n,), -1),
            frames=self._stream(sample, ids, meta), orig_size=tuple(sample.orig_size),
            num_frames=sample.num_frames, meta=meta)


__all__ = ["LIP", "LIPVideoState", "OnlineHeads", "mirror_state", "online_id_labels", "select_per_id"]
