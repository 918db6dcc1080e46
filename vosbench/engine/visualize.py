"""Overlay predictions and/or ground truth on frames; write an mp4/gif and a contact-sheet PNG.

Used by ``vosbench visualize`` (``tools/visualize.py``). Videos are H.264 mp4 (``yuv420p``,
``+faststart``), the format every browser plays, written by the ffmpeg binary that the
``imageio-ffmpeg`` package ships (OpenCV's ``mp4v`` is MPEG-4 part 2, which browsers do not
play), or gif. Frames are rendered and written one at a time (only the few
frames of the contact sheet are kept, downscaled), so long videos need little memory.

Colours: object id ``k`` uses DAVIS palette colour ``k`` (YouTube-VIS instance ids are mapped to
1, 2, ... in their order of appearance in the results), blended at ``alpha`` with a 1-pixel
contour at full colour, so touching objects stay distinguishable. A source may carry labels
(``source.labels``: object id -> text); YouTube-VIS predictions are labelled ``#<instance>
<category> <score>``, VIS ground truth ``<id> <category>``, next to each object.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import cv2
import numpy as np
import torch

from vosbench.structures import VideoSample
from vosbench.structures.masks import rle_decode
from vosbench.utils.io import DAVIS_PALETTE, DataError, atomic_write, read_index_png, read_json

#: frame index -> index mask uint8/int64[H, W] (0 background, 255 void), or None (not available)
IndexSource = Callable[[int], "np.ndarray | None"]


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """Tensor[3, H, W] float 0-1 -> uint8[H, W, 3] RGB."""
    return (image.clamp(0, 1).permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)


def overlay(rgb: np.ndarray, index: np.ndarray | None, *, alpha: float = 0.5,
            labels: dict[int, str] | None = None) -> np.ndarray:
    """Blend an index mask onto an RGB frame.

    Args:
        rgb: uint8[H, W, 3].
        index: int[H, W] object ids (0 = background, 255 = void, drawn grey), or None.
        labels: object id -> text drawn at the object's top-left corner (ids present only).
    Returns:
        uint8[H, W, 3] (a new array).
    """
    out = rgb.copy()
    if index is None:
        return out
    if index.shape != rgb.shape[:2]:
        index = cv2.resize(index.astype(np.uint8), (rgb.shape[1], rgb.shape[0]),
                           interpolation=cv2.INTER_NEAREST)
    ids = [int(i) for i in np.unique(index) if i != 0]
    for i in ids:
        m = index == i
        color = np.array([128, 128, 128] if i == 255 else DAVIS_PALETTE[i % 255 or 1], dtype=np.float32)
        out[m] = (out[m].astype(np.float32) * (1 - alpha) + color * alpha + 0.5).astype(np.uint8)
        contours, _ = cv2.findContours(m.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(out, contours, -1, tuple(int(c) for c in color), max(1, rgb.shape[0] // 240))
    for i in ids:  # after all masks, so no mask paints over a label
        if labels and i in labels:
            ys, xs = np.nonzero(index == i)
            out = tag(out, labels[i], (int(xs.min()), int(ys.min())),
                      tuple(int(c) for c in DAVIS_PALETTE[i % 255 or 1]))
    return out


def tag(rgb: np.ndarray, text: str, xy: tuple[int, int], color: tuple[int, int, int]) -> np.ndarray:
    """Draw ``text`` in a box of ``color`` whose top-left corner is near ``xy``, kept inside the frame."""
    h, w = rgb.shape[:2]
    scale = max(0.3, h / 800)
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    x = int(min(max(0, xy[0]), max(0, w - tw - 2)))
    y = int(min(max(0, xy[1] - th - base - 2), max(0, h - th - base - 2)))  # above the object
    cv2.rectangle(rgb, (x, y), (x + tw + 2, y + th + base + 2), color, -1)
    dark = sum(color) > 384  # black text on light boxes, white on dark ones
    cv2.putText(rgb, text, (x + 1, y + th + 1), cv2.FONT_HERSHEY_SIMPLEX, scale,
                (0, 0, 0) if dark else (255, 255, 255), 1, cv2.LINE_AA)
    return rgb


def label(rgb: np.ndarray, text: str) -> np.ndarray:
    """Write ``text`` in the bottom-left corner (white on a dark box)."""
    out = rgb.copy()
    h = rgb.shape[0]
    scale = max(0.35, h / 600)
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    cv2.rectangle(out, (0, h - th - base - 4), (tw + 4, h), (0, 0, 0), -1)
    cv2.putText(out, text, (2, h - base - 2), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1,
                cv2.LINE_AA)
    return out


# ----------------------------------------------------------------------------- sources
def gt_source(sample: VideoSample) -> IndexSource:
    """Ground-truth index masks of ``sample`` (None on frames without annotation).

    For VIS samples (``sample.categories``) the objects are labelled ``<id> <category>``
    (``get.labels``, filled as frames are read).
    """
    labels: dict[int, str] = {}

    def get(t: int) -> np.ndarray | None:
        f = sample.frames[t]
        if f.masks is None:
            return None
        index = np.zeros(f.masks.shape[-2:], dtype=np.int64)
        cats = f.labels.tolist() if getattr(f, "labels", None) is not None else [None] * len(f.obj_ids)
        for m, i, c in zip(f.masks, f.obj_ids.tolist(), cats):
            index[m.numpy()] = i
            if sample.categories and c is not None and c >= 0:
                labels[int(i)] = f"{i} {sample.categories.get(int(c), c)}"
        if f.void is not None:
            index[f.void.numpy()] = 255
        return index

    get.labels = labels  # type: ignore[attr-defined]
    return get


def davis_source(pred_dir: str | os.PathLike, sample: VideoSample) -> IndexSource:
    """Palette PNGs ``<pred_dir>/<video_id>/<frame name>.png`` (a missing file is an error)."""
    root = Path(pred_dir) / str(sample.video_id)
    if not root.is_dir():
        raise DataError(f"{root}: no predictions for video {sample.video_id!r}")

    def get(t: int) -> np.ndarray:
        name = sample.frame_names[t] if t < len(sample.frame_names) else f"{t:05d}"
        return read_index_png(root / f"{name}.png")

    return get


def ytvis_source(results: Sequence[dict], sample: VideoSample, video_key: int | str, *,
                 score_threshold: float = 0.5) -> IndexSource:
    """Instances of one video in a YouTube-VIS ``results.json`` list, above ``score_threshold``.

    Higher-scoring instances are painted last (on top); instance ``n`` gets colour ``n + 1`` and
    the label ``#<n + 1> <category name> <score>`` (``get.labels``; names from
    ``sample.categories``, the id where the dataset has none).
    """
    mine = [r for r in results if r.get("video_id") == video_key and r.get("score", 0) >= score_threshold]
    mine.sort(key=lambda r: r.get("score", 0))
    names = getattr(sample, "categories", None) or {}
    labels = {n + 1: f"#{n + 1} {names.get(r.get('category_id'), r.get('category_id'))} "
                     f"{float(r.get('score', 0)):.2f}" for n, r in enumerate(mine)}

    def get(t: int) -> np.ndarray | None:
        h, w = sample.orig_size
        index = np.zeros((h, w), dtype=np.int64)
        for n, r in enumerate(mine):
            segs = r.get("segmentations") or []
            if t < len(segs) and segs[t]:
                index[rle_decode(segs[t], size=(h, w), where=f"results video {video_key}")] = n + 1
        return index

    get.labels = labels  # type: ignore[attr-defined]
    return get


# ----------------------------------------------------------------------------- rendering
def render_frames(sample: VideoSample, sources: Sequence[tuple[str, IndexSource]], *,
                  alpha: float = 0.5, max_frames: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(t, uint8[H, W * len(sources), 3])``: one labelled panel per source, side by side."""
    n = len(sample.frames) if max_frames is None else min(max_frames, len(sample.frames))
    for t in range(n):
        rgb = to_uint8(sample.frames[t].image)
        panels = []
        for name, src in sources or [("frame", lambda _t: None)]:
            index = src(t)
            panels.append(label(overlay(rgb, index, alpha=alpha, labels=getattr(src, "labels", None)),
                                f"{name} {t}"))
        yield t, np.concatenate(panels, axis=1)


class _VideoSink:
    """H.264 mp4 (imageio-ffmpeg's ffmpeg, libx264, yuv420p) or gif (Pillow), written atomically.

    yuv420p needs even sizes: odd frames get one black row / column (never a resize).
    """

    def __init__(self, path: Path, fps: float) -> None:
        self.path, self.fps = path, fps
        self.suffix = path.suffix.lower()
        if self.suffix not in (".mp4", ".gif"):
            raise ValueError(f"{path}: video format must be .mp4 or .gif")
        self._writer = None
        self._gif: list = []
        self._tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")

    def add(self, rgb: np.ndarray) -> None:
        if self.suffix == ".gif":
            from PIL import Image

            # Quantize now so only palette images are held (GIF frames are 8-bit anyway).
            self._gif.append(Image.fromarray(rgb).quantize(colors=255))
            return
        h, w = rgb.shape[:2]
        if h % 2 or w % 2:
            rgb = np.pad(rgb, ((0, h % 2), (0, w % 2), (0, 0)))
        if self._writer is None:
            try:
                import imageio_ffmpeg
            except ImportError as e:
                raise RuntimeError(f"{self.path}: writing mp4 needs the imageio-ffmpeg package (a "
                                   "vosbench dependency: pip install imageio-ffmpeg), or use "
                                   "--format gif") from e
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = imageio_ffmpeg.write_frames(
                str(self._tmp), (rgb.shape[1], rgb.shape[0]), fps=self.fps, codec="libx264",
                pix_fmt_in="rgb24", pix_fmt_out="yuv420p", quality=None, macro_block_size=1,
                output_params=["-crf", "18", "-movflags", "+faststart"], ffmpeg_log_level="error")
            self._writer.send(None)  # start ffmpeg
        self._writer.send(np.ascontiguousarray(rgb))

    def close(self) -> None:
        if self.suffix == ".gif":
            if self._gif:
                with atomic_write(self.path, "wb") as f:
                    self._gif[0].save(f, format="GIF", save_all=True, append_images=self._gif[1:],
                                      duration=int(1000 / self.fps), loop=0)
            self._gif = []
        elif self._writer is not None:
            self._writer.close()  # waits for ffmpeg to finish the file
            self._writer = None
            os.replace(self._tmp, self.path)


def contact_sheet(tiles: Sequence[tuple[int, np.ndarray]], *, cols: int = 4) -> np.ndarray:
    """Grid of equally sized RGB tiles, row-major (the last row padded with black)."""
    if not tiles:
        raise ValueError("contact_sheet: no frames")
    h, w = tiles[0][1].shape[:2]
    rows = (len(tiles) + cols - 1) // cols
    sheet = np.zeros((rows * h, min(cols, len(tiles)) * w, 3), dtype=np.uint8)
    for k, (_, tile) in enumerate(tiles):
        r, c = divmod(k, cols)
        sheet[r * h:(r + 1) * h, c * w:(c + 1) * w] = tile
    return sheet


def visualize_video(sample: VideoSample, sources: Sequence[tuple[str, IndexSource]],
                    out_dir: str | os.PathLike, *, fmt: str = "mp4", fps: float = 8.0,
                    sheet_frames: int = 8, sheet_cols: int = 4, sheet_width: int = 1600,
                    alpha: float = 0.5, max_frames: int | None = None) -> dict[str, str]:
    """Render one video to ``<out>/<video_id>.<fmt>`` and ``<out>/<video_id>_sheet.png``.

    Returns:
        ``{"video": path, "sheet": path}`` (``video`` absent when ``fmt="none"``).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    n = len(sample.frames) if max_frames is None else min(max_frames, len(sample.frames))
    picks = set(np.linspace(0, n - 1, num=min(sheet_frames, n)).round().astype(int).tolist())
    sink = _VideoSink(out / f"{sample.video_id}.{fmt}", fps) if fmt != "none" else None
    tiles = []
    for t, rgb in render_frames(sample, sources, alpha=alpha, max_frames=n):
        if sink is not None:
            sink.add(rgb)
        if t in picks:
            tile_w = max(1, sheet_width // min(sheet_cols, len(picks)))
            scale = min(1.0, tile_w / rgb.shape[1])
            if scale < 1.0:
                rgb = cv2.resize(rgb, (int(rgb.shape[1] * scale), int(rgb.shape[0] * scale)),
                                 interpolation=cv2.INTER_AREA)
            tiles.append((t, rgb))
    files = {}
    if sink is not None:
        sink.close()
        files["video"] = str(sink.path)
    sheet_path = out / f"{sample.video_id}_sheet.png"
    ok, buf = cv2.imencode(".png", cv2.cvtColor(contact_sheet(tiles, cols=sheet_cols), cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError(f"{sheet_path}: PNG encoding failed")
    with atomic_write(sheet_path, "wb") as f:
        f.write(buf.tobytes())
    files["sheet"] = str(sheet_path)
    return files


def load_ytvis_results(path: str | os.PathLike) -> list[dict]:
    """Read a YouTube-VIS ``results.json`` (a list of instance dicts)."""
    data = read_json(path)
    if not isinstance(data, list):
        raise DataError(f"{path}: a YouTube-VIS results file must be a JSON list, got {type(data).__name__}")
    return data


def select_videos(dataset: Sequence[VideoSample], names: Iterable[str] | None,
                  limit: int | None) -> list[VideoSample]:
    """Samples named in ``names`` (all if None), at most ``limit``; unknown names are an error."""
    if names:
        wanted = list(names)
        by_id = {}
        for i in range(len(dataset)):
            s = dataset[i]
            if str(s.video_id) in wanted:
                by_id[str(s.video_id)] = s
        missing = [v for v in wanted if v not in by_id]
        if missing:
            raise DataError(f"video(s) {missing} not in the dataset")
        samples = [by_id[v] for v in wanted]
    else:
        samples = [dataset[i] for i in range(min(len(dataset), limit or len(dataset)))]
    return samples[:limit] if limit else samples
