"""A suite naming something that does not exist fails before anything runs, with a message
that names the suite file, the entry and what is accepted."""
from __future__ import annotations

import pytest

from vosbench.bench import cli
from vosbench.bench.runner import parse_shard, plan_suite
from vosbench.bench.suite import SuiteError, load_suite

OK_DS = {"syn": {"config": "synthetic", "overrides": ["dataset.num_videos=1"]}}


def _suite(**kw) -> dict:
    d = {"name": "bad", "datasets": OK_DS, "methods": [{"method": "first_frame_copy"}]}
    d.update(kw)
    return d


@pytest.mark.parametrize("suite, match", [
    (_suite(extra=1), r"unknown top-level key\(s\) \['extra'\]"),
    (_suite(methods=[{"method": "first_frame_copy"}, {"method": "first_frame_copy"}]), "duplicate row"),
    (_suite(methods=[{"method": "first_frame_copy", "datasets": ["nope"]}]), "unknown dataset 'nope'"),
    (_suite(methods=[{"method": "first_frame_copy", "chekpoint": "x"}]), r"unknown key\(s\) \['chekpoint'\]"),
    (_suite(expected=[{"row": "ghost", "dataset": "syn", "metric": "J&F", "value": 1, "tol": 0}]),
     "unknown row 'ghost'"),
    (_suite(datasets={"syn": {"overrides": []}}), r"missing required key\(s\) \['config'\]"),
])
def test_malformed_suites(write_suite, suite, match):
    with pytest.raises(SuiteError, match=match):
        load_suite(write_suite(suite))


@pytest.mark.parametrize("suite, match", [
    (_suite(methods=[{"method": "no_such_method"}]),
     r"row 'no_such_method' names unknown method 'no_such_method'.*available: \[.*first_frame_copy"),
    (_suite(datasets={"d": {"config": "no_such_data"}}),
     r"dataset 'd' names unknown dataset config 'no_such_data'.*available"),
    (_suite(methods=[{"method": "first_frame_copy", "checkpoint": "weights/missing.pth"}]),
     r"row 'first_frame_copy': checkpoint .*weights/missing.pth does not exist"),
    (_suite(datasets={"d": {"config": "davis2016", "root": "/definitely/not/here"}}),
     r"dataset 'd': root /definitely/not/here does not exist"),
    (_suite(datasets={"d": {"config": "synthetic", "metric": "no_metric"}}), "unknown metric 'no_metric'"),
])
def test_unknown_names_fail_before_running(write_suite, tmp_path, suite, match):
    with pytest.raises(SuiteError, match=match):
        plan_suite(load_suite(write_suite(suite)), cache_dir=tmp_path / "cache", log=lambda m: None)


def test_cli_reports_suite_errors_with_exit_code_2(write_suite, tmp_path, capsys):
    p = write_suite(_suite(methods=[{"method": "no_such_method"}]))
    assert cli.main([str(p), "--cache-dir", str(tmp_path / "c"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "bench: error:" in err and "no_such_method" in err and str(p) in err
    assert cli.main(["no_such_suite"]) == 2
    assert "unknown suite 'no_such_suite'" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()  # nothing written


def test_optional_dataset_with_missing_root_is_skipped_loudly(write_suite, tmp_path):
    suite = _suite(datasets={**OK_DS, "real": {"config": "davis2016", "root": "/not/here",
                                               "optional": True}})
    msgs = []
    plan = plan_suite(load_suite(write_suite(suite)), cache_dir=tmp_path / "c", log=msgs.append)
    assert plan.skipped == [{"dataset": "real", "reason": "skipped: root /not/here does not exist "
                                                          "(pass --root real=PATH)"}]
    assert any("skipping dataset 'real'" in m for m in msgs)


def test_parse_shard():
    assert parse_shard("1/4") == (1, 4) and parse_shard(None) == (0, 1)
    for bad in ("4/4", "x", "-1/2"):
        with pytest.raises(SuiteError):
            parse_shard(bad)


@pytest.mark.parametrize("name", ["default", "davis2016", "davis2017", "segtrackv2", "ytvis2019"])
def test_shipped_suites_parse(name):
    suite = load_suite(name)
    assert suite.name == name and suite.methods and suite.datasets
    for m in suite.methods:  # every method row names an existing method config
        from vosbench.config import CONFIG_DIR
        assert (CONFIG_DIR / "method" / f"{m.method}.yaml").is_file(), m.method


def test_workers_launch_one_shard_each(tmp_path, monkeypatch):
    """--workers N starts N children with --shard i/N, one GPU each with --gpus, then merges."""
    import argparse
    import subprocess

    launched = []

    class FakePopen:
        def __init__(self, cmd, env):
            launched.append((cmd, env))

        def wait(self):
            return 0

    monkeypatch.setattr(subprocess, "Popen", FakePopen)
    args = argparse.Namespace(workers=2, gpus="3,5", verify=False, no_plots=True)
    argv = ["tools/bench.py", "default", "--workers", "2", "--gpus=3,5", "--rows", "a"]
    with pytest.raises(SuiteError, match="no shards"):  # the fake children wrote nothing
        cli.run_workers(args, tmp_path / "run", argv, log=lambda m: None)
    cmds = [c for c, _ in launched]
    assert [c[c.index("--shard") + 1] for c in cmds] == ["0/2", "1/2"]
    assert all("--workers" not in c and not any(a.startswith("--gpus") for a in c) for c in cmds)
    assert all(c[c.index("--out") + 1] == str(tmp_path / "run") and "--rows" in c for c in cmds)
    assert [e["CUDA_VISIBLE_DEVICES"] for _, e in launched] == ["3", "5"]


def test_dataset_selection_drops_rows_restricted_to_deselected_datasets(tmp_path, capsys):
    """``--datasets synthetic_vos`` on the default suite: rows restricted to other datasets
    (``maskprop_tiny``: synthetic_vis; the #22 rows: davis2016_mini) have nothing to run and are
    left out. Before, planning raised a bare ``KeyError: 'synthetic_vis'`` (traceback, exit 1)."""
    suite = load_suite("default").select(datasets=["synthetic_vos"])
    assert suite.methods and all(m.datasets is None or m.datasets == ["synthetic_vos"] for m in suite.methods)
    rows = {m.row for m in suite.methods}
    assert "maskprop_tiny" not in rows and "lip_tiny_davis2016" not in rows and "lip_tiny" in rows
    assert all(e.dataset == "synthetic_vos" for e in suite.expected)
    assert cli.main(["--datasets", "synthetic_vos", "--list", "--cache-dir", str(tmp_path)]) == 0
    listed = capsys.readouterr().out
    assert "lip_tiny " in listed and "maskprop_tiny" not in listed
