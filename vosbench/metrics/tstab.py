"""Temporal stability T of the DAVIS-2016 toolkit (fperazzi/davis ``db_eval_t_stab``), in numpy.

The official T is Python glue around C++ (``polycont`` contours, ``psimpl`` Douglas-Peucker,
Boost Dijkstra). This module re-implements every step from that code and gives the toolkit's
values (checked end to end against the compiled toolkit: contours equal, T equal to ~1e-16,
``tests/metrics/test_metric_tstab.py`` and ``benchmarks/metrics_speed.py``):

1. ``_trace_loops`` (polycont ``mask2poly`` + ``lines2jordan`` + ``in_out_check``): the
   boundary is cut into pieces at 4-way junctions (two foreground pixels touching by a
   corner), pieces are walked from the junctions (last junction first; up, left, down,
   right), closed boundaries without a junction start at the top corner of their first
   down edge in row-major order; pieces are regrouped into closed curves the way
   ``lines2jordan`` does (never straight through a junction; the start junction is the one
   ``std::unordered_map::begin()`` gives with libstdc++: the largest id left), and each
   curve is flagged hole or not. Coordinates are pixel corners; the curve starts and ends at
   its junction (``move2junctions``).
2. ``_simplify_loops``: psimpl Douglas-Peucker (radial-distance pre-pass, LIFO split stack,
   ties in the farthest point go to the later point, single-precision projection fraction),
   first with tolerance 0.1 then 3 (doubled coordinates, i.e. 1.5 px); then outer contours
   are made clockwise and holes counter-clockwise, coordinates halved, contours with <= 3
   points dropped.
3. the contour with the most points (ties: the later one) is upsampled so that no segment is
   longer than 3 px (``ceil(len / 3)`` equal pieces, float32 arithmetic as in C++).
4. shape contexts (12 angles x 5 log radii in [1/8, 2], radii normalised by the mean of the
   full distance matrix, own point counted), chi-square costs.
5. cheapest monotone path (moves right / down / diagonal, node cost as the weight of the
   edge entering the node) from (0, 0) to (n1-1, n2-1) with Boost's tie-breaking
   (``match_dtw``); the cost matrix is rolled so that the cheapest node of that path
   (excluding the origin; ties: nearest to the end) comes last, and solved again.
6. bijective pairs (cheapest per row, then per column); T = their mean cost.

Platform note: two choices of the C++ depend on its standard library, not on the algorithm:
the ``unordered_map`` iteration order in ``lines2jordan`` (we follow libstdc++, i.e. Linux
builds) and Boost's heap order on equal-cost paths (replayed exactly by the compiled
``_grid_dijkstra``; without it a numpy solver is used and may pick another tied path).

Speed: where the C++ does O(curves^2) point-in-polygon tests for the hole flags, we derive
them from the mask (``_hole_flags``); only curves long enough to be the longest are
simplified; the chi-square matrix is computed bin by bin (60 passes over an n1 x n2 matrix
instead of the official n1 x n2 x 60 tiles); the path is found by anti-diagonal dynamic
programming and handed to the Boost replay only when the backtrack meets a tie.
"""
from __future__ import annotations


import itertools
import warnings

import numpy as np

try:  # compiled at install (setup.py); replays Boost's tie order, see match_dtw
    from vosbench.metrics import _grid_dijkstra
except ImportError:  # pragma: no cover - depends on the install
    _grid_dijkstra = None

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
# Corner-grid directions: bit flags of the boundary edges incident to a pixel corner.
_DOWN, _UP, _RIGHT, _LEFT = 1, 2, 4, 8
_OPPOSITE = {_DOWN: _UP, _UP: _DOWN, _RIGHT: _LEFT, _LEFT: _RIGHT}
_FLT_EPS = float(np.finfo(np.float32).eps)
_FLT_MAX = float(np.finfo(np.float32).max)


def _corner_bits(m: np.ndarray) -> np.ndarray:
    """Boundary edges of a cropped mask on its (H + 1) x (W + 1) corner grid.

    Returns bits uint8[(H+1)*(W+1)], flat row-major. Corner
    (R, C) is the top-left corner of pixel (R, C); its DOWN edge separates pixels (R, C-1) and
    (R, C), its RIGHT edge pixels (R-1, C) and (R, C).
    """
    H, W = m.shape
    mp = np.pad(m, 1)
    V = (mp[1:-1, :-1] ^ mp[1:-1, 1:]).view(np.uint8)  # [H, W+1]: down edge from (R, C)
    Hz = (mp[:-1, 1:-1] ^ mp[1:, 1:-1]).view(np.uint8)  # [H+1, W]: right edge from (R, C)
    bits = np.zeros((H + 1, W + 1), np.uint8)
    bits[:-1, :] |= V * np.uint8(_DOWN)
    bits[1:, :] |= V * np.uint8(_UP)
    bits[:, :-1] |= Hz * np.uint8(_RIGHT)
    bits[:, 1:] |= Hz * np.uint8(_LEFT)
    return bits.ravel()


def _contour_pieces(bits: np.ndarray, W1: int) -> list[tuple[int, int, list[int]]]:
    """polycont ``mask2poly``: boundary pieces between junctions, in exploration order.

    Junctions are the corners with four boundary edges (two foreground pixels touching by a
    corner), numbered 1.. in row-major order. Pieces start from the junctions taken last
    first, each one's edges in the order up, left, down, right (polycont pushes
    right/down/left/up per junction on a stack), skipping edges already walked; a piece
    follows the boundary until it reaches a junction. Closed boundaries without a junction
    then get an "artificial" junction at the top corner of their first down edge in
    row-major order and are walked from there, going down first.

    Args:
        bits: uint8[(H+1)*(W+1)] from ``_corner_bits``; W1 = W + 1.

    Returns:
        pieces as (orig junction id, end junction id, list of flat corner ids from the origin
        junction to the end junction).
    """
    ids = np.flatnonzero(bits)
    vals = bits[ids]
    rem = dict(zip(ids.tolist(), vals.tolist()))
    junction_pos = ids[vals == 15].tolist()
    junction_id = {c: k + 1 for k, c in enumerate(junction_pos)}
    step = {_DOWN: W1, _UP: -W1, _RIGHT: 1, _LEFT: -1}
    pieces = []

    def walk(start: int, d: int) -> None:
        pts = [start]
        rem[start] &= ~d
        cur = start + step[d]
        rem[cur] &= ~_OPPOSITE[d]
        while cur not in junction_id:
            pts.append(cur)
            d = rem[cur]  # a corner that is not a junction has one edge left: the way on
            rem[cur] = 0
            cur += step[d]
            rem[cur] &= ~_OPPOSITE[d]
        pts.append(cur)
        pieces.append((junction_id[start], junction_id[cur], pts))

    for j in range(len(junction_pos) - 1, -1, -1):
        c = junction_pos[j]
        for d in (_UP, _LEFT, _DOWN, _RIGHT):
            if rem[c] & d:
                walk(c, d)
    for c in ids[(vals & _DOWN) > 0].tolist():
        if rem[c] & _DOWN:
            junction_pos.append(c)
            junction_id[c] = len(junction_pos)
            walk(c, _DOWN)
    return pieces


def _lines_to_jordan(pieces: list, W1: int) -> list[tuple[int, list[int]]]:
    """polycont ``lines2jordan``: group pieces into closed curves, as the C++ does.

    The C++ keeps "pieces left per junction" in a ``std::unordered_map<int, std::set<int>>``
    and starts every new curve at ``begin()``. With libstdc++ (identity hash, at least as many
    buckets as junctions, every key inserted into an empty bucket) ``begin()`` is the most
    recently inserted key still present, i.e. the largest junction id left; we use that
    (other standard libraries may order differently, so the official T is itself
    platform-dependent here). At a junction the next piece is the lowest-numbered one left,
    unless it continues straight on from the piece we arrived by, then the next one.

    Returns:
        curves as (cycle junction id, flat corner ids from that junction around to it again).
    """
    left: dict[int, set[int]] = {}
    for k, (o, e, _) in enumerate(pieces):
        left.setdefault(o, set()).add(k)
        left.setdefault(e, set()).add(k)
    order = sorted(left, reverse=True)
    top = 0

    def other(k, j):
        o, e, _ = pieces[k]
        return e if j == o else o

    def first_edge(k, j):
        """Doubled-coordinate midpoint (X, Y) of piece k's edge at junction j (C++
        ``get_first_next_coord``: the first edge when the piece starts at j)."""
        o, _, pts = pieces[k]
        a, b = (pts[0], pts[1]) if o == j else (pts[-1], pts[-2])
        (ra, ca), (rb, cb) = divmod(a, W1), divmod(b, W1)
        return ra + rb, ca + cb

    def take(k, j):
        s = left[j]
        s.discard(k)
        if not s:
            del left[j]
        e = other(k, j)
        if e in left:
            left[e].discard(k)
            if not left[e]:
                del left[e]

    curves = []

    def close(j, swept, in_swept):
        at = next(i for i, (jj, _) in enumerate(swept) if jj == j)
        pts: list[int] = []
        for jj, k in swept[at:]:  # each piece oriented away from the junction it left
            o, _, p = pieces[k]
            seg = p if o == jj else p[::-1]
            pts.extend(seg[1:] if pts else seg)
            in_swept.discard(jj)
        del swept[at:]
        curves.append((j, pts))
        return swept[-1][1] if swept else -1

    while left:
        while order[top] not in left:
            top += 1
        j = order[top]
        k = min(left[j])
        take(k, j)
        swept, in_swept = [(j, k)], {j}
        nxt = other(k, j)
        if nxt in in_swept:
            close(nxt, swept, in_swept)
        while in_swept:
            j = nxt
            if j not in left:
                raise RuntimeError("polycont lines2jordan: no piece left at a junction")
            cand = sorted(left[j])
            nf, cl = first_edge(cand[0], j), first_edge(k, j)
            k = cand[1] if (nf[0] == cl[0] or nf[1] == cl[1]) else cand[0]
            take(k, j)
            swept.append((j, k))
            in_swept.add(j)
            nxt = other(k, j)
            if nxt in in_swept:
                k = close(nxt, swept, in_swept)
    return curves


def _point_in_poly(px: float, py: float, P: np.ndarray) -> bool:
    """polycont ``is_point_inside``: ray casting towards +X with the C++ float quirks.

    Segments (i, i+1) and the closing one (0, n-1); a point level with a segment end is moved
    up by FLT_EPSILON; slopes are rounded to float. P: float64[n, 2] (X, Y).
    """
    a = np.concatenate([P[:-1], P[:1]])  # segments (P[i], P[i+1]), then (P[0], P[n-1])
    b = np.concatenate([P[1:], P[-1:]])
    swap = a[:, 1] > b[:, 1]
    a2 = np.where(swap[:, None], b, a)
    b2 = np.where(swap[:, None], a, b)
    ax, ay, bx, by = a2[:, 0], a2[:, 1], b2[:, 0], b2[:, 1]
    y = np.where((py == ay) | (py == by), py + _FLT_EPS, py)
    hit = ~((y > by) | (y < ay) | (px > np.maximum(ax, bx)))
    before = px < np.minimum(ax, bx)
    with np.errstate(divide="ignore", invalid="ignore"):
        m_red = np.where(np.abs(ax - bx) > np.finfo(np.float32).tiny,
                         ((by - ay) / (bx - ax)).astype(np.float32), np.float32(_FLT_MAX))
        m_blue = np.where(np.abs(ax - px) > np.finfo(np.float32).tiny,
                          ((y - ay) / (px - ax)).astype(np.float32), np.float32(_FLT_MAX))
    cross = hit & (before | (m_blue >= m_red))
    return bool(np.count_nonzero(cross) % 2)


def _hole_flags_tree(polys: list[np.ndarray]) -> list[bool]:
    """polycont ``in_out_check`` as written: O(curves^2) point-in-curve tests (the reference
    for ``_hole_flags``, used by the tests).

    The nesting tree is built by inserting the curves in order: a curve goes under the first
    child (in id order) that contains its first point, and the children of its insertion node
    whose first points it contains move under it; holes are the curves at even depth (the
    root's children have depth 1). Tests are skipped when the point lies where the ray cannot
    cross the curve (below/above its y range, right of its x range).

    Args:
        polys: per curve float64[n, 2] edge midpoints (X = 2 row, Y = 2 col).
    """
    n = len(polys)
    lo = [p.min(0) for p in polys]
    hi = [p.max(0) for p in polys]
    first = [p[0] for p in polys]

    def inside(i, c):  # first point of curve i inside curve c
        x, y = first[i]
        if y < lo[c][1] or y >= hi[c][1] or x > hi[c][0]:
            return False
        return _point_in_poly(float(x), float(y), polys[c])

    children: list[set[int]] = [set()]
    parent = [-1]
    for cur in range(1, n + 1):
        node = 0
        while True:
            nxt = next((ch for ch in sorted(children[node]) if inside(cur - 1, ch - 1)), None)
            if nxt is None:
                break
            node = nxt
        moved = {ch for ch in children[node] if inside(ch - 1, cur - 1)}
        children.append(moved)
        for ch in moved:
            children[node].discard(ch)
            parent[ch] = cur
        children[node].add(cur)
        parent.append(node)
    depth = [0] * (n + 1)
    stack = [0]
    while stack:
        node = stack.pop()
        for ch in children[node]:
            depth[ch] = depth[node] + 1
            stack.append(ch)
    return [depth[i] % 2 == 0 for i in range(1, n + 1)]


def _trace_loops(mask: np.ndarray) -> list[tuple[np.ndarray, bool]]:
    """polycont ``mask2polycont`` up to simplification: closed corner curves with hole flags.

    Returns:
        list of (int64[n + 1, 2] pixel corners (row, col), first point repeated at the end,
        is_hole), in polycont's order.
    """
    m = np.asarray(mask, dtype=bool)
    rows = np.flatnonzero(m.any(1))
    if rows.size == 0:
        return []
    cols = np.flatnonzero(m.any(0))
    oy, ox = int(rows[0]), int(cols[0])
    m = m[oy:rows[-1] + 1, ox:cols[-1] + 1]
    W1 = m.shape[1] + 1
    curves = _lines_to_jordan(_contour_pieces(_corner_bits(m), W1), W1)
    # all curves converted at once (noisy masks have hundreds of tiny ones)
    sizes = [len(pts) for _, pts in curves]
    flat = np.fromiter(itertools.chain.from_iterable(pts for _, pts in curves), np.int64,
                       sum(sizes))
    rr, cc = np.divmod(flat, W1)
    allc = np.stack([rr + oy, cc + ox], 1)
    starts = np.zeros(len(sizes), np.int64)
    np.cumsum(sizes[:-1], out=starts[1:])
    holes = _hole_flags(allc, starts, m, oy, ox)
    return list(zip(np.split(allc, starts[1:]), holes))


def _hole_flags(allc: np.ndarray, starts: np.ndarray, m: np.ndarray, oy: int, ox: int
                ) -> list[bool]:
    """polycont ``in_out_check`` result, without its O(curves^2) point-in-curve tests.

    The curves are closed, edge-disjoint and never cross (they may touch at corners), and the
    toolkit's ray test is exact for a point that is not on the tested curve (the float quirks
    only matter at the curve's own vertices, and an edge midpoint is never on another
    curve). So the nesting tree it builds is the true containment tree, and a curve is a hole
    (even depth) iff an odd number of other curves contain it. Every pixel is covered by an
    odd number of curves iff it is foreground, and the pixel just inside a curve at one of its
    edges is covered by that curve and by exactly the curves containing it. Hence: hole iff
    that pixel is background. The inside side of the first edge comes from the curve's
    orientation (sign of its shoelace area). ``tests/metrics`` check this against
    ``_hole_flags_tree`` and the toolkit's own output.

    Args:
        allc: int64[N, 2] corners (row, col) of all curves end to end, each curve closed.
        starts: int64[n_curves] index of each curve's first corner in ``allc``.
        m: the cropped mask bool[h, w] whose top-left pixel is (oy, ox).
    """
    if len(starts) == 0:
        return []
    r, c = allc[:, 0], allc[:, 1]
    cross = r[:-1] * c[1:] - r[1:] * c[:-1]  # shoelace terms, across curve joins too
    area2 = np.add.reduceat(cross, starts)
    # drop the join terms (last corner of a curve -> first corner of the next one)
    joins = starts[1:] - 1
    area2[:-1] -= cross[joins]
    r0, c0 = r[starts], c[starts]
    dr, dc = r[starts + 1] - r0, c[starts + 1] - c0
    sign = np.where(area2 > 0, 1, -1)
    nr, nc = -dc * sign, dr * sign  # inward normal of the first edge
    # pixel centre = edge midpoint + half the normal; pixel index = floor of it
    pr = np.floor((2 * r0 + dr + nr) / 2).astype(np.int64) - oy
    pc = np.floor((2 * c0 + dc + nc) / 2).astype(np.int64) - ox
    return (~m[pr, pc]).tolist()


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
    """``douglas_peucker`` of several polylines: compiled (``_grid_dijkstra.simplify``, the
    same operations in C) or numpy with one batched key search."""
    if _grid_dijkstra is not None:
        out = []
        for p in polys:
            if len(p) < 3:
                out.append(p)
                continue
            q = np.ascontiguousarray(p, dtype=np.float64)
            idx = np.frombuffer(_grid_dijkstra.simplify(q, len(q), float(tol)), dtype=np.int64)
            out.append(p[idx])
        return out
    return _douglas_peucker_many_numpy(polys, tol)


def _douglas_peucker_many_numpy(polys: list[np.ndarray], tol: float) -> list[np.ndarray]:
    """``douglas_peucker`` of several polylines with one batched key search (numpy)."""
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
    """``best_contour(mask_contours(mask))``: the simplified contour with the most points.

    Simplification only removes points, so a curve whose traced length is below the best
    simplified length found cannot win: the longest traced curve is simplified first, then
    only the curves at least that long (noisy masks have hundreds of tiny curves).
    """
    loops = _trace_loops(np.asarray(mask).astype(bool))
    if not loops:
        return None
    raw = np.array([len(p) for p, _ in loops])
    top = int(np.argmax(raw))
    simplified = {top: _simplify_loops([loops[top]])[0]}
    floor = len(simplified[top]) if simplified[top] is not None else 0
    rest = [int(i) for i in np.flatnonzero(raw >= floor) if i != top]
    simplified.update(zip(rest, _simplify_loops([loops[i] for i in rest])))
    best = None
    for i in sorted(simplified):  # curve order: ties go to the later curve
        c = simplified[i]
        if c is not None and (best is None or len(best) <= len(c)):
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

    Compiled (``_grid_dijkstra.chi2``): the same terms summed over k in numpy's pairwise order,
    so the toolkit's values bit for bit (a last-bit difference could flip an exact tie in the
    matching path). Without the extension, numpy: histograms are sparse (about a quarter of
    the bins are non-zero) and a zero ``a_k`` makes the term ``b_k^2 / (b_k + eps)`` (and vice
    versa). Per bin, either the rows with
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
    if _grid_dijkstra is not None and a.shape[1] <= 64:  # compiled: the toolkit's bits
        a = np.ascontiguousarray(a, dtype=np.float64)
        b = np.ascontiguousarray(b, dtype=np.float64)
        raw = _grid_dijkstra.chi2(a, n1, b, n2, a.shape[1])
        return np.frombuffer(raw, dtype=np.float64).reshape(n1, n2).copy()
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
    """``match_dijkstra``: cheapest monotone path from (0, 0) to (n1-1, n2-1), the toolkit's.

    Path cost = sum of the costs of the nodes entered (the origin's cost is not counted), moves
    (i, j+1), (i+1, j), (i+1, j+1). Equal-cost paths are common (zero-cost nodes where the two
    contours have identical shape contexts); the toolkit's Boost Dijkstra picks one by the
    order its 4-ary heap pops equal distances. The compiled ``_grid_dijkstra`` replays that
    order, so the path is the toolkit's, ties included. Without it (no C compiler at install)
    ``_match_dtw_numpy`` gives the same cost but may pick another of the tied paths (a
    warning says so once).

    Returns:
        (pairs int64[L, 2] from the destination back to the origin, min_i, min_j) where
        (min_i, min_j) is the cheapest node of the path scanning from the destination, the
        origin excluded, first strict minimum wins (the C++ loop).
    """
    c = np.ascontiguousarray(cost, dtype=np.float64)
    n1, n2 = c.shape
    if _grid_dijkstra is None:
        out = _match_dtw_numpy(c, on_tie="none")
        if out is not None:  # no tie on the path: Boost's path for sure
            return out
        _warn_no_extension()
        return _match_dtw_numpy(c, on_tie="prefer")
    # the DP first (fast); the Boost heap replay only when the backtrack meets a tie
    res = _grid_dijkstra.dp_path(c, n1, n2) or _grid_dijkstra.path(c, n1, n2)
    raw, min_id = res
    ids = np.frombuffer(raw, dtype=np.int64)
    return np.stack(np.divmod(ids, n2), 1), min_id // n2, min_id % n2


_warned = False


def _warn_no_extension() -> None:
    global _warned
    if not _warned:
        _warned = True
        warnings.warn("vosbench.metrics._grid_dijkstra is not built (no C compiler at install "
                      "time?): T uses the numpy path solver, which may resolve equal-cost "
                      "matching paths differently from the DAVIS-2016 toolkit", RuntimeWarning)


def _match_dtw_numpy(cost: np.ndarray, on_tie: str = "prefer"):
    """Cheapest monotone path by anti-diagonal dynamic programming (numpy version of the
    compiled ``dp_path``; ``match_dtw``'s fallback).

    Path cost = sum of the costs of the nodes entered (the origin's cost is not counted), moves
    (i, j+1), (i+1, j), (i+1, j+1). The DP performs the same additions as Dijkstra, so the
    distances are Boost's bit for bit. Boost's predecessor of a node is the first popped of the
    predecessors reaching its distance; the heap pops smaller distances first, so where one
    predecessor has the strictly smallest distance it is Boost's choice. Where several share
    it, only the heap order decides: ``on_tie="none"`` returns None (the caller replays the
    heap), ``"prefer"`` takes the diagonal, then (i-1, j), then (i, j-1).

    Returns:
        as ``match_dtw``, or None (``on_tie="none"`` and a tie on the path).
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
    # backtrack from the destination
    strict = on_tie == "none"
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
            if strict and (d == u <= left or d == left <= u or u == left <= d):
                return None
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
