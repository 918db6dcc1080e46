"""The Python API for the most common job: score a results folder with the official numbers.

    import vosbench
    scores = vosbench.evaluate("davis2017", "/data/DAVIS", "out/test/predictions")
    scores["J&F"], scores["J_mean"], scores["F_decay"]

It runs exactly what ``vosbench eval`` runs (``vosbench.metrics.runner``), so the numbers are
the same, but it writes nothing: no CSVs, no ``results.json``, no per-sequence cache.
"""
from __future__ import annotations

import os
from typing import Any

__all__ = ["evaluate"]


def evaluate(task: str, gt: str | os.PathLike, results: str | os.PathLike, *,
             split: str | None = None, resolution: str = "480p", workers: int = 1,
             allow_missing: bool = False, ignore_extra_labels: bool = False,
             with_t: bool | None = None, t_from_db_info: bool = False,
             fix_uint8_wrap: bool = False, details: bool = False) -> dict[str, Any]:
    """Official scores of ``results`` against the ground truth ``gt``, as a dict.

    Args:
        task: ``davis2016 | davis2017 | davis2017_unsupervised | segtrackv2 | ytvis``
            (``vosbench.metrics.runner.TASKS``).
        gt: the ground-truth folder in its official layout (DAVIS, SegTrack v2), or the
            YouTube-VIS annotation json.
        results: a DAVIS-layout results folder (``<seq>/<frame>.png``), or for ``ytvis`` a
            ``results.json`` (file, folder holding it, or submission zip).
        split: subset name (default ``val``; ``valid`` for ytvis).
        workers: processes over sequences (default 1: a library call should not start a process
            pool behind the caller's back; ``vosbench eval`` uses one per core).
        with_t: compute T (default: on for davis2016 only, as ``vosbench eval`` does).
        details: return the whole report (per object / per frame values) instead of the global
            numbers only.
    Returns:
        The global numbers: ``{"J&F", "J_mean", "J_recall", "J_decay", "F_mean", "F_recall",
        "F_decay"[, "T_mean"]}`` for the VOS tasks, ``{"AP", "AP50", "AP75", "APs", "APm", "APl",
        "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"}`` for ytvis (floats; official rounding is the
        CSV's business, not this dict's). With ``details=True`` the full report dict.
    Raises:
        vosbench.metrics.vos.EvaluationError / vosbench.metrics.vis.YTVISFormatError: bad input,
        with the file and the problem named.
    """
    from vosbench.metrics.runner import TASKS, evaluate_vos_folder, evaluate_ytvis_folder

    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose one of {list(TASKS)}")
    if task == "ytvis":
        report = evaluate_ytvis_folder(gt, results, None, split=split or "valid")
    else:
        if with_t is None:
            with_t = task == "davis2016"
        report = evaluate_vos_folder(
            task, gt, results, None, split=split or "val", resolution=resolution, workers=workers,
            allow_missing=allow_missing, with_t=with_t, t_from_db_info=t_from_db_info,
            fix_uint8_wrap=fix_uint8_wrap, use_cache=False, progress=False,
            ignore_extra_labels=ignore_extra_labels)
    return report if details else dict(report["global"])
