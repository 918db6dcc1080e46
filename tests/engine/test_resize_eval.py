"""``dataset.resize_short`` and the evaluation agree (issue #22): the method sees resized frames,
predictions come at the original size, and the ground truth is scored at its original size, so
``tools/test.py`` gives exactly what ``tools/eval.py`` gives on the written predictions against
the full-size ground truth."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from vosbench.config import compose
from vosbench.engine.inference import evaluate
from vosbench.metrics.runner import evaluate_vos_folder

KEYS = ("J_mean", "F_mean", "J&F")


def _check(result: dict, rep: dict) -> None:
    for k in KEYS:
        assert result[k] == pytest.approx(rep["global"][k], abs=1e-12), k


def test_resize_short_scores_against_full_size_gt_synthetic(tmp_path):
    out = tmp_path / "test"
    cfg = compose(["method=first_frame_copy", "dataset=synthetic", f"dataset.root={tmp_path / 'd'}",
                   "dataset.split=val", "dataset.num_videos=2", "dataset.num_frames=5",
                   "dataset.height=32", "dataset.width=48", "dataset.resize_short=16",
                   f"output_dir={out}", "device=cpu"])
    result = evaluate(cfg)
    pred = sorted((out / "predictions").rglob("*.png"))[0]
    assert Image.open(pred).size == (48, 32)  # original size
    from vosbench.data import build_dataset

    ds = build_dataset(cfg.dataset)
    rep = evaluate_vos_folder("davis2017", ds.root, out / "predictions", None, split="val",
                              progress=False, ignore_extra_labels=True)
    _check(result, rep)


@pytest.mark.slow
def test_flow_propagation_resize_short_120_on_real_davis2016(davis_mini, tmp_path):
    """``tools/test.py method=flow_propagation dataset=davis2016 dataset.resize_short=120``."""
    out = tmp_path / "test"
    cfg = compose(["method=flow_propagation", "dataset=davis2016", f"dataset.root={davis_mini}",
                   "dataset.resize_short=120", "max_videos=1", f"output_dir={out}", "device=cpu"])
    result = evaluate(cfg)
    seq = sorted(p.name for p in (out / "predictions").iterdir())
    assert len(seq) == 1
    p = np.asarray(Image.open(sorted((out / "predictions" / seq[0]).glob("*.png"))[3]))
    assert p.shape == (480, 854)
    rep = evaluate_vos_folder("davis2016", davis_mini, out / "predictions", None, progress=False,
                              sequences=seq)
    _check(result, rep)
    assert 0.2 < result["J_mean"] < 1.0


@pytest.mark.parametrize("method, extra", [
    ("maskrnn_tiny", ["method.finetune_iters=2"]),
    ("lip_tiny", ["method.finetune_iters=2", "method.online_id_iters=2"]),
])
def test_trained_vos_methods_predict_at_the_original_size_under_resize_short(method, extra, tmp_path):
    """The trainable VOS methods get resized frames *and* resized reference masks under
    ``dataset.resize_short``; their predictions (reference frames included) come at the original
    size and score exactly as ``eval`` scores the written files (MaskRNN used to index its
    original-size output with the resized reference mask)."""
    out = tmp_path / "test"
    cfg = compose([f"method={method}", "dataset=synthetic", f"dataset.root={tmp_path / 'd'}",
                   "dataset.split=val", "dataset.num_videos=2", "dataset.num_frames=4",
                   "dataset.height=32", "dataset.width=48", "dataset.resize_short=16",
                   "allow_random_init=true", f"output_dir={out}", "device=cpu", *extra])
    result = evaluate(cfg)
    preds = sorted((out / "predictions").rglob("*.png"))
    assert len(preds) == 8 and all(Image.open(p).size == (48, 32) for p in preds)
    from vosbench.data import build_dataset

    ds = build_dataset(cfg.dataset)
    rep = evaluate_vos_folder("davis2017", ds.root, out / "predictions", None, split="val",
                              progress=False, ignore_extra_labels=True)
    _check(result, rep)
