"""What a leaderboard difference means: bootstrap intervals, paired tests, per-attribute results.

Every leaderboard number is an aggregate over the sequences (videos) of a dataset: a mean over
objects (DAVIS-2017, SegTrack v2), a mean over sequences (DAVIS-2016) or a video AP / AR
(YouTube-VIS, a dataset-level quantity with no per-video value). A *statistic* of this module
recomputes that aggregate, exactly as the evaluator does, for **weighted** sequences: weight
``w[m, c] >= 0`` for method ``m`` on sequence ``c`` means "sequence c taken w times, with the
results of method m". Three analyses are choices of weights:

* **bootstrap interval** (``bootstrap_weights``): ``w`` = multinomial counts of n draws with
  replacement from the n sequences; the interval is the percentile interval of the recomputed
  statistic over the resamples (seeded; ``DEFAULT_RESAMPLES``). Resampling is by sequence, never
  by object or frame, because sequences are the independent units (objects and frames of one
  video share its difficulty).
* **paired swap test** (``swap_masks``): methods A and B exchange their results on a subset of
  the sequences (``w_A = 1 - z``, ``w_B = z``, ``z`` in {0, 1}^n). Under H0 "on every sequence
  the two results are exchangeable", every subset is as likely as the observed assignment, so
  ``p`` = share of subsets whose |A - B| is at least the observed |A - B| (all 2^n subsets up to
  ``EXACT_LIMIT`` sequences, else ``DEFAULT_PERMUTATIONS`` random ones plus the identity). For a
  mean over sequences this is the sign-flip permutation test of the per-sequence differences; for
  AP it swaps whole per-video detection sets and re-runs the accumulation. Identical methods give
  p = 1; one that is better by the same amount on every sequence gives the smallest p possible,
  2 / 2^n (so 3 sequences can never show a difference at 5 %: that is the honest answer).
* **subsets** (``subset_weights``): 0/1 weights select the sequences of one attribute.

``MeanStatistic`` holds per-sequence sums and counts (NaN values are skipped, as the official
``nanmean``); ``APStatistic`` holds the per-video, per-category matching that
``vosbench.metrics.vis`` computes (``_evaluate_video``, done once) and re-runs only the
accumulation (weighted cumulative sums, the official 101-point interpolation) per resample, so
a bootstrap of AP costs a few seconds, not a re-evaluation per resample. With unit weights both
reproduce the evaluators' numbers (tested); for a resample with repeated videos AP equals the
official AP of the resampled video list whenever no two detections of one video and category
tie in score (the official order of tied copies is the arbitrary order of their ids).
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

DEFAULT_RESAMPLES = 2000
DEFAULT_PERMUTATIONS = 9999
EXACT_LIMIT = 12          # enumerate all 2^n swaps up to this many sequences (4096)
DEFAULT_SEED = 0
CONFIDENCE = 0.95
ALPHA = 0.05
_TOL = 1e-9               # |diff| ties in the swap test (metrics are in 0-1)

#: Official per-object row keys -> flat metric keys (``SequenceResult.statistics``).
ROW_KEYS = {"J_mean": "J-Mean", "J_recall": "J-Recall", "J_decay": "J-Decay",
            "F_mean": "F-Mean", "F_recall": "F-Recall", "F_decay": "F-Decay", "T_mean": "T-Mean"}
VOS_KEYS = ["J&F", *ROW_KEYS]
VIS_KEYS = ["mAP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large",
            "AR1", "AR10", "AR100", "AR_small", "AR_medium", "AR_large"]


# --------------------------------------------------------------------------------- weights
def bootstrap_weights(n: int, resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED
                      ) -> np.ndarray:
    """Multinomial counts of ``n`` draws with replacement from ``n`` sequences.

    Returns:
        float64[resamples, n]; row ``b`` is how often each sequence occurs in resample ``b``
        (rows sum to n). Same ``(n, resamples, seed)``, same matrix: every method of a dataset
        is resampled identically, which makes differences of bootstrap samples paired.
    """
    if n < 1 or resamples < 1:
        raise ValueError(f"bootstrap needs n >= 1 sequences and resamples >= 1 (got {n}, {resamples})")
    rng = np.random.default_rng([int(seed), int(n)])
    return rng.multinomial(n, np.full(n, 1.0 / n), size=resamples).astype(np.float64)


def swap_masks(n: int, permutations: int = DEFAULT_PERMUTATIONS, seed: int = DEFAULT_SEED,
               exact_limit: int = EXACT_LIMIT) -> tuple[np.ndarray, bool]:
    """Subsets of sequences on which two methods swap results.

    Returns:
        (bool[P, n], exact): all 2^n subsets (row 0 = no swap) when ``n <= exact_limit``,
        else row 0 = no swap plus ``permutations`` independent fair-coin subsets.
    """
    if n <= exact_limit:
        codes = np.arange(2 ** n, dtype=np.int64)
        return ((codes[:, None] >> np.arange(n)) & 1).astype(bool), True
    rng = np.random.default_rng([int(seed), int(n), 1])
    z = rng.random((permutations, n)) < 0.5
    return np.concatenate([np.zeros((1, n), bool), z]), False


def subset_weights(n: int, members: Sequence[int]) -> np.ndarray:
    """float64[1, n] 0/1 weights selecting ``members``."""
    w = np.zeros((1, n))
    w[0, list(members)] = 1.0
    return w


def percentile_interval(samples: np.ndarray, confidence: float = CONFIDENCE) -> tuple[float, float] | None:
    """Equal-tailed percentile interval of bootstrap samples (NaN samples ignored); None if all NaN."""
    s = np.asarray(samples, dtype=np.float64)
    s = s[np.isfinite(s)]
    if s.size == 0:
        return None
    a = (1.0 - confidence) / 2
    lo, hi = np.quantile(s, [a, 1.0 - a])
    return float(lo), float(hi)


# ------------------------------------------------------------------------------ statistics
class MeanStatistic:
    """Metrics that are means over units (objects or sequences) grouped by sequence.

    Args:
        sequences: the n sequence names (column order).
        keys: metric names (``J_mean`` ...); ``J&F`` is added as (J_mean + F_mean) / 2.
        sums, counts: float64[M, n, K] per method, sequence and metric: sum and number of the
            finite unit values.
        methods: the M method names.
    """

    def __init__(self, sequences: list[str], keys: list[str], sums: np.ndarray, counts: np.ndarray,
                 methods: list[str]):
        self.sequences, self.base_keys, self.methods = list(sequences), list(keys), list(methods)
        self.sums, self.counts = np.asarray(sums, np.float64), np.asarray(counts, np.float64)
        self.keys = (["J&F"] if "J_mean" in keys and "F_mean" in keys else []) + self.base_keys

    @property
    def n(self) -> int:
        return len(self.sequences)

    @classmethod
    def from_rows(cls, rows_by_method: dict[str, list[dict]], keys: Sequence[str] | None = None,
                  sequences: list[str] | None = None) -> "MeanStatistic":
        """From the evaluators' per-object rows (``Sequence``, ``video``, ``J-Mean``, ...).

        The sequence of a row is its ``video`` key (set by the bench runner) or its
        ``Sequence``. Only sequences every method has are kept (same dataset, same videos).
        """
        keys = [k for k in (keys or ROW_KEYS) if any(ROW_KEYS.get(k, k) in r for rows in
                                                      rows_by_method.values() for r in rows)]
        per_m = {}
        for m, rows in rows_by_method.items():
            d: dict[str, list[dict]] = {}
            for r in rows:
                if isinstance(r, dict):
                    d.setdefault(str(r.get("video", r.get("Sequence"))), []).append(r)
            per_m[m] = d
        if sequences is None:
            first = next(iter(per_m.values()), {})
            sequences = [s for s in first if all(s in d for d in per_m.values())]
        M, n, K = len(per_m), len(sequences), len(keys)
        sums, counts = np.zeros((M, n, K)), np.zeros((M, n, K))
        for i, d in enumerate(per_m.values()):
            for c, s in enumerate(sequences):
                for r in d.get(s, []):
                    for k, key in enumerate(keys):
                        v = r.get(ROW_KEYS.get(key, key))
                        if v is not None and math.isfinite(float(v)):
                            sums[i, c, k] += float(v)
                            counts[i, c, k] += 1
        return cls(list(sequences), list(keys), sums, counts, list(per_m))

    def evaluate(self, weights: np.ndarray) -> np.ndarray:
        """Statistic for weighted sequences.

        Args:
            weights: float[B, M, n] (method ``m`` contributes sequence ``c`` ``w`` times).
        Returns:
            float64[B, len(self.keys)]; NaN where no finite unit value has weight.
        """
        num = np.einsum("bmn,mnk->bk", weights, self.sums)
        den = np.einsum("bmn,mnk->bk", weights, self.counts)
        with np.errstate(invalid="ignore", divide="ignore"):
            out = np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)
        if self.keys[0] == "J&F":
            jf = (out[:, self.base_keys.index("J_mean")] + out[:, self.base_keys.index("F_mean")]) / 2
            out = np.concatenate([jf[:, None], out], axis=1)
        return out


def _ap_cells():
    from vosbench.metrics import vis
    return vis


@dataclass
class _Entry:
    """One (method, video, category, area range) of the official ``evaluateVid``."""

    scores: np.ndarray  # float64[D] score-sorted
    tp: np.ndarray      # bool[T, D]
    fp: np.ndarray      # bool[T, D]
    npig: int           # non-ignored GT


class APStatistic:
    """YouTube-VIS video AP / AR (``ytvoseval``) for weighted videos.

    The per-video matching (``vosbench.metrics.vis._evaluate_video``) is computed once per method,
    video, category and area range; ``evaluate`` redoes only ``accumulate`` / ``summarize`` with
    weighted cumulative true / false positive counts.

    Args:
        videos_by_method: method name -> its ``VideoStats`` (same videos for every method).
        categories: evaluated category ids (default: every GT category, as the evaluator).
        names: video key -> video name (``sequences``; default ``str(key)``).
        area_ranges: also the small / medium / large summaries (``AP_small`` ... ``AR_large``);
            False skips their cells (the leaderboard does not show them) at half the cost.
    """

    def __init__(self, videos_by_method: dict[str, list], categories: Sequence[int] | None = None,
                 names: dict | None = None, area_ranges: bool = True):
        self.area_ranges = area_ranges
        self.keys = VIS_KEYS if area_ranges else [k for k in VIS_KEYS if not k.endswith(
            ("_small", "_medium", "_large"))]
        vis = _ap_cells()
        self.methods = list(videos_by_method)
        by_key = [{v.key: v for v in vids} for vids in videos_by_method.values()]
        common = set(by_key[0]) if by_key else set()
        for d in by_key[1:]:
            common &= set(d)
        self.videos = sorted(common)
        self.sequences = [str((names or {}).get(k, k)) for k in self.videos]
        gt_cats = {g["category_id"] for d in by_key for k in self.videos for g in d[k].gt}
        self.cat_ids = sorted(set(int(c) for c in (categories if categories is not None else gt_cats)))
        K, A, n = len(self.cat_ids), len(vis.AREA_RNG), len(self.videos)
        self.T, self.R = len(vis.IOU_THRS), len(vis.REC_THRS)
        self.npig = np.zeros((K, A, n))
        # entries[m][(k, a)] = list over videos of _Entry | None
        self.entries: list[dict[tuple[int, int], list]] = []
        for mi, d in enumerate(by_key):
            ent = {(k, a): [None] * n for k in range(K) for a in range(A)}
            for vi, key in enumerate(self.videos):
                v = d[key]
                for k, c in enumerate(self.cat_ids):
                    gidx = [j for j, g in enumerate(v.gt) if g["category_id"] == c]
                    didx = [j for j, dt in enumerate(v.dt) if dt["category_id"] == c]
                    if not gidx and not didx:
                        continue
                    order = np.argsort([-v.dt[j]["score"] for j in didx], kind="mergesort")
                    didx = [didx[j] for j in order][: vis.MAX_DETS[-1]]
                    ious, _ = vis._video_ious(v, didx, gidx)
                    gts, dts = [v.gt[j] for j in gidx], [v.dt[j] for j in didx]
                    for a, rng in enumerate(vis.AREA_RNG):
                        e = vis._evaluate_video(gts, dts, ious, rng, vis.MAX_DETS[-1])
                        tp = np.logical_and(e["dtm"], np.logical_not(e["dt_ig"]))
                        fp = np.logical_and(np.logical_not(e["dtm"]), np.logical_not(e["dt_ig"]))
                        npig = int(np.count_nonzero(e["g_ign"] == 0))
                        ent[(k, a)][vi] = _Entry(e["scores"], tp.reshape(self.T, -1),
                                                 fp.reshape(self.T, -1), npig)
                        if gidx:  # GT only: the same for every method
                            self.npig[k, a, vi] = npig
            self.entries.append(ent)
        self._pooled_cache: dict[tuple, dict] = {}

    @property
    def n(self) -> int:
        return len(self.videos)

    def _pooled(self, k: int, a: int, max_det: int, methods: tuple, videos: tuple) -> dict:
        """Detections of the given methods and videos for one cell, in the official order (video,
        then results order), stably sorted by descending score; ``m`` / ``v`` = the method and
        video of each. (Detections of other methods and videos would only add zero-weight
        points, which change nothing but the cost.)"""
        key = (k, a, max_det, methods, videos)
        if key not in self._pooled_cache:
            scores, tp, fp, om, ov = [], [], [], [], []
            for vi in videos:
                for mi in methods:
                    e = self.entries[mi][(k, a)][vi]
                    if e is None or e.scores.size == 0:
                        continue
                    d = min(max_det, e.scores.size)
                    scores.append(e.scores[:d])
                    tp.append(e.tp[:, :d])
                    fp.append(e.fp[:, :d])
                    om.append(np.full(d, mi))
                    ov.append(np.full(d, vi))
            if scores:
                s = np.concatenate(scores)
                order = np.argsort(-s, kind="mergesort")
                cell = {"tp": np.concatenate(tp, 1)[:, order].astype(np.float64),
                        "fp": np.concatenate(fp, 1)[:, order].astype(np.float64),
                        "m": np.concatenate(om)[order], "v": np.concatenate(ov)[order]}
            else:
                cell = {"tp": np.zeros((self.T, 0)), "fp": np.zeros((self.T, 0)),
                        "m": np.zeros(0, int), "v": np.zeros(0, int)}
            self._pooled_cache[key] = cell
        return self._pooled_cache[key]

    def _cell(self, W: np.ndarray, k: int, a: int, max_det: int, with_precision: bool,
              active: tuple = ((), ())):
        """(precision sums [B, 3]: all IoUs / IoU .5 / IoU .75 over the 101 recall points,
        recall sum over IoUs [B], valid [B]) of one (category, area, maxDets) cell; ``active``
        = (methods, videos) with a non-zero weight somewhere in ``W``."""
        vis = _ap_cells()
        B = W.shape[0]
        npig = W.sum(1) @ self.npig[k, a]  # GT counts once per (weighted) video
        valid = npig > 0
        cell = self._pooled(k, a, max_det, *active)
        nd = cell["m"].size
        psum = np.zeros((B, 3))
        rsum = np.zeros(B)
        if nd == 0 or not valid.any():
            return psum, rsum, valid
        den = np.where(valid, npig, 1.0)
        if not with_precision:  # recall = last cumulative TP / npig: one matrix product
            w = W[:, cell["m"], cell["v"]]  # [B, nd]
            return psum, (w @ cell["tp"].T).sum(1) / den, valid
        t50 = np.where(0.5 == vis.IOU_THRS)[0]
        t75 = np.where(0.75 == vis.IOU_THRS)[0]
        T = self.T
        chunk = max(1, int(4_000_000 // (T * nd)))
        for b0 in range(0, B, chunk):
            sl = slice(b0, b0 + chunk)
            w = W[sl][:, cell["m"], cell["v"]]  # [b, nd] weight of each detection
            tp_sum = np.cumsum(w[:, None, :] * cell["tp"][None], axis=2)  # [b, T, nd]
            fp_sum = np.cumsum(w[:, None, :] * cell["fp"][None], axis=2)
            rc = tp_sum / den[sl, None, None]
            rsum[sl] = rc[:, :, -1].sum(1)
            pr = tp_sum / (fp_sum + tp_sum + np.spacing(1))
            pr = np.maximum.accumulate(pr[:, :, ::-1], axis=2)[:, :, ::-1]
            # The official q[r] = pr[searchsorted(rc, REC_THRS[r], "left")] (0 past the end).
            # Summed over r: detection d receives the thresholds in (rc[d-1], rc[d]], i.e.
            # #(REC_THRS <= rc[d]) - #(REC_THRS <= rc[d-1]); the same float comparisons, done by
            # one searchsorted over the fixed thresholds instead of one per row.
            c = np.searchsorted(vis.REC_THRS, rc, side="right")
            c[:, :, 1:] -= c[:, :, :-1].copy()
            q = (pr * c).sum(2)  # [b, T]: sum over the 101 recall points
            psum[sl, 0] = q.sum(1)
            psum[sl, 1] = q[:, t50].sum(1) if t50.size else np.nan
            psum[sl, 2] = q[:, t75].sum(1) if t75.size else np.nan
        return psum, rsum, valid

    def evaluate(self, weights: np.ndarray) -> np.ndarray:
        """AP / AR summaries (``VIS_KEYS`` order, ``mAP`` = AP) for weighted videos.

        Args:
            weights: float[B, M, n].
        Returns:
            float64[B, 12]; -1 where no cell is defined (as the official ``summarize``).
        """
        vis = _ap_cells()
        W = np.asarray(weights, np.float64)
        B, K, A, T, R = W.shape[0], len(self.cat_ids), len(vis.AREA_RNG), self.T, self.R
        P = np.zeros((B, K, A, 3))
        R100 = np.zeros((B, K, A))
        V = np.zeros((B, K, A), bool)
        R1, R10 = np.zeros((B, K)), np.zeros((B, K))
        m_small, m_mid, m_big = vis.MAX_DETS
        used = W != 0
        active = (tuple(np.flatnonzero(used.any((0, 2))).tolist()),
                  tuple(np.flatnonzero(used.any((0, 1))).tolist()))
        for k in range(K):
            for a in range(A) if self.area_ranges else (0,):
                P[:, k, a], R100[:, k, a], V[:, k, a] = self._cell(W, k, a, m_big, True, active)
            R1[:, k] = self._cell(W, k, 0, m_small, False, active)[1]
            R10[:, k] = self._cell(W, k, 0, m_mid, False, active)[1]

        def mean(S, Vm, per):  # official: mean over the defined (> -1) entries
            cnt = Vm.sum(1) * per
            with np.errstate(invalid="ignore", divide="ignore"):
                return np.where(cnt > 0, (S * Vm).sum(1) / np.where(cnt > 0, cnt, 1), -1.0)

        V0 = V[:, :, 0]
        n50 = int(np.count_nonzero(0.5 == vis.IOU_THRS))
        n75 = int(np.count_nonzero(0.75 == vis.IOU_THRS))
        ap50 = mean(P[:, :, 0, 1], V0, n50 * R) if n50 else np.full(B, -1.0)
        ap75 = mean(P[:, :, 0, 2], V0, n75 * R) if n75 else np.full(B, -1.0)
        cols = [mean(P[:, :, 0, 0], V0, T * R), ap50, ap75,
                *(mean(P[:, :, a, 0], V[:, :, a], T * R) for a in (1, 2, 3)),
                mean(R1, V0, T), mean(R10, V0, T), mean(R100[:, :, 0], V0, T),
                *(mean(R100[:, :, a], V[:, :, a], T) for a in (1, 2, 3))]
        out = np.stack(cols, axis=1)
        return out if self.area_ranges else out[:, [VIS_KEYS.index(k) for k in self.keys]]


# ------------------------------------------------------------------------- VideoStats I/O
def video_stats_to_json(videos: Sequence[Any], names: dict | None = None) -> list[dict]:
    """``vosbench.metrics.vis.VideoStats`` -> plain JSON (for the bench cache / results.json);
    ``names`` (key -> video name) adds a ``video`` field."""
    out = []
    for v in videos:
        out.append({"key": v.key, "video": str((names or {}).get(v.key, v.key)), "gt": [dict(g) for g in v.gt], "dt": [dict(d) for d in v.dt],
                    "inter": np.asarray(v.inter).tolist(), "union": np.asarray(v.union).tolist()})
    return out


def video_stats_from_json(rows: Sequence[dict]) -> list:
    from vosbench.metrics.vis import VideoStats

    out = []
    for r in rows:
        D, G = len(r["dt"]), len(r["gt"])
        out.append(VideoStats(r["key"], [dict(g) for g in r["gt"]], [dict(d) for d in r["dt"]],
                              np.asarray(r["inter"], np.float64).reshape(D, G),
                              np.asarray(r["union"], np.float64).reshape(D, G)))
    return out


# ------------------------------------------------------------------------------- analyses
def _one(stat, m: int, w: np.ndarray) -> np.ndarray:
    """Weights [B, n] for method index m alone -> [B, M, n]."""
    W = np.zeros((w.shape[0], len(stat.methods), w.shape[1]))
    W[:, m] = w
    return W


def _defined(x: np.ndarray, task: str) -> np.ndarray:
    """Finite, and for AP/AR not the official -1 'undefined'."""
    ok = np.isfinite(x)
    return ok & (x > -1.0) if task == "vis" else ok


def swap_test(stat, i: int, j: int, *, permutations: int = DEFAULT_PERMUTATIONS,
              seed: int = DEFAULT_SEED, exact_limit: int = EXACT_LIMIT,
              task: str = "vos") -> dict:
    """Paired swap (sign-flip) permutation test of methods ``i`` and ``j`` on every metric.

    Returns:
        {"p": float[K] two-sided p per metric (NaN where undefined), "num_swaps": P,
        "exact": bool, "diff": float[K] observed i - j}.
    """
    z, exact = swap_masks(stat.n, permutations, seed, exact_limit)
    zf = z.astype(np.float64)
    P = z.shape[0]
    chunk = 512
    counts = np.zeros(len(stat.keys))
    diff_obs = None
    for p0 in range(0, P, chunk):
        zc = zf[p0:p0 + chunk]
        Wa = np.zeros((zc.shape[0], len(stat.methods), stat.n))
        Wb = np.zeros_like(Wa)
        Wa[:, i], Wa[:, j] = 1 - zc, zc
        Wb[:, i], Wb[:, j] = zc, 1 - zc
        a, b = stat.evaluate(Wa), stat.evaluate(Wb)
        ok = _defined(a, task) & _defined(b, task)
        d = np.where(ok, a - b, np.nan)
        if diff_obs is None:
            diff_obs = d[0]  # row 0 = no swap
        with np.errstate(invalid="ignore"):
            counts += np.sum(np.abs(d) >= np.abs(diff_obs) - _TOL, axis=0)
    assert diff_obs is not None
    # row 0 (no swap) always counts: exact p = count / 2^n; Monte Carlo p = (1 + count) / (1 + P)
    p = counts / P
    p = np.where(np.isfinite(diff_obs), np.minimum(1.0, p), np.nan)
    return {"p": p, "num_swaps": int(P), "exact": bool(exact), "diff": diff_obs}


def analyze(stat, *, task: str, official: dict[str, dict[str, float]] | None = None,
            subsets: dict[str, list[int]] | None = None, resamples: int = DEFAULT_RESAMPLES,
            permutations: int = DEFAULT_PERMUTATIONS, seed: int = DEFAULT_SEED,
            confidence: float = CONFIDENCE, main: str | None = None) -> dict:
    """Intervals for every method and metric, swap tests for every pair, subset results.

    Args:
        stat: a ``MeanStatistic`` or ``APStatistic`` over the dataset's methods.
        task: ``vos`` or ``vis`` (AP/AR use -1 for "undefined").
        official: method -> {metric: the evaluator's global value}. A metric whose recomputed
            value (unit weights) differs from it by more than 1e-6 gets no interval and no test
            (the per-sequence data do not reproduce the leaderboard number).
        subsets: name -> sequence indices (attributes); each gets the main metric per method
            with a bootstrap interval over its own sequences.
        main: the metric of the subset results and the ranking (default J&F / mAP).

    Returns:
        JSON-able dict: ``procedure`` (text, resamples, seed, confidence, swaps),
        ``num_sequences``, ``point`` / ``interval`` (method -> metric -> value / [lo, hi]),
        ``consistent`` (method -> metric -> bool), ``pairs`` (list of {a, b, metric, diff,
        diff_interval, p}), ``subsets`` (name -> {num_sequences, sequences, point, interval}).
    """
    n, keys, methods = stat.n, list(stat.keys), list(stat.methods)
    main = main or ("J&F" if task == "vos" else "mAP")
    out: dict[str, Any] = {"num_sequences": n, "sequences": list(stat.sequences), "main": main,
                           "point": {}, "interval": {}, "consistent": {}, "pairs": [],
                           "subsets": {}}
    if n == 0 or not methods:
        out["procedure"] = {"note": "no sequence common to the methods"}
        return out
    boot = bootstrap_weights(n, resamples, seed)
    ones = np.ones((1, n))
    samples = {}
    for mi, m in enumerate(methods):
        pt = stat.evaluate(_one(stat, mi, ones))[0]
        bs = stat.evaluate(_one(stat, mi, boot))
        samples[m] = np.where(_defined(bs, task), bs, np.nan)
        out["point"][m], out["interval"][m], out["consistent"][m] = {}, {}, {}
        for k, key in enumerate(keys):
            v = float(pt[k]) if _defined(pt[k:k + 1], task)[0] else None
            ref = (official or {}).get(m, {}).get(key)
            ok = v is not None and (ref is None or abs(float(ref) - v) <= 1e-6)
            out["point"][m][key] = v
            out["consistent"][m][key] = bool(ok)
            out["interval"][m][key] = percentile_interval(samples[m][:, k], confidence) if ok else None
    swaps = None
    for i, j in itertools.combinations(range(len(methods)), 2):
        a, b = methods[i], methods[j]
        test = swap_test(stat, i, j, permutations=permutations, seed=seed, task=task)
        swaps = test
        for k, key in enumerate(keys):
            ok = out["consistent"][a][key] and out["consistent"][b][key]
            d = test["diff"][k]
            out["pairs"].append({
                "a": a, "b": b, "metric": key,
                "diff": float(d) if ok and np.isfinite(d) else None,
                "diff_interval": percentile_interval(samples[a][:, k] - samples[b][:, k], confidence)
                if ok else None,
                "p": float(test["p"][k]) if ok and np.isfinite(test["p"][k]) else None})
    z_count = swaps["num_swaps"] if swaps else (2 ** n if n <= EXACT_LIMIT else permutations + 1)
    exact = swaps["exact"] if swaps else n <= EXACT_LIMIT
    out["procedure"] = {
        "interval": f"{int(confidence * 100)} % percentile bootstrap over sequences",
        "resamples": int(resamples), "seed": int(seed), "confidence": confidence,
        "test": "paired swap (sign-flip) permutation test over sequences, two-sided",
        "swaps": int(z_count), "exact": bool(exact), "alpha": ALPHA,
    }
    km = keys.index(main)
    for name, members in (subsets or {}).items():
        members = sorted(set(members))
        res = {"num_sequences": len(members), "sequences": [stat.sequences[c] for c in members],
               "point": {}, "interval": {}}
        if members:
            sub = bootstrap_weights(len(members), resamples, seed)
            full = np.zeros((resamples, n))
            full[:, members] = sub
            mask = subset_weights(n, members)
            for mi, m in enumerate(methods):
                if not out["consistent"][m][main]:
                    res["point"][m], res["interval"][m] = None, None
                    continue
                pt = stat.evaluate(_one(stat, mi, mask))[0, km]
                bs = stat.evaluate(_one(stat, mi, full))[:, km]
                ok = _defined(np.array([pt]), task)[0]
                res["point"][m] = float(pt) if ok else None
                res["interval"][m] = percentile_interval(np.where(_defined(bs, task), bs, np.nan),
                                                         confidence) if ok else None
        out["subsets"][name] = res
    return out


def pair(analysis: dict, a: str, b: str, metric: str) -> dict | None:
    """The ``pairs`` entry of (a, b) or (b, a) for ``metric`` (diff signed as a - b)."""
    for p in analysis.get("pairs", []):
        if p["metric"] != metric:
            continue
        if (p["a"], p["b"]) == (a, b):
            return p
        if (p["a"], p["b"]) == (b, a):
            q = dict(p, a=a, b=b)
            q["diff"] = None if p["diff"] is None else -p["diff"]
            q["diff_interval"] = None if p["diff_interval"] is None else \
                [-p["diff_interval"][1], -p["diff_interval"][0]]
            return q
    return None


def attribute_subsets(sequences: Sequence[str], attributes: dict[str, Sequence[str]],
                      order: Sequence[str] | None = None) -> dict[str, list[int]]:
    """Attribute -> indices of the sequences that carry it (sequences without an entry: none).

    Args:
        sequences: the statistic's sequence names.
        attributes: sequence -> its attribute codes (db_info.yml).
        order: the declared attribute order (db_info ``attributes``); codes in use only.
    """
    pos = {s: c for c, s in enumerate(sequences)}
    used: dict[str, list[int]] = {}
    for s, attrs in attributes.items():
        if s in pos:
            for a in attrs:
                used.setdefault(str(a), []).append(pos[s])
    names = [a for a in (order or []) if a in used] + sorted(a for a in used if a not in (order or []))
    return {a: sorted(used[a]) for a in names}


def sequence_of_row(row: str, sequences: Sequence[str]) -> str:
    """The sequence of an official per-object row name (``<seq>`` or ``<seq>_<object id>``):
    the longest known sequence it names, else the part before the last ``_``."""
    best = max((s for s in sequences if row == s or row.startswith(s + "_")), key=len, default=None)
    if best is not None:
        return best
    head, sep, tail = row.rpartition("_")
    return head if sep and tail.isdigit() else row


def attribute_table(rows: Sequence[dict], attributes: dict[str, Sequence[str]],
                    order: Sequence[str] | None = None, *, sequences: Sequence[str] | None = None,
                    metric: str = "J&F",
                    resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED,
                    confidence: float = CONFIDENCE) -> list[dict]:
    """Per-attribute results of ONE method from its official per-object rows (``tools/eval.py``).

    Args:
        rows: per-object rows (``Sequence``, ``J-Mean``, ``F-Mean``, ...), ``video`` optional.
        attributes: sequence -> attribute codes (db_info.yml); ``order``: declared code order.
        sequences: known sequence names, to find the sequence of a ``<seq>_<id>`` row
            (default: the keys of ``attributes``).
    Returns:
        ``[{"attribute", "num_sequences", "value", "interval"}]``: first ``all``, then each code
        in use, the mean over the objects of the sequences that carry it (the official
        aggregation restricted to them) with its bootstrap interval over those sequences.
    """
    names = list(sequences if sequences is not None else attributes)
    rows = [dict(r, video=r.get("video") or sequence_of_row(str(r["Sequence"]), names)) for r in rows]
    st = MeanStatistic.from_rows({"m": rows})
    res = analyze(st, task="vos", subsets=attribute_subsets(st.sequences, attributes, order),
                  resamples=resamples, seed=seed, confidence=confidence, main=metric)
    out = [{"attribute": "all", "num_sequences": st.n, "value": res["point"]["m"].get(metric),
            "interval": res["interval"]["m"].get(metric)}]
    for name, sub in res["subsets"].items():
        out.append({"attribute": name, "num_sequences": sub["num_sequences"],
                    "value": sub["point"].get("m"), "interval": sub["interval"].get("m")})
    return out


__all__ = ["ALPHA", "APStatistic", "CONFIDENCE", "DEFAULT_PERMUTATIONS", "DEFAULT_RESAMPLES",
           "DEFAULT_SEED", "EXACT_LIMIT", "MeanStatistic", "VIS_KEYS", "VOS_KEYS", "analyze",
           "attribute_subsets", "attribute_table", "sequence_of_row", "bootstrap_weights", "pair", "percentile_interval",
           "subset_weights", "swap_masks", "swap_test", "video_stats_from_json",
           "video_stats_to_json"]
