"""The leaderboard with intervals, significance marks and per-attribute results (#21): files and
a headless-Chromium screenshot of the attribute chart."""
from __future__ import annotations

import csv
import json
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from vosbench.bench import report, stats, stats_report

N = 10
ATTRS = {f"s{i}": (["OCC"] if i % 2 == 0 else []) + (["FM"] if i < 3 else []) for i in range(N)}


def _vos_job(row, j, f):
    rows = [{"Sequence": f"s{i}", "video": f"s{i}", "J-Mean": float(j[i]), "F-Mean": float(f[i]),
             "J-Recall": float(j[i] > 0.5), "F-Recall": float(f[i] > 0.5), "J-Decay": 0.0, "F-Decay": 0.0}
            for i in range(N)]
    metrics = {"J_mean": float(np.mean(j)), "F_mean": float(np.mean(f)),
               "J_recall": float(np.mean(j > 0.5)), "F_recall": float(np.mean(f > 0.5)),
               "J_decay": 0.0, "F_decay": 0.0}
    metrics["J&F"] = (metrics["J_mean"] + metrics["F_mean"]) / 2
    return {"row": row, "dataset": "vos", "metrics": metrics, "fps": 10.0, "peak_mem_mb": 100.0,
            "params": 1000, "per_sequence": rows, "per_frame": {}, "j_curve": [], "cached": False,
            "job": {"index": 0, "row": row, "dataset": "vos", "metric_args": {}}}


@pytest.fixture
def stats_run():
    rng = np.random.default_rng(0)
    j, f = rng.uniform(0.3, 0.7, N), rng.uniform(0.3, 0.7, N)
    noise = rng.normal(0, 0.003, N)
    info = {"task": "vos", "metric": "davis2017", "num_videos": N, "root": "/r", "config": "synthetic",
            "note": "", "reported_as": None, "max_videos": None, "db_info": "/r/Annotations/db_info.yml",
            "attributes": ATTRS, "attribute_order": ["OCC", "FM", "SV"],
            "attribute_descriptions": {"OCC": "occlusion", "FM": "fast motion"},
            "eval_t": {s: True for s in ATTRS}}
    prov = {"git_commit": "0" * 12, "git_dirty": False, "suite_hash": "ab", "config_hashes": {},
            "packages": {}, "device": {"device": "cpu", "cpu": "Test CPU"}, "date_utc": "2026-01-01",
            "command": "python tools/bench.py"}
    return {"suite": "stats", "suite_path": "x.yaml", "description": "", "provenance": prov,
            "datasets": {"vos": info},
            "jobs": [_vos_job("best", j + 0.15, f + 0.15),          # better on every sequence
                     _vos_job("twin_a", j + noise, f + noise),        # a hair above its twin
                     _vos_job("twin_b", j, f)],
            "skipped": []}


def test_intervals_marks_and_attributes_in_every_file(tmp_path, stats_run):
    files = report.write_report(tmp_path, stats_run, reported={})
    md = files["leaderboard.md"].read_text()
    lines = {ln.split("|")[1].strip(): ln for ln in md.splitlines() if ln.startswith("| ") and " ±" in ln}
    # best leads twin_a significantly (p = 2/2^10 with 10 sequences): no mark
    assert "best" in lines and "p vs next" in md
    best_p = float(lines["best"].split("|")[-2])
    assert best_p == pytest.approx(2 / 2 ** N, rel=0.01)  # printed to 3 digits
    # twin_a's lead over twin_b is noise: marked, with its p
    assert f"twin_a {stats_report.NOT_SIGNIFICANT}" in lines
    assert float(lines[f"twin_a {stats_report.NOT_SIGNIFICANT}"].split("|")[-2]) >= 0.05
    assert "1000 resamples" not in md and f"{stats.DEFAULT_RESAMPLES} resamples, seed 0" in md
    # per-attribute table: n and the mean over exactly the tagged sequences
    assert "| OCC (occlusion) | 5 |" in md and "| FM (fast motion) | 3 |" in md and "| all (" in md
    j_b = [r["J-Mean"] for r in stats_run["jobs"][2]["per_sequence"]]
    f_b = [r["F-Mean"] for r in stats_run["jobs"][2]["per_sequence"]]
    occ = 100 * np.mean([(j_b[i] + f_b[i]) / 2 for i in range(0, N, 2)])
    occ_line = next(ln for ln in md.splitlines() if ln.startswith("| OCC"))
    assert f"{occ:.1f} ±" in occ_line.split("|")[-2]
    # CSV: exact bounds around the value, p against the next row
    rows = {r["method"]: r for r in csv.DictReader(files["leaderboard.csv"].open())}
    for m, r in rows.items():
        assert float(r["J&F_lo"]) <= float(r["J&F"]) <= float(r["J&F_hi"]), m
    assert rows["best"]["lead_significant"] == "true" and rows["twin_a"]["lead_significant"] == "false"
    assert rows["twin_b"]["p_vs_next"] == ""  # last row: nothing to compare with
    att = list(csv.DictReader(files["attributes.csv"].open()))
    assert {(a["attribute"], a["num_sequences"]) for a in att} == {("all", "10"), ("OCC", "5"), ("FM", "3")}
    # results.json: every pair with its p and interval of the difference
    res = json.loads(files["results.json"].read_text())["stats"]["vos"]
    p = stats.pair(res, "best", "twin_b", "J&F")
    assert p["p"] < 0.01 and p["diff_interval"][0] > 0.1
    assert res["procedure"]["exact"] and res["procedure"]["swaps"] == 2 ** N
    assert (tmp_path / "plots" / "attributes_vos.png").is_file() and (tmp_path / "plots" / "ci_vos.png").is_file()
    html = files["report.html"].read_text()
    assert "id='attributes-vos'" in html and "95 % interval [" in html


BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def _shot(browser, url, out, tmp_path, height=1100):
    prof = tmp_path / f"profile-{out.stem}"
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={prof}",
           "--hide-scrollbars", f"--window-size=1280,{height}", f"--screenshot={out}", url]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert out.is_file(), f"no screenshot; chromium said:\n{proc.stderr[-2000:]}"
    return np.asarray(Image.open(out).convert("RGB")).astype(int)


def _count(img, hex_colour):
    rgb = tuple(int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
    return int((np.abs(img - rgb).sum(axis=2) < 20).sum())


def test_report_shows_the_attribute_chart_in_headless_chromium(tmp_path, stats_run):
    browser = next((shutil.which(b) for b in BROWSERS if shutil.which(b)), None)
    if browser is None:
        pytest.skip(f"no headless browser found (looked for {', '.join(BROWSERS)})")
    files = report.write_report(tmp_path / "run", stats_run, reported={})
    # (A "#attributes-vos" URL would scroll there, but headless Chromium then captures a blank
    # viewport; a tall window shows the whole dataset section instead.)
    img = _shot(browser, files["report.html"].as_uri(), tmp_path / "attr.png", tmp_path, height=3000)
    colours = stats_report.ATTRIBUTE_COLORS[:3]  # one bar colour per method (Set2 palette)
    counts = [_count(img, c) for c in colours]
    assert all(c > 300 for c in counts), f"attribute bars barely on screen: {counts}"
    # the bars sit below the attribute table's heading, i.e. in the attribute section
    rows = np.nonzero(np.abs(img - (0x66, 0xC2, 0xA5)).sum(axis=2) < 20)[0]
    assert rows.min() > 300
    # Control: the same report without attributes has none of those bar colours anywhere.
    for j in stats_run["datasets"].values():
        j.pop("attributes")
    files = report.write_report(tmp_path / "plain", stats_run, reported={})
    plain = _shot(browser, files["report.html"].as_uri(), tmp_path / "plain.png", tmp_path, height=3000)
    assert all(_count(plain, c) < 50 for c in colours)


def test_davis2016_t_protocol_is_stated_beside_the_number():
    info = {"metric": "davis2016", "eval_t": {"a": True, "b": False, "c": True}}
    run = {"jobs": [{"dataset": "d", "metrics": {"T_mean": 0.2}, "job": {"metric_args": {}}}]}
    assert stats_report.t_note(run, "d", info) == ("T over the 2 of 3 sequences with eval_t: True in "
                                                   "db_info.yml (official DAVIS-2016 protocol)")
    run["jobs"][0]["job"]["metric_args"] = {"t_all_sequences": True}
    assert "all 3 sequences" in stats_report.t_note(run, "d", info)
    assert stats_report.t_note(run, "d", {"metric": "davis2017", "eval_t": {}}) == ""
