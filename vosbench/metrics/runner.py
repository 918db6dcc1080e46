"""Offline evaluation of result folders / files in the official layouts (``tools/eval.py``).

Layouts (the official toolkits'):

* ``davis2017`` (semi-supervised): GT ``<gt>/Annotations/<res>/<seq>/<frame>.png`` and
  ``<gt>/ImageSets/2017/<split>.txt``; results ``<results>/<seq>/<frame>.png`` (indexed PNGs).
* ``davis2017_unsupervised``: GT ``<gt>/Annotations_unsupervised/<res>/...`` (ImageSets 2017, or
  2019 for test-dev / test-challenge).
* ``davis2016``: GT ``<gt>/Annotations/480p/<seq>/<frame>.png`` (binary 0/255) and
  ``<gt>/ImageSets/480p/<split>.txt`` (or every sequence folder); results as above (any
  non-zero label is foreground). T for every sequence, or only the ``eval_t: true`` ones of
  ``<gt>/db_info.yml`` with ``t_from_db_info``.
* ``segtrackv2``: GT read with the ``segtrackv2`` dataset of ``vosbench.data``; results as above
  with the object ids as labels.
* ``ytvis``: GT json, results ``results.json`` (or a folder / zip holding it).

GT annotation PNGs of the DAVIS layouts are read directly (not through the dataset classes,
which would also decode every JPEG frame): exactly the files the official scripts read.
Each sequence is evaluated in a worker process; its result is cached under
``<out>/cache/<task>/<seq>.json`` with a key over the options and the result files' sizes and
modification times, so an interrupted run resumes and a changed result is re-evaluated.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import zipfile
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from vosbench.utils.io import DataError, open_label_image

from vosbench.metrics.vos import (
    EvaluationError,
    SequenceResult,
    eval_davis2016_sequence,
    eval_semisupervised_sequence,
    eval_unsupervised_sequence,
    summarize_objects,
    summarize_sequences,
)

VOS_TASKS = ("davis2017", "davis2017_unsupervised", "davis2016", "segtrackv2")
TASKS = VOS_TASKS + ("ytvis",)
GLOBAL_COLUMNS = ["J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay"]
PER_SEQ_COLUMNS = ["Sequence", "J-Mean", "F-Mean"]
_GLOBAL_KEYS = {"J&F-Mean": "J&F", "J-Mean": "J_mean", "J-Recall": "J_recall",
                "J-Decay": "J_decay", "F-Mean": "F_mean", "F-Recall": "F_recall",
                "F-Decay": "F_decay", "T-Mean": "T_mean"}


# ------------------------------------------------------------------------------ reading
def read_label_png(path: Path, *, expect_size: tuple[int, int] | None = None) -> np.ndarray:
    """An indexed (palette ``P``) or 8-bit grey (``L``) PNG as uint8[H, W]; errors name the file."""
    try:
        img = open_label_image(path)
    except DataError as e:
        raise EvaluationError(f"{e}; write label maps with vosbench.utils.io.write_index_png") from e
    a = np.asarray(img)
    if expect_size is not None and a.shape != tuple(expect_size):
        raise EvaluationError(f"{path}: size {a.shape[1]}x{a.shape[0]} (WxH) differs from the "
                              f"ground truth {expect_size[1]}x{expect_size[0]}")
    return a


def _read_split(path: Path) -> list[str]:
    names = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line:
            continue
        if line.startswith("/JPEGImages/"):  # DAVIS-2016 ImageSets: "/JPEGImages/480p/<seq>/..."
            seq = line.split()[0].split("/")[3]
            if seq not in names:
                names.append(seq)
        else:
            names.append(line)
    return names


def davis_layout(gt: Path, task: str, split: str, resolution: str = "480p"
                 ) -> tuple[Path, list[str]]:
    """(annotation root, sequence names) of a DAVIS-format GT folder for ``task``."""
    if task == "davis2017_unsupervised":
        ann = gt / "Annotations_unsupervised" / resolution
        year = "2019" if split in ("test-dev", "test-challenge") else "2017"
        sets = [gt / "ImageSets" / year / f"{split}.txt"]
    elif task == "davis2016":
        ann = gt / "Annotations" / resolution
        sets = [gt / "ImageSets" / resolution / f"{split}.txt", gt / "ImageSets" / "2016" / f"{split}.txt"]
    else:
        ann = gt / "Annotations" / resolution
        sets = [gt / "ImageSets" / "2017" / f"{split}.txt"]
    if not ann.is_dir():
        raise EvaluationError(f"{ann}: ground-truth annotation folder not found (expected the "
                              f"official {task} layout under {gt})")
    for s in sets:
        if s.is_file():
            return ann, _read_split(s)
    return ann, sorted(p.name for p in ann.iterdir() if p.is_dir())


def _gt_frames(ann: Path, seq: str) -> list[Path]:
    d = ann / seq
    if not d.is_dir():
        raise EvaluationError(f"{d}: ground-truth sequence folder not found")
    frames = sorted(d.glob("*.png"))
    if not frames:
        raise EvaluationError(f"{d}: no ground-truth PNG")
    return frames


@dataclass
class _Missing:
    frames: list[str] = field(default_factory=list)


def _pred_reader(results: Path, seq: str, fname: str, size, allow_missing: bool, missing: list):
    path = results / seq / f"{fname}.png"

    def read():
        if not path.is_file() and allow_missing:
            missing.append(str(path))
            return np.zeros(size, np.uint8)
        if not (results / seq).is_dir():
            raise EvaluationError(f"{results / seq}: missing results folder for sequence {seq!r} "
                                  "(use --allow-missing to count it as empty)")
        if not path.is_file():
            raise EvaluationError(f"{path}: missing result frame (use --allow-missing to count "
                                  "it as empty)")
        return read_label_png(path, expect_size=size)

    return read


# -------------------------------------------------------------------------------- jobs
@dataclass
class VOSJob:
    task: str
    gt: str
    results: str
    seq: str
    split: str = "val"
    resolution: str = "480p"
    allow_missing: bool = False
    with_t: bool = False
    bound_th: float = 0.008
    ignore_extra_labels: bool = False
    dataset_kwargs: dict = field(default_factory=dict)


def run_vos_job(job: VOSJob) -> dict:
    """Evaluate one sequence; returns ``{"result": SequenceResult json, "missing": [...]}``."""
    results = Path(job.results)
    missing: list[str] = []
    where = str(results / job.seq)
    if job.task == "segtrackv2":
        res = _segtrack_job(job, missing)
    else:
        ann, _ = davis_layout(Path(job.gt), job.task, job.split, job.resolution)
        gt_paths = _gt_frames(ann, job.seq)
        if job.task == "davis2017_unsupervised":
            gts = [read_label_png(p) for p in gt_paths]
            names = [p.stem for p in gt_paths]
            preds = [_pred_reader(results, job.seq, n, g.shape, job.allow_missing, missing)()
                     for n, g in zip(names, gts)]
            res = eval_unsupervised_sequence(job.seq, gts, preds, names, bound_th=job.bound_th,
                                             where=where)
        else:
            def frames():
                for p in gt_paths:
                    g = read_label_png(p)
                    yield p.stem, g, _pred_reader(results, job.seq, p.stem, g.shape,
                                                  job.allow_missing, missing)

            if job.task == "davis2016":
                res = eval_davis2016_sequence(job.seq, frames(), with_t=job.with_t,
                                              bound_th=job.bound_th, where=where)
            else:
                res = eval_semisupervised_sequence(job.seq, frames(), with_t=job.with_t,
                                                   bound_th=job.bound_th, where=where,
                                                   check_labels=not job.ignore_extra_labels)
    return {"result": res.to_json(), "missing": missing}


def _segtrack_job(job: VOSJob, missing: list) -> SequenceResult:
    try:
        from vosbench.data import build_dataset  # the data package owns the SegTrack v2 layout
    except ImportError as e:  # pragma: no cover - depends on the data package
        raise EvaluationError(f"segtrackv2 needs the vosbench.data SegTrack v2 loader: {e}") from e
    ds = build_dataset({"name": "segtrackv2", "root": job.gt, "split": job.split,
                        **job.dataset_kwargs})
    sample = next((s for s in _iter_samples(ds) if s.video_id == job.seq), None)
    if sample is None:
        raise EvaluationError(f"{job.gt}: no SegTrack v2 sequence named {job.seq!r}")
    obj_ids = [int(i) for i in sample.obj_ids.tolist()]
    remap = {i: k + 1 for k, i in enumerate(obj_ids)}
    results = Path(job.results)

    def frames():
        for t, frame in enumerate(sample.frames):
            if frame.masks is None:
                continue
            H, W = frame.masks.shape[-2:]
            g = np.zeros((H, W), np.uint8)
            for m, i in zip(frame.masks.numpy(), frame.obj_ids.tolist()):
                if int(i) in remap:
                    g[m] = remap[int(i)]
            name = frame.name or sample.frame_names[t]
            raw = _pred_reader(results, job.seq, name, (H, W), job.allow_missing, missing)

            def pred(raw=raw):
                p = raw()
                out = np.zeros_like(p)
                for i, k in remap.items():
                    out[p == i] = k
                return out

            yield name, g, pred

    it = frames()
    next(it, None)  # the reference frame is not evaluated
    res = eval_semisupervised_sequence(job.seq, it, with_t=job.with_t, bound_th=job.bound_th,
                                       drop_first_last=False,
                                       obj_ids=list(range(1, len(obj_ids) + 1)),
                                       check_labels=False, where=str(results / job.seq))
    res.obj_ids = obj_ids
    res.row_names = [f"{job.seq}_{i}" for i in obj_ids]
    return res


def _iter_samples(ds):
    for i in range(len(ds)):
        yield ds[i]


def _job_key(job: VOSJob) -> str:
    h = hashlib.sha1(json.dumps({k: v for k, v in job.__dict__.items()}, sort_keys=True,
                                default=str).encode())
    d = Path(job.results) / job.seq
    if d.is_dir():
        for p in sorted(d.glob("*.png")):
            st = p.stat()
            h.update(f"{p.name}:{st.st_size}:{st.st_mtime_ns};".encode())
    return h.hexdigest()


def _cached_run(args: tuple[VOSJob, str | None]) -> dict:
    job, cache_dir = args
    if cache_dir is None:
        return run_vos_job(job)
    key = _job_key(job)
    path = Path(cache_dir) / f"{job.seq}.json"
    if path.is_file():
        try:
            d = json.loads(path.read_text())
            if d.get("key") == key:
                d["cached"] = True
                return d
        except (json.JSONDecodeError, OSError):
            pass  # a torn cache file: recompute
    out = run_vos_job(job)
    out["key"] = key
    from vosbench.utils.io import write_json
    write_json(path, out)
    return out


# ------------------------------------------------------------------------------- driver
def _fmt(v: float) -> str:
    return "nan" if v is None or not np.isfinite(v) else f"{v:.3f}"


def _write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    from vosbench.utils.io import atomic_write
    with atomic_write(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def _jsonable(x):
    if isinstance(x, float) and not np.isfinite(x):
        return None
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.floating, np.integer)):
        return _jsonable(x.item())
    return x


def evaluate_vos_folder(task: str, gt: str | Path, results: str | Path, out: str | Path, *,
                        split: str = "val", resolution: str = "480p", workers: int = 1,
                        allow_missing: bool = False, with_t: bool | None = None,
                        t_from_db_info: bool = False, fix_uint8_wrap: bool = False,
                        use_cache: bool = True, progress: bool = True,
                        sequences: Sequence[str] | None = None,
                        dataset_kwargs: dict | None = None,
                        ignore_extra_labels: bool = False) -> dict:
    """Evaluate a VOS results folder and write the official CSVs plus ``results.json``.

    Returns:
        ``{"global": {...flat keys...}, "per_object": rows, "missing_frames": n}``.
    """
    if task not in VOS_TASKS:
        raise ValueError(f"unknown VOS task {task!r}; choose one of {VOS_TASKS}")
    gt, results, out = Path(gt), Path(results), Path(out)
    if not results.is_dir():
        raise EvaluationError(f"{results}: results folder not found")
    if with_t is None:
        with_t = task == "davis2016"
    if task == "segtrackv2":
        from vosbench.data import build_dataset
        ds = build_dataset({"name": "segtrackv2", "root": str(gt), "split": split,
                            **(dataset_kwargs or {})})
        seqs = [s.video_id for s in _iter_samples(ds)]
    else:
        _, seqs = davis_layout(gt, task, split, resolution)
    if sequences is not None:
        seqs = [s for s in seqs if s in set(sequences)]
    t_seqs = set(seqs)
    if task == "davis2016" and with_t and t_from_db_info and (gt / "db_info.yml").is_file():
        import yaml
        info = yaml.safe_load((gt / "db_info.yml").read_text())
        t_seqs = {s["name"] for s in info.get("sequences", []) if s.get("eval_t", True)}
    jobs = [VOSJob(task, str(gt), str(results), s, split, resolution, allow_missing,
                   bool(with_t and s in t_seqs), ignore_extra_labels=ignore_extra_labels,
                   dataset_kwargs=dict(dataset_kwargs or {}))
            for s in seqs]
    cache_dir = str(out / "cache" / task) if use_cache else None
    outs: list[dict] = []
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=len(jobs), desc=f"eval {task}", unit="seq")
    args = [(j, cache_dir) for j in jobs]
    if workers > 1 and len(jobs) > 1:
        with get_context("spawn").Pool(min(workers, len(jobs))) as pool:
            for o in pool.imap(_cached_run, args):
                outs.append(o)
                if bar is not None:
                    bar.update(1)
    else:
        for a in args:
            outs.append(_cached_run(a))
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    seq_results = [SequenceResult.from_json(o["result"]) for o in outs]
    missing = [m for o in outs for m in o.get("missing", [])]
    if task == "davis2016":
        glob, rows = summarize_sequences(seq_results, fix_uint8_wrap=fix_uint8_wrap)
    else:
        glob, rows = summarize_objects(seq_results, fix_uint8_wrap=fix_uint8_wrap)
    has_t = "T_mean" in glob
    out.mkdir(parents=True, exist_ok=True)
    gcols = GLOBAL_COLUMNS + (["T-Mean"] if has_t else [])
    _write_csv(out / f"global_results-{split}.csv", gcols,
               [[_fmt(glob.get(_GLOBAL_KEYS[c], float("nan"))) for c in gcols]])
    pcols = PER_SEQ_COLUMNS + (["T-Mean"] if has_t else [])
    _write_csv(out / f"per-sequence_results-{split}.csv", pcols,
               [[r["Sequence"]] + [_fmt(r.get(c, float("nan"))) for c in pcols[1:]] for r in rows])
    per_frame = {}
    for s in seq_results:
        for k, row in enumerate(s.row_names):
            d = {"frames": s.frames, "J": s.J[k].tolist(), "F": s.F[k].tolist()}
            if s.T is not None:
                d["T"] = s.T[k].tolist()
            per_frame[row] = d
    extra = {s.name: s.extra_label_frames for s in seq_results if s.extra_label_frames}
    report = {"task": task, "split": split, "global": glob, "per_object": rows,
              "per_frame": per_frame, "missing_frames": len(missing),
              "ignored_extra_label_frames": extra,
              "missing_files": missing[:1000], "num_sequences": len(seq_results),
              "cached_sequences": sum(1 for o in outs if o.get("cached"))}
    from vosbench.utils.io import write_json
    write_json(out / "results.json", _jsonable(report))
    return report


def _find_results_json(results: Path) -> Any:
    if results.is_dir():
        cand = results / "results.json"
        if not cand.is_file():
            raise EvaluationError(f"{results}: no results.json in the results folder")
        return cand
    if results.suffix == ".zip":
        with zipfile.ZipFile(results) as z:
            names = [n for n in z.namelist() if n.endswith("results.json")]
            if not names:
                raise EvaluationError(f"{results}: the zip holds no results.json")
            return json.load(io.TextIOWrapper(z.open(names[0])))
    if not results.is_file():
        raise EvaluationError(f"{results}: results file not found")
    return results


def evaluate_ytvis_folder(gt: str | Path, results: str | Path, out: str | Path, *,
                          split: str = "valid") -> dict:
    """Evaluate a YouTube-VIS ``results.json`` (file, folder or zip) and write the reports."""
    from vosbench.metrics.vis import SUMMARY_KEYS, evaluate_ytvis_json
    out = Path(out)
    res = _find_results_json(Path(results))
    summary, per_cat, extra = evaluate_ytvis_json(gt, res, return_details=True)
    names = extra["category_names"]
    report = {"task": "ytvis", "split": split,
              "global": {k: summary[k] for k in SUMMARY_KEYS},
              "per_category": {names.get(c, str(c)): ap for c, ap in per_cat.items()},
              "per_video": extra["per_video"],
              "num_mismatched_pairs": extra["num_mismatched_pairs"]}
    out.mkdir(parents=True, exist_ok=True)
    _write_csv(out / f"global_results-{split}.csv", list(SUMMARY_KEYS),
               [[_fmt(summary[k]) for k in SUMMARY_KEYS]])
    from vosbench.utils.io import write_json
    write_json(out / "results.json", _jsonable(report))
    return report
