"""File I/O at the edges: images, indexed PNGs with the DAVIS palette, atomic writes.

Every reader raises ``DataError`` naming the file and the problem; nothing is silently skipped.
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import IO, Any, Iterator

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError


_UMASK = os.umask(0)
os.umask(_UMASK)  # read once at import: os.umask can only be read by setting it


class DataError(ValueError):
    """Bad input data; the message names the file and the problem."""


def davis_palette() -> np.ndarray:
    """The 256-colour DAVIS palette (the PASCAL VOC bit-interleaving scheme), uint8[256, 3]."""
    pal = np.zeros((256, 3), dtype=np.uint8)
    for i in range(256):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        pal[i] = (r, g, b)
    return pal


DAVIS_PALETTE = davis_palette()


def _open(path: str | os.PathLike) -> Image.Image:
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: missing file")
    try:
        img = Image.open(p)
        img.load()
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise DataError(f"{p}: corrupt or unreadable image ({e})") from e
    return img


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an RGB image as ``uint8[H, W, 3]`` (grey and palette images are converted).

    JPEGs (the frames of every dataset) decode with OpenCV straight into a numpy array, which
    saves PIL's ``tobytes`` copy (~20 % of a 480p frame's load time). OpenCV silently returns a
    partial image for a truncated JPEG, so a file without its end-of-image marker, or one OpenCV
    cannot decode, goes to PIL, which raises ``DataError`` naming the problem.
    """
    p = Path(path)
    if p.suffix.lower() in (".jpg", ".jpeg") and p.is_file():
        data = p.read_bytes()
        if data[:2] == b"\xff\xd8" and data.rstrip(b"\0")[-2:] == b"\xff\xd9":
            bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
            if bgr is not None and bgr.ndim == 3:
                return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    img = _open(p)
    return np.asarray(img if img.mode == "RGB" else img.convert("RGB"))


def open_label_image(path: str | os.PathLike) -> Image.Image:
    """Open a label PNG that must be indexed (``P``) or 8-bit grey (``L``); ``DataError`` otherwise."""
    img = _open(path)
    if img.mode not in ("P", "L"):
        raise DataError(f"{path}: not an indexed (palette) or 8-bit grey PNG (mode {img.mode})")
    return img


def read_index_png(path: str | os.PathLike, *, allow_binary_rgb: bool = False) -> np.ndarray:
    """Read an indexed annotation PNG as ``uint8[H, W]`` label values.

    Accepts mode ``P`` (palette, DAVIS-2017) and ``L`` (8-bit grey) images. With
    ``allow_binary_rgb`` an RGB image whose pixels are all grey is read by its first channel
    (SegTrack v2 ships 3-channel masks). Anything else is a ``DataError``.
    """
    img = _open(path)
    if img.mode in ("P", "L"):
        return np.array(img)  # writable (np.asarray of a PIL image is read-only)
    if img.mode in ("1",):
        return np.asarray(img).astype(np.uint8) * 255
    if allow_binary_rgb and img.mode in ("RGB", "RGBA"):
        a = np.asarray(img.convert("RGB"))
        if not (np.array_equal(a[..., 0], a[..., 1]) and np.array_equal(a[..., 0], a[..., 2])):
            raise DataError(f"{path}: colour mask where a grey/binary one was expected")
        return a[..., 0].copy()
    raise DataError(f"{path}: not an indexed (palette) or 8-bit grey PNG (mode {img.mode})")


def write_index_png(path: str | os.PathLike, index: np.ndarray) -> None:
    """Write ``uint8[H, W]`` labels as a palette PNG with the DAVIS palette, atomically."""
    a = np.asarray(index)
    if a.ndim != 2:
        raise ValueError(f"{path}: index mask must be 2-D, got shape {a.shape}")
    if a.size and (a.min() < 0 or a.max() > 255):
        raise ValueError(f"{path}: labels must be in 0..255")
    img = Image.fromarray(a.astype(np.uint8), mode="P")
    img.putpalette(DAVIS_PALETTE.reshape(-1).tolist())
    with atomic_write(path, "wb") as f:
        img.save(f, format="PNG")


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", **kw: Any) -> Iterator[IO]:
    """Open a temporary file beside ``path``; rename it over ``path`` only on success.

    So a crash or an exception never leaves a half-written result file.
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        # mkstemp creates the file 0600; give the result the permissions open() would have
        os.fchmod(fd, 0o666 & ~_UMASK)
        with os.fdopen(fd, mode, **kw) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_json(path: str | os.PathLike, obj: Any, **kw: Any) -> None:
    """``json.dump`` through ``atomic_write``."""
    with atomic_write(path, "w") as f:
        json.dump(obj, f, **kw)


def read_json(path: str | os.PathLike) -> Any:
    """``json.load`` with a ``DataError`` naming the file on a missing file or bad JSON."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: missing file")
    try:
        with open(p) as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise DataError(f"{p}: malformed JSON ({e})") from e
