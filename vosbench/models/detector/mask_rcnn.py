"""A Mask R-CNN assembled from torchvision parts, open where video methods need it.

Compared with ``torchvision.models.detection.MaskRCNN`` this adds three things and re-implements
nothing else (RPN, RoI sampling, losses, box decoding, NMS and mask pasting are torchvision's):

(a) a stateful ``neck`` between the backbone and the RPN/RoI heads:
    ``neck(features: OrderedDict[str, Tensor[B, C, h, w]], state) -> (features, new_state)``.
    LIP inserts its conv-GRU memory + path augmentation here; the state is per video.
(b) box and mask predictors that are class-agnostic or class-specific, with
    ``to_class_specific()`` copying the agnostic weights to every class, so outputs are identical
    right after the switch (LIP Fig. 5).
(c) the FPN maps and per-instance RoI features are returned / exposed (MaskProp's propagation
    branch reads the stride-8 map).

Images go in as ``list[Tensor[3, H, W]]`` in 0-1; normalisation and resizing are done by
torchvision's ``GeneralizedRCNNTransform`` (mean/std are its buffers), through ``ClipTransform``,
which adds (d) one scale per clip: torchvision draws a new short side from ``min_size`` for every
image, which gives the frames of one clip different sizes (a recurrent state or a propagation
between frames then sees a scale change that never happens at test time). ``draw_min_size()``
draws one value (torch's global RNG: seeded by the trainer and saved in its checkpoints, so a
resumed run draws the same) and ``resize / extract_features / forward(..., min_size=s)`` apply it
to every image of the call (or one value per image). Test time uses ``min_size[-1]``.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
import contextlib
import os
from typing import Any, Iterator, Protocol, Sequence

import torch
from torch import Tensor, nn
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import TwoMLPHead
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads
from torchvision.models.detection.roi_heads import RoIHeads
from torchvision.models.detection.rpn import RegionProposalNetwork, RPNHead
from torchvision.models.detection.transform import (GeneralizedRCNNTransform, _resize_image_and_masks,
                                                    resize_boxes)
from torchvision.ops import MultiScaleRoIAlign

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ClipTransform(GeneralizedRCNNTransform):
    """``GeneralizedRCNNTransform`` whose short side can be fixed for one call.

    ``forced_sizes`` (set by ``MaskRCNNBase.resize`` for the duration of one call): one short side
    per image, used in training and in eval; None keeps torchvision's behaviour (training: a new
    ``torch_choice(min_size)`` per image; eval: ``min_size[-1]``).
    """

    forced_sizes: list[int] | None = None
    _next: int = 0

    def resize(self, image: Tensor, target: dict[str, Tensor] | None = None):
        if self.forced_sizes is None or (self.training and self._skip_resize):
            return super().resize(image, target)
        size = self.forced_sizes[self._next]
        self._next += 1
        h, w = image.shape[-2:]
        image, target = _resize_image_and_masks(image, size, self.max_size, target, self.fixed_size)
        if target is not None:
            target["boxes"] = resize_boxes(target["boxes"], (h, w), image.shape[-2:])
        return image, target


class Neck(Protocol):
    """What a neck inserted between backbone and heads must look like."""

    def __call__(self, features: "OrderedDict[str, Tensor]", state: Any) -> tuple["OrderedDict[str, Tensor]", Any]:
        ...


class BoxPredictor(nn.Module):
    """Classification + box regression on pooled RoI features.

    Args:
        in_channels: representation size of the box head.
        num_classes: number of classes including background.
        class_agnostic: one box regression shared by all classes (repeated in the output, so
            torchvision's ``fastrcnn_loss`` and ``postprocess_detections`` apply unchanged).
    Shapes:
        forward(x: Tensor[N, in_channels] or [N, C, 1, 1]) -> (scores Tensor[N, num_classes],
        deltas Tensor[N, 4 * num_classes]).
    """

    def __init__(self, in_channels: int, num_classes: int, *, class_agnostic: bool = False) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.class_agnostic = class_agnostic
        self.cls_score = nn.Linear(in_channels, num_classes)
        self.bbox_pred = nn.Linear(in_channels, 4 if class_agnostic else 4 * num_classes)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x = x.flatten(start_dim=1)
        scores = self.cls_score(x)
        deltas = self.bbox_pred(x)
        if self.class_agnostic:
            deltas = deltas.repeat(1, self.num_classes)
        return scores, deltas

    @torch.no_grad()
    def to_class_specific(self) -> None:
        """Copy the shared regression to every class (outputs stay identical)."""
        if not self.class_agnostic:
            return
        old = self.bbox_pred
        new = nn.Linear(old.in_features, 4 * self.num_classes).to(old.weight)
        new.weight.copy_(old.weight.repeat(self.num_classes, 1))
        new.bias.copy_(old.bias.repeat(self.num_classes))
        self.bbox_pred = new
        self.class_agnostic = False


class MaskPredictor(nn.Module):
    """torchvision's mask predictor (2x deconv + 1x1 logits), optionally class-agnostic.

    Shapes:
        forward(x: Tensor[N, in_channels, S, S]) -> Tensor[N, num_classes, 2S, 2S] logits.
    """

    def __init__(self, in_channels: int, dim_reduced: int, num_classes: int, *,
                 class_agnostic: bool = False) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.class_agnostic = class_agnostic
        self.conv5_mask = nn.ConvTranspose2d(in_channels, dim_reduced, 2, 2, 0)
        self.relu = nn.ReLU(inplace=True)
        self.mask_fcn_logits = nn.Conv2d(dim_reduced, 1 if class_agnostic else num_classes, 1)
        for m in (self.conv5_mask, self.mask_fcn_logits):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        logits = self.mask_fcn_logits(self.relu(self.conv5_mask(x)))
        if self.class_agnostic:
            logits = logits.expand(-1, self.num_classes, -1, -1)
        return logits

    @torch.no_grad()
    def to_class_specific(self) -> None:
        if not self.class_agnostic:
            return
        old = self.mask_fcn_logits
        new = nn.Conv2d(old.in_channels, self.num_classes, 1).to(old.weight)
        new.weight.copy_(old.weight.repeat(self.num_classes, 1, 1, 1))
        new.bias.copy_(old.bias.repeat(self.num_classes))
        self.mask_fcn_logits = new
        self.class_agnostic = False


@dataclass
class DetectorOutput:
    """Everything one detector pass produces.

    Attributes:
        losses: torchvision's ``loss_objectness, loss_rpn_box_reg, loss_classifier,
            loss_box_reg, loss_mask`` (training, targets given), else empty.
        detections: per image ``{"boxes": Tensor[K, 4] xyxy, "labels": Tensor[K],
            "scores": Tensor[K], "masks": Tensor[K, 1, H, W] probabilities}`` in ORIGINAL image
            coordinates (eval mode only; empty list in training).
        features: the (neck-processed) FPN maps ``OrderedDict[str, Tensor[B, C, h, w]]`` in the
            coordinates of the resized, padded batch.
        image_sizes: (h, w) of each image after resizing (before padding).
        original_sizes: (H, W) of each input image.
        neck_state: the neck's new state (None without a neck).
    """

    losses: dict[str, Tensor] = field(default_factory=dict)
    detections: list[dict[str, Tensor]] = field(default_factory=list)
    features: "OrderedDict[str, Tensor]" = field(default_factory=OrderedDict)
    image_sizes: list[tuple[int, int]] = field(default_factory=list)
    original_sizes: list[tuple[int, int]] = field(default_factory=list)
    neck_state: Any = None


class MaskRCNNBase(nn.Module):
    """Mask R-CNN with a neck hook, switchable heads and exposed features.

    Args (keyword-only):
        backbone: module returning an ``OrderedDict`` of FPN maps with attribute
            ``out_channels`` (torchvision ``BackboneWithFPN`` contract: keys '0'..'3', 'pool').
        num_classes: classes including background (YouTube-VIS: 41; class-agnostic VOS: 2).
        class_agnostic: share box regression and mask logits across classes.
        neck: optional stateful module (see ``Neck``).
        min_size, max_size: resize of the input (torchvision semantics).
        roi_featmap_names: FPN levels the RoI heads pool from (paper default: the 4 lower).
        anchor_sizes: one tuple per FPN level (5 levels with 'pool').
        representation_size: box head MLP width.
        mask_head_layers: channels of the 4-conv mask head.
        box_predictor, mask_head, mask_predictor: replace the default modules (e.g. LIP's
            shortcut mask head); they must keep torchvision's shapes.
        rpn_* / box_*: torchvision's RPN and RoI head hyper-parameters.
    """

    def __init__(
        self,
        *,
        backbone: nn.Module,
        num_classes: int,
        class_agnostic: bool = False,
        neck: nn.Module | None = None,
        min_size: int | Sequence[int] = 800,
        max_size: int = 1333,
        image_mean: Sequence[float] = IMAGENET_MEAN,
        image_std: Sequence[float] = IMAGENET_STD,
        roi_featmap_names: Sequence[str] = ("0", "1", "2", "3"),
        anchor_sizes: Sequence[tuple[int, ...]] = ((32,), (64,), (128,), (256,), (512,)),
        aspect_ratios: tuple[float, ...] = (0.5, 1.0, 2.0),
        representation_size: int = 1024,
        mask_head_layers: Sequence[int] = (256, 256, 256, 256),
        box_predictor: nn.Module | None = None,
        mask_head: nn.Module | None = None,
        mask_predictor: nn.Module | None = None,
        rpn_pre_nms_top_n_train: int = 2000,
        rpn_pre_nms_top_n_test: int = 1000,
        rpn_post_nms_top_n_train: int = 2000,
        rpn_post_nms_top_n_test: int = 1000,
        rpn_nms_thresh: float = 0.7,
        rpn_fg_iou_thresh: float = 0.7,
        rpn_bg_iou_thresh: float = 0.3,
        rpn_batch_size_per_image: int = 256,
        rpn_positive_fraction: float = 0.5,
        box_score_thresh: float = 0.05,
        box_nms_thresh: float = 0.5,
        box_detections_per_img: int = 100,
        box_fg_iou_thresh: float = 0.5,
        box_bg_iou_thresh: float = 0.5,
        box_batch_size_per_image: int = 512,
        box_positive_fraction: float = 0.25,
    ) -> None:
        super().__init__()
        if not hasattr(backbone, "out_channels"):
            raise ValueError("backbone must have an `out_channels` attribute (BackboneWithFPN contract)")
        c = backbone.out_channels
        self.backbone = backbone
        self.neck = neck
        self.num_classes = num_classes
        self.transform = ClipTransform(min_size, max_size, list(image_mean), list(image_std))

        anchor_gen = AnchorGenerator(tuple(anchor_sizes), (tuple(aspect_ratios),) * len(anchor_sizes))
        self.rpn = RegionProposalNetwork(
            anchor_gen, RPNHead(c, anchor_gen.num_anchors_per_location()[0]),
            rpn_fg_iou_thresh, rpn_bg_iou_thresh, rpn_batch_size_per_image, rpn_positive_fraction,
            dict(training=rpn_pre_nms_top_n_train, testing=rpn_pre_nms_top_n_test),
            dict(training=rpn_post_nms_top_n_train, testing=rpn_post_nms_top_n_test),
            rpn_nms_thresh,
        )
        names = list(roi_featmap_names)
        box_roi_pool = MultiScaleRoIAlign(featmap_names=names, output_size=7, sampling_ratio=2)
        mask_roi_pool = MultiScaleRoIAlign(featmap_names=names, output_size=14, sampling_ratio=2)
        box_head = TwoMLPHead(c * 7 * 7, representation_size)
        box_predictor = box_predictor or BoxPredictor(representation_size, num_classes,
                                                      class_agnostic=class_agnostic)
        mask_head = mask_head or MaskRCNNHeads(c, list(mask_head_layers), 1)
        mask_predictor = mask_predictor or MaskPredictor(mask_head_layers[-1], mask_head_layers[-1],
                                                         num_classes, class_agnostic=class_agnostic)
        self.roi_heads = RoIHeads(
            box_roi_pool, box_head, box_predictor,
            box_fg_iou_thresh, box_bg_iou_thresh, box_batch_size_per_image, box_positive_fraction,
            None, box_score_thresh, box_nms_thresh, box_detections_per_img,
            mask_roi_pool=mask_roi_pool, mask_head=mask_head, mask_predictor=mask_predictor,
        )

    # ------------------------------------------------------------------ scales
    @property
    def min_sizes(self) -> tuple[int, ...]:
        """The training short sides (torchvision ``min_size``); the last one is the test size."""
        return tuple(int(s) for s in self.transform.min_size)

    def draw_min_size(self, n: int | None = None) -> int | list[int]:
        """Draw the short side(s) for one clip (``n=None``) or for ``n`` clips.

        Training: uniform over ``min_size`` with torch's global RNG (the trainer seeds it and its
        checkpoints save it, so a resumed run draws the same sizes). Eval: the test size
        ``min_size[-1]``, whatever ``n``.
        """
        sizes = self.min_sizes
        k = 1 if n is None else n
        if self.training and len(sizes) > 1:
            out = [sizes[int(i)] for i in torch.randint(len(sizes), (k,))]
        else:
            out = [sizes[-1]] * k
        return out[0] if n is None else out

    @contextlib.contextmanager
    def _forced(self, min_size: int | Sequence[int] | None, num_images: int) -> Iterator[None]:
        if min_size is None:
            yield
            return
        sizes = [int(min_size)] * num_images if isinstance(min_size, (int, float)) else [int(s) for s in min_size]
        if len(sizes) != num_images:
            raise ValueError(f"MaskRCNNBase: {len(sizes)} min_size values for {num_images} images")
        tr = self.transform
        tr.forced_sizes, tr._next = sizes, 0
        try:
            yield
        finally:
            tr.forced_sizes, tr._next = None, 0

    def resize(self, images: Sequence[Tensor], targets: list[dict[str, Tensor]] | None = None, *,
               min_size: int | Sequence[int] | None = None):
        """Normalise, resize and batch (torchvision ``GeneralizedRCNNTransform``).

        Args:
            images: list of Tensor[3, H, W] in 0-1.
            targets: optional per-image targets (boxes are rescaled, masks resized).
            min_size: None: torchvision's draw (training: per image; eval: ``min_size[-1]``);
                int: every image at this short side (one scale per clip); sequence: one short
                side per image. ``max_size`` always caps the long side.
        Returns:
            (ImageList with tensors Tensor[N, 3, Hp, Wp] and image_sizes, resized targets)
        """
        with self._forced(min_size, len(images)):
            return self.transform(list(images), targets)

    # ------------------------------------------------------------------ building blocks
    def extract_features(self, images: Sequence[Tensor], targets: list[dict[str, Tensor]] | None = None,
                         neck_state: Any = None, *, min_size: int | Sequence[int] | None = None):
        """Normalise/resize (``min_size`` as in ``resize``), run backbone and neck.

        Returns:
            (image_list, targets (resized), features OrderedDict, new neck state)
        """
        original = [tuple(int(s) for s in im.shape[-2:]) for im in images]
        image_list, targets = self.resize(images, targets, min_size=min_size)
        features = self.backbone(image_list.tensors)
        if isinstance(features, Tensor):
            features = OrderedDict([("0", features)])
        new_state = None
        if self.neck is not None:
            features, new_state = self.neck(features, neck_state)
        image_list.original_sizes = original  # type: ignore[attr-defined]
        return image_list, targets, features, new_state

    def heads(self, image_list, features: "OrderedDict[str, Tensor]",
              targets: list[dict[str, Tensor]] | None = None) -> tuple[list[dict[str, Tensor]], dict[str, Tensor]]:
        """RPN + RoI heads on given features; detections are in ORIGINAL image coordinates."""
        proposals, rpn_losses = self.rpn(image_list, features, targets)
        detections, roi_losses = self.roi_heads(features, proposals, image_list.image_sizes, targets)
        if not self.training:
            detections = self.transform.postprocess(detections, image_list.image_sizes,
                                                    image_list.original_sizes)
        return detections, {**rpn_losses, **roi_losses}

    def forward(self, images: Sequence[Tensor], targets: list[dict[str, Tensor]] | None = None,
                neck_state: Any = None, *, min_size: int | Sequence[int] | None = None) -> DetectorOutput:
        """One detector pass.

        Args:
            images: list of Tensor[3, H, W] in 0-1 (sizes may differ).
            targets: per image ``{"boxes": float[K, 4] xyxy, "labels": int64[K] (>=1),
                "masks": uint8[K, H, W]}`` (training). Empty K is allowed.
            neck_state: the state the neck returned for the previous frame (None at start).
            min_size: short side(s) of this call (see ``resize``; ``draw_min_size()`` per clip).
        """
        if self.training and targets is None:
            raise ValueError("MaskRCNNBase: targets are required in training mode")
        image_list, targets_t, features, new_state = self.extract_features(images, targets, neck_state,
                                                                           min_size=min_size)
        detections, losses = self.heads(image_list, features, targets_t)
        return DetectorOutput(
            losses=losses if self.training else {},
            detections=[] if self.training else detections,
            features=features,
            image_sizes=list(image_list.image_sizes),
            original_sizes=list(image_list.original_sizes),
            neck_state=new_state,
        )

    def roi_features(self, features: "OrderedDict[str, Tensor]", boxes: list[Tensor],
                     image_sizes: list[tuple[int, int]], kind: str = "mask") -> Tensor:
        """Pool per-instance features.

        Args:
            boxes: per image Tensor[K_i, 4] xyxy in the coordinates of ``image_sizes`` (the
                resized images, as ``DetectorOutput.image_sizes``).
            kind: ``"mask"`` (14x14, before the mask head) or ``"box"`` (7x7).
        Returns:
            Tensor[sum K_i, C, S, S].
        """
        pool = self.roi_heads.mask_roi_pool if kind == "mask" else self.roi_heads.box_roi_pool
        return pool(features, boxes, image_sizes)

    def to_class_specific(self) -> None:
        """Switch box and mask predictors to per-class weights copied from the agnostic ones."""
        for m in (self.roi_heads.box_predictor, self.roi_heads.mask_predictor):
            if hasattr(m, "to_class_specific"):
                m.to_class_specific()

    def load_torchvision_weights(self, path: str | os.PathLike | None, *,
                                 component: str = "maskrcnn_resnet50_fpn_coco",
                                 key: str = "method.detector_weights", skip_class_layers: bool = True,
                                 allow_random_init: bool | None = None):
        """Initialise from a torchvision ``maskrcnn_*`` state dict (e.g. the COCO file), in any
        layout torchvision has published, under the weights policy.

        The file goes through torchvision's upgrade hooks unfiltered
        (``vosbench.models.weights.load_state_dict_upgrading``): the pre-0.13 layout
        (``rpn.head.conv.*``, ``roi_heads.mask_head.mask_fcn{1..4}.*``, FPN
        ``inner_blocks.{i}.*``) is renamed by the modules themselves. Every key must match
        except the class-dependent layers (``skip_class_layers``: ``box_predictor.*`` and
        ``mask_predictor.mask_fcn_logits.*`` when their number of classes differs), which keep
        their init and are listed. A vosbench checkpoint of a whole method whose detector lives
        under ``detector.`` (MaskProp) is accepted too.

        Returns:
            the ``LoadReport`` (None when random init is allowed or deferred to a checkpoint).
        Raises:
            MissingWeightsError: no file and random init not allowed; WeightsError: bad keys.
        """
        from vosbench.models.weights import load_pretrained, read_state_dict, resolve_pretrained

        p = resolve_pretrained(path, component=component, key=key, name="mask_rcnn detector",
                               allow_random_init=allow_random_init, module=self)
        if p is None:
            return None
        keys = read_state_dict(p)
        prefix = "detector." if any(k.startswith("detector.") for k in keys) else None
        skip = (("roi_heads.box_predictor.", "roi_heads.mask_predictor.mask_fcn_logits.")
                if skip_class_layers else ())
        return load_pretrained(self, p, component=component, key=key, name="mask_rcnn detector",
                               prefix=prefix, skip_mismatched=skip)


def targets_from_masks(masks: Tensor, labels: Tensor, *, box_widen: float = 0.0) -> dict[str, Tensor]:
    """Build a torchvision detection target from per-object masks.

    Args:
        masks: Tensor[K, H, W] bool; empty masks are dropped (torchvision rejects
            degenerate boxes).
        labels: Tensor[K] int64 class ids >= 1.
        box_widen: relative widening of the tight box (LIP trains with 10 %: ``0.1``); the box
            grows by ``box_widen * size / 2`` on each side and is clipped to the image.
    Returns:
        ``{"boxes": float32[K', 4], "labels": int64[K'], "masks": uint8[K', H, W]}``.
    """
    from vosbench.structures.masks import masks_to_boxes

    keep = masks.flatten(1).any(1) if masks.numel() else torch.zeros(0, dtype=torch.bool)
    masks, labels = masks[keep], labels[keep]
    boxes = masks_to_boxes(masks).to(masks.device)
    if box_widen and boxes.numel():
        wh = (boxes[:, 2:] - boxes[:, :2]) * box_widen / 2
        boxes = torch.cat([boxes[:, :2] - wh, boxes[:, 2:] + wh], 1)
        H, W = masks.shape[-2:]
        boxes[:, 0::2] = boxes[:, 0::2].clamp(0, W)
        boxes[:, 1::2] = boxes[:, 1::2].clamp(0, H)
    return {"boxes": boxes.float(), "labels": labels.to(torch.int64), "masks": masks.to(torch.uint8)}
