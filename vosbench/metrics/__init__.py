"""Metrics: pure functions (``functional``) and streaming evaluators registered in ``METRICS``.

Registered evaluators (``vosbench.metrics.build_evaluator(name, **kw)``):

* ``davis2017``: DAVIS-2017 semi-supervised, per object (davis2017-evaluation numbers);
* ``davis2017_unsupervised``: DAVIS-2017 unsupervised, Hungarian object matching;
* ``davis2016``: DAVIS-2016, union foreground, with T (fperazzi/davis numbers);
* ``segtrackv2``: per-object J and F with DAVIS conventions;
* ``ytvis``: YouTube-VIS video AP/AR (youtubevos/cocoapi ``ytvoseval`` numbers).
"""
from __future__ import annotations

from vosbench.metrics.base import Evaluator
from vosbench.metrics import functional  # noqa: F401
from vosbench.metrics.vos import (  # noqa: F401  (registers the VOS evaluators)
    DAVIS2016Evaluator,
    DAVIS2017Evaluator,
    DAVIS2017UnsupervisedEvaluator,
    EvaluationError,
    SegTrackV2Evaluator,
    SequenceResult,
)
from vosbench.metrics.vis import (  # noqa: F401  (registers ``ytvis``)
    YTVISEvaluator,
    evaluate_ytvis_json,
)
from vosbench.registry import METRICS


def build_evaluator(name: str, **kwargs) -> Evaluator:
    """Build the evaluator registered as ``name`` with keyword arguments ``kwargs``."""
    return METRICS.get(name)(**kwargs)


__all__ = ["Evaluator", "build_evaluator", "EvaluationError", "SequenceResult",
           "DAVIS2016Evaluator", "DAVIS2017Evaluator", "DAVIS2017UnsupervisedEvaluator",
           "SegTrackV2Evaluator", "YTVISEvaluator", "evaluate_ytvis_json"]
