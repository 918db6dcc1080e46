"""VOS evaluators against values computed with the official toolkits on a stored fixture
(``tests/fixtures/metrics``), plus the streaming evaluators, tools/eval.py and bad input."""
from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vosbench.metrics import EvaluationError, build_evaluator
from vosbench.metrics.runner import evaluate_vos_folder
from vosbench.metrics.vos import eval_semisupervised_sequence
from vosbench.structures import Frame, ObjectMasks, VideoSample
from vosbench.structures.prediction import FramePrediction, VideoPrediction
from vosbench.utils.io import write_index_png

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "metrics"
DAVIS = FIX / "davis_small"
OFFICIAL = json.loads((FIX / "official_values.json").read_text())
TOL = 1e-6


def _close(a, b):
    if a is None or b is None or (isinstance(a, float) and math.isnan(a)):
        return (a is None or math.isnan(a)) and (b is None or math.isnan(b))
    return abs(a - b) <= TOL


def _check_rows(ours, official, keys):
    off = {r["Sequence"]: r for r in official}
    assert [r["Sequence"] for r in ours] == [r["Sequence"] for r in official]
    for r in ours:
        for k in keys:
            assert _close(r[k], off[r["Sequence"]][k]), (r["Sequence"], k, r[k], off[r["Sequence"]][k])


KEYS = ["J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay"]
GKEYS = ["J&F", "J_mean", "J_recall", "J_decay", "F_mean", "F_recall", "F_decay"]


def test_davis2017_folder_matches_official(tmp_path):
    rep = evaluate_vos_folder("davis2017", DAVIS / "gt", DAVIS / "results", tmp_path,
                              progress=False)
    _check_rows(rep["per_object"], OFFICIAL["davis2017"]["rows"], KEYS)
    for k in GKEYS:
        assert _close(rep["global"][k], OFFICIAL["davis2017"]["global"][k]), k
    # official file names and columns
    with open(tmp_path / "global_results-val.csv") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay"]
    assert float(rows[1][0]) == pytest.approx(OFFICIAL["davis2017"]["global"]["J&F"], abs=5e-4)
    with open(tmp_path / "per-sequence_results-val.csv") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["Sequence", "J-Mean", "F-Mean"]
    assert rows[1][0] == "seq000_1"
    res = json.loads((tmp_path / "results.json").read_text())
    assert len(res["per_frame"]["seq000_1"]["J"]) == 6  # 8 frames minus first and last


def test_davis2017_unsupervised_matches_official(tmp_path):
    rep = evaluate_vos_folder("davis2017_unsupervised", DAVIS / "gt", DAVIS / "results_unsup",
                              tmp_path, progress=False)
    _check_rows(rep["per_object"], OFFICIAL["davis2017_unsupervised"]["rows"], KEYS)
    for k in GKEYS:
        assert _close(rep["global"][k], OFFICIAL["davis2017_unsupervised"]["global"][k]), k


def test_davis2016_matches_official_jf_and_t(tmp_path):
    rep = evaluate_vos_folder("davis2016", DAVIS / "gt", DAVIS / "results", tmp_path,
                              progress=False)
    off = {r["Sequence"]: r for r in OFFICIAL["davis2016_jf"]}
    for r in rep["per_object"]:
        assert _close(r["J-Mean"], off[r["Sequence"]]["J-Mean"])
        assert _close(r["F-Mean"], off[r["Sequence"]]["F-Mean"])
        tvals = [v for v in OFFICIAL["t_official"][r["Sequence"]] if v is not None]
        assert _close(r["T-Mean"], float(np.mean(tvals)))
    with open(tmp_path / "global_results-val.csv") as f:
        assert next(csv.reader(f))[-1] == "T-Mean"


def _sample_and_prediction(seq: str, results: Path):
    """A VideoSample from the fixture GT PNGs and a VideoPrediction from the result PNGs."""
    gt_dir = DAVIS / "gt" / "Annotations" / "480p" / seq
    names = sorted(p.stem for p in gt_dir.glob("*.png"))
    gts = [np.asarray(Image.open(gt_dir / f"{n}.png")) for n in names]
    H, W = gts[0].shape
    frames, reference = [], {}
    seen: list[int] = []
    for t, g in enumerate(gts):
        ids = [int(i) for i in np.unique(g) if i not in (0, 255)]
        m = torch.from_numpy(np.stack([g == i for i in ids]) if ids else np.zeros((0, H, W), bool))
        frames.append(Frame(image=torch.zeros(3, H, W), index=t, name=names[t], masks=m,
                            obj_ids=torch.tensor(ids, dtype=torch.int64),
                            labels=torch.full((len(ids),), -1)))
        new = [i for i in ids if i not in seen]
        if new:
            reference[t] = ObjectMasks(torch.tensor(new), m[[ids.index(i) for i in new]])
            seen += new
    sample = VideoSample(seq, frames, "vos", (H, W), reference, names)
    obj_ids = sample.obj_ids

    def gen():
        for t, n in enumerate(names):
            p = np.asarray(Image.open(results / seq / f"{n}.png"))
            yield FramePrediction(t, torch.from_numpy(np.stack([p == int(i) for i in obj_ids])))

    pred = VideoPrediction(seq, obj_ids, torch.ones(len(obj_ids)), torch.full((len(obj_ids),), -1),
                           gen(), (H, W), len(names))
    return sample, pred


def test_streaming_evaluator_equals_folder(tmp_path):
    ev = build_evaluator("davis2017")
    for seq in ("seq000", "seq001", "seq002"):
        ev.process(*_sample_and_prediction(seq, DAVIS / "results"))
    out = ev.evaluate()
    for k in GKEYS:
        assert _close(out[k], OFFICIAL["davis2017"]["global"][k]), k
    _check_rows(ev.per_sequence(), OFFICIAL["davis2017"]["rows"], KEYS)
    series = ev.per_frame()["seq000_1"]
    assert len(series["J"]) == len(series["frames"]) == 6
    ev16 = build_evaluator("davis2016")
    for seq in ("seq000", "seq001", "seq002"):
        ev16.process(*_sample_and_prediction(seq, DAVIS / "results"))
    off = {r["Sequence"]: r for r in OFFICIAL["davis2016_jf"]}
    for r in ev16.per_sequence():
        assert _close(r["J-Mean"], off[r["Sequence"]]["J-Mean"])
    assert "T_mean" in ev16.evaluate()
    evu = build_evaluator("davis2017_unsupervised")
    evs = build_evaluator("segtrackv2", with_t=True)
    for seq in ("seq000", "seq001"):
        evu.process(*_sample_and_prediction(seq, DAVIS / "results"))
        evs.process(*_sample_and_prediction(seq, DAVIS / "results"))
    assert 0 <= evu.evaluate()["J&F"] <= 1
    seg = evs.evaluate()
    assert 0 <= seg["J&F"] <= 1 and "T_mean" in seg


def test_per_object_t_extension():
    ev = build_evaluator("davis2017", with_t=True)
    ev.process(*_sample_and_prediction("seq001", DAVIS / "results"))
    rows = ev.per_sequence()
    assert all("T-Mean" in r for r in rows)
    assert len(ev.per_frame()["seq001_1"]["T"]) == 5  # consecutive pairs of 6 frames


def test_object_absent_in_first_frame_and_late_ids():
    H, W = 20, 30
    g0 = np.zeros((H, W), np.uint8)
    g0[2:5, 2:5] = 2  # max label 2: object 1 is absent but counts
    g1 = g0.copy()
    g1[10:12, 10:12] = 3  # id 3 appears later: ignored
    frames = [(f"{t:05d}", g, np.where(g == 3, 0, g).astype(np.uint8))
              for t, g in enumerate([g0, g1, g1, g0])]
    res = eval_semisupervised_sequence("s", frames)
    assert res.obj_ids == [1, 2]
    assert (res.J[0] == 1).all() and (res.F[0] == 1).all()  # empty vs empty
    bad = [(f"{t:05d}", g, np.full_like(g, 3)) for t, g in enumerate([g0, g1, g1, g0])]
    with pytest.raises(EvaluationError, match="label 3 is above the number of objects"):
        eval_semisupervised_sequence("s", bad, where="res/s")
    lenient = eval_semisupervised_sequence("s", bad, check_labels=False)
    assert lenient.extra_label_frames == ["00001", "00002"]
    assert (lenient.J[1] == 0).all()


def test_streaming_late_object_warns_not_fails():
    sample, pred = _sample_and_prediction("seq000", DAVIS / "results")
    # a late object (id above the frame-0 count) predicted everywhere
    H, W = sample.orig_size
    frames = list(pred.frames)
    extra = torch.zeros(H, W, dtype=torch.bool)
    extra[:3, :3] = True
    new = [FramePrediction(f.index, torch.cat([f.masks, extra[None]])) for f in frames]
    ids = torch.cat([pred.obj_ids, torch.tensor([9])])
    p2 = VideoPrediction(pred.video_id, ids, torch.ones(len(ids)), torch.full((len(ids),), -1),
                         new, pred.orig_size, pred.num_frames)
    ev = build_evaluator("davis2017")
    with pytest.warns(UserWarning, match="above the first-frame object count"):
        ev.process(sample, p2)
    strict = build_evaluator("davis2017", extra_labels="error")
    with pytest.raises(EvaluationError):
        strict.process(sample, VideoPrediction(pred.video_id, ids, torch.ones(len(ids)),
                                               torch.full((len(ids),), -1), new, pred.orig_size,
                                               pred.num_frames))


# ----------------------------------------------------------------------------- bad input
@pytest.fixture()
def results_copy(tmp_path):
    dst = tmp_path / "res"
    shutil.copytree(DAVIS / "results", dst)
    return dst


def test_missing_frame_and_allow_missing(tmp_path, results_copy):
    (results_copy / "seq001" / "00003.png").unlink()
    with pytest.raises(EvaluationError, match="seq001/00003.png: missing result frame"):
        evaluate_vos_folder("davis2017", DAVIS / "gt", results_copy, tmp_path / "o",
                            progress=False, use_cache=False)
    shutil.rmtree(results_copy / "seq002")
    with pytest.raises(EvaluationError, match="seq002"):
        evaluate_vos_folder("davis2017", DAVIS / "gt", results_copy, tmp_path / "o",
                            progress=False, use_cache=False, sequences=["seq002"])
    rep = evaluate_vos_folder("davis2017", DAVIS / "gt", results_copy, tmp_path / "o",
                              progress=False, use_cache=False, allow_missing=True)
    assert rep["missing_frames"] == 1 + 6


def test_not_indexed_wrong_size_and_label(tmp_path, results_copy):
    p = results_copy / "seq000" / "00002.png"
    a = np.asarray(Image.open(p))
    Image.fromarray(np.stack([a] * 3, -1)).save(p)  # RGB
    with pytest.raises(EvaluationError, match="00002.png: not an indexed"):
        evaluate_vos_folder("davis2017", DAVIS / "gt", results_copy, tmp_path / "o",
                            progress=False, use_cache=False, sequences=["seq000"])
    write_index_png(p, np.zeros((10, 10), np.uint8))
    with pytest.raises(EvaluationError, match="00002.png: size 10x10"):
        evaluate_vos_folder("davis2017", DAVIS / "gt", results_copy, tmp_path / "o",
                            progress=False, use_cache=False, sequences=["seq000"])
    write_index_png(p, np.full(a.shape, 9, np.uint8))
    with pytest.raises(EvaluationError, match="label 9 is above"):
        evaluate_vos_folder("davis2017", DAVIS / "gt", results_copy, tmp_path / "o",
                            progress=False, use_cache=False, sequences=["seq000"])


def test_cache_resumes_and_invalidates(tmp_path, results_copy):
    out = tmp_path / "o"
    a = evaluate_vos_folder("davis2017", DAVIS / "gt", results_copy, out, progress=False)
    assert a["cached_sequences"] == 0
    b = evaluate_vos_folder("davis2017", DAVIS / "gt", results_copy, out, progress=False)
    assert b["cached_sequences"] == 3 and b["global"] == a["global"]
    write_index_png(results_copy / "seq000" / "00003.png",
                    np.zeros(np.asarray(Image.open(results_copy / "seq000" / "00003.png")).shape,
                             np.uint8))
    c = evaluate_vos_folder("davis2017", DAVIS / "gt", results_copy, out, progress=False)
    assert c["cached_sequences"] == 2 and c["global"]["J_mean"] < a["global"]["J_mean"]


def test_tools_eval_cli(tmp_path):
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        "vosbench_tools_eval", Path(__file__).resolve().parents[2] / "tools" / "eval.py")
    eval_tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(eval_tool)

    rc = eval_tool.main(["--task", "davis2017", "--gt", str(DAVIS / "gt"), "--results",
                         str(DAVIS / "results"), "--out", str(tmp_path), "--quiet",
                         "--workers", "2"])
    assert rc == 0
    g = json.loads((tmp_path / "results.json").read_text())["global"]
    assert _close(g["J&F"], OFFICIAL["davis2017"]["global"]["J&F"])
    rc = eval_tool.main(["--task", "davis2017", "--gt", str(DAVIS / "gt"), "--results",
                         str(tmp_path / "nope"), "--out", str(tmp_path / "x"), "--quiet"])
    assert rc == 2
