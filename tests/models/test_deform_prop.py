"""DeformablePropagation (MaskProp §4.2): zero offsets == plain dilated convs, shifts, shapes."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from vosbench.models.layers.deform_prop import DeformablePropagation


def _plain(layer: DeformablePropagation, x: torch.Tensor) -> torch.Tensor:
    pad = layer.kernel_size // 2
    out = sum(F.conv2d(x, w, padding=d * pad, dilation=d) for d, w in zip(layer.dilations, layer.weights))
    return out + layer.bias.view(1, -1, 1, 1)


def test_zero_offsets_equal_plain_dilated_convolutions():
    torch.manual_seed(0)
    layer = DeformablePropagation(in_channels=4, out_channels=6, offset_channels=8, dilations=(1, 2, 3))
    with torch.no_grad():
        layer.bias.normal_()
    x = torch.randn(3, 4, 12, 14)
    fa, fb = torch.randn(1, 4, 12, 14), torch.randn(1, 4, 12, 14)
    # offset heads are zero-initialised: whatever the frames, the sampling grid is the regular one
    y = layer(x, fa, fb)
    assert y.shape == (3, 6, 12, 14)
    torch.testing.assert_close(y, _plain(layer, x), atol=1e-5, rtol=1e-5)


def test_integer_offsets_shift_the_sampling_grid():
    torch.manual_seed(1)
    layer = DeformablePropagation(in_channels=2, offset_channels=4, dilations=(1,), kernel_size=1)
    x = torch.randn(1, 2, 9, 9)
    off = torch.zeros(1, 2, 9, 9)
    off[:, 1] = 2.0  # dx = +2 pixels for the single tap: output(x) samples input(x + 2)
    y = layer.propagate(x, [off])
    ref = _plain(layer, x)
    torch.testing.assert_close(y[..., :-2], ref[..., 2:], atol=1e-5, rtol=1e-5)
    # a zero offset does not reproduce the shift (the test would catch an ignored offset)
    assert not torch.allclose(layer.propagate(x, [torch.zeros_like(off)])[..., :-2], ref[..., 2:])


def test_offsets_are_shared_across_instances_and_learnable():
    torch.manual_seed(2)
    layer = DeformablePropagation(in_channels=3, offset_channels=8, dilations=(3, 6, 12))
    offs = layer.offsets(torch.randn(1, 3, 16, 16), torch.randn(1, 3, 16, 16))
    assert [o.shape for o in offs] == [torch.Size([1, 18, 16, 16])] * 3
    x = torch.randn(5, 3, 16, 16, requires_grad=True)
    y = layer(x, torch.randn(1, 3, 16, 16), torch.randn(1, 3, 16, 16))
    assert y.shape == (5, 3, 16, 16)
    y.square().mean().backward()
    # zero-initialised offset heads still receive a gradient (alignment is learned implicitly)
    assert all(h.weight.grad is not None and h.weight.grad.abs().sum() > 0 for h in layer.offset_heads)
    assert layer(x[:0], torch.randn(1, 3, 16, 16), torch.randn(1, 3, 16, 16)).shape == (0, 3, 16, 16)


def test_bad_inputs_raise():
    layer = DeformablePropagation(in_channels=3, offset_channels=4)
    with pytest.raises(ValueError, match="channels"):
        layer(torch.randn(1, 4, 8, 8), torch.randn(1, 3, 8, 8), torch.randn(1, 3, 8, 8))
    with pytest.raises(ValueError, match="shapes differ"):
        layer(torch.randn(1, 3, 8, 8), torch.randn(1, 3, 8, 8), torch.randn(1, 3, 8, 9))
