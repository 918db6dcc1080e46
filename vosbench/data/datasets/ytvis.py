"""YouTube-VIS 2019 / 2021 loader (OVIS uses the same layout).

On disk::

    root/<split>.json                      (or ``ann_file=``)
    root/<split>/JPEGImages/<video>/*.jpg   or  root/JPEGImages/<video>/*.jpg  (or ``image_dir=``)

JSON layouts accepted:

* per video (the official one): ``videos[{id, file_names, width, height, length}]``,
  ``annotations[{id, video_id, category_id, segmentations[T], areas[T], bboxes[T], iscrowd}]``
  where each segmentation is compressed RLE (str counts), uncompressed RLE (list counts),
  polygons, or null when the instance is absent;
* per image (CocoVID, as mmtracking writes it): ``videos[{id, name}]``,
  ``images[{id, video_id, file_name, frame_id, width, height}]``,
  ``annotations[{video_id, image_id, instance_id, category_id, segmentation, area, iscrowd}]``.

Masks exist only for the listed (sampled) frames. Valid/test JSONs have no ``annotations``:
their samples are inference-only (``Frame.masks is None``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from pycocotools import mask as mask_utils

from vosbench.data.datasets.base import Problems, VideoDataset, VideoRecord, to_image_tensor
from vosbench.registry import DATASETS
from vosbench.structures import Frame
from vosbench.structures.masks import rle_decode
from vosbench.utils.io import DataError, read_image, read_json


def _decode_segmentation(seg: Any, size: tuple[int, int], where: str) -> np.ndarray:
    """RLE (compressed / uncompressed) or polygons -> bool[H, W]."""
    if isinstance(seg, dict):
        return rle_decode(seg, size, where=where)
    if isinstance(seg, list):  # polygons
        h, w = size
        try:
            rles = mask_utils.frPyObjects([list(map(float, p)) for p in seg], h, w)
            return mask_utils.decode(mask_utils.merge(rles)).astype(bool)
        except Exception as e:
            raise DataError(f"{where}: malformed polygon segmentation ({e})") from e
    raise DataError(f"{where}: segmentation must be an RLE dict, polygons or null, got {type(seg).__name__}")


class _YTVISBase(VideoDataset):
    task = "vis"
    metric = "ytvis"
    dataset_name = "ytvis"

    def __init__(self, *, root: str | Path, split: str = "train", ann_file: str | None = None,
                 image_dir: str | None = None, resize_short: int | None = None,
                 _problems: Problems | None = None) -> None:
        self.ann_file = ann_file
        self.image_dir = image_dir
        super().__init__(root=root, split=split, resize_short=resize_short, _problems=_problems)

    # -- indexing -------------------------------------------------------------------------------
    def _paths(self) -> tuple[Path, Path]:
        ann = Path(self.ann_file) if self.ann_file else self.root / f"{self.split}.json"
        if not ann.is_absolute():
            ann = self.root / ann
        if self.image_dir:
            img = Path(self.image_dir)
            img = img if img.is_absolute() else self.root / img
        else:
            cands = [self.root / self.split / "JPEGImages", self.root / "JPEGImages"]
            img = next((c for c in cands if c.is_dir()), cands[-1])
        return ann, img

    def _index(self, problems: Problems) -> list[VideoRecord]:
        ann_path, img_dir = self._paths()
        data = read_json(ann_path)
        if not isinstance(data, dict) or "videos" not in data:
            problems.add(f"{ann_path}: not a YouTube-VIS json (no 'videos' list)")
            return []
        self.categories = {int(c["id"]): str(c.get("name", c["id"])) for c in data.get("categories", [])}
        if "images" in data and not any("file_names" in v for v in data["videos"]):
            videos, anns = self._from_cocovid(data, ann_path, problems)
        else:
            videos, anns = data["videos"], data.get("annotations")
        self.has_annotations = anns is not None
        recs: dict[int, VideoRecord] = {}
        for v in videos:
            try:
                vid, names = int(v["id"]), list(v["file_names"])
                size = (int(v["height"]), int(v["width"]))
            except (KeyError, TypeError, ValueError) as e:
                problems.add(f"{ann_path}: video entry {v.get('id', '?') if isinstance(v, dict) else v} "
                             f"lacks id/file_names/height/width ({e})")
                continue
            if "length" in v and int(v["length"]) != len(names):
                problems.add(f"{ann_path}: video {vid} has length {v['length']} but {len(names)} file_names")
            paths = [img_dir / n for n in names]
            for p in paths:
                if not p.is_file():
                    problems.add(f"{p}: missing frame (video {vid} in {ann_path.name})")
                    break
            video_name = Path(names[0]).parent.name if names else str(vid)
            recs[vid] = VideoRecord(str(vid), paths, [Path(n).stem for n in names], size=size,
                                    extra={"ytvis_id": vid, "video_name": video_name,
                                           "areas": {}, "iscrowd": {}, "ann_ids": {}, "_instances": {}})
        for a in anns or []:
            where = f"{ann_path}: annotation {a.get('id', '?')}"
            try:
                vid, cat = int(a["video_id"]), int(a["category_id"])
                segs = a["segmentations"]
            except (KeyError, TypeError, ValueError) as e:
                problems.add(f"{where}: lacks video_id/category_id/segmentations ({e})")
                continue
            if vid not in recs:
                problems.add(f"{where}: refers to unknown video {vid}")
                continue
            if self.categories and cat not in self.categories:
                problems.add(f"{where}: unknown category {cat}")
                continue
            rec = recs[vid]
            T = len(rec.frame_paths)
            if len(segs) != T:
                problems.add(f"{where}: {len(segs)} segmentations for a video of {T} frames")
                continue
            for t, s in enumerate(segs):
                if isinstance(s, dict) and "size" in s and tuple(int(x) for x in s["size"]) != rec.size:
                    problems.add(f"{where} frame {t}: RLE size {list(s['size'])} disagrees with the video "
                                 f"size {list(rec.size)}")
                    break
            oid = int(a.get("instance_id", a.get("id", len(rec.extra["_instances"]) + 1)))
            rec.extra["_instances"][oid] = (cat, segs)
            rec.extra["areas"][oid] = a.get("areas")
            rec.extra["iscrowd"][oid] = int(a.get("iscrowd", 0))
            rec.extra["ann_ids"][oid] = a.get("id", oid)
        return list(recs.values())

    @staticmethod
    def _from_cocovid(data: dict, ann_path: Path, problems: Problems):
        """Per-image CocoVID layout -> per-video layout."""
        images = data["images"]
        by_video: dict[int, list[dict]] = {}
        for im in images:
            by_video.setdefault(int(im["video_id"]), []).append(im)
        videos, pos = [], {}
        for v in data["videos"]:
            ims = sorted(by_video.get(int(v["id"]), []), key=lambda im: int(im.get("frame_id", 0)))
            if not ims:
                problems.add(f"{ann_path}: video {v['id']} has no images")
                continue
            for t, im in enumerate(ims):
                pos[int(im["id"])] = (int(v["id"]), t)
            videos.append({"id": v["id"], "file_names": [im["file_name"] for im in ims],
                           "height": v.get("height", ims[0]["height"]), "width": v.get("width", ims[0]["width"])})
        if "annotations" not in data:
            return videos, None
        lengths = {int(v["id"]): len(v["file_names"]) for v in videos}
        inst: dict[tuple[int, int], dict] = {}
        for a in data["annotations"]:
            if int(a["image_id"]) not in pos:
                problems.add(f"{ann_path}: annotation {a.get('id', '?')} refers to unknown image {a['image_id']}")
                continue
            vid, t = pos[int(a["image_id"])]
            key = (vid, int(a.get("instance_id", a["id"])))
            e = inst.setdefault(key, {"id": key[1], "instance_id": key[1], "video_id": vid,
                                      "category_id": a["category_id"], "iscrowd": a.get("iscrowd", 0),
                                      "segmentations": [None] * lengths[vid], "areas": [None] * lengths[vid]})
            e["segmentations"][t] = a["segmentation"]
            e["areas"][t] = a.get("area")
        return videos, list(inst.values())

    # -- decoding ----------------------------------------------------------------------------------
    def _read_frame(self, rec: VideoRecord, t: int) -> Frame:
        rgb = read_image(rec.frame_paths[t])
        if tuple(rgb.shape[:2]) != rec.size:
            raise DataError(f"{rec.frame_paths[t]}: image is {rgb.shape[0]}x{rgb.shape[1]}, the json says "
                            f"{rec.size[0]}x{rec.size[1]}")
        fr = Frame(image=to_image_tensor(rgb), index=t, name=rec.frame_names[t])
        if not self.has_annotations:
            return fr
        ids, labels, masks = [], [], []
        for oid, (cat, segs) in rec.extra["_instances"].items():
            seg = segs[t]
            if not seg:
                continue
            m = _decode_segmentation(seg, rec.size, f"video {rec.video_id} instance {oid} frame {t}")
            ids.append(oid)
            labels.append(cat)
            masks.append(torch.from_numpy(m))
        fr.obj_ids = torch.tensor(ids, dtype=torch.int64)
        fr.labels = torch.tensor(labels, dtype=torch.int64)
        fr.masks = torch.stack(masks) if masks else torch.zeros((0, *rec.size), dtype=torch.bool)
        return fr

    def _read_labels_only(self, rec: VideoRecord, t: int):
        return [oid for oid, (_, segs) in rec.extra["_instances"].items() if segs[t]], None


@DATASETS.register("ytvis2019")
class YTVIS2019(_YTVISBase):
    """YouTube-VIS 2019 (40 categories). See the module docstring for the layout."""

    dataset_name = "ytvis2019"


@DATASETS.register("ytvis2021")
class YTVIS2021(_YTVISBase):
    """YouTube-VIS 2021 (and OVIS, which shares the layout)."""

    dataset_name = "ytvis2021"
