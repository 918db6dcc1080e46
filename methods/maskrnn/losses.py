"""MaskRNN losses: class-balanced BCE (OSVOS, as the paper §3.3 uses) and box regression.

The criterion is an object (STYLE.md §4, DETR split): the model produces per-object logits and
box deltas, the criterion turns them and the targets into the ``loss_*`` dictionary.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

# Weight of the box loss against the per-pixel MEAN class-balanced BCE. Both losses are then
# independent of the image size, so one weight holds at 64x96 and at DAVIS' 480x854 (the sum over
# pixels made the mask loss ~67x larger at 480p than at 64x96 and the box loss vanish). The value
# is set from the gradient norms on the shared appearance stream (benchmarks/maskrnn_loss_balance.py,
# numbers in benchmarks/RESULTS.md #16): with weight 1, ||grad mask|| / ||grad box|| is 0.014-0.04 on
# the trained tiny checkpoint (the box loss would dominate the shared features, which cost J in an
# earlier run) and 0.2-0.7 at random init. 2e-3 makes the mask gradient ~10x the box gradient on
# a trained net (the segmentation is the task, the box an auxiliary that still shapes conv5_3,
# as Table 2's "Train" column shows it does), and ~100-400x at random init (segmentation first).
BOX_LOSS_WEIGHT = 2e-3


def class_balanced_bce(logits: Tensor, targets: Tensor, valid: Tensor | None = None,
                       reduction: str = "mean") -> Tensor:
    """OSVOS class-balanced binary cross-entropy, one value per sample.

    ``L = -(beta * sum_{j in Y+} log p_j + (1 - beta) * sum_{j in Y-} log(1 - p_j))`` with
    ``beta = |Y-| / |Y|`` counted over the valid pixels of each sample (OSVOS eq. 1). OSVOS sums
    over the pixels (``reduce_sum`` in its TensorFlow code, ``size_average=False`` in its PyTorch
    port); ``reduction="mean"`` (default) divides by the number of valid pixels instead, which
    keeps the loss, and its balance against the box loss, independent of the resolution.

    Args:
        logits: Tensor[N, H, W] pre-sigmoid scores.
        targets: Tensor[N, H, W] bool.
        valid: Tensor[N, H, W] bool, pixels that count (False on padding and DAVIS void).
        reduction: ``"sum"`` (OSVOS) or ``"mean"`` over the valid pixels.
    Returns:
        Tensor[N] loss per sample (0 where a sample has no valid pixel).
    """
    if reduction not in ("sum", "mean"):
        raise ValueError(f"class_balanced_bce: reduction must be 'sum' or 'mean', got {reduction!r}")
    t = targets.to(logits.dtype)
    v = torch.ones_like(t) if valid is None else valid.to(logits.dtype)
    num = v.sum(dim=(1, 2))
    num_pos = (t * v).sum(dim=(1, 2))
    beta = (num - num_pos) / num.clamp(min=1.0)  # fraction of negatives -> weight on positives
    # log p and log(1 - p) from logits without overflow.
    pos = -(F.logsigmoid(logits) * t * v).sum(dim=(1, 2))
    neg = -(F.logsigmoid(-logits) * (1 - t) * v).sum(dim=(1, 2))
    loss = beta * pos + (1 - beta) * neg
    return loss / num.clamp(min=1.0) if reduction == "mean" else loss


def box_regression_loss(deltas: Tensor, target_deltas: Tensor) -> Tensor:
    """Fast R-CNN smooth-L1 (sigma = 1) summed over the four coordinates: Tensor[N, 4] x2 -> Tensor[N]."""
    return F.smooth_l1_loss(deltas, target_deltas, beta=1.0, reduction="none").sum(dim=1)


class MaskRNNCriterion:
    """Weighted sum of the segmentation and localization losses over the supervised samples.

    Args:
        box_weight: weight of ``loss_box`` relative to ``loss_mask``.
        mask_reduction: pixel reduction of the class-balanced BCE (``"mean"``; ``"sum"`` as OSVOS).
    """

    def __init__(self, *, box_weight: float = BOX_LOSS_WEIGHT, mask_reduction: str = "mean") -> None:
        self.box_weight = float(box_weight)
        self.mask_reduction = mask_reduction

    def __call__(self, logits: Tensor, targets: Tensor, valid: Tensor, weight: Tensor,
                 deltas: Tensor | None = None, target_deltas: Tensor | None = None,
                 box_weight: Tensor | None = None) -> dict[str, Tensor]:
        """Compute the losses of N per-object predictions (all frames of a step stacked).

        Args:
            logits: Tensor[N, H, W]; targets: Tensor[N, H, W] bool; valid: Tensor[N, H, W] bool.
            weight: Tensor[N] float, 1 for supervised samples, 0 for samples without a target
                (e.g. an object before its first appearance in the clip).
            deltas, target_deltas: Tensor[N, 4] predicted and target box deltas (or None when the
                localization loss is not trained).
            box_weight: Tensor[N] float, 1 where the target box exists (the object is visible).
        Returns:
            ``{"loss_mask": Tensor[]}`` plus ``"loss_box"`` when deltas are given.
        """
        denom = weight.sum().clamp(min=1.0)
        out = {"loss_mask": (class_balanced_bce(logits, targets, valid, self.mask_reduction) * weight).sum() / denom}
        if deltas is not None:
            bw = weight * (box_weight if box_weight is not None else 1.0)
            box = box_regression_loss(deltas, target_deltas) * bw
            out["loss_box"] = self.box_weight * box.sum() / bw.sum().clamp(min=1.0)
        return out
