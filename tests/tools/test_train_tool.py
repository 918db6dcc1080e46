"""tools/train.py and tools/test.py: help, bad overrides, kill-and-resume, DDP, -m sweeps.

Subprocesses are used where the process boundary is the point (CLI output, SIGKILL, torchrun,
Hydra multirun); everything else runs the same job functions in-process to keep the suite fast.
"""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest
import torch
from hydra.errors import ConfigCompositionException

from tools_testing import REPO, RUN_TOOL, SEARCHPATH, compose_cfg, data_overrides, run_tool, tool_env
from vosbench.engine.cli import run_tool as run_job
from vosbench.engine.defaults import train

TINY = ["method=_tiny_test_method", "trainer=debug", "device=cpu"]


def _weights(path):
    return torch.load(path, weights_only=True)["model"]


def _assert_same(a, b, exact=True):
    assert a.keys() == b.keys()
    for k in a:
        if exact:
            assert torch.equal(a[k], b[k]), k
        else:
            torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-6, msg=k)


def test_cli_help_and_clear_errors(synth_root, tmp_path):
    out = run_tool("train", "--help").stdout
    for needle in ("Usage (", "torchrun", "resume=true", "== Config groups", "method:", "trainer: debug",
                   "max_iter"):
        assert needle in out, needle
    base = [*TINY, *data_overrides(synth_root), f"output_dir={tmp_path}"]
    # (a misspelt key fails inside Hydra's composition: see test_composition_errors)
    bogus = run_tool("train", *base, "+method.bogus=1", check=False)
    assert bogus.returncode == 2, bogus.stderr[-2000:]
    assert "error: method '_tiny_test_method' does not accept key(s) ['bogus']" in bogus.stderr
    assert "Traceback" not in bogus.stderr


@pytest.mark.parametrize("override, message", [
    ("trainer.max_iterz=3", r"Could not override 'trainer.max_iterz'.\nTo append to your config use \+trainer.max_iterz=3"),
    ("method=no_such_method", "Could not find 'method/no_such_method'"),
])
def test_composition_errors(override, message):
    with pytest.raises(ConfigCompositionException, match=message):
        compose_cfg(*TINY, override)


@pytest.mark.parametrize("override, message", [
    ("+method.bogus=1", "does not accept key(s) ['bogus']"),
    ("trainer.optimizer._target_=os.system", "must name a class in torch.optim"),
    ("trainer.scheduler={_target_:torch.optim.SGD}", "torch.optim.lr_scheduler"),
    ("checkpoint=/nonexistent/weights.pth", "/nonexistent/weights.pth"),
    ("method=first_frame_copy", "training-free"),
    ("trainer.batch_size=100", "fewer than one batch"),
    ("dataset.root=???", "required config value(s) not set: dataset.root"),
])
def test_job_errors_are_one_line(override, message, synth_root, tmp_path, capsys):
    cfg = compose_cfg(*TINY, *data_overrides(synth_root), f"output_dir={tmp_path}", override)
    with pytest.raises(SystemExit) as exc:
        run_job(train, cfg)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err, err


@pytest.mark.slow
def test_kill_and_resume_matches_uninterrupted(synth_root, tmp_path):
    common = [*TINY, *data_overrides(synth_root), "trainer.max_iter=12", "trainer.checkpoint_period=2",
              "trainer.batch_size=2", "method.dropout=0.3"]
    train(compose_cfg(*common, f"output_dir={tmp_path / 'ref'}"))

    # The same run in a subprocess, slowed down, killed with SIGKILL once a mid-way checkpoint exists.
    out = tmp_path / "killed"
    cmd = [sys.executable, str(RUN_TOOL), "train", *common, f"output_dir={out}", "method.step_delay=0.3",
           SEARCHPATH]
    proc = subprocess.Popen(cmd, cwd=REPO, env=tool_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    killed_at = None
    deadline = time.time() + 150
    try:
        while time.time() < deadline and proc.poll() is None:
            last = out / "last.pth"
            if last.is_file():
                it = torch.load(last, weights_only=True)["iteration"]
                if it >= 4:
                    proc.send_signal(signal.SIGKILL)
                    killed_at = it
                    break
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    assert killed_at is not None and 4 <= killed_at < 12, proc.stderr.read()[-3000:]
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "model_final.pth").exists()

    result = train(compose_cfg(*common, f"output_dir={out}", "resume=true"))
    assert result["iteration"] == 12
    _assert_same(_weights(tmp_path / "ref" / "model_final.pth"), _weights(out / "model_final.pth"))
    ref_last, res_last = (torch.load(d / "last.pth", weights_only=True) for d in (tmp_path / "ref", out))
    assert ref_last["optimizer"]["state"][0]["step"] == res_last["optimizer"]["state"][0]["step"]
    # metrics.jsonl continues where the killed run stopped: log period 2 -> iterations 2..12 once
    its = [json.loads(line)["iteration"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert its == [2, 4, 6, 8, 10, 12]


@pytest.mark.slow
def test_ddp_two_processes_match_one(synth_root, tmp_path):
    common = [*TINY, *data_overrides(synth_root), "trainer.max_iter=4", "trainer.batch_size=4",
              "trainer.checkpoint_period=0", "method.dropout=0.0"]
    train(compose_cfg(*common, f"output_dir={tmp_path / 'one'}"))
    ddp = run_tool("train", *common, f"output_dir={tmp_path / 'two'}", nproc=2, timeout=300)
    assert "on 2 process(es)" in ddp.stdout + ddp.stderr
    _assert_same(_weights(tmp_path / "one" / "model_final.pth"),
                 _weights(tmp_path / "two" / "model_final.pth"), exact=False)
    # rank 0 alone wrote the logs: one line per logged iteration (log period 2)
    assert len((tmp_path / "two" / "metrics.jsonl").read_text().splitlines()) == 2
    assert torch.load(tmp_path / "two" / "last.pth", weights_only=True)["world_size"] == 2


@pytest.mark.slow
def test_multirun_sweep_runs_each_job(synth_root, tmp_path):
    run_tool("train", "-m", *TINY, *data_overrides(synth_root), "trainer.max_iter=2", "seed=0,1",
             f"output_dir={tmp_path}")
    w0, w1 = _weights(tmp_path / "0" / "model_final.pth"), _weights(tmp_path / "1" / "model_final.pth")
    assert not torch.equal(w0["conv1.weight"], w1["conv1.weight"])  # different seeds, separate jobs


def test_slurm_launcher_config_composes():
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    from hydra import compose, initialize_config_dir

    from vosbench.config import CONFIG_DIR

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("config", overrides=["hydra/launcher=slurm", "hydra.launcher.partition=gpu",
                                           "hydra.launcher.tasks_per_node=4", SEARCHPATH],
                      return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("submitit_launcher.SlurmLauncher")
    assert launcher.partition == "gpu" and launcher.tasks_per_node == 4
    assert launcher.max_num_timeout > 0  # requeued after a timeout; resume=true continues the run
