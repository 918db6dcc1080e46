"""The wrong-result-with-exit-0 cases of issue #19 (each failed before the fix).

1. a changed ground-truth frame must be re-evaluated (the cache key covers GT content);
2. a phantom object id in a DAVIS-2017 first frame is reported, not scored;
3. a DAVIS-2016 split line pairing one sequence's image with another's annotation is reported;
4. ground truth the loaders reject is rejected by the evaluator too (grey DAVIS-2017 PNG,
   YouTube-VIS RLE with garbage counts).
(5., exact resume of every trainable method, is tests/engine/test_resume_exact.py.)

Only APIs that already existed are used, so the tests also run against the old code.
"""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
from PIL import Image

import fixtures as fx
from vosbench.data.datasets import DAVIS2016, DAVIS2017, YTVIS2019
from vosbench.metrics.runner import evaluate_vos_folder, evaluate_ytvis_folder
from vosbench.metrics.vis import YTVISFormatError
from vosbench.metrics.vos import EvaluationError
from vosbench.utils.io import DataError

BAD = (DataError, EvaluationError, YTVISFormatError)


def test_1_changed_ground_truth_is_recomputed(data, tmp_path):
    gt, res = data("davis2017")
    out = tmp_path / "out"
    a = evaluate_vos_folder("davis2017", gt, res, out, progress=False)
    b = evaluate_vos_folder("davis2017", gt, res, out, progress=False)
    assert b["cached_sequences"] == 2 and b["global"] == a["global"]
    # copy the first annotation over frames 1..4 of s0, keeping each file's size-independent
    # time stamps (the content alone changes)
    ann = gt / "Annotations" / "480p" / "s0"
    first = (ann / "00000.png").read_bytes()
    for t in range(1, 5):
        p = ann / f"{t:05d}.png"
        st = p.stat()
        p.write_bytes(first)
        os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
    c = evaluate_vos_folder("davis2017", gt, res, out, progress=False)
    fresh = evaluate_vos_folder("davis2017", gt, res, tmp_path / "fresh", progress=False)
    assert c["cached_sequences"] == 1  # s1 unchanged, s0 recomputed
    assert c["global"] == fresh["global"] != a["global"]


def test_2_phantom_object_in_the_first_frame_is_reported_not_scored(data, tmp_path):
    gt, res = data("davis2017")
    p = gt / "Annotations" / "480p" / "s0" / "00000.png"
    lab = np.array(Image.open(p))
    lab[14:24, 20:30] = 7  # a 10x10 box of label 7 in a 2-object sequence, palette kept
    fx.write_palette(p, lab)
    problems = DAVIS2017.check_root(root=gt, split="val")
    assert any("00000.png" in q and "3-6" in q for q in problems), problems
    with pytest.raises(BAD, match="s0/00000.png"):
        evaluate_vos_folder("davis2017", gt, res, tmp_path / "o", progress=False)
    with pytest.raises(DataError, match="s0/00000.png"):
        DAVIS2017(root=gt, split="val")[0]


def test_3_split_line_pairing_another_sequence_is_reported(data, tmp_path):
    gt, res = data("davis2016")
    lst = gt / "ImageSets" / "480p" / "val.txt"
    lines = lst.read_text().splitlines()
    lines[2] = lines[2].replace("/Annotations/480p/s0/", "/Annotations/480p/s1/")
    lst.write_text("\n".join(lines) + "\n")
    problems = DAVIS2016.check_root(root=gt, split="val")
    assert any("val.txt:3" in q and "another sequence" in q for q in problems), problems
    with pytest.raises(BAD, match="val.txt:3"):
        DAVIS2016(root=gt, split="val")
    with pytest.raises(BAD, match="val.txt:3"):
        evaluate_vos_folder("davis2016", gt, res, tmp_path / "o", progress=False)


def test_4a_grey_davis2017_annotation_is_rejected_by_the_evaluator(data, tmp_path):
    gt, res = data("davis2017")
    p = gt / "Annotations" / "480p" / "s1" / "00003.png"
    Image.open(p).convert("L").save(p)  # the loaders reject it: mode L
    with pytest.raises(DataError, match="00003.png"):
        DAVIS2017(root=gt, split="val")[1].frames[3]
    with pytest.raises(BAD, match="s1/00003.png.*mode L"):
        evaluate_vos_folder("davis2017", gt, res, tmp_path / "o", progress=False)


def test_4b_garbage_rle_counts_in_ytvis_ground_truth_are_rejected(data, tmp_path):
    gt, res = data("ytvis")
    d = json.loads((gt / "train.json").read_text())
    seg = d["annotations"][1]["segmentations"][2]
    seg["counts"] = "garbage" * 3  # a string pycocotools decodes into nonsense without an error
    (gt / "train.json").write_text(json.dumps(d))
    with pytest.raises(BAD, match=r"train.json: annotation 11 frame 2: .*RLE"):
        evaluate_ytvis_folder(gt / "train.json", res, tmp_path / "o")
    with pytest.raises(DataError, match="train.json"):
        YTVIS2019(root=gt, split="train")[0].frames[2]
