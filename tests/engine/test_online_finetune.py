"""Online fine-tuning: learns on the reference, restores weights bit-exactly, augments consistently."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from engine_testing import TinyTestMethod, make_video
from vosbench.engine.online_finetune import (FinetuneAugment, finetune_on_reference, random_affine,
                                             restore_weights)


def _loss(model):
    def fn(images, masks, valid):
        logits = model.logits(images)[:, 0]
        target = masks.any(dim=1).float()
        return F.binary_cross_entropy_with_logits(logits, target, weight=valid.float())
    return fn


def test_finetune_learns_and_weights_are_restored():
    torch.manual_seed(0)
    model = TinyTestMethod(hidden=4)
    model.bn = torch.nn.BatchNorm2d(3)  # a buffer that changes in train mode
    model.eval()
    before = copy.deepcopy(model.state_dict())
    v = make_video(h=24, w=32)
    images, masks = v.frames[0].image[None], v.frames[0].masks[None]
    model.conv1.requires_grad_(False)
    with restore_weights(model):
        model.train()
        model.bn(images)  # moves the running stats
        losses = finetune_on_reference(_loss(model), model.parameters(), images, masks, num_iters=30,
                                       lr=0.05, augment=None, generator=torch.Generator().manual_seed(0))
        assert losses[-1] < 0.7 * losses[0]
        changed = [k for k, v in model.state_dict().items() if not torch.equal(v, before[k])]
        assert "conv2.weight" in changed and "bn.running_mean" in changed
        assert "conv1.weight" not in changed  # frozen params stay put
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert not model.training and not model.conv1.weight.requires_grad
    assert all(p.grad is None for p in model.parameters())


def test_restore_on_exception():
    model = TinyTestMethod()
    before = copy.deepcopy(model.state_dict())
    with pytest.raises(RuntimeError):
        with restore_weights(model):
            with torch.no_grad():
                model.conv2.weight.add_(1.0)
            raise RuntimeError("video failed")
    assert torch.equal(model.conv2.weight, before["conv2.weight"])


def test_augmentation_keeps_images_and_masks_aligned():
    # The "image" is the mask itself, so a consistent warp keeps them equal where valid.
    h, w = 40, 56
    mask = torch.zeros(4, 1, h, w, dtype=torch.bool)
    mask[:, :, 10:30, 15:35] = True
    images = mask.float().repeat(1, 3, 1, 1)
    out_i, out_m, (out_e,), valid = random_affine(
        images, mask, extras=[images[:, :1]], generator=torch.Generator().manual_seed(3),
        aug=FinetuneAugment(scale_range=(0.7, 1.3), max_rotation_deg=30, max_shift=0.15))
    agree = ((out_i[:, 0] > 0.5) == out_m[:, 0]) | ~valid
    assert agree.float().mean() > 0.98  # bilinear vs nearest differ on a few boundary pixels
    assert torch.allclose(out_e[:, 0], out_i[:, 0])
    assert not torch.equal(out_m, mask)  # it did transform
    # the same generator seed gives the same draws
    again = random_affine(images, mask, extras=[images[:, :1]],
                          generator=torch.Generator().manual_seed(3),
                          aug=FinetuneAugment(scale_range=(0.7, 1.3), max_rotation_deg=30, max_shift=0.15))
    assert torch.equal(again[1], out_m)


def test_flip_only_mirrors():
    img = torch.arange(12.0).view(1, 1, 3, 4).repeat(1, 3, 1, 1)
    aug = FinetuneAugment(scale_range=(1.0, 1.0), max_rotation_deg=0.0, max_shift=0.0, hflip=True)
    g = torch.Generator().manual_seed(0)
    outs = [random_affine(img, img[:, :1] > 5, aug=aug, generator=g)[0] for _ in range(8)]
    flipped = [torch.allclose(o, img.flip(-1), atol=1e-5) for o in outs]
    same = [torch.allclose(o, img, atol=1e-5) for o in outs]
    assert all(f or s for f, s in zip(flipped, same)) and any(flipped) and any(same)


def test_bad_arguments():
    model = TinyTestMethod()
    with pytest.raises(ValueError, match="optimizer"):
        finetune_on_reference(_loss(model), model.parameters(), torch.rand(1, 3, 8, 8),
                              torch.zeros(1, 1, 8, 8, dtype=torch.bool), num_iters=1, lr=0.1,
                              optimizer="lbfgs")
    assert finetune_on_reference(_loss(model), model.parameters(), torch.rand(1, 3, 8, 8),
                                 torch.zeros(1, 1, 8, 8, dtype=torch.bool), num_iters=0, lr=0.1) == []
