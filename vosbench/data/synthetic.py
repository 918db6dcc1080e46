"""Built-in synthetic videos written as REAL DAVIS-2017 or YouTube-VIS folders.

Every video shows textured shapes moving over a textured, panning background:

* shapes (the categories): ellipse, rectangle, triangle, star, ring; each object carries its own
  texture (two colours, a stripe/checker/dot pattern at its own frequency and orientation) that
  moves, rotates and scales with it, so appearance matters for telling objects apart;
* motion: every object translates by several pixels per frame (some "fast" objects by ~15% of
  the width per frame), bounces off an area slightly larger than the frame (so objects can
  partly leave and come back), rotates, changes scale and deforms (time-varying radial
  harmonics), so copying the first-frame mask is clearly imperfect;
* occlusions: objects are painted back to front in a random depth order, and the ground truth
  is the visible part only;
* distractors: unannotated shapes that copy an annotated object's shape and texture with a
  slightly shifted tint (a method must track, not just recognise appearance);
* late entries: some objects pop into view after frame 0, so their reference mask lives on a
  later frame (option ``late_entries=False``: the same videos with every annotated object in
  frame 0, what the DAVIS-2017 protocol scores; the built-in benchmark's val split uses it, see
  ``vosbench.data.datasets.synthetic``);
* fading (option ``fade``, off by default): an annotated object may lose almost all its contrast
  for a few frames (alpha-blended into what lies behind it, like an object in fog or shadow); the
  ground truth still marks it. A single faded frame is ambiguous, the frames before it are not:
  this is the case a temporal memory is for (LIP §3.2, Table 3). The fade schedule uses its own
  random stream, so a faded dataset shows exactly the same videos as the unfaded one.
  Option ``fade_alpha`` sets the range of the faded object's alpha (default 0.15-0.3); near 0
  the object all but vanishes for those frames (``synthetic_fade_hard.yaml``: 0-0.1).
* slower motion (option ``motion_scale``, default 1): the same random paths with velocities
  and accelerations scaled (``synthetic_fade_slow.yaml``: 0.25, i.e. 0.9-2 % of the width per
  frame, at most about one cell per frame of the stride-4 level the tiny models pool these small
  objects from, the range a 3x3 recurrent kernel can follow; on the DAVIS-2016 sequences of
  ``../shared/data`` at 480p the mask centroid moves a median 0.22 cells per frame of its RoI
  level, 90th percentile 1.0).
* instance-segmentation variant (options ``distractors=False, fast_objects=False``, off by
  default): no unannotated shapes (in a VIS dataset an unannotated instance of an annotated
  category is label noise, not a hard case) and no fast movers (MaskProp's synthetic benchmark).

``generate`` writes the files; the real loaders (``vosbench.data.datasets``) read them back, so
tests exercise the same code path as real data. The output is a pure function of the arguments
(seeded numpy ``Generator``), and ``cached_generate`` reuses a folder keyed by every argument.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from vosbench.structures.masks import rle_encode
from vosbench.utils.io import DataError, write_index_png, write_json

#: Bump when the generator's output changes, so stale caches are not reused.
GENERATOR_VERSION = 1

#: category id -> shape name (the YouTube-VIS ``categories`` of synthetic folders).
SHAPES: dict[int, str] = {1: "ellipse", 2: "rectangle", 3: "triangle", 4: "star", 5: "ring"}

JPEG_QUALITY = 95
_MARKER = ".vosbench_synthetic_{fmt}_{split}.json"


# ----------------------------------------------------------------------------------- rendering
@dataclass
class _Shape:
    """One moving shape; positions/scales are per frame arrays of length T."""

    category: int
    cx: np.ndarray  # [T] centre x in pixels
    cy: np.ndarray  # [T] centre y
    scale: np.ndarray  # [T] radius in pixels
    angle: np.ndarray  # [T] rotation in radians
    aspect: float
    deform: np.ndarray  # [K, 3] (harmonic k, amplitude, phase speed)
    deform_phase: np.ndarray  # [K]
    colors: np.ndarray  # [2, 3] float 0-255
    pattern: int  # 0 stripes, 1 checker, 2 dots
    freq: float  # pattern cycles per unit radius
    orient: float
    start: int  # first frame the shape exists (late entry)
    annotated: bool
    fast: bool = False  # drawn as a fast mover (scene description only)
    look_alike_of: int = -1  # distractor: index of the annotated shape it copies


def _radius(category: int, theta: np.ndarray, aspect: float) -> np.ndarray:
    """Outer boundary radius (unit scale) at local angle ``theta`` for each shape type."""
    c, s = np.cos(theta), np.sin(theta)
    if category in (1, 5):  # ellipse / ring
        return 1.0 / np.sqrt(c * c + (s / aspect) ** 2)
    if category == 2:  # rectangle with half sides 1 x aspect
        return np.minimum(1.0 / np.maximum(np.abs(c), 1e-6), aspect / np.maximum(np.abs(s), 1e-6))
    if category == 3:  # equilateral triangle
        n = 3
        a = np.mod(theta, 2 * np.pi / n) - np.pi / n
        return np.cos(np.pi / n) / np.cos(a)
    # five-pointed star: triangular wave between inner and outer radius
    frac = np.mod(theta * 5 / (2 * np.pi), 1.0)
    return 0.5 + 0.5 * np.abs(frac * 2 - 1)


def _draw(shape: _Shape, t: int, img: np.ndarray, lab: np.ndarray, value: int,
          alpha: float = 1.0) -> tuple[int, int, np.ndarray] | None:
    """Paint ``shape`` at frame ``t`` into ``img`` (float32[H, W, 3]) and ``lab`` (int32[H, W]).

    ``alpha`` < 1 blends the shape over what is already painted (a faded object); the label map
    marks the shape's pixels regardless. Returns ``(y0, x0, inside bool[h, w])``, the shape's
    in-frame pixels (for the scene description), or None when none is in the frame.
    """
    h, w = lab.shape
    cx, cy, sc, ang = shape.cx[t], shape.cy[t], shape.scale[t], shape.angle[t]
    reach = sc * max(1.0, shape.aspect) * 1.35 + 2
    x0, x1 = int(max(0, math.floor(cx - reach))), int(min(w, math.ceil(cx + reach)))
    y0, y1 = int(max(0, math.floor(cy - reach))), int(min(h, math.ceil(cy + reach)))
    if x0 >= x1 or y0 >= y1:
        return None
    ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    dx, dy = xs + 0.5 - cx, ys + 0.5 - cy
    ca, sa = math.cos(ang), math.sin(ang)
    u = (dx * ca + dy * sa) / sc  # object-local coordinates (unit = radius)
    v = (-dx * sa + dy * ca) / sc
    rho = np.sqrt(u * u + v * v)
    theta = np.arctan2(v, u)
    r = _radius(shape.category, theta, shape.aspect)
    for (k, amp, speed), ph in zip(shape.deform, shape.deform_phase):
        r = r * (1.0 + amp * np.sin(k * theta + ph + speed * t))
    inside = rho <= r
    if shape.category == 5:  # ring: hollow ellipse
        inside &= rho >= 0.5 * r
    if not inside.any():
        return None
    # texture in local coordinates, so it moves/rotates/scales with the object
    co, so = math.cos(shape.orient), math.sin(shape.orient)
    a = (u * co + v * so) * shape.freq
    if shape.pattern == 0:
        p = 0.5 + 0.5 * np.sin(2 * np.pi * a)
    elif shape.pattern == 1:
        b = (-u * so + v * co) * shape.freq
        p = ((np.floor(a) + np.floor(b)) % 2).astype(np.float32)
    else:
        b = (-u * so + v * co) * shape.freq
        p = ((np.mod(a, 1) - 0.5) ** 2 + (np.mod(b, 1) - 0.5) ** 2 < 0.09).astype(np.float32)
    shade = 0.85 + 0.15 * (1 - np.clip(rho / np.maximum(r, 1e-6), 0, 1))  # mild 3-D shading
    col = (shape.colors[0] * (1 - p[..., None]) + shape.colors[1] * p[..., None]) * shade[..., None]
    patch = img[y0:y1, x0:x1]
    if alpha >= 1.0:
        patch[inside] = col[inside]
    else:
        patch[inside] = alpha * col[inside] + (1.0 - alpha) * patch[inside]
    lab[y0:y1, x0:x1][inside] = value
    return y0, x0, inside


def _hsv_color(h: float, s: float, v: float) -> np.ndarray:
    px = np.uint8([[[int(h * 179) % 180, int(s * 255), int(v * 255)]]])
    return cv2.cvtColor(px, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)


def _background(rng: np.random.Generator, h: int, w: int, margin: int) -> np.ndarray:
    """A textured background of ``(h + 2m) x (w + 2m)`` pixels: smooth noise + gratings."""
    hh, ww = h + 2 * margin, w + 2 * margin
    img = np.zeros((hh, ww, 3), np.float32)
    for scale, amp in ((8, 70.0), (24, 35.0)):
        g = rng.normal(size=(max(2, hh // scale), max(2, ww // scale), 3)).astype(np.float32)
        img += amp * cv2.resize(g, (ww, hh), interpolation=cv2.INTER_CUBIC)
    ys, xs = np.mgrid[0:hh, 0:ww].astype(np.float32)
    for _ in range(2):
        o, f = rng.uniform(0, np.pi), rng.uniform(0.04, 0.15)
        img += rng.uniform(10, 25) * np.sin(f * (xs * np.cos(o) + ys * np.sin(o)))[..., None] \
            * rng.uniform(-1, 1, 3).astype(np.float32)
    img += _hsv_color(rng.uniform(), rng.uniform(0.15, 0.5), rng.uniform(0.35, 0.65))
    return img


def _random_shape(rng: np.random.Generator, h: int, w: int, t_len: int, *, start: int,
                  annotated: bool, fast: bool, motion_scale: float = 1.0) -> _Shape:
    size = min(h, w)
    category = int(rng.integers(1, len(SHAPES) + 1))
    s0 = rng.uniform(0.11, 0.2) * size
    growth = rng.uniform(-0.05, 0.05)  # log-scale change per frame
    scale = s0 * np.exp(growth * np.arange(t_len))
    scale = np.clip(scale, 0.06 * size, 0.3 * size)
    # velocity: substantial motion (a few % of the width per frame); fast objects much more
    speed = rng.uniform(0.12, 0.2) * w if fast else rng.uniform(0.035, 0.08) * w
    speed *= motion_scale  # the same draws, scaled: a slower copy of the same paths
    direction = rng.uniform(0, 2 * np.pi)
    vx, vy = speed * math.cos(direction), speed * math.sin(direction)
    cx, cy = np.zeros(t_len, np.float32), np.zeros(t_len, np.float32)
    x, y = rng.uniform(0.2, 0.8) * w, rng.uniform(0.2, 0.8) * h
    lo_x, hi_x, lo_y, hi_y = -0.05 * w, 1.05 * w, -0.05 * h, 1.05 * h
    for t in range(t_len):
        cx[t], cy[t] = x, y
        vx += rng.normal(0, 0.01 * w) * motion_scale  # random acceleration, keeps paths non-linear
        vy += rng.normal(0, 0.01 * h) * motion_scale
        x, y = x + vx, y + vy
        if not lo_x <= x <= hi_x:  # bounce off a box a little larger than the frame
            vx, x = -vx, float(np.clip(x, lo_x, hi_x))
        if not lo_y <= y <= hi_y:
            vy, y = -vy, float(np.clip(y, lo_y, hi_y))
    angle = rng.uniform(0, 2 * np.pi) + rng.uniform(-0.15, 0.15) * np.arange(t_len)
    k = int(rng.integers(1, 3))
    deform = np.stack([rng.integers(2, 5, k), rng.uniform(0.04, 0.12, k), rng.uniform(-0.5, 0.5, k)], 1)
    hue = rng.uniform()
    c1 = _hsv_color(hue, rng.uniform(0.55, 1.0), rng.uniform(0.7, 1.0))
    c2 = _hsv_color(hue + rng.uniform(0.25, 0.75), rng.uniform(0.4, 1.0), rng.uniform(0.25, 0.6))
    return _Shape(
        category=category, cx=cx, cy=cy, scale=scale.astype(np.float32),
        angle=angle.astype(np.float32),
        aspect=float(rng.uniform(0.5, 1.0)) if category in (1, 2, 5) else 1.0,
        deform=deform, deform_phase=rng.uniform(0, 2 * np.pi, k),
        colors=np.stack([c1, c2]), pattern=int(rng.integers(0, 3)),
        freq=float(rng.uniform(1.0, 3.0)), orient=float(rng.uniform(0, np.pi)),
        start=start, annotated=annotated, fast=fast,
    )


def _distractor_of(rng: np.random.Generator, ref: _Shape, h: int, w: int, t_len: int,
                   motion_scale: float = 1.0) -> _Shape:
    """An unannotated look-alike of ``ref``: same shape and pattern, slightly shifted tint."""
    d = _random_shape(rng, h, w, t_len, start=0, annotated=False, fast=False, motion_scale=motion_scale)
    d.category, d.aspect, d.pattern = ref.category, ref.aspect, ref.pattern
    d.freq, d.orient = ref.freq * rng.uniform(0.85, 1.15), ref.orient + rng.uniform(-0.3, 0.3)
    d.colors = np.clip(ref.colors + rng.uniform(-25, 25, size=(2, 3)), 0, 255).astype(np.float32)
    d.scale = (d.scale / d.scale[0] * ref.scale[0]).astype(np.float32)
    return d


#: Fade episodes (option ``fade``): length in frames and the alpha of the faded object.
FADE_FRAMES = (2, 4)
FADE_ALPHA = (0.15, 0.3)


def _fade_schedule(frng: np.random.Generator, shapes: list[_Shape], t_len: int, fade: float,
                   alpha_range: tuple[float, float] = FADE_ALPHA) -> dict[int, tuple[int, int, float]]:
    """shape index -> (first faded frame, end frame (exclusive), alpha) for the faded objects.

    Only annotated objects fade, never on their first frame (the reference mask stays clear) and
    only when at least one clear frame precedes the episode; ``render_video`` in addition skips
    the frames before the object was first visible (hidden behind another one at its start).
    """
    out: dict[int, tuple[int, int, float]] = {}
    for j, s in enumerate(shapes):
        u, length, pos, alpha = frng.uniform(), frng.integers(FADE_FRAMES[0], FADE_FRAMES[1] + 1), \
            frng.uniform(), frng.uniform(*alpha_range)  # always 4 draws: schedules stay aligned
        if not s.annotated or u >= fade:
            continue
        first, last = s.start + 1, t_len - 1  # episode inside [start + 1, T - 1)
        length = int(min(length, last - first))
        if length < 1:
            continue
        t0 = first + int(pos * (last - first - length + 1))
        out[j] = (t0, t0 + length, float(alpha))
    return out


def render_video(rng: np.random.Generator, *, num_frames: int, height: int, width: int,
                 max_objects: int, fade: float = 0.0, fade_rng: np.random.Generator | None = None,
                 info: dict | None = None, distractors: bool = True, fast_objects: bool = True,
                 fade_alpha: tuple[float, float] = FADE_ALPHA,
                 motion_scale: float = 1.0,
                 late_entries: bool = True) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Render one video.

    Args:
        rng: the video's random stream (shapes, motion, background, noise).
        num_frames, height, width, max_objects: sizes (see ``generate``).
        fade: probability that an annotated object has one fade episode (0 = off: the output is
            bit-identical to a generator without the option).
        fade_alpha: (low, high) range of a faded object's alpha (same episodes for any range:
            the schedule draws the same numbers).
        fade_rng: random stream of the fade schedule (default: ``rng``, which changes the videos;
            ``generate`` passes a separate stream so faded and unfaded datasets match).
        distractors: add 0-2 unannotated shapes (look-alikes of annotated objects or random
            shapes). ``False`` (option of ``generate``) suits instance segmentation: every
            shape is then an annotated instance of its category, as in YouTube-VIS.
        fast_objects: 25 % of the objects move ~15 % of the width per frame (``False``: all
            move 3.5-8 %).
        motion_scale: factor on every object's velocity and random acceleration (1 = default;
            the random draws are the same, so < 1 gives slower copies of the same videos).
        late_entries: ``False``: every annotated object exists from frame 0 (the same random
            draws, so the same videos otherwise), and one that is still not visible in frame 0
            (fully hidden or outside the frame) is left unannotated: the DAVIS-2017 protocol
            scores only the objects of the first frame.
        info: if given, receives ``info["fades"] = [[object id, first frame, end frame, alpha]]``
            with the final (renumbered) object ids, and ``info["scene"]``, the scene description
            the attributes are derived from (``vosbench.data.synthetic_attributes``): per
            annotated object and per distractor its path, radius, in-frame and visible pixels
            per frame, first visible frame, faded frames, fast flag, and what it copies.
    Returns:
        frames: uint8[T, H, W, 3] RGB.
        labels: uint8[T, H, W] visible object ids (0 = background), ids 1..N numbered in order
            of first appearance; objects never visible are dropped.
        categories: list[N] shape category of object ``i + 1``.
    """
    t_len, h, w = num_frames, height, width
    num_obj = int(rng.integers(1, max_objects + 1)) if max_objects > 0 else 0
    shapes: list[_Shape] = []
    for i in range(num_obj):
        # the first object is always there at frame 0; others may enter late
        late = i > 0 and t_len > 2 and rng.uniform() < 0.3
        start = int(rng.integers(1, max(2, t_len // 2 + 1))) if late else 0
        if not late_entries:
            start = 0  # drawn above all the same: the random stream, hence the video, is kept
        shapes.append(_random_shape(rng, h, w, t_len, start=start, annotated=True,
                                    fast=bool(rng.uniform() < 0.25) and fast_objects,
                                    motion_scale=motion_scale))
    num_distractors = int(rng.integers(0, 3)) if distractors else 0
    for _ in range(num_distractors):
        if shapes and rng.uniform() < 0.7:
            ref = int(rng.integers(0, num_obj))
            shapes.append(_distractor_of(rng, shapes[ref], h, w, t_len, motion_scale))
            shapes[-1].look_alike_of = ref
        else:
            shapes.append(_random_shape(rng, h, w, t_len, start=0, annotated=False, fast=False,
                                        motion_scale=motion_scale))
    order = rng.permutation(len(shapes))  # back-to-front painting order (occlusions)
    fades = (_fade_schedule(rng if fade_rng is None else fade_rng, shapes, t_len, fade, tuple(fade_alpha))
             if fade > 0 else {})
    seen: set[int] = set()  # label values visible in an earlier frame
    faded_at: dict[int, list[int]] = {}  # shape index -> frames actually faded

    margin = int(0.1 * max(h, w)) + 2
    bg = _background(rng, h, w, margin)
    pan = rng.uniform(-1, 1, 2) * margin / max(1, t_len - 1)  # slow camera pan
    frames = np.zeros((t_len, h, w, 3), np.uint8)
    raw = np.zeros((t_len, h, w), np.int32)
    gain = 1.0 + rng.uniform(-0.1, 0.1) * np.sin(np.linspace(0, np.pi, t_len))  # lighting drift
    in_frame = np.zeros((len(shapes), t_len), np.int64)  # scene description: pixels in the frame
    visible = np.zeros((len(shapes), t_len), np.int64)   # ... and not painted over
    for t in range(t_len):
        ox = int(np.clip(round(margin + pan[0] * t), 0, 2 * margin))
        oy = int(np.clip(round(margin + pan[1] * t), 0, 2 * margin))
        img = bg[oy:oy + h, ox:ox + w].copy()
        lab = np.zeros((h, w), np.int32)
        who = np.full((h, w), -1, np.int32)  # index of the shape that owns each pixel
        for j in order:
            s = shapes[j]
            if t >= s.start:
                f = fades.get(j)
                # fade only after the object was visible once (its reference mask stays clear
                # even when it was hidden behind another object at its start)
                alpha = f[2] if f is not None and f[0] <= t < f[1] and j + 1 in seen else 1.0
                if alpha < 1.0:
                    faded_at.setdefault(j, []).append(t)
                got = _draw(s, t, img, lab, j + 1 if s.annotated else 0, alpha)
                if got is not None:
                    y0, x0, inside = got
                    who[y0:y0 + inside.shape[0], x0:x0 + inside.shape[1]][inside] = j
                    in_frame[j, t] = int(np.count_nonzero(inside))
        visible[:, t] = np.bincount(who.ravel() + 1, minlength=len(shapes) + 1)[1:]
        seen.update(int(v) for v in np.unique(lab))
        img = img * gain[t] + rng.normal(0, 3.0, img.shape).astype(np.float32)  # sensor noise
        frames[t] = np.clip(img, 0, 255).astype(np.uint8)
        raw[t] = lab
    # renumber visible annotated objects 1..N by first appearance
    first: dict[int, int] = {}
    first_t: dict[int, int] = {}
    for t in range(t_len):
        for v in np.unique(raw[t]):
            if v and int(v) not in first:
                first[int(v)] = len(first) + 1
                first_t[int(v)] = t
    if not late_entries:  # objects first seen after frame 0 become unannotated shapes
        for v in [v for v in first if first_t[v] > 0]:
            del first[v]
            shapes[v - 1].annotated = False
    labels = np.zeros((t_len, h, w), np.uint8)
    for old, new in first.items():
        labels[raw == old] = new
    cats = [shapes[old - 1].category for old in first]
    if info is not None:
        info["fades"] = [[first[j + 1], ts[0], ts[-1] + 1, round(fades[j][2], 4)]
                         for j, ts in sorted(faded_at.items()) if j + 1 in first]

        def path(j: int) -> dict:
            s = shapes[j]
            return {"shape_index": j, "category": s.category, "start": s.start,
                    "cx": [round(float(x), 3) for x in s.cx], "cy": [round(float(y), 3) for y in s.cy],
                    "scale": [round(float(r), 4) for r in s.scale],
                    "area": in_frame[j].tolist(), "visible": visible[j].tolist()}

        info["scene"] = {
            "num_frames": t_len, "height": h, "width": w,
            "objects": [{"id": new, **path(old - 1), "fast": shapes[old - 1].fast,
                         "first_visible": first_t[old], "faded_frames": faded_at.get(old - 1, [])}
                        for old, new in first.items()],
            "distractors": [{**path(j), "copies_shape": s.look_alike_of if s.look_alike_of >= 0 else None,
                             "look_alike_of": first.get(s.look_alike_of + 1) if s.look_alike_of >= 0 else None}
                            for j, s in enumerate(shapes) if not s.annotated],
        }
    return frames, labels, cats


# ------------------------------------------------------------------------------------ writers
def _split_seed(seed: int, split: str) -> int:
    """train/val (and any other split) get disjoint random streams from one user seed."""
    return int.from_bytes(hashlib.sha256(f"{seed}/{split}".encode()).digest()[:8], "little")


def _save_jpeg(path: Path, rgb: np.ndarray) -> None:
    # 4:4:4 chroma and quality 95 keep thin texture stripes and colours intact
    Image.fromarray(rgb).save(path, format="JPEG", quality=JPEG_QUALITY, subsampling=0)


def _fade_rng(seed: int, split: str, video: int) -> np.random.Generator:
    """The fade schedule's own stream per video (independent of the video stream)."""
    return np.random.default_rng([_split_seed(seed, split), video, 0xFADE])


#: Fade schedule written next to a faded split (video -> [[object id, first, end, alpha]]).
FADES_FILE = "fades_{split}.json"


def generate(out_dir: str | os.PathLike, *, fmt: str = "davis2017", split: str = "train",
             num_videos: int = 4, num_frames: int = 6, height: int = 64, width: int = 96,
             max_objects: int = 3, seed: int = 0, fade: float = 0.0, distractors: bool = True,
             fast_objects: bool = True, fade_alpha: tuple[float, float] | list[float] = FADE_ALPHA,
             motion_scale: float = 1.0, late_entries: bool = True) -> Path:
    """Write a synthetic dataset split as a real-format folder.

    ``fmt="davis2017"`` writes ``JPEGImages/480p/<seq>/00000.jpg``, ``Annotations/480p/<seq>/
    00000.png`` (palette PNGs, ids 1..N by first appearance) and ``ImageSets/2017/<split>.txt``.
    ``fmt="ytvis"`` writes ``JPEGImages/<video>/00000.jpg`` and ``<split>.json`` (YouTube-VIS
    2019/2021 layout, compressed RLE, every frame annotated, categories = shape types).
    Several splits can live in one folder. Calling again with the same arguments returns at once
    (a marker file records them); different arguments for the same split raise ``DataError``.

    Args:
        out_dir: folder to write into (created).
        fmt: ``"davis2017"`` or ``"ytvis"``.
        split: split name (its seed stream is derived from ``seed`` and ``split``).
        num_videos, num_frames, height, width: sizes.
        max_objects: each video has 1..max_objects annotated objects (0 gives empty videos).
        seed: base seed; the output is a pure function of all arguments.
        fade: probability (0-1) that an annotated object fades to low contrast for 2-4 frames
            (see the module docstring). 0 (default) writes exactly the files of a generator
            without this option; > 0 shows the same videos with fade episodes and also writes
            ``fades_<split>.json`` (video -> ``[[object id, first frame, end frame, alpha]]``,
            end exclusive) for per-frame analysis.
        fade_alpha: ``(low, high)`` alpha range of a faded object, ``0 <= low <= high < 1``
            (default ``FADE_ALPHA``; another range changes only the faded pixels and adds
            ``_alpha<low>-<high>`` to the cache key).
        distractors, fast_objects: ``False`` drops the unannotated shapes / the fast movers
            (see ``render_video``). Both default to ``True`` (the data and its cache folder are
            then unchanged). ``distractors=False, fast_objects=False`` is the instance
            segmentation variant used by ``benchmarks/maskprop_synthetic.py``: in a VIS dataset
            an unannotated shape of an annotated category is label noise, not a hard case.
        motion_scale: factor on every object's velocity and random acceleration, in (0, 4]
            (default 1: data and cache key unchanged; otherwise the same videos, objects moving
            slower or faster, key suffix ``_motion<m>``).
        late_entries: ``False``: every annotated object is in frame 0 (see ``render_video``;
            key suffix ``_nolate``). Default ``True``: data and key unchanged.
    Returns:
        ``Path(out_dir)``.
    """
    if fmt not in ("davis2017", "ytvis"):
        raise ValueError(f"synthetic format must be 'davis2017' or 'ytvis', got {fmt!r}")
    if not (num_videos >= 1 and num_frames >= 1 and height >= 16 and width >= 16 and max_objects >= 0):
        raise ValueError("synthetic: need num_videos >= 1, num_frames >= 1, height/width >= 16, "
                         "max_objects >= 0")
    if max_objects > 254:
        raise ValueError("synthetic: max_objects must be <= 254 (8-bit palette ids)")
    options = _options(fade=fade, distractors=distractors, fast_objects=fast_objects,
                       fade_alpha=fade_alpha, motion_scale=motion_scale, late_entries=late_entries)
    fade_alpha = tuple(options.get("fade_alpha", FADE_ALPHA))
    motion_scale = options.get("motion_scale", 1.0)
    out = Path(out_dir)
    params = dict(fmt=fmt, split=split, num_videos=num_videos, num_frames=num_frames, height=height,
                  width=width, max_objects=max_objects, seed=seed, version=GENERATOR_VERSION, **options)
    marker = out / _MARKER.format(fmt=fmt, split=split)
    if marker.is_file():
        old = json.loads(marker.read_text())
        if old == params:
            return out
        raise DataError(f"{marker}: {out} already holds synthetic split {split!r} made with "
                        f"{old}, not {params}; use another folder")
    rng = np.random.default_rng(_split_seed(seed, split))
    names = [f"syn-{split}-{i:04d}" for i in range(num_videos)]
    fade_log: dict[str, list] = {}
    scene_log: dict[str, dict] = {}  # video -> scene description (attributes, db_info.yml)

    def render(i: int):
        info: dict = {}
        res = render_video(rng, num_frames=num_frames, height=height, width=width,
                           max_objects=max_objects, fade=fade, fade_rng=_fade_rng(seed, split, i), info=info,
                           distractors=distractors, fast_objects=fast_objects, fade_alpha=fade_alpha,
                           motion_scale=motion_scale, late_entries=late_entries)
        fade_log[names[i]] = info.get("fades", [])
        scene_log[names[i]] = info["scene"]
        return res

    if fmt == "davis2017":
        for i, name in enumerate(names):
            frames, labels, _ = render(i)
            jdir, adir = out / "JPEGImages" / "480p" / name, out / "Annotations" / "480p" / name
            jdir.mkdir(parents=True, exist_ok=True)
            adir.mkdir(parents=True, exist_ok=True)
            for t in range(num_frames):
                _save_jpeg(jdir / f"{t:05d}.jpg", frames[t])
                write_index_png(adir / f"{t:05d}.png", labels[t])
        (out / "ImageSets" / "2017").mkdir(parents=True, exist_ok=True)
        (out / "ImageSets" / "2017" / f"{split}.txt").write_text("".join(n + "\n" for n in names))
    else:
        videos, annotations = [], []
        for vid, name in enumerate(names, start=1):
            frames, labels, cats = render(vid - 1)
            jdir = out / "JPEGImages" / name
            jdir.mkdir(parents=True, exist_ok=True)
            file_names = []
            for t in range(num_frames):
                _save_jpeg(jdir / f"{t:05d}.jpg", frames[t])
                file_names.append(f"{name}/{t:05d}.jpg")
            videos.append(dict(id=vid, width=width, height=height, length=num_frames,
                               file_names=file_names))
            for k, cat in enumerate(cats, start=1):
                m = labels == k  # [T, H, W]
                segs, areas, boxes = [], [], []
                for t in range(num_frames):
                    if m[t].any():
                        segs.append(rle_encode(m[t][None])[0])
                        areas.append(int(m[t].sum()))
                        ys, xs = np.nonzero(m[t])
                        boxes.append([float(xs.min()), float(ys.min()),
                                      float(xs.max() - xs.min() + 1), float(ys.max() - ys.min() + 1)])
                    else:
                        segs.append(None)
                        areas.append(None)
                        boxes.append(None)
                annotations.append(dict(id=len(annotations) + 1, video_id=vid, category_id=cat,
                                        iscrowd=0, height=height, width=width, length=1,
                                        segmentations=segs, areas=areas, bboxes=boxes))
        categories = [dict(id=i, name=n, supercategory="shape") for i, n in SHAPES.items()]
        info = dict(description="vosbench synthetic moving shapes", params=params)
        write_json(out / f"{split}.json", dict(info=info, videos=videos, annotations=annotations,
                                               categories=categories))
    if fade > 0:
        write_json(out / FADES_FILE.format(split=split), fade_log)
    _write_scenes(out, fmt, split, scene_log)
    write_json(marker, params)
    return out


def _write_scenes(out: Path, fmt: str, split: str, scenes: dict[str, dict]) -> None:
    """``scenes_<split>.json`` and the DAVIS-style ``db_info.yml`` with the videos' attributes."""
    from vosbench.data import synthetic_attributes as attrs

    write_json(out / attrs.SCENES_FILE.format(split=split), scenes)
    attrs.write_db_info(out, fmt, split, scenes)


def _options(*, fade: float = 0.0, distractors: bool = True, fast_objects: bool = True,
             fade_alpha=FADE_ALPHA, motion_scale=1.0, late_entries: bool = True) -> dict:
    """The validated generator options that differ from their defaults.

    Both the split's marker file and its cache key record exactly these, so data made without an
    option keeps the marker and key it had before the option existed (``fade_alpha`` counts only
    with ``fade`` > 0).
    """
    if not 0.0 <= fade <= 1.0:
        raise ValueError(f"synthetic: fade is a probability in [0, 1], got {fade}")
    alpha = _check_fade_alpha(fade_alpha)
    motion = _check_motion_scale(motion_scale)
    out: dict = {}
    if fade > 0:
        out["fade"] = float(fade)
        if alpha != FADE_ALPHA:
            out["fade_alpha"] = list(alpha)
    if not distractors:
        out["distractors"] = False
    if not fast_objects:
        out["fast_objects"] = False
    if motion != 1.0:
        out["motion_scale"] = motion
    if not late_entries:
        out["late_entries"] = False
    return out


def _check_fade_alpha(fade_alpha) -> tuple[float, float]:
    try:
        lo, hi = (float(a) for a in fade_alpha)
    except (TypeError, ValueError):
        raise ValueError(f"synthetic: fade_alpha must be a pair [low, high], got {fade_alpha!r}") from None
    if not 0.0 <= lo <= hi < 1.0:
        raise ValueError(f"synthetic: fade_alpha needs 0 <= low <= high < 1, got {fade_alpha!r}")
    return lo, hi


def _check_motion_scale(motion_scale) -> float:
    try:
        m = float(motion_scale)
    except (TypeError, ValueError):
        raise ValueError(f"synthetic: motion_scale must be a number, got {motion_scale!r}") from None
    if not 0.0 < m <= 4.0:
        raise ValueError(f"synthetic: motion_scale must be in (0, 4], got {motion_scale!r}")
    return m


def cache_key(**params) -> str:
    """Folder name that identifies a synthetic split by every generator argument (``fade`` only
    when > 0, so keys of unfaded data are unchanged)."""
    p = dict(params, version=GENERATOR_VERSION)
    key = (f"{p['fmt']}_{p['split']}_n{p['num_videos']}_t{p['num_frames']}_{p['height']}x"
           f"{p['width']}_o{p['max_objects']}_s{p['seed']}_v{p['version']}")
    suffix = {  # in key order
        "fade": "_fade{:g}".format,
        "distractors": lambda _: "_nodistr",
        "fast_objects": lambda _: "_nofast",
        "fade_alpha": lambda a: "_alpha{:g}-{:g}".format(*a),
        "motion_scale": "_motion{:g}".format,
        "late_entries": lambda _: "_nolate",
    }
    options = _options(**{k: p[k] for k in suffix if k in p})
    return key + "".join(suffix[k](options[k]) for k in suffix if k in options)


def cached_generate(cache_dir: str | os.PathLike, *, fmt: str, split: str, num_videos: int,
                    num_frames: int, height: int, width: int, max_objects: int, seed: int,
                    fade: float = 0.0, distractors: bool = True, fast_objects: bool = True,
                    fade_alpha: tuple[float, float] | list[float] = FADE_ALPHA,
                    motion_scale: float = 1.0, late_entries: bool = True) -> Path:
    """``generate`` into ``cache_dir/<key>`` unless that folder is already complete.

    The folder is written under a temporary name and renamed into place, so concurrent
    builders (pytest-xdist workers, DataLoader workers) never see a half-written dataset.
    """
    params = dict(fmt=fmt, split=split, num_videos=num_videos, num_frames=num_frames,
                  height=height, width=width, max_objects=max_objects, seed=seed, fade=fade,
                  distractors=distractors, fast_objects=fast_objects, fade_alpha=fade_alpha,
                  motion_scale=motion_scale, late_entries=late_entries)
    cache = Path(cache_dir).expanduser()
    final = cache / cache_key(**params)
    if (final / _MARKER.format(fmt=fmt, split=split)).is_file():
        from vosbench.data.synthetic_attributes import SCENES_FILE

        if not (final / SCENES_FILE.format(split=split)).is_file():
            _add_scenes(cache, final, params)  # made before the generator described its scenes
        return final
    cache.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=cache))
    try:
        generate(tmp, **params)
        try:
            os.rename(tmp, final)
        except OSError:  # another process finished first: use its copy
            if not (final / _MARKER.format(fmt=fmt, split=split)).is_file():
                raise
    finally:
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(tmp)
    return final


def _add_scenes(cache: Path, final: Path, params: dict) -> None:
    """Give a complete cached folder its ``scenes_<split>.json`` and ``db_info.yml``: render the
    same split again (a pure function of ``params``) and move only those two files in."""
    from vosbench.data.synthetic_attributes import SCENES_FILE, db_info_path

    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=cache))
    try:
        generate(tmp, **params)
        for rel in (db_info_path(Path(), params["fmt"]), Path(SCENES_FILE.format(split=params["split"]))):
            part = final / rel.parent / f".{rel.name}.{os.getpid()}.tmp"
            shutil.copyfile(tmp / rel, part)
            os.replace(part, final / rel)  # the scenes file last: its presence means "done"
    finally:
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(tmp)


__all__ = ["SHAPES", "GENERATOR_VERSION", "FADES_FILE", "generate", "cached_generate", "cache_key", "render_video"]
