"""The evaluators on samples from the real loaders (``vosbench.data``, synthetic folders in the
official layouts): streaming evaluation == offline evaluation of the same predictions written
in the official formats."""
from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch

from vosbench.metrics import build_evaluator, evaluate_ytvis_json
from vosbench.metrics.runner import evaluate_vos_folder
from vosbench.metrics.vis import SUMMARY_KEYS
from vosbench.structures.masks import masks_to_index, rle_encode
from vosbench.structures.prediction import FramePrediction, VideoPrediction
from vosbench.utils.io import write_index_png

data = pytest.importorskip("vosbench.data")


def _shifted(m: torch.Tensor, k: int) -> torch.Tensor:
    return torch.roll(m, shifts=(k % 3, -(k % 2)), dims=(-2, -1))


def test_davis2017_loader_stream_equals_folder(tmp_path):
    from vosbench.data.synthetic import generate
    root = generate(tmp_path / "davis", fmt="davis2017", split="val", num_videos=3, num_frames=6,
                    height=48, width=64, max_objects=3, seed=2)
    ds = data.build_dataset({"name": "davis2017", "root": str(root), "split": "val"})
    assert ds.metric == "davis2017"
    ev = build_evaluator(ds.metric)
    res_dir = tmp_path / "results"
    for sample in ds:
        ids = sample.obj_ids
        frames = []
        for t, fr in enumerate(sample.frames):
            H, W = sample.orig_size
            m = torch.zeros(len(ids), H, W, dtype=torch.bool)
            if fr.masks is not None:
                for r, i in enumerate(fr.obj_ids.tolist()):
                    m[ids.tolist().index(i)] = _shifted(fr.masks[r], t)
            frames.append(FramePrediction(t, m))
            write_index_png(res_dir / sample.video_id / f"{sample.frame_names[t]}.png",
                            masks_to_index(m, ids).numpy())
        pred = VideoPrediction(sample.video_id, ids, torch.ones(len(ids)),
                               torch.full((len(ids),), -1), frames, sample.orig_size, len(frames))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # late objects are ignored with a warning
            ev.process(sample, pred)
    stream = ev.evaluate()
    folder = evaluate_vos_folder("davis2017", root, res_dir, tmp_path / "out", progress=False,
                                 ignore_extra_labels=True)["global"]
    for k in ("J&F", "J_mean", "J_recall", "J_decay", "F_mean", "F_recall", "F_decay"):
        assert stream[k] == pytest.approx(folder[k], abs=1e-12), k
    assert 0 < stream["J&F"] < 1


def test_ytvis_loader_stream_equals_json(tmp_path):
    from vosbench.data.synthetic import generate
    root = generate(tmp_path / "yt", fmt="ytvis", split="val", num_videos=4, num_frames=5,
                    height=48, width=64, max_objects=3, seed=3)
    ds = data.build_dataset({"name": "ytvis2019", "root": str(root), "split": "val"})
    assert ds.metric == "ytvis"
    ev = build_evaluator("ytvis")
    results = []
    for n, sample in enumerate(ds):
        # detections: every GT instance, shifted, with its category, plus one wrong-category copy
        inst: dict[int, list] = {}
        cats: dict[int, int] = {}
        T = len(sample)
        H, W = sample.orig_size
        for t, fr in enumerate(sample.frames):
            if fr.masks is None:
                continue
            for r, (i, c) in enumerate(zip(fr.obj_ids.tolist(), fr.labels.tolist())):
                inst.setdefault(i, [torch.zeros(H, W, dtype=torch.bool)] * T)
                inst[i] = inst[i][:t] + [_shifted(fr.masks[r], t + i)] + inst[i][t + 1:]
                cats[i] = c
        ids = sorted(inst)
        labels = [cats[i] for i in ids] + [cats[i] % 3 + 1 for i in ids[:1]]
        tracks = [inst[i] for i in ids] + [inst[i] for i in ids[:1]]
        scores = [0.9 - 0.1 * k for k in range(len(tracks))]
        frames = [FramePrediction(t, torch.stack([tr[t] for tr in tracks]) if tracks else
                                  torch.zeros(0, H, W, dtype=torch.bool)) for t in range(T)]
        pred = VideoPrediction(sample.video_id, torch.arange(1, len(tracks) + 1),
                               torch.tensor(scores, dtype=torch.float64),
                               torch.tensor(labels, dtype=torch.int64), frames, (H, W), T)
        ev.process(sample, pred)
        for tr, c, s in zip(tracks, labels, scores):
            segs = [r if tr[t].any() else None
                    for t, r in enumerate(rle_encode(torch.stack(tr)))]
            results.append({"video_id": sample.meta["ytvis_id"], "category_id": c, "score": s,
                            "segmentations": segs})
    (tmp_path / "results.json").write_text(json.dumps(results))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stream = ev.evaluate()
        offline = evaluate_ytvis_json(root / "val.json", tmp_path / "results.json")
    for k in SUMMARY_KEYS:
        assert stream[k] == pytest.approx(offline[k], abs=1e-12), k
    assert stream["AP"] > 0
