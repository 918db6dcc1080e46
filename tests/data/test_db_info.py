"""db_info.yml: the reader on the real DAVIS-2016 files, the loaders' metadata, the DAVIS-2016 T
protocol (eval_t), and the synthetic generator's attributes checked against what it did."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from tests.conftest import SHARED
from vosbench.data import build_dataset, synthetic_attributes as sa
from vosbench.data.datasets import DAVIS2016, DAVIS2017
from vosbench.data.datasets.davis_info import find_db_info, load_db_info, read_db_info
from vosbench.data.synthetic import FADES_FILE, cached_generate, generate
from vosbench.utils.io import DataError


def test_reader_on_the_real_file(davis_mini):
    info = read_db_info(davis_mini / "Annotations" / "db_info.yml")
    assert find_db_info(davis_mini) == davis_mini / "Annotations" / "db_info.yml"
    assert len(info.sequences) == 50 and info.sets == ["training", "test"]
    assert info.attributes == ["AC", "BC", "CS", "DB", "DEF", "EA", "FM", "HO", "IO", "LR", "MB",
                               "OCC", "OV", "ROT", "SC", "SV"]
    assert info.get("blackswan").attributes == () and info.eval_t("blackswan")
    assert info.get("car-shadow").attributes == ("LR", "EA", "AC", "BC")
    moto = info.get("motocross-jump")
    assert not moto.eval_t and moto.num_frames == 40 and "FM" in moto.attributes and moto.set == "test"
    assert sum(s.eval_t for s in info.sequences.values()) == 27  # the file: 27 True, 23 False
    assert not info.eval_t("not-a-davis-sequence")  # the official rule: unlisted -> no T
    # The folder holds 3 of the 50 listed sequences: the loader attaches exactly those three.
    ds = DAVIS2016(root=davis_mini, split="val")
    assert ds.db_info is not None and len(ds.db_info.sequences) == 50
    assert {r.video_id: r.extra["db_info"]["eval_t"] for r in ds.videos} == \
        {"blackswan": True, "car-shadow": True, "motocross-jump": False}
    meta = ds[ds.video_ids.index("car-shadow")].meta["db_info"]
    assert meta["listed"] and meta["attributes"] == ["LR", "EA", "AC", "BC"] and meta["num_frames"] == 40


def test_reader_on_the_real_train_folder():
    root = SHARED / "data" / "davis2016-train"
    if not (root / "Annotations" / "db_info.yml").is_file():
        pytest.skip(f"{root} not found")
    ds = DAVIS2016(root=root, split="train")
    assert len(ds) == 20 and all(r.extra["db_info"]["listed"] for r in ds.videos)
    assert sum(r.extra["db_info"]["eval_t"] for r in ds.videos) == 13
    assert ds.videos[0].extra["db_info"]["attributes"] == ["DEF"]  # bear


@pytest.mark.parametrize("text, match", [
    ("sequences: [", "not a readable YAML"),
    ("attributes: [A]\n", "'sequences' list"),
    ("sequences:\n- {attributes: []}\n", r"sequences\[0\]: entry without a 'name'"),
    ("sequences:\n- {name: a, eval_t: maybe}\n", r"sequences\[0\] \(a\): eval_t must be True or False"),
    ("attributes: [OCC]\nsequences:\n- {name: a, attributes: [FM]}\n", r"\['FM'\] are not declared"),
    ("sequences:\n- {name: a}\n- {name: a}\n", "listed twice"),
    ("sequences:\n- {name: a, num_frames: -2}\n", "num_frames"),
])
def test_bad_files_name_the_file_and_the_entry(tmp_path, text, match):
    p = tmp_path / "db_info.yml"
    p.write_text(text)
    with pytest.raises(DataError, match=match) as e:
        read_db_info(p)
    assert str(p) in str(e.value)


def test_loader_reports_a_bad_db_info(davis17):
    (davis17 / "Annotations" / "db_info.yml").write_text("sequences: 3\n")
    with pytest.raises(DataError, match="db_info.yml: expected a mapping"):
        DAVIS2017(root=davis17, split="train")
    problems = DAVIS2017.check_root(root=davis17, split="train")
    assert any("db_info.yml" in p for p in problems)
    (davis17 / "Annotations" / "db_info.yml").unlink()
    ds = DAVIS2017(root=davis17, split="train")
    assert ds.db_info is None and "db_info" not in ds[0].meta  # no file: nothing attached


# -------------------------------------------------------------------------- DAVIS-2016 T protocol
class _Echo:
    """A prediction equal to the ground truth, with a wobble so T is finite."""

    def __call__(self, sample):
        from vosbench.structures import FramePrediction, VideoPrediction

        ids = torch.tensor([1])

        def frames():
            for t, f in enumerate(sample.frames):
                m = f.masks.any(0, keepdim=True) if f.masks is not None and f.masks.shape[0] else \
                    torch.zeros((1, *sample.orig_size), dtype=torch.bool)
                yield FramePrediction(index=t, masks=m)
        return VideoPrediction(sample.video_id, ids, torch.ones(1), torch.full((1,), -1), frames(),
                               tuple(sample.orig_size), len(sample))


def _davis16_folder(root, seqs, *, frames=6, h=48, w=64):
    """A DAVIS-2016 folder: a moving disc per sequence, grey 0/255 masks, ImageSets/480p/val.txt."""
    lines = []
    yy, xx = np.mgrid[0:h, 0:w]
    for k, seq in enumerate(seqs):
        (root / "JPEGImages" / "480p" / seq).mkdir(parents=True)
        (root / "Annotations" / "480p" / seq).mkdir(parents=True)
        for t in range(frames):
            m = ((yy - 20 - k) ** 2 + (xx - 15 - 4 * t) ** 2 < (8 + t % 2) ** 2)
            img = np.zeros((h, w, 3), np.uint8) + 40
            img[m] = 220
            Image.fromarray(img).save(root / "JPEGImages" / "480p" / seq / f"{t:05d}.jpg", quality=95)
            Image.fromarray((m * 255).astype(np.uint8), mode="L").save(
                root / "Annotations" / "480p" / seq / f"{t:05d}.png")
            lines.append(f"/JPEGImages/480p/{seq}/{t:05d}.jpg /Annotations/480p/{seq}/{t:05d}.png")
    (root / "ImageSets" / "480p").mkdir(parents=True)
    (root / "ImageSets" / "480p" / "val.txt").write_text("\n".join(lines) + "\n")
    return root


def test_davis2016_t_follows_eval_t(tmp_path):
    from vosbench.metrics import build_evaluator

    root = _davis16_folder(tmp_path / "d16", ["aa", "bb", "cc"])
    (root / "Annotations" / "db_info.yml").write_text(
        "attributes: [FM]\nsequences:\n- {name: aa, attributes: [FM], eval_t: True}\n"
        "- {name: bb, attributes: [], eval_t: False}\n")  # cc is not listed: no T either
    ds = DAVIS2016(root=root, split="val")
    ev = build_evaluator("davis2016")
    everywhere = build_evaluator("davis2016", t_all_sequences=True)
    for s in ds:
        ev.process(s, _Echo()(s))
        everywhere.process(s, _Echo()(s))
    rows = {r["Sequence"]: r for r in ev.per_sequence()}
    assert ev.t_sequences == ["aa"] and everywhere.t_sequences == ["aa", "bb", "cc"]
    assert np.isfinite(rows["aa"]["T-Mean"]) and np.isnan(rows["bb"]["T-Mean"]) and np.isnan(rows["cc"]["T-Mean"])
    all_rows = {r["Sequence"]: r for r in everywhere.per_sequence()}
    assert ev.evaluate()["T_mean"] == pytest.approx(all_rows["aa"]["T-Mean"])  # nanmean over aa only
    assert everywhere.evaluate()["T_mean"] == pytest.approx(np.mean([r["T-Mean"] for r in all_rows.values()]))
    assert ev.evaluate()["J&F"] == pytest.approx(everywhere.evaluate()["J&F"])  # J, F unchanged


# ------------------------------------------------------------------------- synthetic attributes
SYN = dict(num_videos=12, num_frames=10, height=48, width=64, max_objects=3, seed=11)


def _labels(root, seq, t):
    return np.asarray(Image.open(root / "Annotations" / "480p" / seq / f"{t:05d}.png"))


def test_synthetic_attributes_match_what_the_generator_did(tmp_path):
    root = generate(tmp_path / "syn", split="val", fade=0.5, **SYN)
    ds = build_dataset({"name": "davis2017", "root": str(root), "split": "val"})
    scenes = json.loads((root / sa.SCENES_FILE.format(split="val")).read_text())
    fades = json.loads((root / FADES_FILE.format(split="val")).read_text())
    seen = {a: 0 for a in sa.ATTRIBUTES}
    for rec in ds.videos:
        seq, sc = rec.video_id, scenes[rec.video_id]
        tags = set(rec.extra["db_info"]["attributes"])
        for a in tags:
            seen[a] += 1
        labels = np.stack([_labels(root, seq, t) for t in range(SYN["num_frames"])])
        ids = [int(i) for i in np.unique(labels) if i]
        assert sorted(o["id"] for o in sc["objects"]) == ids
        W = SYN["width"]
        occ = fm = sv = False
        for o in sc["objects"]:
            # the description's visible pixels are exactly the object's pixels in the GT files
            assert o["visible"] == [int((labels[t] == o["id"]).sum()) for t in range(SYN["num_frames"])]
            assert all(v <= a for v, a in zip(o["visible"], o["area"]))
            area, vis = np.array(o["area"]), np.array(o["visible"])
            occ |= bool(np.any((area >= 16) & (area - vis >= 0.25 * area)))
            c = np.array([o["cx"], o["cy"]])[:, o["start"]:]
            fm |= bool(np.linalg.norm(np.diff(c, axis=1), axis=0).mean() >= 0.1 * W) if c.shape[1] > 1 else False
            r = np.array(o["scale"])[o["start"]:]
            sv |= bool((r.min() / r.max()) ** 2 < 0.5)
        assert ("OCC" in tags) == occ and ("FM" in tags) == fm and ("SV" in tags) == sv, seq
        # late entry, straight from the GT files: an object whose first mask is after frame 0
        first = {i: min(t for t in range(SYN["num_frames"]) if (labels[t] == i).any()) for i in ids}
        assert ("LE" in tags) == any(t > 0 for t in first.values()), seq
        # fading, from the generator's fade log
        assert ("FADE" in tags) == bool(fades[seq]), seq
        # look-alikes: unannotated copies of an annotated object's shape that show up
        la = [d for d in sc["distractors"] if d["look_alike_of"] is not None and max(d["visible"]) >= 16]
        assert ("LA" in tags) == bool(la), seq
        for d in la:
            ref = next(o for o in sc["objects"] if o["id"] == d["look_alike_of"])
            assert d["category"] == ref["category"]
        # what the generator drew: a fast mover (12-20 % of the width per frame) makes FM
        if any(o["fast"] for o in sc["objects"]):
            assert "FM" in tags, seq
    # every attribute occurs and none is everywhere: the checks above were not vacuous
    assert all(0 < n < len(ds) for n in seen.values()), seen


def test_cached_folders_without_scenes_get_them(tmp_path):
    kw = dict(fmt="ytvis", split="val", num_videos=3, num_frames=5, height=32, width=48, max_objects=2,
              seed=2)
    root = cached_generate(tmp_path, **kw)
    info = root / "db_info.yml"
    scenes = root / sa.SCENES_FILE.format(split="val")
    want_info, want_scenes = info.read_text(), scenes.read_text()
    assert load_db_info(root).attributes_of(["syn-val-0000"])  # YouTube-VIS folders have it too
    info.unlink()
    scenes.unlink()  # a folder made before the generator described its scenes
    assert cached_generate(tmp_path, **kw) == root
    assert info.read_text() == want_info and scenes.read_text() == want_scenes


def test_splits_sharing_a_folder_keep_each_others_entries(tmp_path):
    generate(tmp_path, split="train", num_videos=2, num_frames=4, height=32, width=48)
    generate(tmp_path, split="val", num_videos=3, num_frames=4, height=32, width=48)
    info = load_db_info(tmp_path)
    assert sorted(info.sequences) == ["syn-train-0000", "syn-train-0001", "syn-val-0000",
                                      "syn-val-0001", "syn-val-0002"]
    assert info.sets == ["train", "val"] and info.descriptions["OCC"].startswith("occlusion")


def test_eval_tool_prints_j_and_f_per_attribute(tmp_path, capsys):
    """``vosbench eval --task davis2016`` on a folder with db_info.yml: the T protocol and J&F
    per attribute with the number of sequences behind each (and the CSV)."""
    import csv
    import shutil

    from vosbench.cli import eval as eval_cli

    root = _davis16_folder(tmp_path / "d16", ["aa", "bb", "cc"])
    (root / "Annotations" / "db_info.yml").write_text(
        "attributes: [FM, OCC]\nsequences:\n- {name: aa, attributes: [FM], eval_t: True}\n"
        "- {name: bb, attributes: [FM, OCC], eval_t: False}\n- {name: cc, attributes: [], eval_t: True}\n"
        "- {name: not-here, attributes: [OCC], eval_t: True}\n")
    res = tmp_path / "res"
    for seq in ("aa", "bb", "cc"):  # perfect on aa and cc, empty masks on bb
        shutil.copytree(root / "Annotations" / "480p" / seq, res / seq)
    for p in (res / "bb").glob("*.png"):
        Image.fromarray(np.zeros((48, 64), np.uint8), mode="L").save(p)
    rc = eval_cli.main(["--task", "davis2016", "--gt", str(root), "--results", str(res), "--out",
                        str(tmp_path / "out"), "--workers", "1", "--quiet", "--no-cache"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "T_mean over 2 of 3 sequences" in out
    lines = {ln.split()[0]: ln for ln in out.splitlines() if ln.startswith("  ")}
    assert "n=3" in lines["all"] and "n=2" in lines["FM"] and "n=1" in lines["OCC"]
    assert "J&F=0.5000" in lines["FM"] and "J&F=0.0000" in lines["OCC"]  # bb scores 0 (empty masks)
    rows = list(csv.DictReader((tmp_path / "out" / "per-attribute_results-val.csv").open()))
    assert [(r["Attribute"], r["Sequences"]) for r in rows] == [("all", "3"), ("FM", "2"), ("OCC", "1")]
