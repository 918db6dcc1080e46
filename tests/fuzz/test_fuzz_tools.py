"""Corruption classes x ``check_dataset``, concurrent and interrupted runs, and a few real
subprocesses of every tool (exit code, the named file, no traceback).

``check_dataset`` must list every ground-truth problem ``eval`` would raise (exit 1), exit 2
for a folder that does not exist, 3 when it crashes itself. Two evaluations on one ``--out``:
the second is refused. An interrupted evaluation leaves no report, and the rerun resumes from
its cache with the numbers of an uninterrupted run. Bench run folders never collide.
"""
from __future__ import annotations

import json
import multiprocessing as mp
import os
from pathlib import Path

import pytest

import fixtures as fx
from test_fuzz_eval import CASES

FORMAT = {"davis2017": "davis2017", "davis2016": "davis2016", "segtrackv2": "segtrackv2",
          "ytvis": "ytvis2019"}
# ground-truth cases only (the named file lies in the GT folder); check_dataset must see them
GT_CASES = [c for c in CASES if c[1] in FORMAT and c[0].split("-")[0] not in ("extra",)
            and "result" not in c[0] and "score" not in c[0]
            and c[0] not in ("missing-split-file", "opaque-alpha-is-grey", "wrong-pairing-unknown-video")]


@pytest.mark.parametrize("name,task,mutate", GT_CASES, ids=[c[0] for c in GT_CASES])
def test_check_dataset_reports_what_eval_rejects(name, task, mutate, data, tmp_path):
    gt, res = data(task)
    named = mutate(gt, res)
    root = gt
    r = fx.run_check(root, "--format", FORMAT[task])
    rel = str(named).replace(str(tmp_path) + os.sep, "")
    fx.assert_clean_error(r, 1, rel)
    assert "problem(s) in" in r.out


def test_check_dataset_exit_codes(data, tmp_path, monkeypatch):
    gt, _ = data("davis2017")
    assert fx.run_check(gt, "--format", "davis2017").code == 0
    assert fx.run_check(gt, "--format", "davis2017", "--level", "header").code == 0
    fx.assert_clean_error(fx.run_check(tmp_path / "nope", "--format", "davis2017"), 2, "nope")
    from vosbench.data.datasets import DAVIS2017

    def boom(**kw):
        raise RuntimeError("checker bug")

    monkeypatch.setattr(DAVIS2017, "check_root", classmethod(lambda cls, **kw: boom()))
    r = fx.run_check(gt, "--format", "davis2017")
    fx.assert_clean_error(r, 3, "internal error: RuntimeError: checker bug")


def test_late_objects_are_a_problem_in_evaluation_splits_only(tmp_path):
    """An object entering after frame 0 (ids above the first frame's count): fine to train on,
    not scored by the DAVIS-2017 protocol (eval warns), reported by check_dataset outside train."""
    import numpy as np
    from PIL import Image

    gt = fx.make_davis2017(tmp_path / "gt", split="val")
    (gt / "ImageSets/2017/train.txt").write_text("s0\ns1\n")
    p = gt / "Annotations/480p/s0/00003.png"
    lab = np.array(Image.open(p))
    lab[20:24, 25:30] = 3
    fx.write_palette(p, lab)
    r = fx.run_check(gt, "--format", "davis2017")
    fx.assert_clean_error(r, 1, "s0/00003.png", "above the first frame's object count 2")
    assert fx.run_check(gt, "--format", "davis2017", "--split", "train").code == 0
    res = fx.make_davis2017_results(gt, tmp_path / "res")
    lab[20:24, 25:30] = 0
    fx.write_palette(res / "s0" / "00003.png", lab)
    e = fx.run_eval("--task", "davis2017", "--gt", gt, "--results", res, "--out", tmp_path / "o")
    assert e.code == 0 and "ground-truth object(s) [3] first appear after the first frame" in e.out


# -------------------------------------------------------------------------- concurrent runs
def test_second_evaluation_on_the_same_out_is_refused(data, tmp_path):
    from vosbench.utils.io import folder_lock

    gt, res = data("davis2017")
    out = tmp_path / "out"
    with folder_lock(out, "evaluation"):  # an evaluation in progress (another open file)
        r = fx.run_eval("--task", "davis2017", "--gt", gt, "--results", res, "--out", out)
        fx.assert_clean_error(r, 2, str(out), "another evaluation is writing to this folder")
        assert fx.report_files(out) == []
        # and from another process (the lock is a kernel flock)
        s = fx.run_subprocess("eval", "--task", "davis2017", "--gt", gt, "--results", res,
                              "--out", out, "--quiet", "--workers", "1")
        fx.assert_clean_error(s, 2, "another evaluation")
    ok = fx.run_eval("--task", "davis2017", "--gt", gt, "--results", res, "--out", out)
    assert ok.code == 0 and "results.json" in fx.report_files(out)


def _mk(args):
    from vosbench.bench.runner import make_run_dir

    base, now = args
    return str(make_run_dir(base, now=now))


def test_bench_run_folders_never_collide(tmp_path):
    from vosbench.bench.runner import make_run_dir

    now = 1_800_000_000.0  # every run "started in the same second"
    a, b = make_run_dir(tmp_path, now=now), make_run_dir(tmp_path, now=now)
    assert a != b and a.is_dir() and b.is_dir() and a.name[:15] == b.name[:15]
    with mp.get_context("spawn").Pool(4) as pool:
        dirs = pool.map(_mk, [(str(tmp_path / "c"), now)] * 8)
    assert len(set(dirs)) == 8 and all(Path(d).is_dir() for d in dirs)
    # the CLI names its folders through it
    import argparse

    from vosbench.bench.cli import _out_dir

    ns = argparse.Namespace(out=None, output_root=str(tmp_path / "root"))
    x, y = _out_dir(ns, "default"), _out_dir(ns, "default")
    assert x != y and x.parent == y.parent == tmp_path / "root" / "default"


# ------------------------------------------------------------------------- interrupted runs
def test_interrupted_evaluation_leaves_no_report_and_resumes_exactly(data, tmp_path, monkeypatch):
    from vosbench.metrics import runner

    gt, res = data("davis2017")
    ref = fx.run_eval("--task", "davis2017", "--gt", gt, "--results", res, "--out", tmp_path / "ref")
    assert ref.code == 0
    real = runner.run_vos_job
    calls = []

    def dies_on_second(job):
        calls.append(job.seq)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(job)

    monkeypatch.setattr(runner, "run_vos_job", dies_on_second)
    out = tmp_path / "out"
    r = fx.run_eval("--task", "davis2017", "--gt", gt, "--results", res, "--out", out)
    assert r.code == 130 and "Traceback" not in r.text and fx.report_files(out) == []
    monkeypatch.setattr(runner, "run_vos_job", real)
    r = fx.run_eval("--task", "davis2017", "--gt", gt, "--results", res, "--out", out)
    assert r.code == 0
    rep = json.loads((out / "results.json").read_text())
    assert rep["cached_sequences"] == 1
    assert rep["global"] == json.loads((tmp_path / "ref" / "results.json").read_text())["global"]


def test_corrupt_cache_entry_is_recomputed(data, tmp_path):
    gt, res = data("davis2017")
    out = tmp_path / "out"
    assert fx.run_eval("--task", "davis2017", "--gt", gt, "--results", res, "--out", out).code == 0
    g0 = json.loads((out / "results.json").read_text())["global"]
    (out / "cache" / "davis2017" / "s0.json").write_text("[1, 2, 3]")  # wrong shape
    (out / "cache" / "davis2017" / "s1.json").write_text('{"key": "x"')  # torn
    r = fx.run_eval("--task", "davis2017", "--gt", gt, "--results", res, "--out", out)
    assert r.code == 0
    rep = json.loads((out / "results.json").read_text())
    assert rep["cached_sequences"] == 0 and rep["global"] == g0


# --------------------------------------------------------------- real processes of each tool
def test_tool_processes_exit_codes_and_no_tracebacks(data, tmp_path):
    """One real process per tool on broken input (the in-process tests cover the cases)."""
    gt, res = data("davis2017")
    (gt / "Annotations/480p/s1/00004.png").write_bytes(b"\x89PNG\r\n")  # truncated
    named = "s1/00004.png"
    r = fx.run_subprocess("check", gt, "--format", "davis2017")
    fx.assert_clean_error(r, 1, named)
    r = fx.run_subprocess("eval", "--task", "davis2017", "--gt", gt, "--results", res, "--out",
                          tmp_path / "o", "--quiet", "--workers", "2")  # error inside a worker
    fx.assert_clean_error(r, 2, named)
    assert fx.report_files(tmp_path / "o") == []
    r = fx.run_subprocess("test", "method=first_frame_copy", "dataset=davis2017",
                          f"dataset.root={gt}", f"output_dir={tmp_path / 't'}")
    fx.assert_clean_error(r, 2, named)
    assert not (tmp_path / "t" / "metrics.json").exists()
    r = fx.run_subprocess("train", "method=maskrnn_tiny", "dataset=davis2017", f"dataset.root={gt}",
                          "trainer=debug", "trainer.train_split=val", f"output_dir={tmp_path / 'tr'}")
    fx.assert_clean_error(r, 2, named, "problem(s) in the training split")
    assert not (tmp_path / "tr" / "last.pth").exists()


def test_unwritable_out_is_a_one_line_error(data, tmp_path):
    gt, res = data("davis2016")
    out = tmp_path / "out"
    out.write_text("a file where the output folder should be")
    r = fx.run_eval("--task", "davis2016", "--gt", gt, "--results", res, "--out", out)
    fx.assert_clean_error(r, 2, str(out), "not a folder")
    r = fx.run_eval("--task", "davis2016", "--gt", gt, "--results", res, "--out", out / "sub")
    fx.assert_clean_error(r, 2, str(out))
