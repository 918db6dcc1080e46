"""Pure metric functions, numerically identical to the official evaluators.

Conventions are the ones of davis2017-evaluation (J, F, statistics) and of the DAVIS-2016 toolkit
(T); see ``../shared/METRICS.md``. Masks are numpy ``bool`` arrays (torch tensors are accepted and
converted). Every quirk of the official code is copied on purpose and written down next to the
code that copies it, because users compare our numbers with the official ones.

* ``jaccard``: region similarity J, ``|A & B| / |A | B|``, 1 when both are empty.
* ``seg2bmap``: the 1-pixel boundary map of davis2017-evaluation ``_seg2bmap`` (no boundary
  along the image border).
* ``f_measure``: the boundary F measure with a ``disk(ceil(0.008 * diagonal))`` tolerance.
* ``db_statistics``: mean / recall / decay of a per-frame series.
* ``temporal_stability``: T of the DAVIS-2016 toolkit (see ``vosbench.metrics.tstab``).
"""
from __future__ import annotations

import warnings
from functools import lru_cache

import cv2
import numpy as np

from vosbench.metrics.tstab import temporal_stability, temporal_stability_series  # noqa: F401

__all__ = [
    "jaccard",
    "jaccard_matrix",
    "seg2bmap",
    "boundary_radius",
    "disk",
    "f_measure",
    "f_measure_many",
    "db_statistics",
    "temporal_stability",
    "temporal_stability_series",
]


def _np_bool(x) -> np.ndarray:
    if hasattr(x, "detach"):  # torch tensor
        x = x.detach().cpu().numpy()
    x = np.asarray(x)
    return x if x.dtype == bool else x.astype(bool)


# ----------------------------------------------------------------------------------------- J
def jaccard(gt, pred, void=None) -> np.ndarray | float:
    """Region similarity J (davis2017-evaluation ``db_eval_iou``).

    Args:
        gt: bool[..., H, W] ground truth.
        pred: bool[..., H, W] prediction (same shape).
        void: optional bool[H, W] or bool[..., H, W] pixels excluded from both counts (used by the
            unsupervised task only; the semi-supervised task passes None, see METRICS.md).

    Returns:
        float64[...] J per leading index (a Python float for 2-D input). ``|A & B| / |A | B|``;
        1.0 where the union is empty (the official ``np.isclose(union, 0)``).
    """
    gt, pred = _np_bool(gt), _np_bool(pred)
    if gt.shape != pred.shape:
        raise ValueError(f"jaccard: shapes differ, gt {gt.shape} vs pred {pred.shape}")
    if void is not None:
        keep = ~_np_bool(void)
        inter = np.count_nonzero(gt & pred & keep, axis=(-2, -1))
        union = np.count_nonzero((gt | pred) & keep, axis=(-2, -1))
    else:
        inter = np.count_nonzero(gt & pred, axis=(-2, -1))
        union = np.count_nonzero(gt | pred, axis=(-2, -1))
    inter = np.asarray(inter, dtype=np.float64)
    union = np.asarray(union, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        j = np.where(union == 0, 1.0, inter / np.where(union == 0, 1.0, union))
    return float(j) if j.ndim == 0 else j


def jaccard_matrix(gt_index: np.ndarray, pred_index: np.ndarray, num_gt: int, num_pred: int,
                   void=None) -> np.ndarray:
    """J of every (prediction id, GT id) pair of two index maps in one ``bincount`` pass.

    Args:
        gt_index: int[H, W] GT labels, 0 = background, ids ``1..num_gt`` (anything larger is
            ignored, i.e. treated as background).
        pred_index: int[H, W] predicted labels, ids ``1..num_pred`` (larger ignored).
        num_gt, num_pred: the number of GT / predicted objects.
        void: optional bool[H, W] pixels excluded from both counts.

    Returns:
        float64[num_pred, num_gt]: J of prediction ``p + 1`` against GT ``g + 1``, 1.0 where both
        are empty (same convention as ``jaccard``).
    """
    g = np.asarray(gt_index).astype(np.int64, copy=False)
    p = np.asarray(pred_index).astype(np.int64, copy=False)
    g = np.where(g > num_gt, 0, g)
    p = np.where(p > num_pred, 0, p)
    if void is not None:
        keep = ~_np_bool(void)
        g, p = g[keep], p[keep]
    conf = np.bincount((p * (num_gt + 1) + g).ravel(),
                       minlength=(num_pred + 1) * (num_gt + 1)).reshape(num_pred + 1, num_gt + 1)
    inter = conf[1:, 1:].astype(np.float64)
    area_p = conf[1:, :].sum(1).astype(np.float64)
    area_g = conf[:, 1:].sum(0).astype(np.float64)
    union = area_p[:, None] + area_g[None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union == 0, 1.0, inter / np.where(union == 0, 1.0, union))


# ----------------------------------------------------------------------------------------- F
def seg2bmap(seg) -> np.ndarray:
    """Binary boundary map of a mask (davis2017-evaluation ``_seg2bmap``, same quirks).

    ``b = seg^E | seg^S | seg^SE`` with E / S / SE the east / south / south-east neighbours
    (zero past the edge), then the last row is overwritten with ``seg^E`` only, the last column
    with ``seg^S`` only and ``b[-1, -1] = 0``. Consequences: the boundary is offset half a pixel
    towards the origin, and a mask touching the right or bottom image border has no boundary
    along that border (nor along the top / left border, where no pixel differs from a neighbour).

    Args:
        seg: bool[H, W].

    Returns:
        bool[H, W] boundary pixels.
    """
    seg = _np_bool(seg)
    if seg.ndim != 2:
        raise ValueError(f"seg2bmap expects a 2-D mask, got shape {seg.shape}")
    b = np.zeros_like(seg)
    if seg.size == 0:
        return b
    # Interior rows/cols: any of E, S, SE differs.
    core = seg[:-1, :-1]
    b[:-1, :-1] = (core ^ seg[:-1, 1:]) | (core ^ seg[1:, :-1]) | (core ^ seg[1:, 1:])
    # Last row: only the east neighbour (official overwrite); last column: only south.
    b[-1, :-1] = seg[-1, :-1] ^ seg[-1, 1:]
    b[:-1, -1] = seg[:-1, -1] ^ seg[1:, -1]
    b[-1, -1] = False
    return b


def boundary_radius(shape: tuple[int, int], bound_th: float = 0.008) -> int:
    """Dilation radius in pixels: ``bound_th`` if >= 1 else ``ceil(bound_th * sqrt(H^2 + W^2))``.

    8 for 854x480, 18 for 1920x1080 (official ``np.ceil(bound_th * np.linalg.norm(shape))``).
    """
    if bound_th >= 1:
        return int(bound_th)
    return int(np.ceil(bound_th * np.linalg.norm(shape)))


@lru_cache(maxsize=16)
def disk(radius: int) -> np.ndarray:
    """skimage ``disk(radius)`` as uint8: ``x^2 + y^2 <= r^2`` on a (2r+1)^2 grid."""
    r = int(radius)
    y, x = np.mgrid[-r:r + 1, -r:r + 1]
    out = ((x * x + y * y) <= r * r).astype(np.uint8)
    out.setflags(write=False)
    return out


def _bbox(m: np.ndarray):
    rows = np.flatnonzero(m.any(1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(m.any(0))
    return rows[0], rows[-1] + 1, cols[0], cols[-1] + 1


def _f_from_counts(n_fg: int, n_gt: int, fg_match: int, gt_match: int) -> float:
    # Official empty cases: pred boundary empty -> P=1,R=0; GT empty -> P=0,R=1; both -> 1.
    if n_fg == 0 and n_gt > 0:
        precision, recall = 1.0, 0.0
    elif n_fg > 0 and n_gt == 0:
        precision, recall = 0.0, 1.0
    elif n_fg == 0 and n_gt == 0:
        precision, recall = 1.0, 1.0
    else:
        precision = fg_match / float(n_fg)
        recall = gt_match / float(n_gt)
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def f_measure(gt, pred, void=None, bound_th: float = 0.008) -> float:
    """Boundary F measure of one frame (davis2017-evaluation ``f_measure``).

    ``P = |B_pred & dil(B_gt)| / |B_pred|``, ``R = |B_gt & dil(B_pred)| / |B_gt|``,
    ``F = 2PR / (P + R)`` (0 when ``P + R = 0``); empty boundaries: pred empty & GT not -> F = 0,
    GT empty & pred not -> F = 0, both empty -> F = 1. ``dil`` is ``cv2.dilate`` with the disk of
    radius ``boundary_radius((H, W), bound_th)``; pixels outside the image do not count.

    Speed: everything is computed inside the union bounding box of the two boundary maps (the
    dilation value is only read at boundary pixels, and every contribution comes from a boundary
    pixel), which gives exactly the full-image result.

    Args:
        gt: bool[H, W] ground truth.
        pred: bool[H, W] prediction.
        void: optional bool[H, W]; void pixels are removed from both masks before the
            boundaries are taken (official behaviour, unsupervised task only).
        bound_th: tolerance as a fraction of the diagonal (or pixels if >= 1).

    Returns:
        F in [0, 1].
    """
    gt, pred = _np_bool(gt), _np_bool(pred)
    if gt.shape != pred.shape or gt.ndim != 2:
        raise ValueError(f"f_measure: expected two equal 2-D masks, got {gt.shape} and {pred.shape}")
    if void is not None:
        keep = ~_np_bool(void)
        gt, pred = gt & keep, pred & keep
    radius = boundary_radius(gt.shape, bound_th)
    return _f_measure_r(gt, pred, radius)


def _context_box(box, H: int, W: int) -> tuple[int, int, int, int, int, int]:
    """Crop that holds every boundary pixel of masks inside ``box`` plus one row/col of context.

    Boundary pixels of a mask lie in its bbox grown by one row/col towards the origin. To compute
    them on a crop we also need the row/col just past the bbox (the south / east neighbours),
    unless the bbox reaches the image border, where the official last-row/col quirk applies.

    Returns:
        (y0, y1, ye, x0, x1, xe): boundary region ``[y0:y1, x0:x1]``, crop ``[y0:ye, x0:xe]``.
    """
    ymin, ymax, xmin, xmax = box
    y0, x0 = max(0, ymin - 1), max(0, xmin - 1)
    return y0, ymax, min(ymax + 1, H), x0, xmax, min(xmax + 1, W)


def _f_from_crops(g: np.ndarray, p: np.ndarray, ny: int, nx: int, radius: int) -> float:
    """F of two masks given on the same context crop (see ``_context_box``).

    ``seg2bmap`` of the crop equals the full-image boundary map on ``[:ny, :nx]``: the quirk of
    the crop's last row/col either falls on the borrowed context line (dropped) or on the real
    image border (official behaviour).
    """
    bg = seg2bmap(g)[:ny, :nx]
    bp = seg2bmap(p)[:ny, :nx]
    n_gt = int(np.count_nonzero(bg))
    n_fg = int(np.count_nonzero(bp))
    if n_gt == 0 or n_fg == 0:
        return _f_from_counts(n_fg, n_gt, 0, 0)
    se = disk(radius)
    # Only boundary pixels are read and every contribution comes from a boundary pixel, so a
    # crop holding both boundary maps gives the full-image counts. BORDER_CONSTANT with the
    # default morphology border value: pixels outside never win, as on the full image.
    dil_g = cv2.dilate(bg.view(np.uint8), se)
    dil_p = cv2.dilate(bp.view(np.uint8), se)
    fg_match = int(np.count_nonzero(bp & dil_g.view(bool)))
    gt_match = int(np.count_nonzero(bg & dil_p.view(bool)))
    return _f_from_counts(n_fg, n_gt, fg_match, gt_match)


def _union_box(a, b):
    boxes = [x for x in (a, b) if x is not None]
    if not boxes:
        return None
    return (min(x[0] for x in boxes), max(x[1] for x in boxes),
            min(x[2] for x in boxes), max(x[3] for x in boxes))


def _f_measure_r(gt: np.ndarray, pred: np.ndarray, radius: int) -> float:
    H, W = gt.shape
    box = _union_box(_bbox(gt), _bbox(pred))
    if box is None:
        return 1.0
    y0, y1, ye, x0, x1, xe = _context_box(box, H, W)
    return _f_from_crops(gt[y0:ye, x0:xe], pred[y0:ye, x0:xe], y1 - y0, x1 - x0, radius)


def f_measure_many(gt, pred, void=None, bound_th: float = 0.008) -> np.ndarray:
    """``f_measure`` over leading dims: bool[..., H, W] pairs -> float64[...]."""
    gt, pred = _np_bool(gt), _np_bool(pred)
    if gt.shape != pred.shape:
        raise ValueError(f"f_measure_many: shapes differ, {gt.shape} vs {pred.shape}")
    lead = gt.shape[:-2]
    g2 = gt.reshape(-1, *gt.shape[-2:])
    p2 = pred.reshape(-1, *pred.shape[-2:])
    if void is not None:
        v = np.broadcast_to(_np_bool(void), gt.shape).reshape(g2.shape)
        g2, p2 = g2 & ~v, p2 & ~v
    radius = boundary_radius(gt.shape[-2:], bound_th)
    out = np.array([_f_measure_r(g, p, radius) for g, p in zip(g2, p2)], dtype=np.float64)
    return out.reshape(lead)


# ---------------------------------------------------------------------------------- statistics
def decay_bin_ids(n: int, *, fix_uint8_wrap: bool = False) -> np.ndarray:
    """Bin boundaries of the decay statistic for a series of length ``n``.

    Official: ``uint8(round(linspace(1, n, 5) + 1e-10) - 1)``; the ``+1e-10`` makes numpy's
    round-half-to-even a round-half-up. The ``uint8`` cast wraps past 255, which breaks decay for
    ``n > 256`` (official behaviour, kept by default); ``fix_uint8_wrap=True`` uses int64.
    """
    ids = np.round(np.linspace(1, n, 5) + 1e-10) - 1
    if fix_uint8_wrap:
        return ids.astype(np.int64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        # float -> uint8 of values >= 256 wraps modulo 256 (as on the official x86 numpy);
        # negative values (n = 0) too. Go through int64 to make that explicit and portable.
        return (ids.astype(np.int64) % 256).astype(np.uint8)


def db_statistics(values, *, fix_uint8_wrap: bool = False) -> tuple[float, float, float]:
    """Mean, recall and decay of a per-frame series (davis2017-evaluation ``db_statistics``).

    * mean = ``nanmean(X)``;
    * recall = ``nanmean(X > 0.5)``: strict ``>``; NaN compares False, so a NaN frame counts as a
      miss (official behaviour);
    * decay = ``nanmean(X[ids[0]:ids[1]+1]) - nanmean(X[ids[3]:ids[4]+1])`` with
      ``ids = decay_bin_ids(len(X))``: 4 bins whose inclusive ends make neighbours share a frame.
      For ``len(X) > 256`` the official ``uint8`` wrap gives NaN or a wrong value; pass
      ``fix_uint8_wrap=True`` for the corrected statistic.

    Args:
        values: float[N] per-frame values.
        fix_uint8_wrap: use int64 bin ids (corrected; not the official number for N > 256).

    Returns:
        (mean, recall, decay) as floats (NaN where the official code gives NaN).
    """
    x = np.asarray(values, dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(x) if x.size else np.nan
        recall = np.nanmean(x > 0.5) if x.size else np.nan
        ids = decay_bin_ids(len(x), fix_uint8_wrap=fix_uint8_wrap)
        bins = [x[int(ids[i]): int(ids[i + 1]) + 1] for i in range(4)]
        d0 = np.nanmean(bins[0]) if bins[0].size else np.nan
        d3 = np.nanmean(bins[3]) if bins[3].size else np.nan
        decay = d0 - d3
    return float(mean), float(recall), float(decay)
