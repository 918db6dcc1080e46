"""ConvGRUCell: eq. (1a)-(1d) of LIP, checked through its gates."""
from __future__ import annotations

import pytest
import torch

from vosbench.models.layers.convgru import ConvGRUCell


def _cell(cin=6, ch=8, groups=4):
    torch.manual_seed(0)
    return ConvGRUCell(cin, ch, kernel_size=3, num_groups=groups)


def _force(norm, value):
    """Make a gate's pre-activation a constant: GN weight 0, bias = value."""
    with torch.no_grad():
        norm.weight.zero_()
        norm.bias.fill_(value)


def test_shapes_and_zero_state_default():
    cell = _cell()
    x = torch.randn(2, 6, 5, 7)
    h = cell(x)
    assert h.shape == (2, 8, 5, 7)
    assert torch.allclose(h, cell(x, torch.zeros(2, 8, 5, 7)))
    # |h_t| <= 1 when h_{t-1} = 0: a convex mix of 0 and tanh(...).
    assert h.abs().max() <= 1


def test_bias_is_replaced_by_groupnorm():
    cell = _cell()
    convs = [m for m in cell.modules() if isinstance(m, torch.nn.Conv2d)]
    norms = [m for m in cell.modules() if isinstance(m, torch.nn.GroupNorm)]
    assert convs and all(c.bias is None for c in convs)
    assert len(norms) == 3 and all(c.kernel_size == (3, 3) for c in convs)


def test_update_gate_zero_keeps_state():
    cell = _cell()
    _force(cell.norm_z, -60.0)  # sigmoid(-60) ~ 0
    x, h = torch.randn(1, 6, 4, 4), torch.randn(1, 8, 4, 4)
    assert torch.allclose(cell(x, h), h, atol=1e-6)


def test_update_gate_one_replaces_state():
    cell = _cell()
    _force(cell.norm_z, 60.0)  # z = 1: h_t = candidate
    _force(cell.norm_r, -60.0)  # r = 0: the candidate ignores h_{t-1}
    x = torch.randn(1, 6, 4, 4)
    out_a = cell(x, torch.randn(1, 8, 4, 4))
    out_b = cell(x, torch.randn(1, 8, 4, 4))
    assert torch.allclose(out_a, out_b, atol=1e-6)
    # ... and the candidate is tanh(GN(W_x * x)): equal to the zero-state output.
    assert torch.allclose(out_a, cell(x, None), atol=1e-6)


def test_reset_gate_controls_candidate():
    cell = _cell()
    _force(cell.norm_z, 60.0)
    x, h = torch.randn(1, 6, 4, 4), torch.randn(1, 8, 4, 4)
    _force(cell.norm_r, 60.0)  # r = 1: candidate sees h
    open_r = cell(x, h)
    _force(cell.norm_r, -60.0)
    closed_r = cell(x, h)
    assert not torch.allclose(open_r, closed_r, atol=1e-3)


def test_state_carries_information_and_gradient():
    cell = _cell()
    x = torch.randn(1, 6, 4, 4)
    h = torch.randn(1, 8, 4, 4, requires_grad=True)
    out = cell(x, h)
    assert not torch.allclose(out, cell(x, None), atol=1e-4)
    out.sum().backward()
    assert h.grad is not None and h.grad.abs().sum() > 0
    assert all(p.grad is not None for p in cell.parameters())


def test_groups_fall_back_to_divisor():
    cell = ConvGRUCell(4, 12, num_groups=32)
    assert cell.norm_z.num_groups == 12


def test_bad_shapes_raise():
    cell = _cell()
    with pytest.raises(ValueError, match="x must be"):
        cell(torch.randn(1, 5, 4, 4))
    with pytest.raises(ValueError, match="hidden state"):
        cell(torch.randn(1, 6, 4, 4), torch.randn(1, 8, 3, 4))
    with pytest.raises(ValueError, match="odd"):
        ConvGRUCell(2, 2, kernel_size=2)
