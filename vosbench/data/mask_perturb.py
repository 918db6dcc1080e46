"""Previous-mask perturbations for training mask-propagation methods (MaskRNN §4).

At test time a propagation method is fed its own, imperfect, previous prediction; at training
time it gets the ground truth of the previous frame, which is too clean. MaskRNN (Hu et al.,
NIPS 2017, §4 "Training") therefore perturbs that mask with random dilation/erosion, deformation,
resize, rotation and translation (the same recipe as MaskTrack, Perazzi et al. CVPR 2017, which
uses affine jitter plus a thin-plate-spline style non-rigid deformation and coarsening).

``perturb_mask`` applies, each with its own probability and in this order:

1. dilation or erosion with an elliptical kernel of radius 1..``max_morph_px`` pixels,
2. elastic deformation: a coarse ``elastic_grid x elastic_grid`` random displacement field
   (std ``elastic_std`` x the object's box size), upsampled bicubically so it is smooth,
3. resize (scale factor in ``scale_range``), rotation (uniform in +-``max_rotation_deg``) and
   translation (up to ``max_translate`` x the box size), all about the object's centre, so the
   perturbation is relative to the object and a small object is not pushed out of the frame.

Magnitudes are relative to the object's bounding box (and the morphology radius is capped at a
eighth of the box's short side), so small and large objects are perturbed alike. All randomness
comes from the generator passed in, so a seeded generator gives a reproducible perturbation.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Union

import cv2
import numpy as np
import torch
from torch import Tensor

Rng = Union[np.random.Generator, torch.Generator, int, None]


@dataclass(frozen=True)
class MaskPerturbation:
    """Parameters of ``perturb_mask`` (defaults follow MaskTrack/MaskRNN-style magnitudes).

    Attributes:
        p_morph: probability of a dilation or an erosion (equally likely).
        max_morph_px: largest structuring-element radius in pixels.
        p_elastic: probability of the elastic deformation.
        elastic_grid: control points per side of the coarse displacement field.
        elastic_std: displacement std as a fraction of the object's box size.
        p_affine: probability of the resize/rotate/translate step.
        scale_range: (min, max) scale factor about the object's centre.
        max_rotation_deg: largest rotation, degrees.
        max_translate: largest shift per axis as a fraction of the box size.
    """

    p_morph: float = 0.8
    max_morph_px: int = 5
    p_elastic: float = 0.7
    elastic_grid: int = 4
    elastic_std: float = 0.04
    p_affine: float = 0.9
    scale_range: tuple[float, float] = (0.9, 1.1)
    max_rotation_deg: float = 10.0
    max_translate: float = 0.1


DEFAULT = MaskPerturbation()


def as_numpy_rng(rng: Rng) -> np.random.Generator:
    """A numpy ``Generator`` from a numpy generator, a torch generator, an int seed or None."""
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, torch.Generator):
        seed = int(torch.randint(0, 2**62, (1,), generator=rng))
        return np.random.default_rng(seed)
    if rng is None or isinstance(rng, (int, np.integer)):
        return np.random.default_rng(rng)
    raise TypeError(f"rng must be a numpy/torch Generator, an int seed or None, got {type(rng).__name__}")


def _dilate_erode(m: np.ndarray, rng: np.random.Generator, p: MaskPerturbation, box_min: int) -> np.ndarray:
    radius = int(rng.integers(1, p.max_morph_px + 1))
    radius = max(1, min(radius, box_min // 8))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    op = cv2.dilate if rng.random() < 0.5 else cv2.erode
    return op(m, kernel)


def _elastic(m: np.ndarray, rng: np.random.Generator, p: MaskPerturbation, box: float) -> np.ndarray:
    h, w = m.shape
    g = max(2, p.elastic_grid)
    coarse = rng.normal(0.0, p.elastic_std * box, size=(2, g, g)).astype(np.float32)
    dx = cv2.resize(coarse[0], (w, h), interpolation=cv2.INTER_CUBIC)
    dy = cv2.resize(coarse[1], (w, h), interpolation=cv2.INTER_CUBIC)
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    out = cv2.remap(m.astype(np.float32), xs + dx, ys + dy, interpolation=cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return (out > 0.5).astype(np.uint8)


def _affine(m: np.ndarray, rng: np.random.Generator, p: MaskPerturbation, cx: float, cy: float,
            bw: float, bh: float) -> np.ndarray:
    h, w = m.shape
    scale = rng.uniform(*p.scale_range)
    angle = rng.uniform(-p.max_rotation_deg, p.max_rotation_deg)
    tx = rng.uniform(-p.max_translate, p.max_translate) * bw
    ty = rng.uniform(-p.max_translate, p.max_translate) * bh
    mat = cv2.getRotationMatrix2D((cx, cy), angle, scale)  # about the object's centre
    mat[:, 2] += (tx, ty)
    out = cv2.warpAffine(m.astype(np.float32), mat, (w, h), flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return (out > 0.5).astype(np.uint8)


def perturb_mask(mask: Tensor | np.ndarray, rng: Rng = None,
                 params: MaskPerturbation = DEFAULT) -> Tensor | np.ndarray:
    """Randomly corrupt one object mask the way a propagated prediction is corrupted.

    Args:
        mask: bool[H, W] (Tensor or ndarray).
        rng: ``np.random.Generator`` (preferred), ``torch.Generator`` or int seed.
        params: magnitudes and probabilities (see ``MaskPerturbation``).
    Returns:
        bool[H, W] of the same type (and device for tensors) as ``mask``. An empty mask is
        returned unchanged; if the perturbation erases the object entirely (a heavy erosion of a
        thin object), the mask before the step that erased it is kept, so an object present in
        the ground truth never disappears from the perturbed mask.
    """
    is_tensor = isinstance(mask, Tensor)
    device = mask.device if is_tensor else None
    m = (mask.detach().cpu().numpy() if is_tensor else np.asarray(mask)).astype(bool)
    if m.ndim != 2:
        raise ValueError(f"perturb_mask expects a [H, W] mask, got shape {m.shape}")
    g = as_numpy_rng(rng)
    out = m.astype(np.uint8)
    if out.any():
        ys, xs = np.nonzero(out)
        bw, bh = float(xs.max() - xs.min() + 1), float(ys.max() - ys.min() + 1)
        cx, cy = float(xs.mean()), float(ys.mean())
        do_morph, do_elastic, do_affine = g.random(3) < (params.p_morph, params.p_elastic, params.p_affine)
        steps = []
        if do_morph:
            steps.append(lambda a: _dilate_erode(a, g, params, int(min(bw, bh))))
        if do_elastic:
            steps.append(lambda a: _elastic(a, g, params, float(np.sqrt(bw * bh))))
        if do_affine:
            steps.append(lambda a: _affine(a, g, params, cx, cy, bw, bh))
        for step in steps:
            nxt = step(out)
            if nxt.any():
                out = nxt
    res = out.astype(bool)
    if is_tensor:
        return torch.from_numpy(res).to(device)
    return res
