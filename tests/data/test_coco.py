"""The `coco` dataset on COCO-format folders the tests write (polygons, RLE, crowd, bad input)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from vosbench.config import compose
from vosbench.data import ClipDataset, build_dataset, collate_clips
from vosbench.data.datasets.coco import COCO, write_coco_instances
from vosbench.utils.io import DataError

H, W = 40, 56


def _rect(y0, y1, x0, x1):
    m = np.zeros((H, W), dtype=bool)
    m[y0:y1, x0:x1] = True
    return m


def _image(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (H, W, 3), dtype=np.uint8)


def _write(root, split="train2017", **kw):
    images = [
        {"file_name": "000000000001.jpg", "image": _image(1), "instances": [
            {"mask": _rect(4, 20, 6, 30), "category_id": 18, "segmentation": [[6, 4, 30, 4, 30, 20, 6, 20]]},
            {"mask": _rect(22, 38, 30, 50) & ~_rect(28, 32, 36, 40), "category_id": 1, "format": "rle"},
            {"mask": _rect(0, 10, 40, 56), "category_id": 1, "iscrowd": 1, "format": "rle_list"},
        ]},
        {"file_name": "000000000002.jpg", "image": _image(2), "instances": [
            {"mask": _rect(10, 30, 10, 30), "category_id": 90, "format": "rle_list"},
            {"mask": _rect(2, 12, 36, 50) | _rect(14, 24, 40, 54), "category_id": 5, "format": "polygon"},
        ]},
        {"file_name": "000000000003.jpg", "image": _image(3), "instances": [
            {"mask": _rect(0, 20, 0, 20), "category_id": 18, "iscrowd": 1, "format": "rle_list"},
        ]},
    ]
    return write_coco_instances(root, split, images, {1: "person", 18: "dog", 90: "toothbrush", 5: "airplane"})


def test_reads_polygons_rle_crowd_and_maps_categories(tmp_path):
    _write(tmp_path)
    ds = build_dataset(compose(["dataset=coco", f"dataset.root={tmp_path}", "dataset.split=train2017"]).dataset)
    assert isinstance(ds, COCO) and ds.task == "vis"
    assert len(ds) == 2                                    # image 3 has only a crowd region: dropped
    # sparse ids 1, 5, 18, 90 -> contiguous labels 1..4 in id order
    assert ds.categories == {1: "person", 2: "airplane", 3: "dog", 4: "toothbrush"}
    assert ds.category_ids == {1: 1, 2: 5, 3: 18, 4: 90}
    s = ds[0]
    assert s.num_frames == 1 and s.video_id == "1" and s.orig_size == (H, W)
    fr = s.frames[0]
    assert fr.image.shape == (3, H, W) and fr.masks.shape == (2, H, W)
    assert fr.obj_ids.tolist() == [1, 2] and fr.labels.tolist() == [3, 1]
    # a polygon on pixel corners and a compressed RLE decode exactly
    assert torch.equal(fr.masks[0], torch.from_numpy(_rect(4, 20, 6, 30)))
    assert torch.equal(fr.masks[1], torch.from_numpy(_rect(22, 38, 30, 50) & ~_rect(28, 32, 36, 40)))
    # the crowd annotation is not an instance; its area is void (ignored), uncompressed RLE exact
    assert torch.equal(fr.void, torch.from_numpy(_rect(0, 10, 40, 56)))
    f1 = ds[1].frames[0]
    assert f1.labels.tolist() == [4, 2] and f1.void is None
    assert torch.equal(f1.masks[0], torch.from_numpy(_rect(10, 30, 10, 30)))   # uncompressed RLE
    # two polygons (traced contours) of one instance merge into one mask
    two = torch.from_numpy(_rect(2, 12, 36, 50) | _rect(14, 24, 40, 54))
    assert (f1.masks[1] & two).sum() / (f1.masks[1] | two).sum() > 0.8
    assert s.meta["ann_ids"] == [1, 2]


def test_filter_empty_off_and_vos_task(tmp_path):
    _write(tmp_path)
    ds = COCO(root=tmp_path, split="train2017", filter_empty=False, task="vos")
    assert len(ds) == 3
    crowd_only = ds[2].frames[0]
    assert crowd_only.masks.shape == (0, H, W) and crowd_only.void.any()
    s = ds[0]
    assert s.task == "vos" and sorted(s.reference) == [0]
    assert s.reference[0].obj_ids.tolist() == [1, 2]


def test_single_frame_clips_collate(tmp_path):
    _write(tmp_path)
    ds = COCO(root=tmp_path, split="train2017")
    clips = ClipDataset(ds, num_frames=1, hflip=False)
    batch = collate_clips([clips[0], clips[1]])
    assert batch.images.shape[:2] == (2, 1)
    assert batch.obj_valid.sum().item() == 4 and bool(batch.annotated.all())


def test_missing_annotation_file_and_image(tmp_path):
    with pytest.raises(DataError, match=r"instances_train2017\.json: COCO annotation file not found"):
        COCO(root=tmp_path, split="train2017")
    _write(tmp_path)
    (tmp_path / "train2017" / "000000000002.jpg").unlink()
    with pytest.raises(DataError, match=r"000000000002\.jpg: missing image"):
        COCO(root=tmp_path, split="train2017")


def test_bad_json(tmp_path):
    ann = _write(tmp_path)
    ann.write_text('{"images": [')
    with pytest.raises(DataError, match=r"instances_train2017\.json: malformed JSON"):
        COCO(root=tmp_path, split="train2017")
    ann.write_text(json.dumps({"images": []}))
    with pytest.raises(DataError, match=r"instances_train2017\.json: not a COCO instances file"):
        COCO(root=tmp_path, split="train2017")


def _edit(ann, fn):
    data = json.loads(ann.read_text())
    fn(data)
    ann.write_text(json.dumps(data))


def test_annotation_of_unknown_image_or_category(tmp_path):
    ann = _write(tmp_path)
    _edit(ann, lambda d: d["annotations"][0].update(image_id=77))
    with pytest.raises(DataError, match=r"instances_train2017\.json: annotation 1 refers to image id 77"):
        COCO(root=tmp_path, split="train2017")
    ann = _write(tmp_path)
    _edit(ann, lambda d: d["annotations"][1].update(category_id=3))
    with pytest.raises(DataError, match=r"annotation 2 has category_id 3"):
        COCO(root=tmp_path, split="train2017")


def test_polygon_outside_the_image(tmp_path):
    ann = _write(tmp_path)
    _edit(ann, lambda d: d["annotations"][0].update(segmentation=[[1, 1, 80.5, 2, 20, 30]]))
    ds = COCO(root=tmp_path, split="train2017")  # indexing is lazy about pixels ...
    with pytest.raises(DataError, match=r"instances_train2017\.json: annotation 1 \(image 000000000001\.jpg\): "
                                        r"polygon vertex \(80\.5, 2\) outside the 56x40 image"):
        ds[0].frames[0]                          # ... decoding names the file and annotation
    # a fraction of a pixel beyond the border (as in real COCO polygons) is accepted
    _edit(ann, lambda d: d["annotations"][0].update(segmentation=[[0, 0, 56.4, 0, 56.4, 40.3]]))
    assert COCO(root=tmp_path, split="train2017")[0].frames[0].masks[0].sum() > 0


def test_rle_size_mismatch(tmp_path):
    ann = _write(tmp_path)
    _edit(ann, lambda d: d["annotations"][1]["segmentation"].update(size=[H + 1, W]))
    with pytest.raises(DataError, match=r"annotation 2 .*RLE size \[41, 56\] disagrees"):
        COCO(root=tmp_path, split="train2017")[0].frames[0]
