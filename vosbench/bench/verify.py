"""``--verify``: compare measured metrics with a suite's expected values (cf. detectron2
``verify_results``). Values and tolerances are in ``results.json`` units (the evaluator's)."""
from __future__ import annotations

import math

from vosbench.bench.suite import Expectation

COST_KEYS = {"fps", "peak_mem_mb", "params"}


def _measured(job: dict, metric: str):
    if metric in COST_KEYS:
        return job.get(metric)
    return (job.get("metrics") or {}).get(metric, KeyError)


def check(expected: list[Expectation], jobs: list[dict]) -> list[dict]:
    """One row per expectation with ``status`` in ``ok`` / ``FAIL`` / ``not run``.

    ``not run`` means the (row, dataset) job is not part of this run (an optional dataset whose
    root is absent, or a ``--rows``/``--datasets`` selection); it is reported, not failed.
    A job that ran but lacks the metric, or gave NaN, fails.
    """
    by_cell = {(j["row"], j["dataset"]): j for j in jobs}
    out = []
    for e in expected:
        row = {"row": e.row, "dataset": e.dataset, "metric": e.metric, "expected": e.value,
               "tol": e.tol, "measured": None, "status": "not run", "why": ""}
        job = by_cell.get((e.row, e.dataset))
        if job is not None and job.get("failed"):
            row.update(status="FAIL", why=f"the job failed: {job.get('error')}")
        elif job is not None:
            v = _measured(job, e.metric)
            if v is KeyError:
                row.update(status="FAIL", why=f"metric {e.metric!r} not in results "
                           f"({sorted(job.get('metrics') or {})})")
            elif v is None or (isinstance(v, float) and math.isnan(v)):
                row.update(status="FAIL", why="metric is NaN / missing")
            else:
                diff = abs(float(v) - e.value)
                row.update(measured=float(v), status="ok" if diff <= e.tol else "FAIL",
                           why="" if diff <= e.tol else f"off by {diff:.4f} > tol {e.tol}")
        out.append(row)
    return out


def failed(rows: list[dict]) -> bool:
    return any(r["status"] == "FAIL" for r in rows)


def format_table(rows: list[dict]) -> str:
    lines = ["| Row | Dataset | Metric | Expected | Tol | Measured | Status |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        m = "-" if r["measured"] is None else f"{r['measured']:.4f}"
        from vosbench.bench.report import one_line

        status = r["status"] + (f" ({one_line(r['why'], 160)})" if r["why"] else "")
        lines.append(f"| {r['row']} | {r['dataset']} | {r['metric']} | {r['expected']:.4f} | "
                     f"{r['tol']:.4f} | {m} | {status} |")
    return "\n".join(lines)
