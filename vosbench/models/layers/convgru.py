"""Convolutional gated recurrent unit with GroupNorm in place of the bias (LIP eq. 1a-1d).

LIP (Lyu et al., "LIP: Learning Instance Propagation for Video Object Segmentation", §3.2)
replaces the bias of every gate of a Conv-GRU (Ballas et al. 2016) by a GroupNorm layer, because
consecutive frames of one video make a batch with little variation (the small-batch problem GN
solves)::

    z_t     = sigmoid(GN(W_hz * h_{t-1} + W_xz * x_t))            (1a)  update gate
    r_t     = sigmoid(GN(W_hr * h_{t-1} + W_xr * x_t))            (1b)  reset gate
    h^_t    = tanh  (GN(W_h  * (r_t . h_{t-1}) + W_x * x_t))      (1c)  candidate state
    h_t     = (1 - z_t) . h_{t-1} + z_t . h^_t                    (1d)

``*`` is a convolution (3x3 in the paper, 256 filters), ``.`` the element-wise product. With
``z_t = 0`` the state is carried unchanged, with ``z_t = 1`` it is replaced by the candidate.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn


def _num_groups(channels: int, requested: int) -> int:
    """Largest divisor of ``channels`` that is <= ``requested`` (GN needs groups | channels)."""
    g = max(1, min(requested, channels))
    while channels % g:
        g -= 1
    return g


class ConvGRUCell(nn.Module):
    """One Conv-GRU step, eq. (1a)-(1d), with GroupNorm instead of bias.

    The convolutions carry no bias; each of the three pre-activations gets its own GroupNorm
    (whose affine shift plays the role of the bias). Input and hidden convolutions of the two gates
    are fused into single convolutions for speed; this is the same function as separate
    ``W_hz, W_hr, W_xz, W_xr`` filters.

    Args:
        input_channels: C_in of ``x_t``.
        hidden_channels: C_h of ``h_t`` (256 in LIP).
        kernel_size: odd kernel size of every convolution (3 in LIP); padding keeps H, W.
        num_groups: GroupNorm groups (32 as in Wu & He); reduced to a divisor of C_h if needed.
    """

    def __init__(self, input_channels: int, hidden_channels: int, *, kernel_size: int = 3,
                 num_groups: int = 32) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"ConvGRUCell: kernel_size must be odd to keep H, W, got {kernel_size}")
        if input_channels <= 0 or hidden_channels <= 0:
            raise ValueError(f"ConvGRUCell: channels must be positive, got {input_channels}, {hidden_channels}")
        self.input_channels = input_channels
        self.hidden_channels = hidden_channels
        p = kernel_size // 2
        # W_xz, W_xr, W_x stacked along the output channels: one conv over x_t.
        self.conv_x = nn.Conv2d(input_channels, 3 * hidden_channels, kernel_size, padding=p, bias=False)
        # W_hz, W_hr stacked: one conv over h_{t-1}.
        self.conv_h_gates = nn.Conv2d(hidden_channels, 2 * hidden_channels, kernel_size, padding=p, bias=False)
        # W_h acts on r_t . h_{t-1}, so it needs its own conv after the reset gate.
        self.conv_h_cand = nn.Conv2d(hidden_channels, hidden_channels, kernel_size, padding=p, bias=False)
        g = _num_groups(hidden_channels, num_groups)
        self.norm_z = nn.GroupNorm(g, hidden_channels)
        self.norm_r = nn.GroupNorm(g, hidden_channels)
        self.norm_h = nn.GroupNorm(g, hidden_channels)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for conv in (self.conv_x, self.conv_h_gates, self.conv_h_cand):
            nn.init.kaiming_uniform_(conv.weight, a=1)
        for norm in (self.norm_z, self.norm_r, self.norm_h):
            nn.init.ones_(norm.weight)
            nn.init.zeros_(norm.bias)

    def init_state(self, x: Tensor) -> Tensor:
        """Zero hidden state ``Tensor[B, C_h, H, W]`` matching ``x: Tensor[B, C_in, H, W]``."""
        b, _, h, w = x.shape
        return x.new_zeros(b, self.hidden_channels, h, w)

    def forward(self, x: Tensor, h: Tensor | None = None) -> Tensor:
        """One step.

        Args:
            x: Tensor[B, C_in, H, W] input features of frame t.
            h: Tensor[B, C_h, H, W] previous hidden state, or None for zeros (first frame,
                image-level training, the zero-hidden-state ablation).
        Returns:
            Tensor[B, C_h, H, W] the new hidden state h_t (also the cell's output).
        """
        if x.dim() != 4 or x.shape[1] != self.input_channels:
            raise ValueError(f"ConvGRUCell: x must be [B, {self.input_channels}, H, W], got {tuple(x.shape)}")
        if h is None:
            h = self.init_state(x)
        elif h.shape[0] != x.shape[0] or h.shape[1] != self.hidden_channels or h.shape[-2:] != x.shape[-2:]:
            raise ValueError(
                f"ConvGRUCell: hidden state {tuple(h.shape)} does not fit input {tuple(x.shape)} "
                f"(expected [B, {self.hidden_channels}, H, W] with the input's B, H, W)"
            )
        xz, xr, xh = self.conv_x(x).chunk(3, dim=1)  # 3 x [B, C_h, H, W]
        hz, hr = self.conv_h_gates(h).chunk(2, dim=1)  # 2 x [B, C_h, H, W]
        z = torch.sigmoid(self.norm_z(hz + xz))  # (1a)
        r = torch.sigmoid(self.norm_r(hr + xr))  # (1b)
        cand = torch.tanh(self.norm_h(self.conv_h_cand(r * h) + xh))  # (1c)
        return (1 - z) * h + z * cand  # (1d)

    def extra_repr(self) -> str:
        return (f"{self.input_channels}, {self.hidden_channels}, "
                f"kernel_size={self.conv_x.kernel_size[0]}, groups={self.norm_z.num_groups}")


__all__ = ["ConvGRUCell"]
