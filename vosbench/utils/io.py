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


def _check_file(p: Path) -> None:
    """``DataError`` unless ``p`` is a readable, non-empty regular file (the message says which)."""
    try:
        st = p.stat()
    except FileNotFoundError:
        raise DataError(f"{p}: missing file") from None
    except OSError as e:  # permission denied on a parent folder, too many symlinks, ...
        raise DataError(f"{p}: cannot access ({e.strerror or e})") from e
    if p.is_dir():
        raise DataError(f"{p}: is a folder, expected a file")
    if not p.is_file():
        raise DataError(f"{p}: not a regular file")
    if st.st_size == 0:
        raise DataError(f"{p}: empty file (0 bytes)")


def _open(path: str | os.PathLike) -> Image.Image:
    p = Path(path)
    _check_file(p)
    try:
        img = Image.open(p)
        img.load()
    except PermissionError as e:
        raise DataError(f"{p}: cannot read ({e.strerror or e})") from e
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise DataError(f"{p}: corrupt or unreadable image ({e})") from e
    return img


def list_dir(folder: str | os.PathLike) -> list[Path]:
    """The entries of ``folder``, sorted; ``DataError`` naming it when it cannot be listed
    (so an unreadable folder is never mistaken for an empty one)."""
    d = Path(folder)
    try:
        return sorted(d.iterdir())
    except FileNotFoundError:
        raise DataError(f"{d}: missing folder") from None
    except NotADirectoryError:
        raise DataError(f"{d}: is a file, expected a folder") from None
    except OSError as e:
        raise DataError(f"{d}: cannot list folder ({e.strerror or e})") from e


def read_text(path: str | os.PathLike) -> str:
    """A text file's content; ``DataError`` naming it when missing, unreadable or not text."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: missing file" if not p.exists() else f"{p}: is a folder, expected a file")
    try:
        return p.read_text()
    except UnicodeDecodeError as e:
        raise DataError(f"{p}: not a text file ({e.reason} at byte {e.start})") from e
    except OSError as e:
        raise DataError(f"{p}: cannot read ({e.strerror or e})") from e


#: the last bytes of a complete file of each format (a truncated file lacks them)
_PNG_END = b"IEND\xaeB`\x82"


def image_header(path: str | os.PathLike) -> tuple[str, str, tuple[int, int]]:
    """(format, PIL mode, (H, W)) of an image file WITHOUT decoding its pixels.

    Checks what a header can show: the file exists, is not empty, is a JPEG/PNG/BMP PIL can
    identify, and is not cut short (a JPEG ends with its end-of-image marker, a PNG with its
    ``IEND`` chunk). This is the cheap check ``train`` runs over a whole split before building
    the model; pixel-level problems (label values, a varying alpha) need the full decode.
    """
    p = Path(path)
    _check_file(p)
    try:
        with Image.open(p) as img:
            fmt, mode, (w, h) = img.format or "", img.mode, img.size
    except PermissionError as e:
        raise DataError(f"{p}: cannot read ({e.strerror or e})") from e
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise DataError(f"{p}: corrupt or unreadable image ({e})") from e
    try:
        with open(p, "rb") as f:
            f.seek(max(0, p.stat().st_size - 64))
            tail = f.read()
    except OSError as e:
        raise DataError(f"{p}: cannot read ({e.strerror or e})") from e
    if fmt == "JPEG" and tail.rstrip(b"\0")[-2:] != b"\xff\xd9":
        raise DataError(f"{p}: truncated JPEG (no end-of-image marker)")
    if fmt == "PNG" and _PNG_END not in tail:
        raise DataError(f"{p}: truncated PNG (no IEND chunk)")
    return fmt, mode, (int(h), int(w))


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an RGB image as ``uint8[H, W, 3]`` (grey and palette images are converted).

    JPEGs (the frames of every dataset) decode with OpenCV straight into a numpy array, which
    saves PIL's ``tobytes`` copy (~20 % of a 480p frame's load time). OpenCV silently returns a
    partial image for a truncated JPEG, so a file without its end-of-image marker, or one OpenCV
    cannot decode, goes to PIL, which raises ``DataError`` naming the problem.
    """
    p = Path(path)
    if p.suffix.lower() in (".jpg", ".jpeg") and p.is_file():
        try:
            data = p.read_bytes()
        except OSError as e:
            raise DataError(f"{p}: cannot read ({e.strerror or e})") from e
        if data[:2] == b"\xff\xd8" and data.rstrip(b"\0")[-2:] == b"\xff\xd9":
            bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
            if bgr is not None and bgr.ndim == 3:
                return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    img = _open(p)  # an alpha channel of a frame is irrelevant: dropped by the RGB conversion
    return np.asarray(img if img.mode == "RGB" else img.convert("RGB"))


def _drop_opaque_alpha(img: Image.Image, path: str | os.PathLike) -> Image.Image:
    """``LA``/``PA``/``RGBA`` -> ``L``/``P``/``RGB`` when the alpha is 255 everywhere.

    The DAVIS-2016 release ships one such file (``bear/00077.png``, grey + an opaque alpha): it
    is a grey mask. An alpha that is not opaque everywhere makes the mask ambiguous: an error.
    """
    if img.mode not in ("LA", "PA", "RGBA"):
        return img
    alpha = img.getchannel("A")
    lo, hi = alpha.getextrema()
    if (lo, hi) != (255, 255):
        raise DataError(f"{path}: {img.mode} PNG whose alpha channel is not opaque everywhere "
                        f"(alpha {lo}..{hi}): the mask is ambiguous; save it without alpha")
    if img.mode == "PA":
        # the index channel as a P image (a PIL convert would re-quantize the indices)
        out = Image.frombytes("P", img.size, img.getchannel("P").tobytes())
        pal = img.getpalette()
        if pal is not None:
            out.putpalette(pal)
        return out
    return img.convert("L" if img.mode == "LA" else "RGB")


def open_label_image(path: str | os.PathLike) -> Image.Image:
    """Open a label PNG that must be indexed (``P``) or 8-bit grey (``L``); ``DataError`` otherwise.

    Grey + alpha (``LA``) and palette + alpha (``PA``) with an opaque alpha read as ``L`` / ``P``
    (see ``_drop_opaque_alpha``).
    """
    img = _drop_opaque_alpha(_open(path), path)
    if img.mode not in ("P", "L"):
        raise DataError(f"{path}: not an indexed (palette) or 8-bit grey PNG (mode {img.mode})")
    return img


def read_index_png(path: str | os.PathLike, *, allow_binary_rgb: bool = False) -> np.ndarray:
    """Read an indexed annotation PNG as ``uint8[H, W]`` label values.

    Accepts mode ``P`` (palette, DAVIS-2017) and ``L`` (8-bit grey) images, also with an opaque
    alpha channel. With ``allow_binary_rgb`` an RGB(A) image whose pixels are all grey is read by
    its first channel (SegTrack v2 ships 3-channel masks). Anything else is a ``DataError``.
    """
    img = _drop_opaque_alpha(_open(path), path)
    if img.mode in ("P", "L"):
        return np.array(img)  # writable (np.asarray of a PIL image is read-only)
    if img.mode in ("1",):
        return np.asarray(img).astype(np.uint8) * 255
    if allow_binary_rgb and img.mode == "RGB":
        a = np.asarray(img)
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
    text = read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(f"{Path(path)}: malformed JSON ({e})") from e


class LockedError(DataError):
    """Another process holds the lock of an output folder."""


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike, what: str = "run") -> Iterator[Path]:
    """Hold an exclusive lock on ``<folder>/.lock`` for the duration of the block.

    Two tools writing the same output folder would leave a mix of both runs' files; the second
    one is refused instead, with a message naming the folder and the holder. The lock is an
    ``flock`` on a file that is never deleted, so the kernel releases it when its holder exits,
    even after ``kill -9`` (no stale lock to clean up).

    Raises:
        LockedError: another process holds the lock.
        DataError: the folder cannot be created or written (the message names it).
    """
    import fcntl

    d = Path(folder)
    try:
        d.mkdir(parents=True, exist_ok=True)
        fd = os.open(d / ".lock", os.O_RDWR | os.O_CREAT, 0o666 & ~_UMASK)
    except FileExistsError:
        raise DataError(f"{d}: exists and is not a folder") from None
    except OSError as e:
        raise DataError(f"{d}: cannot create or write the output folder ({e.strerror or e})") from e
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            raise LockedError(f"{d}: another {what} is writing to this folder ({holder}); wait "
                              "for it to finish or choose another output folder") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {os.uname().nodename}".encode(), 0)
        yield d
    finally:
        os.close(fd)  # releases the flock
