"""J, F, boundary maps and statistics: hand-computable cases, a from-the-definition reference
(full-image, no cropping) and property tests."""
from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from vosbench.metrics import functional as Fn


def _ref_f(gt, pred, bound_th=0.008):
    """davis2017-evaluation ``f_measure`` restated on the full image (no crop)."""
    r = int(np.ceil(bound_th * np.linalg.norm(gt.shape)))
    bg, bp = Fn.seg2bmap(gt), Fn.seg2bmap(pred)
    se = Fn.disk(r)
    dg = cv2.dilate(bg.astype(np.uint8), se) > 0
    dp = cv2.dilate(bp.astype(np.uint8), se) > 0
    n_fg, n_gt = bp.sum(), bg.sum()
    if n_fg == 0 and n_gt > 0:
        P, R = 1, 0
    elif n_fg > 0 and n_gt == 0:
        P, R = 0, 1
    elif n_fg == 0 and n_gt == 0:
        P, R = 1, 1
    else:
        P, R = (bp & dg).sum() / n_fg, (bg & dp).sum() / n_gt
    return 0.0 if P + R == 0 else 2 * P * R / (P + R)


def _seg2bmap_literal(seg):
    """The official ``_seg2bmap`` statement by statement."""
    seg = seg.astype(bool)
    e = np.zeros_like(seg)
    s = np.zeros_like(seg)
    se = np.zeros_like(seg)
    e[:, :-1] = seg[:, 1:]
    s[:-1, :] = seg[1:, :]
    se[:-1, :-1] = seg[1:, 1:]
    b = seg ^ e | seg ^ s | seg ^ se
    b[-1, :] = seg[-1, :] ^ e[-1, :]
    b[:, -1] = seg[:, -1] ^ s[:, -1]
    b[-1, -1] = 0
    return b


# ------------------------------------------------------------------------ hand-computable
def test_identical_disjoint_overlap_empty():
    a = np.zeros((10, 12), bool)
    a[2:6, 3:8] = True
    assert Fn.jaccard(a, a) == 1.0 and Fn.f_measure(a, a) == 1.0
    b = np.zeros_like(a)
    b[7:9, 9:11] = True
    assert Fn.jaccard(a, b) == 0.0 and Fn.f_measure(a, b) == 0.0
    # known overlap: 1 shared pixel of a 3-pixel union
    x = np.zeros((1, 5), bool)
    y = np.zeros((1, 5), bool)
    x[0, 0:2] = True
    y[0, 1:3] = True
    assert Fn.jaccard(x, y) == pytest.approx(1 / 3, abs=1e-12)
    e = np.zeros_like(a)
    assert Fn.jaccard(e, e) == 1.0 and Fn.f_measure(e, e) == 1.0
    assert Fn.jaccard(a, e) == 0.0 and Fn.jaccard(e, a) == 0.0
    assert Fn.f_measure(a, e) == 0.0 and Fn.f_measure(e, a) == 0.0


def test_void_excluded_from_j():
    g = np.zeros((4, 4), bool)
    p = np.zeros((4, 4), bool)
    g[0, :2] = True
    p[0, 1:3] = True
    void = np.zeros((4, 4), bool)
    void[0, 2] = True  # removes the predicted-only pixel
    assert Fn.jaccard(g, p, void) == pytest.approx(1 / 2)


def test_seg2bmap_one_pixel_and_border():
    m = np.zeros((5, 5), bool)
    m[2, 2] = True
    b = Fn.seg2bmap(m)
    assert set(zip(*np.nonzero(b))) == {(1, 1), (1, 2), (2, 1), (2, 2)}
    full = np.ones((6, 7), bool)
    assert not Fn.seg2bmap(full).any()  # a mask filling the frame has no boundary
    right = np.zeros((6, 7), bool)
    right[1:4, 4:] = True  # touches the right border
    b = Fn.seg2bmap(right)
    # no boundary along the border itself (official quirk): only where the mask starts/ends
    assert not b[1:3, -1].any() and b[0, -1] and b[3, -1]
    assert b[1:3, 3].all()  # the left side, half a pixel towards the origin
    np.testing.assert_array_equal(b, _seg2bmap_literal(right))


def test_one_pixel_objects_f():
    g = np.zeros((30, 40), bool)
    p = np.zeros((30, 40), bool)
    g[10, 10] = True
    p[10, 10] = True
    assert Fn.f_measure(g, p) == 1.0
    p2 = np.zeros_like(p)
    p2[25, 35] = True  # radius is ceil(0.008 * 50) = 1: far away
    assert Fn.f_measure(g, p2) == 0.0
    assert Fn.jaccard(g, p2) == 0.0


def test_radius_and_disk():
    assert Fn.boundary_radius((480, 854)) == 8
    assert Fn.boundary_radius((1080, 1920)) == 18
    disk = pytest.importorskip("skimage.morphology").disk
    np.testing.assert_array_equal(Fn.disk(8), disk(8).astype(np.uint8))
    assert Fn.disk(8).shape == (17, 17)


@pytest.mark.parametrize("shift,perfect", [(18, True), (19, False)])
def test_1080p_radius_18(shift, perfect):
    g = np.zeros((1080, 1920), bool)
    g[300:700, 500:1100] = True
    p = np.roll(g, shift, axis=1)
    f = Fn.f_measure(g, p)
    if perfect:
        assert f == 1.0
    else:
        assert f < 1.0
    assert f == pytest.approx(_ref_f(g, p), abs=1e-12)


def test_f_many_and_torch_input():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    g = rng.random((3, 20, 30)) < 0.3
    p = rng.random((3, 20, 30)) < 0.3
    many = Fn.f_measure_many(g, p)
    assert many.shape == (3,)
    for k in range(3):
        assert many[k] == pytest.approx(_ref_f(g[k], p[k]), abs=1e-12)
    assert Fn.jaccard(torch.from_numpy(g[0]), torch.from_numpy(p[0])) == Fn.jaccard(g[0], p[0])


def test_jaccard_matrix_matches_pairwise():
    rng = np.random.default_rng(1)
    g = rng.integers(0, 4, (15, 17)).astype(np.uint8)
    p = rng.integers(0, 5, (15, 17)).astype(np.uint8)
    M = Fn.jaccard_matrix(g, p, 3, 4)
    for i in range(4):
        for j in range(3):
            assert M[i, j] == pytest.approx(Fn.jaccard(g == j + 1, p == i + 1), abs=1e-12)


# ---------------------------------------------------------------------------- statistics
def test_db_statistics_bins_and_recall():
    x = np.arange(58, dtype=float) / 100
    m, r, d = Fn.db_statistics(x)
    assert m == pytest.approx(x.mean())
    assert d == pytest.approx(x[0:15].mean() - x[43:58].mean())
    assert r == pytest.approx(np.mean(x > 0.5))
    # strict ">": exactly 0.5 is not a success; NaN counts as a miss for recall
    assert Fn.db_statistics(np.array([0.5, 0.6]))[1] == 0.5
    assert Fn.db_statistics(np.array([np.nan, 0.6]))[1] == 0.5
    assert Fn.db_statistics(np.array([np.nan, 0.6]))[0] == pytest.approx(0.6)
    np.testing.assert_array_equal(Fn.decay_bin_ids(58), [0, 14, 29, 43, 57])


def test_uint8_wrap_default_and_fix():
    x = np.linspace(1, 0, 300)
    ids = Fn.decay_bin_ids(300)
    np.testing.assert_array_equal(ids, [0, 75, 150, 224, 299 % 256])
    assert math.isnan(Fn.db_statistics(x)[2])  # official: last bin empty
    fixed = Fn.db_statistics(x, fix_uint8_wrap=True)[2]
    assert fixed == pytest.approx(x[0:76].mean() - x[224:300].mean())
    # below the wrap both agree
    y = np.linspace(1, 0, 200)
    assert Fn.db_statistics(y)[2] == Fn.db_statistics(y, fix_uint8_wrap=True)[2]


# ------------------------------------------------------------------------------ properties
masks = st.integers(1, 24).flatmap(
    lambda h: st.integers(1, 24).flatmap(
        lambda w: st.tuples(arrays(bool, (h, w)), arrays(bool, (h, w)))))


@settings(max_examples=60, deadline=None)
@given(masks)
def test_j_f_symmetric_and_match_reference(pair):
    a, b = pair
    assert Fn.jaccard(a, b) == Fn.jaccard(b, a)
    assert 0.0 <= Fn.jaccard(a, b) <= 1.0
    f = Fn.f_measure(a, b)
    assert f == pytest.approx(Fn.f_measure(b, a), abs=1e-12)
    assert f == pytest.approx(_ref_f(a, b), abs=1e-12)
    np.testing.assert_array_equal(Fn.seg2bmap(a), _seg2bmap_literal(a))
