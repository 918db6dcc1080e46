"""Leaderboard files of a run: ``leaderboard.md``, ``leaderboard.csv``, ``results.json``,
``report.html`` (with PNG plots, also embedded in the HTML) and the provenance.

Units. ``results.json`` keeps the evaluators' raw values (J, F, T, AP, AR in 0-1). The
leaderboard (MD, CSV, HTML) shows J, F, T, AP and AR in percent, as the papers do, so measured
and reported numbers read the same way. Reported rows are always in their own table (MD, HTML)
or marked ``kind=reported`` (CSV); they are never ranked with measured rows.
"""
from __future__ import annotations

import base64
import csv
import html
import io
import math
from pathlib import Path
from typing import Any

from vosbench.bench import stats_report as sr
from vosbench.bench.suite import COST_COLUMNS, VIS_COLUMNS, VOS_COLUMNS, load_reported
from vosbench.utils.io import atomic_write, write_json

HEADERS = {
    "J&F": "J&F", "J_mean": "J mean", "J_recall": "J recall", "J_decay": "J decay",
    "F_mean": "F mean", "F_recall": "F recall", "F_decay": "F decay", "T_mean": "T",
    "mAP": "mAP", "AP50": "AP50", "AP75": "AP75", "AR1": "AR1", "AR10": "AR10",
    "fps": "FPS", "peak_mem_mb": "Peak mem (MB)", "params_m": "Params",
}
PERCENT = set(VOS_COLUMNS) | set(VIS_COLUMNS)
CSV_COLUMNS = ["kind", "dataset", "method", *VOS_COLUMNS, *VIS_COLUMNS, *COST_COLUMNS, "source"]
# 95 % bootstrap interval of every quality column and the paired test against the next row (#21)
CI_COLUMNS = [f"{k}_{e}" for k in (*VOS_COLUMNS, *VIS_COLUMNS) for e in ("lo", "hi")] + \
    ["p_vs_next", "lead_significant"]


def columns_for(task: str) -> list[str]:
    return (VOS_COLUMNS if task == "vos" else VIS_COLUMNS) + COST_COLUMNS


def measured_row(job: dict) -> dict[str, float | None]:
    """Display values of one job: quality metrics x100, params in millions."""
    m = job.get("metrics") or {}
    row: dict[str, float | None] = {}
    for k in (*VOS_COLUMNS, *VIS_COLUMNS):
        v = m.get(k)
        # ytvoseval gives -1 when no cell of a summary is defined (e.g. no GT): not a score.
        undefined = v is None or (k in VIS_COLUMNS and float(v) < 0)
        row[k] = None if undefined else 100.0 * float(v)
    row["fps"] = job.get("fps")
    row["peak_mem_mb"] = job.get("peak_mem_mb")
    row["params_m"] = None if job.get("params") is None else job["params"] / 1e6
    return row


def _fmt(key: str, v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if key == "params_m":  # v in millions; a 305-parameter model must not read "0.000"
        n = v * 1e6
        if n < 1e3:
            return f"{n:.0f}"
        return f"{n / 1e3:.1f}k" if n < 1e6 else f"{v:.2f}M"
    if key == "peak_mem_mb":
        return f"{v:.0f}"
    if key == "fps":
        return f"{v:.1f}" if v >= 1 else f"{v:.3f}"
    return f"{v:.1f}"


def _fmt_cell(key: str, r: dict) -> str:
    """A measured cell: quality metrics with their interval (``64.9 ±1.8``), costs plain."""
    v = r["values"].get(key)
    if key in PERCENT and v is not None:
        return sr.fmt_ci(v, (r.get("ci") or {}).get(key))
    return _fmt(key, v)


def _fmt_reported(v: Any) -> str:
    """Reported numbers exactly as the paper prints them (no rounding)."""
    if v is None:
        return "-"
    return f"{v:.1f}" if round(v, 1) == v else f"{v:g}"  # 96.0 as printed, 0.05 kept


def one_line(text: str, limit: int = 300) -> str:
    """An error message fit for a Markdown table cell or list item (full text in results.json)."""
    t = " ".join(str(text).split()).replace("|", "/")
    return t if len(t) <= limit else t[: limit - 3] + "..."


def _sort_key(task: str):
    main = "J&F" if task == "vos" else "mAP"
    return lambda r: -(r["values"].get(main) if r["values"].get(main) is not None else -1e9)


def leaderboard_tables(run: dict, reported: dict) -> list[dict]:
    """One table per dataset: {dataset, info, columns, measured: [...], reported: [...]}."""
    tables = []
    for dkey, info in run["datasets"].items():
        jobs = [j for j in run["jobs"] if j["dataset"] == dkey and not j.get("failed")]
        measured = [{"method": j["row"], "values": measured_row(j), "cached": j.get("cached", False)}
                    for j in jobs]
        measured.sort(key=_sort_key(info["task"]))
        rep = []
        bench = reported.get(info.get("reported_as") or "", None)
        if bench:
            for r in bench["rows"]:
                rep.append({"method": r["method"], "source": r["source"],
                            "values": {k: r["metrics"].get(k) for k in columns_for(info["task"])}})
        tables.append({"dataset": dkey, "info": info, "columns": columns_for(info["task"]),
                       "measured": measured, "reported": rep,
                       "reported_description": bench.get("description", "") if bench else ""})
    return tables


def _dataset_title(dkey: str, info: dict) -> str:
    n = info.get("num_videos")
    if info.get("max_videos"):
        n = min(n, info["max_videos"])
    t = f"{dkey}: {info['config']} dataset, {info['metric']} evaluator, {n} videos"
    return t + (f" ({info['note']})" if info.get("note") else "")


def render_markdown(run: dict, tables: list[dict], verify_rows: list[dict] | None) -> str:
    prov = run["provenance"]
    out = [f"# vosbench leaderboard: suite `{run['suite']}`", ""]
    if run.get("description"):
        out += [run["description"], ""]
    out += [f"Run {prov['date_utc']} on {prov['device'].get('cpu', '?')} "
            f"({prov['device']['device']}), commit `{str(prov['git_commit'])[:12]}`"
            f"{' (dirty)' if prov.get('git_dirty') else ''}. J, F, T, AP, AR in percent; FPS = "
            f"frames per second of model time; peak memory of inference; parameter counts "
            f"(k = thousand, M = million).", ""]
    for t in tables:
        cols = t["columns"]
        out += [f"## {_dataset_title(t['dataset'], t['info'])}", ""]
        out.append("| Method | " + " | ".join(HEADERS[c] for c in cols) + " | p vs next |")
        out.append("|---|" + "---|" * (len(cols) + 1))
        for r in t["measured"]:
            out.append(f"| {sr.method_label(r)} | " + " | ".join(_fmt_cell(c, r) for c in cols)
                       + f" | {sr.fmt_p(r.get('p_next'))} |")
        if not t["measured"]:
            out.append("| (no measured rows) |" + " |" * (len(cols) + 1))
        out.append("")
        if t["measured"] and sr.procedure_line(t):
            out += [sr.procedure_line(t), ""]
        out += sr.attribute_markdown(t)
        if t["reported"]:
            rcols = [c for c in cols if c not in COST_COLUMNS]
            out += [f"Reported in papers ({t['reported_description']}); reference only, "
                    f"not measured here and not comparable to the rows above:", ""]
            out.append("| Method (reported) | " + " | ".join(HEADERS[c] for c in rcols) + " | Source |")
            out.append("|---|" + "---|" * (len(rcols) + 1))
            for r in t["reported"]:
                out.append(f"| {r['method']} (reported) | "
                           + " | ".join(_fmt_reported(r["values"].get(c)) for c in rcols)
                           + f" | {r['source']} |")
            out.append("")
    failed = [j for j in run["jobs"] if j.get("failed")]
    if failed:
        out += ["## Failed", ""] + [f"- `{j['row']}` on `{j['dataset']}`: {one_line(j['error'])}"
                                    for j in failed] + [""]
    if run.get("skipped"):
        out += ["## Skipped", ""]
        for s in run["skipped"]:
            what = f"dataset `{s['dataset']}`" if "dataset" in s else f"row `{s['row']}`"
            out.append(f"- {what}: {s['reason']}")
        out.append("")
    if verify_rows is not None:
        from vosbench.bench.verify import failed, format_table

        out += ["## Verify", "", format_table(verify_rows), "",
                "**FAILED**" if failed(verify_rows) else "All checked metrics within tolerance.", ""]
    return "\n".join(out)


def write_csv(path: Path, tables: list[dict]) -> None:
    with atomic_write(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_COLUMNS + CI_COLUMNS)
        w.writeheader()
        for t in tables:
            for kind, rows in (("measured", t["measured"]), ("reported", t["reported"])):
                for r in rows:
                    d = {"kind": kind, "dataset": t["dataset"], "method": r["method"],
                         "source": r.get("source", "measured")}
                    for c in CSV_COLUMNS[3:-1]:
                        v = r["values"].get(c)
                        d[c] = "" if v is None else (f"{v:.6g}" if isinstance(v, float) else v)
                    if kind == "measured":
                        d.update(sr.csv_extra(r, [*VOS_COLUMNS, *VIS_COLUMNS]))
                    w.writerow(d)


def write_attribute_csv(path: Path, tables: list[dict]) -> None:
    """``attributes.csv``: the main metric per attribute, method, with its interval (percent)."""
    cols = ["dataset", "attribute", "description", "num_sequences", "method", "metric", "value",
            "lo", "hi"]
    with atomic_write(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        w.writerows(sr.attribute_csv_rows(tables))


# ----------------------------------------------------------------------------------- plots


def per_sequence_scores(job: dict) -> dict[str, float]:
    """Sequence -> J&F (mean over its objects), from the evaluator's per-object rows.

    Falls back to the mean per-frame J when the evaluator gives no per-object J and F rows.
    """
    acc: dict[str, list[float]] = {}
    for r in job.get("per_sequence") or []:
        if not isinstance(r, dict):
            continue
        seq = next((r[k] for k in ("sequence", "video_id", "video", "Sequence") if k in r), None)
        j = next((r[k] for k in ("J_mean", "J-Mean", "J") if k in r), None)
        f = next((r[k] for k in ("F_mean", "F-Mean", "F") if k in r), None)
        if seq is None or j is None or f is None:
            continue
        acc.setdefault(str(seq), []).append((float(j) + float(f)) / 2)
    if acc:
        return {s: sum(v) / len(v) for s, v in acc.items()}
    for series in (job.get("per_frame") or {}).values():
        vals = [x for x in (series.get("J") or []) if x is not None]
        if vals:
            acc.setdefault(str(series.get("video")), []).append(sum(vals) / len(vals))
    return {s: sum(v) / len(v) for s, v in acc.items()}


def _plain_log_ticks(ax, lo: float, hi: float) -> list[float]:
    """A few plain-number ticks (1, 2, 5 x 10^k) on a log x axis, no minor tick labels.

    Matplotlib labels a log axis spanning less than a decade with minor ticks such as
    ``5.2x10^0 5.4x10^0 ...``, which overlap in a 6-inch figure (issue #20).
    """
    from matplotlib.ticker import FixedLocator, FuncFormatter, MaxNLocator, NullFormatter

    lo_e, hi_e = math.floor(math.log10(lo / 1.5)), math.ceil(math.log10(hi * 1.5))
    ticks = [m * 10.0 ** k for k in range(lo_e, hi_e + 1) for m in (1, 2, 5)
             if lo / 1.5 <= m * 10.0 ** k <= hi * 1.5]
    if len(ticks) < 2:  # less than a factor ~2 between the fastest and the slowest
        ticks = [v for v in MaxNLocator(4).tick_values(lo / 1.1, hi * 1.1) if v > 0]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlim(min(ticks + [lo]) / 1.1, max(ticks + [hi]) * 1.1)
    return ticks


def _fig_to_png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return buf.getvalue()


def make_plots(run: dict, tables: list[dict]) -> list[tuple[str, str, str, bytes]]:
    """(dataset key, file name, caption, PNG bytes) for every plot of the report."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plots = []
    jobs_by = {(j["row"], j["dataset"]): j for j in run["jobs"]}
    for t in tables:
        dkey, task = t["dataset"], t["info"]["task"]
        rows = [r["method"] for r in t["measured"]]
        if not rows:
            continue
        main = "J&F" if task == "vos" else "mAP"
        if task == "vos":
            # Per-sequence J&F, grouped bars.
            scores = {m: per_sequence_scores(jobs_by[(m, dkey)]) for m in rows}
            seqs = sorted({s for sc in scores.values() for s in sc})
            if seqs:
                fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(seqs) * max(1, len(rows)) / 2 + 3), 3.6))
                width = 0.8 / len(rows)
                for i, m in enumerate(rows):
                    xs = [k + i * width - 0.4 + width / 2 for k in range(len(seqs))]
                    ax.bar(xs, [100 * scores[m].get(s, float("nan")) for s in seqs], width, label=m)
                ax.set_xticks(range(len(seqs)))
                ax.set_xticklabels(seqs, rotation=45, ha="right", fontsize=8)
                ax.set_ylabel("J&F (%)")
                ax.set_ylim(0, 100)
                ax.set_title(f"Per-sequence J&F on {dkey}")
                ax.legend(fontsize=7, ncol=2)
                plots.append((dkey, f"per_sequence_{dkey}.png", f"Per-sequence J&F on {dkey}", _fig_to_png(fig)))
                plt.close(fig)
            # J over normalised time (decay).
            fig, ax = plt.subplots(figsize=(6, 3.6))
            drawn = False
            for m in rows:
                curve = jobs_by[(m, dkey)].get("j_curve") or []
                pts = [(i / max(1, len(curve) - 1), 100 * v) for i, v in enumerate(curve) if v is not None]
                if pts:
                    ax.plot(*zip(*pts), marker=".", label=m)
                    drawn = True
            if drawn:
                ax.set_xlabel("normalised time (first to last evaluated frame)")
                ax.set_ylabel("J (%)")
                ax.set_ylim(0, 100)
                ax.set_title(f"J over time on {dkey} (decay)")
                ax.legend(fontsize=7)
                plots.append((dkey, f"j_over_time_{dkey}.png", f"J over normalised time on {dkey}",
                              _fig_to_png(fig)))
            plt.close(fig)
        # Quality against speed.
        fig, ax = plt.subplots(figsize=(6, 3.6))
        drawn = []
        for r in t["measured"]:
            fps, q = r["values"].get("fps"), r["values"].get(main)
            if fps and q is not None:
                ax.scatter([fps], [q], s=40)
                # staggered so the names of methods with similar speed and score do not overlap
                ax.annotate(r["method"], (fps, q), textcoords="offset points",
                            xytext=(4, 4 + 9 * (len(drawn) % 3)), fontsize=8)
                drawn.append(fps)
        if drawn:
            ax.set_xscale("log")
            _plain_log_ticks(ax, min(drawn), max(drawn))
            ax.set_xlabel("FPS (model time, log scale)")
            ax.set_ylabel(f"{main} (%)")
            ax.set_title(f"{main} against speed on {dkey}")
            ax.grid(alpha=0.3)
            plots.append((dkey, f"{'jf' if task == 'vos' else 'map'}_vs_fps_{dkey}.png",
                          f"{main} against FPS on {dkey}", _fig_to_png(fig)))
        plt.close(fig)
        # Intervals as whiskers, and the per-attribute chart (#21, vosbench/bench/stats_report.py)
        for name, caption, make in (
                (f"ci_{dkey}.png", f"{main} with 95 % bootstrap intervals on {dkey}", sr.make_ci_plot),
                (f"attributes_{dkey}.png", f"{main} per attribute on {dkey}", sr.make_attribute_plot)):
            fig = make(plt, t) if t.get("stats") else None
            if fig is not None:
                plots.append((dkey, name, caption, _fig_to_png(fig)))
                plt.close(fig)
    return plots


# ------------------------------------------------------------------------------------ HTML

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1200px;color:#222;padding:0 16px}
h1{font-size:1.6em;margin-bottom:4px} h2{font-size:1.25em;margin-top:28px;border-bottom:1px solid #ddd;padding-bottom:4px}
table{border-collapse:collapse;margin:8px 0 16px 0;font-size:0.9em}
th,td{border:1px solid #ccc;padding:4px 8px;text-align:right} th{background:#f2f2f2}
td:first-child,th:first-child{text-align:left}
tr.reported td{background:#fff8e1;font-style:italic}
.badge{display:inline-block;font-size:0.75em;padding:1px 6px;border-radius:8px;background:#ffb300;color:#000;font-style:normal}
.cached{color:#888;font-size:0.8em}
.meta{color:#555} .fail{color:#b00020;font-weight:bold} .ok{color:#1b5e20}
figure{display:inline-block;margin:8px;vertical-align:top} figcaption{font-size:0.85em;color:#555;text-align:center}
img{max-width:100%;border:1px solid #eee} code{background:#f5f5f5;padding:1px 4px}
details{margin:8px 0} table.prov td,table.prov th{text-align:left}
"""


def _table_html(head: list[str], rows: list[list[str]], row_class: str = "") -> str:
    h = "".join(f"<th>{html.escape(x)}</th>" for x in head)
    body = "".join(f"<tr class='{row_class}'>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{h}</tr></thead><tbody>{body}</tbody></table>"


def render_html(run: dict, tables: list[dict], plots: list[tuple[str, str, str, bytes]],
                verify_rows: list[dict] | None) -> str:
    e = html.escape
    prov = run["provenance"]
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
             f"<title>vosbench: {e(run['suite'])}</title><style>{_CSS}</style></head><body>",
             f"<h1>vosbench leaderboard: suite <code>{e(run['suite'])}</code></h1>",
             f"<p class='meta'>{e(run.get('description', ''))}</p>",
             f"<p class='meta'>{e(prov['date_utc'])} &middot; {e(str(prov['device'].get('cpu', '')))} "
             f"({e(prov['device']['device'])}) &middot; commit <code>{e(str(prov['git_commit'])[:12])}</code>. "
             "J, F, T, AP, AR in percent; FPS counts model time only.</p>"]
    for t in tables:
        cols = t["columns"]
        parts.append(f"<h2>{e(_dataset_title(t['dataset'], t['info']))}</h2>")
        rows = [[e(sr.method_label(r)) + (" <span class='cached'>(cached)</span>" if r["cached"] else "")]
                + [_ci_html(c, r) for c in cols] + [sr.fmt_p(r.get("p_next"))] for r in t["measured"]]
        parts.append(_table_html(["Method (measured)"] + [HEADERS[c] for c in cols] + ["p vs next"], rows))
        if t["measured"] and sr.procedure_line(t):
            parts.append(f"<p class='meta'>{e(sr.procedure_line(t))}</p>")
        if t["reported"]:
            rcols = [c for c in cols if c not in COST_COLUMNS]
            parts.append(f"<p class='meta'>Reported in papers ({e(t['reported_description'])}): "
                         "reference only, not measured here.</p>")
            rrows = [[e(r["method"]) + " <span class='badge'>reported</span>"]
                     + [_fmt_reported(r["values"].get(c)) for c in rcols] + [e(r["source"])]
                     for r in t["reported"]]
            parts.append(_table_html(["Method"] + [HEADERS[c] for c in rcols] + ["Source"], rrows,
                                     "reported"))
        for dkey, name, caption, png in plots:  # this dataset's plots, right under its tables
            if dkey != t["dataset"]:
                continue
            b64 = base64.b64encode(png).decode()
            parts.append(f"<figure><img alt='{e(caption)}' src='data:image/png;base64,{b64}'>"
                         f"<figcaption>{e(caption)} (<a href='plots/{e(name)}'>{e(name)}</a>)"
                         f"</figcaption></figure>")
        parts.append(sr.attribute_html(t, _table_html))
    failed = [j for j in run["jobs"] if j.get("failed")]
    if failed:
        parts.append("<h2 class='fail'>Failed</h2><ul>" + "".join(
            f"<li>{e(j['row'])} on {e(j['dataset'])}: <code>{e(j['error'])}</code></li>"
            for j in failed) + "</ul>")
    if run.get("skipped"):
        parts.append("<h2>Skipped</h2><ul>" + "".join(
            f"<li>{e(('dataset ' + s['dataset']) if 'dataset' in s else ('row ' + s['row']))}: "
            f"{e(s['reason'])}</li>" for s in run["skipped"]) + "</ul>")
    if verify_rows is not None:
        from vosbench.bench.verify import failed

        parts.append("<h2>Verify</h2>")
        vrows = [[e(r["row"]), e(r["dataset"]), e(r["metric"]), f"{r['expected']:.4f}",
                  f"{r['tol']:.4f}", "-" if r["measured"] is None else f"{r['measured']:.4f}",
                  f"<span class='{'fail' if r['status'] == 'FAIL' else 'ok'}'>{e(r['status'])}</span> "
                  f"{e(r['why'])}"] for r in verify_rows]
        parts.append(_table_html(["Row", "Dataset", "Metric", "Expected", "Tol", "Measured", "Status"], vrows))
        parts.append(f"<p class='{'fail' if failed(verify_rows) else 'ok'}'>"
                     f"{'FAILED' if failed(verify_rows) else 'All checked metrics within tolerance.'}</p>")
    # Per-sequence detail (collapsed).
    parts.append("<h2>Per-sequence results</h2>")
    for j in run["jobs"]:
        rows = j.get("per_sequence") or []
        if not rows or not isinstance(rows[0], dict):
            continue
        keys = list(rows[0].keys())
        body = [[e(_cell(r.get(k))) for k in keys] for r in rows]
        parts.append(f"<details><summary>{e(j['row'])} on {e(j['dataset'])} ({len(rows)} rows)</summary>"
                     + _table_html(keys, body) + "</details>")
    # Provenance.
    parts.append("<h2>Provenance</h2>")
    prow = [["git commit", e(str(prov["git_commit"])) + (" (uncommitted changes)" if prov.get("git_dirty") else "")],
            ["suite hash", e(prov["suite_hash"])], ["date (UTC)", e(prov["date_utc"])],
            ["command", f"<code>{e(prov['command'])}</code>"]]
    prow += [[f"device: {e(k)}", e(str(v))] for k, v in prov["device"].items()]
    prow += [[f"config hash: {e(k)}", f"<code>{e(v)}</code>"] for k, v in prov["config_hashes"].items()]
    prow += [[f"package: {e(k)}", e(v)] for k, v in prov["packages"].items()]
    parts.append(_table_html(["Item", "Value"], prow).replace("<table>", "<table class='prov'>", 1))
    parts.append("</body></html>")
    return "\n".join(parts)


def _ci_html(key: str, r: dict) -> str:
    ci = (r.get("ci") or {}).get(key)
    cell = html.escape(_fmt_cell(key, r))
    return cell if ci is None else f"<span title='95 % interval [{ci[0]:.2f}, {ci[1]:.2f}]'>{cell}</span>"


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4f}"
    return "" if v is None else str(v)


def write_report(out_dir: str | Path, run: dict, *, verify_rows: list[dict] | None = None,
                 reported: dict | None = None, plots: bool = True) -> dict[str, Path]:
    """Write every result file of a run into ``out_dir`` (each one atomically).

    Args:
        run: {suite, description, provenance, datasets: {key: info}, jobs: [result dicts],
            skipped: [...]}.
    Returns:
        name -> path of the files written.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    reported = load_reported() if reported is None else reported
    tables = leaderboard_tables(run, reported)
    analysis = sr.compute_stats(run)  # intervals, paired tests, per-attribute results (#21)
    sr.annotate_tables(tables, analysis)
    md = render_markdown(run, tables, verify_rows)
    files = {"leaderboard.md": out / "leaderboard.md", "leaderboard.csv": out / "leaderboard.csv",
             "results.json": out / "results.json", "report.html": out / "report.html"}
    if any(sr.attribute_rows(t) for t in tables):
        files["attributes.csv"] = out / "attributes.csv"
        write_attribute_csv(files["attributes.csv"], tables)
    with atomic_write(files["leaderboard.md"], "w") as f:
        f.write(md + "\n")
    write_csv(files["leaderboard.csv"], tables)
    used = {t["info"].get("reported_as") for t in tables} - {None}
    write_json(files["results.json"], {
        **run, "verify": verify_rows, "stats": analysis,
        "reported": {k: v for k, v in reported.items() if k in used},
        "units": "raw evaluator values (J, F, T, AP, AR in 0-1); reported values in percent",
    }, indent=1)
    pngs = make_plots(run, tables) if plots else []
    for _, name, _, png in pngs:
        p = out / "plots" / name
        with atomic_write(p, "wb") as f:
            f.write(png)
        files[f"plots/{name}"] = p
    with atomic_write(files["report.html"], "w") as f:
        f.write(render_html(run, tables, pngs, verify_rows))
    return files
