"""Plan and run a suite: rows x datasets -> jobs -> cached results.

``plan_suite`` checks everything a run needs before any model runs (configs exist, names are
registered, checkpoints exist, roots exist), builds the datasets and gives each job its cache key.
``run_jobs`` runs the jobs of one shard through the shared engine
(``vosbench.engine.inference_on_dataset``) or takes them from the cache.
"""
from __future__ import annotations

import inspect
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from vosbench.bench.cache import REPO, ResultCache, canonical_hash, file_sha256, tree_hash
from vosbench.bench.curves import mean_curve
from vosbench.bench.suite import METRIC_TASK, DatasetSpec, Suite, SuiteError
from vosbench.config import CONFIG_DIR


@dataclass
class Job:
    """One (row, dataset) cell of the leaderboard."""

    index: int
    row: str
    dataset: str
    method_config: str        # configs/method/<name>.yaml
    task: str                 # "vos" | "vis"
    metric: str               # METRICS name
    metric_args: dict         # keyword arguments of the evaluator
    method_cfg: dict          # resolved cfg.method
    dataset_cfg: dict         # resolved cfg.dataset (with the root actually used)
    checkpoint: str | None
    checkpoint_sha256: str | None
    max_videos: int | None
    config_hash: str          # hash of method_cfg
    key: str                  # cache key (see vosbench.bench.cache)
    dataset_ref: str = ""     # key of the built dataset in Plan.datasets
    overrides: list[str] = field(default_factory=list)

    def summary(self) -> dict:
        return asdict(self)


@dataclass
class Plan:
    suite: Suite
    jobs: list[Job]
    skipped: list[dict]           # {"dataset" | "row", "reason"}
    datasets: dict[str, Any]      # hash of the resolved dataset config -> built dataset
    dataset_info: dict[str, dict]  # key -> {task, metric, num_videos, root, note, reported_as}
    device: str


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))


def _resolve_path(p: str | Path) -> Path:
    # Relative: the working folder's file if there is one, else the shipped one (the clone's,
    # or the package data's after `pip install .`: methods/<name>/weights/*.pth).
    from vosbench.utils.resources import resolve_shipped

    return resolve_shipped(p)


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise SuiteError(f"device {device!r} requested but CUDA is not available")
    return device


def _dataset_root(spec: DatasetSpec, roots: dict[str, str], cache_dir: Path,
                  cfg_hash: str) -> tuple[Path | None, str | None]:
    """Returns (root, why_missing)."""
    given = roots.get(spec.key) or (roots.get(spec.root_option) if spec.root_option else None)
    if given is None and spec.root in (None, "cache"):
        # Generated data (synthetic): one folder per dataset config, so changing a generation
        # parameter never reads data generated with the old one.
        return cache_dir / "data" / f"{spec.key}-{cfg_hash[:12]}", None
    root = _resolve_path(given or spec.root)  # type: ignore[arg-type]
    if not root.exists():
        how = f" (pass --{spec.root_option} PATH)" if spec.root_option else \
            f" (pass --root {spec.key}=PATH)"
        return None, f"root {root} does not exist{how}"
    return root, None


def plan_suite(suite: Suite, *, cache_dir: Path, roots: dict[str, str] | None = None,
               checkpoints: dict[str, str] | None = None, device: str = "auto",
               log: Callable[[str], None] = print) -> Plan:
    """Check the suite against the code and the disk, build datasets, and list the jobs.

    Raises:
        SuiteError: unknown method / dataset / metric, a missing checkpoint, a missing root of a
            non-optional dataset, a method and dataset of different tasks named explicitly.
    """
    from vosbench.config import compose, to_dict
    from vosbench.data import build_dataset
    from vosbench.registry import DATASETS, METHODS, METRICS

    roots = dict(roots or {})
    checkpoints = dict(checkpoints or {})
    for r in checkpoints:
        suite.row(r)  # an override for an unknown row is a typo: fail loudly
    for k in roots:
        known = set(suite.datasets) | {d.root_option for d in suite.datasets.values() if d.root_option}
        if k not in known:
            raise SuiteError(f"--root {k}=...: suite {suite.name!r} has no dataset {k!r}; "
                             f"datasets: {sorted(suite.datasets)}")
    device = resolve_device(device)
    where = str(suite.path)

    # --- static checks first: nothing is built before the whole suite is known to be valid.
    method_opts, dataset_opts = _options("method"), _options("dataset")
    for spec in suite.datasets.values():
        if spec.config not in dataset_opts:
            raise SuiteError(f"{where}: dataset {spec.key!r} names unknown dataset config "
                             f"{spec.config!r} (configs/dataset/{spec.config}.yaml does not "
                             f"exist); available: {dataset_opts}")
        if spec.metric is not None and spec.metric not in METRICS:
            raise SuiteError(f"{where}: dataset {spec.key!r} names unknown metric {spec.metric!r}; "
                             f"registered metrics: {METRICS.list()}")
    ckpt_paths: dict[str, Path | None] = {}
    for m in suite.methods:
        if m.method not in method_opts:
            raise SuiteError(f"{where}: row {m.row!r} names unknown method {m.method!r} "
                             f"(configs/method/{m.method}.yaml does not exist); available: "
                             f"{method_opts}")
        ck = checkpoints.get(m.row, m.checkpoint)
        if ck:
            p = _resolve_path(ck)
            if not p.is_file():
                others = ",".join(r.row for r in suite.methods if r.row != m.row) or "..."
                raise SuiteError(f"{where}: row {m.row!r}: checkpoint {p} does not exist (train it "
                                 f"with tools/train.py, pass --checkpoint {m.row}=PATH, or run the "
                                 f"other rows only: --rows {others})")
            ckpt_paths[m.row] = p
        else:
            ckpt_paths[m.row] = None

    code_vosbench = tree_hash(REPO / "vosbench", exclude=("bench",))
    jobs: list[Job] = []
    skipped: list[dict] = []
    built: dict[str, Any] = {}          # dataset cfg hash -> dataset
    fingerprints: dict[tuple[str, int | None], list] = {}
    info: dict[str, dict] = {}
    method_code: dict[str, str] = {}
    missing_root: dict[str, str] = {}

    for m in suite.methods:
        ds_keys = m.datasets if m.datasets is not None else list(suite.datasets)
        for dkey in ds_keys:
            spec = suite.datasets[dkey]
            if dkey in missing_root:
                continue
            try:
                cfg = compose([f"method={m.method}", f"dataset={spec.config}", *spec.overrides,
                               *m.overrides])
            except Exception as e:  # Hydra's errors name the bad override; add where it came from
                raise SuiteError(f"{where}: row {m.row!r} x dataset {dkey!r}: cannot compose "
                                 f"config ({type(e).__name__}: {e})") from e
            method_cfg, dataset_cfg = to_dict(cfg.method), to_dict(cfg.dataset)
            for what, c, reg in (("method", method_cfg, METHODS), ("dataset", dataset_cfg, DATASETS)):
                if c.get("name") not in reg:
                    try:
                        reg.get(str(c.get("name")))
                    except KeyError as e:
                        raise SuiteError(f"{where}: {what} config {c.get('name')!r} (row {m.row!r}, "
                                         f"dataset {dkey!r}): {e.args[0]}") from None
            method_cls = METHODS.get(method_cfg["name"])
            ds_cfg_no_root = {k: v for k, v in dataset_cfg.items() if k != "root"}
            ds_hash = canonical_hash(ds_cfg_no_root)
            root, why = _dataset_root(spec, roots, cache_dir, ds_hash)
            if root is None:
                if not spec.optional:
                    raise SuiteError(f"{where}: dataset {dkey!r}: {why}")
                missing_root[dkey] = why or ""
                skipped.append({"dataset": dkey, "reason": f"skipped: {why}"})
                log(f"[bench] skipping dataset {dkey!r}: {why}")
                continue
            dataset_cfg["root"] = str(root)
            bkey = canonical_hash(dataset_cfg)
            if bkey not in built:
                log(f"[bench] preparing dataset {dkey!r} ({dataset_cfg['name']}, root {root})")
                try:
                    built[bkey] = build_dataset(dataset_cfg)
                except Exception as e:
                    raise SuiteError(f"{where}: dataset {dkey!r}: cannot build "
                                     f"{dataset_cfg['name']!r} from {root}: {type(e).__name__}: {e}") from e
            dataset = built[bkey]
            d_task = getattr(dataset, "task", None)
            metric = spec.metric or getattr(dataset, "metric", None)
            if metric is None:
                raise SuiteError(f"{where}: dataset {dkey!r}: its class has no 'metric'; set "
                                 f"'metric:' in the suite")
            d_task = d_task or METRIC_TASK.get(metric)
            if d_task != method_cls.task:
                if m.datasets is not None:
                    raise SuiteError(f"{where}: row {m.row!r} ({method_cls.task.upper()}) cannot run "
                                     f"on dataset {dkey!r} ({str(d_task).upper()})")
                continue  # implicit dataset list = "every dataset of the method's task"
            if dkey not in info:
                info[dkey] = {"task": d_task, "metric": metric, "num_videos": len(dataset),
                              "root": str(root), "config": spec.config, "note": spec.note,
                              "reported_as": spec.reported_as, "max_videos": spec.max_videos,
                              "dataset_cfg": dataset_cfg}
                # db_info.yml attributes / eval_t of the videos (per-attribute results, #21)
                from vosbench.data.datasets.davis_info import dataset_attributes

                info[dkey].update(dataset_attributes(dataset, spec.max_videos))
            if method_cls.__module__ not in method_code:
                pkg = Path(inspect.getfile(method_cls)).parent
                method_code[method_cls.__module__] = tree_hash(pkg)
            ck = ckpt_paths[m.row]
            ck_sha = file_sha256(ck) if ck else None
            if (bkey, spec.max_videos) not in fingerprints:
                n = len(dataset) if spec.max_videos is None else min(len(dataset), spec.max_videos)
                fingerprints[(bkey, spec.max_videos)] = [
                    (str(s.video_id), len(s.frames), list(s.orig_size))
                    for s in (dataset[i] for i in range(n))]
            fingerprint = fingerprints[(bkey, spec.max_videos)]
            config_hash = canonical_hash(method_cfg)
            key = canonical_hash({
                "method_cfg": method_cfg, "checkpoint_sha256": ck_sha,
                "dataset_cfg": ds_cfg_no_root, "root": str(root), "max_videos": spec.max_videos,
                "videos": fingerprint, "metric": metric, "metric_args": spec.metric_args,
                "code": [code_vosbench, method_code[method_cls.__module__]],
                "device": device.split(":")[0],
            })
            jobs.append(Job(index=len(jobs), row=m.row, dataset=dkey, method_config=m.method,
                            task=d_task, metric=metric, metric_args=dict(spec.metric_args), method_cfg=method_cfg,
                            dataset_cfg=dataset_cfg, checkpoint=str(ck) if ck else None,
                            checkpoint_sha256=ck_sha, max_videos=spec.max_videos,
                            config_hash=config_hash, key=key, dataset_ref=bkey, overrides=list(m.overrides)))
    for m in suite.methods:
        if not any(j.row == m.row for j in jobs) and not (m.datasets and all(d in missing_root for d in m.datasets)):
            ds = m.datasets or list(suite.datasets)
            skipped.append({"row": m.row, "reason": f"no dataset of its task among {ds}"})
            log(f"[bench] row {m.row!r} has no dataset to run on (datasets {ds})")
    for dkey in suite.datasets:
        if dkey not in info and dkey not in missing_root:
            skipped.append({"dataset": dkey, "reason": "no row of this suite runs on it (no method "
                                                       "of its task, or rows list other datasets)"})
            log(f"[bench] dataset {dkey!r}: no row runs on it")
    return Plan(suite=suite, jobs=jobs, skipped=skipped, datasets=built,
                dataset_info=info, device=device)


def make_run_dir(base: str | Path, *, now: float | None = None) -> Path:
    """Create and return a new run folder ``<base>/<UTC timestamp>-<random suffix>``.

    Created exclusively (``mkdir`` without ``exist_ok``, retried with a new suffix on a clash),
    so two runs started in the same second never share a folder and never overwrite each
    other's leaderboard (checking ``exists()`` and creating later is a race between processes).
    """
    import secrets

    base = Path(base)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(now))
    try:
        base.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SuiteError(f"{base}: cannot create the output folder ({e.strerror or e})") from e
    for _ in range(100):
        out = base / f"{stamp}-{secrets.token_hex(3)}"
        try:
            out.mkdir()
            return out
        except FileExistsError:
            continue
        except OSError as e:
            raise SuiteError(f"{out}: cannot create the run folder ({e.strerror or e})") from e
    raise SuiteError(f"{base}: could not create a unique run folder")  # pragma: no cover


def parse_shard(text: str | None) -> tuple[int, int]:
    """``"i/n"`` (0-based i) -> (i, n); None -> (0, 1)."""
    if not text:
        return 0, 1
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise SuiteError(f"--shard must look like i/n (e.g. 0/4), got {text!r}") from None
    if n < 1 or not 0 <= i < n:
        raise SuiteError(f"--shard {text}: need 0 <= i < n")
    return i, n


def shard_jobs(jobs: list[Job], shard: tuple[int, int]) -> list[Job]:
    """Round-robin split of the (deterministically ordered) jobs."""
    i, n = shard
    return [j for j in jobs if j.index % n == i]


def _clean(x: Any) -> Any:
    """Make a value strict-JSON: NaN/inf -> None, tensors/numpy -> Python."""
    if hasattr(x, "tolist"):
        x = x.tolist()
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    return x


# Keys of inference_on_dataset's result that are not metrics.
ENGINE_KEYS = {"fps", "model_time_s", "num_videos", "num_frames", "peak_mem_mb", "peak_rss_mb",
               "peak_mem_delta_mb", "files"}


def _video_names(dataset) -> dict:
    """YouTube-VIS json video id (the evaluator's key) -> video name (the db_info name)."""
    out = {}
    for rec in getattr(dataset, "videos", []):
        key = rec.extra.get("ytvis_id", rec.video_id)
        try:
            key = int(key)
        except (TypeError, ValueError):
            pass
        out[key] = rec.video_id
    return out


def run_job(job: Job, dataset, *, device: str, progress: bool = True) -> dict:
    """Build the method, load its checkpoint, run the engine's inference with the evaluator.

    Returns the cache entry: metrics, per-sequence rows, J curve, fps, peak memory, parameters.
    """
    import torch

    from vosbench.bench.stats import video_stats_to_json
    from vosbench.config import build
    from vosbench.engine import inference_on_dataset
    from vosbench.metrics import build_evaluator
    from vosbench.registry import METHODS

    torch.manual_seed(0)  # methods with random test-time augmentation stay reproducible
    model = build(dict(job.method_cfg), METHODS)
    if job.checkpoint:
        from vosbench.engine.checkpoint import load_model_weights

        load_model_weights(model, job.checkpoint)
    model.to(device).eval()
    params = sum(p.numel() for p in model.parameters())
    evaluator = build_evaluator(job.metric, **job.metric_args)
    t0, c0 = time.perf_counter(), time.process_time()
    out = inference_on_dataset(model, dataset, evaluator=evaluator, device=device,
                               max_videos=job.max_videos, progress=progress)
    wall = time.perf_counter() - t0
    # The share of its threads' time this process got: ~1 alone on its cores, ~0.5 when another
    # program competed for them. Recorded so FPS measured under load is not reused forever.
    cpu_share = (time.process_time() - c0) / max(wall, 1e-9) / max(1, torch.get_num_threads())
    metrics = {k: v for k, v in out.items() if k not in ENGINE_KEYS}
    engine = {k: v for k, v in out.items() if k in ENGINE_KEYS and k != "files"}
    per_seq = list(evaluator.per_sequence()) if hasattr(evaluator, "per_sequence") else []
    per_frame = evaluator.per_frame() if hasattr(evaluator, "per_frame") else {}
    # Name the video of each per-object row (rows are "<video>_<id>" for DAVIS-2017).
    video_of = {row: s.name for s in getattr(evaluator, "results", [])
                for row in getattr(s, "row_names", [])}
    for r in per_seq:
        if isinstance(r, dict) and "Sequence" in r:
            r.setdefault("video", video_of.get(r["Sequence"], r["Sequence"]))
    # YouTube-VIS: the per-video matching inputs, so the report can bootstrap AP over videos
    # (vosbench/bench/stats.py). No public accessor yet (requested): the evaluator's list.
    vstats = getattr(evaluator, "video_stats", None)
    vstats = vstats() if callable(vstats) else getattr(evaluator, "_videos", None)
    return _clean({
        "row": job.row, "dataset": job.dataset, "metrics": metrics,
        "fps": out.get("fps"), "peak_mem_mb": out.get("peak_mem_mb"), "params": params,
        "engine": engine, "per_sequence": per_seq,
        "per_frame": {row: {"video": video_of.get(row, row), "J": d.get("J"), "F": d.get("F")}
                      for row, d in per_frame.items()},
        "j_curve": mean_curve(per_frame),
        **({"video_stats": video_stats_to_json(vstats, _video_names(dataset))}
           if job.task == "vis" and vstats else {}),
        "wall_s": wall, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cpu_share": round(min(1.0, cpu_share), 3) if str(device).startswith("cpu") else None,
    })


#: below this CPU share (see ``run_job``) a cached FPS counts as measured under load
LOADED_CPU_SHARE = 0.8


def stale_loaded_fps(entry: dict, device: str, max_age_h: float) -> str | None:
    """Why a cached CPU result is re-run: its FPS was measured under load (or with no recorded
    CPU share) more than ``max_age_h`` hours ago; None when it can be reused.

    A result measured with the cores to itself is reused for as long as its key holds; one
    measured under load only for ``max_age_h`` (``bench --loaded-fps-max-age``), so a quieter
    run re-measures it instead of repeating a contended number forever.
    """
    if not str(device).startswith("cpu") or max_age_h < 0:
        return None
    share = entry.get("cpu_share")
    if share is not None and float(share) >= LOADED_CPU_SHARE:
        return None
    try:
        import calendar

        created = calendar.timegm(time.strptime(entry.get("created", ""), "%Y-%m-%dT%H:%M:%SZ"))
    except (TypeError, ValueError):
        created = 0.0
    age_h = (time.time() - created) / 3600
    if age_h <= max_age_h:
        return None
    what = f"the process got {float(share):.0%} of its CPU time" if share is not None else \
        "no CPU share recorded"
    return f"its FPS was measured under load ({what}) {age_h:.0f} h ago"


def run_jobs(plan: Plan, jobs: list[Job], cache: ResultCache, *, progress: bool = True,
             loaded_fps_max_age_h: float = 24.0,
             log: Callable[[str], None] = print, fail_fast: bool = False) -> list[dict]:
    """Run (or fetch from the cache) every job; returns one result dict per job, in order.

    A job that raises (bad checkpoint keys, a method bug) does not stop the others: its result
    is ``{"failed": True, "error": ...}``, never cached, and listed as failed in the report
    (the CLI then exits non-zero). ``fail_fast`` re-raises instead, with the traceback.
    """
    from tqdm import tqdm

    results = []
    bar = tqdm(jobs, desc="bench jobs", unit="job", disable=not progress or not jobs,
               file=sys.stderr, dynamic_ncols=True)
    if progress and jobs:
        def log(msg: str) -> None:  # noqa: F811  (keep log lines from tearing the progress bar)
            bar.write(msg, file=sys.stderr)
    for job in bar:
        bar.set_postfix_str(f"{job.row} on {job.dataset}")
        entry = cache.get(job.row, job.dataset, job.key)
        stale = stale_loaded_fps(entry, plan.device, loaded_fps_max_age_h) if entry else None
        if stale:
            log(f"[bench] {job.row} on {job.dataset}: cached, but {stale}: re-measuring")
            entry = None
        if entry is not None:
            log(f"[bench] {job.row} on {job.dataset}: cached ({cache.path(job.row, job.dataset, job.key)})")
            cached = True
        else:
            log(f"[bench] {job.row} on {job.dataset}: running ({job.metric} evaluator, {plan.device})")
            try:
                entry = run_job(job, plan.datasets[job.dataset_ref], device=plan.device,
                                progress=progress)
            except Exception as e:
                if fail_fast:
                    raise
                log(f"[bench] {job.row} on {job.dataset}: FAILED ({type(e).__name__}: {e}); "
                    f"continuing (--fail-fast for the traceback)")
                results.append({"row": job.row, "dataset": job.dataset, "failed": True,
                                "error": f"{type(e).__name__}: {e}", "job": job.summary(),
                                "cached": False})
                continue
            cache.put(job.row, job.dataset, job.key, entry)
            cached = False
        results.append({**entry, "job": job.summary(), "cached": cached})
    return results
