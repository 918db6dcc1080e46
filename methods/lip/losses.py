"""LIP's losses (§4): instance segmentation losses only.

Offline training uses torchvision's Mask R-CNN losses unchanged (RPN objectness + box, softmax
cross-entropy for the id head, smooth-L1 boxes, per-pixel BCE masks). Online fine-tuning on the
reference frame swaps the id head's cross-entropy for the focal loss (§4.2, Lin et al.) and applies
per-head early stopping (§5.1): ``LIPCriterion`` computes the losses on cached features and
``HeadEarlyStopping`` decides which heads still train.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.models.detection.roi_heads import RoIHeads, maskrcnn_loss

# Which loss terms belong to which prediction head (early stopping is per head, §5.1).
HEAD_LOSSES: dict[str, tuple[str, ...]] = {
    "rpn": ("loss_objectness", "loss_rpn_box_reg"),
    "id": ("loss_id",),
    "box": ("loss_box_reg",),
    "mask": ("loss_mask",),
}


def focal_loss(logits: Tensor, labels: Tensor, *, gamma: float = 2.0) -> Tensor:
    """Softmax focal loss ``mean_i -(1 - p_{i,y_i})^gamma log p_{i,y_i}`` (Lin et al. 2017).

    Down-weights well-classified RoIs so the few RoIs of small instances are not drowned by the
    many easy background RoIs (why LIP uses it to balance the ids, §4.2).

    Args:
        logits: Tensor[N, C] id logits (class 0 = background).
        labels: Tensor[N] int64 in 0..C-1.
        gamma: focusing parameter; 0 gives cross-entropy.
    Returns:
        scalar Tensor (0 with a graph when N == 0).
    """
    if logits.shape[0] == 0:
        return logits.sum() * 0
    logp = F.log_softmax(logits, dim=-1).gather(1, labels.view(-1, 1)).squeeze(1)  # [N]
    return (-(1 - logp.exp()).pow(gamma) * logp).mean()


def box_regression_loss(box_regression: Tensor, labels: Tensor, regression_targets: Tensor) -> Tensor:
    """torchvision's Fast R-CNN smooth-L1 box loss (positives only, normalised by all RoIs).

    Args:
        box_regression: Tensor[N, 4 * C]; labels: Tensor[N]; regression_targets: Tensor[N, 4].
    """
    pos = torch.where(labels > 0)[0]
    n = box_regression.shape[0]
    box_regression = box_regression.reshape(n, -1, 4)  # [N, C, 4]
    loss = F.smooth_l1_loss(box_regression[pos, labels[pos]], regression_targets[pos],
                            beta=1 / 9, reduction="sum")
    return loss / max(labels.numel(), 1)


class LIPCriterion:
    """RoI-head losses with a choice of id loss (cross-entropy offline, focal online).

    Args:
        id_loss: ``"ce"`` or ``"focal"``.
        focal_gamma: gamma of the focal loss.
    """

    def __init__(self, *, id_loss: str = "focal", focal_gamma: float = 2.0) -> None:
        if id_loss not in ("ce", "focal"):
            raise ValueError(f"LIPCriterion: id_loss must be 'ce' or 'focal', got {id_loss!r}")
        self.id_loss = id_loss
        self.focal_gamma = focal_gamma

    def id_term(self, logits: Tensor, labels: Tensor) -> Tensor:
        if self.id_loss == "ce":
            return F.cross_entropy(logits, labels) if labels.numel() else logits.sum() * 0
        return focal_loss(logits, labels, gamma=self.focal_gamma)

    def roi_losses(self, roi_heads: RoIHeads, features: dict[str, Tensor], proposals: list[Tensor],
                   image_sizes: list[tuple[int, int]], targets: list[dict[str, Tensor]],
                   *, with_mask: bool = True) -> dict[str, Tensor]:
        """Sample RoIs against ``targets`` and compute ``loss_id, loss_box_reg, loss_mask``.

        Args:
            roi_heads: torchvision ``RoIHeads`` holding LIP's predictors.
            features: FPN maps ``{level: Tensor[B, C, h, w]}`` (after the neck).
            proposals: per image Tensor[P_i, 4] (RPN output, resized-image coordinates).
            image_sizes: (h, w) of each resized image.
            targets: per image ``{"boxes": [K, 4], "labels": [K], "masks": uint8[K, h, w]}``.
        Returns:
            dict of scalar losses.
        """
        proposals, matched_idxs, labels, reg_targets = roi_heads.select_training_samples(proposals, targets)
        box_feats = roi_heads.box_head(roi_heads.box_roi_pool(features, proposals, image_sizes))
        class_logits, box_regression = roi_heads.box_predictor(box_feats)
        labels_cat = torch.cat(labels, 0)
        losses = {
            "loss_id": self.id_term(class_logits, labels_cat),
            "loss_box_reg": box_regression_loss(box_regression, labels_cat, torch.cat(reg_targets, 0)),
        }
        if with_mask:
            pos_props, pos_idx = [], []
            for p, m, lab in zip(proposals, matched_idxs, labels):
                pos = torch.where(lab > 0)[0]
                pos_props.append(p[pos])
                pos_idx.append(m[pos])
            if sum(int(p.shape[0]) for p in pos_props) == 0:
                losses["loss_mask"] = box_feats.sum() * 0
            else:
                mask_logits = roi_heads.mask_predictor(
                    roi_heads.mask_head(roi_heads.mask_roi_pool(features, pos_props, image_sizes)))
                losses["loss_mask"] = maskrcnn_loss(mask_logits, pos_props, [t["masks"] for t in targets],
                                                    [t["labels"] for t in targets], pos_idx)
        return losses


class HeadEarlyStopping:
    """Per-head loss thresholds (§5.1): a head whose loss is below its threshold is ignored; when
    every head is ignored, fine-tuning stops.

    Args:
        thresholds: head name (``rpn``, ``id``, ``box``, ``mask``) -> loss threshold. A head
            missing from the mapping is never ignored.
    """

    def __init__(self, thresholds: dict[str, float]) -> None:
        unknown = set(thresholds) - set(HEAD_LOSSES)
        if unknown:
            raise ValueError(f"HeadEarlyStopping: unknown heads {sorted(unknown)}; known: {sorted(HEAD_LOSSES)}")
        self.thresholds = dict(thresholds)

    def active_loss(self, losses: dict[str, Tensor]) -> tuple[Tensor | None, list[str]]:
        """Sum of the losses of heads still above their threshold.

        Returns:
            (the loss to back-propagate or None when every head is done, names of active heads)
        """
        total, active = None, []
        for head, keys in HEAD_LOSSES.items():
            present = [losses[k] for k in keys if k in losses]
            if not present:
                continue
            value = sum(present)
            thr = self.thresholds.get(head)
            if thr is not None and float(value.detach()) < thr:
                continue
            active.append(head)
            total = value if total is None else total + value
        return total, active


__all__ = ["focal_loss", "box_regression_loss", "LIPCriterion", "HeadEarlyStopping", "HEAD_LOSSES"]
