"""README walkthrough points of #20: resume takes the run's config, a failed start keeps
config.yaml, every tool lists what it wrote, visualize writes browser-playable H.264 with labels."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "tools"))
from tools_testing import data_overrides, run_tool  # noqa: E402  (registers _tiny_test_method)

TINY = ["method=_tiny_test_method", "device=cpu"]


def test_resume_uses_the_run_config_and_a_failed_start_keeps_it(tmp_path):
    data, out = tmp_path / "data", tmp_path / "run"
    base = [*TINY, *data_overrides(data), f"output_dir={out}"]
    first = run_tool("train", *base, "trainer=debug")
    assert f"wrote {out}/: model_final.pth, last.pth, config.yaml, metrics.jsonl" in first.stdout
    saved = (out / "config.yaml").read_text()
    # A start that fails (the default trainer's batch of 8 on this 8-clip set is fine, so ask for
    # more) must not replace the config that matches the checkpoints.
    bad = run_tool("train", f"output_dir={out}", "resume=true", "trainer.batch_size=64",
                   *data_overrides(data), check=False)
    assert bad.returncode == 2 and "fewer than one batch of 64" in bad.stderr
    assert (out / "config.yaml").read_text() == saved
    # Resume with no trainer=debug on the command line: the run's trainer (debug) is used, the
    # command line's override (max_iter) wins. Before #20 this composed the default trainer.
    again = run_tool("train", f"output_dir={out}", "resume=true", "trainer.max_iter=8",
                     *data_overrides(data))
    assert f"resume: config from {out / 'config.yaml'}" in again.stdout
    assert "done: 8 iterations" in again.stdout
    log = again.stdout + again.stderr  # Hydra's job logging goes to stdout
    assert "Resumed from" in log and "at iteration 6" in log
    assert "batch_size: 2" in (out / "config.yaml").read_text()  # trainer=debug's


def test_test_tool_prints_its_files_and_the_ground_truth(tmp_path):
    data, out = tmp_path / "data", tmp_path / "t"
    r = run_tool("test", "method=first_frame_copy", "device=cpu", *data_overrides(data),
                 f"output_dir={out}")
    assert f"{out / 'metrics.json'}" in r.stdout and f"{out / 'predictions'}" in r.stdout
    gt_line = next(ln for ln in r.stdout.splitlines() if ln.startswith("ground truth: "))
    gt = Path(gt_line.split()[2])
    assert gt.parent == data and (gt / "Annotations" / "480p").is_dir()  # the eval tool's --gt
    ev = subprocess.run([sys.executable, str(REPO / "tools" / "eval.py"), "--task", "davis2017",
                         "--gt", str(gt), "--results", str(out / "predictions"), "--out",
                         str(tmp_path / "e"), "--quiet", "--workers", "1"],
                        capture_output=True, text=True, timeout=300)
    assert ev.returncode == 0, ev.stderr[-2000:]
    wrote = next(ln for ln in ev.stdout.splitlines() if ln.startswith("wrote "))
    for name in ("global_results-val.csv", "per-sequence_results-val.csv", "results.json"):
        assert str(tmp_path / "e" / name) in wrote, wrote


def _codec(path: Path) -> str:
    import imageio_ffmpeg

    r = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(path)],
                       capture_output=True, text=True)
    return next((ln for ln in r.stderr.splitlines() if "Video:" in ln), "")


def test_visualize_writes_h264_and_labels_vis_instances(tmp_path):
    from engine_testing import GTCopyVIS, make_video
    from vosbench.engine import YTVISWriter, inference_on_dataset
    from vosbench.engine.visualize import load_ytvis_results, overlay, visualize_video, ytvis_source

    v = make_video("3", num_frames=4, h=31, w=47, seed=2, task="vis")  # odd sizes: padded, not resized
    v.categories = {c: f"shape{c}" for c in range(1, 10)}
    inference_on_dataset(GTCopyVIS(), [v], writer=YTVISWriter(tmp_path / "pred"), progress=False)
    src = ytvis_source(load_ytvis_results(tmp_path / "pred" / "results.json"), v, 3, score_threshold=0.5)
    assert len(src.labels) == 1
    text = next(iter(src.labels.values()))
    assert text.startswith("#1 shape") and text.endswith("0.90")  # id, category name, score
    files = visualize_video(v, [("pred", src)], tmp_path / "vis", fmt="mp4")
    info = _codec(Path(files["video"]))
    assert "h264" in info and "yuv420p" in info and "48x32" in info, info
    # the label is drawn: the labelled overlay differs from the unlabelled one near the object
    index = src(0)
    rgb = np.zeros((31, 47, 3), np.uint8)
    assert (overlay(rgb, index, labels=src.labels) != overlay(rgb, index)).any()
