"""Corruption classes x the evaluator (``vosbench eval``), on real-format fixtures.

Each case breaks one thing in the ground truth or the results and states what ``eval`` must do:
``bad`` = exit 2, one line naming the broken file, no traceback, no report written into the
(fresh) ``--out``; ``same`` = the input that changed does not matter: exit 0 and exactly the
numbers of the untouched fixture. Calls are in-process (``main(argv) -> exit status``).
"""
from __future__ import annotations

import json
import os
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import fixtures as fx

ANN17 = "Annotations/480p/s0"
ANN16 = "Annotations/480p/s0"


def _trunc(p: Path, n: int = 60) -> Path:
    p.write_bytes(p.read_bytes()[:n])
    return p


def _zero(p: Path) -> Path:
    p.write_bytes(b"")
    return p


def _resize(p: Path) -> Path:
    img = Image.open(p)
    img.resize((img.width + 3, img.height)).save(p)
    return p


def _as_folder(p: Path) -> Path:
    """'unreadable': a folder where a file must be (chmod does not stop root)."""
    p.unlink()
    p.mkdir()
    return p


def _json_edit(p: Path, fn) -> Path:
    d = json.loads(p.read_text())
    fn(d)
    p.write_text(json.dumps(d))
    return p


def _set_label(p: Path, value: int, mode: str = "P") -> Path:
    lab = np.array(Image.open(p))
    lab[0:3, 0:3] = value
    if mode == "P":
        fx.write_palette(p, lab)
    else:
        Image.fromarray(lab, mode="L").save(p)
    return p


# (name, task, mutate(gt, res) -> the path (or text) the error must name, or None for 'same')
CASES = [
    # ---- missing
    ("missing-gt-annotation", "davis2017", lambda g, r: (g / ANN17 / "00002.png").unlink() or g / ANN17 / "00002.png"),
    ("missing-gt-frame", "davis2016", lambda g, r: (g / "JPEGImages/480p/s1/00001.jpg").unlink() or g / "JPEGImages/480p/s1/00001.jpg"),
    # without a split file the evaluator reads every sequence folder: the same two sequences
    ("missing-split-file", "davis2016", lambda g, r: (g / "ImageSets/480p/val.txt").unlink() and None),
    ("missing-result-frame", "davis2017", lambda g, r: (r / "s1" / "00003.png").unlink() or r / "s1" / "00003.png"),
    ("missing-result-sequence", "davis2016", lambda g, r: shutil.rmtree(r / "s0") or r / "s0"),
    ("missing-results-json", "ytvis", lambda g, r: r.unlink() or r),
    ("missing-gt-mask", "segtrackv2", lambda g, r: (g / "GroundTruth/drift/2/drift_004.bmp").unlink() or g / "GroundTruth/drift/2/drift_004"),
    # ---- extra
    ("extra-gt-annotation", "davis2017", lambda g, r: shutil.copyfile(g / ANN17 / "00000.png", g / ANN17 / "00099.png") and g / ANN17 / "00099.png"),
    ("extra-result-files", "davis2017", lambda g, r: (shutil.copytree(r / "s0", r / "zz_unknown"), shutil.copyfile(r / "s0/00000.png", r / "s0/00042.png"), (r / "s0/notes.txt").write_text("x")) and None),
    ("extra-json-keys", "ytvis", lambda g, r: _json_edit(g / "train.json", lambda d: d.update(info={"x": 1}, licenses=[])) and None),
    ("extra-object-folder", "segtrackv2", lambda g, r: shutil.copytree(g / "GroundTruth/drift/2", g / "GroundTruth/drift/4") and g / "GroundTruth/drift"),
    # ---- truncated / zero-byte
    ("truncated-gt-png", "davis2017", lambda g, r: _trunc(g / ANN17 / "00003.png")),
    ("truncated-gt-jpeg", "davis2016", lambda g, r: _trunc(g / "JPEGImages/480p/s0/00002.jpg", 300)),
    ("truncated-result-png", "davis2016", lambda g, r: _trunc(r / "s1" / "00002.png")),
    ("truncated-gt-json", "ytvis", lambda g, r: _trunc(g / "train.json", 500)),
    ("truncated-results-json", "ytvis", lambda g, r: _trunc(r, 300)),
    ("zero-byte-gt-png", "davis2016", lambda g, r: _zero(g / ANN16 / "00004.png")),
    ("zero-byte-result-png", "davis2017", lambda g, r: _zero(r / "s0" / "00001.png")),
    ("zero-byte-gt-json", "ytvis", lambda g, r: _zero(g / "train.json")),
    ("zero-byte-gt-mask", "segtrackv2", lambda g, r: _zero(g / "GroundTruth/girl/girl_002.png")),
    # ---- wrong size
    ("wrong-size-gt-png", "davis2017", lambda g, r: _resize(g / ANN17 / "00002.png")),
    ("wrong-size-gt-png-2016", "davis2016", lambda g, r: _resize(g / ANN16 / "00002.png")),
    ("wrong-size-result", "davis2017", lambda g, r: _resize(r / "s1" / "00002.png")),
    ("wrong-size-rle", "ytvis", lambda g, r: _json_edit(g / "train.json", lambda d: d["annotations"][0]["segmentations"][1].update(size=[5, 5])) and g / "train.json"),
    # ---- wrong mode
    ("wrong-mode-gt-grey-2017", "davis2017", lambda g, r: Image.open(g / ANN17 / "00001.png").convert("L").save(g / ANN17 / "00001.png") or g / ANN17 / "00001.png"),
    ("wrong-mode-gt-rgb-2016", "davis2016", lambda g, r: Image.open(g / ANN16 / "00001.png").convert("RGB").save(g / ANN16 / "00001.png") or g / ANN16 / "00001.png"),
    ("wrong-mode-gt-varying-alpha", "davis2016", lambda g, r: _la(g / ANN16 / "00003.png", opaque=False)),
    ("opaque-alpha-is-grey", "davis2016", lambda g, r: _la(g / ANN16 / "00003.png", opaque=True) and None),
    ("wrong-mode-result-colour", "davis2017", lambda g, r: Image.open(r / "s0/00002.png").convert("RGB").save(r / "s0/00002.png") or r / "s0/00002.png"),
    ("wrong-mode-gt-colour-mask", "segtrackv2", lambda g, r: _colour(g / "GroundTruth/drift/1/drift_003.bmp")),
    # ---- wrong values
    ("wrong-values-gt-2016", "davis2016", lambda g, r: _set_label(g / ANN16 / "00002.png", 128, "L")),
    ("wrong-values-gt-phantom-ids", "davis2017", lambda g, r: _set_label(g / ANN17 / "00000.png", 7)),
    ("wrong-values-result-label", "davis2017", lambda g, r: _set_label(r / "s0" / "00002.png", 9) and f"{r / 's0'}: frame 00002: predicted label 9"),
    ("wrong-values-gt-grey-void", "davis2017", lambda g, r: _grey_void(g / ANN17 / "00001.png")),
    ("wrong-values-gt-nonbinary-mask", "segtrackv2", lambda g, r: _set_label(g / "GroundTruth/girl/girl_003.png", 100, "L")),
    ("wrong-values-rle-garbage", "ytvis", lambda g, r: _json_edit(g / "train.json", lambda d: d["annotations"][2]["segmentations"][0].update(counts="zz~~garbage")) and g / "train.json"),
    ("wrong-values-result-rle-garbage", "ytvis", lambda g, r: _json_edit(r, lambda d: d[1]["segmentations"][3].update(counts="abc")) and r),
    ("wrong-values-score-string", "ytvis", lambda g, r: _json_edit(r, lambda d: d[0].update(score="high")) and r),
    ("wrong-values-score-null", "ytvis", lambda g, r: _json_edit(r, lambda d: d[0].update(score=None)) and r),
    # ---- wrong pairing
    ("wrong-pairing-split-line", "davis2016", lambda g, r: _pair(g / "ImageSets/480p/val.txt")),
    ("wrong-pairing-duplicate-object-ids", "segtrackv2", lambda g, r: ((g / "GroundTruth/drift/2").rename(g / "GroundTruth/drift/01"), f"{g / 'GroundTruth/drift'}: object folders ['01', '1']")[1]),
    ("wrong-pairing-unknown-video", "ytvis", lambda g, r: _json_edit(r, lambda d: d[0].update(video_id=99)) and r),
    ("wrong-pairing-gt-unknown-video", "ytvis", lambda g, r: _json_edit(g / "train.json", lambda d: d["annotations"][0].update(video_id=77)) and g / "train.json"),
    # ---- wrong JSON shape and types
    ("json-gt-is-a-list", "ytvis", lambda g, r: (g / "train.json").write_text("[]") and g / "train.json"),
    ("json-gt-no-videos", "ytvis", lambda g, r: _json_edit(g / "train.json", lambda d: d.pop("videos")) and g / "train.json"),
    ("json-gt-videos-not-list", "ytvis", lambda g, r: _json_edit(g / "train.json", lambda d: d.update(videos={"1": 2})) and g / "train.json"),
    ("json-gt-annotation-a-string", "ytvis", lambda g, r: _json_edit(g / "train.json", lambda d: d["annotations"].append("oops")) and g / "train.json"),
    ("json-gt-category-string", "ytvis", lambda g, r: _json_edit(g / "train.json", lambda d: d["annotations"][0].update(category_id="cat")) and g / "train.json"),
    ("json-gt-height-negative", "ytvis", lambda g, r: _json_edit(g / "train.json", lambda d: d["videos"][0].update(height=-3)) and g / "train.json"),
    ("json-results-a-dict", "ytvis", lambda g, r: r.write_text('{"video_id": 1}') and r),
    ("json-results-entry-a-number", "ytvis", lambda g, r: _json_edit(r, lambda d: d.append(3)) and r),
    ("json-results-segmentations-not-list", "ytvis", lambda g, r: _json_edit(r, lambda d: d[0].update(segmentations="x")) and r),
    ("json-results-category-string", "ytvis", lambda g, r: _json_edit(r, lambda d: d[0].update(category_id="a")) and r),
    ("corrupt-results-zip", "ytvis-zip", lambda g, r: _trunc(r, 40)),
    # ---- unreadable
    ("unreadable-gt-png", "davis2017", lambda g, r: _as_folder(g / ANN17 / "00002.png")),
    ("unreadable-result-png", "davis2016", lambda g, r: _as_folder(r / "s0" / "00003.png")),
    ("unreadable-results-folder", "davis2017", lambda g, r: (shutil.rmtree(r / "s1"), (r / "s1").write_text("x")) and r / "s1"),
    ("unreadable-gt-json", "ytvis", lambda g, r: _as_folder(g / "train.json")),
]


def _la(p: Path, *, opaque: bool):
    m = np.asarray(Image.open(p).convert("L"))
    a = np.full(m.shape, 255, np.uint8)
    if not opaque:
        a[0, :4] = 0
    Image.fromarray(np.stack([m, a], -1), mode="LA").save(p)
    return p


def _colour(p: Path):
    a = np.asarray(Image.open(p).convert("RGB")).copy()
    a[a[..., 0] > 0] = (255, 0, 0)
    Image.fromarray(a).save(p)
    return p


def _grey_void(p: Path):
    """A 0/255 grey mask saved as palette PNG with a grey palette."""
    m = (np.asarray(Image.open(p)) > 0).astype(np.uint8) * 255
    img = Image.fromarray(m, mode="L").convert("P")
    img.putpalette([v for i in range(256) for v in (i, i, i)])
    img.save(p)
    return p


def _pair(lst: Path):
    lines = lst.read_text().splitlines()
    lines[1] = lines[1].replace("/Annotations/480p/s0/", "/Annotations/480p/s1/")
    lst.write_text("\n".join(lines) + "\n")
    return Path(f"{lst}:2")


def _eval(task: str, gt: Path, res: Path, out: Path) -> fx.Run:
    if task == "ytvis":
        return fx.run_eval("--task", "ytvis", "--gt", gt / "train.json", "--results", res, "--out", out)
    return fx.run_eval("--task", task, "--gt", gt, "--results", res, "--out", out)


@pytest.fixture(scope="module")
def baselines(tmp_path_factory, _masters):
    """The untouched fixtures' numbers."""
    out = {}
    for task, (gt, res) in _masters.items():
        d = tmp_path_factory.mktemp(f"base_{task}")
        r = _eval(task, gt, res, d)
        assert r.code == 0, r.text
        out[task] = json.loads((d / "results.json").read_text())["global"]
    return out


@pytest.mark.parametrize("name,task,mutate", CASES, ids=[c[0] for c in CASES])
def test_eval_corruption(name, task, mutate, data, baselines, tmp_path):
    zipped = task == "ytvis-zip"
    task = "ytvis" if zipped else task
    gt, res = data(task)
    if zipped:
        z = res.parent / "submission.zip"
        with zipfile.ZipFile(z, "w") as f:
            f.write(res, arcname="results.json")
        res = z
    named = mutate(gt, res)
    out = tmp_path / "out"
    r = _eval(task, gt, res, out)
    if named is None:  # an input change that must not change the numbers
        assert r.code == 0, r.text
        assert json.loads((out / "results.json").read_text())["global"] == baselines[task]
        return
    rel = str(named).replace(str(tmp_path) + os.sep, "")
    fx.assert_clean_error(r, 2, rel)
    assert len([ln for ln in r.err.splitlines() if ln.strip()]) == 1, r.err
    assert fx.report_files(out) == [], fx.report_files(out)  # no partial report


def test_real_davis2016_mini_corruptions(mini, tmp_path):
    """The real release files: scores unchanged by an irrelevant change, errors name the file."""
    gt, res = mini
    base = fx.run_eval("--task", "davis2016", "--gt", gt, "--results", res, "--out", tmp_path / "a")
    assert base.code == 0, base.text
    g0 = json.loads((tmp_path / "a" / "results.json").read_text())["global"]
    assert 0 < g0["J_mean"] < 1
    # opaque alpha (as the release's bear/00077.png): same numbers
    p = gt / "Annotations/480p/blackswan/00002.png"
    keep = p.read_bytes()
    _la(p, opaque=True)
    r = fx.run_eval("--task", "davis2016", "--gt", gt, "--results", res, "--out", tmp_path / "b")
    assert r.code == 0 and json.loads((tmp_path / "b" / "results.json").read_text())["global"] == g0
    p.write_bytes(keep)
    for mutate in (lambda: _trunc(p, 500), lambda: _set_label(p, 128, "L"), lambda: _resize(p)):
        p.write_bytes(keep)
        mutate()
        r = fx.run_eval("--task", "davis2016", "--gt", gt, "--results", res, "--out", tmp_path / "c")
        fx.assert_clean_error(r, 2, "blackswan/00002.png")
        assert fx.report_files(tmp_path / "c") == []


@pytest.mark.parametrize("sample", ["ytvis2019_sample_ann.json", "ovis_sample_ann.json",
                                    "davis2016-mini_ytvis.json"])
def test_real_ytvis_samples(sample, formats_dir, tmp_path):
    """The real YouTube-VIS / OVIS annotation samples as ground truth: results made from them
    score, and their corrupted copies are one-line errors naming the file."""
    gt = tmp_path / "gt.json"
    shutil.copyfile(formats_dir / sample, gt)
    data = json.loads(gt.read_text())
    if "images" in data:  # CocoVID: the evaluator reads the per-video layout through the reader
        from vosbench.data.datasets.ytvis import parse_ytvis_json

        js = parse_ytvis_json(data, gt, require_files=False)
        data = {"videos": [{**v, "length": v["length"] or len(v["file_names"])} for v in js.videos],
                "annotations": js.annotations,
                "categories": [{"id": c, "name": n} for c, n in js.categories.items()]}
        gt.write_text(json.dumps(data))
    res = fx.make_ytvis_results(gt, tmp_path / "res" / "results.json", shift=1)
    r = fx.run_eval("--task", "ytvis", "--gt", gt, "--results", res, "--out", tmp_path / "o")
    assert r.code == 0, r.text
    ap = json.loads((tmp_path / "o" / "results.json").read_text())["global"]["AP"]
    assert 0 < ap <= 1
    seg = next(s for a in data["annotations"] for s in a["segmentations"] if s)
    seg["counts"] = "0" * 7 if isinstance(seg.get("counts"), str) else [1, 2, 3]
    gt.write_text(json.dumps(data))
    r = fx.run_eval("--task", "ytvis", "--gt", gt, "--results", res, "--out", tmp_path / "p")
    fx.assert_clean_error(r, 2, str(gt), "RLE")
    assert fx.report_files(tmp_path / "p") == []
