"""COCO instance segmentation as single-frame videos (image-level pre-training stages).

``dataset=coco dataset.root=/data/coco dataset.split=train2017`` reads the official layout::

    <root>/annotations/instances_<split>.json     (ann_file overrides it)
    <root>/<split>/<file_name>                     (image_dir overrides it)

and yields one ``VideoSample`` of one frame per image, the image-level stages' input (LIP
§4.1.1 pre-training on COCO; MaskProp's COCO Mask R-CNN, §4.4): ``ClipDataset`` with
``num_frames=1`` gives single-frame clips.

Conventions (what COCO, torchvision and detectron2 do, and our choice):

* Segmentations: polygons (``[[x0, y0, x1, y1, ...], ...]``, merged per instance),
  uncompressed RLE (``counts`` list, the format of crowd annotations) and compressed RLE
  (``counts`` string), decoded with pycocotools.
* Category ids are sparse (1..90 for 80 classes); they are mapped to contiguous labels 1..K in
  increasing id order (detectron2's ``thing_dataset_id_to_contiguous_id``, shifted by one because
  0 is the background of our detectors). ``categories`` maps label -> name and
  ``category_ids`` label -> original COCO id (to write COCO results back).
* ``iscrowd=1`` annotations are not instances: torchvision's ``references/detection`` drops them
  in training (``ConvertCocoPolysToMask``) and so does detectron2's ``DatasetMapper``; COCO's
  evaluation ignores detections that match a crowd region instead of counting them as false
  positives. We follow both: crowd annotations never become training instances, and their area
  is the frame's ``void`` mask (the data contract's "ignore" region, as DAVIS's 255), so a
  method that honours ``void`` does not learn crowds as background.
* Images without a non-crowd instance are dropped (``filter_empty=True``, torchvision's
  ``_coco_remove_images_without_annotations`` and detectron2's ``filter_empty_annotations``), as a
  detector trains on them for nothing; set it False to keep them.
* Object ids are 1..N in annotation order within each image (``meta["ann_ids"]`` holds the COCO
  annotation ids).

Bad input is a ``DataError`` naming the file: missing annotation file or image, malformed JSON
or missing top-level keys, an annotation of an image id the file does not list, an unknown
category, a polygon with a vertex outside the image (more than 1 px beyond its border: COCO's own
polygons stray a fraction of a pixel), an RLE whose size disagrees with the image.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pycocotools import mask as mask_utils

from vosbench.data.datasets.base import Problems, VideoDataset, VideoRecord, to_image_tensor
from vosbench.registry import DATASETS
from vosbench.structures import Frame
from vosbench.structures.masks import rle_decode
from vosbench.utils.io import DataError, read_image, read_json

#: vertices may stray this many pixels beyond the image border (real COCO polygons do, by < 1 px)
POLYGON_TOLERANCE = 1.0


def decode_coco_segmentation(seg: Any, size: tuple[int, int], where: str) -> np.ndarray:
    """One COCO ``segmentation`` (polygons, uncompressed or compressed RLE) -> ``bool[H, W]``.

    Raises:
        DataError: malformed segmentation, a polygon vertex outside the image (beyond
            ``POLYGON_TOLERANCE``), or an RLE of another size; the message starts with ``where``.
    """
    h, w = size
    if isinstance(seg, dict):
        try:
            return rle_decode(seg, size, where=where)
        except ValueError as e:
            raise DataError(str(e)) from e
    if not isinstance(seg, list) or not seg:
        raise DataError(f"{where}: segmentation must be a polygon list or an RLE dict, got {type(seg).__name__}")
    polys = []
    for poly in seg:
        if (not isinstance(poly, list) or len(poly) < 6 or len(poly) % 2
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in poly)):
            raise DataError(f"{where}: a polygon must be a flat list of >= 3 (x, y) numbers")
        xy = np.asarray(poly, dtype=np.float64).reshape(-1, 2)
        bad = ((xy[:, 0] < -POLYGON_TOLERANCE) | (xy[:, 0] > w + POLYGON_TOLERANCE)
               | (xy[:, 1] < -POLYGON_TOLERANCE) | (xy[:, 1] > h + POLYGON_TOLERANCE))
        if bad.any():
            x, y = xy[int(np.argmax(bad))]
            raise DataError(f"{where}: polygon vertex ({x:g}, {y:g}) outside the {w}x{h} image")
        polys.append([float(v) for v in poly])
    rles = mask_utils.frPyObjects(polys, h, w)
    return mask_utils.decode(mask_utils.merge(rles)).astype(bool)


@DATASETS.register("coco")
class COCO(VideoDataset):
    """COCO instances as single-frame videos (see the module docstring).

    Args (keyword-only):
        root: dataset folder; split: ``train2017`` / ``val2017`` / ...
        ann_file: instances JSON (default ``<root>/annotations/instances_<split>.json``).
        image_dir: image folder (default ``<root>/<split>``).
        task: ``"vis"`` (category labels, MaskProp's detector) or ``"vos"`` (objects with a
            first-frame reference, for a VOS method's image stage such as LIP's).
        filter_empty: drop images without a non-crowd instance (training default).
        resize_short: optional short-side resize of the frames.
    Yields:
        ``VideoSample(video_id=str(image id), frames=[Frame(masks bool[N, H, W], obj_ids 1..N,
        labels 1..K, void = crowd area or None)])``.
    """

    dataset_name = "coco"

    def __init__(self, *, root: str | Path, split: str = "train2017", ann_file: str | None = None,
                 image_dir: str | None = None, task: Literal["vis", "vos"] = "vis",
                 filter_empty: bool = True, resize_short: int | None = None,
                 _problems: Problems | None = None) -> None:
        if task not in ("vis", "vos"):
            raise ValueError(f"coco: task must be 'vis' or 'vos', got {task!r}")
        self.task = task  # type: ignore[misc]
        self.metric = "ytvis" if task == "vis" else "davis2017"  # type: ignore[misc]
        self._ann_file_arg, self._image_dir_arg = ann_file, image_dir
        self.filter_empty = filter_empty
        self.category_ids: dict[int, int] = {}
        super().__init__(root=root, split=split, resize_short=resize_short, _problems=_problems)

    @property
    def ann_file(self) -> Path:
        return (Path(self._ann_file_arg).expanduser() if self._ann_file_arg
                else self.root / "annotations" / f"instances_{self.split}.json")

    @property
    def image_dir(self) -> Path:
        return Path(self._image_dir_arg).expanduser() if self._image_dir_arg else self.root / self.split

    # ------------------------------------------------------------------ index
    def _index(self, problems: Problems) -> list[VideoRecord]:
        ann_path = self.ann_file
        if not ann_path.is_file():
            raise DataError(f"{ann_path}: COCO annotation file not found (expected "
                            f"<root>/annotations/instances_<split>.json or dataset.ann_file)")
        data = read_json(ann_path)
        if not isinstance(data, dict) or not all(isinstance(data.get(k), list)
                                                 for k in ("images", "annotations", "categories")):
            raise DataError(f"{ann_path}: not a COCO instances file (needs lists 'images', "
                            "'annotations' and 'categories')")
        cat_ids = []
        names = {}
        for c in data["categories"]:
            if not isinstance(c, dict) or not isinstance(c.get("id"), int):
                raise DataError(f"{ann_path}: category without an integer 'id': {c!r}")
            cat_ids.append(c["id"])
            names[c["id"]] = str(c.get("name", c["id"]))
        if len(set(cat_ids)) != len(cat_ids):
            raise DataError(f"{ann_path}: duplicate category ids")
        label_of = {cid: i for i, cid in enumerate(sorted(cat_ids), start=1)}
        self.categories = {label_of[cid]: names[cid] for cid in cat_ids}
        self.category_ids = {label: cid for cid, label in label_of.items()}

        images: dict[int, dict] = {}
        for im in data["images"]:
            if (not isinstance(im, dict) or not isinstance(im.get("id"), int)
                    or not isinstance(im.get("file_name"), str)
                    or not all(isinstance(im.get(k), int) and im[k] > 0 for k in ("height", "width"))):
                raise DataError(f"{ann_path}: image entry needs integer 'id', 'height', 'width' and "
                                f"a 'file_name': {str(im)[:120]}")
            if im["id"] in images:
                raise DataError(f"{ann_path}: duplicate image id {im['id']}")
            images[im["id"]] = im
        per_image: dict[int, list[dict]] = {i: [] for i in images}
        for a in data["annotations"]:
            if not isinstance(a, dict) or not isinstance(a.get("image_id"), int):
                raise DataError(f"{ann_path}: annotation without an integer 'image_id': {str(a)[:120]}")
            if a["image_id"] not in images:
                raise DataError(f"{ann_path}: annotation {a.get('id')} refers to image id "
                                f"{a['image_id']}, which is not in 'images'")
            if a.get("category_id") not in label_of:
                raise DataError(f"{ann_path}: annotation {a.get('id')} has category_id "
                                f"{a.get('category_id')!r}, not in 'categories'")
            if "segmentation" not in a:
                raise DataError(f"{ann_path}: annotation {a.get('id')} has no 'segmentation'")
            per_image[a["image_id"]].append(a)

        records = []
        for img_id in sorted(images):
            im = images[img_id]
            anns = per_image[img_id]
            instances = [a for a in anns if not a.get("iscrowd", 0)]
            if self.filter_empty and not instances:
                continue
            path = self.image_dir / im["file_name"]
            if not path.is_file():
                problems.add(f"{path}: missing image (image id {img_id} of {ann_path})")
                continue
            records.append(VideoRecord(
                video_id=str(img_id), frame_paths=[path], frame_names=[Path(im["file_name"]).stem],
                size=(im["height"], im["width"]),
                extra={"image_id": img_id, "ann_ids": [a.get("id") for a in instances],
                       "_instances": instances, "_crowd": [a for a in anns if a.get("iscrowd", 0)],
                       "_label_of": label_of, "_ann_file": str(ann_path)}))
        return records

    # ------------------------------------------------------------------ decoding
    def _masks(self, rec: VideoRecord, anns: list[dict]) -> np.ndarray:
        size = rec.size
        assert size is not None
        out = np.zeros((len(anns), *size), dtype=bool)
        for i, a in enumerate(anns):
            out[i] = decode_coco_segmentation(
                a["segmentation"], size,
                f"{rec.extra['_ann_file']}: annotation {a.get('id')} (image {rec.frame_paths[0].name})")
        return out

    def _read_frame(self, rec: VideoRecord, t: int) -> Frame:
        if t != 0:
            raise IndexError(f"coco image {rec.video_id} has one frame, asked for {t}")
        rgb = read_image(rec.frame_paths[0])
        if tuple(rgb.shape[:2]) != tuple(rec.size):
            raise DataError(f"{rec.frame_paths[0]}: image is {rgb.shape[0]}x{rgb.shape[1]} but "
                            f"{rec.extra['_ann_file']} says {rec.size[0]}x{rec.size[1]}")
        inst = rec.extra["_instances"]
        masks = self._masks(rec, inst)
        crowd = rec.extra["_crowd"]
        void = torch.from_numpy(self._masks(rec, crowd).any(0)) if crowd else None
        label_of = rec.extra["_label_of"]
        return Frame(
            image=to_image_tensor(rgb), index=0, name=rec.frame_names[0],
            masks=torch.from_numpy(masks),
            obj_ids=torch.arange(1, len(inst) + 1, dtype=torch.int64),
            labels=torch.tensor([label_of[a["category_id"]] for a in inst], dtype=torch.int64),
            void=void)

    def _read_labels_only(self, rec: VideoRecord, t: int):
        # ids are known from the index; masks only when a reference is built
        return list(range(1, len(rec.extra["_instances"]) + 1)), None


# ------------------------------------------------------------------------------------ writer
def mask_to_polygons(mask: np.ndarray) -> list[list[float]]:
    """``bool[H, W]`` -> COCO polygons (outer contours, >= 3 vertices each; pixel-corner coords)."""
    import cv2

    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    polys = []
    for c in contours:
        c = c.reshape(-1, 2).astype(np.float64)
        if len(c) >= 3:
            polys.append([float(v) for v in c.reshape(-1)])
    return polys


def write_coco_instances(root: str | Path, split: str, images: list[dict],
                         categories: dict[int, str]) -> Path:
    """Write a COCO-format folder (tests, ``benchmarks/paper_scale.py``): JPEG images under
    ``<root>/<split>/`` and ``<root>/annotations/instances_<split>.json``.

    Args:
        images: ``{"file_name": str, "image": uint8[H, W, 3], "instances": [{"mask": bool[H, W],
            "category_id": int, "iscrowd": 0|1, "format": "polygon"|"rle"|"rle_list",
            "segmentation": optional, written as is}]}``; ``polygon`` traces the mask's outer
            contours (approximate), ``rle`` is compressed (string counts), ``rle_list``
            uncompressed (COCO's crowd format); both RLEs are exact.
        categories: COCO category id -> name.
    Returns:
        the annotation file.
    """
    import cv2

    from vosbench.structures.masks import rle_encode
    from vosbench.utils.io import write_json

    root = Path(root)
    (root / split).mkdir(parents=True, exist_ok=True)
    out_images, anns = [], []
    for img_id, im in enumerate(images, start=1):
        rgb = np.asarray(im["image"], dtype=np.uint8)
        h, w = rgb.shape[:2]
        cv2.imwrite(str(root / split / im["file_name"]), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        out_images.append({"id": img_id, "file_name": im["file_name"], "height": h, "width": w})
        for inst in im.get("instances", []):
            m = np.asarray(inst["mask"], dtype=bool)
            fmt = inst.get("format", "polygon")
            if "segmentation" in inst:  # given as is (e.g. an exact polygon)
                seg = inst["segmentation"]
            elif fmt == "polygon":
                seg: Any = mask_to_polygons(m)
            elif fmt == "rle":
                r = rle_encode(m[None])[0]
                seg = {"size": [h, w], "counts": r["counts"] if isinstance(r["counts"], str)
                       else r["counts"].decode("ascii")}
            elif fmt == "rle_list":
                flat = m.T.reshape(-1)  # column-major, as COCO
                change = np.flatnonzero(np.diff(flat.astype(np.int8))) + 1
                bounds = np.concatenate([[0], change, [flat.size]])
                counts = np.diff(bounds).tolist()
                if flat[0]:
                    counts = [0] + counts
                seg = {"size": [h, w], "counts": counts}
            else:
                raise ValueError(f"write_coco_instances: unknown format {fmt!r}")
            ys, xs = np.nonzero(m)
            bbox = ([float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1), float(ys.max() - ys.min() + 1)]
                    if len(xs) else [0.0, 0.0, 0.0, 0.0])
            anns.append({"id": len(anns) + 1, "image_id": img_id, "category_id": int(inst["category_id"]),
                         "iscrowd": int(inst.get("iscrowd", 0)), "segmentation": seg,
                         "area": float(m.sum()), "bbox": bbox})
    ann_file = root / "annotations" / f"instances_{split}.json"
    ann_file.parent.mkdir(parents=True, exist_ok=True)
    write_json(ann_file, {"images": out_images, "annotations": anns,
                          "categories": [{"id": int(k), "name": v} for k, v in categories.items()]})
    return ann_file


__all__ = ["COCO", "decode_coco_segmentation", "POLYGON_TOLERANCE", "mask_to_polygons",
           "write_coco_instances"]
