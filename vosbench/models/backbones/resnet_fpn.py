"""ResNet / ResNeXt + FPN backbones (torchvision ``BackboneWithFPN`` contract).

``forward(x: Tensor[B, 3, H, W]) -> OrderedDict`` with keys and strides

=======  ======  ============================================
key      stride  source
=======  ======  ============================================
``'0'``  4       FPN on ``layer1`` (C2)
``'1'``  8       FPN on ``layer2`` (C3)
``'2'``  16      FPN on ``layer3`` (C4)
``'3'``  32      FPN on ``layer4`` (C5)
``pool`` 64      max-pool (k=1, s=2) of ``'3'`` (torchvision ``LastLevelMaxPool``)
=======  ======  ============================================

every level having ``out_channels`` channels (256 by default, 32 for ``resnet_tiny_fpn``);
sizes are ``ceil(H / stride)``. ``output_shape()`` returns this table. Inputs are normalised by the
caller (torchvision's ``GeneralizedRCNNTransform`` does it in the detector).

Normalisation (``norm``):

* ``"frozen_bn"`` (default): torchvision ``FrozenBatchNorm2d`` in the trunk, no norm in the FPN
  (torchvision / detectron2 Mask R-CNN default).
* ``"gn"``: ``GroupNorm(32, C)`` in the trunk *and* in the FPN convs (as detectron2's GN
  configs; LIP uses ResNet-101-FPN with GN). ImageNet BN weights load into it with the BN
  running statistics dropped (the BN affine weights become the GN affine weights); detectron2's
  GN-pretrained ImageNet models are the better start where available.
* ``"bn"``: trainable ``BatchNorm2d`` (for large-batch training only).

``trainable_layers`` follows torchvision: 0-5 of ``layer4, layer3, layer2, layer1, conv1``
(counted from the top) get gradients; the rest are frozen.
"""
from __future__ import annotations

import os
from collections import OrderedDict
from typing import Callable

from torch import Tensor, nn
from torchvision.models import resnet as tv_resnet
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.ops import FrozenBatchNorm2d
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from vosbench.models.weights import load_pretrained, load_state_dict_checked, read_state_dict
from vosbench.registry import BACKBONES

STRIDES = {"0": 4, "1": 8, "2": 16, "3": 32, "pool": 64}
_BN_STATS = ("running_mean", "running_var", "num_batches_tracked")


def _gn(num_channels: int, num_groups: int = 32) -> nn.GroupNorm:
    return nn.GroupNorm(min(num_groups, num_channels), num_channels)


def norm_layer_for(norm: str) -> Callable[[int], nn.Module]:
    """The trunk norm layer for ``"frozen_bn" | "gn" | "bn"``."""
    if norm == "frozen_bn":
        return FrozenBatchNorm2d
    if norm == "gn":
        return _gn
    if norm == "bn":
        return nn.BatchNorm2d
    raise ValueError(f"norm must be 'frozen_bn', 'gn' or 'bn', got {norm!r}")


class ResNetFPN(BackboneWithFPN):
    """``BackboneWithFPN`` plus ``output_shape()``; see the module docstring for the levels."""

    def output_shape(self) -> dict[str, dict[str, int]]:
        return {k: {"channels": self.out_channels, "stride": s} for k, s in STRIDES.items()}

    def forward(self, x: Tensor) -> "OrderedDict[str, Tensor]":
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"{type(self).__name__}: expected [B, 3, H, W], got {tuple(x.shape)}")
        return super().forward(x)


def _trunk_file_transform(own: dict, norm: str):
    """Edits of an ImageNet classification state dict before it loads into ``ResNetFPN.body``:
    the classifier ``fc.*`` is not part of the body, and with ``norm="gn"`` the file's BN running
    statistics have no place (GN has none; the BN affine weights become GN's). Layout renames
    are torchvision's hooks' job (``load_state_dict_upgrading``), not done here."""

    def transform(sd: dict) -> dict:
        sd = {k: v for k, v in sd.items() if not k.startswith("fc.")}
        if norm == "gn":
            sd = {k: v for k, v in sd.items() if not (k.rsplit(".", 1)[-1] in _BN_STATS and k not in own)}
        return sd

    return transform


def _load_trunk(model: "ResNetFPN", weights, norm: str, *, component: str, name: str,
                allow_random_init: bool | None) -> None:
    """The weights policy for an ImageNet trunk (``vosbench.models.weights.load_pretrained``):
    the file loads into ``model.body`` (every key must match, ``WeightsError`` lists the
    missing / unexpected / mismatched ones); no file is an error unless random init is allowed."""
    load_pretrained(model.body, weights, component=component, name=name,
                    key="method.backbone.weights", allow_random_init=allow_random_init,
                    transform=_trunk_file_transform(model.body.state_dict(), norm))


def _freeze(trunk: nn.Module, trainable_layers: int) -> None:
    if not 0 <= trainable_layers <= 5:
        raise ValueError(f"trainable_layers must be in 0..5, got {trainable_layers}")
    train = ["layer4", "layer3", "layer2", "layer1", "conv1"][:trainable_layers]
    if trainable_layers == 5:
        train.append("bn1")
    for name, p in trunk.named_parameters():
        if not any(name.startswith(t) for t in train):
            p.requires_grad_(False)


def _with_fpn(trunk: nn.Module, in_channels_list: list[int], out_channels: int, norm: str,
              trainable_layers: int) -> ResNetFPN:
    _freeze(trunk, trainable_layers)
    return ResNetFPN(
        trunk,
        return_layers={"layer1": "0", "layer2": "1", "layer3": "2", "layer4": "3"},
        in_channels_list=in_channels_list,
        out_channels=out_channels,
        extra_blocks=LastLevelMaxPool(),
        norm_layer=_gn if norm == "gn" else None,
    )


def _torchvision_resnet_fpn(arch: str, *, norm: str, weights, trainable_layers: int,
                            out_channels: int, allow_random_init: bool | None) -> ResNetFPN:
    trunk = getattr(tv_resnet, arch)(weights=None, norm_layer=norm_layer_for(norm))
    c2 = trunk.inplanes // 8  # 256 for bottleneck ResNets
    model = _with_fpn(trunk, [c2, c2 * 2, c2 * 4, c2 * 8], out_channels, norm, trainable_layers)
    _load_trunk(model, weights, norm, component=arch, name=f"{arch}_fpn",
                allow_random_init=allow_random_init)
    return model


@BACKBONES.register("resnet50_fpn")
def resnet50_fpn(*, norm: str = "frozen_bn", weights: str | os.PathLike | None = None,
                 trainable_layers: int = 3, out_channels: int = 256,
                 allow_random_init: bool | None = None) -> ResNetFPN:
    """ResNet-50 + FPN. ``weights``: local torchvision ``resnet50`` ImageNet state dict.

    ``weights=None`` (or a missing file) is an error unless random init is allowed
    (``allow_random_init=True``, or None and the scoped ``weights_policy`` allows it).
    """
    return _torchvision_resnet_fpn("resnet50", norm=norm, weights=weights,
                                   trainable_layers=trainable_layers, out_channels=out_channels,
                                   allow_random_init=allow_random_init)


@BACKBONES.register("resnet101_fpn")
def resnet101_fpn(*, norm: str = "frozen_bn", weights: str | os.PathLike | None = None,
                  trainable_layers: int = 3, out_channels: int = 256,
                  allow_random_init: bool | None = None) -> ResNetFPN:
    """ResNet-101 + FPN (LIP: ``norm="gn"``). ``weights``: torchvision ``resnet101`` file
    (same policy as ``resnet50_fpn``)."""
    return _torchvision_resnet_fpn("resnet101", norm=norm, weights=weights,
                                   trainable_layers=trainable_layers, out_channels=out_channels,
                                   allow_random_init=allow_random_init)


@BACKBONES.register("resnext101_fpn")
def resnext101_fpn(*, variant: str = "64x4d", norm: str = "frozen_bn",
                   weights: str | os.PathLike | None = None, trainable_layers: int = 3,
                   out_channels: int = 256, allow_random_init: bool | None = None) -> ResNetFPN:
    """ResNeXt-101 + FPN; ``variant`` ``"64x4d"`` (MaskProp's trunk) or ``"32x8d"`` (same
    weights policy as ``resnet50_fpn``)."""
    if variant not in ("64x4d", "32x8d"):
        raise ValueError(f"resnext101_fpn: variant must be '64x4d' or '32x8d', got {variant!r}")
    return _torchvision_resnet_fpn(f"resnext101_{variant}", norm=norm, weights=weights,
                                   trainable_layers=trainable_layers, out_channels=out_channels,
                                   allow_random_init=allow_random_init)


class TinyResNet(nn.Module):
    """A ResNet-10-like trunk (one ``BasicBlock`` per stage, widths ``width * (1, 2, 4, 8)``)
    with torchvision's attribute names (``conv1, bn1, relu, maxpool, layer1..layer4``), so the
    same FPN wrapper applies. Strides 4, 8, 16, 32; for fast CPU tests only."""

    def __init__(self, *, width: int = 16, norm_layer: Callable[[int], nn.Module] = FrozenBatchNorm2d) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 7, stride=2, padding=3, bias=False)
        self.bn1 = norm_layer(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        c_in = width
        for i, mult in enumerate((1, 2, 4, 8), start=1):
            c = width * mult
            stride = 1 if i == 1 else 2
            down = None
            if stride != 1 or c_in != c:
                down = nn.Sequential(nn.Conv2d(c_in, c, 1, stride=stride, bias=False), norm_layer(c))
            setattr(self, f"layer{i}", nn.Sequential(
                tv_resnet.BasicBlock(c_in, c, stride=stride, downsample=down, norm_layer=norm_layer)))
            c_in = c
        self.channels = [width * m for m in (1, 2, 4, 8)]

    def forward(self, x: Tensor) -> Tensor:  # pragma: no cover - used through IntermediateLayerGetter
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


@BACKBONES.register("resnet_tiny_fpn")
def resnet_tiny_fpn(*, norm: str = "frozen_bn", weights: str | os.PathLike | None = None,
                    trainable_layers: int = 5, out_channels: int = 32, width: int = 16) -> ResNetFPN:
    """Tiny ResNet + FPN for tests (channels 16..128, FPN 32); same keys/strides as the others.

    ``weights`` may only be a checkpoint of this same tiny model (there is no ImageNet file).
    With ``norm="frozen_bn"`` the trunk's norms are identity-initialised frozen statistics.
    """
    trunk = TinyResNet(width=width, norm_layer=norm_layer_for(norm))
    model = _with_fpn(trunk, trunk.channels, out_channels, norm, trainable_layers)
    if weights is not None:
        load_state_dict_checked(model, read_state_dict(weights), strict=True, source=str(weights))
    return model


__all__ = ["ResNetFPN", "TinyResNet", "STRIDES", "norm_layer_for", "resnet50_fpn",
           "resnet101_fpn", "resnext101_fpn", "resnet_tiny_fpn"]
