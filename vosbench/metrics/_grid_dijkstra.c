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
 * Python API: path(cost: C-contiguous float64 buffer, n1, n2) -> (bytes, min_id)
 *   bytes: int64 vertex ids from (n1-1, n2-1) back to (0, 0);
 *   min_id: the cheapest vertex of that path scanning from the destination, the origin
 *   excluded, first strict minimum (as the toolkit's loop).
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

static PyObject *py_path(PyObject *self, PyObject *args) {
    Py_buffer buf;
    Py_ssize_t n1, n2;
    if (!PyArg_ParseTuple(args, "y*nn", &buf, &n1, &n2)) return NULL;
    if (n1 < 1 || n2 < 1 || buf.len != (Py_ssize_t)(sizeof(double) * n1 * n2)) {
        PyBuffer_Release(&buf);
        PyErr_SetString(PyExc_ValueError, "path: need n1, n2 >= 1 and a float64 buffer of n1*n2 values");
        return NULL;
    }
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
    PyObject *out = PyBytes_FromStringAndSize((const char *)path, (Py_ssize_t)(sizeof(int64_t) * L));
    free(path);
    if (!out) return NULL;
    return Py_BuildValue("(NL)", out, (long long)min_id);
}

static PyMethodDef methods[] = {
    {"path", py_path, METH_VARARGS, "Boost-order Dijkstra path on a cost grid (see module source)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_grid_dijkstra", NULL, -1, methods};

PyMODINIT_FUNC PyInit__grid_dijkstra(void) { return PyModule_Create(&module); }
