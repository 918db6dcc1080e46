"""T (DAVIS-2016 temporal stability): invariants, step-by-step references restated from the
official code (psimpl Douglas-Peucker, C++ upsampling, Dijkstra), and fixture values from the
official Python steps."""
from __future__ import annotations

import heapq
import json
import math
from pathlib import Path

import numpy as np
import pytest

from vosbench.metrics import tstab

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "metrics"


def _ellipse(H, W, cy, cx, ry, rx):
    yy, xx = np.mgrid[:H, :W]
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1


def test_identical_and_translated_masks_give_zero():
    a = _ellipse(60, 80, 30, 35, 15, 22)
    assert tstab.temporal_stability(a, a) == 0.0
    b = np.roll(np.roll(a, 3, 0), -4, 1)  # shape context is translation invariant
    assert tstab.temporal_stability(a, b) == pytest.approx(0.0, abs=1e-12)
    c = _ellipse(60, 80, 30, 35, 10, 28)
    assert tstab.temporal_stability(a, c) > 0.01


def test_no_contour_is_nan():
    e = np.zeros((20, 20), bool)
    a = _ellipse(20, 20, 10, 10, 5, 6)
    assert math.isnan(tstab.temporal_stability(e, a))
    one = np.zeros((20, 20), bool)
    one[4, 4] = True  # a single pixel: its 4-corner contour is erased (<= 3 points)
    assert tstab.mask_contours(one) == []
    assert math.isnan(tstab.temporal_stability(one, a))
    series = tstab.temporal_stability_series([a, e, a, a])
    assert math.isnan(series[0]) and math.isnan(series[1]) and series[2] == 0.0


def test_contours_with_hole_orientation():
    ring = _ellipse(40, 40, 20, 20, 15, 15) & ~_ellipse(40, 40, 20, 20, 6, 6)
    loops = tstab._trace_loops(ring)
    assert sorted(h for _, h in loops) == [False, True]
    conts = tstab.mask_contours(ring)
    assert len(conts) == 2
    for c in conts:
        assert (c[0] == c[-1]).all()  # closed, first point repeated
    # the outer contour has more vertices and is the one T uses
    assert len(tstab.best_contour(conts)) == max(len(c) for c in conts)
    # a square's corners survive simplification, in pixel-corner coordinates
    sq = np.zeros((10, 10), bool)
    sq[2:6, 3:8] = True
    (c,) = tstab.mask_contours(sq)
    assert {tuple(p) for p in c} == {(3, 2), (8, 2), (8, 6), (3, 6)}


def _dp_reference(pts, tol):
    """psimpl simplify_douglas_peucker<2> restated: radial pre-pass + stack-based DP."""
    tol2 = tol * tol
    n = len(pts)
    if n < 3 or tol == 0:
        return pts
    keep = [0]
    cur = pts[0]
    for i in range(1, n - 1):
        if ((pts[i] - cur) ** 2).sum() < tol2:
            continue
        keep.append(i)
        cur = pts[i]
    keep.append(n - 1)
    red = pts[keep]
    keys = np.zeros(len(red), bool)
    keys[0] = keys[-1] = True
    stack = [(0, len(red) - 1)]
    while stack:
        f, l = stack.pop()
        best_i, best_d = 0, 0.0
        for c in range(f + 1, l):
            s1, s2, p = red[f], red[l], red[c]
            v, w = s2 - s1, p - s1
            cw = float(w @ v)
            cv = float(v @ v)
            if cw <= 0:
                d = float(((p - s1) ** 2).sum())
            elif cv <= cw:
                d = float(((p - s2) ** 2).sum())
            else:
                frac = np.float32(0) if cv == 0 else np.float32(np.float32(cw) / np.float32(cv))
                proj = s1 + float(frac) * v
                d = float(((p - proj) ** 2).sum())
            if d < best_d:
                continue
            best_i, best_d = c, d
        if best_i and tol2 < best_d:
            keys[best_i] = True
            stack.append((best_i, l))
            stack.append((f, best_i))
    return red[keys]


@pytest.mark.parametrize("seed", range(6))
def test_douglas_peucker_matches_psimpl_reference(seed):
    rng = np.random.default_rng(seed)
    mask = rng.random((14, 18)) < 0.55
    mask = np.pad(mask, 2)
    for pts, _ in tstab._trace_loops(mask):
        p = pts.astype(float) * 2
        for tol in (0.1, 3.0):
            np.testing.assert_array_equal(tstab.douglas_peucker(p, tol), _dp_reference(p, tol))
    q = rng.normal(size=(40, 2)) * 10
    np.testing.assert_array_equal(tstab.douglas_peucker(q, 3.0), _dp_reference(q, 3.0))


def _upsample_reference(cont, th=3.0):
    c = np.asarray(cont, np.float32)
    out = [c[0].copy()]
    for i in range(len(c) - 1):
        d = (c[i + 1] - c[i]).astype(np.float32)
        nv = np.float32(np.sqrt(np.float32(d[0] * d[0] + d[1] * d[1])))
        if nv > np.float32(th):
            n = int(math.ceil(float(np.float32(nv / np.float32(th)))))
            cur = out[-1].copy()
            vec = (d / np.float32(n)).astype(np.float32)
            for _ in range(n - 1):
                cur = (cur + vec).astype(np.float32)
                out.append(cur.copy())
        out.append(c[i + 1].copy())
    return np.array(out, np.float32)


def test_upsample_matches_cpp_loop():
    rng = np.random.default_rng(3)
    for _ in range(20):
        c = rng.integers(0, 200, (rng.integers(2, 15), 2))
        np.testing.assert_array_equal(tstab.contour_upsample(c), _upsample_reference(c))


def _dijkstra_reference(cost):
    """Boost-like Dijkstra on the n1 x n2 grid (edges right/down/diagonal, weight = target cost)."""
    n1, n2 = cost.shape
    dist = np.full((n1, n2), np.inf)
    dist[0, 0] = 0.0
    heap = [(0.0, 0, 0)]
    done = np.zeros((n1, n2), bool)
    while heap:
        d, i, j = heapq.heappop(heap)
        if done[i, j]:
            continue
        done[i, j] = True
        for a, b in ((i, j + 1), (i + 1, j), (i + 1, j + 1)):
            if a < n1 and b < n2 and d + cost[a, b] < dist[a, b]:
                dist[a, b] = d + cost[a, b]
                heapq.heappush(heap, (dist[a, b], a, b))
    return dist


def test_match_dtw_distances_equal_dijkstra():
    rng = np.random.default_rng(4)
    for shape in [(1, 1), (1, 5), (6, 1), (7, 9), (12, 10)]:
        c = rng.random(shape)
        pairs, mi, mj = tstab.match_dtw(c)
        dist = _dijkstra_reference(c)
        # the path goes from the destination back to the origin with monotone moves
        assert tuple(pairs[0]) == (shape[0] - 1, shape[1] - 1) and tuple(pairs[-1]) == (0, 0)
        steps = pairs[:-1] - pairs[1:]
        assert ((steps >= 0) & (steps <= 1)).all() and (steps.sum(1) > 0).all()
        # its cost (origin excluded) is the shortest distance
        assert c[pairs[:-1, 0], pairs[:-1, 1]].sum() == pytest.approx(dist[-1, -1], abs=1e-12)
        if len(pairs) > 1:
            on_path = c[pairs[:-1, 0], pairs[:-1, 1]]
            assert c[mi, mj] == on_path.min()


def test_chi2_matches_dense_formula():
    rng = np.random.default_rng(5)
    h1 = rng.integers(0, 4, (30, 60)) * (rng.random((30, 60)) < 0.3)
    h2 = rng.integers(0, 4, (25, 60)) * (rng.random((25, 60)) < 0.3)
    np.testing.assert_allclose(tstab.chi2_cost(h1, h2), tstab._chi2_cost_dense(h1, h2),
                               rtol=0, atol=1e-14)


def test_t_fixture_from_official_python_steps():
    """Per-pair T of the small DAVIS fixture vs values from the official ``sc_compute``,
    ``hist_cost_2`` and ``get_bijective_pairs`` (``make_fixtures.py``)."""
    from PIL import Image
    vals = json.loads((FIX / "official_values.json").read_text())["t_python_steps"]
    root = FIX / "davis_small"
    for seq, expected in vals.items():
        names = sorted(p.name for p in (root / "gt" / "Annotations" / "480p" / seq).glob("*.png"))
        masks = [np.asarray(Image.open(root / "results" / seq / n)) > 0 for n in names[1:-1]]
        got = tstab.temporal_stability_series(masks) * 5.0
        for g, e in zip(got, expected):
            if e is None:
                assert math.isnan(g)
            else:
                assert g == pytest.approx(e, abs=1e-6)
