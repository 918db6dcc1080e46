"""Temporal stability T of the DAVIS-2016 toolkit (fperazzi/davis ``db_eval_t_stab``), in numpy.

The official T is Python glue around C++ (``polycont`` contours, ``psimpl`` Douglas-Peucker,
Boost Dijkstra). This module re-implements every step from that code:

1. ``mask_contours``: pixel-corner contours of the mask, holes included, in doubled
   coordinates (corner (r, c) is (2r, 2c)), traced from the first vertical boundary edge in
   row-major order, going down first, then (at each corner) the first unvisited boundary edge
   in the order down, up, right, left (polycont ``explore_contour``). The closed polyline
   repeats its first point at the end (``move2junctions``).
2. ``simplify``: psimpl Douglas-Peucker (radial-distance pre-pass, LIFO split stack, ties in
   the farthest point go to the later point, single-precision projection fraction), first
   with tolerance 0.1 then 3 (doubled coordinates, i.e. 1.5 px); then outer contours are made
   clockwise and holes counter-clockwise, coordinates halved, contours with <= 3 points
   dropped.
3. the contour with the most points (ties: the later one) is upsampled so that no segment is
   longer than 3 px (``ceil(len / 3)`` equal pieces, float32 arithmetic as in C++).
4. shape contexts (12 angles x 5 log radii in [1/8, 2], radii normalised by the mean of the
   full distance matrix, own point counted), chi-square costs.
5. DTW-like shortest path (moves right / down / diagonal, node cost as the weight of the
   edge entering the node) from (0, 0) to (n1-1, n2-1), solved exactly by dynamic programming
   with the same additions as Dijkstra; the cost matrix is rolled so that the cheapest node of
   that path (excluding the origin; ties: nearest to the end) comes last, and solved again.
6. bijective pairs (cheapest per row, then per column); T = their mean cost.

Known, documented differences to the C++ (could not be compiled here, see the metrics report):
at a 4-way junction (two foreground pixels touching only by a corner) polycont splits the
contour into pieces and regroups them (``lines2jordan``); we keep the foreground
4-connected (turn towards the foreground pixel), which may start the loop elsewhere. When two
predecessors of a node have exactly the same path cost, Boost's heap order decides; we prefer
the diagonal, then the row above, then the column to the left.

Speed: the chi-square matrix is computed bin by bin (60 passes over an n1 x n2 matrix instead
of the official n1 x n2 x 60 tiles) and the shortest path by anti-diagonal sweeps.
"""
from __future__ import annotations


import numpy as np

__all__ = ["temporal_stability", "temporal_stability_series", "contour_descriptor",
           "t_from_descriptors", "mask_contours", "best_contour", "contour_upsample",
           "shape_context", "chi2_cost", "match_dtw", "douglas_peucker"]

_EPS = 2.2204e-16
NBINS_THETA = 12
NBINS_R = 5
R_INNER = 1.0 / 8.0
R_OUTER = 2.0
CONT_TH = 3  # simplification tolerance (doubled coordinates) and upsampling step (pixels)


# ------------------------------------------------------------------------------- contours
_DOWN, _UP, _RIGHT, _LEFT = 1, 2, 4, 8
_OPPOSITE = {_DOWN: _UP, _UP: _DOWN, _RIGHT: _LEFT, _LEFT: _RIGHT}
# 4-way junctions (two fg pixels touching by a corner): the outgoing direction for each
# incoming move, turning towards the fg pixel on the fg side (4-connected foreground).
# Type A: NE and SW foreground; type B: NW and SE foreground.
_TURN_A = {_DOWN: _RIGHT, _UP: _LEFT, _RIGHT: _DOWN, _LEFT: _UP}
_TURN_B = {_DOWN: _LEFT, _UP: _RIGHT, _RIGHT: _UP, _LEFT: _DOWN}


def _trace_loops(mask: np.ndarray) -> list[tuple[np.ndarray, bool]]:
    """Closed pixel-corner loops of ``mask``: (int64[n + 1, 2] corners (row, col), is_hole).

    Corners are numbered row-major on the (H + 1) x (W + 1) grid of the mask's bbox; every
    boundary corner gets a bit set of its incident boundary edges, and loops are followed edge
    by edge in pure Python on those small integers (a few thousand steps per mask).
    """
    m = np.asarray(mask, dtype=bool)
    rows = np.flatnonzero(m.any(1))
    if rows.size == 0:
        return []
    cols = np.flatnonzero(m.any(0))
    oy, ox = int(rows[0]), int(cols[0])
    m = m[oy:rows[-1] + 1, ox:cols[-1] + 1]
    H, W = m.shape
    mp = np.pad(m, 1)
    # V[R, C] (R < H, C <= W): edge between pixels (R, C-1) and (R, C), from corner (R, C) down.
    V = (mp[1:-1, :-1] ^ mp[1:-1, 1:]).view(np.uint8)
    # Hz[R, C] (R <= H, C < W): edge between pixels (R-1, C) and (R, C), from corner (R, C) right.
    Hz = (mp[:-1, 1:-1] ^ mp[1:, 1:-1]).view(np.uint8)
    bits = np.zeros((H + 1, W + 1), np.uint8)
    bits[:-1, :] |= V * np.uint8(_DOWN)
    bits[1:, :] |= V * np.uint8(_UP)
    bits[:, :-1] |= Hz * np.uint8(_RIGHT)
    bits[:, 1:] |= Hz * np.uint8(_LEFT)
    flat = bits.ravel()
    ids = np.flatnonzero(flat)
    vals = flat[ids]
    rem = dict(zip(ids.tolist(), vals.tolist()))
    W1 = W + 1
    junction = {}
    jid = ids[vals == 15]
    if jid.size:
        jr, jc = np.divmod(jid, W1)
        # the pixel NE of corner (jr, jc) is (jr - 1, jc): mp[jr, jc + 1] in padded coordinates
        junction = dict(zip(jid.tolist(), mp[jr, jc + 1].tolist()))
    step = {_DOWN: W1, _UP: -W1, _RIGHT: 1, _LEFT: -1}
    loops = []
    # start at each vertical edge in row-major order (the official artificial-junction scan)
    for c0 in ids[(vals & _DOWN) > 0].tolist():
        if not rem[c0] & _DOWN:
            continue
        pts = [c0]
        rem[c0] &= ~_DOWN
        cur = c0 + W1
        rem[cur] &= ~_UP
        d = _DOWN
        while cur != c0:
            pts.append(cur)
            r = rem[cur]
            if r & (r - 1):  # several open edges: a 4-way junction reached the first time
                d = (_TURN_A if junction[cur] else _TURN_B)[d]
            else:
                d = r
            rem[cur] = r & ~d
            cur += step[d]
            rem[cur] &= ~_OPPOSITE[d]
        pts.append(c0)
        R0, C0 = divmod(c0, W1)
        # the first edge of a loop in the row-major scan is the left side of the top-left pixel
        # of the region it encloses: fg east of it -> outer boundary, bg -> hole
        is_hole = not bool(mp[R0 + 1, C0 + 1])
        rr, cc = np.divmod(np.asarray(pts, dtype=np.int64), W1)
        loops.append((np.stack([rr + oy, cc + ox], 1), is_hole))
    return loops


def _radial(pts: np.ndarray, tol2: float) -> np.ndarray:
    """psimpl RadialDistance: drop points closer than tol to the last kept key."""
    n = len(pts)
    if n < 3:
        return pts
    xy = pts.tolist()
    keep = [0]
    cx, cy = xy[0]
    for i in range(1, n - 1):
        x, y = xy[i]
        dx, dy = x - cx, y - cy
        if dx * dx + dy * dy < tol2:
            continue
        keep.append(i)
        cx, cy = x, y
    keep.append(n - 1)
    return pts[keep]


def _seg_dist2(s1x, s1y, s2x, s2y, px, py) -> np.ndarray:
    """psimpl ``segment_distance2`` of points p to segments (s1, s2), elementwise (float64[k]).

    The projection fraction is computed in single precision, as psimpl does.
    """
    vx, vy = s2x - s1x, s2y - s1y
    wx, wy = px - s1x, py - s1y
    cw = wx * vx + wy * vy
    cv = vx * vx + vy * vy
    d_s1 = wx * wx + wy * wy
    ex, ey = px - s2x, py - s2y
    d_s2 = ex * ex + ey * ey
    zero = cv == 0
    frac = (cw.astype(np.float32) / np.where(zero, 1.0, cv).astype(np.float32))
    frac = np.where(zero, np.float32(0), frac).astype(np.float64)
    qx, qy = px - (s1x + frac * vx), py - (s1y + frac * vy)
    d_in = qx * qx + qy * qy
    return np.where(cw <= 0, d_s1, np.where(cv <= cw, d_s2, d_in))


def _dp_keys(X: np.ndarray, Y: np.ndarray, first: np.ndarray, last: np.ndarray,
             tol2: float) -> np.ndarray:
    """Douglas-Peucker keys of several polylines stored end to end in (X, Y).

    Polyline j spans points ``first[j]..last[j]`` (both kept). A sub-polyline is split at its
    farthest interior point (psimpl ``segment_distance2``; ties: the later point) when that
    squared distance exceeds ``tol2``. Sub-polylines are independent, so every open one is
    processed at once, level by level (same keys as psimpl's LIFO stack, fewer numpy calls).

    Returns:
        bool[len(X)] key flags.
    """
    keys = np.zeros(len(X), bool)
    keys[first] = True
    keys[last] = True
    first, last = np.asarray(first), np.asarray(last)
    while first.size:
        inner = last - first - 1
        ok = inner > 0
        if not ok.all():
            first, last, inner = first[ok], last[ok], inner[ok]
            if first.size == 0:
                break
        # every interior point of every open sub-polyline, segment by segment
        seg = np.repeat(np.arange(first.size), inner)
        starts = np.zeros(first.size, np.int64)
        np.cumsum(inner[:-1], out=starts[1:])
        pos = np.arange(seg.size) + (first + 1 - starts)[seg]
        f, l = first[seg], last[seg]
        d2 = _seg_dist2(X[f], Y[f], X[l], Y[l], X[pos], Y[pos])
        best = np.maximum.reduceat(d2, starts)
        # the last point reaching the maximum (psimpl keeps updating on ">=")
        key = np.maximum.reduceat(np.where(d2 == best[seg], pos, -1), starts)
        split = best > tol2
        if not split.any():
            break
        k = key[split]
        keys[k] = True
        first = np.concatenate([first[split], k])
        last = np.concatenate([k, last[split]])
    return keys


def douglas_peucker(pts: np.ndarray, tol: float) -> np.ndarray:
    """psimpl ``simplify_douglas_peucker<2>`` on float64[n, 2] points.

    A radial-distance pre-pass (drop points closer than ``tol`` to the last kept one), then
    Douglas-Peucker keys (``_dp_keys``).
    """
    return _douglas_peucker_many([pts], tol)[0]


def _douglas_peucker_many(polys: list[np.ndarray], tol: float) -> list[np.ndarray]:
    """``douglas_peucker`` of several polylines with one batched key search."""
    tol2 = tol * tol
    out: list[np.ndarray | None] = [None] * len(polys)
    red = []
    for i, p in enumerate(polys):
        if len(p) < 3 or tol == 0:
            out[i] = p
        else:
            red.append((i, _radial(p, tol2)))
    if red:
        allp = np.concatenate([r for _, r in red])
        sizes = np.array([len(r) for _, r in red])
        ends = np.cumsum(sizes)
        starts = ends - sizes
        keys = _dp_keys(np.ascontiguousarray(allp[:, 0]), np.ascontiguousarray(allp[:, 1]),
                        starts, ends - 1, tol2)
        for (i, r), s, e in zip(red, starts, ends):
            out[i] = r[keys[s:e]]
    return out


def _is_clockwise(p: np.ndarray) -> bool:
    total = np.float32(0.0)
    n = len(p)
    for i in range(n):
        j = (i + 1) % n
        total = np.float32(total + np.float32((p[j, 0] - p[i, 0]) * (p[j, 1] + p[i, 1])))
    return bool(total > 0)


def _orient_and_halve(p: np.ndarray, is_hole: bool) -> np.ndarray | None:
    """polycont clockwise_sort, division by 2 and erasure of contours of <= 3 points."""
    cw = _is_clockwise(p)
    if (not is_hole and not cw) or (is_hole and cw):
        p = p[::-1]
    p = p.astype(np.int64) // 2
    if len(p) <= 3:  # polycont erases 'single pixels'
        return None
    return np.ascontiguousarray(p[:, ::-1])  # (Y=col, X=row) as the python wrapper returns


def _simplify_loops(loops: list[tuple[np.ndarray, bool]]) -> list[np.ndarray | None]:
    """polycont ``simplify`` (tolerance 0.1 then 3, doubled coordinates) of traced loops."""
    polys = [pts.astype(np.float64) * 2 for pts, _ in loops]  # doubled (X=row, Y=col)
    polys = _douglas_peucker_many(polys, 0.1)
    polys = _douglas_peucker_many(polys, float(CONT_TH))
    return [_orient_and_halve(p, h) for p, (_, h) in zip(polys, loops)]


def mask_contours(mask) -> list[np.ndarray]:
    """polycont ``mask2poly(mask, 3)``: simplified pixel-corner contours of a mask.

    Args:
        mask: bool[H, W].

    Returns:
        list of int64[n, 2] closed contours in pixel-corner coordinates as (x=col, y=row), the
        first point repeated at the end; outer contours clockwise, holes counter-clockwise
        (polycont convention in (row, col)); contours with <= 3 points are dropped.
    """
    loops = _trace_loops(np.asarray(mask).astype(bool))
    return [c for c in _simplify_loops(loops) if c is not None]


def best_mask_contour(mask) -> np.ndarray | None:
    """``best_contour(mask_contours(mask))``: the simplified contour with the most points."""
    best = None
    for c in mask_contours(mask):
        if best is None or len(best) <= len(c):  # ties: the later contour
            best = c
    return best


def best_contour(contours: list[np.ndarray]) -> np.ndarray:
    """``get_longest_cont``: the contour with the most points (ties: the later one)."""
    best, best_n = None, 0
    for c in contours:
        if best_n <= len(c):
            best, best_n = c, len(c)
    return best


def contour_upsample(cont: np.ndarray, cont_th: float = CONT_TH) -> np.ndarray:
    """Insert points so that no segment exceeds ``cont_th`` px (float32 as the C++).

    A segment longer than ``cont_th`` gets ``ceil(len / cont_th) - 1`` points, accumulated as
    ``p += step`` in single precision (the C++ loop); all segments advance together.

    Args:
        cont: int/float[n, 2] contour.

    Returns:
        float32[m, 2] upsampled contour (original points kept, in order).
    """
    c = np.asarray(cont, dtype=np.float32)
    n = len(c)
    if n < 2:
        return c.copy()
    th = np.float32(cont_th)
    d = c[1:] - c[:-1]  # float32
    nv = np.sqrt(d[:, 0] * d[:, 0] + d[:, 1] * d[:, 1])
    n_segm = np.where(nv > th, np.ceil(nv / th), 1).astype(np.int64)
    # output layout: c[0], then per segment (n_segm - 1) inserted points and c[i + 1]
    counts = n_segm  # inserted + endpoint
    offs = np.zeros(n, np.int64)
    np.cumsum(counts, out=offs[1:])
    out = np.empty((offs[-1] + 1, 2), np.float32)
    out[0] = c[0]
    out[offs[1:]] = c[1:]
    multi = np.flatnonzero(n_segm > 1)
    if multi.size:
        vec = (d[multi] / n_segm[multi, None].astype(np.float32)).astype(np.float32)
        cur = c[multi].copy()
        for j in range(1, int(n_segm[multi].max())):
            act = n_segm[multi] > j
            cur[act] = cur[act] + vec[act]
            out[offs[multi[act]] + j] = cur[act]
    return out


# --------------------------------------------------------------------------- shape context
def shape_context(points: np.ndarray) -> np.ndarray:
    """Shape-context histograms (official ``sc_compute`` with no rotation, all points inside).

    12 angle x 5 log-radius bins; radii normalised by the mean of the full distance matrix
    (diagonal zeros included); a point's own zero distance lands in the innermost ring, angle
    bin 0; points at normalised radius >= 2 are not counted. Same floating-point operations as
    the official code where a bin decision depends on them (``r_n < edge``; the angle
    ``fmod(fmod(theta, 2pi) + 2pi, 2pi)`` is computed exactly with a compare and a subtraction).

    Args:
        points: float[n, 2] (x, y).

    Returns:
        int64[n, 60] counts, bin ``(r_bin - 1) * 12 + (theta_bin - 1)`` as the official
        ``Sn.T.ravel()`` layout, r_bin 5 being the innermost ring.
    """
    P = np.asarray(points, dtype=np.float64)
    n = len(P)
    dx = P[None, :, 0] - P[:, None, 0]  # [n, m] = x_m - x_n
    dy = P[None, :, 1] - P[:, None, 1]
    r = np.sqrt(dx * dx + dy * dy)
    theta = np.arctan2(dy, dx)
    r /= np.mean(r)
    edges = np.logspace(np.log10(R_INNER), np.log10(R_OUTER), NBINS_R)
    # number of edges strictly above r_n (the official sum of ``r_n < edge``)
    r_q = NBINS_R - np.searchsorted(edges, r, side="right")
    two_pi = 2 * np.pi
    # |theta| <= pi, so fmod(theta, 2pi) == theta and fmod(t, 2pi) for t = theta + 2pi in
    # [pi, 3pi] is t or t - 2pi, both exact (Sterbenz): identical to the official fmods.
    theta += two_pi
    theta -= np.where(theta >= two_pi, two_pi, 0.0)
    theta_q = np.floor(theta / (two_pi / NBINS_THETA)).astype(np.int64)  # official q - 1
    nb = NBINS_THETA * NBINS_R
    ids = np.where(r_q > 0, (r_q - 1) * NBINS_THETA + theta_q, nb)  # nb = "not counted"
    ids += (np.arange(n) * (nb + 1))[:, None]
    return np.bincount(ids.ravel(), minlength=n * (nb + 1)).reshape(n, nb + 1)[:, :nb]


def chi2_cost(h1: np.ndarray, h2: np.ndarray) -> np.ndarray:
    """``hist_cost_2``: ``0.5 * sum_k (a_k - b_k)^2 / (a_k + b_k + eps)`` of normalised histograms.

    Histograms are sparse (about a quarter of the bins are non-zero) and a zero ``a_k`` makes
    the term ``b_k^2 / (b_k + eps)`` (and vice versa). Per bin, either the rows with
    ``a_k > 0`` are computed densely against every column and the other rows get the column
    term, or the same with the roles swapped, whichever is less work; the "other rows/columns"
    parts of all bins are two matrix products. Same terms as the official code; only the order
    of the floating-point additions differs (~1e-16).

    Args:
        h1: int[n1, K], h2: int[n2, K].

    Returns:
        float64[n1, n2].
    """
    a = h1 / (np.sum(h1, axis=1, keepdims=True) + _EPS)
    b = h2 / (np.sum(h2, axis=1, keepdims=True) + _EPS)
    n1, n2 = len(a), len(b)
    nz_a, nz_b = a > 0, b > 0
    rowmode = nz_a.sum(0) * n2 <= nz_b.sum(0) * n1  # dense work |I_k| x n2 vs n1 x |J_k|
    fa = np.where(nz_a, a * a / (a + _EPS), 0.0)
    fb = np.where(nz_b, b * b / (b + _EPS), 0.0)
    out = (~nz_a & rowmode).astype(np.float64) @ fb.T
    out += fa @ (~nz_b & ~rowmode).astype(np.float64).T
    out_t = np.zeros((n2, n1))
    for k in range(a.shape[1]):
        if rowmode[k]:
            idx = np.flatnonzero(nz_a[:, k])
            x, y, acc = a[idx, k][:, None], b[None, :, k], out
        else:
            idx = np.flatnonzero(nz_b[:, k])
            x, y, acc = b[idx, k][:, None], a[None, :, k], out_t
        if idx.size == 0:
            continue
        d = x - y
        d *= d
        d /= x + y + _EPS
        acc[idx] += d
    out += out_t.T
    out *= 0.5
    return out


def _chi2_cost_dense(h1: np.ndarray, h2: np.ndarray) -> np.ndarray:
    """Reference: the official tile-based ``hist_cost_2`` (for tests)."""
    a = h1 / (np.sum(h1, axis=1, keepdims=True) + _EPS)
    b = h2 / (np.sum(h2, axis=1, keepdims=True) + _EPS)
    t1 = a[:, None, :]
    t2 = b[None, :, :]
    return 0.5 * np.sum((t1 - t2) ** 2 / (t1 + t2 + _EPS), axis=2)


def match_dtw(cost: np.ndarray) -> tuple[np.ndarray, int, int]:
    """``match_dijkstra``: cheapest monotone path from (0, 0) to (n1-1, n2-1).

    Path cost = sum of the costs of the nodes entered (the origin's cost is not counted), moves
    (i, j+1), (i+1, j), (i+1, j+1); solved by an anti-diagonal DP that performs the same
    additions as Dijkstra (so the same distances bit for bit).

    Returns:
        (pairs int64[L, 2] from the destination back to the origin, min_i, min_j) where
        (min_i, min_j) is the cheapest node of the path scanning from the destination, the
        origin excluded, first strict minimum wins (the C++ loop).
    """
    c = np.ascontiguousarray(cost, dtype=np.float64)
    n1, n2 = c.shape
    W = n2 + 1
    D = np.full((n1 + 1) * W, np.inf)
    cp = np.zeros((n1 + 1) * W)
    cp.reshape(n1 + 1, W)[1:, 1:] = c
    D[W + 1] = 0.0
    # Node (i, j) lives at flat (i+1)*W + (j+1); an anti-diagonal s = i + j is a slice of step
    # W - 1 = n2, and its predecessors are the same slice shifted by -W-1, -W, -1.
    for s in range(1, n1 + n2 - 1):
        i_lo = max(0, s - (n2 - 1))
        i_hi = min(s, n1 - 1)
        start = (i_lo + 1) * W + (s - i_lo + 1)
        stop = (i_hi + 1) * W + (s - i_hi + 1) + 1
        sl = slice(start, stop, n2)
        best = np.minimum(D[start - W - 1:stop - W - 1:n2], D[start - W:stop - W:n2])
        np.minimum(best, D[start - 1:stop - 1:n2], out=best)
        D[sl] = best + cp[sl]
    # backtrack from the destination; among tied predecessors prefer the diagonal, then
    # (i-1, j), then (i, j-1)
    i, j = n1 - 1, n2 - 1
    path = [(i, j)]
    min_cost = np.inf
    min_ij = (i, j)
    Di = D.item
    ci = c.item
    while i or j:
        cc = ci(i * n2 + j)
        if cc < min_cost:  # first strict minimum from the destination (origin excluded)
            min_cost = cc
            min_ij = (i, j)
        if i and j:
            base = (i + 1) * W + (j + 1)
            d, u, left = Di(base - W - 1), Di(base - W), Di(base - 1)
            if d <= u and d <= left:
                i -= 1
                j -= 1
            elif u <= left:
                i -= 1
            else:
                j -= 1
        elif i:
            i -= 1
        else:
            j -= 1
        path.append((i, j))
    return np.asarray(path, dtype=np.int64), min_ij[0], min_ij[1]


def _bijective(pairs: np.ndarray, cost: np.ndarray) -> np.ndarray:
    """``get_bijective_pairs``: the cheapest pair per row id, then per column id.

    Within a group the first minimum in the current pair order wins (``np.argmin``); the result
    of each stage is ordered by the group id (``np.unique``).
    """
    def one_dim(p, cm, lr):
        c = cm[p[:, lr], p[:, 1 - lr]]
        order = np.lexsort((np.arange(len(p)), c, p[:, lr]))
        g = p[order, lr]
        first = np.r_[True, g[1:] != g[:-1]]
        return p[order[first]]

    p = one_dim(pairs, cost, 0)
    return one_dim(p, cost.T, 1)


def contour_descriptor(mask) -> tuple[np.ndarray, np.ndarray] | None:
    """What T needs of one mask: (upsampled contour float32[n, 2], shape contexts int[n, 60]).

    None when the mask has no contour (empty, or only contours of <= 3 points). Computing it
    once per frame lets a series reuse it for both pairs the frame belongs to.
    """
    if hasattr(mask, "detach"):
        mask = mask.detach().cpu().numpy()
    cont = best_mask_contour(mask)
    if cont is None:
        return None
    up = contour_upsample(cont)
    return up, shape_context(up)


def t_from_descriptors(d1, d2) -> float:
    """T (not x5) from two ``contour_descriptor`` results; NaN if either is None."""
    if d1 is None or d2 is None:
        return float("nan")
    cost = chi2_cost(d1[1], d2[1])
    _, sx, sy = match_dtw(cost)
    cost2 = np.roll(cost, -(sy + 1), axis=1)
    cost2 = np.roll(cost2, -(sx + 1), axis=0)
    pairs, _, _ = match_dtw(cost2)
    pairs = pairs.copy()
    pairs[:, 0] = np.mod(pairs[:, 0] + sx + 1, cost.shape[0])
    pairs[:, 1] = np.mod(pairs[:, 1] + sy + 1, cost.shape[1])
    pairs = _bijective(pairs, cost)
    return float(np.average(cost[pairs[:, 0], pairs[:, 1]]))


def temporal_stability(mask_a, mask_b) -> float:
    """T between two consecutive predicted masks (official ``db_eval_t_stab``, NOT x5).

    Args:
        mask_a: bool[H, W] mask at frame t.
        mask_b: bool[H, W] mask at frame t+1.

    Returns:
        The mean matching cost (multiply by 5 for the DAVIS-2016 reported value), NaN when
        either mask has no contour (empty mask, or only contours of <= 3 points).
    """
    return t_from_descriptors(contour_descriptor(mask_a), contour_descriptor(mask_b))


def temporal_stability_series(masks) -> np.ndarray:
    """T (not x5) of each consecutive pair of an iterable of bool[H, W] masks -> float64[n-1].

    Each mask's descriptor is computed once (a frame belongs to two pairs).
    """
    out = []
    prev = None
    for t, m in enumerate(masks):
        d = contour_descriptor(m)
        if t > 0:
            out.append(t_from_descriptors(prev, d))
        prev = d
    return np.asarray(out, dtype=np.float64)
