"""Online fine-tuning on the reference frame(s) (OSVOS-style; used by MaskRNN §4 and LIP).

Before segmenting a test video, a method fine-tunes some of its parameters for ``num_iters``
iterations on the annotated reference frame(s), each iteration on randomly augmented copies
(random resize, rotation, crop and horizontal flip, drawn as one affine warp per copy), and
must restore its offline weights before the next video::

    with restore_weights(self):                    # offline weights come back on exit
        finetune_on_reference(loss_fn, params, images, masks, num_iters=200, lr=1e-5)
        yield from self._segment(sample)           # (a generator: restore after the last frame)

``restore_weights`` snapshots every parameter AND buffer (BatchNorm statistics), the
``requires_grad`` flags and the train/eval mode, and copies them back in place, so the weights
after the block are bit-identical to the weights before it.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass(frozen=True)
class FinetuneAugment:
    """Random affine augmentation of the reference frame(s).

    Attributes:
        scale_range: zoom factor range (resize; > 1 zooms in, which with the shift is a crop).
        max_rotation_deg: rotation drawn uniformly in +-this.
        max_shift: crop-window shift per axis, as a fraction of the frame size.
        hflip: flip left-right with probability 0.5.
    """

    scale_range: tuple[float, float] = (0.8, 1.2)
    max_rotation_deg: float = 15.0
    max_shift: float = 0.1
    hflip: bool = True


def random_affine_params(n: int, size: tuple[int, int], aug: FinetuneAugment,
                         generator: torch.Generator | None = None) -> Tensor:
    """Tensor[N, 2, 3] ``affine_grid`` matrices (output -> input, normalised coordinates).

    The rotation is done in pixel units (conjugated by the aspect ratio) so a non-square frame
    is rotated, not sheared.
    """
    h, w = size
    u = torch.rand(n, 5, generator=generator)
    s = aug.scale_range[0] + (aug.scale_range[1] - aug.scale_range[0]) * u[:, 0]
    rot = (u[:, 1] * 2 - 1) * math.radians(aug.max_rotation_deg)
    tx = (u[:, 2] * 2 - 1) * aug.max_shift * 2  # normalised coords span 2
    ty = (u[:, 3] * 2 - 1) * aug.max_shift * 2
    flip = torch.where((u[:, 4] < 0.5) & aug.hflip, -1.0, 1.0)
    cos, sin = torch.cos(rot) / s, torch.sin(rot) / s
    row0 = torch.stack([cos * flip, -sin * h / w, tx], dim=1)
    row1 = torch.stack([sin * flip * w / h, cos, ty], dim=1)
    return torch.stack([row0, row1], dim=1)


def random_affine(images: Tensor, masks: Tensor, *, aug: FinetuneAugment = FinetuneAugment(),
                  extras: Sequence[Tensor] = (), generator: torch.Generator | None = None,
                  ) -> tuple[Tensor, Tensor, list[Tensor], Tensor]:
    """Warp frames, masks and extra maps with one random affine transform per sample.

    Args:
        images: Tensor[N, C, H, W] float (bilinear, border padding).
        masks: Tensor[N, K, H, W] bool (nearest; pixels from outside the frame are False).
        extras: further Tensor[N, C', H, W] float maps warped bilinearly (e.g. optical-flow
            magnitudes; vector fields would also need their components rotated, so pass
            magnitudes, not flows).
        generator: CPU generator for reproducible draws.
    Returns:
        (images, masks, extras, valid Tensor[N, H, W] bool: output pixels that come from inside
        the input frame; use it to mask the loss).
    """
    n, _, h, w = images.shape
    theta = random_affine_params(n, (h, w), aug, generator).to(images.device, torch.float32)
    grid = F.affine_grid(theta, [n, 1, h, w], align_corners=False)
    grid = grid.to(images.dtype)
    out_images = F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)
    out_masks = F.grid_sample(masks.to(images.dtype), grid, mode="nearest", padding_mode="zeros",
                              align_corners=False) > 0.5
    out_extras = [F.grid_sample(e, grid.to(e.dtype), mode="bilinear", padding_mode="border",
                                align_corners=False) for e in extras]
    ones = torch.ones(n, 1, h, w, device=images.device, dtype=images.dtype)
    valid = F.grid_sample(ones, grid, mode="nearest", padding_mode="zeros", align_corners=False)[:, 0] > 0.5
    return out_images, out_masks, out_extras, valid


@contextlib.contextmanager
def restore_weights(module: nn.Module) -> Iterator[nn.Module]:
    """Snapshot ``module``'s parameters, buffers, ``requires_grad`` flags and train mode; put
    them back (in place, bit-exact) when the block exits, also on an exception.

    Memory: one copy of the state dict for the duration of the block.
    """
    with torch.no_grad():
        saved = {k: v.detach().clone() for k, v in module.state_dict(keep_vars=True).items()}
    flags = {n: p.requires_grad for n, p in module.named_parameters()}
    modes = {n: m.training for n, m in module.named_modules()}
    try:
        yield module
    finally:
        with torch.no_grad():
            current = module.state_dict(keep_vars=True)
            for k, v in saved.items():
                current[k].copy_(v)
        for n, p in module.named_parameters():
            p.requires_grad_(flags[n])
            p.grad = None
        for n, m in module.named_modules():
            m.training = modes[n]


def finetune_on_reference(
    loss_fn: Callable[[Tensor, Tensor, Tensor], Tensor],
    params: Iterable[nn.Parameter],
    images: Tensor,
    masks: Tensor,
    *,
    num_iters: int,
    lr: float,
    optimizer: str = "adam",
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    batch_size: int = 1,
    lr_decay: str = "none",
    augment: FinetuneAugment | None = FinetuneAugment(),
    extras: Sequence[Tensor] = (),
    generator: torch.Generator | None = None,
) -> list[float]:
    """Fine-tune ``params`` on augmented copies of the reference frame(s).

    Each iteration draws ``batch_size`` reference frames (uniformly, with replacement), warps
    each with its own random affine transform (``random_affine``), and takes one optimizer step
    on ``loss_fn(images, masks, valid)``. The caller restores the weights afterwards
    (``restore_weights``).

    Args:
        loss_fn: ``(images Tensor[B, C, H, W], masks Tensor[B, K, H, W] bool, valid Tensor[B, H, W]
            bool) -> scalar loss``; ``extras`` (warped alike) are appended as further arguments.
        params: the parameters to update (the others are left untouched; their gradients are
            not computed if they do not require grad).
        images: Tensor[R, C, H, W] reference frames.
        masks: Tensor[R, K, H, W] bool reference masks.
        num_iters: optimizer steps (0: nothing happens).
        lr: learning rate; ``optimizer`` is ``"adam"`` or ``"sgd"`` (with ``momentum``).
        lr_decay: ``"none"`` or ``"linear"`` (to zero at the last iteration).
        augment: augmentation magnitudes; None disables augmentation.
        extras: Tensor[R, C', H, W] maps that go with each reference frame (flow magnitudes...).
        generator: CPU generator for reproducible draws.
    Returns:
        The loss of every iteration.
    """
    params = [p for p in params if p.requires_grad]
    if num_iters <= 0 or not params:
        return []
    if images.shape[0] != masks.shape[0] or images.shape[-2:] != masks.shape[-2:]:
        raise ValueError(f"finetune_on_reference: images {tuple(images.shape)} and masks "
                         f"{tuple(masks.shape)} disagree")
    if optimizer == "adam":
        opt: torch.optim.Optimizer = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    elif optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    else:
        raise ValueError(f"optimizer must be 'adam' or 'sgd', got {optimizer!r}")
    if lr_decay not in ("none", "linear"):
        raise ValueError(f"lr_decay must be 'none' or 'linear', got {lr_decay!r}")
    losses = []
    r = images.shape[0]
    for it in range(num_iters):
        if lr_decay == "linear":
            for g in opt.param_groups:
                g["lr"] = lr * (1.0 - it / num_iters)
        idx = torch.randint(0, r, (batch_size,), generator=generator)
        b_images, b_masks = images[idx.to(images.device)], masks[idx.to(masks.device)]
        b_extras = [e[idx.to(e.device)] for e in extras]
        if augment is not None:
            b_images, b_masks, b_extras, valid = random_affine(
                b_images, b_masks, aug=augment, extras=b_extras, generator=generator)
        else:
            valid = torch.ones(b_images.shape[0], *b_images.shape[-2:], dtype=torch.bool,
                               device=b_images.device)
        loss = loss_fn(b_images, b_masks, valid, *b_extras)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite loss {float(loss)} at fine-tuning iteration {it}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    opt.zero_grad(set_to_none=True)
    return losses
