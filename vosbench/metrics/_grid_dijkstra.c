/*
 * Shortest monotone path on an n1 x n2 cost grid, visiting vertices in the same order as
 * boost::dijkstra_shortest_paths does for the DAVIS-2016 toolkit's match_dijkstra, so that
 * equal-cost paths are resolved the same way.
 *
 * Why C: the path is unique up to ties, and ties are common in T (zero-cost nodes where two
 * contours have identical shape contexts). Boost resolves them by the order in which its
 * 4-ary heap pops equal distances, which only a step-by-step replay of the heap reproduces;
 * replaying ~10^5-10^6 heap operations per frame pair is too slow in Python.
 *
 * Behaviour replayed (Boost.Graph, written here from its documented algorithm):
 *  - graph: vertex (i, j) = i * n2 + j; out-edges of a vertex in the order (i, j+1), (i+1, j),
 *    (i+1, j+1) (the order in which the toolkit adds them to its std::list edge list);
 *    weight of an edge = cost of its target vertex;
 *  - breadth-first visit with a 4-ary indirect min-heap: pop the top; for each out-edge, a
 *    white target is relaxed, coloured gray and pushed; a gray target is relaxed and, if its
 *    distance decreased, sifted up; the popped vertex is coloured black;
 *  - relax: d[u] + w < d[v] (strict) sets d[v] and pred[v] = u;
 *  - push: append and sift up while strictly smaller than the parent; pop: move the last
 *    element to the root and sift down, swapping with the smallest child (first one among
 *    equal children) while it is strictly smaller.
 *
 * Python API (used by vosbench.metrics.tstab, which also has numpy versions of each):
 *   path(cost: C-contiguous float64 buffer, n1, n2) -> (bytes, min_id)
 *     bytes: int64 vertex ids from (n1-1, n2-1) back to (0, 0);
 *     min_id: the cheapest vertex of that path scanning from the destination, the origin
 *     excluded, first strict minimum (as the toolkit's loop).
 *   dp_path(cost, n1, n2) -> (bytes, min_id) or None
 *     the same path from dynamic programming (same additions as Dijkstra, so the same
 *     distances); None when, backtracking, two predecessors share the smallest distance, i.e.
 *     where only the heap order decides (then call path()).
 *   chi2(a: float64 buffer [n1, K], n1, b: float64 buffer [n2, K], n2, K <= 64) -> bytes
 *     float64 [n1, n2] costs 0.5 * sum_k (a_k - b_k)^2 / (a_k + b_k + eps) of normalised
 *     histograms, summed over k in numpy's pairwise order (np.sum over a contiguous axis),
 *     so the toolkit's hist_cost_2 values bit for bit.
 *   simplify(xy: float64 buffer [n, 2], n, tol) -> bytes
 *     psimpl simplify_douglas_peucker<2> (radial-distance pre-pass, then Douglas-Peucker with
 *     a LIFO stack, the later point winning ties for the farthest, the projection fraction in
 *     single precision): int64 indices of the kept points.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <float.h>
#include <stdint.h>
#include <stdlib.h>

#define ARITY 4

typedef struct {
    int64_t *data; /* heap of vertex ids */
    int64_t *pos;  /* position of a vertex in the heap */
    int64_t size;
    const double *dist;
} Heap;

static void sift_up(Heap *h, int64_t index) {
    if (index == 0) return;
    int64_t v = h->data[index];
    double dv = h->dist[v];
    while (index > 0) {
        int64_t parent = (index - 1) / ARITY;
        int64_t pv = h->data[parent];
        if (!(dv < h->dist[pv])) break;
        h->data[index] = pv;
        h->pos[pv] = index;
        index = parent;
    }
    h->data[index] = v;
    h->pos[v] = index;
}

static void sift_down(Heap *h) {
    if (h->size == 0) return;
    int64_t index = 0;
    int64_t v = h->data[0];
    double dv = h->dist[v];
    for (;;) {
        int64_t first = index * ARITY + 1;
        if (first >= h->size) break;
        int64_t n_children = h->size - first < ARITY ? h->size - first : ARITY;
        int64_t best = 0;
        double best_d = h->dist[h->data[first]];
        for (int64_t c = 1; c < n_children; ++c) {
            double d = h->dist[h->data[first + c]];
            if (d < best_d) {
                best = c;
                best_d = d;
            }
        }
        if (!(best_d < dv)) break;
        int64_t child = first + best;
        int64_t cv = h->data[child];
        h->data[index] = cv;
        h->pos[cv] = index;
        h->data[child] = v;
        h->pos[v] = child;
        index = child;
    }
}

/* Fills pred; returns 0, or -1 when out of memory. */
static int grid_dijkstra(const double *cost, int64_t n1, int64_t n2, int64_t *pred) {
    int64_t N = n1 * n2;
    double *dist = (double *)malloc(sizeof(double) * N);
    unsigned char *color = (unsigned char *)calloc(N, 1);
    int64_t *data = (int64_t *)malloc(sizeof(int64_t) * N);
    int64_t *pos = (int64_t *)malloc(sizeof(int64_t) * N);
    if (!dist || !color || !data || !pos) {
        free(dist); free(color); free(data); free(pos);
        return -1;
    }
    for (int64_t v = 0; v < N; ++v) {
        dist[v] = DBL_MAX;
        pred[v] = v;
    }
    Heap h = {data, pos, 0, dist};
    dist[0] = 0.0;
    color[0] = 1;
    h.data[h.size++] = 0;
    h.pos[0] = 0;
    while (h.size > 0) {
        int64_t u = h.data[0];
        h.pos[u] = -1;
        if (h.size != 1) {
            h.data[0] = h.data[h.size - 1];
            h.pos[h.data[0]] = 0;
            h.size--;
            sift_down(&h);
        } else {
            h.size--;
        }
        int64_t i = u / n2, j = u % n2;
        int64_t outs[3];
        int n_out = 0;
        if (j + 1 < n2) outs[n_out++] = u + 1;
        if (i + 1 < n1) outs[n_out++] = u + n2;
        if (i + 1 < n1 && j + 1 < n2) outs[n_out++] = u + n2 + 1;
        double du = dist[u];
        for (int k = 0; k < n_out; ++k) {
            int64_t v = outs[k];
            double nd = du + cost[v];
            if (color[v] == 0) {
                if (nd < dist[v]) {
                    dist[v] = nd;
                    pred[v] = u;
                }
                color[v] = 1;
                h.data[h.size] = v;
                h.pos[v] = h.size;
                h.size++;
                sift_up(&h, h.size - 1);
            } else if (color[v] == 1) {
                if (nd < dist[v]) {
                    dist[v] = nd;
                    pred[v] = u;
                    sift_up(&h, h.pos[v]);
                }
            }
        }
        color[u] = 2;
    }
    free(dist); free(color); free(data); free(pos);
    return 0;
}

/* Arguments (cost buffer, n1, n2) of path() and dp_path(); 0 on success, -1 with an exception. */
static int parse_grid(PyObject *args, const char *name, Py_buffer *buf, Py_ssize_t *n1, Py_ssize_t *n2) {
    if (!PyArg_ParseTuple(args, "y*nn", buf, n1, n2)) return -1;
    if (*n1 < 1 || *n2 < 1 || buf->len != (Py_ssize_t)(sizeof(double) * *n1 * *n2)) {
        PyBuffer_Release(buf);
        PyErr_Format(PyExc_ValueError, "%s: need n1, n2 >= 1 and a float64 buffer of n1*n2 values", name);
        return -1;
    }
    return 0;
}

/* (bytes of the L path ids, min_id); frees path. */
static PyObject *path_result(int64_t *path, int64_t L, int64_t min_id) {
    PyObject *out = PyBytes_FromStringAndSize((const char *)path, (Py_ssize_t)(sizeof(int64_t) * L));
    free(path);
    if (!out) return NULL;
    return Py_BuildValue("(NL)", out, (long long)min_id);
}

static PyObject *py_path(PyObject *self, PyObject *args) {
    Py_buffer buf;
    Py_ssize_t n1, n2;
    if (parse_grid(args, "path", &buf, &n1, &n2) < 0) return NULL;
    int64_t N = (int64_t)n1 * n2;
    int64_t *pred = (int64_t *)malloc(sizeof(int64_t) * N);
    int64_t *path = (int64_t *)malloc(sizeof(int64_t) * (n1 + n2));
    if (!pred || !path) {
        free(pred); free(path);
        PyBuffer_Release(&buf);
        return PyErr_NoMemory();
    }
    const double *cost = (const double *)buf.buf;
    int rc;
    int64_t L = 0, min_id = N - 1;
    Py_BEGIN_ALLOW_THREADS
    rc = grid_dijkstra(cost, n1, n2, pred);
    if (rc == 0) {
        int64_t cur = N - 1;
        double min_cost = DBL_MAX;
        while (cur != 0) {
            if (cost[cur] < min_cost) {
                min_cost = cost[cur];
                min_id = cur;
            }
            path[L++] = cur;
            cur = pred[cur];
        }
        path[L++] = 0;
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&buf);
    free(pred);
    if (rc != 0) {
        free(path);
        return PyErr_NoMemory();
    }
    return path_result(path, L, min_id);
}

/* Dynamic programming over the grid; returns 1 on success, 0 on a tie, -1 out of memory. */
static int grid_dp(const double *cost, int64_t n1, int64_t n2, int64_t *path, int64_t *L_out,
                   int64_t *min_id_out) {
    int64_t N = n1 * n2;
    double *D = (double *)malloc(sizeof(double) * N);
    if (!D) return -1;
    D[0] = 0.0;
    for (int64_t j = 1; j < n2; ++j) D[j] = D[j - 1] + cost[j];
    for (int64_t i = 1; i < n1; ++i) {
        const double *c = cost + i * n2;
        double *row = D + i * n2, *prev = D + (i - 1) * n2;
        row[0] = prev[0] + c[0];
        for (int64_t j = 1; j < n2; ++j) {
            double m = prev[j - 1] < prev[j] ? prev[j - 1] : prev[j];
            if (row[j - 1] < m) m = row[j - 1];
            row[j] = m + c[j];
        }
    }
    int64_t i = n1 - 1, j = n2 - 1, L = 0, min_id = N - 1;
    double min_cost = DBL_MAX;
    int ok = 1;
    while (i || j) {
        int64_t v = i * n2 + j;
        if (cost[v] < min_cost) {
            min_cost = cost[v];
            min_id = v;
        }
        path[L++] = v;
        if (i && j) {
            double d = D[v - n2 - 1], u = D[v - n2], l = D[v - 1];
            double m = d < u ? d : u;
            if (l < m) m = l;
            if ((d == m) + (u == m) + (l == m) > 1) {
                ok = 0;
                break;
            }
            if (d == m) { --i; --j; }
            else if (u == m) { --i; }
            else { --j; }
        } else if (i) {
            --i;
        } else {
            --j;
        }
    }
    if (ok) path[L++] = 0;
    free(D);
    *L_out = L;
    *min_id_out = min_id;
    return ok;
}

static PyObject *py_dp_path(PyObject *self, PyObject *args) {
    Py_buffer buf;
    Py_ssize_t n1, n2;
    if (parse_grid(args, "dp_path", &buf, &n1, &n2) < 0) return NULL;
    int64_t *path = (int64_t *)malloc(sizeof(int64_t) * (n1 + n2));
    if (!path) {
        PyBuffer_Release(&buf);
        return PyErr_NoMemory();
    }
    int rc;
    int64_t L = 0, min_id = 0;
    Py_BEGIN_ALLOW_THREADS
    rc = grid_dp((const double *)buf.buf, n1, n2, path, &L, &min_id);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&buf);
    if (rc < 0) {
        free(path);
        return PyErr_NoMemory();
    }
    if (rc == 0) {
        free(path);
        Py_RETURN_NONE;
    }
    return path_result(path, L, min_id);
}

/* numpy's pairwise summation (loops_utils.h: 8 accumulators up to 128 terms, halves above). */
static double pairwise_sum(const double *a, int64_t n) {
    if (n < 8) {
        double res = 0.;
        for (int64_t i = 0; i < n; ++i) res += a[i];
        return res;
    } else if (n <= 128) {
        double r[8];
        int64_t i;
        for (int k = 0; k < 8; ++k) r[k] = a[k];
        for (i = 8; i < n - (n % 8); i += 8)
            for (int k = 0; k < 8; ++k) r[k] += a[i + k];
        double res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for (; i < n; ++i) res += a[i];
        return res;
    } else {
        int64_t n2 = n / 2;
        n2 -= n2 % 8;
        return pairwise_sum(a, n2) + pairwise_sum(a + n2, n - n2);
    }
}

static PyObject *py_chi2(PyObject *self, PyObject *args) {
    Py_buffer ba, bb;
    Py_ssize_t n1, n2, K;
    if (!PyArg_ParseTuple(args, "y*ny*nn", &ba, &n1, &bb, &n2, &K)) return NULL;
    /* K <= 64: the non-zero bins of a histogram fit one 64-bit set (T uses K = 60) */
    if (n1 < 0 || n2 < 0 || K < 1 || K > 64 || ba.len != (Py_ssize_t)(sizeof(double) * n1 * K) ||
        bb.len != (Py_ssize_t)(sizeof(double) * n2 * K)) {
        PyBuffer_Release(&ba);
        PyBuffer_Release(&bb);
        PyErr_SetString(PyExc_ValueError, "chi2: need 1 <= K <= 64 and float64 buffers of n1*K and n2*K values");
        return NULL;
    }
    const double eps = 2.2204e-16; /* the toolkit's constant */
    const double *A = (const double *)ba.buf, *B = (const double *)bb.buf;
    PyObject *res = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(sizeof(double) * n1 * n2));
    double *fa = (double *)malloc(sizeof(double) * (n1 * K + 1));
    double *fb = (double *)malloc(sizeof(double) * (n2 * K + 1));
    uint64_t *ma = (uint64_t *)malloc(sizeof(uint64_t) * (n1 + 1));
    uint64_t *mb = (uint64_t *)malloc(sizeof(uint64_t) * (n2 + 1));
    double t[64];
    if (!res || !fa || !fb || !ma || !mb) {
        Py_XDECREF(res);
        free(fa); free(fb); free(ma); free(mb);
        PyBuffer_Release(&ba);
        PyBuffer_Release(&bb);
        return PyErr_NoMemory();
    }
    double *out = (double *)PyBytes_AS_STRING(res);
    Py_BEGIN_ALLOW_THREADS
    /* a term with one side zero, (x - 0)^2 / (x + 0 + eps), depends on one histogram only */
    for (int64_t i = 0; i < n1 * K; ++i) fa[i] = A[i] * A[i] / (A[i] + eps);
    for (int64_t i = 0; i < n2 * K; ++i) fb[i] = B[i] * B[i] / (B[i] + eps);
    /* bit sets of the non-zero bins: only those give non-zero terms */
    for (int64_t i = 0; i < n1; ++i) {
        ma[i] = 0;
        for (int64_t k = 0; k < K; ++k) if (A[i * K + k] != 0.0) ma[i] |= (uint64_t)1 << k;
    }
    for (int64_t j = 0; j < n2; ++j) {
        mb[j] = 0;
        for (int64_t k = 0; k < K; ++k) if (B[j * K + k] != 0.0) mb[j] |= (uint64_t)1 << k;
    }
    for (int64_t i = 0; i < n1; ++i) {
        const double *a = A + i * K, *ta = fa + i * K;
        for (int64_t j = 0; j < n2; ++j) {
            const double *b = B + j * K, *tb = fb + j * K;
            for (int64_t k = 0; k < K; ++k) t[k] = 0.0;  /* equal bins give +0 exactly */
            uint64_t both = ma[i] & mb[j], oa = ma[i] & ~mb[j], ob = mb[j] & ~ma[i];
            while (oa) { int k = __builtin_ctzll(oa); t[k] = ta[k]; oa &= oa - 1; }
            while (ob) { int k = __builtin_ctzll(ob); t[k] = tb[k]; ob &= ob - 1; }
            while (both) {
                int k = __builtin_ctzll(both);
                double x = a[k], y = b[k];
                if (x != y) {
                    double d = x - y;
                    t[k] = d * d / (x + y + eps);
                }
                both &= both - 1;
            }
            out[i * n2 + j] = 0.5 * pairwise_sum(t, K);
        }
    }
    Py_END_ALLOW_THREADS
    free(fa); free(fb); free(ma); free(mb);
    PyBuffer_Release(&ba);
    PyBuffer_Release(&bb);
    return res;
}

/* psimpl segment_distance2 of point p to segment (a, b); the fraction in single precision. */
static double seg_dist2(const double *a, const double *b, const double *p) {
    double vx = b[0] - a[0], vy = b[1] - a[1];
    double wx = p[0] - a[0], wy = p[1] - a[1];
    double cw = wx * vx + wy * vy;
    if (cw <= 0) return wx * wx + wy * wy;
    double cv = vx * vx + vy * vy;
    if (cv <= cw) {
        double ex = p[0] - b[0], ey = p[1] - b[1];
        return ex * ex + ey * ey;
    }
    float frac = (float)cw / (float)cv;
    double qx = p[0] - (a[0] + (double)frac * vx);
    double qy = p[1] - (a[1] + (double)frac * vy);
    return qx * qx + qy * qy;
}

static PyObject *py_simplify(PyObject *self, PyObject *args) {
    Py_buffer buf;
    Py_ssize_t n;
    double tol;
    if (!PyArg_ParseTuple(args, "y*nd", &buf, &n, &tol)) return NULL;
    if (n < 1 || buf.len != (Py_ssize_t)(sizeof(double) * 2 * n)) {
        PyBuffer_Release(&buf);
        PyErr_SetString(PyExc_ValueError, "simplify: need n >= 1 and a float64 buffer of n*2 values");
        return NULL;
    }
    const double *xy = (const double *)buf.buf;
    int64_t *red = (int64_t *)malloc(sizeof(int64_t) * n);  /* radial survivors */
    unsigned char *key = (unsigned char *)calloc(n, 1);
    int64_t *stack = (int64_t *)malloc(sizeof(int64_t) * 2 * (n + 1));
    int64_t *out = (int64_t *)malloc(sizeof(int64_t) * n);
    if (!red || !key || !stack || !out) {
        free(red); free(key); free(stack); free(out);
        PyBuffer_Release(&buf);
        return PyErr_NoMemory();
    }
    double tol2 = tol * tol;
    int64_t m = 0, k = 0;
    Py_BEGIN_ALLOW_THREADS
    if (n < 3 || tol == 0) {
        for (int64_t i = 0; i < n; ++i) out[k++] = i;
    } else {
        /* radial distance: drop points closer than tol to the last kept one */
        red[m++] = 0;
        const double *cur = xy;
        for (int64_t i = 1; i < n - 1; ++i) {
            double dx = xy[2 * i] - cur[0], dy = xy[2 * i + 1] - cur[1];
            if (dx * dx + dy * dy < tol2) continue;
            red[m++] = i;
            cur = xy + 2 * i;
        }
        red[m++] = n - 1;
        /* Douglas-Peucker on the survivors */
        key[0] = key[m - 1] = 1;
        int64_t top = 0;
        stack[top++] = 0;
        stack[top++] = m - 1;
        while (top > 0) {
            int64_t l = stack[--top], f = stack[--top];
            int64_t best_i = 0;
            double best_d = 0.0;
            const double *a = xy + 2 * red[f], *b = xy + 2 * red[l];
            for (int64_t c = f + 1; c < l; ++c) {
                double d = seg_dist2(a, b, xy + 2 * red[c]);
                if (d < best_d) continue;
                best_i = c;
                best_d = d;
            }
            if (best_i && tol2 < best_d) {
                key[best_i] = 1;
                stack[top++] = best_i;
                stack[top++] = l;
                stack[top++] = f;
                stack[top++] = best_i;
            }
        }
        for (int64_t i = 0; i < m; ++i)
            if (key[i]) out[k++] = red[i];
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&buf);
    PyObject *res = PyBytes_FromStringAndSize((const char *)out, (Py_ssize_t)(sizeof(int64_t) * k));
    free(red); free(key); free(stack); free(out);
    return res;
}

static PyMethodDef methods[] = {
    {"path", py_path, METH_VARARGS, "Boost-order Dijkstra path on a cost grid (see module source)."},
    {"dp_path", py_dp_path, METH_VARARGS, "DP path on a cost grid, None on a tie (see module source)."},
    {"chi2", py_chi2, METH_VARARGS, "Chi-square histogram costs, numpy summation order (see module source)."},
    {"simplify", py_simplify, METH_VARARGS, "psimpl Douglas-Peucker: kept indices (see module source)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_grid_dijkstra", NULL, -1, methods};

PyMODINIT_FUNC PyInit__grid_dijkstra(void) { return PyModule_Create(&module); }
