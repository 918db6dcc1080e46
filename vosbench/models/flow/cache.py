"""A disk cache of flow fields, so a dataset's flows are computed once.

Layout: ``<root>/<dataset_name>/<estimator.cache_key>/<sequence>/<a>__<b>.npy`` (``dataset_name``
as ``FlowCache.dataset_name_for`` makes it, e.g. ``davis2016-480x854``), one
``float16[2, H, W]`` array per ordered frame pair (``flow(frame a, frame b)``), ``a``/``b`` being
frame names (or indices). float16 halves the size (1.6 MB per 854x480 pair); its resolution is
1/16 px below 16 px of motion and 1/4 px up to 512 px, finer than any provider's accuracy.
Every returned flow is the float16-rounded one, so a cached run and a fresh run agree exactly.

Writes are atomic (temporary file + rename), so concurrent writers (``tools/precompute_flow.py``
workers, DataLoader workers) and interrupted runs never leave a partial file; a rerun resumes.
"""
from __future__ import annotations

import io
import os
import re
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from vosbench.models.flow.base import FlowEstimator
from vosbench.utils.io import DataError, atomic_write

_SAFE = re.compile(r"^[A-Za-z0-9._+=@-][A-Za-z0-9._+=@ -]*$")


def _check_part(kind: str, value: object) -> str:
    s = str(value)
    if not _SAFE.match(s) or s in (".", ".."):
        raise ValueError(f"FlowCache: {kind} {s!r} cannot be used as a file name part")
    return s


class FlowCache:
    """Flow fields of one dataset and one estimator, stored on disk.

    Args:
        root: cache root folder (created on first write).
        estimator: the provider computing missing flows; its ``cache_key`` names the folder, so
            different providers / settings never mix.
        dataset_name: the dataset's name (include anything that changes the frames, e.g.
            ``davis2017-480p`` or ``ytvis2019-short360``).
    """

    def __init__(self, root: str | os.PathLike, estimator: FlowEstimator, dataset_name: str) -> None:
        self.root = Path(root)
        self.estimator = estimator
        self.dataset_name = _check_part("dataset name", dataset_name)
        self.dir = self.root / self.dataset_name / _check_part("estimator key", estimator.cache_key)

    @staticmethod
    def dataset_name_for(sample, override: str | None = None, size: tuple[int, int] | None = None) -> str:
        """The folder a video's flows are filed under: ``override`` if given, else
        ``sample.meta["dataset"]``, else ``"unknown"``; with ``size`` (the frames' working
        (H, W)) followed by ``-<H>x<W>``, so caches at different resolutions never mix. One rule
        for every reader and writer (``flow_propagation``, ``tools/precompute_flow.py``)."""
        name = str(override or sample.meta.get("dataset") or "unknown")
        return f"{name}-{int(size[0])}x{int(size[1])}" if size is not None else name

    def path(self, sequence: str, a: int | str, b: int | str) -> Path:
        """File of ``flow(frame a, frame b)`` in ``sequence``."""
        return (self.dir / _check_part("sequence", sequence)
                / f"{_check_part('frame', a)}__{_check_part('frame', b)}.npy")

    def has(self, sequence: str, a: int | str, b: int | str) -> bool:
        return self.path(sequence, a, b).is_file()

    def load(self, sequence: str, a: int | str, b: int | str) -> Tensor:
        """Read a stored flow as ``Tensor[2, H, W]`` float32.

        Raises:
            DataError: missing or unreadable file, or not a ``[2, H, W]`` array (names the file).
        """
        p = self.path(sequence, a, b)
        if not p.is_file():
            raise DataError(f"{p}: missing flow file")
        try:
            arr = np.load(p, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise DataError(f"{p}: unreadable flow file ({e}); delete it to recompute") from e
        if arr.ndim != 3 or arr.shape[0] != 2:
            raise DataError(f"{p}: expected a [2, H, W] flow array, got shape {arr.shape}")
        return torch.from_numpy(arr.astype(np.float32))

    def save(self, sequence: str, a: int | str, b: int | str, flow: Tensor) -> Tensor:
        """Store ``flow`` (``Tensor[2, H, W]``) atomically; returns the float16-rounded flow."""
        if flow.dim() != 3 or flow.shape[0] != 2:
            raise ValueError(f"FlowCache.save: expected [2, H, W], got {tuple(flow.shape)}")
        arr = flow.detach().cpu().to(torch.float16).numpy()
        buf = io.BytesIO()
        np.save(buf, arr, allow_pickle=False)
        with atomic_write(self.path(sequence, a, b), "wb") as f:
            f.write(buf.getvalue())
        return torch.from_numpy(arr.astype(np.float32))

    def get(self, sequence: str, a: int | str, b: int | str, frame_a: Tensor, frame_b: Tensor) -> Tensor:
        """``flow(frame_a, frame_b)``: read from disk, or computed, stored and returned.

        Args:
            sequence: the video id.
            a, b: frame names (or indices) of ``frame_a`` and ``frame_b``.
            frame_a, frame_b: Tensor[3, H, W] in 0-1 (used only on a cache miss, and to check
                that a stored flow has the frames' size).
        Returns:
            Tensor[2, H, W] float32 on ``frame_a``'s device.
        Raises:
            DataError: a stored flow has another size than the frames (cache built at another
                resolution under the same ``dataset_name``).
        """
        if self.has(sequence, a, b):
            flow = self.load(sequence, a, b)
            if tuple(flow.shape[-2:]) != tuple(frame_a.shape[-2:]):
                raise DataError(
                    f"{self.path(sequence, a, b)}: cached flow is {tuple(flow.shape[-2:])} but the "
                    f"frames are {tuple(frame_a.shape[-2:])}; use another dataset_name per resolution"
                )
            return flow.to(frame_a.device)
        flow = self.estimator(frame_a, frame_b)
        return self.save(sequence, a, b, flow).to(frame_a.device)

    def __repr__(self) -> str:
        return f"FlowCache({str(self.dir)!r})"
