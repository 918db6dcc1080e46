"""benchmarks/paper_scale.py and benchmarks/gpu_check.py: the stage contract and the harness.

The harness runs here on the tiny method configs (``--override method=<m>_tiny``) at small
resolutions, on the real davis2016-mini frames; the paper-size runs are in benchmarks/RESULTS.md.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))

import gpu_check  # noqa: E402
import paper_scale as ps  # noqa: E402

from vosbench.config import compose  # noqa: E402

LINE = re.compile(r"^stage (\S+): ok  loss (n/a|-?\d+\.\d{4})  \d+\.\d\ds/it  peak \d+MB$")
needs_mini = pytest.mark.skipif(not ps.MINI.is_dir() or not ps.MINI_YTVIS.is_file(),
                                reason="../shared/data/davis2016-mini not present")
TINY = {"lip": ["method=lip_tiny", "method.min_size=[64,80,96]", "method.max_size=160"],
        "maskprop": ["method=maskprop_tiny", "method.min_size=[64,80,96]", "method.max_size=160"]}


@pytest.mark.parametrize("method", ["lip", "maskprop", "maskrnn"])
def test_every_stage_composes_with_a_valid_recipe(method):
    stages = ps.find_stages(method)
    if method != "maskrnn":
        assert stages, f"no configs/experiment/{method}/*.yaml"
    for s in stages:
        cfg = compose([f"+experiment={method}/{s}"])
        assert cfg.method.name == method and cfg.allow_random_init is False
        r = ps.read_recipe(cfg, s)
        assert set(r["runs"]) <= set(ps.RUN_KINDS) and r["paper_batch"] >= 1
        if "train" in r["runs"]:  # the paper's optimizer, not the trainer default
            assert cfg.trainer.optimizer._target_ != "torch.optim.AdamW" or method == "maskrnn"


def test_recipe_errors_name_the_stage():
    cfg = compose(["+experiment=lip/stage2_video"])
    cfg.recipe.runs = ["train", "dance"]
    with pytest.raises(ValueError, match=r"x\.yaml: recipe\.runs must be"):
        ps.read_recipe(cfg, "x.yaml")
    cfg.recipe.runs = ["train"]
    cfg.recipe.data = "imagenet"
    with pytest.raises(ValueError, match=r"recipe\.data must be one of"):
        ps.read_recipe(cfg, "x.yaml")


def test_projection_arithmetic():
    tr = {"mem_per_sample_mb": 100.0, "static_mb": 1000.0, "objects": 1.0}
    p = ps.projection(tr, {"paper_batch": 16, "paper_gpus": 1, "paper_accum": 8}, 4.0)
    assert p["per_gpu_clips"] == 2 and p["projected_mb_per_gpu"] == 1000 + 2 * 100 * 4
    p = ps.projection(tr, {"paper_batch": 32, "paper_gpus": 32, "paper_accum": 1,
                           "paper_objects_per_sample": 4}, 1.0)
    assert p["projected_mb_per_gpu"] == 1000 + 400 and "x 4 objects" in p["line"]


def test_saved_activations_count_what_backward_keeps_not_the_parameters():
    import torch

    lin = torch.nn.Linear(64, 32)
    x = torch.randn(8, 64)
    with ps.SavedActivations(exclude=list(lin.parameters())) as acts:
        h = torch.relu(lin(x))           # addmm saves x (and the weight: a parameter), relu its output
        y = (h * h.view(4, 64).view(8, 32)).sum()   # mul saves both operands: one storage, counted once
    assert acts.mb * 2**20 == 8 * 64 * 4 + 8 * 32 * 4
    y.backward()
    with torch.no_grad(), ps.SavedActivations() as none:   # nothing is saved without a graph
        torch.relu(lin(x))
    assert none.mb == 0


def test_epoch_schedule_converts_epochs_to_iterations():
    from vosbench.engine.defaults import epoch_schedule

    class Rec:
        def __init__(self, n):
            self.frame_paths = [None] * n

    class DS:
        videos = [Rec(30), Rec(70)]

    cfg = compose(["+experiment=maskprop/ytvis_train", "trainer.batch_size=8"])
    max_iter, sched, clip = epoch_schedule(cfg.trainer, DS())
    # 100 frames / 8 clips per step -> 13 iterations per epoch; 20 epochs, steps at 16 and 19
    assert (max_iter, sched["milestones"], clip["samples_per_epoch"]) == (260, [208, 247], 100)
    it, sched2, _ = epoch_schedule(compose(["+experiment=lip/stage2_video"]).trainer, DS())
    assert it == 12000 and list(sched2.milestones) == [8000, 10000]   # iteration-based: unchanged


@needs_mini
def test_harness_runs_lip_stages_on_tiny_models(capsys):
    rc = ps.main(["--method", "lip", "--smoke", "--stage", "stage2_video", "--stage", "online",
                  *sum((["--override", o] for o in TINY["lip"] + ["trainer.clip.num_frames=3"]), [])])
    out = capsys.readouterr().out
    assert rc == 0, out
    lines = [ln for ln in out.splitlines() if ln.startswith("stage ")]
    assert [LINE.match(ln).group(1) for ln in lines] == ["online", "stage2_video"], out
    assert "projected paper batch 1 on 1 GPU(s)" in out and "allow_random_init=true" in out
    assert re.search(r"finetune: 2 iterations on the reference frame", out)
    assert "predict: 4 real frames" in out


@needs_mini
def test_harness_maskprop_coco_and_ytvis_data(capsys):
    rc = ps.main(["--method", "maskprop", "--smoke", "--stage", "detector_coco", "--stage", "ytvis_train",
                  *sum((["--override", o] for o in TINY["maskprop"]), [])])
    out = capsys.readouterr().out
    assert rc == 0, out
    lines = [ln for ln in out.splitlines() if ln.startswith("stage ")]
    assert len(lines) == 2 and all(LINE.match(ln) for ln in lines), out
    # both training stages measure their clip, the second one too (RSS growth showed 0 MB there)
    per_sample = [float(v) for v in re.findall(r"memory/sample (\d+)MB \(1 object\(s\), activations saved", out)]
    assert len(per_sample) == 2 and min(per_sample) > 0, out


@needs_mini
def test_harness_exit_status_on_a_failing_stage(capsys):
    rc = ps.main(["--method", "lip", "--smoke", "--stage", "online", "--override", "method=lip_tiny",
                  "--override", "+method.no_such_key=1"])
    out = capsys.readouterr().out
    assert rc == 1 and re.search(r"stage online: FAILED  ConfigError: .*no_such_key", out), out
    assert ps.main(["--method", "lip", "--stage", "nope"]) == 2


def test_gpu_check_without_cuda_says_so_and_exits_0(capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu_check.main([]) == 0
    assert "CUDA is not available" in capsys.readouterr().out
    cmd = gpu_check.ddp_command("lip", "stage2_video", "cuda", ["method=lip_tiny"])
    assert cmd[1:5] == ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1"]
    assert "--ddp-step" in cmd and cmd[-2:] == ["--override", "method=lip_tiny"]


@needs_mini
def test_gpu_check_cpu_dry_run_with_a_torchrun_ddp_step():
    """The CPU dry mode runs gpu_check's whole path: training iterations, one DDP step through
    torchrun (gloo on CPU, NCCL on GPU), one video inference."""
    ok, lines = gpu_check.check_stage("maskprop", "ytvis_train", device="cpu", iters=1,
                                      extra=TINY["maskprop"], video_frames=3, ddp=True, ddp_timeout=300)
    text = "\n".join(lines)
    assert ok, text
    assert re.search(r"maskprop/ytvis_train: train 1 it fp32  \d+\.\d\d it/s  peak \d+MB", text)
    assert re.search(r"ddp_step: ok  backend gloo  world 1  loss \d+\.\d{4}", text)
    ok, lines = gpu_check.check_stage("maskprop", "inference", device="cpu", iters=1,
                                      extra=TINY["maskprop"], video_frames=3, ddp=False)
    assert ok and re.search(r"inference 3 frames  \d+\.\d\d FPS", lines[0]), lines
