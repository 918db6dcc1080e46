"""The leaderboard's statistics: intervals, significance marks and per-attribute results.

``compute_stats(run)`` turns the per-sequence data every job keeps (the evaluators' per-object
rows for VOS, the per-video matching for VIS) into ``vosbench.bench.stats.analyze`` results, one
per dataset; ``annotate_tables`` puts them on the leaderboard rows (``ci``, ``p_next``,
``lead_ns``); the ``*_markdown`` / ``*_html`` / ``make_*_plot`` helpers render them for
``vosbench.bench.report``. Display units follow the leaderboard (J, F, T, AP, AR in percent).
"""
from __future__ import annotations

import html
import math
from typing import Any

from vosbench.bench import stats

#: Mark of a row whose lead over the next row is not significant at ``stats.ALPHA``.
NOT_SIGNIFICANT = "†"


def _job_map(run: dict) -> dict[tuple[str, str], dict]:
    return {(j["row"], j["dataset"]): j for j in run["jobs"] if not j.get("failed")}


def _statistic(run: dict, dkey: str, info: dict):
    """(statistic, note) for one dataset, or (None, why)."""
    jobs = [j for j in run["jobs"] if j["dataset"] == dkey and not j.get("failed")]
    if not jobs:
        return None, "no measured row"
    if info.get("task") == "vis":
        have = [j for j in jobs if j.get("video_stats")]
        if not have:
            return None, "no per-video matching stored (results from before #21: run with --no-cache)"
        vids = {j["row"]: stats.video_stats_from_json(j["video_stats"]) for j in have}
        names = {r["key"]: r.get("video", str(r["key"])) for r in have[0]["video_stats"]}
        # the leaderboard shows no area-range AP/AR: their cells are skipped (half the cost)
        return stats.APStatistic(vids, names=names, area_ranges=False), ""
    rows = {j["row"]: j.get("per_sequence") or [] for j in jobs}
    if not any(rows.values()):
        return None, "no per-sequence rows"
    return stats.MeanStatistic.from_rows(rows), ""


def compute_stats(run: dict, *, resamples: int = stats.DEFAULT_RESAMPLES,
                  seed: int = stats.DEFAULT_SEED) -> dict[str, dict]:
    """Dataset key -> ``stats.analyze`` result (plus ``attributes`` facts and the T note)."""
    out: dict[str, dict] = {}
    by = _job_map(run)
    for dkey, info in run["datasets"].items():
        st, why = _statistic(run, dkey, info)
        if st is None:
            out[dkey] = {"skipped": why}
            continue
        task = info.get("task", "vos")
        official = {m: (by[(m, dkey)].get("metrics") or {}) for m in st.methods}
        if task == "vis":  # the evaluator's AP is "mAP" (and "AP"); -1 = undefined
            official = {m: {k: v for k, v in d.items() if k in stats.VIS_KEYS} for m, d in official.items()}
        subsets = stats.attribute_subsets(st.sequences, info.get("attributes") or {},
                                          info.get("attribute_order"))
        res = stats.analyze(st, task=task, official=official, subsets=subsets,
                            resamples=resamples, seed=seed)
        res["attribute_descriptions"] = {a: (info.get("attribute_descriptions") or {}).get(a, "")
                                         for a in subsets}
        res["db_info"] = info.get("db_info")
        res["t_note"] = t_note(run, dkey, info)
        out[dkey] = res
    return out


def t_note(run: dict, dkey: str, info: dict) -> str:
    """How T was computed on a DAVIS-2016 dataset with a db_info.yml ("" otherwise)."""
    if info.get("metric") != "davis2016" or "eval_t" not in info:
        return ""
    jobs = [j for j in run["jobs"] if j["dataset"] == dkey and not j.get("failed")]
    if not any((j.get("metrics") or {}).get("T_mean") is not None for j in jobs):
        return ""
    if any((j.get("job") or {}).get("metric_args", {}).get("t_all_sequences") for j in jobs):
        return f"T over all {len(info['eval_t'])} sequences (t_all_sequences: db_info.yml eval_t ignored)"
    k = sum(bool(v) for v in info["eval_t"].values())
    return (f"T over the {k} of {len(info['eval_t'])} sequences with eval_t: True in db_info.yml "
            f"(official DAVIS-2016 protocol)")


def annotate_tables(tables: list[dict], analysis: dict[str, dict]) -> None:
    """Add ``ci`` (metric -> (lo, hi) in display units), ``p_next`` and ``lead_ns`` to the
    measured rows, and ``stats`` to each table, in place."""
    for t in tables:
        a = analysis.get(t["dataset"]) or {}
        t["stats"] = a
        main = a.get("main") or ("J&F" if t["info"]["task"] == "vos" else "mAP")
        rows = t["measured"]
        for r in rows:
            iv = (a.get("interval") or {}).get(r["method"]) or {}
            r["ci"] = {k: (100 * v[0], 100 * v[1]) for k, v in iv.items() if v is not None}
            r["p_next"], r["lead_ns"] = None, False
        for r, nxt in zip(rows, rows[1:]):
            p = stats.pair(a, r["method"], nxt["method"], main) if a.get("pairs") else None
            if p is not None and p["p"] is not None:
                r["p_next"] = p["p"]
                r["lead_ns"] = p["p"] >= stats.ALPHA


def fmt_ci(v: float | None, ci: tuple[float, float] | None) -> str:
    """``64.9 ±1.8`` (half the width of the interval) or ``64.9`` without one."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if ci is None:
        return f"{v:.1f}"
    return f"{v:.1f} ±{(ci[1] - ci[0]) / 2:.1f}"


def fmt_p(p: float | None) -> str:
    if p is None:
        return "-"
    return f"{p:.3g}"


def method_label(r: dict) -> str:
    return r["method"] + (f" {NOT_SIGNIFICANT}" if r.get("lead_ns") else "")


def procedure_line(t: dict) -> str:
    """One sentence under a leaderboard table saying what ± and p are."""
    a = t.get("stats") or {}
    if not a.get("procedure") or "resamples" not in a.get("procedure", {}):
        why = a.get("skipped") or a.get("procedure", {}).get("note", "")
        return f"No intervals: {why}." if why else ""
    pr, n = a["procedure"], a["num_sequences"]
    unit = "videos" if t["info"]["task"] == "vis" else "sequences"
    main = a["main"]
    swaps = f"all {pr['swaps']} swaps" if pr["exact"] else f"{pr['swaps']} random swaps"
    line = (f"± = half the width of the {int(pr['confidence'] * 100)} % bootstrap interval over the "
            f"{n} {unit} ({pr['resamples']} resamples, seed {pr['seed']}; the exact [lo, hi] are in "
            f"leaderboard.csv). p vs next: paired swap (sign-flip) test of {main} against the next "
            f"row ({swaps}); {NOT_SIGNIFICANT} = lead over the next row not significant at "
            f"{int(stats.ALPHA * 100)} %.")
    if n <= 5:
        line += (f" With {n} {unit} the smallest possible p is {2 / 2 ** n:.2f}: no lead can be "
                 f"significant here.")
    if a.get("t_note"):
        line += f" {a['t_note']}."
    return line


def attribute_rows(t: dict) -> list[dict]:
    """[{attribute, description, n, values: {method: (v, ci)}}] in display units, plus 'all'."""
    a = t.get("stats") or {}
    subs = a.get("subsets") or {}
    if not subs:
        return []
    methods = [r["method"] for r in t["measured"]]
    main = a["main"]
    every = "every video" if t["info"]["task"] == "vis" else "every sequence"
    out = [{"attribute": "all", "description": every, "n": a["num_sequences"],
            "values": {m: (_pct((a["point"].get(m) or {}).get(main)),
                           _pct_ci((a["interval"].get(m) or {}).get(main))) for m in methods}}]
    for name, s in subs.items():
        out.append({"attribute": name, "description": (a.get("attribute_descriptions") or {}).get(name, ""),
                    "n": s["num_sequences"],
                    "values": {m: (_pct(s["point"].get(m)), _pct_ci(s["interval"].get(m)))
                               for m in methods}})
    return out


def _pct(v):
    return None if v is None else 100 * v


def _pct_ci(ci):
    return None if ci is None else (100 * ci[0], 100 * ci[1])


def attribute_markdown(t: dict) -> list[str]:
    rows = attribute_rows(t)
    if not rows:
        return []
    a = t["stats"]
    methods = [r["method"] for r in t["measured"]]
    unit = "videos" if t["info"]["task"] == "vis" else "sequences"
    out = [f"{a['main']} per attribute ({a.get('db_info') or 'db_info.yml'}; n = {unit} with the "
           f"attribute; ± as above, bootstrap over those {unit}):", "",
           "| Attribute | n | " + " | ".join(methods) + " |",
           "|---|---|" + "---|" * len(methods)]
    for r in rows:
        name = r["attribute"] + (f" ({r['description']})" if r["description"] else "")
        out.append(f"| {name} | {r['n']} | "
                   + " | ".join(fmt_ci(*r["values"][m]) if r["n"] > 1 else fmt_ci(r["values"][m][0], None)
                                for m in methods) + " |")
    return out + [""]


def attribute_html(t: dict, table_html) -> str:
    rows = attribute_rows(t)
    if not rows:
        return ""
    e = html.escape
    a = t["stats"]
    methods = [r["method"] for r in t["measured"]]
    body = []
    for r in rows:
        cells = [f"<b>{e(r['attribute'])}</b>" + (f" <span class='meta'>{e(r['description'])}</span>"
                                                  if r["description"] else ""), str(r["n"])]
        for m in methods:
            v, ci = r["values"][m]
            title = "" if ci is None else f" title='95 % interval [{ci[0]:.1f}, {ci[1]:.1f}]'"
            cells.append(f"<span{title}>{e(fmt_ci(v, ci if r['n'] > 1 else None))}</span>")
        body.append(cells)
    return (f"<h3 id='attributes-{e(t['dataset'])}'>{e(a['main'])} per attribute</h3>"
            f"<p class='meta'>From {e(str(a.get('db_info') or 'db_info.yml'))}; n = number of "
            f"{'videos' if t['info']['task'] == 'vis' else 'sequences'} with the attribute.</p>"
            + table_html(["Attribute", "n", *methods], body))


def csv_extra(r: dict, keys: list[str]) -> dict[str, Any]:
    """The interval and significance columns of one measured CSV row."""
    d: dict[str, Any] = {}
    for k in keys:
        ci = (r.get("ci") or {}).get(k)
        d[f"{k}_lo"] = "" if ci is None else f"{ci[0]:.6g}"
        d[f"{k}_hi"] = "" if ci is None else f"{ci[1]:.6g}"
    d["p_vs_next"] = "" if r.get("p_next") is None else f"{r['p_next']:.6g}"
    d["lead_significant"] = "" if r.get("p_next") is None else str(not r["lead_ns"]).lower()
    return d


def attribute_csv_rows(tables: list[dict]) -> list[dict]:
    out = []
    for t in tables:
        for r in attribute_rows(t):
            for m, (v, ci) in r["values"].items():
                out.append({"dataset": t["dataset"], "attribute": r["attribute"],
                            "description": r["description"], "num_sequences": r["n"], "method": m,
                            "metric": t["stats"]["main"], "value": "" if v is None else f"{v:.6g}",
                            "lo": "" if ci is None else f"{ci[0]:.6g}",
                            "hi": "" if ci is None else f"{ci[1]:.6g}"})
    return out


# ----------------------------------------------------------------------------------- plots
#: A palette of its own for the attribute chart (matplotlib's Set2), so it is told apart from
#: the other plots (tab10) on screen, as the screenshot test does.
ATTRIBUTE_COLORS = ["#66c2a5", "#fc8d62", "#8da0cb", "#e78ac3", "#a6d854", "#ffd92f", "#e5c494",
                    "#b3b3b3"]


def make_ci_plot(plt, t: dict):
    """Main metric per method with its 95 % interval as whiskers (None without intervals)."""
    rows = [r for r in t["measured"] if r["values"].get(t["stats"].get("main") or "") is not None]
    main = (t.get("stats") or {}).get("main")
    if not main or not rows or not any(main in (r.get("ci") or {}) for r in rows):
        return None
    fig, ax = plt.subplots(figsize=(6, 0.45 * len(rows) + 1.4))
    for i, r in enumerate(reversed(rows)):
        v = r["values"][main]
        ci = (r.get("ci") or {}).get(main)
        err = [[v - ci[0]], [ci[1] - v]] if ci else None
        ax.errorbar([v], [i], xerr=err, fmt="o", color="#333333", ecolor="#1f77b4", elinewidth=2,
                    capsize=5)
        ax.annotate(f"{v:.1f}" + (f" [{ci[0]:.1f}, {ci[1]:.1f}]" if ci else ""), (v, i),
                    textcoords="offset points", xytext=(0, 7), ha="center", fontsize=7)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([method_label(r) for r in reversed(rows)], fontsize=8)
    ax.set_xlabel(f"{main} (%) with 95 % bootstrap interval")
    ax.set_ylim(-0.6, len(rows) - 0.4)
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(f"{main} on {t['dataset']} ({t['stats']['num_sequences']} "
                 f"{'videos' if t['info']['task'] == 'vis' else 'sequences'})")
    return fig


def make_attribute_plot(plt, t: dict):
    """Grouped bars: main metric per attribute (n in the label) per method, 95 % whiskers."""
    rows = attribute_rows(t)
    if len(rows) < 2:
        return None
    methods = [r["method"] for r in t["measured"]]
    main = t["stats"]["main"]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.55 * len(rows) * max(1, len(methods)) / 1.6 + 2), 3.8))
    width = 0.8 / max(1, len(methods))
    for i, m in enumerate(methods):
        xs, ys, lo, hi = [], [], [], []
        for k, r in enumerate(rows):
            v, ci = r["values"][m]
            if v is None:
                continue
            xs.append(k + i * width - 0.4 + width / 2)
            ys.append(v)
            ci = ci if ci is not None and r["n"] > 1 else (v, v)
            lo.append(max(0.0, v - ci[0]))
            hi.append(max(0.0, ci[1] - v))
        ax.bar(xs, ys, width, yerr=[lo, hi], capsize=2, label=m,
               color=ATTRIBUTE_COLORS[i % len(ATTRIBUTE_COLORS)], error_kw={"elinewidth": 1})
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels([f"{r['attribute']}\n(n={r['n']})" for r in rows], fontsize=8)
    ax.set_ylabel(f"{main} (%)")
    ax.set_ylim(0, 100)
    ax.set_title(f"{main} per attribute on {t['dataset']} (whiskers: 95 % bootstrap interval)")
    ax.legend(fontsize=7, ncol=2)
    return fig


__all__ = ["ATTRIBUTE_COLORS", "NOT_SIGNIFICANT", "annotate_tables", "attribute_csv_rows",
           "attribute_html", "attribute_markdown", "attribute_rows", "compute_stats", "csv_extra",
           "fmt_ci", "fmt_p", "make_attribute_plot", "make_ci_plot", "method_label",
           "procedure_line", "t_note"]
