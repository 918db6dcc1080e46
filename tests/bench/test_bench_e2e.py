"""End to end: a mini suite (tiny synthetic DAVIS-2017-format data, the two baselines) through
``tools/bench.py``'s ``main``: leaderboard files, cache hits, --verify exit codes, shards."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

from vosbench.bench import cli, runner

TINY = ["dataset.num_videos=2", "dataset.num_frames=5", "dataset.height=64", "dataset.width=96",
        "dataset.max_objects=2"]


def mini_suite(expected_jf: float | None = None, tol: float = 0.02, flow_threshold: float = 0.5) -> dict:
    suite = {
        "name": "mini",
        "description": "tiny synthetic data, baselines",
        "datasets": {"syn": {"config": "synthetic", "overrides": TINY, "root": "cache",
                             "reported_as": "davis2017", "note": "test data"}},
        "methods": [{"row": "first_frame_copy", "method": "first_frame_copy"},
                    {"row": "flow_propagation", "method": "flow_propagation",
                     "overrides": [f"method.threshold={flow_threshold}"]}],
    }
    if expected_jf is not None:
        suite["expected"] = [{"row": "first_frame_copy", "dataset": "syn", "metric": "J&F",
                              "value": expected_jf, "tol": tol}]
    return suite


@pytest.fixture(scope="module")
def frozen_code_hash():
    """Hash the sources once per module: the cache key includes a hash of ``vosbench/`` and the
    method packages, and in a shared work tree someone may edit them between two runs of a test
    (which would, correctly, recompute everything). Code-change invalidation is tested below."""
    memo: dict = {}
    real = runner.tree_hash
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(runner, "tree_hash",
                   lambda *a, **kw: memo.setdefault((a, tuple(sorted(kw.items()))), real(*a, **kw)))
        yield


@pytest.fixture(scope="module")
def first_run(tmp_path_factory, frozen_code_hash):
    """Run the mini suite once (computes both rows); other tests reuse its cache."""
    base = tmp_path_factory.mktemp("bench")
    suite = base / "mini.yaml"
    suite.write_text(yaml.safe_dump(mini_suite()))
    out = base / "out1"
    rc = cli.main([str(suite), "--out", str(out), "--cache-dir", str(base / "cache"), "--no-progress",
                   "--device", "cpu"])
    return {"rc": rc, "out": out, "base": base, "suite": suite}


def test_code_hash_changes_with_the_code(tmp_path):
    from vosbench.bench.cache import tree_hash

    (tmp_path / "pkg").mkdir()
    f = tmp_path / "pkg" / "model.py"
    f.write_text("x = 1\n")
    h1 = tree_hash(tmp_path / "pkg")
    (tmp_path / "pkg" / "notes.txt").write_text("not code")
    assert tree_hash(tmp_path / "pkg") == h1
    f.write_text("x = 2\n")
    assert tree_hash(tmp_path / "pkg") != h1


def _run(first_run, suite_dict: dict, name: str, *extra: str) -> tuple[int, Path]:
    p = first_run["base"] / f"{name}.yaml"
    p.write_text(yaml.safe_dump(suite_dict))
    out = first_run["base"] / f"out-{name}"
    rc = cli.main([str(p), "--out", str(out), "--cache-dir", str(first_run["base"] / "cache"),
                   "--no-progress", "--device", "cpu", *extra])
    return rc, out


def test_leaderboard_files(first_run):
    assert first_run["rc"] == 0
    out = first_run["out"]
    md = (out / "leaderboard.md").read_text()
    assert "## syn: synthetic dataset, davis2017 evaluator, 2 videos" in md
    assert "| Method | J&F | J mean | J recall | J decay | F mean | F recall | F decay | T | FPS |" in md
    assert "| first_frame_copy |" in md and "| flow_propagation |" in md
    # Reported rows (davis2017 in benchmarks/reported.yaml) in their own table, after the measured.
    measured, _, reported = md.partition("Reported in papers")
    assert "LIP (reported)" in reported and "(reported)" not in measured

    rows = list(csv.DictReader((out / "leaderboard.csv").open()))
    kinds = [r["kind"] for r in rows]
    assert kinds[:2] == ["measured", "measured"] and set(kinds[2:]) == {"reported"}
    for r in rows[:2]:
        assert 0.0 <= float(r["J&F"]) <= 100.0 and float(r["fps"]) > 0 and float(r["params_m"]) >= 0

    res = json.loads((out / "results.json").read_text())
    assert {j["row"] for j in res["jobs"]} == {"first_frame_copy", "flow_propagation"}
    for j in res["jobs"]:
        assert j["cached"] is False
        assert set(j["metrics"]) >= {"J&F", "J_mean", "J_recall", "J_decay", "F_mean", "F_recall", "F_decay"}
        assert j["per_sequence"] and all("video" in r for r in j["per_sequence"])  # every sequence
        assert len(j["j_curve"]) == 20
    prov = res["provenance"]
    assert prov["git_commit"] and prov["packages"]["torch"] and prov["device"]["device"] == "cpu"
    assert "tools/bench.py" in prov["command"] and len(prov["suite_hash"]) == 64
    assert set(prov["config_hashes"]) == {"first_frame_copy@syn", "flow_propagation@syn"}
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 3 and "Provenance" in html
    assert sorted(p.name for p in (out / "plots").glob("*.png")) == [  # + #21: intervals, attributes
        "attributes_syn.png", "ci_syn.png", "j_over_time_syn.png", "jf_vs_fps_syn.png",
        "per_sequence_syn.png"]


def test_rerun_uses_cache_and_recomputes_only_what_changed(first_run, monkeypatch):
    calls = []
    real = runner.run_job

    def spy(job, *a, **kw):
        calls.append(job.row)
        return real(job, *a, **kw)

    monkeypatch.setattr(runner, "run_job", spy)
    rc, out = _run(first_run, mini_suite(), "same")
    assert rc == 0 and calls == []  # nothing recomputed
    assert all(j["cached"] for j in json.loads((out / "results.json").read_text())["jobs"])
    # Change one row's config: only that row runs again.
    rc, out = _run(first_run, mini_suite(flow_threshold=0.4), "changed")
    assert rc == 0 and calls == ["flow_propagation"]
    # Identical metrics for the unchanged row.
    a = json.loads((first_run["out"] / "results.json").read_text())["jobs"][0]
    b = json.loads((out / "results.json").read_text())["jobs"][0]
    assert a["row"] == b["row"] == "first_frame_copy" and a["metrics"] == b["metrics"]


def test_verify_exit_codes(first_run, capsys):
    jf = json.loads((first_run["out"] / "results.json").read_text())["jobs"][0]["metrics"]["J&F"]
    rc, out = _run(first_run, mini_suite(expected_jf=jf, tol=1e-6), "verify-ok", "--verify")
    assert rc == 0 and "All checked metrics within tolerance" in (out / "leaderboard.md").read_text()
    rc, out = _run(first_run, mini_suite(expected_jf=jf + 0.1, tol=0.05), "verify-bad", "--verify")
    assert rc == 1
    assert "--verify FAILED" in capsys.readouterr().err
    assert "| first_frame_copy | syn | J&F |" in (out / "leaderboard.md").read_text()


def test_shards_merge_to_the_same_leaderboard(first_run):
    suite = mini_suite()
    out_dir = first_run["base"] / "sharded"
    for i in range(2):
        rc, _ = _run(first_run, suite, f"shard{i}", "--shard", f"{i}/2", "--out", str(out_dir))
        assert rc == 0
    assert sorted(p.name for p in (out_dir / "shards").iterdir()) == ["shard-0-of-2.json", "shard-1-of-2.json"]
    assert cli.main(["--merge", str(out_dir), "--no-plots"]) == 0
    merged = json.loads((out_dir / "results.json").read_text())
    single = json.loads((first_run["out"] / "results.json").read_text())
    assert [j["row"] for j in merged["jobs"]] == [j["row"] for j in single["jobs"]]
    assert [j["metrics"] for j in merged["jobs"]] == [j["metrics"] for j in single["jobs"]]
    # A missing shard is an error, not a partial leaderboard.
    (out_dir / "shards" / "shard-1-of-2.json").unlink()
    assert cli.main(["--merge", str(out_dir)]) == 2


def test_a_failing_job_is_reported_and_the_others_still_run(first_run, capsys):
    bad = first_run["base"] / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    suite = mini_suite(expected_jf=0.5, tol=1.0)
    suite["methods"][0]["checkpoint"] = str(bad)
    rc, out = _run(first_run, suite, "failing", "--verify", "--no-plots")
    assert rc == 1
    md = (out / "leaderboard.md").read_text()
    assert "## Failed" in md and "`first_frame_copy` on `syn`" in md
    ranked = md.partition("## Failed")[0]
    assert "| flow_propagation |" in ranked and "| first_frame_copy |" not in ranked  # not ranked
    assert "the job failed" in md  # --verify of the failed row fails, saying why
    assert "FAILED: first_frame_copy on syn" in capsys.readouterr().err
    res = json.loads((out / "results.json").read_text())
    assert [j.get("failed", False) for j in res["jobs"]] == [True, False]
