"""Attributes of the synthetic videos, derived from the generator's own scene description.

``vosbench.data.synthetic.render_video`` knows what happens in each video: where every shape is,
how large it is, how much of it is in the frame and how much of that is visible (not painted
over by a shape in front of it), when each annotated object first shows, which unannotated
shapes copy an annotated one, and which objects fade. It records that as a *scene description*
(``info["scene"]``, written to ``scenes_<split>.json``) and tags each video from it with the
rules below, then writes the tags as a DAVIS ``db_info.yml`` (``Annotations/db_info.yml`` for the
DAVIS-2017 layout, ``db_info.yml`` beside the json for YouTube-VIS), so the per-attribute
analysis of DAVIS-2016 (``vosbench.bench.stats``) runs unchanged on the built-in data.

Rules (an attribute holds for a video when at least one annotated, visible object meets it;
thresholds are module constants):

* ``OCC`` occlusion: in some frame where at least ``OCC_MIN_AREA_PX`` pixels of the object lie
  inside the frame, at least ``OCC_HIDDEN_FRACTION`` (25 %) of those pixels are hidden by shapes
  painted in front of it (annotated or not). Leaving the frame is not occlusion.
* ``FM`` fast motion: the object's centre moves on average at least ``FM_WIDTH_FRACTION``
  (10 %) of the frame width per frame over the frames it exists in. The generator's fast movers
  draw a speed of 12-20 % of the width, the others 3.5-8 % (both times ``motion_scale``), and a
  random acceleration is added, so the tag follows the measured motion, not the draw. (DAVIS
  tags FM above 20 px per frame at 854 px width, 2.3 %: every synthetic object would qualify.)
* ``SV`` scale variation: the ratio of the object's smallest to largest area over its frames,
  from the generator's radius (``(min r / max r)^2``), is below ``SV_AREA_RATIO`` (0.5, the
  DAVIS-2016 threshold on bounding-box areas).
* ``LE`` late entry: the object is first visible after frame 0, so its reference mask is on a
  later frame (it entered late, or it was hidden behind another shape at frame 0).
* ``LA`` look-alike distractor: an unannotated copy of an annotated object (same shape and
  pattern, tint shifted) is visible with at least ``LA_MIN_VISIBLE_PX`` pixels in some frame.
* ``FADE`` fading: an annotated object was painted with alpha < 1 in at least one frame (option
  ``fade``; ``fades_<split>.json`` lists the episodes).

``eval_t`` is True for every synthetic sequence (the DAVIS-2016 exclusions were a manual choice
for real footage).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

OCC_HIDDEN_FRACTION = 0.25
OCC_MIN_AREA_PX = 16
FM_WIDTH_FRACTION = 0.10
SV_AREA_RATIO = 0.5
LA_MIN_VISIBLE_PX = 16

#: Attribute codes in file order, with their meaning (written to db_info.yml).
ATTRIBUTES = {
    "OCC": f"occlusion: >= {OCC_HIDDEN_FRACTION:.0%} of an object's in-frame area hidden by a shape in front",
    "FM": f"fast motion: mean centre motion >= {FM_WIDTH_FRACTION:.0%} of the width per frame",
    "SV": f"scale variation: smallest / largest area < {SV_AREA_RATIO:g}",
    "LE": "late entry: an object first visible after frame 0",
    "LA": "look-alike distractor: an unannotated copy of an annotated object is visible",
    "FADE": "fading: an object painted almost transparent for a few frames",
}

SCENES_FILE = "scenes_{split}.json"


def object_attributes(obj: dict, scene: dict) -> list[str]:
    """The attributes one annotated object of a scene description meets (``ATTRIBUTES`` order).

    Args:
        obj: an entry of ``scene["objects"]``: ``area`` / ``visible`` (pixels per frame: inside
            the frame / visible), ``cx`` / ``cy`` / ``scale`` (per frame), ``start`` (first frame
            the shape exists), ``first_visible``, ``faded_frames``.
        scene: the video's description (``width``).
    """
    out = []
    area = np.asarray(obj["area"], np.float64)
    vis = np.asarray(obj["visible"], np.float64)
    big = area >= OCC_MIN_AREA_PX
    if np.any(big & (area - vis >= OCC_HIDDEN_FRACTION * area)):
        out.append("OCC")
    s = int(obj["start"])
    cx, cy = np.asarray(obj["cx"][s:], np.float64), np.asarray(obj["cy"][s:], np.float64)
    if cx.size > 1 and np.hypot(np.diff(cx), np.diff(cy)).mean() >= FM_WIDTH_FRACTION * scene["width"]:
        out.append("FM")
    r = np.asarray(obj["scale"][s:], np.float64)
    if r.size and (r.min() / r.max()) ** 2 < SV_AREA_RATIO:
        out.append("SV")
    if int(obj["first_visible"]) > 0:
        out.append("LE")
    if obj.get("faded_frames"):
        out.append("FADE")
    return out


def scene_attributes(scene: dict) -> list[str]:
    """The attribute codes of one video (``ATTRIBUTES`` order), from its scene description."""
    found = {a for o in scene["objects"] for a in object_attributes(o, scene)}
    if scene["objects"] and any(d.get("look_alike_of") is not None
                                and max(d["visible"], default=0) >= LA_MIN_VISIBLE_PX
                                for d in scene["distractors"]):
        found.add("LA")
    return [a for a in ATTRIBUTES if a in found]


def db_info_path(root: str | Path, fmt: str) -> Path:
    """Where the generator writes the tags: the DAVIS place, or beside the YouTube-VIS json."""
    return Path(root) / ("Annotations/db_info.yml" if fmt == "davis2017" else "db_info.yml")


def write_db_info(root: str | Path, fmt: str, split: str, scenes: dict[str, dict]) -> Path:
    """Write (or update) the folder's ``db_info.yml`` with the tags of ``split``'s videos.

    Entries of other splits already in the file are kept (several splits may share a folder).
    """
    from vosbench.data.datasets.davis_info import read_db_info, write_db_info as _write

    path = db_info_path(root, fmt)
    keep: list[dict] = []
    if path.is_file():
        old = read_db_info(path)
        keep = [{"name": s.name, "attributes": list(s.attributes), "num_frames": s.num_frames,
                 "set": s.set, "eval_t": s.eval_t} for s in old.sequences.values() if s.set != split]
    new = [{"name": name, "attributes": scene_attributes(sc), "num_frames": sc["num_frames"],
            "set": split, "eval_t": True} for name, sc in scenes.items()]
    sets = list(dict.fromkeys([e["set"] for e in keep] + [split]))
    header = ("Attributes of the vosbench synthetic videos, derived from the generator's scene\n"
              f"description ({SCENES_FILE.format(split='<split>')}); rules and thresholds: "
              "vosbench/data/synthetic_attributes.py.")
    _write(path, keep + new, attributes=list(ATTRIBUTES), descriptions=ATTRIBUTES, sets=sets,
           header=header)
    return path


__all__ = ["ATTRIBUTES", "FM_WIDTH_FRACTION", "LA_MIN_VISIBLE_PX", "OCC_HIDDEN_FRACTION",
           "OCC_MIN_AREA_PX", "SCENES_FILE", "SV_AREA_RATIO", "db_info_path", "object_attributes",
           "scene_attributes", "write_db_info"]
