"""``python tools/bench.py [SUITE] [options]``: run a benchmark suite and write its leaderboard.

Exit status: 0 success; 1 a job failed or ``--verify`` found a metric outside its tolerance;
2 a bad suite or bad options (the message says what and where).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from vosbench.bench import report as report_mod
from vosbench.bench import verify as verify_mod
from vosbench.bench.cache import ResultCache, default_cache_dir
from vosbench.bench.provenance import collect
from vosbench.bench.runner import (parse_shard, plan_suite, resolve_device, run_jobs, shard_jobs,
                                   stale_loaded_fps)
from vosbench.bench.suite import SuiteError, load_suite
from vosbench.utils.io import DataError, read_json, write_json
from vosbench.utils.threads import add_threads_argument, cpu_cores, limit_threads

ROOT_OPTIONS = ("davis2016-root", "davis2017-root", "segtrackv2-root", "ytvis2019-root")


def _kv(text: str, what: str) -> tuple[str, str]:
    if "=" not in text:
        raise SuiteError(f"{what} expects KEY=VALUE, got {text!r}")
    k, v = text.split("=", 1)
    return k.strip(), v.strip()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="vosbench bench",
        description="Run a vosbench benchmark suite (benchmarks/suites/<SUITE>.yaml) and write "
                    "bench_out/<suite>/<timestamp>/{leaderboard.md,leaderboard.csv,results.json,"
                    "report.html}. With no arguments: the default suite (synthetic VOS + VIS data, "
                    "davis2016-mini when present): about 1-2 minutes on a 2-core CPU from an empty "
                    "cache, seconds when cached (measured: benchmarks/RESULTS.md, #20).")
    p.add_argument("suite", nargs="?", default="default",
                   help="suite name in benchmarks/suites/ or a path to a suite YAML (default: default)")
    for opt in ROOT_OPTIONS:
        p.add_argument(f"--{opt}", metavar="PATH", help=f"dataset root for suite entries with "
                       f"root_option: {opt}")
    p.add_argument("--root", action="append", default=[], metavar="KEY=PATH",
                   help="dataset root for the suite dataset KEY (repeatable)")
    p.add_argument("--checkpoint", action="append", default=[], metavar="ROW=PATH",
                   help="checkpoint for the suite row ROW (repeatable)")
    p.add_argument("--rows", help="comma-separated rows to run (default: all)")
    p.add_argument("--datasets", help="comma-separated suite dataset keys to run (default: all)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default: auto)")
    p.add_argument("--output-root", default="bench_out", help="parent of <suite>/<timestamp>/")
    p.add_argument("--out", help="exact output folder (default: <output-root>/<suite>/<timestamp>)")
    p.add_argument("--cache-dir", default=None,
                   help="result + generated-data cache (default: $VOSBENCH_CACHE or ~/.cache/vosbench)")
    p.add_argument("--no-cache", action="store_true",
                   help="recompute every job (results still refresh the cache)")
    p.add_argument("--verify", action="store_true",
                   help="check the suite's expected values; exit 1 when one is out of tolerance")
    p.add_argument("--shard", metavar="I/N",
                   help="run only jobs with index %% N == I and write shards/shard-I-of-N.json "
                        "into --out; combine with --merge")
    p.add_argument("--workers", type=int, default=None,
                   help="run N shards as N processes, then merge (one GPU each with --gpus); "
                        "default: one single-threaded process per CPU core on CPU, 1 on GPU")
    p.add_argument("--gpus", help="comma-separated GPU ids handed round-robin to --workers")
    p.add_argument("--merge", metavar="DIR", help="merge DIR/shards/*.json into DIR's report")
    p.add_argument("--list", action="store_true", help="print the jobs and their cache state, run nothing")
    p.add_argument("--no-plots", action="store_true", help="skip the matplotlib plots")
    p.add_argument("--fail-fast", action="store_true",
                   help="stop at the first job that raises (default: report it and go on)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--loaded-fps-max-age", type=float, default=24.0, metavar="HOURS",
                   help="re-run a cached CPU result whose FPS was measured under load (its process "
                        "got < 80%% of its CPU time) once it is older than HOURS (default 24; -1: "
                        "never; 0: always)")
    add_threads_argument(p)
    return p


def _out_dir(args, suite_name: str) -> Path:
    if args.out:
        return Path(args.out)
    # timestamp + unique suffix, created exclusively: concurrent runs never share a folder
    from vosbench.bench.runner import make_run_dir

    return make_run_dir(Path(args.output_root) / suite_name)


def _finish(out: Path, run: dict, suite, args, log) -> int:
    verify_rows = verify_mod.check(suite.expected, run["jobs"]) if args.verify else None
    files = report_mod.write_report(out, run, verify_rows=verify_rows, plots=not args.no_plots)
    print(files["leaderboard.md"].read_text())
    log(f"[bench] wrote {', '.join(str(p) for k, p in files.items() if not k.startswith('plots/'))}")
    failed_jobs = [j for j in run["jobs"] if j.get("failed")]
    for j in failed_jobs:
        log(f"[bench] FAILED: {j['row']} on {j['dataset']}: {j['error']}")
    code = 1 if failed_jobs else 0
    if verify_rows is not None:
        if verify_mod.failed(verify_rows):
            log("[bench] --verify FAILED: metrics outside their tolerance (see the Verify table)")
            return 1
        not_run = [r for r in verify_rows if r["status"] == "not run"]
        log(f"[bench] --verify ok ({len(verify_rows) - len(not_run)} checked"
            + (f", {len(not_run)} not run: datasets skipped or deselected" if not_run else "") + ")")
    return code


def merge(out: Path, args, log) -> int:
    shard_files = sorted((out / "shards").glob("shard-*-of-*.json"))
    if not shard_files:
        raise SuiteError(f"--merge {out}: no shards/shard-*-of-*.json files")
    shards = [read_json(p) for p in shard_files]
    n = shards[0]["num_shards"]
    got = sorted(s["shard"] for s in shards)
    if any(s["num_shards"] != n for s in shards) or got != list(range(n)):
        raise SuiteError(f"--merge {out}: expected shards 0..{n - 1}, found {got} "
                         f"(files: {[p.name for p in shard_files]})")
    run = dict(shards[0]["run"])
    run["jobs"] = sorted((j for s in shards for j in s["run"]["jobs"]), key=lambda j: j["job"]["index"])
    if len(run["jobs"]) != shards[0]["num_jobs"]:
        raise SuiteError(f"--merge {out}: {len(run['jobs'])} job results for {shards[0]['num_jobs']} jobs")
    run["provenance"]["command"] += f"  (merged from {n} shards)"
    suite = load_suite(run["suite_path"])
    return _finish(out, run, suite, args, log)


def _auto_workers(plan, cache, shard, max_age_h: float = 24.0) -> int:
    """On CPU: one single-threaded process per core, but no more than the jobs left to run.

    Processes, not threads: the tiny methods' tensors are too small for intra-op threads to pay
    off, and when another program holds a core, OpenMP threads that wait for each other slowed a
    MaskRNN video from 3 s to 120 s (benchmarks/RESULTS.md). On GPU: one process.
    """
    # ``shard`` is what parse_shard returns: (0, 1) means "not sharded" (a worker has n > 1).
    if (shard is not None and shard[1] > 1) or not str(plan.device).startswith("cpu"):
        return 1
    todo = 0
    for j in plan.jobs:
        entry = cache.get(j.row, j.dataset, j.key)
        todo += not entry or bool(stale_loaded_fps(entry, plan.device, max_age_h))
    return max(1, min(cpu_cores(), todo))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    argv_full = ["tools/bench.py", *(sys.argv[1:] if argv is None else argv)]

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    try:
        if args.merge:
            return merge(Path(args.merge), args, log)
        suite = load_suite(args.suite)
        suite = suite.select(args.rows.split(",") if args.rows else None,
                             args.datasets.split(",") if args.datasets else None)
        roots = dict(_kv(r, "--root") for r in args.root)
        for opt in ROOT_OPTIONS:
            v = getattr(args, opt.replace("-", "_"))
            if v:
                roots[opt] = v
        # Root options the suite does not use are harmless (the default suite has no davis2017).
        used = {d.root_option for d in suite.datasets.values()}
        roots = {k: v for k, v in roots.items() if k in suite.datasets or k in used}
        checkpoints = dict(_kv(c, "--checkpoint") for c in args.checkpoint)
        cache_dir = Path(args.cache_dir) if args.cache_dir else default_cache_dir()
        shard = parse_shard(args.shard)
        limit_threads(args.threads, device=resolve_device(args.device))  # workers inherit it
        if args.workers is not None and args.workers > 1 and args.shard:
            raise SuiteError("--workers and --shard are exclusive (workers set their own shards)")
        plan = plan_suite(suite, cache_dir=cache_dir, roots=roots, checkpoints=checkpoints,
                          device=args.device, log=log)
        cache = ResultCache(cache_dir, enabled=not args.no_cache)
        if args.list:
            for j in plan.jobs:
                state = "cached" if cache.get(j.row, j.dataset, j.key) else "to run"
                print(f"{j.index:3d}  {j.row:28s} {j.dataset:20s} {j.metric:12s} {state}  key={j.key[:12]}")
            return 0
        out = _out_dir(args, suite.name)
        if args.workers is None:
            args.workers = _auto_workers(plan, cache, shard, args.loaded_fps_max_age)
        if args.workers > 1:
            return run_workers(args, out, argv_full, log)
        jobs = shard_jobs(plan.jobs, shard)
        results = run_jobs(plan, jobs, cache, progress=not args.no_progress, log=log,
                           fail_fast=args.fail_fast, loaded_fps_max_age_h=args.loaded_fps_max_age)
        run = {
            "suite": suite.name, "suite_path": str(suite.path), "description": suite.description,
            "provenance": collect(suite_text=suite.raw_text, device=plan.device, argv=argv_full,
                                  row_config_hashes={f"{j.row}@{j.dataset}": j.config_hash
                                                     for j in plan.jobs}),
            "datasets": {k: dict(v) for k, v in plan.dataset_info.items()},
            "jobs": results, "skipped": plan.skipped,
        }
        if shard[1] > 1:
            p = out / "shards" / f"shard-{shard[0]}-of-{shard[1]}.json"
            write_json(p, {"shard": shard[0], "num_shards": shard[1], "num_jobs": len(plan.jobs),
                           "run": run}, indent=1)
            log(f"[bench] shard {shard[0]}/{shard[1]} done: {p}; when all shards are done run "
                f"`python tools/bench.py --merge {out}`")
            return 0
        return _finish(out, run, suite, args, log)
    except (SuiteError, DataError) as e:
        print(f"bench: error: {e}", file=sys.stderr)
        return 2


def run_workers(args, out: Path, argv_full: list[str], log) -> int:
    """Run ``--workers N`` shards as subprocesses (datasets were already prepared), then merge."""
    n = args.workers
    gpus = args.gpus.split(",") if args.gpus else []
    # Drop --workers/--gpus/--out (and their values) from the command line of the children.
    child_args, skip = [], False
    for a in argv_full[1:]:
        if skip:
            skip = False
            continue
        if a in ("--workers", "--gpus", "--out"):
            skip = True
            continue
        if a.startswith(("--workers=", "--gpus=", "--out=")):
            continue
        child_args.append(a)
    procs = []
    import vosbench

    # The children run `python -m vosbench bench`: make this vosbench importable there too when it
    # runs from a clone without install (tools/bench.py put the clone on sys.path, not PYTHONPATH).
    pkg_parent = str(Path(vosbench.__file__).resolve().parents[1])
    for i in range(n):
        env = dict(os.environ)
        if (Path(pkg_parent) / "tools" / "bench.py").is_file() and \
                pkg_parent not in os.environ.get("PYTHONPATH", "").split(os.pathsep):
            env["PYTHONPATH"] = os.pathsep.join(p for p in (pkg_parent, os.environ.get("PYTHONPATH")) if p)
        if gpus:
            env["CUDA_VISIBLE_DEVICES"] = gpus[i % len(gpus)]
        else:  # CPU workers share the cores instead of each taking all of them
            env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // n)))
        cmd = [sys.executable, "-m", "vosbench", "bench", *child_args,
               "--shard", f"{i}/{n}", "--out", str(out), "--no-progress"]
        log(f"[bench] worker {i}: {' '.join(cmd)}" + (f" (GPU {env['CUDA_VISIBLE_DEVICES']})" if gpus else ""))
        procs.append(subprocess.Popen(cmd, env=env))
    codes = [p.wait() for p in procs]
    if any(codes):
        log(f"[bench] worker exit codes {codes}: not merging")
        return max(codes)
    return merge(out, args, log)
