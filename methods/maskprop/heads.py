"""MaskProp heads: the mask propagation branch (§4.2) and the high-resolution refinement (§4.4)."""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import roi_align

from vosbench.models.layers.deform_prop import DeformablePropagation


class MaskPropagationHead(nn.Module):
    """Propagate the instances of a source frame to a target frame (Fig. 4 of the paper).

    1. instance-specific features ``f_t * M_t^i`` (the frame-level masks zero out the rest);
    2. ``DeformablePropagation``: offsets from ``f_t - f_{t+delta}`` through a residual block,
       deformable convolutions at dilations 3, 6, 12 -> ``f_{t, t+delta}^i``;
    3. ``g^i = f_{t, t+delta}^i + f_{t+delta}``; a convolution gives one mask logit map per instance,
       normalised with a softmax ACROSS instances, then multiplied by an instance-agnostic attention
       map ``sigmoid(conv(f_{t+delta}))`` that zeroes pixels belonging to no instance.

    Args:
        in_channels: channels C of the FPN level (256 for the paper's FPN).
        offset_channels: residual block width (128 in the paper).
        dilations: deformable convolution dilations ((3, 6, 12) in the paper).
        background_logit: add a constant zero logit ("no instance") to the softmax, so an
            instance's mask can vanish far from it even where the attention map is high (not in
            the paper, which relies on the attention map alone; off in the paper config).
    """

    def __init__(self, *, in_channels: int, offset_channels: int = 128,
                 dilations: Sequence[int] = (3, 6, 12), background_logit: bool = False) -> None:
        super().__init__()
        self.background_logit = background_logit
        self.propagation = DeformablePropagation(in_channels=in_channels, out_channels=in_channels,
                                                 offset_channels=offset_channels, dilations=dilations)
        self.mask_logits = nn.Conv2d(in_channels, 1, 3, padding=1)
        self.attention = nn.Conv2d(in_channels, 1, 3, padding=1)

    def offsets(self, feat_src: Tensor, feat_tgt: Tensor) -> list[Tensor]:
        """Offsets of one frame pair (shared by all its instances), see ``DeformablePropagation``."""
        return self.propagation.offsets(feat_src, feat_tgt)

    def forward(self, feat_src: Tensor, feat_tgt: Tensor, inst_masks: Tensor,
                offsets: Sequence[Tensor] | None = None) -> Tensor:
        """Propagated instance masks on the target frame.

        Args:
            feat_src: Tensor[1, C, h, w] source frame features ``f_t``.
            feat_tgt: Tensor[1, C, h, w] target frame features ``f_{t+delta}``.
            inst_masks: Tensor[N, h, w] frame-level instance masks ``M_t^i`` in [0, 1] on the
                same grid.
            offsets: precomputed ``offsets(feat_src, feat_tgt)`` (inference reuses them).
        Returns:
            Tensor[N, h, w] probabilities ``M_{t, t+delta}^i`` (softmax over N times attention).
        """
        n = inst_masks.shape[0]
        if n == 0:
            return inst_masks.new_zeros((0, *feat_tgt.shape[-2:]))
        inst_feats = feat_src * inst_masks[:, None].to(feat_src.dtype)        # [N, C, h, w]
        if offsets is None:
            offsets = self.offsets(feat_src, feat_tgt)
        prop = self.propagation.propagate(inst_feats, offsets)                 # [N, C, h, w]
        logits = self.mask_logits(prop + feat_tgt)[:, 0]                      # [N, h, w]
        attention = torch.sigmoid(self.attention(feat_tgt))[:, 0]             # [1, h, w]
        if self.background_logit:
            probs = torch.cat([torch.zeros_like(logits[:1]), logits]).softmax(dim=0)[1:]
        else:
            probs = logits.softmax(dim=0)
        return probs * attention


class _ResBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(x + self.conv2(F.relu(self.conv1(x))))


class MaskRefinementHead(nn.Module):
    """High-resolution mask refinement (§4.4): RGB patch + low-resolution mask -> residual blocks.

    A square patch (aspect ratio preserved) centred on the object's box is resampled to
    ``patch_size`` x ``patch_size`` from the image and from the upsampled low-resolution mask; a
    stem convolution and ``num_blocks`` residual blocks of ``channels`` channels predict a
    correction added to the mask's logit (so an untrained head returns the input mask).

    Args:
        channels: width of the residual blocks (128 in the paper).
        num_blocks: number of residual blocks (3 in the paper).
        patch_size: side of the resampled patch (384 in the paper).
        context: the patch side is ``context * max(box w, box h)``.
    """

    def __init__(self, *, channels: int = 128, num_blocks: int = 3, patch_size: int = 384,
                 context: float = 1.25) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.context = context
        self.stem = nn.Conv2d(4, channels, 3, padding=1)
        self.blocks = nn.Sequential(*[_ResBlock(channels) for _ in range(num_blocks)])
        self.out = nn.Conv2d(channels, 1, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def patch_boxes(self, boxes: Tensor) -> Tensor:
        """Square crop boxes around ``boxes`` (Tensor[N, 4] xyxy) -> Tensor[N, 4] xyxy."""
        c = (boxes[:, :2] + boxes[:, 2:]) / 2
        side = (boxes[:, 2:] - boxes[:, :2]).max(dim=1).values.clamp(min=2.0) * self.context
        return torch.cat([c - side[:, None] / 2, c + side[:, None] / 2], dim=1)

    def crop(self, image: Tensor, masks: Tensor, patch_boxes: Tensor) -> tuple[Tensor, Tensor]:
        """Resample patches.

        Args:
            image: Tensor[3, H, W] normalised RGB; masks: Tensor[N, H, W] in [0, 1] on the same
                grid; patch_boxes: Tensor[N, 4] from ``patch_boxes``.
        Returns:
            (rgb Tensor[N, 3, S, S], mask Tensor[N, 1, S, S])
        """
        s = self.patch_size
        rois = torch.cat([torch.zeros_like(patch_boxes[:, :1]), patch_boxes], dim=1)
        rgb = roi_align(image[None], rois, (s, s), spatial_scale=1.0, sampling_ratio=2, aligned=True)
        idx = torch.arange(masks.shape[0], device=masks.device, dtype=rois.dtype)[:, None]
        m = roi_align(masks[:, None].to(rgb.dtype), torch.cat([idx, patch_boxes], 1), (s, s),
                      spatial_scale=1.0, sampling_ratio=2, aligned=True)
        return rgb, m

    def forward(self, rgb: Tensor, mask: Tensor) -> Tensor:
        """Tensor[N, 3, S, S] + Tensor[N, 1, S, S] probabilities -> Tensor[N, 1, S, S] logits."""
        prior = torch.logit(mask.clamp(1e-4, 1 - 1e-4))
        x = F.relu(self.stem(torch.cat([rgb, mask * 2 - 1], dim=1)))
        return prior + self.out(self.blocks(x))

    def paste(self, patch_probs: Tensor, patch_boxes: Tensor, size: tuple[int, int]) -> Tensor:
        """Put refined patches back on the image grid (zero outside each patch).

        Args:
            patch_probs: Tensor[N, 1, S, S]; patch_boxes: Tensor[N, 4]; size: (H, W).
        Returns:
            Tensor[N, H, W] probabilities.
        """
        H, W = size
        out = patch_probs.new_zeros((patch_probs.shape[0], H, W))
        for k in range(patch_probs.shape[0]):
            x0, y0, x1, y1 = patch_boxes[k].tolist()
            ix0, iy0 = max(int(math.floor(x0)), 0), max(int(math.floor(y0)), 0)
            ix1, iy1 = min(int(math.ceil(x1)), W), min(int(math.ceil(y1)), H)
            if ix1 <= ix0 or iy1 <= iy0:
                continue
            # pixel centres of the covered region in the patch's normalised [-1, 1] coordinates
            xs = ((torch.arange(ix0, ix1, device=out.device) + 0.5) - x0) / (x1 - x0) * 2 - 1
            ys = ((torch.arange(iy0, iy1, device=out.device) + 0.5) - y0) / (y1 - y0) * 2 - 1
            gy, gx = torch.meshgrid(ys, xs, indexing="ij")
            grid = torch.stack([gx, gy], dim=-1)[None].to(patch_probs.dtype)
            out[k, iy0:iy1, ix0:ix1] = F.grid_sample(patch_probs[k:k + 1], grid, mode="bilinear",
                                                     align_corners=False)[0, 0]
        return out


__all__ = ["MaskPropagationHead", "MaskRefinementHead"]
