"""Feature propagation between two frames with multi-dilation deformable convolutions.

MaskProp (Bertasius & Torresani, CVPR 2020, §4.2 and §4.4) propagates instance-specific
features ``f_t * M_t^i`` from frame ``t`` to frame ``t + delta``: the element-wise difference of the
two frames' features ``f_t - f_{t+delta}`` goes through a residual block of two 3x3 convolutions
(128 channels in the paper) that predicts motion offsets; a 3x3 deformable convolution then samples
the instance features at the offset locations. To capture motion at several scales the paper
uses three dilated deformable convolutions with dilation rates 3, 6 and 12 (as in PoseWarper,
Bertasius et al., NeurIPS 2019) and sums them.

The offsets depend only on the two frames, not on the instance, so they are computed once per
frame pair and shared by all the instances propagated between those frames.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn
from torchvision.ops import deform_conv2d


class OffsetResidualBlock(nn.Module):
    """Two 3x3 convolutions with an identity (or 1x1 projection) shortcut (He et al. 2016).

    Args:
        in_channels: channels of the feature difference.
        channels: output channels of both convolutions (128 in the paper).
    """

    def __init__(self, *, in_channels: int, channels: int = 128) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = (nn.Identity() if in_channels == channels
                         else nn.Conv2d(in_channels, channels, 1))

    def forward(self, x: Tensor) -> Tensor:
        """Tensor[B, C_in, H, W] -> Tensor[B, channels, H, W]."""
        y = self.relu(self.conv1(x))
        y = self.conv2(y)
        return self.relu(y + self.shortcut(x))


class DeformablePropagation(nn.Module):
    """Warp features of a source frame onto a target frame (MaskProp §4.2).

    ``forward(x, feat_src, feat_tgt)``: offsets are predicted from ``feat_src - feat_tgt`` by an
    ``OffsetResidualBlock`` followed, for every dilation rate ``d``, by a 3x3 convolution giving the
    ``2 * k * k`` sampling offsets of a ``k x k`` deformable convolution with dilation ``d``; the
    deformable convolutions are applied to ``x`` (e.g. instance-masked source features) and their
    outputs summed.

    The offset predictors are zero-initialised, so at initialisation the layer is exactly a sum of
    plain dilated convolutions (the alignment is learned from the downstream loss only, as the
    paper stresses: no ground-truth alignment is available).

    Args:
        in_channels: channels C of ``x`` and of the frame features.
        out_channels: channels of the propagated features (default ``in_channels``; 256 in the
            paper, the FPN width).
        offset_channels: width of the residual block that predicts offsets (128 in the paper).
        dilations: dilation rates of the deformable convolutions ((3, 6, 12) in the paper).
        kernel_size: size k of the deformable kernels (3 in the paper).
    """

    def __init__(self, *, in_channels: int, out_channels: int | None = None,
                 offset_channels: int = 128, dilations: Sequence[int] = (3, 6, 12),
                 kernel_size: int = 3) -> None:
        super().__init__()
        if not dilations:
            raise ValueError("DeformablePropagation needs at least one dilation rate")
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        out_channels = out_channels or in_channels
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.dilations = tuple(int(d) for d in dilations)
        self.kernel_size = kernel_size
        k2 = kernel_size * kernel_size
        self.offset_block = OffsetResidualBlock(in_channels=in_channels, channels=offset_channels)
        # One offset predictor per dilation: 2 * k * k offsets, (dy, dx) per kernel tap, in pixels.
        self.offset_heads = nn.ModuleList(
            nn.Conv2d(offset_channels, 2 * k2, 3, padding=1) for _ in self.dilations
        )
        self.weights = nn.ParameterList(
            nn.Parameter(torch.empty(out_channels, in_channels, kernel_size, kernel_size))
            for _ in self.dilations
        )
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for w in self.weights:
            nn.init.kaiming_uniform_(w, a=1)
            # The branch outputs are summed: keep the sum's variance that of one convolution.
            w.data /= len(self.weights) ** 0.5
        for head in self.offset_heads:
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)

    def offsets(self, feat_src: Tensor, feat_tgt: Tensor) -> list[Tensor]:
        """Sampling offsets for each dilation.

        Args:
            feat_src: Tensor[B, C, H, W] features of the frame the values come from (``f_t``).
            feat_tgt: Tensor[B, C, H, W] features of the frame they go to (``f_{t+delta}``).
        Returns:
            one Tensor[B, 2*k*k, H, W] per dilation rate, (dy, dx) pairs in pixels.
        """
        if feat_src.shape != feat_tgt.shape:
            raise ValueError(f"feature shapes differ: {tuple(feat_src.shape)} vs {tuple(feat_tgt.shape)}")
        h = self.offset_block(feat_src - feat_tgt)
        return [head(h) for head in self.offset_heads]

    def propagate(self, x: Tensor, offsets: Sequence[Tensor]) -> Tensor:
        """Apply the deformable convolutions with precomputed ``offsets``.

        Args:
            x: Tensor[N, C, H, W] features to propagate (N instances of one frame pair).
            offsets: from ``offsets()`` with batch 1 (shared by the N rows) or N.
        Returns:
            Tensor[N, out_channels, H, W].
        """
        if x.shape[1] != self.in_channels:
            raise ValueError(f"expected {self.in_channels} channels, got {tuple(x.shape)}")
        n = x.shape[0]
        out = None
        for d, w, off in zip(self.dilations, self.weights, offsets):
            if off.shape[0] != n:
                off = off.expand(n, -1, -1, -1)
            pad = d * (self.kernel_size // 2)
            y = deform_conv2d(x, off.contiguous(), w, padding=(pad, pad), dilation=(d, d))
            out = y if out is None else out + y
        return out + self.bias.view(1, -1, 1, 1)

    def forward(self, x: Tensor, feat_src: Tensor, feat_tgt: Tensor) -> Tensor:
        """Propagate ``x`` (living on the source frame) onto the target frame.

        Args:
            x: Tensor[N, C, H, W] source-frame features to move (e.g. ``f_t * M_t^i``, N instances).
            feat_src: Tensor[1 or N, C, H, W] source frame features ``f_t``.
            feat_tgt: Tensor[1 or N, C, H, W] target frame features ``f_{t+delta}``.
        Returns:
            Tensor[N, out_channels, H, W] propagated features ``f_{t, t+delta}``.
        """
        if x.shape[0] == 0:
            return x.new_zeros((0, self.out_channels, *x.shape[-2:]))
        return self.propagate(x, self.offsets(feat_src, feat_tgt))


__all__ = ["DeformablePropagation", "OffsetResidualBlock"]
