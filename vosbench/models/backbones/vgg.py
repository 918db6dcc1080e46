"""VGG-16 with OSVOS-style side outputs (MaskRNN's appearance and flow streams).

MaskRNN §3.3: "The intermediate representations of the VGG-16 network, right before the
max-pooling layers and after the ReLU layers, are extracted, upsampled by bilinear interpolation
and linearly combined to form a single channel feature representation which has the same size as
the input image" (following OSVOS [7]).

Implementation (OSVOS's ``side_prep`` + ``fuse``): for each of the 5 VGG stages, the ReLU output
before the stage's max-pool (conv1_2, conv2_2, conv3_3, conv4_3, conv5_3; strides 1, 2, 4, 8, 16)
goes through a 3x3 conv to ``side_channels`` (16, as OSVOS) channels *without* a non-linearity,
is bilinearly upsampled to the input size, and all of them are concatenated and combined by a
1x1 conv into one channel. Everything after the ReLUs is linear, as the paper says.
The fifth max-pool and the classifier of VGG-16 are not used.

Inputs are expected normalised by the caller (the first three channels with ImageNet mean/std
when using ImageNet weights; ``IMAGENET_MEAN``/``IMAGENET_STD`` below).
"""
from __future__ import annotations

import os
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vosbench.models.weights import load_pretrained
from vosbench.registry import BACKBONES

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# torchvision vgg16 "D" configuration: conv widths per stage.
_VGG16_STAGES = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))


def extend_first_conv(weight: Tensor, in_channels: int, mode: str = "zeros") -> Tensor:
    """Adapt a pretrained RGB first-layer kernel ``Tensor[O, 3, k, k]`` to ``in_channels`` inputs.

    * ``in_channels == 3``: unchanged.
    * ``in_channels > 3``: the first three input channels keep the RGB filters; each extra
      channel gets zeros (``mode="zeros"``, default: the pretrained network computes exactly the
      same features at initialisation and learns to use the new input, as MaskTrack/MaskRNN-style
      mask channels are commonly initialised) or the mean of the RGB filters (``mode="mean"``:
      the new channel starts out acting like a grey image).
    * ``in_channels < 3``: every channel gets the sum of the RGB filters divided by
      ``in_channels`` (a grey input replicated to RGB gives the same response).
    """
    o, c, kh, kw = weight.shape
    if c != 3:
        raise ValueError(f"extend_first_conv: expected an RGB kernel [O, 3, k, k], got {tuple(weight.shape)}")
    if in_channels == 3:
        return weight.clone()
    if in_channels < 3:
        return weight.sum(dim=1, keepdim=True).expand(o, in_channels, kh, kw) / in_channels
    if mode == "zeros":
        extra = torch.zeros(o, in_channels - 3, kh, kw, dtype=weight.dtype)
    elif mode == "mean":
        extra = weight.mean(dim=1, keepdim=True).expand(o, in_channels - 3, kh, kw)
    else:
        raise ValueError(f"extend_first_conv: mode must be 'zeros' or 'mean', got {mode!r}")
    return torch.cat([weight, extra], dim=1).contiguous()


class VGG16Side(nn.Module):
    """VGG-16 trunk + linear fusion of upsampled side outputs into one logit channel.

    Args:
        in_channels: input channels (3 = RGB; 4 = RGB + warped mask; 4 = 3-channel flow
            magnitude + warped mask, ...).
        weights: a local torchvision ``vgg16`` state dict / vosbench checkpoint (only
            ``features.*`` is used); with ``in_channels != 3`` the first kernel is extended by
            ``extend_first_conv``. At ``width == 1`` the weights policy applies
            (``vosbench.models.weights.load_pretrained``): None or a missing file is an error
            unless random init is allowed; narrower widths have no published file (random init).
        width: channel multiplier (1.0 = VGG-16; the tiny test variant uses 1/16). Pretrained
            weights need ``width == 1``.
        allow_random_init: explicit policy decision (None: the scoped ``weights_policy``).
        side_channels: channels of each side output before fusion (16 as in OSVOS).
        extra_channel_init: ``"zeros"`` or ``"mean"``, see ``extend_first_conv``.
        frozen_stages: number of leading VGG stages (0-5) whose weights are frozen.

    Shapes (input ``Tensor[B, C, H, W]``):
        ``forward`` returns a dict with
        * ``side``: Tensor[B, 1, H, W] fused logits (no sigmoid),
        * ``conv5_3``: Tensor[B, 512*width, ceil(H/16), ceil(W/16)] (stride 16),
        * ``stages``: list of the 5 pre-pool features (strides 1, 2, 4, 8, 16).
        VGG pools with ``ceil_mode=True`` so any H, W works (odd sizes round up).
    """

    def __init__(self, *, in_channels: int = 3, weights: str | os.PathLike | None = None,
                 width: float = 1.0, side_channels: int = 16, extra_channel_init: str = "zeros",
                 frozen_stages: int = 0, allow_random_init: bool | None = None) -> None:
        super().__init__()
        if in_channels < 1:
            raise ValueError(f"vgg16_side: in_channels must be >= 1, got {in_channels}")
        if weights is not None and width != 1.0:
            raise ValueError("vgg16_side: pretrained weights need width=1.0")
        if not 0 <= frozen_stages <= 5:
            raise ValueError(f"vgg16_side: frozen_stages must be in 0..5, got {frozen_stages}")
        self.in_channels = in_channels
        self.widths = [[max(1, int(round(c * width))) for c in stage] for stage in _VGG16_STAGES]
        # Layer numbering matches torchvision's vgg16().features so its state dict loads as is.
        layers: list[nn.Module] = []
        self._stage_ends: list[int] = []  # index of the ReLU before each max-pool
        c_in = in_channels
        for s, stage in enumerate(self.widths):
            if s > 0:
                layers.append(nn.MaxPool2d(2, 2, ceil_mode=True))
            for c in stage:
                layers += [nn.Conv2d(c_in, c, 3, padding=1), nn.ReLU(inplace=True)]
                c_in = c
            self._stage_ends.append(len(layers) - 1)
        self.features = nn.Sequential(*layers)
        self.side_prep = nn.ModuleList(
            nn.Conv2d(stage[-1], side_channels, 3, padding=1) for stage in self.widths)
        self.fuse = nn.Conv2d(side_channels * len(self.widths), 1, 1)
        self.out_channels = self.widths[-1][-1]
        self._init_weights()
        if width == 1.0:
            self.load_pretrained(weights, extra_channel_init=extra_channel_init,
                                 allow_random_init=allow_random_init)
        for s in range(frozen_stages):
            lo = 0 if s == 0 else self._stage_ends[s - 1] + 1
            for layer in list(self.features)[lo:self._stage_ends[s] + 1]:
                layer.requires_grad_(False)

    def _init_weights(self) -> None:
        for m in self.features.modules():
            if isinstance(m, nn.Conv2d):  # torchvision's VGG init
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
        for m in list(self.side_prep) + [self.fuse]:
            nn.init.normal_(m.weight, std=0.01)
            nn.init.zeros_(m.bias)

    def load_pretrained(self, path: str | os.PathLike | None, *, extra_channel_init: str = "zeros",
                        allow_random_init: bool | None = None) -> None:
        """Load ``features.*`` of a torchvision vgg16 state dict, extending the first kernel
        (weights policy: None / a missing file is an error unless random init is allowed)."""
        in_channels = self.in_channels

        def extend(sd: dict) -> dict:
            if "0.weight" in sd and sd["0.weight"].shape[1] == 3 and in_channels != 3:
                sd["0.weight"] = extend_first_conv(sd["0.weight"], in_channels, extra_channel_init)
            return sd

        load_pretrained(self.features, path, component="vgg16", name="vgg16_side",
                        key="method.backbone.weights", allow_random_init=allow_random_init,
                        prefix="features.", transform=extend)

    def output_shape(self) -> dict[str, dict[str, int]]:
        """Channels and strides of the outputs."""
        return {"side": {"channels": 1, "stride": 1},
                "conv5_3": {"channels": self.out_channels, "stride": 16}}

    def forward(self, x: Tensor) -> dict[str, Tensor | list[Tensor]]:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"vgg16_side: expected [B, {self.in_channels}, H, W], got {tuple(x.shape)}")
        H, W = x.shape[-2:]
        stages: list[Tensor] = []
        h = x
        ends = set(self._stage_ends)
        for i, layer in enumerate(self.features):
            h = layer(h)
            if i in ends:
                stages.append(h)
        sides = [F.interpolate(prep(f), size=(H, W), mode="bilinear", align_corners=False)
                 if f.shape[-2:] != (H, W) else prep(f)
                 for prep, f in zip(self.side_prep, stages)]
        side = self.fuse(torch.cat(sides, dim=1))  # [B, 1, H, W]
        return {"side": side, "conv5_3": stages[-1], "stages": stages}


@BACKBONES.register("vgg16_side")
def vgg16_side(*, in_channels: int = 3, weights: str | os.PathLike | None = None,
               side_channels: int = 16, extra_channel_init: str = "zeros",
               frozen_stages: int = 0, allow_random_init: bool | None = None) -> VGG16Side:
    """Full-width VGG-16 side-output network (see ``VGG16Side``; weights policy applies)."""
    return VGG16Side(in_channels=in_channels, weights=weights, side_channels=side_channels,
                     extra_channel_init=extra_channel_init, frozen_stages=frozen_stages,
                     allow_random_init=allow_random_init)


@BACKBONES.register("vgg16_side_tiny")
def vgg16_side_tiny(*, in_channels: int = 3, width: float = 1 / 16, side_channels: int = 4,
                    weights: str | os.PathLike | None = None) -> VGG16Side:
    """VGG-16 layout at 1/16 width (4..32 channels) for fast CPU tests; random init only."""
    if weights is not None:
        raise ValueError("vgg16_side_tiny has no pretrained weights; use vgg16_side")
    return VGG16Side(in_channels=in_channels, width=width, side_channels=side_channels)


__all__: Sequence[str] = ["VGG16Side", "vgg16_side", "vgg16_side_tiny", "extend_first_conv",
                          "IMAGENET_MEAN", "IMAGENET_STD"]
