"""Acceptance of #20: a normal (non-editable) ``pip install .`` works from any folder.

One venv per module (``installed.install``: ``--system-site-packages``, no network, ~20 s), then
every command runs from an empty folder outside the checkout, with ``PYTHONPATH`` unset, so only
the installed package (configs, suites and checkpoints as package data) can be found.
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from installed import REPO, clean_env, install, pip_available

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]

SHARED_DAVIS = REPO.parent / "shared" / "data" / "davis2016-mini"


@pytest.fixture(scope="module")
def inst(tmp_path_factory):
    if not pip_available():
        pytest.skip("pip is not available to this interpreter")
    base = tmp_path_factory.mktemp("install")
    info = install(base)
    empty = base / "elsewhere"
    empty.mkdir()
    info["cwd"] = empty
    info["env"] = clean_env(VOSBENCH_CACHE=str(base / "cache"), OMP_NUM_THREADS="1",
                            MKL_NUM_THREADS="1", HYDRA_FULL_ERROR="0")
    return info


def run(inst, *args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run([*map(str, args)], cwd=inst["cwd"], env=inst["env"], capture_output=True,
                       text=True, timeout=timeout)
    if check and r.returncode:
        raise AssertionError(f"{args} failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-4000:]}")
    return r


def test_installed_copy_is_used_and_import_loads_no_method(inst):
    code = ("import sys, vosbench, vosbench.config, vosbench.bench.suite, vosbench.utils.resources as r;"
            "print(vosbench.__file__); print(r.is_packaged(), r.hydra_config_path());"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('vosbench_methods', 'methods')))")
    out = run(inst, inst["python"], "-c", code).stdout.splitlines()
    assert out[0].startswith(str(inst["venv"])), out  # not the checkout
    assert out[1] == "True pkg://vosbench._resources.configs"
    assert out[2] == "[]"
    # the shipped methods still register, through the entry points
    r = run(inst, inst["python"], "-c", "from vosbench.registry import METHODS; print(METHODS.list())")
    assert "maskrnn" in r.stdout and "first_frame_copy" in r.stdout
    assert "methods" not in (inst["venv"] / "lib").glob("python*/site-packages").__next__().joinpath(
        "vosbench-0.1.0.dist-info", "top_level.txt").read_text().split()


def test_console_script_and_python_m(inst):
    r = run(inst, inst["bin"] / "vosbench", "--help")
    for cmd in ("train", "test", "eval", "bench", "check", "visualize"):
        assert f"\n  {cmd} " in r.stdout
    assert "usage: vosbench" in run(inst, inst["python"], "-m", "vosbench", "eval", "--help").stdout
    listing = run(inst, inst["bin"] / "vosbench", "bench", "--list").stdout
    assert "maskrnn_tiny" in listing and "synthetic_vos" in listing  # suites + shipped checkpoints


def test_bench_rows_write_a_leaderboard(inst):
    r = run(inst, inst["bin"] / "vosbench", "bench", "--rows", "first_frame_copy,flow_propagation",
            timeout=1200)
    runs = sorted((inst["cwd"] / "bench_out" / "default").iterdir())
    assert runs, r.stderr[-2000:]
    md = (runs[-1] / "leaderboard.md").read_text()
    assert "| flow_propagation |" in md and "| first_frame_copy |" in md
    assert "leaderboard.md" in r.stderr  # where it wrote, printed at the end


def test_user_config_folder_joins_the_search_path(inst, tmp_path):
    (tmp_path / "conf" / "method").mkdir(parents=True)
    (tmp_path / "conf" / "method" / "my_copy.yaml").write_text("name: first_frame_copy\n")
    r = run(inst, inst["bin"] / "vosbench", "train", "--cfg", "job", "method=my_copy",
            f"hydra.searchpath=[file://{tmp_path / 'conf'}]")
    assert "name: first_frame_copy" in r.stdout
    r = run(inst, inst["bin"] / "vosbench", "train", "--cfg", "job", "method=my_copy",
            "--config-dir", str(tmp_path / "conf"))
    assert "name: first_frame_copy" in r.stdout


def test_train_debug_trains(inst):
    r = run(inst, inst["bin"] / "vosbench", "train", "method=maskrnn_tiny", "dataset=synthetic",
            "trainer=debug", "output_dir=run", timeout=900)
    assert "done: 6 iterations" in r.stdout
    assert "total_loss" in r.stdout + r.stderr  # trainer=debug is not silent
    assert (inst["cwd"] / "run" / "model_final.pth").is_file()
    assert f"wrote {inst['cwd'] / 'run'}/: model_final.pth, last.pth, config.yaml" in r.stdout


def test_eval_gives_the_numbers_of_tools_eval(inst, tmp_path):
    if not (SHARED_DAVIS / "JPEGImages").is_dir():
        pytest.skip(f"real DAVIS-2016 data not found at {SHARED_DAVIS}")
    run(inst, inst["bin"] / "vosbench", "test", "method=first_frame_copy", "dataset=davis2016",
        f"dataset.root={SHARED_DAVIS}", "output_dir=ffc", timeout=900)
    pred = inst["cwd"] / "ffc" / "predictions"
    r = run(inst, inst["bin"] / "vosbench", "eval", "--task", "davis2016", "--gt", SHARED_DAVIS,
            "--results", pred, "--out", "eval_installed", "--quiet", timeout=900)
    assert "global_results-val.csv" in r.stdout  # every file it wrote, listed
    clone = subprocess.run([sys.executable, str(REPO / "tools" / "eval.py"), "--task", "davis2016",
                            "--gt", str(SHARED_DAVIS), "--results", str(pred), "--out",
                            str(tmp_path / "eval_clone"), "--quiet"], capture_output=True, text=True,
                           timeout=900, env=clean_env(OMP_NUM_THREADS="1"))
    assert clone.returncode == 0, clone.stderr[-3000:]
    a = json.loads((inst["cwd"] / "eval_installed" / "results.json").read_text())["global"]
    b = json.loads((tmp_path / "eval_clone" / "results.json").read_text())["global"]
    assert a == b and "T_mean" in a and 0 < a["J&F"] < 1
    assert (inst["cwd"] / "eval_installed" / "global_results-val.csv").read_text() == \
        (tmp_path / "eval_clone" / "global_results-val.csv").read_text()
