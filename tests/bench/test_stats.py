"""vosbench.bench.stats on data with a known answer: intervals, swap tests, AP recomputation."""
from __future__ import annotations

import numpy as np
import pytest

from vosbench.bench import stats
from vosbench.metrics.vis import VideoStats, accumulate_and_summarize
from vosbench.metrics.vos import SequenceResult, summarize_objects, summarize_sequences


def _rows(values_j, values_f, name="m"):
    """One object per sequence: DAVIS-2016 style rows."""
    return [{"Sequence": f"s{i}", "video": f"s{i}", "J-Mean": j, "F-Mean": f}
            for i, (j, f) in enumerate(zip(values_j, values_f))]


def _jf_pair(stat_analysis, a, b):
    return stats.pair(stat_analysis, a, b, "J&F")


def test_identical_methods_give_p_one_and_a_difference_interval_at_zero():
    rng = np.random.default_rng(0)
    j, f = rng.uniform(0.3, 0.9, 20), rng.uniform(0.3, 0.9, 20)
    st = stats.MeanStatistic.from_rows({"a": _rows(j, f), "b": _rows(j, f)})
    res = stats.analyze(st, task="vos", resamples=500)
    p = _jf_pair(res, "a", "b")
    assert p["p"] == pytest.approx(1.0)
    lo, hi = p["diff_interval"]
    assert lo <= 0.0 <= hi and abs(lo) < 1e-12 and abs(hi) < 1e-12
    assert res["procedure"]["resamples"] == 500 and not res["procedure"]["exact"]  # n=20 > 12
    lo, hi = res["interval"]["a"]["J&F"]
    assert lo < res["point"]["a"]["J&F"] < hi


def test_a_constant_shift_on_every_sequence_is_significant():
    rng = np.random.default_rng(1)
    j, f = rng.uniform(0.3, 0.8, 20), rng.uniform(0.3, 0.8, 20)
    st = stats.MeanStatistic.from_rows({"better": _rows(j + 0.02, f + 0.02), "base": _rows(j, f)})
    res = stats.analyze(st, task="vos", resamples=500, permutations=2000)
    p = _jf_pair(res, "better", "base")
    assert p["p"] < 0.01
    assert p["p"] == pytest.approx(1 / 2001)  # only the identity reaches the observed |diff|
    assert p["diff"] == pytest.approx(0.02)
    lo, hi = p["diff_interval"]
    assert lo == pytest.approx(0.02) and hi == pytest.approx(0.02)
    # exact enumeration for n <= 12: the smallest possible p is 2 / 2^n
    st8 = stats.MeanStatistic.from_rows({"better": _rows(j[:8] + 0.1, f[:8]), "base": _rows(j[:8], f[:8])})
    res8 = stats.analyze(st8, task="vos", resamples=200)
    assert res8["procedure"]["exact"] and res8["procedure"]["swaps"] == 256
    assert _jf_pair(res8, "better", "base")["p"] == pytest.approx(2 / 256)


def test_swap_test_by_hand():
    """Differences +1, +2, +3 (x0.1): sign flips give |sum| >= 6 only for +++ and ---: p = 2/8."""
    st = stats.MeanStatistic.from_rows({"a": _rows([0.1, 0.2, 0.3], [0.1, 0.2, 0.3]),
                                        "b": _rows([0, 0, 0], [0, 0, 0])})
    assert stats.swap_test(st, 0, 1)["p"][0] == pytest.approx(0.25)
    # +1, +2, -3: the observed sum is 0, every flip reaches it
    st = stats.MeanStatistic.from_rows({"a": _rows([0.1, 0.2, 0.0], [0.1, 0.2, 0.0]),
                                        "b": _rows([0, 0, 0.3], [0, 0, 0.3])})
    assert stats.swap_test(st, 0, 1)["p"][0] == pytest.approx(1.0)


def test_bootstrap_interval_has_its_coverage():
    """Means of n=30 N(0.5, 0.1) values: the 95 % interval covers 0.5 about 95 % of the time and
    is about as wide as the normal-theory one (mean +- 1.96 s / sqrt(n))."""
    rng = np.random.default_rng(2)
    n, trials, cover, ratio = 30, 200, 0, []
    w = stats.bootstrap_weights(n, 1000, seed=3)
    for _ in range(trials):
        x = rng.normal(0.5, 0.1, n)
        st = stats.MeanStatistic.from_rows({"m": _rows(x, x)})
        lo, hi = stats.percentile_interval(st.evaluate(w[:, None, :])[:, 0])
        cover += lo <= 0.5 <= hi
        ratio.append((hi - lo) / (2 * 1.96 * x.std(ddof=1) / np.sqrt(n)))
    assert 0.88 <= cover / trials <= 0.99
    assert 0.85 < float(np.median(ratio)) < 1.05


def test_bootstrap_is_seeded_and_paired():
    a = stats.bootstrap_weights(7, 50, seed=5)
    assert np.array_equal(a, stats.bootstrap_weights(7, 50, seed=5))
    assert not np.array_equal(a, stats.bootstrap_weights(7, 50, seed=6))
    assert np.all(a.sum(1) == 7)


def _seq(name, J, F, T=None):
    J, F = np.asarray(J, float), np.asarray(F, float)
    return SequenceResult(name, list(range(1, J.shape[0] + 1)), [f"{t:05d}" for t in range(J.shape[1])],
                          J, F, None if T is None else np.asarray(T, float))


def test_mean_statistic_reproduces_the_official_aggregations():
    rng = np.random.default_rng(4)
    seqs = [_seq(f"v{i}", rng.uniform(0, 1, (k, 9)), rng.uniform(0, 1, (k, 9)),
                 np.where(rng.uniform(size=(k, 8)) < 0.2, np.nan, rng.uniform(0, 2, (k, 8))))
            for i, k in enumerate((1, 3, 2, 1))]
    glob, rows = summarize_objects(seqs)  # DAVIS-2017: mean over objects
    for r, s in zip(rows, [s for s in seqs for _ in s.obj_ids]):
        r["video"] = s.name
    st = stats.MeanStatistic.from_rows({"m": rows})
    got = st.evaluate(np.ones((1, 1, st.n)))[0]
    for k, key in enumerate(st.keys):
        assert got[k] == pytest.approx(glob[key], abs=1e-12), key
    # a sequence taken twice counts all its objects twice (cluster bootstrap)
    w = np.array([[[2.0, 0, 1, 0]]])
    dup = summarize_objects([seqs[0], seqs[0], seqs[2]])[0]
    assert st.evaluate(w)[0, 0] == pytest.approx(dup["J&F"], abs=1e-12)
    # DAVIS-2016: nanmean over one row per sequence
    g16, rows16 = summarize_sequences([_seq(f"v{i}", rng.uniform(0, 1, (1, 6)), rng.uniform(0, 1, (1, 6)),
                                            [[np.nan] * 5] if i == 1 else rng.uniform(0, 2, (1, 5)))
                                       for i in range(4)])
    st16 = stats.MeanStatistic.from_rows({"m": rows16})
    got16 = dict(zip(st16.keys, st16.evaluate(np.ones((1, 1, 4)))[0]))
    assert got16["T_mean"] == pytest.approx(g16["T_mean"]) and got16["J&F"] == pytest.approx(g16["J&F"])


# ------------------------------------------------------------------------------------ AP / AR
def _random_gt(rng, n):
    return [[{"id": 100 * (v + 1) + g, "category_id": int(rng.integers(1, 4)),
              "avg_area": float(rng.choice([rng.uniform(50, 16000), rng.uniform(17000, 60000),
                                            rng.uniform(70000, 2e5)])),
              "iscrowd": int(rng.uniform() < 0.1)} for g in range(int(rng.integers(0, 4)))]
            for v in range(n)]


def _random_videos(rng, gts, dets=(0, 6)):
    """One method's VideoStats on the given GT: random detections, scores and overlaps."""
    vids, did = [], 1
    for v, gt in enumerate(gts):
        D, G = int(rng.integers(*dets)), len(gt)
        dt = []
        for _ in range(D):
            dt.append({"id": did, "category_id": int(rng.integers(1, 4)), "score": float(rng.uniform()),
                       "avg_area": float(rng.uniform(50, 2e5))})
            did += 1
        union = rng.uniform(100, 1000, (D, G))
        inter = union * np.where(rng.uniform(size=(D, G)) < 0.6, rng.uniform(0.3, 1.0, (D, G)), 0.0)
        vids.append(VideoStats(v + 1, gt, dt, inter, union))
    return vids


def _copy(v, key):
    return VideoStats(key, v.gt, v.dt, v.inter, v.union)


def _official(vids):
    cats = sorted({g["category_id"] for v in vids for g in v.gt})
    s = accumulate_and_summarize(vids, cats)[0]
    return np.array([s["AP" if k == "mAP" else k] for k in stats.VIS_KEYS])


def test_ap_statistic_equals_the_official_evaluator_on_resampled_and_swapped_videos():
    rng = np.random.default_rng(5)
    gts = _random_gt(rng, 7)
    A, B = _random_videos(rng, gts), _random_videos(rng, gts)  # same GT, other detections
    st = stats.APStatistic({"A": A, "B": B})
    n = st.n
    # unit weights: the evaluator's numbers
    np.testing.assert_allclose(st.evaluate(np.array([[np.ones(n), np.zeros(n)]]))[0], _official(A), atol=1e-12)
    np.testing.assert_allclose(st.evaluate(np.array([[np.zeros(n), np.ones(n)]]))[0], _official(B), atol=1e-12)
    # bootstrap counts: the official AP of the resampled list (copies with consecutive ids)
    W = stats.bootstrap_weights(n, 6, seed=1)
    got = st.evaluate(np.stack([W, np.zeros_like(W)], 1))
    for b in range(6):
        vids = [_copy(A[c], 100 * A[c].key + r) for c in range(n) for r in range(int(W[b, c]))]
        np.testing.assert_allclose(got[b], _official(vids), atol=1e-12)
    # swaps: video c from B where z[c], else from A
    z, _ = stats.swap_masks(n)
    pick = z[[0, 5, 77, 127]]
    got = st.evaluate(np.stack([1.0 - pick, pick.astype(float)], 1))
    for r, zz in enumerate(pick):
        np.testing.assert_allclose(got[r], _official([B[c] if zz[c] else A[c] for c in range(n)]), atol=1e-12)
    # without the area-range cells: the same numbers for the other keys
    lite = stats.APStatistic({"A": A, "B": B}, area_ranges=False)
    Wab = np.stack([W, W[::-1]], 1)
    np.testing.assert_allclose(lite.evaluate(Wab), st.evaluate(Wab)[:, [stats.VIS_KEYS.index(k) for k in lite.keys]])
    assert "AP_small" not in lite.keys and "AR10" in lite.keys
    # a subset (an attribute): the official AP of those videos only
    got = st.evaluate(np.stack([stats.subset_weights(n, [0, 2, 3]), np.zeros((1, n))], 1))
    np.testing.assert_allclose(got[0], _official([A[0], A[2], A[3]]), atol=1e-12)


def test_ap_analysis_and_video_stats_round_trip():
    rng = np.random.default_rng(6)
    A = _random_videos(rng, _random_gt(rng, 6))
    back = stats.video_stats_from_json(stats.video_stats_to_json(A))
    st = stats.APStatistic({"A": A, "A2": back})
    res = stats.analyze(st, task="vis", resamples=200)
    assert stats.pair(res, "A", "A2", "mAP")["p"] == pytest.approx(1.0)
    lo, hi = res["interval"]["A"]["mAP"]
    assert lo <= res["point"]["A"]["mAP"] <= hi


def test_attribute_subsets_and_inconsistent_rows():
    subs = stats.attribute_subsets(["a", "b", "c"], {"a": ["OCC", "FM"], "c": ["FM"], "zz": ["OCC"]},
                                   order=["FM", "OCC", "SV"])
    assert subs == {"FM": [0, 2], "OCC": [0]}
    st = stats.MeanStatistic.from_rows({"m": _rows([0.5, 0.7, 0.9], [0.5, 0.7, 0.9])})
    res = stats.analyze(st, task="vos", official={"m": {"J&F": 0.1}}, subsets=subs, resamples=100)
    assert res["interval"]["m"]["J&F"] is None and not res["consistent"]["m"]["J&F"]
    res = stats.analyze(st, task="vos", official={"m": {"J&F": 0.7}}, subsets=subs, resamples=100)
    assert res["subsets"]["FM"]["point"]["m"] == pytest.approx(0.7)
    assert res["subsets"]["OCC"]["point"]["m"] == pytest.approx(0.5)
    assert res["subsets"]["FM"]["num_sequences"] == 2
