"""Augmentations private to MaskRNN's online fine-tuning (§4) and a perturbation fallback.

``random_affine_batch`` draws the paper's fine-tuning augmentations (random resize, rotation,
crop (as a translation of the crop window) and left-right flip) as one affine warp per sample,
applied jointly to the frame, the flow magnitudes and the mask.

``perturb_mask`` is used only if the shared ``vosbench.data.mask_perturb.perturb_mask`` is not
importable (it is the same recipe: dilation/erosion, smooth deformation, resize, rotation,
translation).
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor


def _affine_thetas(n: int, size: tuple[int, int], gen: torch.Generator, *, scale=(0.8, 1.2),
                   max_rot_deg: float = 15.0, max_shift: float = 0.1, flip: bool = True) -> Tensor:
    """Tensor[N, 2, 3] ``affine_grid`` matrices (output -> input, normalised coordinates)."""
    h, w = size
    u = torch.rand(n, 5, generator=gen)
    s = scale[0] + (scale[1] - scale[0]) * u[:, 0]
    rot = (u[:, 1] * 2 - 1) * math.radians(max_rot_deg)
    tx, ty = (u[:, 2] * 2 - 1) * max_shift * 2, (u[:, 3] * 2 - 1) * max_shift * 2
    fx = torch.where((u[:, 4] < 0.5) & flip, -1.0, 1.0)
    cos, sin = torch.cos(rot) / s, torch.sin(rot) / s
    # Rotation/scale in pixel units, conjugated into normalised units (x spans W, y spans H).
    a = torch.stack([torch.stack([cos * fx, -sin * h / w, tx], 1),
                     torch.stack([sin * fx * w / h, cos, ty], 1)], 1)
    return a


def random_affine_batch(images: Tensor, masks: Tensor, mags: Tensor | None,
                        gen: torch.Generator) -> tuple[Tensor, Tensor, Tensor | None, Tensor]:
    """Apply one random affine warp per sample to frames, masks and flow magnitudes.

    Args:
        images: Tensor[N, 3, H, W]; masks: Tensor[N, H, W] bool; mags: Tensor[N, 2, H, W] or None.
        gen: CPU generator (reproducible augmentations).
    Returns:
        (images, masks, mags, valid Tensor[N, H, W] bool: pixels that come from inside the frame).
    """
    n, _, h, w = images.shape
    theta = _affine_thetas(n, (h, w), gen).to(images.device, images.dtype)
    grid = F.affine_grid(theta, [n, 1, h, w], align_corners=False)
    img = F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)
    m = F.grid_sample(masks[:, None].float(), grid, mode="nearest", align_corners=False)[:, 0] > 0.5
    ones = torch.ones(n, 1, h, w, device=images.device, dtype=images.dtype)
    valid = F.grid_sample(ones, grid, mode="nearest", align_corners=False)[:, 0] > 0.5
    mg = None
    if mags is not None:
        mg = F.grid_sample(mags, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return img, m, mg, valid


def perturb_mask(mask: Tensor, rng: np.random.Generator) -> Tensor:
    """Simulate an imperfect previous prediction (fallback for the shared helper).

    Args:
        mask: Tensor[H, W] bool.
        rng: numpy generator.
    Returns:
        Tensor[H, W] bool.
    """
    h, w = mask.shape
    m = mask.float()[None, None]
    k = int(rng.integers(0, 3)) * 2 + 1  # dilate or erode with a 1/3/5 px window
    if k > 1:
        m = F.max_pool2d(m, k, 1, k // 2) if rng.random() < 0.5 else -F.max_pool2d(-m, k, 1, k // 2)
    # Smooth random deformation field (a few pixels), plus a global resize/rotate/translate.
    coarse = torch.from_numpy(rng.normal(0, 0.03, size=(1, 2, 4, 4)).astype(np.float32))
    field = F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=False).permute(0, 2, 3, 1)
    s = 1.0 + rng.uniform(-0.1, 0.1)
    r = math.radians(rng.uniform(-10, 10))
    tx, ty = rng.uniform(-0.1, 0.1, size=2)
    theta = torch.tensor([[[math.cos(r) / s, -math.sin(r) / s * h / w, tx],
                           [math.sin(r) / s * w / h, math.cos(r) / s, ty]]], dtype=torch.float32)
    grid = F.affine_grid(theta, [1, 1, h, w], align_corners=False) + field
    out = F.grid_sample(m, grid, mode="bilinear", align_corners=False)[0, 0] > 0.5
    return out if bool(out.any()) else mask.clone()
