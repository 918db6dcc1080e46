"""Datasets (registered loaders + built-in synthetic data), training clips and collation.

    from vosbench.data import build_dataset, ClipDataset, collate_clips
"""
from __future__ import annotations

from typing import Any, Mapping

from vosbench.data import datasets  # noqa: F401  (registration)
from vosbench.data.clips import ClipDataset, collate_clips
from vosbench.registry import DATASETS


def build_dataset(cfg: Mapping[str, Any], **overrides: Any):
    """Build ``DATASETS.get(cfg["name"])`` with the config's other keys (and ``overrides``)."""
    from vosbench.config import build

    return build(cfg, DATASETS, **overrides)


__all__ = ["build_dataset", "ClipDataset", "collate_clips", "DATASETS"]
