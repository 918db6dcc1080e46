"""Visualisation: overlays, gif/mp4 + contact sheet from GT and DAVIS / YouTube-VIS predictions."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from engine_testing import GTCopyVIS, TinyTestMethod, make_video
from vosbench.engine import DavisWriter, YTVISWriter, inference_on_dataset
from vosbench.engine.visualize import (davis_source, gt_source, load_ytvis_results, overlay,
                                       visualize_video, ytvis_source)
from vosbench.utils.io import DAVIS_PALETTE, DataError


def test_overlay_colours_objects_only():
    rgb = np.zeros((10, 12, 3), dtype=np.uint8)
    index = np.zeros((10, 12), dtype=np.int64)
    index[2:6, 2:6] = 1
    index[7:9, 7:11] = 2
    out = overlay(rgb, index, alpha=1.0)
    assert (out[3, 3] == DAVIS_PALETTE[1]).all() and (out[8, 8] == DAVIS_PALETTE[2]).all()
    assert (out[0, 0] == 0).all()
    assert overlay(rgb, None) is not rgb


def test_davis_predictions_and_gt_side_by_side(tmp_path):
    v = make_video("clip", num_frames=6, h=32, w=48)
    inference_on_dataset(TinyTestMethod(), [v], writer=DavisWriter(tmp_path / "pred"), progress=False)
    files = visualize_video(v, [("gt", gt_source(v)), ("pred", davis_source(tmp_path / "pred", v))],
                            tmp_path / "vis", fmt="gif", sheet_frames=4, sheet_cols=2)
    sheet = np.asarray(Image.open(files["sheet"]).convert("RGB"))
    assert sheet.shape == (2 * 32, 2 * 2 * 48, 3)  # 2x2 tiles, each GT | prediction
    # frame 0 of GT: object 1 at rows 2:8, cols 2:8 is tinted with palette colour 1
    tile = sheet[:32, :48].astype(int)
    raw = (v.frames[0].image.permute(1, 2, 0).numpy() * 255).astype(int)
    assert np.abs(tile[5, 5] - (raw[5, 5] * 0.5 + DAVIS_PALETTE[1] * 0.5)).max() <= 2
    gif = Image.open(files["video"])
    assert gif.n_frames == 6 and gif.size == (96, 32)


def test_mp4_and_ytvis_results(tmp_path):
    v = make_video("3", num_frames=4, h=32, w=48, seed=2, task="vis")
    inference_on_dataset(GTCopyVIS(), [v], writer=YTVISWriter(tmp_path / "pred"), progress=False)
    results = load_ytvis_results(tmp_path / "pred" / "results.json")
    src = ytvis_source(results, v, 3, score_threshold=0.5)
    assert (src(0) > 0).sum() == 16  # only the 0.9-score instance (4x4) passes the threshold
    files = visualize_video(v, [("pred", src)], tmp_path / "vis", fmt="mp4")
    cap = cv2.VideoCapture(files["video"])
    count = 0
    while cap.read()[0]:
        count += 1
    assert count == 4


def test_missing_predictions_are_an_error(tmp_path):
    v = make_video("nothere")
    with pytest.raises(DataError, match="nothere"):
        davis_source(tmp_path, v)
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(DataError, match="JSON list"):
        load_ytvis_results(tmp_path / "bad.json")
