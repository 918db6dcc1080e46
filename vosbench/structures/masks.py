"""Conversions between the mask forms used at I/O edges.

* per-object ``bool[K, H, W]`` (canonical inside vosbench),
* index masks ``uint8/int64[H, W]`` (DAVIS palette PNGs; 0 = background, 255 = void),
* COCO RLE dicts ``{"size": [H, W], "counts": ...}`` (YouTube-VIS JSON).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from pycocotools import mask as mask_utils
from torch import Tensor

VOID_LABEL = 255


def index_to_masks(index: Tensor, obj_ids: Tensor | Sequence[int] | None = None) -> tuple[Tensor, Tensor]:
    """Split an index mask into per-object masks.

    Args:
        index: Tensor[H, W] integer labels; 0 is background, 255 is void (never an object).
        obj_ids: ids to extract (rows in this order; absent ids give all-False rows). If None,
            every label present except 0 and 255, ascending.
    Returns:
        (masks Tensor[K, H, W] bool, obj_ids Tensor[K] int64)
    """
    index = torch.as_tensor(index)
    if obj_ids is None:
        ids = torch.unique(index)
        ids = ids[(ids != 0) & (ids != VOID_LABEL)].to(torch.int64)
    else:
        ids = torch.as_tensor(obj_ids, dtype=torch.int64).reshape(-1)
    masks = index.unsqueeze(0).to(torch.int64) == ids.view(-1, 1, 1)
    return masks, ids


def masks_to_index(masks: Tensor, obj_ids: Tensor | Sequence[int]) -> Tensor:
    """Merge per-object masks into one index mask.

    Where masks overlap, the object listed later wins (as painting in order does). Use
    ``probs_to_index`` to fuse soft masks by argmax instead.

    Args:
        masks: Tensor[K, H, W] bool.
        obj_ids: Tensor[K] ids in 1..254.
    Returns:
        Tensor[H, W] uint8.
    """
    ids = torch.as_tensor(obj_ids, dtype=torch.int64).reshape(-1)
    if masks.shape[0] != ids.numel():
        raise ValueError(f"masks_to_index: {masks.shape[0]} masks but {ids.numel()} ids")
    if ids.numel() and (ids.min() < 1 or ids.max() > 254):
        raise ValueError(f"masks_to_index: ids must be in 1..254 for an 8-bit index PNG, got {ids.tolist()}")
    out = torch.zeros(masks.shape[-2:], dtype=torch.uint8)
    for m, i in zip(masks, ids.tolist()):
        out[m.bool()] = i
    return out


def probs_to_index(probs: Tensor, obj_ids: Tensor | Sequence[int], threshold: float = 0.5) -> Tensor:
    """Argmax fusion of per-object probabilities (MaskRNN §3, flow propagation baseline).

    A pixel takes the id of its most probable object if that probability exceeds
    ``threshold``; otherwise it is background.

    Args:
        probs: Tensor[K, H, W] float in 0-1.
        obj_ids: Tensor[K] ids.
    Returns:
        Tensor[H, W] int64 index mask.
    """
    ids = torch.as_tensor(obj_ids, dtype=torch.int64).reshape(-1)
    if probs.shape[0] == 0:
        return torch.zeros(probs.shape[-2:], dtype=torch.int64)
    best, arg = probs.max(dim=0)
    out = ids.to(probs.device)[arg]
    return torch.where(best > threshold, out, torch.zeros_like(out))


def rle_encode(masks: Tensor | np.ndarray) -> list[dict]:
    """Encode ``bool[K, H, W]`` masks as compressed COCO RLE (``counts`` as str)."""
    m = masks.cpu().numpy() if isinstance(masks, Tensor) else np.asarray(masks)
    if m.ndim != 3:
        raise ValueError(f"rle_encode expects [K, H, W], got {m.shape}")
    if m.shape[0] == 0:
        return []
    rles = mask_utils.encode(np.asfortranarray(m.transpose(1, 2, 0).astype(np.uint8)))
    for r in rles:
        r["counts"] = r["counts"].decode("ascii")
    return rles


def rle_decode(rle: dict, size: tuple[int, int] | None = None, where: str = "") -> np.ndarray:
    """Decode one RLE (compressed str/bytes or uncompressed list counts) to ``bool[H, W]``.

    Args:
        rle: ``{"size": [H, W], "counts": ...}``.
        size: expected (H, W); a mismatch raises ``ValueError`` naming ``where``.
        where: a description of the source (file and annotation) for error messages.
    """
    try:
        h, w = (int(v) for v in rle["size"])
        counts = rle["counts"]
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{where}: malformed RLE (need 'size' [H, W] and 'counts'): {e}") from e
    if size is not None and (h, w) != tuple(size):
        raise ValueError(f"{where}: RLE size {[h, w]} disagrees with the video size {list(size)}")
    if isinstance(counts, list):
        if sum(counts) != h * w:
            raise ValueError(f"{where}: uncompressed RLE counts sum to {sum(counts)}, expected {h * w}")
        r = mask_utils.frPyObjects({"size": [h, w], "counts": counts}, h, w)
    elif isinstance(counts, (str, bytes)):
        r = {"size": [h, w], "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
    else:
        raise ValueError(f"{where}: RLE counts must be a list or a string, got {type(counts).__name__}")
    try:
        return mask_utils.decode(r).astype(bool)
    except Exception as e:  # pycocotools raises bare exceptions on garbage
        raise ValueError(f"{where}: cannot decode RLE: {e}") from e


def resize_masks(masks: Tensor, size: tuple[int, int]) -> Tensor:
    """Nearest-neighbour resize of ``bool[K, H, W]`` (or ``[H, W]``) masks to ``size`` (H, W)."""
    if tuple(masks.shape[-2:]) == tuple(size):
        return masks
    squeeze = masks.dim() == 2
    m = masks[None] if squeeze else masks
    if m.shape[0] == 0:
        out = torch.zeros((0, *size), dtype=masks.dtype)
    else:
        out = F.interpolate(m[None].float(), size=size, mode="nearest-exact")[0] > 0.5
        out = out.to(masks.dtype) if masks.dtype != torch.bool else out
    return out[0] if squeeze else out


def masks_to_boxes(masks: Tensor) -> Tensor:
    """Tight ``xyxy`` boxes (pixel edges, so a 1-pixel mask at x gives [x, ., x+1, .]).

    Args:
        masks: Tensor[K, H, W] bool.
    Returns:
        Tensor[K, 4] float32; an empty mask gives a zero box.
    """
    k = masks.shape[0]
    out = torch.zeros((k, 4), dtype=torch.float32)
    for i in range(k):
        ys, xs = torch.nonzero(masks[i], as_tuple=True)
        if ys.numel():
            out[i] = torch.tensor([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=torch.float32)
    return out
