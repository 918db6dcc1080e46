"""Backbones (BACKBONES registry).

* ``vgg16_side`` / ``vgg16_side_tiny``: VGG-16 with fused OSVOS-style side outputs (MaskRNN);
  ``forward -> dict(side [B,1,H,W] logits, conv5_3 [B,512,H/16,W/16], stages)``.
* ``resnet50_fpn`` / ``resnet101_fpn`` / ``resnext101_fpn`` / ``resnet_tiny_fpn``: torchvision
  ``BackboneWithFPN`` contract, ``forward -> OrderedDict('0','1','2','3','pool')`` at strides
  4, 8, 16, 32, 64 with ``out_channels`` channels each.

All take normalised inputs; all are built with keyword-only arguments and load weights only from
local files. The full-size ones follow the weights policy of ``vosbench.models.weights``: no file
is an error unless random init is allowed (``allow_random_init`` keyword or the scoped
``weights_policy``); the tiny test variants have no published file and start random.
"""
from vosbench.models.backbones.resnet_fpn import STRIDES, ResNetFPN, TinyResNet
from vosbench.models.backbones.vgg import IMAGENET_MEAN, IMAGENET_STD, VGG16Side, extend_first_conv

__all__ = ["VGG16Side", "extend_first_conv", "IMAGENET_MEAN", "IMAGENET_STD", "ResNetFPN",
           "TinyResNet", "STRIDES"]
