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

Ground truth is read by the same readers as the loaders and ``check_dataset``
(``vosbench.data.datasets``: ``DAVIS2017.gt_label_maps`` / ``DAVIS2016.gt_label_maps`` for the
DAVIS layouts, without decoding the JPEG frames, whose headers give the sizes; the
``segtrackv2`` loader; ``parse_ytvis_json``), so ground truth a loader rejects is never scored
and every GT error names the GT file. A DAVIS GT folder without an ``ImageSets`` split file is
read as every sequence folder of its annotation folder.

Each sequence is evaluated in a worker process; its result is cached under
``<out>/cache/<task>/<seq>.json`` with a key over everything that can change the number: the
options, the evaluator's code (``evaluator_version``), and the CONTENT (SHA-256) of the
sequence's ground-truth files, split file and result files. So an interrupted run resumes, and a
changed ground-truth or result frame is re-evaluated even when its size and time stamp are
kept. A cache entry that does not parse is recomputed, never trusted.

One evaluation at a time writes an ``--out`` folder: a second one is refused
(``vosbench.utils.io.folder_lock``). The CSVs and ``results.json`` are written atomically at the
end, so a failed run leaves no partial report.
"""
from __future__ import annotations

import csv
import functools
import hashlib
import io
import json
import zipfile
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from vosbench.utils.io import DataError, folder_lock, list_dir, open_label_image

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


DAVIS_TEST_SPLITS = ("test-dev", "test-challenge")


def _folders(ann: Path, task: str, gt: Path) -> list[str]:
    if not ann.is_dir():
        raise DataError(f"{ann}: ground-truth annotation folder not found (expected the "
                        f"official {task} layout under {gt})")
    return [p.name for p in list_dir(ann) if p.is_dir()]


def gt_dataset(task: str, gt: str | Path, split: str = "val", resolution: str = "480p",
               dataset_kwargs: dict | None = None):
    """The ground truth of ``task`` under ``gt`` through its registered reader (raises at the
    first problem, naming the file). DAVIS folders without a split file: every sequence folder."""
    from vosbench.data.datasets import DAVIS2016, DAVIS2017, SegTrackV2

    gt = Path(gt)
    if not gt.is_dir():
        raise DataError(f"{gt}: ground-truth folder not found" if not gt.exists()
                        else f"{gt}: is a file; --gt must be the ground-truth folder for {task}")
    kw = dict(dataset_kwargs or {})
    if task == "segtrackv2":
        return SegTrackV2(root=gt, split=split, **kw)
    if task == "davis2016":
        listed = (gt / "ImageSets" / resolution / f"{split}.txt").is_file() or \
            (gt / "ImageSets" / "2016" / f"{split}.txt").is_file()
        seqs = None if listed else _folders(gt / "Annotations" / resolution, task, gt)
        return DAVIS2016(root=gt, split=split, resolution=resolution, sequences=seqs, **kw)
    unsup = task == "davis2017_unsupervised"
    ann = "Annotations_unsupervised" if unsup else "Annotations"
    year = "2019" if unsup and split in DAVIS_TEST_SPLITS else "2017"
    listed = (gt / "ImageSets" / year / f"{split}.txt").is_file()
    seqs = None if listed else _folders(gt / ann / resolution, task, gt)
    return DAVIS2017(root=gt, split=split, resolution=resolution, annotations=ann,
                     imageset_year=year, sequences=seqs, **kw)


@functools.lru_cache(maxsize=4)
def _gt_dataset_cached(task: str, gt: str, split: str, resolution: str, kwargs_json: str):
    return gt_dataset(task, gt, split, resolution, json.loads(kwargs_json))


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
                                  "(use --allow-missing to count it as empty)"
                                  if not (results / seq).exists() else
                                  f"{results / seq}: is a file, expected the results folder of {seq!r}")
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


def _job_dataset(job: VOSJob):
    return _gt_dataset_cached(job.task, job.gt, job.split, job.resolution,
                              json.dumps(job.dataset_kwargs, sort_keys=True))


def run_vos_job(job: VOSJob) -> dict:
    """Evaluate one sequence; returns ``{"result": SequenceResult json, "missing": [...],
    "gt_late_objects": [ids]}``."""
    results = Path(job.results)
    missing: list[str] = []
    where = str(results / job.seq)
    ds = _job_dataset(job)
    if job.task == "segtrackv2":
        return {"result": _segtrack_job(job, ds, missing).to_json(), "missing": missing,
                "gt_late_objects": []}
    rec = ds.videos[ds.video_ids.index(job.seq)]
    if job.task == "davis2017_unsupervised":
        got = list(ds.gt_label_maps(job.seq))
        gts = [g for _, _, g in got]
        names = [n for n, _, _ in got]
        preds = [_pred_reader(results, job.seq, n, g.shape, job.allow_missing, missing)()
                 for n, g in zip(names, gts)]
        res = eval_unsupervised_sequence(job.seq, gts, preds, names, bound_th=job.bound_th,
                                         where=where)
    else:
        def frames():
            for name, _, g in ds.gt_label_maps(job.seq):
                yield name, g, _pred_reader(results, job.seq, name, g.shape, job.allow_missing,
                                            missing)

        if job.task == "davis2016":
            res = eval_davis2016_sequence(job.seq, frames(), with_t=job.with_t,
                                          bound_th=job.bound_th, where=where)
        else:
            res = eval_semisupervised_sequence(job.seq, frames(), with_t=job.with_t,
                                               bound_th=job.bound_th, where=where,
                                               check_labels=not job.ignore_extra_labels)
    return {"result": res.to_json(), "missing": missing,
            "gt_late_objects": list(rec.extra.get("late_objects", []))}


def _segtrack_job(job: VOSJob, ds, missing: list) -> SequenceResult:
    if job.seq not in ds.video_ids:
        raise EvaluationError(f"{job.gt}: no SegTrack v2 sequence named {job.seq!r}")
    sample = ds[job.seq]
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


#: bump when a change of the evaluation changes numbers in a way the code hash cannot see
EVALUATOR_VERSION = 2
_EVAL_CODE = ("metrics/vos.py", "metrics/functional.py", "metrics/tstab.py", "metrics/runner.py",
              "metrics/_grid_dijkstra.c", "data/datasets/base.py", "data/datasets/davis.py",
              "data/datasets/segtrackv2.py", "data/datasets/ytvis.py", "structures/masks.py",
              "utils/io.py")


@functools.lru_cache(maxsize=1)
def evaluator_version() -> str:
    """``EVALUATOR_VERSION`` + the SHA-256 of the code that reads ground truth / results and
    computes the numbers (a code change invalidates every cached sequence)."""
    root = Path(__file__).resolve().parent.parent
    h = hashlib.sha256(f"v{EVALUATOR_VERSION}".encode())
    for rel in _EVAL_CODE:
        p = root / rel
        h.update(rel.encode() + b"\0" + (p.read_bytes() if p.is_file() else b"-") + b"\0")
    return h.hexdigest()


def _hash_file(h, p: Path) -> None:
    try:
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    except FileNotFoundError:
        h.update(b"<missing>")
    except OSError as e:
        raise DataError(f"{p}: cannot read ({e.strerror or e})") from e
    h.update(b"\0")


def _gt_files(job: VOSJob, ds) -> list[Path]:
    """Every ground-truth file whose content the sequence's numbers depend on."""
    rec = ds.videos[ds.video_ids.index(job.seq)]
    root = Path(job.gt)
    if job.task == "segtrackv2":
        files = [root / "ImageSets" / "all.txt", root / "ImageSets" / f"{job.seq}.txt"]
        files += [p for per in rec.extra["_masks"] for p in per if p is not None]
    else:
        files = sorted((root / "ImageSets").rglob(f"{job.split}.txt")) if (root / "ImageSets").is_dir() else []
        files += [rec.extra["_ann_paths"][t] for t in sorted(rec.extra["_ann_paths"])]
    return files


def _job_key(job: VOSJob, ds=None) -> str:
    """SHA-256 over the options, the evaluator version, and the content of the sequence's
    ground-truth files and result files (names, then bytes)."""
    ds = ds if ds is not None else _job_dataset(job)
    h = hashlib.sha256(json.dumps({k: v for k, v in job.__dict__.items()}, sort_keys=True,
                                  default=str).encode())
    h.update(evaluator_version().encode())
    rec = ds.videos[ds.video_ids.index(job.seq)]
    h.update(json.dumps([str(p) for p in rec.frame_paths]).encode())  # image/annotation pairing
    for p in _gt_files(job, ds):
        h.update(f"gt:{p}:".encode())
        _hash_file(h, p)
    d = Path(job.results) / job.seq
    if d.is_dir():
        for p in list_dir(d):
            if p.suffix.lower() == ".png":
                h.update(f"res:{p.name}:".encode())
                _hash_file(h, p)
    return h.hexdigest()


def _valid_entry(d: Any, key: str) -> bool:
    """A cache entry of the right shape and key whose result parses."""
    if not isinstance(d, dict) or d.get("key") != key or not isinstance(d.get("result"), dict) \
            or not isinstance(d.get("missing", []), list):
        return False
    try:
        SequenceResult.from_json(d["result"])
    except (KeyError, TypeError, ValueError, IndexError):
        return False
    return True


def _cached_run(args: tuple[VOSJob, str | None]) -> dict:
    job, cache_dir = args
    if cache_dir is None:
        return run_vos_job(job)
    key = _job_key(job)
    path = Path(cache_dir) / f"{job.seq}.json"
    if path.is_file():
        try:
            d = json.loads(path.read_text())
        except (ValueError, OSError):  # a torn or foreign cache file: recompute
            d = None
        if _valid_entry(d, key):
            d["cached"] = True
            return d
    out = run_vos_job(job)
    out["key"] = key
    from vosbench.utils.io import write_json
    try:
        write_json(path, out)
    except OSError as e:
        raise DataError(f"{path}: cannot write the evaluation cache ({e.strerror or e})") from e
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


def evaluate_vos_folder(task: str, gt: str | Path, results: str | Path, out: str | Path | None, *,
                        split: str = "val", resolution: str = "480p", workers: int = 1,
                        allow_missing: bool = False, with_t: bool | None = None,
                        t_from_db_info: bool = False, fix_uint8_wrap: bool = False,
                        use_cache: bool = True, progress: bool = True,
                        sequences: Sequence[str] | None = None,
                        dataset_kwargs: dict | None = None,
                        ignore_extra_labels: bool = False, t_all_sequences: bool = False) -> dict:
    """Evaluate a VOS results folder and write the official CSVs plus ``results.json``.

    ``out=None`` computes and returns the same report but writes nothing (no cache either).
    DAVIS-2016 T follows the official protocol when the GT folder has a ``db_info.yml``: only the
    ``eval_t: True`` sequences get T (``t_all_sequences=True``: every sequence);
    ``t_from_db_info`` makes a missing file an error.

    Returns:
        ``{"global": {...flat keys...}, "per_object": rows, "missing_frames": n}``.
    """
    if task not in VOS_TASKS:
        raise ValueError(f"unknown VOS task {task!r}; choose one of {VOS_TASKS}")
    gt, results = Path(gt), Path(results)
    if not results.is_dir():
        raise EvaluationError(f"{results}: results folder not found" if not results.exists()
                              else f"{results}: is a file, expected the results folder")
    kw = dict(split=split, resolution=resolution, workers=workers, allow_missing=allow_missing,
              with_t=with_t, t_from_db_info=t_from_db_info, fix_uint8_wrap=fix_uint8_wrap,
              use_cache=use_cache and out is not None, progress=progress, sequences=sequences,
              dataset_kwargs=dataset_kwargs, ignore_extra_labels=ignore_extra_labels,
              t_all_sequences=t_all_sequences)
    if out is None:
        return _evaluate_vos_folder(task, gt, results, None, **kw)
    with folder_lock(out, "evaluation"):
        return _evaluate_vos_folder(task, gt, results, Path(out), **kw)


def _evaluate_vos_folder(task: str, gt: Path, results: Path, out: Path | None, *, split,
                         resolution, workers, allow_missing, with_t, t_from_db_info,
                         fix_uint8_wrap, use_cache, progress, sequences, dataset_kwargs,
                         ignore_extra_labels, t_all_sequences) -> dict:
    if with_t is None:
        with_t = task == "davis2016"
    ds = gt_dataset(task, gt, split, resolution, dataset_kwargs)
    seqs = list(ds.video_ids)
    if sequences is not None:
        seqs = [s for s in seqs if s in set(sequences)]
    t_seqs = set(seqs)
    info = getattr(ds, "db_info", None)  # Annotations/db_info.yml (or db_info.yml), when present
    t_protocol = "all sequences"
    if task == "davis2016" and with_t and info is not None and not t_all_sequences:
        # the official DAVIS-2016 rule: T only for `eval_t: True` sequences (unlisted: none)
        t_seqs = {s for s in seqs if info.eval_t(s)}
        t_protocol = "eval_t sequences of db_info.yml (official)"
    elif task == "davis2016" and with_t and t_from_db_info and info is None:
        raise DataError(f"{gt}: --t-from-db-info needs Annotations/db_info.yml (or db_info.yml)")
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
    late = {j.seq: o["gt_late_objects"] for j, o in zip(jobs, outs) if o.get("gt_late_objects")}
    if task == "davis2016":
        glob, rows = summarize_sequences(seq_results, fix_uint8_wrap=fix_uint8_wrap)
    else:
        glob, rows = summarize_objects(seq_results, fix_uint8_wrap=fix_uint8_wrap)
    has_t = "T_mean" in glob
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
              "gt_late_objects": late, "t_protocol": t_protocol if has_t else None,
              "cached_sequences": sum(1 for o in outs if o.get("cached"))}
    if out is None:
        return report
    # every number is computed: only now are the reports written (each atomically)
    gcols = GLOBAL_COLUMNS + (["T-Mean"] if has_t else [])
    _write_csv(out / f"global_results-{split}.csv", gcols,
               [[_fmt(glob.get(_GLOBAL_KEYS[c], float("nan"))) for c in gcols]])
    pcols = PER_SEQ_COLUMNS + (["T-Mean"] if has_t else [])
    _write_csv(out / f"per-sequence_results-{split}.csv", pcols,
               [[r["Sequence"]] + [_fmt(r.get(c, float("nan"))) for c in pcols[1:]] for r in rows])
    from vosbench.utils.io import write_json
    write_json(out / "results.json", _jsonable(report))
    return report


def _find_results_json(results: Path) -> Any:
    """The results file of a folder / zip / json path (a zip's results.json is loaded)."""
    if results.is_dir():
        cand = results / "results.json"
        if not cand.is_file():
            raise EvaluationError(f"{results}: no results.json in the results folder")
        return cand
    if results.suffix == ".zip" and results.is_file():
        try:
            with zipfile.ZipFile(results) as z:
                names = [n for n in z.namelist() if n.endswith("results.json")]
                if not names:
                    raise EvaluationError(f"{results}: the zip holds no results.json")
                raw = z.read(names[0])
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError) as e:
            raise EvaluationError(f"{results}: corrupt or unreadable zip ({e})") from e
        try:
            return json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise EvaluationError(f"{results}: {names[0]} in the zip is not valid JSON ({e})") from e
    if not results.is_file():
        raise EvaluationError(f"{results}: results file not found")
    return results


def evaluate_ytvis_folder(gt: str | Path, results: str | Path, out: str | Path | None, *,
                          split: str = "valid") -> dict:
    """Evaluate a YouTube-VIS ``results.json`` (file, folder or zip) and write the reports
    (``out=None``: return the report, write nothing)."""
    if out is None:
        return _evaluate_ytvis_folder(gt, results, None, split=split)
    out = Path(out)
    with folder_lock(out, "evaluation"):
        return _evaluate_ytvis_folder(gt, results, out, split=split)


def _evaluate_ytvis_folder(gt, results, out: Path | None, *, split: str) -> dict:
    from vosbench.metrics.vis import SUMMARY_KEYS, evaluate_ytvis_json
    res = _find_results_json(Path(results))
    summary, per_cat, extra = evaluate_ytvis_json(gt, res, return_details=True)
    names = extra["category_names"]
    report = {"task": "ytvis", "split": split,
              "global": {k: summary[k] for k in SUMMARY_KEYS},
              "per_category": {names.get(c, str(c)): ap for c, ap in per_cat.items()},
              "per_video": extra["per_video"],
              "num_mismatched_pairs": extra["num_mismatched_pairs"]}
    if out is None:
        return report
    _write_csv(out / f"global_results-{split}.csv", list(SUMMARY_KEYS),
               [[_fmt(summary[k]) for k in SUMMARY_KEYS]])
    from vosbench.utils.io import write_json
    write_json(out / "results.json", _jsonable(report))
    return report
