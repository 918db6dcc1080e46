"""Leaderboard files from a hand-made run: content, columns, reported rows kept apart, verify."""
from __future__ import annotations

import csv
import json

from vosbench.bench import report, verify
from vosbench.bench.suite import Expectation, load_reported


def test_files_columns_and_ranking(tmp_path, fake_run, reported):
    files = report.write_report(tmp_path, fake_run, reported=reported)
    for name in ("leaderboard.md", "leaderboard.csv", "results.json", "report.html"):
        assert files[name].is_file() and files[name].stat().st_size > 0
    md = files["leaderboard.md"].read_text()
    # VOS table: all VOS columns + costs, ranked by J&F (slow_good 80.0 above fast_bad 60.0).
    assert "| Method | J&F | J mean | J recall | J decay | F mean | F recall | F decay | T | FPS |" in md
    assert md.index("| slow_good | 80.0 | 78.0 | 90.0 | 5.0 | 82.0 |") < md.index("| fast_bad | 60.0")
    assert "| 512 | 1.23M |" in md  # peak memory (MB), parameter count (M = million)
    # VIS table has the VIS columns only.
    assert "| Method | mAP | AP50 | AP75 | AR1 | AR10 | FPS |" in md
    assert "| vis_method | 30.0 | 40.0 | 20.0 | 30.0 | 35.0 | 3.0 |" in md
    assert "davis2017_mini" in md and "does not exist" in md  # skipped, said out loud

    rows = list(csv.DictReader(files["leaderboard.csv"].open()))
    assert list(rows[0])[:3] == ["kind", "dataset", "method"]
    assert {"J&F", "T_mean", "mAP", "AP75", "AR10", "fps", "peak_mem_mb", "params_m"} <= set(rows[0])
    measured = [r for r in rows if r["kind"] == "measured"]
    assert [r["method"] for r in measured] == ["slow_good", "fast_bad", "vis_method"]
    assert abs(float(measured[0]["J&F"]) - 80.0) < 1e-6

    res = json.loads(files["results.json"].read_text())
    assert res["jobs"][0]["per_sequence"][0]["video"] == "seq0"  # per sequence kept
    assert res["provenance"]["git_commit"] == "0123456789abcdef"
    assert "davis2016" in res["reported"]
    assert (tmp_path / "plots").is_dir() and len(list((tmp_path / "plots").glob("*.png"))) >= 4


def test_reported_rows_never_mixed(tmp_path, fake_run, reported):
    files = report.write_report(tmp_path, fake_run, reported=reported, plots=False)
    md = files["leaderboard.md"].read_text()
    measured_table, _, after = md.partition("Reported in papers")
    assert "PaperNet" not in measured_table  # not ranked among measured rows
    assert "| PaperNet (reported) | - | 80.4 | - | - | 82.3 |" in after
    rows = list(csv.DictReader(files["leaderboard.csv"].open()))
    rep = [r for r in rows if r["kind"] == "reported"]
    assert [r["method"] for r in rep] == ["PaperNet"] and rep[0]["source"].startswith("Someone")
    # Reported rows appear only under the dataset that asks for them (not under 'vis').
    assert all(r["dataset"] == "vos" for r in rep)
    html = files["report.html"].read_text()
    assert "class='badge'>reported" in html and "<tr class='reported'>" in html


def test_shipped_reported_numbers():
    rep = load_reported()
    maskrnn16 = next(r for r in rep["davis2016"]["rows"] if r["method"] == "MaskRNN")
    assert maskrnn16["metrics"]["J_mean"] == 80.4 and maskrnn16["metrics"]["F_mean"] == 82.3
    assert next(r for r in rep["davis2017"]["rows"] if r["method"] == "MaskRNN")["metrics"]["J_mean"] == 60.5
    assert rep["segtrackv2"]["rows"][0]["metrics"]["J_mean"] == 72.1
    lip17 = next(r for r in rep["davis2017"]["rows"] if r["method"] == "LIP")["metrics"]
    assert (lip17["J&F"], lip17["J_mean"], lip17["F_mean"]) == (61.1, 59.0, 63.2)
    assert next(r for r in rep["davis2016"]["rows"] if r["method"] == "LIP")["metrics"]["J&F"] == 78.5
    mp = rep["ytvis2019"]["rows"][0]["metrics"]
    assert (mp["mAP"], mp["AP75"], mp["AR1"], mp["AR10"]) == (46.6, 51.2, 44.0, 52.6)


def test_verify_statuses(fake_run):
    exp = [Expectation("slow_good", "vos", "J&F", 0.80, 0.01),      # ok
           Expectation("fast_bad", "vos", "J&F", 0.70, 0.05),       # off by 0.1: FAIL
           Expectation("fast_bad", "vos", "AP75", 0.1, 0.1),        # metric absent: FAIL
           Expectation("slow_good", "davis2017_mini", "J&F", 0.5, 0.1)]  # not run
    rows = verify.check(exp, fake_run["jobs"])
    assert [r["status"] for r in rows] == ["ok", "FAIL", "FAIL", "not run"]
    assert verify.failed(rows) and not verify.failed(rows[:1] + rows[3:])
    assert "FAIL" in verify.format_table(rows)


def test_per_sequence_scores_fallback():
    job = {"per_sequence": [{"Sequence": "1", "num_gt": 1}],
           "per_frame": {"a_1": {"video": "a", "J": [0.5, None, 1.0]}}}
    assert report.per_sequence_scores(job) == {"a": 0.75}
