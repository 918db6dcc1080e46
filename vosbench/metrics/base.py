"""Evaluator interface (cf. detectron2 ``DatasetEvaluator``)."""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # no runtime import: offline evaluation (tools/eval.py) does not need torch
    from vosbench.structures import VideoPrediction, VideoSample


class Evaluator(ABC):
    """Streaming evaluation: memory is bounded by one video.

    ``process`` consumes ``prediction.frames`` (a one-shot iterable) together with the ground
    truth frames of ``sample``; ``evaluate`` returns flat ``str -> float`` keys such as
    ``J&F``, ``J_mean``, ``J_recall``, ``J_decay``, ``F_mean``..., ``T_mean``, ``mAP``, ``mAP_50``.
    """

    def reset(self) -> None:
        """Forget everything processed so far."""

    @abstractmethod
    def process(self, sample: "VideoSample", prediction: "VideoPrediction") -> None:
        """Accumulate the statistics of one video."""

    @abstractmethod
    def evaluate(self) -> dict[str, float]:
        """Return the global metrics of everything processed."""
