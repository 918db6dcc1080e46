"""MaskProp losses (§4.1): soft IoU (eq. 3) and the mask propagation loss (eq. 2).

The Mask R-CNN terms (classification, box regression, mask) are torchvision's, computed by
``vosbench.models.detector.MaskRCNNBase``; this module adds what MaskProp puts on top.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def soft_iou(a: Tensor, b: Tensor, eps: float = 1e-6) -> Tensor:
    """Soft IoU of eq. 3: ``sum_p a(p) b(p) / sum_p [a(p) + b(p) - a(p) b(p)]``.

    Args:
        a, b: Tensor[..., H, W] with values in [0, 1] (probabilities or binary masks); broadcast.
        eps: keeps two empty masks finite (their soft IoU is 0).
    Returns:
        Tensor[...] soft IoU in [0, 1].
    """
    inter = (a * b).flatten(-2).sum(-1)
    union = (a + b - a * b).flatten(-2).sum(-1)
    return inter / (union + eps)


def pairwise_soft_iou(a: Tensor, b: Tensor, eps: float = 1e-6) -> Tensor:
    """Soft IoU between every row of ``a`` and every row of ``b``.

    Args:
        a: Tensor[N, P] flattened masks in [0, 1]; b: Tensor[M, P].
    Returns:
        Tensor[N, M].
    """
    inter = a @ b.t()
    union = a.sum(1, keepdim=True) + b.sum(1)[None] - inter
    return inter / (union + eps)


def propagation_loss(pred: Tensor, target: Tensor, valid: Tensor | None = None) -> Tensor:
    """Eq. 2 for one source frame and one target frame: ``1/N sum_i (1 - sIoU(M_i, M^GT_i))``.

    Args:
        pred: Tensor[N, H, W] propagated instance masks (probabilities) on the target frame.
        target: Tensor[N, H, W] the same instances' ground truth on the target frame (all zeros
            when the instance is absent there).
        valid: optional Tensor[H, W] bool, False on pixels to ignore (padding, void).
    Returns:
        scalar loss (0 with N = 0, still connected to the graph).
    """
    if pred.shape != target.shape:
        raise ValueError(f"propagation_loss: pred {tuple(pred.shape)} vs target {tuple(target.shape)}")
    if pred.shape[0] == 0:
        return pred.sum() * 0.0
    target = target.to(pred.dtype)
    if valid is not None:
        v = valid.to(pred.dtype)
        pred, target = pred * v, target * v
    return (1.0 - soft_iou(pred, target)).mean()


def refinement_loss(logits: Tensor, target: Tensor) -> Tensor:
    """Per-pixel binary cross-entropy of the high-resolution refinement (§4.4) on its patches.

    Args:
        logits: Tensor[N, 1, S, S]; target: Tensor[N, 1, S, S] in [0, 1].
    """
    if logits.shape[0] == 0:
        return logits.sum() * 0.0
    return F.binary_cross_entropy_with_logits(logits, target.to(logits.dtype))


__all__ = ["soft_iou", "pairwise_soft_iou", "propagation_loss", "refinement_loss"]
