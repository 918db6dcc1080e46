"""MaskRNN heads: two-stream fusion and the object localization net (paper §3.3).

Box helpers follow the Fast R-CNN parameterisation (Girshick 2015, eq. 6-9): a proposal
``P = (px, py, pw, ph)`` (centre, size) and a target ``G`` give deltas
``(wx (gx - px) / pw, wy (gy - py) / ph, ww log(gw / pw), wh log(gh / ph))``. The weights
``(10, 10, 5, 5)`` are the inverse of the target standard deviations Fast R-CNN normalises by
(0.1, 0.1, 0.2, 0.2). Boxes are ``xyxy`` in pixel edges, as ``vosbench.structures.masks_to_boxes``.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torchvision.ops import roi_align, roi_pool

BOX_WEIGHTS = (10.0, 10.0, 5.0, 5.0)
# Largest log-scale change a decoded box may take (Fast R-CNN / torchvision clamp, log(1000/16)).
BOX_SCALE_CLAMP = math.log(1000.0 / 16)


class TwoStreamFusion(nn.Module):
    """Linear combination of the single-channel stream outputs (paper §3.3).

    ``logits = sum_s w_s * side_s + b``; the sigmoid is taken by the caller (the losses work on
    logits for numerical stability).

    Args:
        num_streams: 1 (appearance only or flow only) or 2 (appearance + flow).
    """

    def __init__(self, *, num_streams: int) -> None:
        super().__init__()
        if num_streams not in (1, 2):
            raise ValueError(f"TwoStreamFusion: num_streams must be 1 or 2, got {num_streams}")
        self.weight = nn.Parameter(torch.ones(num_streams))
        self.bias = nn.Parameter(torch.zeros(1))

    def forward(self, sides: list[Tensor]) -> Tensor:
        """Args: sides: ``num_streams`` tensors Tensor[N, 1, H, W]. Returns Tensor[N, H, W] logits."""
        if len(sides) != self.weight.numel():
            raise ValueError(f"TwoStreamFusion: expected {self.weight.numel()} streams, got {len(sides)}")
        out = self.bias
        for w, s in zip(self.weight, sides):
            out = out + w * s
        return out[:, 0]


class LocalizationHead(nn.Module):
    """Object localization net: RoI pooling on conv5_3 + two FC layers + box regression.

    Args:
        in_channels: channels of the appearance stream's conv5_3.
        spatial_scale: 1 / stride of conv5_3 (1/16 for VGG-16).
        roi_size: RoI pooling output side (7 as Fast R-CNN's VGG-16).
        fc_dim: width of the two FC layers (4096 in VGG-16 Fast R-CNN).
        pooler: ``"roi_pool"`` (Fast R-CNN's max pooling, the paper) or ``"roi_align"``.
    """

    def __init__(self, *, in_channels: int, spatial_scale: float = 1.0 / 16, roi_size: int = 7,
                 fc_dim: int = 4096, pooler: str = "roi_pool") -> None:
        super().__init__()
        if pooler not in ("roi_pool", "roi_align"):
            raise ValueError(f"LocalizationHead: pooler must be 'roi_pool' or 'roi_align', got {pooler!r}")
        self.spatial_scale = float(spatial_scale)
        self.roi_size = int(roi_size)
        self.pooler = pooler
        self.fc6 = nn.Linear(in_channels * roi_size * roi_size, fc_dim)
        self.fc7 = nn.Linear(fc_dim, fc_dim)
        self.bbox_pred = nn.Linear(fc_dim, 4)
        # Fast R-CNN initialises the regressor with std 0.001 so training starts at "keep proposal".
        nn.init.normal_(self.bbox_pred.weight, std=0.001)
        nn.init.zeros_(self.bbox_pred.bias)

    def forward(self, features: Tensor, proposals: Tensor) -> Tensor:
        """Regress one box per feature map.

        Args:
            features: Tensor[N, C, h, w] conv5_3 of the appearance stream.
            proposals: Tensor[N, 4] xyxy boxes in input pixels, proposal ``n`` on map ``n``.
        Returns:
            Tensor[N, 4] deltas (Fast R-CNN parameterisation, ``BOX_WEIGHTS``).
        """
        n = features.shape[0]
        idx = torch.arange(n, device=features.device, dtype=features.dtype)[:, None]
        rois = torch.cat([idx, proposals.to(features.dtype)], dim=1)  # [N, 5] (batch idx, xyxy)
        if self.pooler == "roi_pool":
            x = roi_pool(features, rois, (self.roi_size, self.roi_size), self.spatial_scale)
        else:
            x = roi_align(features, rois, (self.roi_size, self.roi_size), self.spatial_scale,
                          sampling_ratio=2, aligned=True)
        x = torch.relu(self.fc6(x.flatten(1)))
        x = torch.relu(self.fc7(x))
        return self.bbox_pred(x)


def _cxcywh(boxes: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    w = (boxes[:, 2] - boxes[:, 0]).clamp(min=1.0)
    h = (boxes[:, 3] - boxes[:, 1]).clamp(min=1.0)
    return boxes[:, 0] + 0.5 * w, boxes[:, 1] + 0.5 * h, w, h


def encode_boxes(targets: Tensor, proposals: Tensor, weights=BOX_WEIGHTS) -> Tensor:
    """Fast R-CNN regression targets.

    Args:
        targets: Tensor[N, 4] xyxy ground-truth boxes.
        proposals: Tensor[N, 4] xyxy proposals.
    Returns:
        Tensor[N, 4] deltas ``(dx, dy, dw, dh)`` scaled by ``weights``.
    """
    px, py, pw, ph = _cxcywh(proposals)
    gx, gy, gw, gh = _cxcywh(targets)
    wx, wy, ww, wh = weights
    return torch.stack([wx * (gx - px) / pw, wy * (gy - py) / ph,
                        ww * torch.log(gw / pw), wh * torch.log(gh / ph)], dim=1)


def decode_boxes(deltas: Tensor, proposals: Tensor, weights=BOX_WEIGHTS) -> Tensor:
    """Inverse of ``encode_boxes``: Tensor[N, 4] deltas + Tensor[N, 4] proposals -> Tensor[N, 4] xyxy."""
    px, py, pw, ph = _cxcywh(proposals)
    wx, wy, ww, wh = weights
    dx, dy = deltas[:, 0] / wx, deltas[:, 1] / wy
    dw = (deltas[:, 2] / ww).clamp(max=BOX_SCALE_CLAMP)
    dh = (deltas[:, 3] / wh).clamp(max=BOX_SCALE_CLAMP)
    cx, cy = px + dx * pw, py + dy * ph
    w, h = pw * torch.exp(dw), ph * torch.exp(dh)
    return torch.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], dim=1)


def enlarge_boxes(boxes: Tensor, factor: float, size: tuple[int, int]) -> Tensor:
    """Scale xyxy boxes about their centres by ``factor`` and clip to the image ``size`` (H, W)."""
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    hw, hh = (boxes[:, 2] - boxes[:, 0]) * factor / 2, (boxes[:, 3] - boxes[:, 1]) * factor / 2
    h, w = size
    return torch.stack([(cx - hw).clamp(0, w), (cy - hh).clamp(0, h),
                        (cx + hw).clamp(0, w), (cy + hh).clamp(0, h)], dim=1)


def mask_boxes(masks: Tensor) -> tuple[Tensor, Tensor]:
    """Tight xyxy boxes of boolean masks, batched (pixel edges as ``masks_to_boxes``).

    Args:
        masks: Tensor[N, H, W] bool.
    Returns:
        (boxes Tensor[N, 4] float32, nonempty Tensor[N] bool); empty masks get the full image.
    """
    n, h, w = masks.shape
    rows, cols = masks.any(dim=2), masks.any(dim=1)  # [N, H], [N, W]
    nonempty = rows.any(dim=1)
    ar_h = torch.arange(h, device=masks.device)
    ar_w = torch.arange(w, device=masks.device)
    y0 = torch.where(rows, ar_h, h).min(dim=1).values
    y1 = torch.where(rows, ar_h, -1).max(dim=1).values + 1
    x0 = torch.where(cols, ar_w, w).min(dim=1).values
    x1 = torch.where(cols, ar_w, -1).max(dim=1).values + 1
    boxes = torch.stack([x0, y0, x1, y1], dim=1).float()
    full = torch.tensor([0.0, 0.0, float(w), float(h)], device=masks.device)
    return torch.where(nonempty[:, None], boxes, full), nonempty


def boxes_to_masks(boxes: Tensor, size: tuple[int, int]) -> Tensor:
    """Rasterise xyxy boxes: Tensor[N, 4] -> Tensor[N, H, W] bool (pixel centres inside the box)."""
    h, w = size
    ys = torch.arange(h, device=boxes.device, dtype=boxes.dtype) + 0.5
    xs = torch.arange(w, device=boxes.device, dtype=boxes.dtype) + 0.5
    in_y = (ys[None] >= boxes[:, 1:2]) & (ys[None] <= boxes[:, 3:4])  # [N, H]
    in_x = (xs[None] >= boxes[:, 0:1]) & (xs[None] <= boxes[:, 2:3])  # [N, W]
    return in_y[:, :, None] & in_x[:, None, :]
