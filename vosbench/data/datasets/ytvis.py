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

``parse_ytvis_json`` is THE reader of the JSON for the loader, ``check_dataset`` and ``eval.py``
(ground truth; ``vosbench.metrics.vis``): every field is type-checked (ids are integers, sizes
positive, ``segmentations`` one per frame, each null, an RLE of the video's size whose counts add
up to H x W, or polygons), so a file one tool rejects no other tool scores. ``check_rle``
validates one RLE (a garbage compressed ``counts`` string decodes to nonsense in pycocotools
without an error).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pycocotools import mask as mask_utils

from vosbench.data.datasets.base import Problems, VideoDataset, VideoRecord, to_image_tensor
from vosbench.registry import DATASETS
from vosbench.structures import Frame
from vosbench.structures.masks import rle_decode
from vosbench.utils.io import DataError, image_header, read_image, read_json


# ------------------------------------------------------------------------------------ RLE
def rle_string_counts(counts: str | bytes) -> list[int] | None:
    """Run lengths of a COCO compressed RLE string (pycocotools ``rleFrString``), None if malformed.

    Each count is a little-endian base-32 number in characters ``'0'..'o'`` (5 bits + a
    continuation bit), delta-coded against the count two places back from the third on.
    """
    if isinstance(counts, str):
        try:
            counts = counts.encode("ascii")
        except UnicodeEncodeError:
            return None
    out: list[int] = []
    p, n = 0, len(counts)
    while p < n:
        x = k = 0
        more = True
        while more:
            if p >= n:
                return None  # the string ends inside a number
            c = counts[p] - 48
            if not 0 <= c <= 63:
                return None
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        if len(out) > 2:
            x += out[-2]
        out.append(x)
    return out


def check_rle(seg: Any, size: tuple[int, int] | None, where: str) -> tuple[int, int]:
    """Validate one RLE dict (``{"size": [H, W], "counts": str | list}``); returns (H, W).

    ``DataError`` naming ``where`` for a malformed dict, a size other than ``size``, or counts
    that are not non-negative run lengths adding up to exactly H x W.
    """
    if not isinstance(seg, dict) or "size" not in seg or "counts" not in seg:
        raise DataError(f"{where}: malformed RLE (need 'size' [H, W] and 'counts')")
    hw = seg["size"]
    if not (isinstance(hw, (list, tuple)) and len(hw) == 2 and all(_is_int(v) and v >= 0 for v in hw)):
        raise DataError(f"{where}: RLE 'size' must be [H, W] (two non-negative integers), got {hw!r}")
    h, w = int(hw[0]), int(hw[1])
    if size is not None and (h, w) != tuple(size):
        raise DataError(f"{where}: RLE mask size {[h, w]} disagrees with the video size {list(size)}")
    c = seg["counts"]
    if isinstance(c, list):
        if not all(_is_int(v) and v >= 0 for v in c):
            raise DataError(f"{where}: uncompressed RLE counts must be non-negative integers")
        runs = c
    elif isinstance(c, (str, bytes)):
        runs = rle_string_counts(c)
        if runs is None:
            raise DataError(f"{where}: malformed compressed RLE counts string")
        if any(v < 0 for v in runs):
            raise DataError(f"{where}: compressed RLE counts decode to negative run lengths (garbage)")
    else:
        raise DataError(f"{where}: RLE counts must be a string or a list, got {type(c).__name__}")
    if sum(runs) != h * w:
        raise DataError(f"{where}: RLE run lengths add up to {sum(runs)} pixels, the mask has "
                        f"{h} x {w} = {h * w}")
    return h, w


def check_polygons(seg: Any, where: str) -> None:
    """Polygons: a list of flat [x0, y0, x1, y1, ...] lists of >= 3 points."""
    if not all(isinstance(p, list) and len(p) >= 6 and len(p) % 2 == 0 and all(_is_num(v) for v in p)
               for p in seg):
        raise DataError(f"{where}: malformed polygon segmentation (need lists of >= 3 x, y pairs)")


def check_segmentation(seg: Any, size: tuple[int, int], where: str, *, rle: bool = True) -> None:
    """One per-frame segmentation: null/empty, an RLE of ``size`` (validated when ``rle``) or polygons."""
    if seg is None or seg == [] or seg == {}:
        return
    if isinstance(seg, dict):
        if rle:
            check_rle(seg, size, where)
        elif "size" in seg and _size_of(seg) != tuple(size):
            raise DataError(f"{where}: RLE size {list(seg['size'])} disagrees with the video size "
                            f"{list(size)}")
        return
    if isinstance(seg, list):
        check_polygons(seg, where)
        return
    raise DataError(f"{where}: segmentation must be an RLE dict, polygons or null, got {type(seg).__name__}")


def _size_of(seg: dict) -> tuple | None:
    try:
        return tuple(int(x) for x in seg["size"])
    except (TypeError, ValueError):
        return None


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) or isinstance(v, float) and v.is_integer()


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _decode_segmentation(seg: Any, size: tuple[int, int], where: str) -> np.ndarray:
    """RLE (compressed / uncompressed) or polygons -> bool[H, W] (validated first)."""
    check_segmentation(seg, size, where)
    if isinstance(seg, dict):
        try:
            return rle_decode(seg, size, where=where)
        except ValueError as e:
            raise DataError(str(e)) from e
    h, w = size
    try:
        rles = mask_utils.frPyObjects([list(map(float, p)) for p in seg], h, w)
        return mask_utils.decode(mask_utils.merge(rles)).astype(bool)
    except Exception as e:
        raise DataError(f"{where}: malformed polygon segmentation ({e})") from e


# ------------------------------------------------------------------------------------ JSON
@dataclass
class YTVISJson:
    """A validated YouTube-VIS json in the per-video layout.

    Attributes:
        path: the file.
        categories: category id -> name.
        videos: ``{id: int, file_names: [str], height: int, width: int}`` per video, file order.
        annotations: per-video instances ``{id, video_id, category_id, segmentations[T],
            areas[T] | None, iscrowd, instance_id}``; None for valid/test files (no annotations).
    """

    path: Path
    categories: dict[int, str] = field(default_factory=dict)
    videos: list[dict] = field(default_factory=list)
    annotations: list[dict] | None = None


def _int_field(d: dict, key: str, where: str, problems: Problems, *, positive: bool = False):
    v = d.get(key)
    if not _is_int(v) or (positive and v <= 0):
        problems.add(f"{where}: '{key}' must be {'a positive' if positive else 'an'} integer, got {v!r}")
        return None
    return int(v)


def parse_ytvis_json(data: Any, path: Path, problems: Problems | None = None, *,
                     validate_rle: bool = False, require_files: bool = True) -> YTVISJson:
    """Validate a loaded YouTube-VIS json (per-video or per-image CocoVID layout).

    Args:
        data: the ``json.load`` result.
        path: the file (named in every message).
        problems: collect problems (check mode) instead of raising at the first.
        validate_rle: also decode every compressed RLE string and check its run lengths
            (``check_rle``; the evaluator does, the loader checks each RLE when it decodes it).
        require_files: videos must list their ``file_names`` (the loader); the evaluator needs
            only ``length`` (or none: then segmentation lists are not length-checked).
    Returns:
        ``YTVISJson`` (entries with problems are left out).
    """
    problems = problems or Problems(collect=False)
    out = YTVISJson(Path(path))
    if not isinstance(data, dict) or not isinstance(data.get("videos"), list):
        problems.add(f"{path}: not a YouTube-VIS json (no 'videos' list"
                     + (f"; top level is a {type(data).__name__})" if not isinstance(data, dict) else ")"))
        return out
    cats = data.get("categories", [])
    if not isinstance(cats, list):
        problems.add(f"{path}: 'categories' must be a list, got {type(cats).__name__}")
        cats = []
    for n, c in enumerate(cats):
        where = f"{path}: category {n}"
        cid = _int_field(c, "id", where, problems) if isinstance(c, dict) else problems.add(
            f"{where}: must be an object, got {type(c).__name__}")
        if cid is None:
            continue
        if cid in out.categories:
            problems.add(f"{where}: duplicate category id {cid}")
        out.categories[cid] = str(c.get("name", cid))
    if "images" in data and not any(isinstance(v, dict) and "file_names" in v for v in data["videos"]):
        videos, anns = _from_cocovid(data, Path(path), problems)
    else:
        videos, anns = data["videos"], data.get("annotations")
    seen: dict[int, dict] = {}
    for n, v in enumerate(videos):
        where = f"{path}: video entry {n}"
        if not isinstance(v, dict):
            problems.add(f"{where}: must be an object, got {type(v).__name__}")
            continue
        vid = _int_field(v, "id", where, problems)
        if vid is None:
            continue
        where = f"{path}: video {vid}"
        names = v.get("file_names")
        if (require_files or names is not None) and (
                not isinstance(names, list) or not names
                or not all(isinstance(x, str) and x for x in names)):
            problems.add(f"{where}: 'file_names' must be a non-empty list of file names")
            continue
        h = _int_field(v, "height", where, problems, positive=True)
        w = _int_field(v, "width", where, problems, positive=True)
        if h is None or w is None:
            continue
        length = None if names is None else len(names)
        if "length" in v:
            if not _is_int(v["length"]) or (length is not None and int(v["length"]) != length):
                problems.add(f"{where}: has length {v['length']!r} but "
                             f"{length if length is not None else 'no'} file_names")
                continue
            length = int(v["length"])
        if vid in seen:
            problems.add(f"{where}: duplicate video id")
            continue
        seen[vid] = {"id": vid, "file_names": list(names or []), "height": h, "width": w,
                     "length": length}
    out.videos = list(seen.values())
    if anns is None:
        return out
    if not isinstance(anns, list):
        problems.add(f"{path}: 'annotations' must be a list, got {type(anns).__name__}")
        out.annotations = []
        return out
    out.annotations = []
    inst_seen: set[tuple[int, int]] = set()
    for n, a in enumerate(anns):
        if not isinstance(a, dict):
            problems.add(f"{path}: annotation entry {n} must be an object, got {type(a).__name__}")
            continue
        where = f"{path}: annotation {a.get('id', n)}"
        vid = _int_field(a, "video_id", where, problems)
        cat = _int_field(a, "category_id", where, problems)
        segs = a.get("segmentations")
        if vid is None or cat is None:
            continue
        if not isinstance(segs, list):
            problems.add(f"{where}: 'segmentations' must be a list (one entry per frame), got "
                         f"{type(segs).__name__}")
            continue
        if vid not in seen:
            problems.add(f"{where}: refers to unknown video {vid}")
            continue
        if out.categories and cat not in out.categories:
            problems.add(f"{where}: unknown category {cat}")
            continue
        v = seen[vid]
        T, size = v["length"], (v["height"], v["width"])
        if T is not None and len(segs) != T:
            problems.add(f"{where}: {len(segs)} segmentations for a video of {T} frames")
            continue
        bad = False
        for t, sg in enumerate(segs):
            try:
                check_segmentation(sg, size, f"{where} frame {t}", rle=validate_rle)
            except DataError as e:
                problems.add(str(e))
                bad = True
                break
        if bad:
            continue
        areas = a.get("areas")
        if areas is not None and (not isinstance(areas, list) or len(areas) != len(segs)
                                  or not all(x is None or _is_num(x) for x in areas)):
            problems.add(f"{where}: 'areas' must be a list of {len(segs)} numbers or nulls")
            continue
        iscrowd = a.get("iscrowd", 0)
        if iscrowd not in (0, 1, True, False):
            problems.add(f"{where}: 'iscrowd' must be 0 or 1, got {iscrowd!r}")
            continue
        raw_oid = a.get("instance_id", a.get("id", n + 1))
        if not _is_int(raw_oid):
            problems.add(f"{where}: instance id must be an integer, got {raw_oid!r}")
            continue
        oid = int(raw_oid)
        if (vid, oid) in inst_seen:
            problems.add(f"{where}: duplicate instance id {oid} in video {vid}")
            continue
        inst_seen.add((vid, oid))
        out.annotations.append({"id": a.get("id", oid), "instance_id": oid, "video_id": vid,
                                "category_id": cat, "segmentations": segs, "areas": areas,
                                "iscrowd": int(bool(iscrowd))})
    return out


def _from_cocovid(data: dict, ann_path: Path, problems: Problems):
    """Per-image CocoVID layout -> per-video layout (entries type-checked)."""
    images = data["images"]
    if not isinstance(images, list):
        problems.add(f"{ann_path}: 'images' must be a list, got {type(images).__name__}")
        images = []
    by_video: dict[int, list[dict]] = {}
    for n, im in enumerate(images):
        where = f"{ann_path}: image entry {n}"
        if not isinstance(im, dict):
            problems.add(f"{where}: must be an object, got {type(im).__name__}")
            continue
        ok = [_int_field(im, k, where, problems) for k in ("id", "video_id")]
        if None in ok or not isinstance(im.get("file_name"), str):
            if None not in ok:
                problems.add(f"{where}: 'file_name' must be a string")
            continue
        by_video.setdefault(int(im["video_id"]), []).append(im)
    videos, pos = [], {}
    for n, v in enumerate(data["videos"]):
        if not isinstance(v, dict) or not _is_int(v.get("id")):
            problems.add(f"{ann_path}: video entry {n}: needs an integer 'id'")
            continue
        ims = sorted(by_video.get(int(v["id"]), []), key=lambda im: im.get("frame_id", 0)
                     if _is_int(im.get("frame_id", 0)) else 0)
        if not ims:
            problems.add(f"{ann_path}: video {v['id']} has no images")
            continue
        for t, im in enumerate(ims):
            pos[int(im["id"])] = (int(v["id"]), t)
        videos.append({"id": v["id"], "file_names": [im["file_name"] for im in ims],
                       "height": v.get("height", ims[0].get("height")),
                       "width": v.get("width", ims[0].get("width"))})
    if "annotations" not in data:
        return videos, None
    anns = data["annotations"]
    if not isinstance(anns, list):
        problems.add(f"{ann_path}: 'annotations' must be a list, got {type(anns).__name__}")
        return videos, []
    lengths = {int(v["id"]): len(v["file_names"]) for v in videos}
    inst: dict[tuple[int, int], dict] = {}
    for n, a in enumerate(anns):
        where = f"{ann_path}: annotation {a.get('id', n) if isinstance(a, dict) else n}"
        if not isinstance(a, dict) or not _is_int(a.get("image_id")):
            problems.add(f"{where}: needs an integer 'image_id'")
            continue
        if int(a["image_id"]) not in pos:
            problems.add(f"{where}: refers to unknown image {a['image_id']}")
            continue
        vid, t = pos[int(a["image_id"])]
        raw = a.get("instance_id", a.get("id"))
        if not _is_int(raw):
            problems.add(f"{where}: 'instance_id' must be an integer, got {raw!r}")
            continue
        key = (vid, int(raw))
        e = inst.setdefault(key, {"id": key[1], "instance_id": key[1], "video_id": vid,
                                  "category_id": a.get("category_id"), "iscrowd": a.get("iscrowd", 0),
                                  "segmentations": [None] * lengths[vid], "areas": [None] * lengths[vid]})
        e["segmentations"][t] = a.get("segmentation")
        e["areas"][t] = a.get("area")
    return videos, list(inst.values())


# ------------------------------------------------------------------------------------ loader
class _YTVISBase(VideoDataset):
    task = "vis"
    metric = "ytvis"
    dataset_name = "ytvis"

    def __init__(self, *, root: str | Path, split: str = "train", ann_file: str | None = None,
                 image_dir: str | None = None, resize_short: int | None = None,
                 _problems: Problems | None = None) -> None:
        self.ann_file = ann_file
        self.image_dir = image_dir
        self.has_annotations = False
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
        js = parse_ytvis_json(read_json(ann_path), ann_path, problems)
        self.categories = dict(js.categories)
        self.has_annotations = js.annotations is not None
        recs: dict[int, VideoRecord] = {}
        for v in js.videos:
            vid, names = v["id"], v["file_names"]
            paths = [img_dir / n for n in names]
            for p in paths:
                if not p.is_file():
                    problems.add(f"{p}: missing frame (video {vid} in {ann_path.name})")
                    break
            video_name = Path(names[0]).parent.name if names else str(vid)
            recs[vid] = VideoRecord(str(vid), paths, [Path(n).stem for n in names],
                                    size=(v["height"], v["width"]),
                                    extra={"ytvis_id": vid, "video_name": video_name,
                                           "areas": {}, "iscrowd": {}, "ann_ids": {}, "_instances": {},
                                           "_ann_path": str(ann_path)})
        for a in js.annotations or []:
            rec = recs[a["video_id"]]
            oid = a["instance_id"]
            rec.extra["_instances"][oid] = (a["category_id"], a["segmentations"])
            rec.extra["areas"][oid] = a["areas"]
            rec.extra["iscrowd"][oid] = a["iscrowd"]
            rec.extra["ann_ids"][oid] = a["id"]
        return list(recs.values())

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
            m = _decode_segmentation(seg, rec.size, f"{rec.extra['_ann_path']}: video {rec.video_id} "
                                                    f"instance {oid} frame {t}")
            ids.append(oid)
            labels.append(cat)
            masks.append(torch.from_numpy(m))
        fr.obj_ids = torch.tensor(ids, dtype=torch.int64)
        fr.labels = torch.tensor(labels, dtype=torch.int64)
        fr.masks = torch.stack(masks) if masks else torch.zeros((0, *rec.size), dtype=torch.bool)
        return fr

    def _check_frame(self, rec: VideoRecord, t: int, problems: Problems,
                     level: str = "full") -> tuple[int, int] | None:
        if level != "header":
            return super()._check_frame(rec, t, problems, level)
        hdr = problems.guard(lambda: image_header(rec.frame_paths[t]))
        if hdr is not None and hdr[2] != rec.size:
            problems.add(f"{rec.frame_paths[t]}: image is {hdr[2][0]}x{hdr[2][1]}, the json says "
                         f"{rec.size[0]}x{rec.size[1]}")
        return None if hdr is None else hdr[2]

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
