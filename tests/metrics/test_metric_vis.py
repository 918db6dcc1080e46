"""YouTube-VIS AP/AR: hand-computable cases, the stored ytvoseval values of the fixture, the
streaming evaluator against the JSON path, and bad input."""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils

from vosbench.metrics import build_evaluator, evaluate_ytvis_json
from vosbench.metrics.vis import SUMMARY_KEYS, YTVISFormatError
from vosbench.structures import Frame, VideoSample
from vosbench.structures.prediction import FramePrediction, VideoPrediction

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "metrics"
YT = FIX / "ytvis_small"
OFFICIAL = json.loads((FIX / "official_values.json").read_text())["ytvis"]


def _enc(m):
    r = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
    return {"size": list(m.shape), "counts": r["counts"].decode("ascii")}


def _write(tmp_path, gt, res):
    g, r = tmp_path / "gt.json", tmp_path / "res.json"
    g.write_text(json.dumps(gt))
    r.write_text(json.dumps(res))
    return g, r


def _one_video(H=40, W=50, T=3, areas=None):
    m = np.zeros((H, W), bool)
    m[5:25, 10:30] = True
    gt = {"videos": [{"id": 1, "height": H, "width": W, "length": T}],
          "categories": [{"id": 1, "name": "a"}],
          "annotations": [{"id": 1, "video_id": 1, "category_id": 1, "iscrowd": 0,
                           "segmentations": [_enc(m)] * T,
                           "areas": areas or [int(m.sum())] * T}]}
    return gt, m


def test_perfect_and_partial_detection(tmp_path):
    gt, m = _one_video()
    res = [{"video_id": 1, "category_id": 1, "score": 0.9, "segmentations": [_enc(m)] * 3}]
    s = evaluate_ytvis_json(*_write(tmp_path, gt, res))
    assert s["AP"] == pytest.approx(1.0) and s["AR100"] == pytest.approx(1.0)
    assert s["AP_medium"] == -1.0  # no GT in that range: -1, as the official summarize
    # IoU 0.6 over the video: AP50 = 1, AP75 = 0, AP = 3/10 thresholds (.5, .55, .6)
    p = np.zeros_like(m)
    p[5:25, 10:22] = True  # 240 / 400 = 0.6
    res = [{"video_id": 1, "category_id": 1, "score": 0.9, "segmentations": [_enc(p)] * 3}]
    s = evaluate_ytvis_json(*_write(tmp_path, gt, res))
    assert s["AP50"] == pytest.approx(1.0) and s["AP75"] == 0.0
    assert s["AP"] == pytest.approx(0.3)


def test_absent_frames_zip_truncation_and_score_ties(tmp_path):
    gt, m = _one_video(T=3)
    half = np.zeros_like(m)
    half[5:25, 10:20] = True
    # frame 0 absent in the detection: the GT area still counts in the union
    res = [{"video_id": 1, "category_id": 1, "score": 0.5, "segmentations": [None, _enc(m), _enc(m)]},
           {"video_id": 1, "category_id": 1, "score": 0.5, "segmentations": [_enc(m)] * 3}]
    s, per_cat, extra = evaluate_ytvis_json(*_write(tmp_path, gt, res), return_details=True)
    # stable sort keeps results order on the tie: the first (IoU 2/3) matches at t <= 0.65
    assert s["AR1"] == pytest.approx(4 / 10)
    assert s["AR10"] == pytest.approx(1.0)


def test_area_range_inclusive_and_json_areas(tmp_path):
    # json areas (not the mask) decide the range; 128^2 counts as small AND medium
    gt, m = _one_video(areas=[128 * 128, None, 128 * 128])
    res = [{"video_id": 1, "category_id": 1, "score": 0.9, "segmentations": [_enc(m)] * 3}]
    s = evaluate_ytvis_json(*_write(tmp_path, gt, res))
    assert s["AP_small"] == pytest.approx(1.0) and s["AP_medium"] == pytest.approx(1.0)
    assert s["AP_large"] == -1.0


def test_fixture_matches_ytvoseval():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s, per_cat, _ = evaluate_ytvis_json(YT / "gt.json", YT / "results.json",
                                            return_details=True)
    for k in SUMMARY_KEYS:
        assert s[k] == pytest.approx(OFFICIAL["stats"][k], abs=1e-6), k
    for c, v in OFFICIAL["per_category"].items():
        assert per_cat[int(c)] == pytest.approx(v, abs=1e-6)


def _samples_from_json(gt_path, res_path):
    """VideoSample / VideoPrediction pairs built from the fixture jsons (decoded masks)."""
    gt = json.loads(Path(gt_path).read_text())
    res = json.loads(Path(res_path).read_text())
    for v in gt["videos"]:
        H, W, T = v["height"], v["width"], v["length"]
        anns = [a for a in gt["annotations"] if a["video_id"] == v["id"]]
        frames = []
        for t in range(T):
            ids, labels, ms = [], [], []
            for a in anns:
                seg = a["segmentations"][t]
                if seg:
                    ids.append(a["id"])
                    labels.append(a["category_id"])
                    ms.append(mask_utils.decode({"size": seg["size"],
                                                 "counts": seg["counts"].encode()}).astype(bool))
            frames.append(Frame(image=torch.zeros(3, H, W), index=t,
                                masks=torch.from_numpy(np.stack(ms)) if ms else
                                torch.zeros(0, H, W, dtype=torch.bool),
                                obj_ids=torch.tensor(ids, dtype=torch.int64),
                                labels=torch.tensor(labels, dtype=torch.int64)))
        meta = {"ytvis_id": v["id"], "areas": {a["id"]: a["areas"] for a in anns},
                "iscrowd": {a["id"]: a["iscrowd"] for a in anns}}
        sample = VideoSample(str(v["id"]), frames, "vis", (H, W), {}, meta=meta)
        dets = [r for r in res if r["video_id"] == v["id"]]

        def gen(dets=dets, H=H, W=W, T=T):
            for t in range(T):
                ms = [mask_utils.decode({"size": [H, W], "counts": d["segmentations"][t]["counts"].encode()})
                      .astype(bool) if d["segmentations"][t] else np.zeros((H, W), bool) for d in dets]
                yield FramePrediction(t, torch.from_numpy(np.stack(ms)) if ms else
                                      torch.zeros(0, H, W, dtype=torch.bool))

        pred = VideoPrediction(str(v["id"]), torch.arange(1, len(dets) + 1),
                               torch.tensor([d["score"] for d in dets], dtype=torch.float64),
                               torch.tensor([d["category_id"] for d in dets], dtype=torch.int64),
                               gen(), (H, W), T)
        yield sample, pred


def test_streaming_evaluator_equals_json_path():
    ev = build_evaluator("ytvis", categories=[1, 2, 3, 4])
    for sample, pred in _samples_from_json(YT / "gt.json", YT / "results.json"):
        ev.process(sample, pred)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = ev.evaluate()
    for k in SUMMARY_KEYS:
        assert out[k] == pytest.approx(OFFICIAL["stats"][k], abs=1e-6), k
    assert out["mAP"] == out["AP"]
    assert set(ev.per_category()) == {1, 2, 3, 4}


def test_bad_results(tmp_path):
    gt, m = _one_video()
    res = [{"video_id": 7, "category_id": 1, "score": 0.9, "segmentations": [_enc(m)] * 3}]
    g, r = _write(tmp_path, gt, res)
    with pytest.raises(YTVISFormatError, match=r"res.json: results name videos that are not in"):
        evaluate_ytvis_json(g, r)
    small = np.zeros((10, 10), bool)
    res = [{"video_id": 1, "category_id": 1, "score": 0.9, "segmentations": [_enc(small)] * 3}]
    g, r = _write(tmp_path, gt, res)
    with pytest.raises(YTVISFormatError, match=r"entry 0 .*mask size \[10, 10\]"):
        evaluate_ytvis_json(g, r)
    res = [{"video_id": 1, "score": 0.9, "segmentations": []}]
    g, r = _write(tmp_path, gt, res)
    with pytest.raises(YTVISFormatError, match="entry 0 has no 'category_id'"):
        evaluate_ytvis_json(g, r)


def test_tools_eval_ytvis(tmp_path):
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        "vosbench_tools_eval_vis", Path(__file__).resolve().parents[2] / "tools" / "eval.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert tool.main(["--task", "ytvis", "--gt", str(YT / "gt.json"), "--results",
                          str(YT / "results.json"), "--out", str(tmp_path)]) == 0
    rep = json.loads((tmp_path / "results.json").read_text())
    assert set(rep["global"]) == set(SUMMARY_KEYS)
    assert rep["global"]["AP"] == pytest.approx(OFFICIAL["stats"]["AP"], abs=1e-6)
    assert rep["per_category"]["cat1"] == pytest.approx(OFFICIAL["per_category"]["1"], abs=1e-6)
    assert (tmp_path / "global_results-valid.csv").is_file()
