"""Streaming inference: writers, GT hiding, timing fields, evaluator plumbing."""
from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
import torch

from engine_testing import GTCopyVIS, TinyTestMethod, make_video
from vosbench.engine import DavisWriter, YTVISWriter, inference_on_dataset
from vosbench.engine.inference import method_view
from vosbench.structures.masks import rle_decode
from vosbench.utils.io import read_index_png


class CountingEvaluator:
    """Counts frames and checks predictions against GT (the ``Evaluator`` protocol, duck-typed)."""

    def reset(self):
        self.frames, self.videos, self.match = 0, [], []

    def process(self, sample, prediction):
        self.videos.append(sample.video_id)
        for fp, frame in zip(prediction.iter_frames(), sample.frames):
            self.frames += 1
            assert frame.masks is not None  # the evaluator DOES see the ground truth
            self.match.append(float(torch.equal(fp.masks[:1], frame.masks[:1])))

    def evaluate(self):
        return {"frames_seen": float(self.frames), "exact": float(np.mean(self.match))}


def test_davis_writer_round_trip(tmp_path, tiny_model):
    videos = [make_video("a", seed=1), make_video("b", num_frames=3, seed=2)]
    ev = CountingEvaluator()
    res = inference_on_dataset(tiny_model, videos, evaluator=ev, writer=DavisWriter(tmp_path),
                               progress=False)
    assert res["num_videos"] == 2 and res["num_frames"] == 8 and res["frames_seen"] == 8.0
    assert res["fps"] > 0 and res["peak_mem_mb"] > 0 and res["files"]["predictions"] == str(tmp_path)
    assert ev.videos == ["a", "b"]
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == [f"{t:05d}.png" for t in range(5)]
    # the reference frames are copied by the tiny method, so their PNGs hold the GT ids exactly
    a0 = read_index_png(tmp_path / "a" / "00000.png")
    assert np.array_equal(a0 == 1, videos[0].frames[0].masks[0].numpy())
    a2 = read_index_png(tmp_path / "a" / "00002.png")
    assert np.array_equal(a2 == 2, videos[0].frames[2].masks[1].numpy())


def test_max_videos(tmp_path, tiny_model):
    videos = [make_video(str(i), num_frames=2, seed=i) for i in range(3)]
    res = inference_on_dataset(tiny_model, videos, max_videos=2, progress=False)
    assert res["num_videos"] == 2 and res["num_frames"] == 4


def test_method_never_sees_ground_truth():
    seen = {}

    class Peek(TinyTestMethod):
        def predict(self, sample):
            seen["masks"] = [f.masks for f in sample.frames]
            seen["void"] = [f.void for f in sample.frames]
            seen["ref"] = sorted(sample.reference)
            return super().predict(sample)

    inference_on_dataset(Peek(), [make_video()], progress=False)
    assert all(m is None for m in seen["masks"]) and all(v is None for v in seen["void"])
    assert seen["ref"] == [0, 2]
    view = method_view(make_video())
    assert view.frames[1].masks is None and view.frames[1:3][0].masks is None


def test_predict_runs_under_inference_mode_unless_needed():
    modes = []

    class Probe(TinyTestMethod):
        def predict(self, sample):
            modes.append(torch.is_inference_mode_enabled())
            return super().predict(sample)

    class GradProbe(Probe):
        needs_grad_at_test = True

    inference_on_dataset(Probe(), [make_video()], progress=False)
    inference_on_dataset(GradProbe(), [make_video()], progress=False)
    assert modes == [True, False]


def test_model_time_excludes_frame_decoding():
    import time

    class SlowFrames(list):
        def __getitem__(self, i):
            time.sleep(0.05)
            return list.__getitem__(self, i)

        def __iter__(self):
            for i in range(len(self)):
                yield self[i]

    v = make_video(num_frames=4)
    v.frames = SlowFrames(v.frames)
    res = inference_on_dataset(TinyTestMethod(), [v], progress=False)
    assert res["model_time_s"] < 0.1  # 4 x 50 ms of "disk" time are not model time


def test_wrong_frame_count_is_an_error(tiny_model):
    class Short(TinyTestMethod):
        def predict(self, sample):
            p = super().predict(sample)
            p.num_frames += 1
            return p

    with pytest.raises(ValueError, match="expected 6"):
        inference_on_dataset(Short(), [make_video()], progress=False)


def test_ytvis_writer(tmp_path):
    videos = [make_video("10", num_frames=3, seed=9, task="vis"), make_video("11", seed=10, task="vis")]
    w = YTVISWriter(tmp_path)
    res = inference_on_dataset(GTCopyVIS(), videos, writer=w, progress=False)
    results = json.loads((tmp_path / "results.json").read_text())
    assert len(results) == 4
    r = results[1]
    assert r["video_id"] == 10 and r["category_id"] == 2 and r["score"] == pytest.approx(0.4)
    assert len(r["segmentations"]) == 3
    assert rle_decode(r["segmentations"][1], size=(16, 24))[-3:, -5:].all()
    assert not rle_decode(r["segmentations"][0], size=(16, 24)).any()
    with zipfile.ZipFile(res["files"]["submission"]) as zf:
        assert zf.namelist() == ["results.json"]
        assert json.loads(zf.read("results.json")) == results


def test_ytvis_writer_rejects_class_agnostic(tmp_path, tiny_model):
    with pytest.raises(ValueError, match="category"):
        inference_on_dataset(tiny_model, [make_video()], writer=YTVISWriter(tmp_path), progress=False)
