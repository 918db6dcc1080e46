import json
import shutil

import numpy as np
import pytest
from PIL import Image

from vosbench.data.datasets import YTVIS2019, YTVIS2021
from vosbench.structures.masks import rle_decode, rle_encode
from vosbench.utils.io import DataError


def test_synthetic_ytvis_roundtrip(ytvis):
    ds = YTVIS2019(root=ytvis, split="train")
    data = json.loads((ytvis / "train.json").read_text())
    assert len(ds) == len(data["videos"]) and ds.task == "vis" and ds.metric == "ytvis"
    s = ds[0]
    assert s.reference == {} and s.categories == {c["id"]: c["name"] for c in data["categories"]}
    anns = [a for a in data["annotations"] if a["video_id"] == int(s.video_id)]
    f = s.frames[1]
    for a in anns:
        seg = a["segmentations"][1]
        if seg is None:
            assert a["id"] not in f.obj_ids.tolist()
            continue
        row = f.obj_ids.tolist().index(a["id"])
        assert f.labels[row] == a["category_id"]
        assert np.array_equal(f.masks[row].numpy(), rle_decode(seg))
    assert s.meta["areas"][anns[0]["id"]] == anns[0]["areas"]


@pytest.mark.parametrize("how,msg", [
    ("malformed", "malformed JSON"),
    ("unknown_video", "unknown video 99"),
    ("rle_size", "disagrees with the video"),
    ("seg_count", "segmentations for a video of"),
    ("unknown_category", "unknown category"),
])
def test_bad_json_is_a_clear_error(ytvis, how, msg):
    p = ytvis / "train.json"
    if how == "malformed":
        p.write_text(p.read_text()[:-20])
    else:
        d = json.loads(p.read_text())
        a = next(a for a in d["annotations"] if any(a["segmentations"]))
        if how == "unknown_video":
            a["video_id"] = 99
        elif how == "rle_size":
            t = next(i for i, s in enumerate(a["segmentations"]) if s)
            a["segmentations"][t] = rle_encode(np.zeros((1, 10, 10), bool))[0]
        elif how == "seg_count":
            a["segmentations"] = a["segmentations"][:-1]
        elif how == "unknown_category":
            a["category_id"] = 77
        p.write_text(json.dumps(d))
    with pytest.raises(DataError, match=msg) as e:
        YTVIS2019(root=ytvis, split="train")
    assert "train.json" in str(e.value)


def test_valid_json_without_annotations_is_inference_only(ytvis):
    d = json.loads((ytvis / "train.json").read_text())
    del d["annotations"]
    (ytvis / "valid.json").write_text(json.dumps(d))
    s = YTVIS2021(root=ytvis, split="valid")[0]
    assert all(f.masks is None for f in s.frames)


def _write_frames(root, data, videos):
    for v in videos:
        for name in v["file_names"]:
            p = root / "JPEGImages" / name
            p.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.zeros((v["height"], v["width"], 3), np.uint8)).save(p, quality=50)


def test_real_ytvis2019_sample_cocovid_layout(formats_dir, tmp_path):
    """mmtracking's per-image layout: masks decode at the video size, areas equal pixel counts."""
    data = json.loads((formats_dir / "ytvis2019_sample_ann.json").read_text())
    shutil.copy(formats_dir / "ytvis2019_sample_ann.json", tmp_path / "train.json")
    ims = sorted(data["images"], key=lambda im: im["frame_id"])
    v = dict(file_names=[im["file_name"] for im in ims], height=ims[0]["height"], width=ims[0]["width"])
    _write_frames(tmp_path, data, [v])
    s = YTVIS2019(root=tmp_path, split="train")[0]
    assert len(s) == 20 and s.orig_size == (720, 1280)
    by_image = {im["id"]: i for i, im in enumerate(ims)}
    n = 0
    for t, f in enumerate(s.frames):
        assert f.masks.shape[-2:] == (720, 1280)
        for a in data["annotations"]:
            if by_image[a["image_id"]] == t:
                row = f.obj_ids.tolist().index(a["instance_id"])
                assert int(f.masks[row].sum()) == a["area"]
                n += 1
    assert n == len(data["annotations"]) == 30


def test_real_ovis_sample(formats_dir, tmp_path):
    data = json.loads((formats_dir / "ovis_sample_ann.json").read_text())
    shutil.copy(formats_dir / "ovis_sample_ann.json", tmp_path / "train.json")
    _write_frames(tmp_path, data, data["videos"])
    s = YTVIS2021(root=tmp_path, split="train")[0]
    assert s.orig_size == (886, 1920) and len(s) == 3
    f = s.frames[0]
    assert f.masks.shape == (10, 886, 1920) or f.masks.shape[1:] == (886, 1920)
    assert len(s.meta["areas"]) == 10
