"""YouTube-VIS video AP / AR, numerically identical to youtubevos/cocoapi ``ytvoseval.py``.

Conventions copied from the official code (see ``../shared/METRICS.md``):

* video IoU of a (detection, GT) pair = ``sum_t I_t / sum_t U_t`` over ``zip``-truncated frame
  lists; a frame where only one is present adds its area to U; ``iscrowd`` is not used in the
  IoU; ``sum U == 0`` gives IoU 0 (the official prints "may not match"; we count them in
  ``num_mismatched_pairs``).
* area ranges all / small / medium / large = [0, 1e10], [0, 128^2], [128^2, 256^2],
  [256^2, 1e10], both ends inclusive; the tested area is ``avg_area`` = mean of the non-zero
  per-frame areas (0 if none). For GT the areas are the json ``areas`` field (not recomputed);
  for detections they are computed from the masks (``loadRes``).
* ``ignore = iscrowd``; a crowd GT can absorb several detections; detections matched to an
  ignored GT, and unmatched detections out of the area range, are ignored.
* detections of a (video, category) are sorted by ``-score`` with a stable mergesort (ties keep
  results order) and cut to 100; maxDets 1 / 10 / 100 cut per (video, category);
  accumulation concatenates videos in sorted ``video_id`` order and sorts again stably.
* greedy COCO matching per IoU threshold ``linspace(.5, .95, 10)``; equal IoU: the later GT
  (in ignore-sorted order) wins.
* precision at 101 recall points (monotone from the right, ``searchsorted(..., 'left')``),
  recall = last recall value; cells without non-ignored GT are -1 and left out of the means;
  a summary with no valid cell is -1, as in the official ``summarize``.

Two entry points feed the same matcher: the streaming ``YTVISEvaluator`` (``VideoSample`` +
``VideoPrediction``; intersections by one matrix product per frame) and
``evaluate_ytvis_json(gt_json, results_json)`` (RLE arithmetic with pycocotools, as the
official code, no decoding).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from pycocotools import mask as mask_utils

from vosbench.metrics.base import Evaluator
from vosbench.registry import METRICS
from vosbench.utils.io import DataError, read_json

IOU_THRS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
REC_THRS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)
MAX_DETS = (1, 10, 100)
AREA_RNG = ((0 ** 2, 1e5 ** 2), (0 ** 2, 128 ** 2), (128 ** 2, 256 ** 2), (256 ** 2, 1e5 ** 2))
AREA_LBL = ("all", "small", "medium", "large")
SUMMARY_KEYS = ("AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large",
                "AR1", "AR10", "AR100", "AR_small", "AR_medium", "AR_large")


class YTVISFormatError(ValueError):
    """Bad YouTube-VIS ground truth or results (message names the file and the entry)."""


def avg_area(areas: Sequence[Any]) -> float:
    """Mean of the truthy per-frame areas (``None`` and 0 skipped), 0 if there are none."""
    vals = [a for a in areas if a]
    return float(np.array(vals).mean()) if vals else 0


@dataclass
class VideoStats:
    """What the matcher needs of one video (everything else is dropped after ``process``).

    Attributes:
        key: the video id used for ordering (int for YouTube-VIS ids).
        gt: per GT instance ``dict(id, category_id, avg_area, iscrowd)``.
        dt: per detection ``dict(id, category_id, score, avg_area)`` in results order.
        inter, union: float64[D, G] sums over frames of intersection / union areas.
    """

    key: Any
    gt: list[dict]
    dt: list[dict]
    inter: np.ndarray
    union: np.ndarray


def _video_ious(v: VideoStats, dts: list[int], gts: list[int]) -> tuple[np.ndarray, int]:
    if not dts or not gts:
        return np.zeros((len(dts), len(gts))), 0
    u = v.union[np.ix_(dts, gts)]
    i = v.inter[np.ix_(dts, gts)]
    bad = int(np.count_nonzero(~(u > 0)))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(u > 0, i / np.where(u > 0, u, 1.0), 0.0), bad


def _evaluate_video(gt: list[dict], dt: list[dict], ious: np.ndarray, a_rng, max_det: int):
    """``evaluateVid`` for one (video, category, area range); ``dt`` already score-sorted."""
    lo, hi = a_rng
    g_ign = [1 if (g["iscrowd"] or g["avg_area"] < lo or g["avg_area"] > hi) else 0 for g in gt]
    gtind = np.argsort(g_ign, kind="mergesort")
    gt = [gt[i] for i in gtind]
    g_ign = [g_ign[i] for i in gtind]
    dt = dt[:max_det]
    iscrowd = [int(g["iscrowd"]) for g in gt]
    ious = ious[:, gtind] if ious.size else ious
    T, G, D = len(IOU_THRS), len(gt), len(dt)
    gtm = np.zeros((T, G))
    dtm = np.zeros((T, D))
    dt_ig = np.zeros((T, D))
    if ious.size:
        iou_rows = ious.tolist()
        for tind, t in enumerate(IOU_THRS):
            gtm_t = gtm[tind]
            matched = [False] * G
            for dind in range(D):
                iou = min([t, 1 - 1e-10])
                m = -1
                row = iou_rows[dind]
                for gind in range(G):
                    if matched[gind] and not iscrowd[gind]:
                        continue
                    if m > -1 and g_ign[m] == 0 and g_ign[gind] == 1:
                        break
                    if row[gind] < iou:
                        continue
                    iou = row[gind]
                    m = gind
                if m == -1:
                    continue
                dt_ig[tind, dind] = g_ign[m]
                dtm[tind, dind] = gt[m]["id"]
                gtm_t[m] = dt[dind]["id"]
                # the official test is ``gtm > 0``: a detection id of 0 would not block
                matched[m] = dt[dind]["id"] > 0
    a = np.array([d["avg_area"] < lo or d["avg_area"] > hi for d in dt]).reshape((1, D))
    dt_ig = np.logical_or(dt_ig, np.logical_and(dtm == 0, np.repeat(a, T, 0)))
    return {"scores": np.array([d["score"] for d in dt], dtype=np.float64), "dtm": dtm,
            "dt_ig": dt_ig, "g_ign": np.array(g_ign)}


def accumulate_and_summarize(videos: Sequence[VideoStats], cat_ids: Sequence[int]
                             ) -> tuple[dict[str, float], dict[int, float], dict]:
    """Match, accumulate (``accumulate``) and summarise (``summarize``) every video.

    Args:
        videos: per-video statistics (any order; sorted by ``key`` here).
        cat_ids: the GT category ids (sorted here).

    Returns:
        (summary with ``SUMMARY_KEYS``, per-category AP (area all, maxDets 100),
        extras: ``precision`` [T, R, K, A, M], ``recall`` [T, K, A, M], ``num_mismatched_pairs``).
    """
    videos = sorted(videos, key=lambda v: v.key)
    cat_ids = sorted(set(int(c) for c in cat_ids))
    T, R, K, A, M = len(IOU_THRS), len(REC_THRS), len(cat_ids), len(AREA_RNG), len(MAX_DETS)
    precision = -np.ones((T, R, K, A, M))
    recall = -np.ones((T, K, A, M))
    mismatched = 0
    # evalImgs[k][a] = list over videos (None where the video has neither gt nor dt)
    per_cell: list[list[list]] = [[[] for _ in range(A)] for _ in range(K)]
    for v in videos:
        for k, c in enumerate(cat_ids):
            gidx = [j for j, g in enumerate(v.gt) if g["category_id"] == c]
            didx = [j for j, d in enumerate(v.dt) if d["category_id"] == c]
            if not gidx and not didx:
                continue
            order = np.argsort([-v.dt[j]["score"] for j in didx], kind="mergesort")
            didx = [didx[j] for j in order][: MAX_DETS[-1]]
            ious, bad = _video_ious(v, didx, gidx)
            mismatched += bad
            gts = [v.gt[j] for j in gidx]
            dts = [v.dt[j] for j in didx]
            for a, rng in enumerate(AREA_RNG):
                per_cell[k][a].append(_evaluate_video(gts, dts, ious, rng, MAX_DETS[-1]))
    for k in range(K):
        for a in range(A):
            E = per_cell[k][a]
            if not E:
                continue
            g_ign = np.concatenate([e["g_ign"] for e in E])
            npig = int(np.count_nonzero(g_ign == 0))
            if npig == 0:
                continue
            for m, max_det in enumerate(MAX_DETS):
                scores = np.concatenate([e["scores"][:max_det] for e in E])
                inds = np.argsort(-scores, kind="mergesort")
                dtm = np.concatenate([e["dtm"][:, :max_det] for e in E], axis=1)[:, inds]
                dt_ig = np.concatenate([e["dt_ig"][:, :max_det] for e in E], axis=1)[:, inds]
                tps = np.logical_and(dtm, np.logical_not(dt_ig))
                fps = np.logical_and(np.logical_not(dtm), np.logical_not(dt_ig))
                tp_sum = np.cumsum(tps, axis=1).astype(np.float64)
                fp_sum = np.cumsum(fps, axis=1).astype(np.float64)
                nd = tp_sum.shape[1]
                rc = tp_sum / npig  # [T, nd]
                pr = tp_sum / (fp_sum + tp_sum + np.spacing(1))
                if nd == 0:
                    recall[:, k, a, m] = 0
                    precision[:, :, k, a, m] = 0
                    continue
                recall[:, k, a, m] = rc[:, -1]
                # monotone from the right: pr[i-1] = max(pr[i-1], pr[i])
                pr = np.maximum.accumulate(pr[:, ::-1], axis=1)[:, ::-1]
                for t in range(T):
                    inds_r = np.searchsorted(rc[t], REC_THRS, side="left")
                    # the official loop stops at the first index past the end; indices are
                    # non-decreasing, so the valid ones are a prefix and the rest stay 0
                    valid = inds_r < nd
                    q = np.zeros(R)
                    q[valid] = pr[t, inds_r[valid]]
                    precision[t, :, k, a, m] = q

    def summarize(ap: bool, iou_thr=None, area="all", max_dets=100) -> float:
        aind = [i for i, lbl in enumerate(AREA_LBL) if lbl == area]
        mind = [i for i, md in enumerate(MAX_DETS) if md == max_dets]
        if ap:
            s = precision
            if iou_thr is not None:
                s = s[np.where(iou_thr == IOU_THRS)[0]]
            s = s[:, :, :, aind, mind]
        else:
            s = recall
            if iou_thr is not None:
                s = s[np.where(iou_thr == IOU_THRS)[0]]
            s = s[:, :, aind, mind]
        return -1.0 if len(s[s > -1]) == 0 else float(np.mean(s[s > -1]))

    summary = {
        "AP": summarize(True),
        "AP50": summarize(True, iou_thr=0.5),
        "AP75": summarize(True, iou_thr=0.75),
        "AP_small": summarize(True, area="small"),
        "AP_medium": summarize(True, area="medium"),
        "AP_large": summarize(True, area="large"),
        "AR1": summarize(False, max_dets=1),
        "AR10": summarize(False, max_dets=10),
        "AR100": summarize(False, max_dets=100),
        "AR_small": summarize(False, area="small"),
        "AR_medium": summarize(False, area="medium"),
        "AR_large": summarize(False, area="large"),
    }
    per_cat = {}
    for k, c in enumerate(cat_ids):
        s = precision[:, :, k, 0, -1]
        per_cat[c] = -1.0 if len(s[s > -1]) == 0 else float(np.mean(s[s > -1]))
    return summary, per_cat, {"precision": precision, "recall": recall,
                              "num_mismatched_pairs": mismatched}


def _with_map(summary: dict[str, float]) -> dict[str, float]:
    out = dict(summary)
    out["mAP"] = summary["AP"]  # the flat key the engine reports
    return out


# --------------------------------------------------------------------------- streaming API
def _to_numpy(x) -> np.ndarray:
    return x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)


def _video_key(sample) -> Any:
    key = sample.meta.get("ytvis_id", sample.meta.get("video_id", sample.video_id))
    try:
        return int(key)
    except (TypeError, ValueError):
        return key


@METRICS.register("ytvis")
class YTVISEvaluator(Evaluator):
    """Streaming YouTube-VIS evaluator (video AP / AR, ``ytvoseval`` numbers).

    Ground truth comes from the sample: annotated frames carry ``Frame.masks`` / ``obj_ids`` /
    ``labels``. From ``sample.meta`` it reads, when present (the YouTube-VIS loader keeps them
    from the json):

    * ``areas``: ``{obj_id: [area or None per frame]}``, the json ``areas`` used for the area
      ranges. Fallback (documented deviation when absent): areas computed from the decoded
      masks, which equal the json values for RLE annotations whose ``areas`` were computed
      from the same masks.
    * ``iscrowd``: ``{obj_id: 0/1}`` (default 0).
    * ``ann_ids``: ``{obj_id: annotation id}`` (default: the object id).
    * ``ytvis_id``: the json video id used for ordering (default: ``int(video_id)``).

    A frame without annotation (``Frame.masks is None``) counts as "absent" for every GT
    instance, like a null segmentation. Detections: one per ``prediction.obj_ids`` row, with
    ``prediction.scores`` / ``labels``; an empty mask in a frame counts as absent. Detection
    ids are assigned in processing order (the official results-file position).

    Args:
        categories: optional category ids evaluated (default: every category seen in the GT).
    """

    def __init__(self, *, categories: Sequence[int] | None = None) -> None:
        self.categories = None if categories is None else [int(c) for c in categories]
        self.reset()

    def reset(self) -> None:
        self._videos: list[VideoStats] = []
        self._cats: set[int] = set()
        self._next_dt_id = 1
        self._last: tuple | None = None

    def process(self, sample, prediction) -> None:
        if prediction.video_id != sample.video_id:
            raise ValueError(f"prediction for {prediction.video_id!r} given with sample "
                             f"{sample.video_id!r}")
        meta = sample.meta or {}
        det_ids = _to_numpy(prediction.obj_ids).tolist()
        D = len(det_ids)
        scores = _to_numpy(prediction.scores).astype(np.float64).tolist()
        labels = _to_numpy(prediction.labels).astype(np.int64).tolist()
        gt_ids: list[int] = []
        gt_labels: dict[int, int] = {}
        for t in sorted(sample.reference):
            ref = sample.reference[t]
            for i, lab in zip(_to_numpy(ref.obj_ids).tolist(), _to_numpy(ref.labels).tolist()):
                if i not in gt_labels:
                    gt_ids.append(int(i))
                    gt_labels[int(i)] = int(lab)
        inter = np.zeros((D, 0))
        union = np.zeros((D, 0))
        det_areas: list[list[int]] = [[] for _ in range(D)]
        det_cum = np.zeros(D)  # sum of detection areas so far (for GT seen only later)
        gt_areas: dict[int, list] = {}
        n_frames = 0
        for frame, fp in zip(sample.frames, prediction.iter_frames()):
            pm = _to_numpy(fp.masks)
            pa = pm.reshape(D, -1).sum(1).astype(np.int64) if D else np.zeros(0, np.int64)
            fids, gms = [], None
            if frame.masks is not None:
                gms = _to_numpy(frame.masks)
                fids = [int(i) for i in _to_numpy(frame.obj_ids).tolist()]
                for i, lab in zip(fids, _to_numpy(frame.labels).tolist()):
                    if i not in gt_labels:
                        gt_ids.append(i)
                        gt_labels[i] = int(lab)
            if len(gt_ids) > inter.shape[1]:
                grow = len(gt_ids) - inter.shape[1]
                inter = np.concatenate([inter, np.zeros((D, grow))], 1)
                # a GT absent so far: every earlier detection pixel was union
                union = np.concatenate([union, np.repeat(det_cum[:, None], grow, 1)], 1)
            # every (det, GT) pair: U += area(det); pairs with the GT present: U += area(gt) - I
            union += pa[:, None]
            present = {}
            for r, i in enumerate(fids):
                g = gms[r]
                ga = int(np.count_nonzero(g))
                present[i] = ga
                if ga == 0:
                    continue
                col = gt_ids.index(i)
                # intersections only for detections of the same category (the official IoU is
                # per (video, category)); bbox crop of the GT keeps this cheap
                rows_d = [k for k in range(D) if labels[k] == gt_labels[i]]
                if rows_d:
                    ys = np.flatnonzero(g.any(1))
                    xs = np.flatnonzero(g.any(0))
                    gc = g[ys[0]:ys[-1] + 1, xs[0]:xs[-1] + 1]
                    for k in rows_d:
                        it = int(np.count_nonzero(pm[k, ys[0]:ys[-1] + 1, xs[0]:xs[-1] + 1] & gc))
                        inter[k, col] += it
                        union[k, col] += ga - it
                else:
                    union[:, col] += ga
            for k in range(D):
                det_areas[k].append(int(pa[k]))
            for g in gt_ids:
                gt_areas.setdefault(g, [None] * n_frames).append(present.get(g) or None)
            det_cum += pa
            n_frames += 1
        areas_meta = meta.get("areas") or {}
        crowd_meta = meta.get("iscrowd") or {}
        ann_ids = meta.get("ann_ids") or {}
        gts = []
        for g in gt_ids:
            areas = areas_meta.get(g, areas_meta.get(str(g)))
            if areas is None:
                areas = gt_areas.get(g, [])
            gts.append({"id": int(ann_ids.get(g, ann_ids.get(str(g), g))),
                        "category_id": gt_labels[g],
                        "avg_area": avg_area(areas),
                        "iscrowd": int(crowd_meta.get(g, crowd_meta.get(str(g), 0)))})
            self._cats.add(gt_labels[g])
        dts = []
        for k in range(D):
            dts.append({"id": self._next_dt_id, "category_id": int(labels[k]),
                        "score": float(scores[k]), "avg_area": avg_area(det_areas[k])})
            self._next_dt_id += 1
        self._videos.append(VideoStats(_video_key(sample), gts, dts, inter, union))

    def add_video(self, stats: VideoStats, categories: Sequence[int] = ()) -> None:
        """Add precomputed statistics (JSON path, workers)."""
        self._videos.append(stats)
        self._cats.update(int(c) for c in categories)
        self._cats.update(g["category_id"] for g in stats.gt)

    def _run(self):
        cats = self.categories if self.categories is not None else sorted(self._cats)
        self._last = accumulate_and_summarize(self._videos, cats)
        return self._last

    def evaluate(self) -> dict[str, float]:
        summary, _, extra = self._run()
        if extra["num_mismatched_pairs"]:
            warnings.warn(f"{extra['num_mismatched_pairs']} (detection, GT) pairs have an empty "
                          "union over the video: mask sizes may not match (IoU set to 0, as the "
                          "official code does)")
        return _with_map(summary)

    def video_stats(self) -> list[VideoStats]:
        """The per-video matching statistics processed so far (e.g. to bootstrap AP)."""
        return list(self._videos)

    def per_category(self) -> dict[int, float]:
        """AP per category id (area all, maxDets 100; -1 when the category has no GT)."""
        if self._last is None:
            self._run()
        return dict(self._last[1])

    def per_sequence(self) -> list[dict]:
        """One row per video: number of GT instances and detections (AP is a dataset-level
        quantity, so no per-video AP is defined)."""
        return [{"Sequence": str(v.key), "num_gt": len(v.gt), "num_det": len(v.dt)}
                for v in self._videos]


# -------------------------------------------------------------------------------- JSON API
def _load_json(path, what: str):
    try:
        return read_json(path)
    except DataError as e:
        raise YTVISFormatError(f"{e} ({what} file)") from e


def _to_rle(seg, h: int, w: int, where: str):
    """Official ``annToRLE`` (polygons and uncompressed RLE converted; compressed kept)."""
    if not seg:
        return None
    if isinstance(seg, list):
        return mask_utils.merge(mask_utils.frPyObjects(seg, h, w))
    if not isinstance(seg, dict) or "counts" not in seg or "size" not in seg:
        raise YTVISFormatError(f"{where}: segmentation is neither a polygon list nor an RLE dict")
    if [int(v) for v in seg["size"]] != [h, w]:
        raise YTVISFormatError(f"{where}: mask size {list(seg['size'])} differs from the video "
                               f"size {[h, w]}")
    if isinstance(seg["counts"], list):
        return mask_utils.frPyObjects(seg, h, w)
    return seg  # compressed RLE (str or bytes counts): pycocotools takes it as is


def _hashable(x: Any) -> bool:
    return isinstance(x, (int, float, str, type(None))) and not isinstance(x, bool)


def _check_result_entry(r: Any, n: int, rname: str, vids: dict, gt_json) -> dict:
    """One results entry type-checked: ``video_id`` of the GT, integer ``category_id``, a finite
    number ``score``, ``segmentations`` a list of null / RLE (validated) / polygons."""
    from vosbench.data.datasets.ytvis import _is_int, _is_num, check_segmentation

    where = f"{rname}: entry {n}"
    if not isinstance(r, dict):
        raise YTVISFormatError(f"{where}: must be an object, got {type(r).__name__}")
    for key in ("video_id", "category_id", "score", "segmentations"):
        if key not in r:
            raise YTVISFormatError(f"{where} has no {key!r}")
    if not _is_int(r["video_id"]):
        raise YTVISFormatError(f"{where}: 'video_id' must be an integer, got {r['video_id']!r}")
    if int(r["video_id"]) not in vids:
        raise YTVISFormatError(f"{where}: video {r['video_id']} is not in the ground truth {gt_json}")
    if not _is_int(r["category_id"]):
        raise YTVISFormatError(f"{where}: 'category_id' must be an integer, got {r['category_id']!r}")
    if not _is_num(r["score"]):
        raise YTVISFormatError(f"{where}: 'score' must be a finite number, got {r['score']!r}")
    segs = r["segmentations"]
    if not isinstance(segs, list):
        raise YTVISFormatError(f"{where}: 'segmentations' must be a list (one per frame), got "
                               f"{type(segs).__name__}")
    v = vids[int(r["video_id"])]
    for t, sg in enumerate(segs):
        try:
            check_segmentation(sg, (int(v["height"]), int(v["width"])), f"{where} (video "
                               f"{r['video_id']}) frame {t}")
        except DataError as e:
            raise YTVISFormatError(str(e)) from e
    return r


def _frame_areas(rles: list) -> list[float]:
    """Per-frame areas of an RLE list (0 where absent), one pycocotools call."""
    out = [0.0] * len(rles)
    idx = [t for t, r in enumerate(rles) if r]
    if idx:
        for t, a in zip(idx, mask_utils.area([rles[t] for t in idx]).tolist()):
            out[t] = float(a)
    return out


def video_stats_from_rles(key, gts: list[dict], dts: list[dict]) -> VideoStats:
    """Video statistics from RLE lists (the I and U sums of ``ytvoseval.computeIoU``).

    Per frame, one ``pycocotools.mask.iou`` call gives every (det, GT) IoU of a category; the
    integer intersection is recovered exactly as ``round(iou * (a_d + a_g) / (1 + iou))`` and
    the union as ``a_d + a_g - I`` (what the official gets from two RLE merges per pair).
    Frame lists are ``zip``-truncated per pair; an absent frame (None) adds the other's area.
    Sums of integer areas are exact in float64, so the order of the additions does not matter.

    Args:
        gts: dicts with ``id, category_id, avg_area, iscrowd, rles`` (list, None = absent).
        dts: dicts with ``id, category_id, score, avg_area, rles``.
    """
    D, G = len(dts), len(gts)
    inter = np.zeros((D, G))
    union = np.zeros((D, G))
    shared = {g["category_id"] for g in gts} & {d["category_id"] for d in dts}
    for c in sorted(shared):
        gi = [j for j, g in enumerate(gts) if g["category_id"] == c]
        di = [j for j, d in enumerate(dts) if d["category_id"] == c]
        g_rles = [gts[j]["rles"] for j in gi]
        d_rles = [dts[j]["rles"] for j in di]
        g_area = [gts[j].get("fareas") or _frame_areas(gts[j]["rles"]) for j in gi]
        d_area = [dts[j].get("fareas") or _frame_areas(dts[j]["rles"]) for j in di]
        I = [[0.0] * len(gi) for _ in di]
        n_max = max(max(len(r) for r in g_rles), max(len(r) for r in d_rles))
        for t in range(n_max):
            dp = [k for k, r in enumerate(d_rles) if t < len(r) and r[t]]
            if not dp:
                continue
            gp = [k for k, r in enumerate(g_rles) if t < len(r) and r[t]]
            if not gp:
                continue
            iou = mask_utils.iou([d_rles[k][t] for k in dp], [g_rles[k][t] for k in gp],
                                 [0] * len(gp)).tolist()
            for x, a_ in enumerate(dp):
                row, ad = I[a_], d_area[a_][t]
                for y, b_ in enumerate(gp):
                    s_ = ad + g_area[b_][t]
                    v = iou[x][y]
                    if s_ > 0 and v > 0:
                        row[b_] += round(v * s_ / (1.0 + v))
        for x, dj in enumerate(di):
            for y, gj in enumerate(gi):
                n = min(len(d_rles[x]), len(g_rles[y]))  # zip truncation
                u = sum(d_area[x][:n]) + sum(g_area[y][:n]) - I[x][y]
                inter[dj, gj] = I[x][y]
                union[dj, gj] = u
    strip = lambda x: {k: v for k, v in x.items() if k not in ("rles", "fareas")}  # noqa: E731
    return VideoStats(key, [strip(g) for g in gts], [strip(d) for d in dts], inter, union)


def evaluate_ytvis_json(gt_json, results_json, *, return_details: bool = False):
    """Evaluate a YouTube-VIS ``results.json`` against a GT json, as ``ytvoseval`` does.

    Args:
        gt_json: path of the GT annotation file (``videos``, ``annotations``, ``categories``).
        results_json: path of the results file (a list of ``video_id, category_id, score,
            segmentations``), or the already loaded list.
        return_details: also return per-category AP and per-video counts.

    Returns:
        dict with ``SUMMARY_KEYS`` (and ``mAP``); with ``return_details`` a tuple
        ``(summary, per_category_ap, extras)``.

    Raises:
        YTVISFormatError: naming the file and entry for unknown videos, masks of the wrong
            size, malformed entries.
    """
    gt_data = _load_json(gt_json, "ground-truth")
    res = results_json if isinstance(results_json, list) else _load_json(results_json, "results")
    rname = "<results>" if isinstance(results_json, list) else str(results_json)
    # The ground truth goes through THE YouTube-VIS reader (the loader's): the same layout and
    # type checks, and every RLE validated, so ground truth the loader rejects is never scored.
    from vosbench.data.datasets.ytvis import parse_ytvis_json
    try:
        gt = parse_ytvis_json(gt_data, Path(gt_json), validate_rle=True, require_files=False)
    except DataError as e:
        raise YTVISFormatError(f"{e} (ground-truth file)") from e
    if gt.annotations is None:
        raise YTVISFormatError(f"{gt_json}: the ground-truth json has no 'annotations' (a valid/test "
                               "file holds no ground truth to score)")
    if not isinstance(res, list):
        raise YTVISFormatError(f"{rname}: results must be a JSON list of objects, got "
                               f"{type(res).__name__}")
    vids = {v["id"]: v for v in gt.videos}
    cat_ids = sorted(gt.categories)
    unknown = sorted({r.get("video_id") for r in res if isinstance(r, dict) and _hashable(
        r.get("video_id")) and r.get("video_id") not in vids}, key=str)
    if unknown:
        raise YTVISFormatError(f"{rname}: results name videos that are not in {gt_json}: "
                               f"{unknown[:10]}{' ...' if len(unknown) > 10 else ''}")
    res = [_check_result_entry(r, n, rname, vids, gt_json) for n, r in enumerate(res)]
    gts_by_vid: dict[int, list] = {v: [] for v in vids}
    for a in gt.annotations:
        v = vids[a["video_id"]]
        where = f"{gt_json}: annotation id {a.get('id')}"
        rles = [_to_rle(s, int(v["height"]), int(v["width"]), where) for s in a["segmentations"]]
        gts_by_vid[a["video_id"]].append({
            "id": a["id"], "category_id": int(a["category_id"]),
            "avg_area": avg_area(a.get("areas") or []),  # the json areas, as the official
            "iscrowd": int(bool(a.get("iscrowd", 0))), "rles": rles})
    dts_by_vid: dict[int, list] = {v: [] for v in vids}
    for n, r in enumerate(res):
        v = vids[int(r["video_id"])]
        where = f"{rname}: entry {n} (video {r['video_id']})"
        rles = [_to_rle(s, int(v["height"]), int(v["width"]), where) for s in r["segmentations"]]
        fareas = _frame_areas(rles)
        # loadRes: areas from the masks, None where absent
        areas = [int(a) if x else None for a, x in zip(fareas, rles)]
        dts_by_vid[int(r["video_id"])].append({
            "id": n + 1, "category_id": int(r["category_id"]), "score": float(r["score"]),
            "avg_area": avg_area(areas), "rles": rles, "fareas": fareas})
    videos = [video_stats_from_rles(v, gts_by_vid[v], dts_by_vid[v]) for v in sorted(vids)]
    summary, per_cat, extra = accumulate_and_summarize(videos, cat_ids)
    if extra["num_mismatched_pairs"]:
        warnings.warn(f"{extra['num_mismatched_pairs']} (detection, GT) pairs have an empty union: "
                      "mask sizes may not match (IoU 0, as the official code)")
    summary = _with_map(summary)
    if return_details:
        names = dict(gt.categories)
        extra["category_names"] = names
        extra["per_video"] = [{"video_id": v.key, "num_gt": len(v.gt), "num_det": len(v.dt)}
                              for v in videos]
        return summary, per_cat, extra
    return summary
