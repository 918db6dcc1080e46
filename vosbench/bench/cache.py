"""Result cache: one JSON file per (method config, checkpoint, dataset, metric, code, device).

The key is the SHA-256 of a canonical JSON of everything that can change a result:

* the resolved method config (``cfg.method`` after Hydra composition and overrides),
* the SHA-256 of the checkpoint file's bytes (not its path or mtime),
* the resolved dataset config, its root and ``max_videos``, plus a fingerprint of the videos the
  dataset lists (ids, frame counts, sizes),
* the evaluator name,
* a hash of the code that produces results: the method's package and ``vosbench/`` (the bench
  package itself, which only formats reports, is left out),
* the device type (FPS and memory differ between CPU and GPU).

So a re-run after changing one method's config, checkpoint or code recomputes that method only.
Entries are written atomically; a corrupt entry is reported and recomputed, never trusted.
"""
from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Any

from vosbench.utils.io import DataError, read_json, write_json

REPO = Path(__file__).resolve().parents[2]
CACHE_VERSION = 1


def default_cache_dir() -> Path:
    """``$VOSBENCH_CACHE`` or ``~/.cache/vosbench`` (the synthetic data's default cache too)."""
    env = os.environ.get("VOSBENCH_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "vosbench"


def canonical_hash(obj: Any) -> str:
    """SHA-256 of ``obj`` as sorted, compact JSON (non-JSON leaves go through ``str``)."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


_FILE_HASHES: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes (memoised per process on path, size and mtime)."""
    p = Path(path)
    st = p.stat()
    memo = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    if memo not in _FILE_HASHES:
        h = hashlib.sha256()
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        _FILE_HASHES[memo] = h.hexdigest()
    return _FILE_HASHES[memo]


def tree_hash(*roots: str | os.PathLike, exclude: tuple[str, ...] = ()) -> str:
    """SHA-256 over the relative paths and bytes of every ``*.py`` file under ``roots``."""
    h = hashlib.sha256()
    for root in roots:
        root = Path(root)
        files = [root] if root.is_file() else sorted(root.rglob("*.py"))
        for f in files:
            rel = f.relative_to(REPO) if f.is_relative_to(REPO) else f
            if any(part in exclude for part in rel.parts) or "__pycache__" in rel.parts:
                continue
            h.update(str(rel).encode())
            h.update(b"\0")
            h.update(f.read_bytes())
            h.update(b"\0")
    return h.hexdigest()


class ResultCache:
    """``<root>/results/<row>/<dataset>/<key>.json``; ``enabled=False`` never reads (still writes)."""

    def __init__(self, root: str | os.PathLike, *, enabled: bool = True) -> None:
        self.root = Path(root)
        self.enabled = enabled

    def path(self, row: str, dataset: str, key: str) -> Path:
        return self.root / "results" / row / dataset / f"{key}.json"

    def get(self, row: str, dataset: str, key: str) -> dict | None:
        if not self.enabled:
            return None
        p = self.path(row, dataset, key)
        if not p.is_file():
            return None
        try:
            entry = read_json(p)
        except DataError as e:
            warnings.warn(f"ignoring corrupt cache entry ({e}); recomputing", stacklevel=2)
            return None
        if not isinstance(entry, dict) or entry.get("cache_version") != CACHE_VERSION \
                or entry.get("key") != key:
            warnings.warn(f"ignoring stale cache entry {p}; recomputing", stacklevel=2)
            return None
        return entry

    def put(self, row: str, dataset: str, key: str, entry: dict) -> Path:
        p = self.path(row, dataset, key)
        write_json(p, {**entry, "key": key, "cache_version": CACHE_VERSION}, indent=1)
        return p
