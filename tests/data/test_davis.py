import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vosbench.data import build_dataset
from vosbench.data.datasets import DAVIS2016, DAVIS2017
from vosbench.utils.io import DataError, read_index_png, write_index_png

REPO = Path(__file__).resolve().parents[2]


def _seq(root):
    return sorted((root / "JPEGImages" / "480p").iterdir())[0].name


def test_davis2017_reads_what_was_written(davis17):
    ds = DAVIS2017(root=davis17, split="train")
    assert len(ds) == 2
    s = ds[0]
    lab = read_index_png(davis17 / "Annotations" / "480p" / s.video_id / "00003.png")
    f = s.frames[3]
    assert f.image.shape == (3, 48, 64) and f.image.dtype == torch.float32
    for oid, m in zip(f.obj_ids.tolist(), f.masks):
        assert torch.equal(m, torch.from_numpy(lab == oid))
    # every object's reference is its first non-empty annotation
    for t, ref in s.reference.items():
        for oid, m in zip(ref.obj_ids.tolist(), ref.masks):
            assert m.any()
            for t0 in range(t):
                assert not (read_index_png(davis17 / "Annotations" / "480p" / s.video_id / f"{t0:05d}.png") == oid).any()


def test_resize_short_keeps_orig_size(davis17):
    s = DAVIS2017(root=davis17, split="train", resize_short=24)[0]
    assert s.orig_size == (48, 64)
    f = s.frames[0]
    assert f.image.shape[-2:] == (24, 32) and f.masks.shape[-2:] == (24, 32)


def test_test_dev_split_has_references_but_no_gt(davis17):
    seq = _seq(davis17)
    adir = davis17 / "Annotations" / "480p" / seq
    for p in sorted(adir.glob("*.png"))[1:]:
        p.unlink()
    (davis17 / "ImageSets" / "2017" / "test-dev.txt").write_text(seq + "\n")
    s = DAVIS2017(root=davis17, split="test-dev")[0]
    assert 0 in s.reference and all(f.masks is None for f in s.frames)


def _break(root, how):
    seq = _seq(root)
    j, a = root / "JPEGImages" / "480p" / seq, root / "Annotations" / "480p" / seq
    if how == "missing_frame":
        (j / "00002.jpg").unlink()
        return DataError, "missing frame 00002"
    if how == "missing_annotation":
        (a / "00002.png").unlink()
        return DataError, "missing annotation"
    if how == "size_mismatch":
        write_index_png(a / "00003.png", np.zeros((10, 10), np.uint8))
        return DataError, "annotation size 10x10"
    if how == "non_palette":
        Image.fromarray(np.zeros((48, 64, 3), np.uint8)).save(a / "00001.png")
        return DataError, "not an indexed"
    if how == "grey_png":  # a DAVIS-2016-style 0/255 mask would read as void, not an object
        Image.fromarray(np.zeros((48, 64), np.uint8)).save(a / "00001.png")
        return DataError, "must be palette"
    if how == "corrupt_image":
        (j / "00001.jpg").write_bytes(b"not a jpeg")
        return DataError, "corrupt"
    if how == "annotation_without_frame":
        write_index_png(a / "00099.png", np.zeros((48, 64), np.uint8))
        return DataError, "has no frame"
    raise AssertionError(how)


BAD = ["missing_frame", "missing_annotation", "size_mismatch", "non_palette", "grey_png", "corrupt_image",
       "annotation_without_frame"]


@pytest.mark.parametrize("how", BAD)
def test_bad_input_is_a_clear_error(davis17, how):
    exc, msg = _break(davis17, how)
    seq = _seq(davis17)
    with pytest.raises(exc, match=msg) as e:
        ds = DAVIS2017(root=davis17, split="train")
        s = ds[seq]
        for _ in s.frames:
            pass
    assert seq in str(e.value)  # the message names the file


def test_check_dataset_lists_every_problem(davis17):
    _break(davis17, "corrupt_image")
    _break(davis17, "size_mismatch")
    r = subprocess.run([sys.executable, str(REPO / "tools" / "check_dataset.py"), str(davis17),
                        "--format", "davis2017", "--split", "train"], capture_output=True, text=True)
    assert r.returncode == 1
    assert "corrupt" in r.stdout and "annotation size 10x10" in r.stdout
    assert "2 problem(s)" in r.stdout


def test_davis2016_odd_values_and_layout(tmp_path):
    root = tmp_path / "d16"
    (root / "JPEGImages" / "480p" / "s").mkdir(parents=True)
    (root / "Annotations" / "480p" / "s").mkdir(parents=True)
    (root / "ImageSets" / "480p").mkdir(parents=True)
    lines = []
    for t in range(3):
        Image.fromarray(np.full((20, 30, 3), 80, np.uint8)).save(root / "JPEGImages" / "480p" / "s" / f"{t:05d}.jpg")
        m = np.zeros((20, 30), np.uint8)
        m[5:10, 5 + t:12 + t] = 255
        Image.fromarray(m, mode="L").save(root / "Annotations" / "480p" / "s" / f"{t:05d}.png")
        lines.append(f"/JPEGImages/480p/s/{t:05d}.jpg /Annotations/480p/s/{t:05d}.png")
    (root / "ImageSets" / "480p" / "val.txt").write_text("\n".join(lines) + "\n")
    s = DAVIS2016(root=root, split="val")[0]
    assert s.obj_ids.tolist() == [1] and s.frames[2].masks[0].sum() == 35
    m = np.zeros((20, 30), np.uint8)
    m[0, 0] = 128
    Image.fromarray(m, mode="L").save(root / "Annotations" / "480p" / "s" / "00001.png")
    with pytest.raises(DataError, match="must be 0/255"):
        DAVIS2016(root=root, split="val")[0].frames[1]


def test_real_davis2016_mini(davis_mini):
    ds = build_dataset({"name": "davis2016", "root": str(davis_mini), "split": "val"})
    assert sorted(ds.video_ids) == ["blackswan", "car-shadow", "motocross-jump"]
    assert sum(len(s) for s in ds) == 130
    for s in ds:
        assert s.orig_size == (480, 854)
        assert s.obj_ids.tolist() == [1] and list(s.reference) == [0]
    f = ds[0].frames[7]
    assert f.image.shape == (3, 480, 854) and f.masks.shape == (1, 480, 854) and f.masks.any()


def test_real_davis2016_mini_check_tool(davis_mini):
    r = subprocess.run([sys.executable, str(REPO / "tools" / "check_dataset.py"), str(davis_mini),
                        "--format", "davis2016"], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "no problems" in r.stdout


# ------------------------------------------------------------- the release as it is (#22)
TRAIN16 = REPO.parent / "shared" / "data" / "davis2016-train"
if not TRAIN16.is_dir():
    TRAIN16 = Path("/work/shared/data/davis2016-train")


def _d16(root, n=3):
    (root / "ImageSets" / "480p").mkdir(parents=True)
    lines = []
    for t in range(n):
        for sub in ("JPEGImages", "Annotations"):
            (root / sub / "480p" / "s").mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((20, 30, 3), 80, np.uint8)).save(root / "JPEGImages" / "480p" / "s" / f"{t:05d}.jpg")
        m = np.zeros((20, 30), np.uint8)
        m[5:10, 5 + t:12 + t] = 255
        Image.fromarray(m, mode="L").save(root / "Annotations" / "480p" / "s" / f"{t:05d}.png")
        lines.append(f"/JPEGImages/480p/s/{t:05d}.jpg /Annotations/480p/s/{t:05d}.png")
    (root / "ImageSets" / "480p" / "val.txt").write_text("\n".join(lines) + "\n")
    return root


def _with_alpha(p, alpha_value=255, hole=False):
    m = np.asarray(Image.open(p).convert("L"))
    a = np.full(m.shape, alpha_value, np.uint8)
    if hole:
        a[0, 0] = 0
    Image.fromarray(np.stack([m, a], -1), mode="LA").save(p)


def test_davis2016_grey_alpha_opaque_is_grey_varying_is_an_error(tmp_path):
    root = _d16(tmp_path / "d16")
    ann = root / "Annotations" / "480p" / "s" / "00001.png"
    ref = DAVIS2016(root=root, split="val")[0].frames[1].masks.clone()
    _with_alpha(ann)
    assert Image.open(ann).mode == "LA"
    assert torch.equal(DAVIS2016(root=root, split="val")[0].frames[1].masks, ref)
    assert DAVIS2016.check_root(root=root, split="val") == []
    assert DAVIS2016.check_root(root=root, split="val", level="header") == []
    _with_alpha(ann, hole=True)
    with pytest.raises(DataError, match=r"00001.png: LA PNG whose alpha channel is not opaque"):
        DAVIS2016(root=root, split="val")[0].frames[1]
    assert any("00001.png" in p and "alpha" in p for p in DAVIS2016.check_root(root=root, split="val"))


@pytest.mark.skipif(not (TRAIN16 / "Annotations" / "480p" / "bear" / "00077.png").is_file(),
                    reason="shared davis2016-train data not present")
def test_real_release_la_file_bear_00077():
    """bear/00077.png of the DAVIS-2016 release is grey + an opaque alpha: read as grey."""
    p = TRAIN16 / "Annotations" / "480p" / "bear" / "00077.png"
    assert Image.open(p).mode == "LA"
    ds = DAVIS2016(root=TRAIN16, split="train")
    s = ds["bear"]
    t = s.frame_names.index("00077")
    f = s.frames[t]
    grey = np.asarray(Image.open(p))[..., 0]
    assert f.masks.shape == (1, 480, 854)
    assert np.array_equal(f.masks[0].numpy(), grey == 255) and f.masks.any()


def test_davis2017_palette_quirks(davis17):
    """A palette PNG with a transparency entry (tRNS) is still a palette PNG with the same
    labels; a grey (mode L) or RGB copy of it is an error naming the file."""
    seq = _seq(davis17)
    p = davis17 / "Annotations" / "480p" / seq / "00002.png"
    lab = read_index_png(p)
    ref = DAVIS2017(root=davis17, split="train")[0].frames[2].masks.clone()
    Image.open(p).save(p, transparency=0)
    assert Image.open(p).mode == "P" and "transparency" in Image.open(p).info
    assert np.array_equal(read_index_png(p), lab)
    assert torch.equal(DAVIS2017(root=davis17, split="train")[0].frames[2].masks, ref)
    for mode in ("L", "RGB"):
        Image.fromarray(lab).convert(mode).save(p)
        with pytest.raises(DataError, match=f"00002.png: .*mode {mode}"):
            DAVIS2017(root=davis17, split="train")[0].frames[2]
