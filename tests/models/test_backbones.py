"""Backbone shapes, strides, pretrained-weight loading and first-layer extension."""
from __future__ import annotations

import pytest
import torch
import torchvision

from vosbench.config import build
from vosbench.models.backbones import STRIDES, extend_first_conv
from vosbench.models.weights import WeightsError
from vosbench.registry import BACKBONES

H, W = 64, 96


def test_vgg16_side_tiny_shapes_and_gradients():
    net = build({"name": "vgg16_side_tiny", "in_channels": 4}, BACKBONES)
    x = torch.rand(2, 4, H, W, requires_grad=True)
    out = net(x)
    assert out["side"].shape == (2, 1, H, W)
    assert out["conv5_3"].shape == (2, net.out_channels, H // 16, W // 16)
    assert net.output_shape()["conv5_3"] == {"channels": net.out_channels, "stride": 16}
    assert [f.shape[-1] for f in out["stages"]] == [W, W // 2, W // 4, W // 8, W // 16]
    out["side"].sum().backward()
    assert net.fuse.weight.grad is not None and x.grad.abs().sum() > 0
    # Odd sizes work (ceil-mode pooling) and the side map keeps the input size.
    odd = net(torch.rand(1, 4, 37, 53))
    assert odd["side"].shape == (1, 1, 37, 53) and odd["conv5_3"].shape[-2:] == (3, 4)
    with pytest.raises(ValueError, match=r"\[B, 4, H, W\]"):
        net(torch.rand(1, 3, H, W))


def test_vgg16_side_is_linear_after_the_relus():
    # The side map is a linear function of the 5 pre-pool features (no hidden non-linearity):
    # doubling all fusion inputs (side_prep outputs) doubles the logits minus the biases.
    net = build({"name": "vgg16_side_tiny"}, BACKBONES).eval()
    for m in list(net.side_prep) + [net.fuse]:
        torch.nn.init.zeros_(m.bias)
    x = torch.rand(1, 3, 32, 48)
    feats = net(x)["stages"]
    sides = [torch.nn.functional.interpolate(p(f), size=(32, 48), mode="bilinear", align_corners=False)
             for p, f in zip(net.side_prep, feats)]
    twice = net.fuse(torch.cat([2 * s for s in sides], 1))
    assert torch.allclose(twice, 2 * net(x)["side"], atol=1e-5)


def test_extend_first_conv():
    w = torch.randn(8, 3, 3, 3)
    assert torch.equal(extend_first_conv(w, 3), w)
    z = extend_first_conv(w, 5)
    assert z.shape == (8, 5, 3, 3) and torch.equal(z[:, :3], w) and not z[:, 3:].any()
    m = extend_first_conv(w, 4, "mean")
    assert torch.allclose(m[:, 3], w.mean(1))
    g = extend_first_conv(w, 1)
    # a grey image replicated to RGB gives the same response as the grey kernel on the grey image
    img = torch.rand(1, 1, 8, 8)
    ref = torch.nn.functional.conv2d(img.expand(1, 3, 8, 8), w)
    assert torch.allclose(torch.nn.functional.conv2d(img, g), ref, atol=1e-5)
    with pytest.raises(ValueError):
        extend_first_conv(w, 4, "random")


def test_vgg16_side_loads_torchvision_weights_and_extends_input(tmp_path):
    torch.manual_seed(0)
    features = torchvision.models.vgg16().features.eval()
    path = tmp_path / "vgg16.pth"
    # a torchvision vgg16 state dict holds features.* and classifier.*; only features.* is used
    torch.save({f"features.{k}": v for k, v in features.state_dict().items()}
               | {"classifier.0.weight": torch.zeros(2, 2)}, path)
    net = build({"name": "vgg16_side", "in_channels": 4, "weights": str(path)}, BACKBONES).eval()
    w0 = net.features[0].weight
    assert torch.equal(w0[:, :3], features[0].weight) and not w0[:, 3].any()
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        got = net(torch.cat([x, torch.rand(1, 1, 32, 32)], 1))["conv5_3"]
        ref = features[:30](x)  # conv5_3 + ReLU of torchvision's VGG-16
    assert torch.allclose(got, ref, atol=1e-4)  # zero-initialised extra channel changes nothing
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        build({"name": "vgg16_side", "weights": str(tmp_path / "nope.pth")}, BACKBONES)


def _shapes(out):
    return {k: tuple(v.shape) for k, v in out.items()}


@pytest.mark.parametrize("norm", ["frozen_bn", "gn"])
def test_resnet_tiny_fpn_levels(norm):
    net = build({"name": "resnet_tiny_fpn", "norm": norm}, BACKBONES)
    out = net(torch.rand(2, 3, H, W))
    assert list(out) == ["0", "1", "2", "3", "pool"]
    c = net.out_channels
    assert c == 32
    assert _shapes(out) == {k: (2, c, -(-H // s), -(-W // s)) for k, s in STRIDES.items()}
    assert net.output_shape()["pool"] == {"channels": c, "stride": 64}
    has_gn = any(isinstance(m, torch.nn.GroupNorm) for m in net.fpn.modules())
    assert has_gn == (norm == "gn")
    sum(v.sum() for v in out.values()).backward()


def test_resnet50_fpn_loads_imagenet_state_dict(tmp_path):
    torch.manual_seed(0)
    ref = torchvision.models.resnet50().eval()
    path = tmp_path / "resnet50.pth"
    torch.save(ref.state_dict(), path)
    net = build({"name": "resnet50_fpn", "weights": str(path), "trainable_layers": 2}, BACKBONES).eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        c5 = net.body(x)["3"]
        r = ref
        c5_ref = r.layer4(r.layer3(r.layer2(r.layer1(r.maxpool(r.relu(r.bn1(r.conv1(x))))))))
        out = net(x)
    assert torch.allclose(c5, c5_ref, atol=1e-4)  # frozen BN = eval BN with the file's stats
    assert _shapes(out) == {k: (1, 256, 64 // s if s < 64 else 1, 64 // s if s < 64 else 1)
                            for k, s in STRIDES.items()}
    trainable = {n.split(".")[0] for n, p in net.body.named_parameters() if p.requires_grad}
    assert trainable == {"layer3", "layer4"}
    # GN variant: the BN running statistics are the only keys dropped; affine weights load.
    gn = build({"name": "resnet50_fpn", "weights": str(path), "norm": "gn"}, BACKBONES)
    assert torch.equal(gn.body["layer1"][0].bn1.weight, ref.layer1[0].bn1.weight)
    # A file for another architecture is refused with the offending keys listed.
    bad = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), bad)
    with pytest.raises(WeightsError, match="resnet18.pth.*(shape mismatch|missing)"):
        build({"name": "resnet50_fpn", "weights": str(bad)}, BACKBONES)


def test_backbone_argument_errors():
    with pytest.raises(ValueError, match="norm"):
        build({"name": "resnet_tiny_fpn", "norm": "ln"}, BACKBONES)
    with pytest.raises(ValueError, match="variant"):
        build({"name": "resnext101_fpn", "variant": "8x8d"}, BACKBONES)
    with pytest.raises(ValueError, match="trainable_layers"):
        build({"name": "resnet_tiny_fpn", "trainable_layers": 6}, BACKBONES)
    with pytest.raises(ValueError, match="tiny"):
        build({"name": "vgg16_side_tiny", "weights": "x.pth"}, BACKBONES)
