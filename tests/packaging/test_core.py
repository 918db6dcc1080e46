"""The core depends on no shipped method; thread defaults; bench auto-workers; the Python API."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import types

import pytest

from installed import REPO, clean_env

DAVIS = REPO / "tests" / "fixtures" / "metrics" / "davis_small"
CORE_MODULES = ["vosbench", "vosbench.config", "vosbench.registry", "vosbench.api", "vosbench.cli",
                "vosbench.cli.eval", "vosbench.cli.check", "vosbench.cli.visualize",
                "vosbench.cli.precompute_flow", "vosbench.cli.bench", "vosbench.cli.train",
                "vosbench.cli.test", "vosbench.bench.cli", "vosbench.bench.runner",
                "vosbench.engine", "vosbench.engine.defaults", "vosbench.engine.inference",
                "vosbench.data", "vosbench.metrics", "vosbench.models"]


def test_importing_the_core_imports_no_shipped_method():
    code = (f"import importlib, sys\nfor m in {CORE_MODULES!r}: importlib.import_module(m)\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('vosbench_methods', 'methods')))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO.parent,
                       env=clean_env(OMP_NUM_THREADS="1"), timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip().splitlines()[-1] == "[]"


def test_no_core_source_names_a_shipped_method_module():
    bad = re.compile(r"^\s*(from|import)\s+(vosbench_methods|methods)\b", re.M)
    hits = [str(p.relative_to(REPO)) for p in (REPO / "vosbench").rglob("*.py") if bad.search(p.read_text())]
    assert hits == []


def test_thread_rule(monkeypatch):
    import torch

    from vosbench.utils import threads

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert threads.resolve_threads(None) == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert threads.resolve_threads(None) == 3 and threads.resolve_threads(2) == 2
    assert threads.resolve_threads(0) == 0
    with pytest.raises(ValueError):
        threads.resolve_threads(-1)
    before = torch.get_num_threads()
    try:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        assert threads.limit_threads(None, device="cuda") == 0  # GPU: CPU side left alone
        assert threads.limit_threads(2) == 2 and torch.get_num_threads() == 2
        import os
        assert os.environ["OMP_NUM_THREADS"] == "2"  # children inherit it
        assert threads.limit_threads(None) == 2  # now from $OMP_NUM_THREADS
    finally:
        torch.set_num_threads(before)


def test_tools_default_to_one_thread_and_eval_to_one_worker_per_core():
    """From a subprocess without $OMP_NUM_THREADS: every argparse tool has --threads, eval's
    --workers defaults to the cores, and the Hydra tools have the `threads` key."""
    code = ("import torch, os\n"
            "from vosbench.cli import eval as e\nfrom vosbench.utils.threads import cpu_cores, limit_threads\n"
            "a = e.parse_args(['--task', 'davis2017', '--gt', 'g', '--results', 'r', '--out', 'o'])\n"
            "print(a.workers == cpu_cores(), a.threads)\n"
            "limit_threads(a.threads); print(torch.get_num_threads())\n"
            "from vosbench.config import compose\nprint(compose([]).threads, compose(['threads=4']).threads)\n")
    env = clean_env()
    env.pop("OMP_NUM_THREADS", None)
    env.pop("MKL_NUM_THREADS", None)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.split() == ["True", "None", "1", "None", "4"]


class _Cache:
    def __init__(self, done=()):
        self.done = set(done)

    def get(self, row, dataset, key):
        return {"cpu_share": 1.0, "created": "2999-01-01T00:00:00Z"} if key in self.done else None


def _plan(n_jobs, device="cpu"):
    jobs = [types.SimpleNamespace(row=f"r{i}", dataset="d", key=f"k{i}") for i in range(n_jobs)]
    return types.SimpleNamespace(jobs=jobs, device=device)


def test_bench_auto_workers_one_process_per_core(monkeypatch):
    """parse_shard(None) is (0, 1): that is "not sharded", so auto-workers must not return 1."""
    from vosbench.bench import cli
    from vosbench.bench.runner import parse_shard

    monkeypatch.setattr(cli, "cpu_cores", lambda: 2)
    unsharded = parse_shard(None)
    assert unsharded == (0, 1)
    assert cli._auto_workers(_plan(5), _Cache(), unsharded) == 2
    assert cli._auto_workers(_plan(5), _Cache(), None) == 2
    assert cli._auto_workers(_plan(5), _Cache({"k0", "k1", "k2", "k3"}), unsharded) == 1  # 1 left
    assert cli._auto_workers(_plan(5), _Cache(), parse_shard("1/2")) == 1  # a worker itself
    assert cli._auto_workers(_plan(5, "cuda"), _Cache(), unsharded) == 1


def test_loaded_fps_is_not_reused_forever():
    from vosbench.bench.runner import stale_loaded_fps

    recent, old = "2999-01-01T00:00:00Z", "2000-01-01T00:00:00Z"
    assert stale_loaded_fps({"cpu_share": 0.4, "created": recent}, "cpu", 24) is None
    assert "40%" in stale_loaded_fps({"cpu_share": 0.4, "created": old}, "cpu", 24)
    assert stale_loaded_fps({"cpu_share": 0.95, "created": old}, "cpu", 24) is None  # unloaded
    assert stale_loaded_fps({"created": old}, "cpu", 24)  # no share recorded: re-measure
    assert stale_loaded_fps({"cpu_share": 0.4, "created": old}, "cuda", 24) is None
    assert stale_loaded_fps({"cpu_share": 0.4, "created": old}, "cpu", -1) is None


def test_evaluate_api_matches_the_eval_tool_and_writes_nothing(tmp_path, monkeypatch):
    import vosbench
    from vosbench.cli import eval as eval_cli

    monkeypatch.chdir(tmp_path)
    before = sorted(p for p in DAVIS.rglob("*"))
    scores = vosbench.evaluate("davis2017", DAVIS / "gt", DAVIS / "results")
    assert list(tmp_path.iterdir()) == [] and sorted(DAVIS.rglob("*")) == before  # no file written
    assert eval_cli.main(["--task", "davis2017", "--gt", str(DAVIS / "gt"), "--results",
                          str(DAVIS / "results"), "--out", str(tmp_path / "o"), "--quiet",
                          "--workers", "1"]) == 0
    assert scores == json.loads((tmp_path / "o" / "results.json").read_text())["global"]
    assert set(scores) >= {"J&F", "J_mean", "F_mean", "J_decay"}
    full = vosbench.evaluate("davis2017", DAVIS / "gt", DAVIS / "results", details=True)
    assert full["global"] == scores and full["per_object"]
    with pytest.raises(ValueError, match="unknown task"):
        vosbench.evaluate("davis2018", DAVIS / "gt", DAVIS / "results")


def test_resume_config_merge():
    from omegaconf import OmegaConf

    from vosbench.cli.train import merge_resume_config

    saved = OmegaConf.create({"method": {"name": "m", "hidden": 4}, "trainer": {"max_iter": 6, "batch_size": 2},
                              "output_dir": "out", "resume": False})
    fresh = OmegaConf.create({"method": {"name": "first_frame_copy"}, "trainer": {"max_iter": 100,
                              "batch_size": 8}, "output_dir": "out", "resume": True, "threads": None})
    merged, changed = merge_resume_config(saved, fresh, ["output_dir=out", "resume=true",
                                                         "trainer.max_iter=100"], {"method", "trainer"})
    assert merged.method == {"name": "m", "hidden": 4}  # the run's method, not the default's keys
    assert merged.trainer == {"max_iter": 100, "batch_size": 2}  # override wins, rest from the run
    assert merged.resume is True and "threads" in merged and changed == ["output_dir", "resume",
                                                                         "trainer.max_iter"]
    merged, _ = merge_resume_config(saved, fresh, ["trainer=default"], {"method", "trainer"})
    assert merged.trainer.batch_size == 8  # a group override replaces the whole group
