"""J over normalised time (the decay plot) from the evaluators' per-frame series.

The VOS evaluators expose ``per_frame() -> {row: {"frames", "J", "F", ...}}`` (one row per
object, on the evaluated frames only: DAVIS drops the first and the last annotated frame).
``mean_curve`` maps each row's J sequence to normalised time t = i / (n - 1) in [0, 1], bins it
and averages over objects, so videos of different lengths share one axis.
"""
from __future__ import annotations

import math

import numpy as np

NUM_BINS = 20


def mean_curve(per_frame: dict[str, dict], num_bins: int = NUM_BINS) -> list[float | None]:
    """Mean J per bin of normalised time.

    Args:
        per_frame: ``row -> {"J": list[float | None], ...}`` (NaN / None values are skipped).
    Returns:
        ``num_bins`` values in 0-1; ``None`` for a bin no object reaches.
    """
    sums = np.zeros(num_bins)
    counts = np.zeros(num_bins)
    for series in per_frame.values():
        values = series.get("J") or []
        n = len(values)
        if n == 0:
            continue
        t = np.linspace(0.0, 1.0, n) if n > 1 else np.zeros(1)
        b = np.minimum((t * num_bins).astype(int), num_bins - 1)
        for bi, v in zip(b, values):
            if v is not None and not math.isnan(v):
                sums[bi] += v
                counts[bi] += 1
    return [float(s / c) if c else None for s, c in zip(sums, counts)]
