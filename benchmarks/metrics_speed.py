#!/usr/bin/env python
"""Speed / memory / agreement of vosbench's evaluators against the official ones, side by side.

    OMP_NUM_THREADS=1 python benchmarks/metrics_speed.py [--official /work/official]

Data (seeded, generated once into ``--workdir``): a DAVIS-2017-val-sized set (30 sequences x
60 frames, 854x480, 1-4 objects, perturbed predictions) and a YouTube-VIS set (300 videos x 30
frames, 360x640, 40 categories). Each evaluation runs in its own child process so that its peak
resident memory (``ru_maxrss``) is its own.

Measured:

* J&F (davis2017 semi-supervised) from the PNG folders: ours (``tools/eval.py`` code path,
  1 process) and, with ``--official``, davis2017-evaluation's ``DAVISEvaluation`` on the same
  folders: time, peak memory, largest difference over every per-object J/F mean, recall,
  decay and the global numbers.
* T (DAVIS-2016, union foreground of the same results, frames 1..N-2): ours on the whole set
  and, with ``--official-tstab DIR`` (a folder with the toolkit's compiled C++ ``tstab``
  module, which you build yourself), ours and the toolkit's ``t_stability`` end to end on the
  first ``--t-sample-seqs`` sequences, one process each: time, largest per-pair and
  per-sequence difference.
* DAVIS-2016 J/F: ours against the official ``davis/measures`` Python functions (jaccard,
  f_boundary) driven frame by frame over the same union masks.
* YouTube-VIS: ``evaluate_ytvis_json`` against youtubevos/cocoapi ``YTVOS`` + ``YTVOSeval``
  (run with two shims for numpy >= 2: ``np.float`` and an integer ``num`` for ``linspace``).

``--official DIR`` is a folder holding ``davis2017-evaluation/``, ``davis/`` and ``cocoapi/``
(git checkouts of davisvideochallenge/davis2017-evaluation, fperazzi/davis and
youtubevos/cocoapi). Nothing of them is copied into vosbench.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def _peak_mb() -> float:
    """Peak resident memory of this process (VmHWM; unlike ru_maxrss it is not inherited from
    the parent across fork + exec)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# ------------------------------------------------------------------------------ children
def child_ours_davis(gt: str, results: str, with_t: bool, task: str, workers: int = 1) -> dict:
    from vosbench.metrics.runner import evaluate_vos_folder
    t0 = time.perf_counter()
    out = Path(results).parent / f"ours_{task}_{'t' if with_t else 'jf'}"
    rep = evaluate_vos_folder(task, gt, results, out, with_t=with_t, use_cache=False,
                              progress=False, workers=workers)
    dt = time.perf_counter() - t0
    rows = rep["per_object"]
    return {"time": dt, "peak_mb": _peak_mb(), "global": rep["global"], "rows": rows}


def child_official_davis2017(official: str, gt: str, results: str) -> dict:
    import io
    import contextlib
    import numpy as np
    sys.path.insert(0, str(Path(official) / "davis2017-evaluation"))
    from davis2017.evaluation import DAVISEvaluation  # noqa: official code, not vendored
    t0 = time.perf_counter()
    ev = DAVISEvaluation(davis_root=gt, task="semi-supervised", gt_set="val")
    with contextlib.redirect_stderr(io.StringIO()):
        m = ev.evaluate(results)
    J, F = m["J"], m["F"]
    glob = {"J&F": (np.mean(J["M"]) + np.mean(F["M"])) / 2, "J_mean": np.mean(J["M"]),
            "J_recall": np.mean(J["R"]), "J_decay": np.mean(J["D"]), "F_mean": np.mean(F["M"]),
            "F_recall": np.mean(F["R"]), "F_decay": np.mean(F["D"])}
    names = list(J["M_per_object"].keys())
    rows = [{"Sequence": n, "J-Mean": J["M"][i], "J-Recall": J["R"][i], "J-Decay": J["D"][i],
             "F-Mean": F["M"][i], "F-Recall": F["R"][i], "F-Decay": F["D"][i]}
            for i, n in enumerate(names)]
    dt = time.perf_counter() - t0
    return {"time": dt, "peak_mb": _peak_mb(), "global": {k: float(v) for k, v in glob.items()},
            "rows": [{k: (float(v) if not isinstance(v, str) else v) for k, v in r.items()}
                     for r in rows]}


def child_official_davis2016_jf(official: str, gt: str, results: str) -> dict:
    """The official DAVIS-2016 J and F functions over frames 1..N-2 (grey-read, union fg)."""
    import importlib.util
    import numpy as np
    from PIL import Image
    mdir = Path(official) / "davis" / "python" / "lib" / "davis" / "measures"

    def load(name):
        spec = importlib.util.spec_from_file_location(f"davis16_{name}", mdir / f"{name}.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod

    jac, fb = load("jaccard"), load("f_boundary")
    # official statistics of the 2016 toolkit (utils.db_statistics), restated (py2 module)
    t0 = time.perf_counter()
    rows = []
    seqs = (Path(gt) / "ImageSets" / "2017" / "val.txt").read_text().split()
    for seq in seqs:
        gts = sorted((Path(gt) / "Annotations" / "480p" / seq).glob("*.png"))
        X_j, X_f = [np.nan], [np.nan]
        for p in gts[1:-1]:
            # as_grey=True: any non-black palette colour is foreground
            a = np.asarray(Image.open(p).convert("L")) > 0
            s = np.asarray(Image.open(Path(results) / seq / p.name).convert("L")) > 0
            X_j.append(jac.db_eval_iou(a, s))
            X_f.append(fb.db_eval_boundary(s, a))
        X_j.append(np.nan)
        X_f.append(np.nan)
        rows.append({"Sequence": seq, "J-Mean": float(np.nanmean(X_j)),
                     "F-Mean": float(np.nanmean(X_f))})
    return {"time": time.perf_counter() - t0, "peak_mb": _peak_mb(), "rows": rows}


def _load_official_ytvis(official: str):
    import importlib.util
    import types
    import numpy as np
    if not hasattr(np, "float"):
        np.float = float  # removed in numpy 1.24; the official accumulate() uses it
    d = Path(official) / "cocoapi" / "PythonAPI" / "pycocotools"
    pkg = types.ModuleType("ytvis_official")
    pkg.__path__ = [str(d)]
    sys.modules["ytvis_official"] = pkg
    from pycocotools import mask as mask_mod
    sys.modules["ytvis_official.mask"] = mask_mod
    mods = {}
    for name in ("ytvos", "ytvoseval"):
        spec = importlib.util.spec_from_file_location(f"ytvis_official.{name}", d / f"{name}.py")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = mod
        spec.loader.exec_module(mod)
        mods[name] = mod
    orig = np.linspace
    # numpy >= 2 rejects the float ``num`` the official Params passes; same values otherwise
    mods["ytvoseval"].np = types.SimpleNamespace(**{k: getattr(np, k) for k in dir(np)
                                                     if not k.startswith("__")})
    mods["ytvoseval"].np.linspace = lambda a, b, num=50, **kw: orig(a, b, int(num), **kw)
    return mods["ytvos"].YTVOS, mods["ytvoseval"].YTVOSeval


YTVIS_KEYS = ["AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large", "AR1", "AR10", "AR100",
              "AR_small", "AR_medium", "AR_large"]


def run_official_ytvis(official: str, gt_json: str, res_json: str):
    """youtubevos/cocoapi ``YTVOSeval`` (segm) evaluated, accumulated and summarised (quietly);
    returns the ``YTVOSeval`` object (``stats`` in ``YTVIS_KEYS`` order, ``eval``, ``params``)."""
    import contextlib
    import io
    YTVOS, YTVOSeval = _load_official_ytvis(official)
    with contextlib.redirect_stdout(io.StringIO()):
        gt = YTVOS(gt_json)
        E = YTVOSeval(gt, gt.loadRes(res_json), "segm")
        E.evaluate()
        E.accumulate()
        E.summarize()
    return E


def child_official_ytvis(official: str, gt_json: str, res_json: str) -> dict:
    t0 = time.perf_counter()
    E = run_official_ytvis(official, gt_json, res_json)
    return {"time": time.perf_counter() - t0, "peak_mb": _peak_mb(),
            "global": {k: float(v) for k, v in zip(YTVIS_KEYS, E.stats)}}


def child_ours_ytvis(gt_json: str, res_json: str) -> dict:
    from vosbench.metrics.vis import evaluate_ytvis_json
    t0 = time.perf_counter()
    s = evaluate_ytvis_json(gt_json, res_json)
    return {"time": time.perf_counter() - t0, "peak_mb": _peak_mb(),
            "global": {k: v for k, v in s.items() if k != "mAP"}}


def _union_masks(gt: str, results: str, seq: str):
    """Union-foreground masks of one result sequence, frames 1..N-2 (the toolkit's T frames)."""
    import numpy as np
    from PIL import Image
    names = sorted(p.name for p in (Path(gt) / "Annotations" / "480p" / seq).glob("*.png"))
    return [np.asarray(Image.open(Path(results) / seq / n)) > 0 for n in names[1:-1]]


def _t_sequences(gt: str, num_seqs: int) -> list[str]:
    return (Path(gt) / "ImageSets" / "2017" / "val.txt").read_text().split()[:num_seqs]


def _time_t(gt: str, results: str, num_seqs: int, series) -> dict:
    """``series(masks) -> per-pair T (not x5)`` on the union masks of the first sequences:
    per-pair values (x5, NaN -> None) and the time of the T computation only (masks are loaded
    before the clock starts)."""
    import numpy as np
    per_pair, t = {}, 0.0
    for seq in _t_sequences(gt, num_seqs):
        masks = _union_masks(gt, results, seq)
        t0 = time.perf_counter()
        vals = np.asarray(series(masks), dtype=np.float64) * 5.0
        t += time.perf_counter() - t0
        per_pair[seq] = [None if np.isnan(v) else float(v) for v in vals]
    return {"time": t, "per_pair": per_pair, "peak_mb": _peak_mb()}


def child_ours_t(gt: str, results: str, num_seqs: int) -> dict:
    """Our T (``temporal_stability_series``), see ``_time_t``."""
    from vosbench.metrics import tstab
    return _time_t(gt, results, num_seqs, tstab.temporal_stability_series)


def load_official_t(official: str, official_tstab: str):
    """The DAVIS-2016 toolkit's T: (its ``measures/t_stability`` module, ``db_eval_t_stab``).

    ``official_tstab`` is a folder holding the toolkit's compiled ``tstab`` module (its C++
    ``mask2poly``, ``get_longest_cont``, ``contour_upsample``, ``match_dijkstra``: build the
    toolkit's ``cpp/`` yourself, with Boost.Python or any binding exposing those four
    functions). ``t_stability.py`` is imported from the toolkit checkout; its
    ``db_eval_t_stab`` body is restated here only because it passes float bin counts (``5.0``,
    ``12.0``) that numpy >= 1.18 rejects; every step is the toolkit's own function.
    """
    import importlib.util
    import numpy as np
    if not hasattr(np, "int"):
        np.int = int  # removed in numpy 1.24; sc_compute uses it
    if official_tstab not in sys.path:
        sys.path.insert(0, official_tstab)
    spec = importlib.util.spec_from_file_location(
        "davis16_t", Path(official) / "davis" / "python" / "lib" / "davis" / "measures" /
        "t_stability.py")
    off = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(off)  # noqa: official code, not vendored

    def db_eval_t_stab(fgmask, ground_truth):
        poly1 = off.mask2poly(fgmask, 3)
        poly2 = off.mask2poly(ground_truth, 3)
        if len(poly1.contour_coords) == 0 or len(poly2.contour_coords) == 0:
            return np.nan
        up1 = off.contour_upsample(off.get_longest_cont(poly1.contour_coords), 3)
        up2 = off.contour_upsample(off.get_longest_cont(poly2.contour_coords), 3)
        scs1, _ = off.sc_compute(up1.T, np.zeros((1, up1.shape[0])), None, 12, 5, 1.0 / 8.0,
                                 2.0, np.zeros((1, up1.shape[0])))
        scs2, _ = off.sc_compute(up2.T, np.zeros((1, up2.shape[0])), None, 12, 5, 1.0 / 8.0,
                                 2.0, np.zeros((1, up2.shape[0])))
        costmat = off.hist_cost_2(scs1, scs2)
        pairs, max_sx, max_sy = off.match_dijkstra(np.ascontiguousarray(costmat))
        costmat2 = np.roll(costmat, -(max_sy + 1), axis=1)
        costmat2 = np.roll(costmat2, -(max_sx + 1), axis=0)
        pairs, _, _ = off.match_dijkstra(costmat2)
        pairs[:, 0] = np.mod(pairs[:, 0] + max_sx + 1, costmat.shape[0])
        pairs[:, 1] = np.mod(pairs[:, 1] + max_sy + 1, costmat.shape[1])
        pairs = off.get_bijective_pairs(pairs, costmat)
        return np.average(costmat[pairs[:, 0], pairs[:, 1]])

    return off, db_eval_t_stab


def child_official_t(official: str, official_tstab: str, gt: str, results: str,
                     num_seqs: int) -> dict:
    """The DAVIS-2016 toolkit's T (``load_official_t``) on the same masks and pairs."""
    _, db_eval_t_stab = load_official_t(official, official_tstab)
    return _time_t(gt, results, num_seqs,
                   lambda masks: [db_eval_t_stab(a, b) for a, b in zip(masks[:-1], masks[1:])])


CHILDREN = {
    "ours_t": lambda a: child_ours_t(a.gt, a.results, a.t_sample_seqs),
    "official_t": lambda a: child_official_t(a.official, a.official_tstab, a.gt, a.results,
                                             a.t_sample_seqs),
    "ours_davis2017": lambda a: child_ours_davis(a.gt, a.results, False, "davis2017"),
    "ours_davis2016_t": lambda a: child_ours_davis(a.gt, a.results, True, "davis2016"),
    "ours_davis2016_t_w2": lambda a: child_ours_davis(a.gt, a.results, True, "davis2016", 2),
    "official_davis2017": lambda a: child_official_davis2017(a.official, a.gt, a.results),
    "official_davis2016_jf": lambda a: child_official_davis2016_jf(a.official, a.gt, a.results),
    "official_ytvis": lambda a: child_official_ytvis(a.official, a.gt, a.results),
    "ours_ytvis": lambda a: child_ours_ytvis(a.gt, a.results),
}


def run_child(name: str, **kw) -> dict:
    cmd = [sys.executable, __file__, "--_child", name]
    for k, v in kw.items():
        cmd += [f"--{k.replace('_', '-')}", str(v)]
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if p.returncode != 0:
        raise RuntimeError(f"child {name} failed:\n{p.stderr[-4000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------- main
def _max_diff(a_rows, b_rows, keys, b_key_map=None) -> float:
    b = {r["Sequence"]: r for r in b_rows}
    worst = 0.0
    for r in a_rows:
        o = b[r["Sequence"]]
        for k in keys:
            x, y = r[k], o[k]
            if x is None and y is None:
                continue
            if x is None or y is None:
                return float("inf")
            import math
            if math.isnan(x) and math.isnan(y):
                continue
            worst = max(worst, abs(x - y))
    return worst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--official", default=None, help="folder with the official checkouts")
    ap.add_argument("--workdir", default="/tmp/vosbench_metrics_bench")
    ap.add_argument("--sequences", type=int, default=30)
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--ytvis-videos", type=int, default=300)
    ap.add_argument("--ytvis-frames", type=int, default=30)
    ap.add_argument("--skip-t", action="store_true")
    ap.add_argument("--parts", default="jf,t,ytvis",
                    help="comma-separated subset of jf, t, ytvis to run")
    ap.add_argument("--official-tstab", default=None,
                    help="folder with the DAVIS-2016 toolkit's compiled tstab module (C++)")
    ap.add_argument("--t-sample-seqs", type=int, default=5,
                    help="sequences used for the T comparison with the official toolkit")
    ap.add_argument("--_child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--gt", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--results", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a._child:
        print(json.dumps(CHILDREN[a._child](a)))
        return

    from vosbench.metrics.testing import make_davis_set, make_ytvis_set
    work = Path(a.workdir)
    dset = work / f"davis_{a.sequences}x{a.frames}"
    yset = work / f"ytvis_{a.ytvis_videos}x{a.ytvis_frames}"
    t0 = time.perf_counter()
    if not (dset / "results").is_dir():
        make_davis_set(dset, num_sequences=a.sequences, num_frames=a.frames)
    if not (yset / "results.json").is_file():
        make_ytvis_set(yset, num_videos=a.ytvis_videos, num_frames=a.ytvis_frames)
    print(f"data ready in {time.perf_counter() - t0:.1f}s under {work}")
    gt, res = str(dset / "gt"), str(dset / "results")
    lines = []

    def report(s):
        print(s, flush=True)
        lines.append(s)

    parts = set(a.parts.split(","))
    if a.skip_t:
        parts.discard("t")
    if "jf" in parts:
        _bench_jf(a, gt, res, report)
    if "t" in parts:
        _bench_t(a, gt, res, report)
    if "ytvis" in parts:
        _bench_ytvis(a, yset, report)


def _bench_jf(a, gt, res, report) -> None:
    report(f"# DAVIS-2017 semi-supervised J&F: {a.sequences} sequences x {a.frames} frames, 854x480")
    ours = run_child("ours_davis2017", gt=gt, results=res)
    report(f"ours      : {ours['time']:7.2f} s, peak {ours['peak_mb']:6.0f} MB, "
           f"J&F {ours['global']['J&F']:.6f}")
    if a.official:
        off = run_child("official_davis2017", official=a.official, gt=gt, results=res)
        keys = ["J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay"]
        d_rows = _max_diff(ours["rows"], off["rows"], keys)
        d_glob = max(abs(ours["global"][k] - off["global"][k]) for k in off["global"])
        report(f"official  : {off['time']:7.2f} s, peak {off['peak_mb']:6.0f} MB, "
               f"J&F {off['global']['J&F']:.6f}")
        report(f"speed-up  : {off['time'] / ours['time']:.1f}x, memory ratio "
               f"{off['peak_mb'] / ours['peak_mb']:.1f}x, max |diff| per-object "
               f"{d_rows:.2e}, global {d_glob:.2e} ({len(ours['rows'])} objects)")



def _bench_t(a, gt, res, report) -> None:
    report("\n# DAVIS-2016 (union foreground) J, F and T on the same results")
    o16 = run_child("ours_davis2016_t", gt=gt, results=res)
    report(f"ours J/F/T: {o16['time']:7.2f} s, peak {o16['peak_mb']:6.0f} MB, "
           f"J {o16['global']['J_mean']:.6f} F {o16['global']['F_mean']:.6f} "
           f"T {o16['global']['T_mean']:.6f}")
    o16w = run_child("ours_davis2016_t_w2", gt=gt, results=res)
    report(f"ours J/F/T with 2 worker processes: {o16w['time']:7.2f} s")
    if a.official and a.official_tstab:
        ot = run_child("ours_t", gt=gt, results=res, t_sample_seqs=a.t_sample_seqs)
        ft = run_child("official_t", official=a.official, official_tstab=a.official_tstab,
                       gt=gt, results=res, t_sample_seqs=a.t_sample_seqs)
        worst, n_pairs, n_nan = 0.0, 0, 0
        seq_worst = 0.0
        import numpy as np
        for seq, vals in ft["per_pair"].items():
            mine = ot["per_pair"][seq]
            for x, y in zip(mine, vals):
                n_pairs += 1
                if x is None or y is None:
                    n_nan += 1
                    if (x is None) != (y is None):
                        worst = float("inf")
                    continue
                worst = max(worst, abs(x - y))
            mx = np.nanmean([np.nan if v is None else v for v in mine])
            my = np.nanmean([np.nan if v is None else v for v in vals])
            seq_worst = max(seq_worst, abs(mx - my))
        report(f"T on {a.t_sample_seqs} sequences ({n_pairs} pairs, {n_nan} without contour), "
               f"one process each, T computation only: ours {ot['time']:.2f} s, official "
               f"toolkit (C++ contours + Dijkstra, Python shape contexts) {ft['time']:.2f} s "
               f"-> speed-up {ft['time'] / ot['time']:.1f}x; max |T diff| per pair "
               f"{worst:.2e}, per-sequence T-mean {seq_worst:.2e}")
        all_pairs = a.sequences * (a.frames - 3)
        report(f"projected official T on the whole set: {ft['time'] / n_pairs * all_pairs:.0f} s "
               f"for {all_pairs} pairs (ours, whole set, J/F included: {o16['time']:.0f} s, "
               f"-> {ft['time'] / n_pairs * all_pairs / o16['time']:.1f}x)")
    elif a.official:
        report("official T: not run (give --official-tstab, the folder of the toolkit's "
               "compiled tstab module)")
    if a.official:
        o16f = run_child("official_davis2016_jf", official=a.official, gt=gt, results=res)
        ours_rows = [{"Sequence": r["Sequence"], "J-Mean": r["J-Mean"], "F-Mean": r["F-Mean"]}
                     for r in o16["rows"]]
        d = _max_diff(ours_rows, o16f["rows"], ["J-Mean", "F-Mean"])
        report(f"official 2016 J/F functions: {o16f['time']:7.2f} s; max |diff| per-sequence "
               f"J/F mean {d:.2e}")



def _bench_ytvis(a, yset, report) -> None:
    report(f"\n# YouTube-VIS: {a.ytvis_videos} videos x {a.ytvis_frames} frames, 360x640")
    oy = run_child("ours_ytvis", gt=str(yset / "gt.json"), results=str(yset / "results.json"))
    report(f"ours      : {oy['time']:7.2f} s, peak {oy['peak_mb']:6.0f} MB, AP {oy['global']['AP']:.6f}")
    if a.official:
        fy = run_child("official_ytvis", official=a.official, gt=str(yset / "gt.json"),
                       results=str(yset / "results.json"))
        d = max(abs(oy["global"][k] - fy["global"][k]) for k in fy["global"])
        report(f"official  : {fy['time']:7.2f} s, peak {fy['peak_mb']:6.0f} MB, AP {fy['global']['AP']:.6f}")
        report(f"speed-up  : {fy['time'] / oy['time']:.2f}x, max |diff| over the 12 AP/AR "
               f"numbers {d:.2e}")
        report("  " + ", ".join(f"{k} {oy['global'][k]:.4f}" for k in oy["global"]))


if __name__ == "__main__":
    main()
