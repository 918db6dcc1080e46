#!/usr/bin/env python
"""#20: the main job, ``test`` and ``train`` with DEFAULT settings, before and after, side by side.

    python benchmarks/package_timing.py [--before 21703a2] [--work /tmp/vosbench_timing]

"Before" is commit 21703a2 (``git archive``, nothing is written into the checkout) installed
non-editably into its own venv and run as a clone user would (``python <src>/tools/X.py``, the
only way it worked); "after" is this checkout installed the same way and run as ``vosbench X``
from an empty folder. Both venvs reuse the system site-packages (``--system-site-packages``, no
download). ``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS`` are REMOVED from the commands' environment:
this measures the defaults. Each pair runs back to back (before, then after) with its own empty
``VOSBENCH_CACHE``, so both pay for data generation alike. The 1-minute load average is printed
beside each run: other programs on the machine are part of the conditions.

``--busy N`` makes that contention controlled and repeatable: N single-threaded busy-loop
processes run for the whole measurement (both sides of every pair), standing in for the other
users' jobs of a shared machine. ``--busy 0`` (default) measures the machine as it is.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "packaging"))
from installed import clean_env, copy_source, install  # noqa: E402

CKPT = "methods/maskrnn/weights/maskrnn_tiny_synthetic.pth"


def timed(cmd: list[str], cwd: Path, env: dict, timeout: float) -> dict:
    """Run ``cmd``; wall time, children's CPU time, load average, exit code, output tail.

    A command still running after ``timeout`` s is killed (its process group) and reported as
    ``rc = "timeout"`` with the wall time so far, so one contended run cannot take the session.
    """
    load0 = os.getloadavg()[0]
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
        rc = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        stdout, stderr = proc.communicate()
        rc = "timeout"
    p = subprocess.CompletedProcess(cmd, rc, stdout, stderr)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = p.stdout + p.stderr
    m = re.search(r"Trained (\d+) iterations in ([\d.]+) s \(([\d.]+) s/it\)", out)
    jf = re.search(r'"J&F": ([\d.]+)', out)
    return {"cmd": " ".join(map(str, cmd)), "rc": p.returncode, "wall_s": round(wall, 1),
            "cpu_s": round((r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime), 1),
            "load_before": round(load0, 2), "load_after": round(os.getloadavg()[0], 2),
            "s_per_it": float(m.group(3)) if m else None, "J&F": float(jf.group(1)) if jf else None,
            "tail": out[-1500:] if p.returncode else out[-300:]}


def mark(r: dict | None) -> str:
    """A table cell for one side's run: wall seconds, and why it did not finish."""
    if r is None:
        return "not run"
    why = {"timeout": " (killed: timeout)"}.get(r["rc"], f" (FAILED: rc={r['rc']})" if r["rc"] else "")
    return f"{r['wall_s']}{why}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", default="21703a2")
    ap.add_argument("--work", type=Path, default=Path("/tmp/vosbench_timing"))
    ap.add_argument("--only", nargs="*", default=["test", "train", "bench"])
    ap.add_argument("--bench-args", default="--datasets synthetic_vos,synthetic_vis",
                    help="extra bench arguments for both sides (default: the suite's synthetic "
                         "datasets; '' = the whole default suite, davis2016-mini at 480p included)")
    ap.add_argument("--timeout", type=float, default=900, help="seconds per command")
    ap.add_argument("--train-iters", type=int, default=20)
    ap.add_argument("--sides", nargs="*", default=["before", "after"], choices=["before", "after"],
                    help="run only these sides (the other side's row is then missing from the table)")
    ap.add_argument("--busy", type=int, default=0,
                    help="single-threaded busy-loop processes running beside the whole measurement")
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args()
    shutil.rmtree(a.work, ignore_errors=True)
    (a.work / "before" / "src").mkdir(parents=True)
    arch = subprocess.run(["git", "archive", a.before], cwd=REPO, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(a.work / "before" / "src")], input=arch, check=True)
    before = install(a.work / "before", source=a.work / "before" / "src", log=print)
    after = install(a.work / "after", source=copy_source(a.work / "after" / "src"), log=print)
    bsrc = before["source"]

    env0 = clean_env()
    for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "VOSBENCH_CACHE"):
        env0.pop(k, None)
    iters = f"trainer.max_iter={a.train_iters}"
    cmds = {
        "bench": ([str(before["python"]), f"{bsrc}/tools/bench.py", "--no-progress", *a.bench_args.split()],
                  [str(after["bin"] / "vosbench"), "bench", "--no-progress", *a.bench_args.split()]),
        "test": ([str(before["python"]), f"{bsrc}/tools/test.py", "method=maskrnn_tiny",
                  "dataset=synthetic", f"checkpoint={bsrc}/{CKPT}", "output_dir=t"],
                 [str(after["bin"] / "vosbench"), "test", "method=maskrnn_tiny", "dataset=synthetic",
                  f"checkpoint={CKPT}", "output_dir=t"]),
        "train": ([str(before["python"]), f"{bsrc}/tools/train.py", "method=maskrnn_tiny",
                   "dataset=synthetic", "trainer=debug", iters, "output_dir=r"],
                  [str(after["bin"] / "vosbench"), "train", "method=maskrnn_tiny", "dataset=synthetic",
                   "trainer=debug", iters, "output_dir=r"]),
    }
    rows = []
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(a.busy)]
    if busy:
        print(f"{len(busy)} busy-loop process(es) running beside the measurement", flush=True)
    try:
        run_all(a, cmds, env0, rows)
    finally:
        for proc in busy:
            proc.kill()
            proc.wait()
    print("\n| job | before wall (s) | after wall (s) | before / after | before CPU (s) | after CPU (s) "
          "| extra |\n|---|---|---|---|---|---|---|")
    for name in a.only:
        got = {r["side"]: r for r in rows if r["job"] == name}
        b, f = got.get("before"), got.get("after")

        extra = ""
        if b and f and b["s_per_it"] and f["s_per_it"]:
            extra = f"{b['s_per_it']:.3f} vs {f['s_per_it']:.3f} s/it"
        elif b and f and b["J&F"] is not None and f["J&F"] is not None:
            extra = f"J&F {b['J&F']:.4f} vs {f['J&F']:.4f}"
        # A ratio only where the after side finished: a failed run is not fast.
        ratio = (f"{b['wall_s'] / max(f['wall_s'], 1e-9):.2f}x" + (" (lower bound)" if b["rc"] == "timeout" else "")
                 if b and f and not f["rc"] and b["rc"] in (0, "timeout") else "-")
        print(f"| {name} | {mark(b)} | {mark(f)} | {ratio} "
              f"| {b['cpu_s'] if b else '-'} | {f['cpu_s'] if f else '-'} | {extra} |")
    if a.json:
        for r in rows:
            r["busy"] = a.busy
        tmp = a.json.with_name(a.json.name + ".tmp")
        tmp.write_text(json.dumps(rows, indent=1))
        tmp.replace(a.json)
    return 0 if all(r["rc"] == 0 for r in rows) else 1


def run_all(a, cmds: dict, env0: dict, rows: list) -> None:
    """Run the selected pairs (before, then after), appending one result dict per command."""
    for name in a.only:
        for side, cmd in zip(("before", "after"), cmds[name]):
            if side not in a.sides:
                continue
            cwd = a.work / f"{side}-{name}"
            cwd.mkdir()
            env = dict(env0, VOSBENCH_CACHE=str(cwd / "cache"))
            res = timed(cmd, cwd, env, a.timeout)
            res.update(job=name, side=side)
            rows.append(res)
            print(f"{name:6s} {side:6s} rc={res['rc']} wall {res['wall_s']:7.1f} s  cpu {res['cpu_s']:7.1f} s"
                  f"  load {res['load_before']:.1f}->{res['load_after']:.1f}"
                  + (f"  {res['s_per_it']:.3f} s/it" if res["s_per_it"] else "")
                  + (f"  J&F {res['J&F']:.4f}" if res["J&F"] is not None else ""), flush=True)
            if res["rc"]:
                print(res["tail"], flush=True)


if __name__ == "__main__":
    sys.exit(main())
