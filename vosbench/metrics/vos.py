"""Video object segmentation evaluators: DAVIS-2017 (semi-supervised / unsupervised), DAVIS-2016,
SegTrack v2.

Two layers:

* sequence functions working on index maps (``uint8[H, W]``, 0 = background) exactly as the
  official toolkits read their PNGs: ``eval_semisupervised_sequence``,
  ``eval_unsupervised_sequence``, ``eval_davis2016_sequence``. ``tools/eval.py`` feeds them
  straight from the result folders.
* streaming ``Evaluator`` classes (``process(sample, prediction)``) that turn the per-object bool
  masks of ``VideoSample`` / ``VideoPrediction`` into the same index maps (a prediction whose
  masks overlap is painted in ``obj_ids`` order, later objects on top, as ``masks_to_index`` and
  the PNG writers do) and call the sequence functions. Memory is bounded by one sequence's
  scalar results plus two frames.

Global numbers follow the official aggregation: DAVIS-2017 averages over **objects**
(``J-Mean`` = mean of per-object J means), DAVIS-2016 over **sequences** (``nanmean``).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

from vosbench.metrics.base import Evaluator
from vosbench.metrics.functional import (
    _bbox,
    _context_box,
    _f_from_counts,
    _f_from_crops,
    _union_box,
    boundary_radius,
    db_statistics,
    disk,
    jaccard_matrix,
    seg2bmap,
)
from vosbench.metrics.tstab import contour_descriptor, t_from_descriptors
from vosbench.registry import METRICS

T_MAGIC = 5.0  # DAVIS-2016 ``magic_number``: every T value is multiplied by 5.


class EvaluationError(ValueError):
    """Bad predictions for the evaluated ground truth (message names the file / video)."""


# ------------------------------------------------------------------------------- sequence level
@dataclass
class SequenceResult:
    """Per-object, per-frame results of one sequence.

    Attributes:
        name: sequence name.
        obj_ids: int[K] object ids (row order of the arrays).
        frames: names of the evaluated frames (columns of ``J`` / ``F``).
        J, F: float64[K, n] per-frame values.
        T: float64[K, n - 1] per consecutive pair (already x5), or None when not computed.
        row_names: the official ``Sequence`` column value of each row (``<seq>_<id>``).
    """

    name: str
    obj_ids: list[int]
    frames: list[str]
    J: np.ndarray
    F: np.ndarray
    T: np.ndarray | None = None
    row_names: list[str] = field(default_factory=list)
    missing_frames: int = 0
    extra_label_frames: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.row_names:
            self.row_names = [f"{self.name}_{i}" for i in self.obj_ids]

    def statistics(self, fix_uint8_wrap: bool = False) -> list[dict]:
        """One row per object: J/F mean, recall, decay (and T mean)."""
        rows = []
        for k, row in enumerate(self.row_names):
            jm, jr, jd = db_statistics(self.J[k], fix_uint8_wrap=fix_uint8_wrap)
            fm, fr, fd = db_statistics(self.F[k], fix_uint8_wrap=fix_uint8_wrap)
            r = {"Sequence": row, "J-Mean": jm, "J-Recall": jr, "J-Decay": jd,
                 "F-Mean": fm, "F-Recall": fr, "F-Decay": fd}
            if self.T is not None:
                r["T-Mean"] = _nanmean(self.T[k])
            rows.append(r)
        return rows

    def to_json(self) -> dict:
        """Plain-JSON form (NaN as None) for results.json and the resume cache."""
        def ls(a):
            return [[None if not np.isfinite(v) else float(v) for v in row] for row in a]
        return {"name": self.name, "obj_ids": [int(i) for i in self.obj_ids], "frames": self.frames,
                "J": ls(self.J), "F": ls(self.F), "T": None if self.T is None else ls(self.T),
                "row_names": self.row_names, "missing_frames": self.missing_frames,
                "extra_label_frames": list(self.extra_label_frames)}

    @classmethod
    def from_json(cls, d: dict) -> "SequenceResult":
        def arr(x, n):
            a = np.array([[np.nan if v is None else v for v in row] for row in x], dtype=np.float64)
            return a.reshape(len(x), n) if a.size == 0 else a
        n = len(d["frames"])
        return cls(d["name"], list(d["obj_ids"]), list(d["frames"]), arr(d["J"], n), arr(d["F"], n),
                   None if d.get("T") is None else arr(d["T"], max(n - 1, 0)),
                   list(d["row_names"]), int(d.get("missing_frames", 0)),
                   list(d.get("extra_label_frames", [])))


def _nanmean(x) -> float:
    x = np.asarray(x, dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(np.nanmean(x)) if x.size else float("nan")


def _frame_jf(gt: np.ndarray, pred: np.ndarray, ids: Sequence[int], radius: int
              ) -> tuple[np.ndarray, np.ndarray]:
    """J and F of objects ``ids`` between two index maps (uint8[H, W]) -> (float[K], float[K]).

    Each object is handled inside the union of its two bboxes (plus one row/col of context for
    the boundaries), so the cost follows the object size, not the frame size.
    """
    K = len(ids)
    J = np.ones(K)
    F = np.ones(K)
    if K == 0:
        return J, F
    H, W = gt.shape
    for k, i in enumerate(ids):
        box = _union_box(_bbox(gt == i), _bbox(pred == i))
        if box is None:
            continue  # both empty: J = 1 (isclose(union, 0)) and F = 1
        y0, y1, ye, x0, x1, xe = _context_box(box, H, W)
        g = gt[y0:ye, x0:xe] == i
        p = pred[y0:ye, x0:xe] == i
        union = np.count_nonzero(g | p)
        J[k] = np.count_nonzero(g & p) / union
        F[k] = _f_from_crops(g, p, y1 - y0, x1 - x0, radius)
    return J, F


class _SemiAccumulator:
    """Accumulates per-frame J/F (and the masks T needs) of one semi-supervised sequence."""

    def __init__(self, name: str, num_objects: int, *, with_t: bool, bound_th: float,
                 obj_ids: Sequence[int] | None = None) -> None:
        self.name = name
        self.ids = list(obj_ids) if obj_ids is not None else list(range(1, num_objects + 1))
        self.with_t = with_t
        self.bound_th = bound_th
        self.frames: list[str] = []
        self.J: list[np.ndarray] = []
        self.F: list[np.ndarray] = []
        self.T: list[np.ndarray] = []
        self._prev_desc: list | None = None
        self.extra_label_frames: list[str] = []
        self.radius: int | None = None

    def add(self, frame_name: str, gt: np.ndarray, pred: np.ndarray) -> None:
        if self.radius is None:
            self.radius = boundary_radius(gt.shape, self.bound_th)
        j, f = _frame_jf(gt, pred, self.ids, self.radius)
        self.frames.append(frame_name)
        self.J.append(j)
        self.F.append(f)
        if self.with_t:
            desc = [contour_descriptor(pred == i) for i in self.ids]
            if self._prev_desc is not None:
                self.T.append(np.array([t_from_descriptors(a, b) * T_MAGIC
                                        for a, b in zip(self._prev_desc, desc)]))
            self._prev_desc = desc

    def result(self, *, drop_last: bool) -> SequenceResult:
        K = len(self.ids)
        frames, J, F, T = self.frames, self.J, self.F, self.T
        if drop_last and frames:
            frames, J, F = frames[:-1], J[:-1], F[:-1]
            T = T[:-1] if T else T
        n = len(frames)
        Ja = np.stack(J, 1) if n else np.zeros((K, 0))
        Fa = np.stack(F, 1) if n else np.zeros((K, 0))
        Ta = None
        if self.with_t:
            Ta = np.stack(T, 1) if T else np.zeros((K, max(n - 1, 0)))
        return SequenceResult(self.name, list(self.ids), list(frames), Ja, Fa, Ta)


def eval_semisupervised_sequence(
    name: str,
    frames: Iterable[tuple[str, np.ndarray, Callable[[], np.ndarray] | np.ndarray]],
    *,
    with_t: bool = False,
    bound_th: float = 0.008,
    drop_first_last: bool = True,
    obj_ids: Sequence[int] | None = None,
    check_labels: bool = True,
    where: str = "",
) -> SequenceResult:
    """DAVIS-2017 semi-supervised evaluation of one sequence (davis2017-evaluation semantics).

    * objects: ``1..max(first GT frame)`` (255 = void already mapped to 0 by the caller); an id
      only present later and larger is ignored, an id below the max absent from frame 0 still
      counts (all-empty object). ``obj_ids`` overrides this (SegTrack v2).
    * frames: the first and last GT frames are dropped (``drop_first_last``); the prediction of a
      dropped frame is never read.
    * void is NOT excluded (semi-supervised ``void_pixels=None``).
    * a predicted label above the object count in an evaluated frame is an error (the official
      script prints a message and exits); ``check_labels=False`` ignores such labels instead.

    Args:
        name: sequence name.
        frames: iterable over the GT frames in order, each ``(frame_name, gt uint8[H, W],
            pred)`` where ``pred`` is the predicted index map uint8[H, W] or a zero-argument
            callable returning it (so dropped frames are not read).
        with_t: also compute T per object (our extension; official T is DAVIS-2016 only).
        where: the results location, for error messages.

    Returns:
        ``SequenceResult`` with J, F of shape [K, n_frames - 2].
    """
    acc: _SemiAccumulator | None = None
    pending = None  # the last frame seen is kept back: it is dropped if nothing follows
    for t, (fname, gt, pred) in enumerate(frames):
        gt = np.asarray(gt)
        if acc is None:
            if obj_ids is None:
                num = int(np.max(np.where(gt == 255, 0, gt))) if gt.size else 0
                acc = _SemiAccumulator(name, num, with_t=with_t, bound_th=bound_th)
            else:
                acc = _SemiAccumulator(name, 0, with_t=with_t, bound_th=bound_th, obj_ids=obj_ids)
            if drop_first_last:
                continue
        if pending is not None:
            _semi_add(acc, *pending, check_labels=check_labels, where=where)
        pending = (fname, gt, pred)
    if acc is None:
        raise EvaluationError(f"{where or name}: sequence {name!r} has no ground-truth frame")
    if pending is not None and not drop_first_last:
        _semi_add(acc, *pending, check_labels=check_labels, where=where)
    res = acc.result(drop_last=False)
    res.extra_label_frames = acc.extra_label_frames
    return res


def _semi_add(acc: _SemiAccumulator, fname: str, gt: np.ndarray, pred, *, check_labels: bool,
              where: str) -> None:
    p = pred() if callable(pred) else pred
    p = np.asarray(p)
    if p.shape != gt.shape:
        raise EvaluationError(f"{where or acc.name}: frame {fname}: prediction size {p.shape} "
                              f"differs from the ground truth {gt.shape}")
    # void (255) is never an object id (ids <= 254), so it is simply not matched: background
    if p.size:
        top = int(p.max())
        allowed = max(acc.ids) if acc.ids else 0
        if top > allowed and not check_labels:
            acc.extra_label_frames.append(fname)  # reported by the caller, then ignored
        elif top > allowed:
            raise EvaluationError(
                f"{where or acc.name}: frame {fname}: predicted label {top} is above the number of "
                f"objects ({allowed}) of sequence {acc.name!r} (the official evaluator exits here)")
    acc.add(fname, gt, p)


def eval_unsupervised_sequence(
    name: str,
    gts: Sequence[np.ndarray],
    preds: Sequence[np.ndarray],
    frame_names: Sequence[str],
    *,
    bound_th: float = 0.008,
    max_proposals: int = 20,
    where: str = "",
) -> SequenceResult:
    """DAVIS-2017 unsupervised evaluation of one sequence (``_evaluate_unsupervised``).

    Every frame is evaluated (nothing dropped); void (255) pixels are excluded from J and removed
    before the boundaries of F. GT objects: ``1..max(first GT frame)``; predicted objects:
    ``1..max(all predictions)`` (more than ``max_proposals`` is an error), zero-padded to the GT
    count. J and F are computed for every (prediction, GT) pair; the Hungarian assignment
    maximises ``(mean_t J + mean_t F) / 2``. As in the official code the returned rows follow the
    assignment's row order (prediction index), and row ``ii`` is named ``<seq>_<ii + 1>``.

    Args:
        gts, preds: uint8[H, W] index maps, one per frame (all of the sequence).
        frame_names: names of the frames.

    Returns:
        ``SequenceResult`` with one row per GT object (the predictions are zero-padded to at
        least the GT count, so every GT object is assigned).
    """
    if not gts:
        raise EvaluationError(f"{where or name}: sequence {name!r} has no ground-truth frame")
    g0 = np.asarray(gts[0])
    num_gt = int(np.max(np.where(g0 == 255, 0, g0)))
    num_pred = max((int(np.max(p)) if np.asarray(p).size else 0) for p in preds) if preds else 0
    if num_pred > max_proposals:
        raise EvaluationError(f"{where or name}: a predicted label ({num_pred}) is above the maximum "
                              f"number of proposals ({max_proposals})")
    R = max(num_pred, num_gt)
    T = len(gts)
    radius = boundary_radius(g0.shape, bound_th)
    J = np.zeros((R, num_gt, T))
    F = np.zeros((R, num_gt, T))
    se = disk(radius)
    import cv2
    for t, (g, p) in enumerate(zip(gts, preds)):
        g, p = np.asarray(g), np.asarray(p)
        if p.shape != g.shape:
            raise EvaluationError(f"{where or name}: frame {frame_names[t]}: prediction size "
                                  f"{p.shape} differs from the ground truth {g.shape}")
        void = g == 255
        J[:, :, t] = jaccard_matrix(np.where(void, 0, g), p, num_gt, R, void=void)
        keep = ~void
        gb = [seg2bmap((g == i) & keep) for i in range(1, num_gt + 1)]
        pb = [seg2bmap((p == i) & keep) for i in range(1, R + 1)]
        gd = [cv2.dilate(b.view(np.uint8), se).view(bool) for b in gb]
        pd = [cv2.dilate(b.view(np.uint8), se).view(bool) for b in pb]
        ng = [int(np.count_nonzero(b)) for b in gb]
        npr = [int(np.count_nonzero(b)) for b in pb]
        for jj in range(R):
            for ii in range(num_gt):
                if ng[ii] and npr[jj]:
                    fm = int(np.count_nonzero(pb[jj] & gd[ii]))
                    gm = int(np.count_nonzero(gb[ii] & pd[jj]))
                else:
                    fm = gm = 0
                F[jj, ii, t] = _f_from_counts(npr[jj], ng[ii], fm, gm)
    cost = (np.mean(J, axis=2) + np.mean(F, axis=2)) / 2
    rows, cols = linear_sum_assignment(-cost)
    Jm, Fm = J[rows, cols, :], F[rows, cols, :]
    ids = list(range(1, len(rows) + 1))
    return SequenceResult(name, ids, list(frame_names), Jm, Fm, None,
                          [f"{name}_{i}" for i in ids])


def eval_davis2016_sequence(
    name: str,
    frames: Iterable[tuple[str, np.ndarray, Callable[[], np.ndarray] | np.ndarray]],
    *,
    with_t: bool = True,
    bound_th: float = 0.008,
    where: str = "",
) -> SequenceResult:
    """DAVIS-2016 evaluation of one sequence (fperazzi/davis semantics).

    Foreground is every non-zero label of GT and prediction (255 included: the toolkit reads
    PNGs as grey), so a multi-object result is evaluated as the union of its objects. J and F
    on frames 1..N-2; T on the **predictions only**, for the consecutive pairs of frames
    1..N-2 (N-3 values, x5). The single row is named ``<seq>`` (one foreground per sequence).

    Args:
        frames: ``(frame_name, gt uint8[H, W], pred uint8[H, W] or callable)`` per GT frame.
    """
    items = list(frames)
    if not items:
        raise EvaluationError(f"{where or name}: sequence {name!r} has no ground-truth frame")
    inner = items[1:-1]
    radius = boundary_radius(np.asarray(items[0][1]).shape, bound_th)
    J, F, T, names = [], [], [], []
    prev = None
    for fname, gt, pred in inner:
        g = np.asarray(gt) != 0
        p = np.asarray(pred() if callable(pred) else pred)
        if p.shape != g.shape:
            raise EvaluationError(f"{where or name}: frame {fname}: prediction size {p.shape} "
                                  f"differs from the ground truth {g.shape}")
        p = p != 0
        j, f = _frame_jf(g.view(np.uint8), p.view(np.uint8), [1], radius)
        J.append(j[0])
        F.append(f[0])
        names.append(fname)
        if with_t:
            desc = contour_descriptor(p)
            if names[:-1]:
                T.append(t_from_descriptors(prev, desc) * T_MAGIC)
            prev = desc
    n = len(names)
    Ta = np.asarray(T, dtype=np.float64).reshape(1, max(n - 1, 0)) if with_t else None
    return SequenceResult(name, [1], names, np.asarray(J).reshape(1, n), np.asarray(F).reshape(1, n),
                          Ta, [name])


# ------------------------------------------------------------------------------ aggregation
def summarize_objects(results: Sequence[SequenceResult], *, fix_uint8_wrap: bool = False
                      ) -> tuple[dict[str, float], list[dict]]:
    """DAVIS-2017 global numbers: plain means over objects of the per-object statistics."""
    rows = [r for s in results for r in s.statistics(fix_uint8_wrap)]
    return _global_from_rows(rows), rows


def summarize_sequences(results: Sequence[SequenceResult], *, fix_uint8_wrap: bool = False
                        ) -> tuple[dict[str, float], list[dict]]:
    """DAVIS-2016 global numbers: ``nanmean`` over sequences (db_eval_view "Average")."""
    rows = [r for s in results for r in s.statistics(fix_uint8_wrap)]
    return _global_from_rows(rows, nan=True), rows


def _global_from_rows(rows: list[dict], nan: bool = False) -> dict[str, float]:
    def agg(key):
        vals = np.array([r[key] for r in rows if key in r], dtype=np.float64)
        if vals.size == 0:
            return float("nan")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return float(np.nanmean(vals) if nan else np.mean(vals))

    out = {
        "J_mean": agg("J-Mean"), "J_recall": agg("J-Recall"), "J_decay": agg("J-Decay"),
        "F_mean": agg("F-Mean"), "F_recall": agg("F-Recall"), "F_decay": agg("F-Decay"),
    }
    out["J&F"] = (out["J_mean"] + out["F_mean"]) / 2
    if any("T-Mean" in r for r in rows):
        vals = np.array([r["T-Mean"] for r in rows if "T-Mean" in r], dtype=np.float64)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            # T is NaN for objects without any contour pair: skipped (official nanmean).
            out["T_mean"] = float(np.nanmean(vals)) if vals.size else float("nan")
    return out


# ------------------------------------------------------------------------ sample -> index maps
def _to_numpy(x) -> np.ndarray:
    return x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)


def gt_index_map(frame, *, void_value: int = 255) -> np.ndarray:
    """uint8[H, W] index map of a GT ``Frame`` (ids as labels, void as 255)."""
    H, W = frame.size if frame.masks is None else tuple(frame.masks.shape[-2:])
    idx = np.zeros((H, W), np.uint8)
    if frame.void is not None:
        idx[_to_numpy(frame.void).astype(bool)] = void_value
    if frame.masks is not None:
        for m, i in zip(_to_numpy(frame.masks), _to_numpy(frame.obj_ids).tolist()):
            if not 0 < int(i) < 255:
                raise EvaluationError(f"GT frame {frame.name or frame.index}: object id {i} does "
                                      "not fit an 8-bit index map")
            idx[m.astype(bool)] = int(i)
    return idx


def pred_index_map(masks, labels: Sequence[int], size: tuple[int, int]) -> np.ndarray:
    """uint8[H, W] index map of predicted bool[N, H, W] masks painted in order (later on top)."""
    idx = np.zeros(size, np.uint8)
    m = _to_numpy(masks)
    for k, lab in enumerate(labels):
        idx[m[k].astype(bool)] = lab
    return idx


class _VOSEvaluatorBase(Evaluator):
    def __init__(self, *, with_t: bool = False, bound_th: float = 0.008,
                 fix_uint8_wrap: bool = False) -> None:
        self.with_t = with_t
        self.bound_th = bound_th
        self.fix_uint8_wrap = fix_uint8_wrap
        self._results: list[SequenceResult] = []

    def reset(self) -> None:
        self._results = []

    def add_result(self, result: SequenceResult) -> None:
        """Add an already computed sequence (``tools/eval.py`` workers, resume cache)."""
        self._results.append(result)

    @property
    def results(self) -> list[SequenceResult]:
        return list(self._results)

    def per_sequence(self) -> list[dict]:
        """Per-object rows (``Sequence`` = ``<seq>_<id>``, ``J-Mean``, ``F-Mean``, ...)."""
        return [r for s in self._results for r in s.statistics(self.fix_uint8_wrap)]

    def per_frame(self) -> dict[str, dict]:
        """``row name -> {"frames", "J", "F", ("T")}`` per-frame series (for J-over-time plots)."""
        out = {}
        for s in self._results:
            for k, row in enumerate(s.row_names):
                d = {"frames": s.frames, "J": s.J[k].tolist(), "F": s.F[k].tolist()}
                if s.T is not None:
                    d["T"] = s.T[k].tolist()
                out[row] = d
        return out

    def evaluate(self) -> dict[str, float]:
        return summarize_objects(self._results, fix_uint8_wrap=self.fix_uint8_wrap)[0]


def _stream(sample, prediction) -> Iterator[tuple]:
    """Pairs (gt Frame, FramePrediction) for the frames that have ground truth."""
    if prediction.video_id != sample.video_id:
        raise EvaluationError(f"prediction for {prediction.video_id!r} given with sample "
                              f"{sample.video_id!r}")
    for frame, fp in zip(sample.frames, prediction.iter_frames()):
        if frame.masks is not None:
            yield frame, fp


@METRICS.register("davis2017")
class DAVIS2017Evaluator(_VOSEvaluatorBase):
    """DAVIS-2017 semi-supervised evaluation (davis2017-evaluation numbers).

    Object count = max id of the first GT frame; first and last GT frames dropped; void not
    excluded; global = mean over objects. ``with_t`` adds T per object (our extension: the
    DAVIS-2016 T applied to each object's predicted mask). A predicted object whose id is above
    the object count and that is non-empty in an evaluated frame raises ``EvaluationError``
    (the official script exits).

    Args:
        with_t: compute T per object.
        bound_th: F tolerance (fraction of the diagonal).
        fix_uint8_wrap: corrected decay for sequences longer than 258 frames (not official).
        extra_labels: what to do with a predicted object whose id is above the object count
            (an object that enters after frame 0, which the official protocol does not
            evaluate): ``"warn"`` (default) ignores it and warns with the frames concerned,
            ``"error"`` raises ``EvaluationError`` as the official script exits.
    """

    def __init__(self, *, with_t: bool = False, bound_th: float = 0.008,
                 fix_uint8_wrap: bool = False, extra_labels: str = "warn") -> None:
        super().__init__(with_t=with_t, bound_th=bound_th, fix_uint8_wrap=fix_uint8_wrap)
        if extra_labels not in ("warn", "error"):
            raise ValueError(f"extra_labels must be 'warn' or 'error', got {extra_labels!r}")
        self.extra_labels = extra_labels

    def process(self, sample, prediction) -> None:
        pred_ids = _to_numpy(prediction.obj_ids).tolist()
        for i in pred_ids:
            if not 0 < int(i) < 255:
                raise EvaluationError(f"{sample.video_id}: predicted object id {i} does not fit an "
                                      "8-bit index map (DAVIS ids are 1..254)")
        size = tuple(prediction.orig_size)

        def frames():
            for frame, fp in _stream(sample, prediction):
                yield (frame.name or str(frame.index), gt_index_map(frame),
                       pred_index_map(fp.masks, pred_ids, size))

        res = eval_semisupervised_sequence(
            sample.video_id, frames(), with_t=self.with_t, bound_th=self.bound_th,
            check_labels=self.extra_labels == "error", where=f"video {sample.video_id!r}")
        if res.extra_label_frames:
            warnings.warn(f"video {sample.video_id!r}: predicted objects above the first-frame "
                          f"object count in {len(res.extra_label_frames)} evaluated frames are "
                          "ignored (DAVIS-2017 protocol; the official script would exit)")
        self._results.append(res)


@METRICS.register("segtrackv2")
class SegTrackV2Evaluator(_VOSEvaluatorBase):
    """SegTrack v2: per-object J and F (no official toolkit; DAVIS-2017 conventions).

    Differences to ``davis2017``, because SegTrack v2 has no official evaluator and objects
    may first appear after frame 0: the objects are every reference id of the sample
    (``sample.obj_ids``), only the first GT frame (the reference) is dropped, the last is kept.
    Global numbers are means over objects.
    """

    def process(self, sample, prediction) -> None:
        pred_ids = _to_numpy(prediction.obj_ids).tolist()
        obj_ids = _to_numpy(sample.obj_ids).tolist()
        size = tuple(prediction.orig_size)
        remap = {int(i): k + 1 for k, i in enumerate(obj_ids)}

        def frames():
            for frame, fp in _stream(sample, prediction):
                g = np.zeros(size, np.uint8)
                for m, i in zip(_to_numpy(frame.masks), _to_numpy(frame.obj_ids).tolist()):
                    if int(i) in remap:
                        g[m.astype(bool)] = remap[int(i)]
                # predicted rows -> the same compact labels (unknown ids get labels past K)
                lab = [remap.get(int(i), len(obj_ids) + 1 + k) for k, i in enumerate(pred_ids)]
                yield (frame.name or str(frame.index), g, pred_index_map(fp.masks, lab, size))

        res = eval_semisupervised_sequence(
            sample.video_id, _drop_first(frames()), with_t=self.with_t, bound_th=self.bound_th,
            drop_first_last=False, obj_ids=list(range(1, len(obj_ids) + 1)), check_labels=False,
            where=f"video {sample.video_id!r}")
        res.obj_ids = obj_ids
        res.row_names = [f"{sample.video_id}_{i}" for i in obj_ids]
        self._results.append(res)


def _drop_first(it):
    it = iter(it)
    next(it, None)
    yield from it


@METRICS.register("davis2016")
class DAVIS2016Evaluator(_VOSEvaluatorBase):
    """DAVIS-2016 evaluation (fperazzi/davis numbers): union foreground, with T.

    GT and prediction are reduced to one foreground (every object, and GT void, count), J/F on
    frames 1..N-2, T on the predictions of those frames; global numbers are ``nanmean`` over
    sequences. ``with_t`` defaults to True here (T is the point of this toolkit).

    T protocol: when the dataset has a ``db_info.yml`` (``sample.meta["db_info"]``, read by the
    DAVIS loaders), T is computed only for sequences flagged ``eval_t: True``, as the official
    ``db_eval_sequence`` does; every other sequence (``eval_t: False`` or not listed) gets an
    all-NaN T, which the ``nanmean`` skips. ``t_sequences`` lists the sequences that have T.
    ``t_all_sequences=True`` computes T everywhere (what the oracle does: it marks every
    sequence ``eval_t: True``).
    """

    def __init__(self, *, with_t: bool = True, bound_th: float = 0.008,
                 fix_uint8_wrap: bool = False, t_all_sequences: bool = False) -> None:
        super().__init__(with_t=with_t, bound_th=bound_th, fix_uint8_wrap=fix_uint8_wrap)
        self.t_all_sequences = t_all_sequences
        self.t_sequences: list[str] = []

    def reset(self) -> None:
        super().reset()
        self.t_sequences = []

    def process(self, sample, prediction) -> None:
        size = tuple(prediction.orig_size)
        info = (sample.meta or {}).get("db_info")
        with_t = self.with_t and (self.t_all_sequences or info is None or bool(info.get("eval_t")))

        def frames():
            for frame, fp in _stream(sample, prediction):
                g = gt_index_map(frame) != 0
                p = _to_numpy(fp.masks).any(0) if fp.masks.shape[0] else np.zeros(size, bool)
                yield (frame.name or str(frame.index), g.view(np.uint8), p.view(np.uint8))

        res = eval_davis2016_sequence(sample.video_id, frames(), with_t=with_t,
                                      bound_th=self.bound_th, where=f"video {sample.video_id!r}")
        if self.with_t and not with_t:  # official: T = NaN for sequences without eval_t
            res.T = np.full((1, max(len(res.frames) - 1, 0)), np.nan)
        elif with_t:
            self.t_sequences.append(sample.video_id)
        self._results.append(res)

    def evaluate(self) -> dict[str, float]:
        return summarize_sequences(self._results, fix_uint8_wrap=self.fix_uint8_wrap)[0]


@METRICS.register("davis2017_unsupervised")
class DAVIS2017UnsupervisedEvaluator(_VOSEvaluatorBase):
    """DAVIS-2017 unsupervised evaluation: Hungarian matching of predicted to GT objects.

    All frames evaluated, void excluded, up to ``max_proposals`` predicted objects (labelled
    1..N in ``prediction.obj_ids`` order), global = mean over GT objects. Holds the index maps of
    one sequence (the matching needs whole-sequence means).
    """

    def __init__(self, *, bound_th: float = 0.008, fix_uint8_wrap: bool = False,
                 max_proposals: int = 20) -> None:
        super().__init__(with_t=False, bound_th=bound_th, fix_uint8_wrap=fix_uint8_wrap)
        self.max_proposals = max_proposals

    def process(self, sample, prediction) -> None:
        size = tuple(prediction.orig_size)
        labels = list(range(1, int(prediction.obj_ids.shape[0]) + 1))
        gts, preds, names = [], [], []
        for frame, fp in _stream(sample, prediction):
            gts.append(gt_index_map(frame))
            preds.append(pred_index_map(fp.masks, labels, size))
            names.append(frame.name or str(frame.index))
        self._results.append(eval_unsupervised_sequence(
            sample.video_id, gts, preds, names, bound_th=self.bound_th,
            max_proposals=self.max_proposals, where=f"video {sample.video_id!r}"))
