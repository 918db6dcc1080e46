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


def test_douglas_peucker_compiled_equals_numpy():
    """The C and numpy Douglas-Peucker keep the same points (both restate psimpl)."""
    if tstab._grid_dijkstra is None:
        pytest.skip("extension not built (see test_grid_dijkstra_extension_is_built)")
    rng = np.random.default_rng(12)
    polys = [rng.normal(size=(int(rng.integers(2, 200)), 2)) * rng.uniform(1, 30)
             for _ in range(40)]
    polys += [pts.astype(float) * 2 for pts, _ in tstab._trace_loops(rng.random((30, 40)) < 0.5)]
    for tol in (0.1, 3.0):
        for a, b in zip(tstab._douglas_peucker_many(polys, tol),
                        tstab._douglas_peucker_many_numpy(polys, tol)):
            np.testing.assert_array_equal(a, b)


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
    """The toolkit's formula (``hist_cost_2``: tiles, sum over the last axis): bit for bit
    when compiled, to 1e-14 with the numpy fallback."""
    rng = np.random.default_rng(5)
    h1 = rng.integers(0, 4, (30, 60)) * (rng.random((30, 60)) < 0.3)
    h2 = rng.integers(0, 4, (25, 60)) * (rng.random((25, 60)) < 0.3)
    h2[:10] = h1[:10]  # identical rows: exact zero costs
    ref = tstab._chi2_cost_dense(h1, h2)
    got = tstab.chi2_cost(h1, h2)
    if tstab._grid_dijkstra is not None:
        np.testing.assert_array_equal(got, ref)
        assert (np.diag(got[:10, :10]) == 0).all()
    else:
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-14)


def _official():
    return json.loads((FIX / "official_values.json").read_text())


def test_t_fixture_from_official_toolkit():
    """Per-pair T (x5) of the small DAVIS fixture vs the DAVIS-2016 toolkit end to end (its C++
    contours and Dijkstra, its Python shape contexts; ``make_fixtures.py``)."""
    from PIL import Image
    vals = _official()["t_official"]
    root = FIX / "davis_small"
    assert len(vals) == 3
    for seq, expected in vals.items():
        names = sorted(p.name for p in (root / "gt" / "Annotations" / "480p" / seq).glob("*.png"))
        masks = [np.asarray(Image.open(root / "results" / seq / n)) > 0 for n in names[1:-1]]
        got = tstab.temporal_stability_series(masks) * 5.0
        assert len(got) == len(expected)
        for g, e in zip(got, expected):
            if e is None:
                assert math.isnan(g)
            else:
                assert g == pytest.approx(e, abs=1e-9)


def test_t_real_davis_pairs_match_official(davis_mini):
    """Real DAVIS-2016 annotation pairs, as annotated and perturbed (junctions, holes, specks),
    against the toolkit's ``db_eval_t_stab``."""
    from vosbench.metrics.testing import t_fixture_pairs
    expected = _official()["t_official_davis2016_mini"]
    pairs = t_fixture_pairs(davis_mini)
    assert sorted(n for n, _, _ in pairs) == sorted(expected)
    for name, a, b in pairs:
        got = tstab.temporal_stability(a, b)
        if expected[name] is None:
            assert math.isnan(got), name
        else:
            assert got == pytest.approx(expected[name], abs=1e-9), name


def test_contours_match_polycont():
    """``mask_contours`` equals the toolkit's ``mask2poly(mask, 3).contour_coords``: same
    curves, same order, same start points and directions (junction cases included)."""
    cases = _official()["polycont_official"]
    assert len(cases) >= 30
    n_nonempty = 0
    for case in cases:
        m = np.array([[ch == "1" for ch in row] for row in case["mask"]])
        got = [c.tolist() for c in tstab.mask_contours(m)]
        assert got == case["contours"], case["mask"]
        n_nonempty += bool(got)
    assert n_nonempty >= 20


@pytest.mark.parametrize("seed", range(4))
def test_hole_flags_equal_polycont_in_out_check(seed):
    """The O(n) hole rule equals the toolkit's O(n^2) nesting tree (restated as
    ``_hole_flags_tree``) on masks with nested rings, specks and diagonal junctions."""
    rng = np.random.default_rng(seed)
    m = np.zeros((40, 48), bool)
    for r in (18, 14, 10, 6, 3):  # nested rings -> holes at several depths
        m ^= _ellipse(40, 48, 20, 24, r, r + 2)
    m ^= rng.random(m.shape) < 0.08
    loops = tstab._trace_loops(m)
    assert len(loops) > 20 and any(h for _, h in loops)
    mids = [np.stack([c[:-1, 0] + c[1:, 0], c[:-1, 1] + c[1:, 1]], 1).astype(float)
            for c, _ in loops]
    assert [h for _, h in loops] == tstab._hole_flags_tree(mids)


def _boost_dijkstra_path(cost):
    """boost::dijkstra_shortest_paths on the toolkit's grid graph, replayed in Python: 4-ary
    indirect heap (sift up / down on strict <), breadth-first visit (white target: relax then
    push; gray target: relax then sift up), out-edges right, down, diagonal."""
    n1, n2 = cost.shape
    N = n1 * n2
    c = cost.ravel().tolist()
    dist, pred, color = [math.inf] * N, list(range(N)), [0] * N
    heap, pos = [], [-1] * N

    def up(i):
        v = heap[i]
        while i:
            p = (i - 1) // 4
            if not dist[v] < dist[heap[p]]:
                break
            heap[i] = heap[p]
            pos[heap[i]] = i
            i = p
        heap[i] = v
        pos[v] = i

    def down():
        i, v, n = 0, heap[0], len(heap)
        while i * 4 + 1 < n:
            f = i * 4 + 1
            best = min(range(f, min(f + 4, n)), key=lambda k: (dist[heap[k]], k))
            if not dist[heap[best]] < dist[v]:
                break
            heap[i], heap[best] = heap[best], v
            pos[heap[i]], pos[v] = i, best
            i = best

    dist[0], color[0] = 0.0, 1
    heap.append(0)
    while heap:
        u = heap[0]
        last = heap.pop()
        if heap:
            heap[0] = last
            pos[last] = 0
            down()
        a, b = divmod(u, n2)
        outs = ([u + 1] if b + 1 < n2 else []) + ([u + n2] if a + 1 < n1 else []) + \
               ([u + n2 + 1] if a + 1 < n1 and b + 1 < n2 else [])
        for v in outs:
            nd = dist[u] + c[v]
            if color[v] == 0:
                if nd < dist[v]:
                    dist[v], pred[v] = nd, u
                color[v] = 1
                heap.append(v)
                up(len(heap) - 1)
            elif color[v] == 1 and nd < dist[v]:
                dist[v], pred[v] = nd, u
                up(pos[v])
        color[u] = 2
    path, cur = [], N - 1
    while cur:
        path.append(divmod(cur, n2))
        cur = pred[cur]
    path.append((0, 0))
    return np.array(path, dtype=np.int64)


def test_grid_dijkstra_extension_is_built():
    assert tstab._grid_dijkstra is not None, (
        "vosbench.metrics._grid_dijkstra is not compiled: `pip install -e .` builds it (needs a "
        "C compiler); without it T may resolve tied paths differently from the toolkit")


@pytest.mark.parametrize("kind", ["integers", "sparse", "rounded"])
def test_match_dtw_resolves_ties_like_boost(kind):
    """Cost grids full of exact ties (zero costs, repeated values): the path is Boost's."""
    if tstab._grid_dijkstra is None:
        pytest.skip("extension not built (see test_grid_dijkstra_extension_is_built)")
    rng = np.random.default_rng(["integers", "sparse", "rounded"].index(kind))
    n_tied = 0
    for _ in range(60):
        n1, n2 = (int(x) for x in rng.integers(1, 30, 2))
        if kind == "integers":
            c = rng.integers(0, 3, (n1, n2)).astype(float)
        elif kind == "sparse":
            c = rng.random((n1, n2)) * (rng.random((n1, n2)) < 0.5)
        else:
            c = np.round(rng.random((n1, n2)), 1)
        ref = _boost_dijkstra_path(c)
        pairs, mi, mj = tstab.match_dtw(c)
        np.testing.assert_array_equal(pairs, ref)
        n_tied += tstab._match_dtw_numpy(c, on_tie="none") is None
        if len(ref) > 1:  # cheapest node from the destination, origin excluded, first minimum
            on = c[ref[:-1, 0], ref[:-1, 1]]
            k = int(np.argmin(on))
            assert (mi, mj) == tuple(ref[k])
    assert n_tied > 10  # the cases really had ties on the path


def test_match_dtw_fast_path_without_ties():
    """Continuous costs: no tie, the numpy DP answers and equals Boost's path."""
    rng = np.random.default_rng(9)
    for shape in [(1, 1), (1, 7), (9, 1), (23, 17)]:
        c = rng.random(shape)
        fast = tstab._match_dtw_numpy(c, on_tie="none")
        assert fast is not None
        np.testing.assert_array_equal(fast[0], _boost_dijkstra_path(c))


def test_numpy_fallback_without_extension(monkeypatch):
    """Without the compiled module (no C compiler at install) T still runs: same contours,
    chi-square to 1e-14, and a warning once a tie has to be broken without Boost's order."""
    a = _ellipse(60, 80, 30, 35, 15, 22)
    b = _ellipse(60, 80, 31, 36, 14, 23) ^ _ellipse(60, 80, 31, 36, 4, 5)
    compiled = (tstab.mask_contours(a), tstab.temporal_stability(a, b))
    monkeypatch.setattr(tstab, "_grid_dijkstra", None)
    monkeypatch.setattr(tstab, "_warned", False)
    assert [c.tolist() for c in tstab.mask_contours(a)] == [c.tolist() for c in compiled[0]]
    assert tstab.temporal_stability(a, b) == pytest.approx(compiled[1], abs=1e-6)
    with pytest.warns(RuntimeWarning, match="_grid_dijkstra is not built"):
        tstab.match_dtw(np.zeros((5, 6)))  # all ties
