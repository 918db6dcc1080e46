"""End to end on synthetic data on CPU: train a tiny learnable method, checkpoint, resume,
test (official-format output + evaluation + FPS/memory), visualize."""
from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import torch
from PIL import Image

from tools_testing import REPO, SEARCHPATH, compose_cfg, data_overrides, run_tool
from vosbench.engine.defaults import train
from vosbench.utils.io import read_index_png

_spec = importlib.util.spec_from_file_location("vosbench_tools_visualize", REPO / "tools" / "visualize.py")
visualize_tool = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(visualize_tool)


@pytest.mark.slow
def test_train_resume_test_visualize(synth_root, tmp_path):
    data = data_overrides(synth_root)
    run = tmp_path / "run"
    base = ["method=_tiny_test_method", "trainer=debug", "device=cpu", *data, f"output_dir={run}"]

    first = train(compose_cfg(*base, "trainer.max_iter=4"))
    assert first["iteration"] == 4 and (run / "model_final.pth").is_file()
    w4 = torch.load(run / "last.pth", weights_only=True)
    assert w4["iteration"] == 4 and w4["config"]["method"]["name"] == "_tiny_test_method"

    # Resume a longer schedule from last.pth (iterations 4 -> 8)
    second = train(compose_cfg(*base, "trainer.max_iter=8", "resume=true"))
    w8 = torch.load(run / "model_final.pth", weights_only=True)
    assert second["iteration"] == 8 and w8["iteration"] == 8
    assert not torch.equal(w4["model"]["conv2.weight"], w8["model"]["conv2.weight"])

    # Test through the CLI: DAVIS PNGs for every frame, metrics, FPS and memory
    out = tmp_path / "test"
    proc = run_tool("test", "method=_tiny_test_method", "device=cpu", *data, "dataset.split=val",
                    f"checkpoint={run / 'model_final.pth'}", f"output_dir={out}")
    assert "FPS (model time)" in proc.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("J&F", "J_mean", "F_mean", "fps", "peak_mem_mb"):
        assert key in metrics, key
    assert 0.0 <= metrics["J_mean"] <= 1.0 and metrics["fps"] > 0 and metrics["num_videos"] == 4
    videos = sorted(p for p in (out / "predictions").iterdir() if p.is_dir())
    assert len(videos) == 4
    pngs = sorted(videos[0].glob("*.png"))
    assert len(pngs) == 6 and read_index_png(pngs[0]).shape == (32, 48)

    # Visualize predictions next to the ground truth
    vis = tmp_path / "vis"
    rc = visualize_tool.main([*data, "dataset.split=val", SEARCHPATH, "--pred", str(out / "predictions"),
                              "--gt", "--out", str(vis), "--format", "gif", "--max-videos", "1"])
    assert rc == 0
    sheet = next(vis.glob("*_sheet.png"))
    img = np.asarray(Image.open(sheet).convert("RGB"))
    assert img.shape[0] >= 32 and img.shape[1] >= 2 * 48 and img.std() > 0
    assert Image.open(next(vis.glob("*.gif"))).n_frames == 6
