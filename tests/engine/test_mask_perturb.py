"""Previous-mask perturbations (MaskRNN §4): seeded, bounded, each component does something."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from vosbench.data.mask_perturb import MaskPerturbation, perturb_mask


def _disk(h=64, w=96, cx=48, cy=32, r=12):
    ys, xs = np.mgrid[:h, :w]
    return (xs - cx) ** 2 + (ys - cy) ** 2 <= r * r


def _iou(a, b):
    return (a & b).sum() / max(1, (a | b).sum())


def test_seeded_and_type_preserving():
    m = torch.from_numpy(_disk())
    a = perturb_mask(m, np.random.default_rng(5))
    b = perturb_mask(m, np.random.default_rng(5))
    assert isinstance(a, torch.Tensor) and a.dtype == torch.bool and a.shape == m.shape
    assert torch.equal(a, b)
    c = perturb_mask(m.numpy(), np.random.default_rng(6))
    assert isinstance(c, np.ndarray) and c.dtype == bool
    assert torch.equal(perturb_mask(m, torch.Generator().manual_seed(1)),
                       perturb_mask(m, torch.Generator().manual_seed(1)))


def test_perturbation_is_plausible():
    m = _disk()
    ious = [_iou(perturb_mask(m, np.random.default_rng(s)), m) for s in range(30)]
    # corrupted, but still the same object (what a decent previous prediction looks like)
    assert 0.35 < min(ious) and 0.55 < np.mean(ious) < 0.9 and max(ious) < 1.0


@pytest.mark.parametrize("which", ["morph", "elastic", "affine"])
def test_each_component_changes_the_mask(which):
    off = dict(p_morph=0.0, p_elastic=0.0, p_affine=0.0)
    on = {"morph": {"p_morph": 1.0}, "elastic": {"p_elastic": 1.0, "elastic_std": 0.1},
          "affine": {"p_affine": 1.0}}[which]
    params = MaskPerturbation(**{**off, **on})
    m = _disk()
    outs = [perturb_mask(m, np.random.default_rng(s), params) for s in range(5)]
    assert any(not np.array_equal(o, m) for o in outs)
    if which == "morph":  # dilation grows, erosion shrinks, and nothing else moves
        assert all((o >= m).all() or (o <= m).all() for o in outs)
    none = [perturb_mask(m, np.random.default_rng(s), MaskPerturbation(**off)) for s in range(3)]
    assert all(np.array_equal(o, m) for o in none)


def test_small_and_empty_masks_survive():
    empty = np.zeros((20, 30), dtype=bool)
    assert not perturb_mask(empty, 0).any()
    tiny = np.zeros((20, 30), dtype=bool)
    tiny[9:11, 14:16] = True
    assert all(perturb_mask(tiny, s).any() for s in range(20))  # never erased entirely


def test_bad_input():
    with pytest.raises(ValueError, match=r"\[H, W\]"):
        perturb_mask(np.zeros((2, 3, 4), dtype=bool), 0)
    with pytest.raises(TypeError, match="rng"):
        perturb_mask(np.zeros((3, 4), dtype=bool), "seed")
