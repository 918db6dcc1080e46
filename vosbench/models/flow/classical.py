"""Training-free flow providers: OpenCV DIS (the default), OpenCV Farneback, and zero flow.

Both OpenCV methods run on the CPU on 8-bit grey images (``frame -> round(255 * frame) -> luma``)
and follow the sign convention of ``vosbench.models.flow.base`` unchanged: OpenCV's
``calc(prev=a, next=b)`` returns ``flow[y, x] = (dx, dy)`` with ``prev(y, x) ~ next(y + dy, x + dx)``.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from vosbench.models.flow.base import FlowEstimator, _to_grey_u8
from vosbench.registry import FLOWS

_DIS_PRESETS = {"ultrafast": "DISOPTICAL_FLOW_PRESET_ULTRAFAST",
                "fast": "DISOPTICAL_FLOW_PRESET_FAST",
                "medium": "DISOPTICAL_FLOW_PRESET_MEDIUM"}


@FLOWS.register("dis")
class DISFlow(FlowEstimator):
    """OpenCV Dense Inverse Search flow (Kroeger et al., ECCV 2016); no weights.

    Args:
        preset: ``"ultrafast"``, ``"fast"`` or ``"medium"`` (default; OpenCV's speed/accuracy
            presets).
        variational_refinement_iterations: overrides the preset's number of variational
            refinement iterations when not None.
    """

    name = "dis"

    def __init__(self, *, preset: str = "medium", variational_refinement_iterations: int | None = None) -> None:
        super().__init__()
        if preset not in _DIS_PRESETS:
            raise ValueError(f"dis: unknown preset {preset!r}; choose one of {sorted(_DIS_PRESETS)}")
        self.preset = preset
        self.variational_refinement_iterations = variational_refinement_iterations
        self._dis = None  # created lazily: cv2 objects do not pickle (DataLoader workers)

    @property
    def cache_key(self) -> str:
        vri = "" if self.variational_refinement_iterations is None else f"-vr{self.variational_refinement_iterations}"
        return f"dis-{self.preset}{vri}"

    def _engine(self):
        if self._dis is None:
            import cv2

            dis = cv2.DISOpticalFlow_create(getattr(cv2, _DIS_PRESETS[self.preset]))
            if self.variational_refinement_iterations is not None:
                dis.setVariationalRefinementIterations(int(self.variational_refinement_iterations))
            self._dis = dis
        return self._dis

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_dis"] = None
        return state

    def estimate(self, frame_a: Tensor, frame_b: Tensor) -> Tensor:
        dis = self._engine()
        flows = [dis.calc(a, b, None) for a, b in zip(_to_grey_u8(frame_a), _to_grey_u8(frame_b))]
        return torch.from_numpy(np.stack(flows)).permute(0, 3, 1, 2).float()  # [B, 2, H, W]

    def extra_repr(self) -> str:
        return f"preset={self.preset!r}"


@FLOWS.register("farneback")
class FarnebackFlow(FlowEstimator):
    """OpenCV Farneback polynomial-expansion flow; no weights. Arguments are OpenCV's.

    Defaults are the values of OpenCV's optical-flow sample (``pyr_scale=0.5, levels=3,
    winsize=15, iterations=3, poly_n=5, poly_sigma=1.2``).
    """

    name = "farneback"

    def __init__(self, *, pyr_scale: float = 0.5, levels: int = 3, winsize: int = 15,
                 iterations: int = 3, poly_n: int = 5, poly_sigma: float = 1.2,
                 gaussian: bool = False) -> None:
        super().__init__()
        self.params = dict(pyr_scale=pyr_scale, levels=levels, winsize=winsize,
                           iterations=iterations, poly_n=poly_n, poly_sigma=poly_sigma)
        self.gaussian = gaussian

    @property
    def cache_key(self) -> str:
        p = self.params
        return (f"farneback-s{p['pyr_scale']}-l{p['levels']}-w{p['winsize']}-i{p['iterations']}"
                f"-n{p['poly_n']}-g{p['poly_sigma']}{'-gauss' if self.gaussian else ''}")

    def estimate(self, frame_a: Tensor, frame_b: Tensor) -> Tensor:
        import cv2

        flags = cv2.OPTFLOW_FARNEBACK_GAUSSIAN if self.gaussian else 0
        p = self.params
        flows = [
            cv2.calcOpticalFlowFarneback(a, b, None, p["pyr_scale"], p["levels"], p["winsize"],
                                         p["iterations"], p["poly_n"], p["poly_sigma"], flags)
            for a, b in zip(_to_grey_u8(frame_a), _to_grey_u8(frame_b))
        ]
        return torch.from_numpy(np.stack(flows)).permute(0, 3, 1, 2).float()

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.params.items())


@FLOWS.register("zero")
class ZeroFlow(FlowEstimator):
    """All-zero flow: warping becomes the identity (a no-motion ablation)."""

    name = "zero"

    def __init__(self) -> None:
        super().__init__()

    def estimate(self, frame_a: Tensor, frame_b: Tensor) -> Tensor:
        B, _, H, W = frame_a.shape
        return torch.zeros((B, 2, H, W), dtype=torch.float32, device=frame_a.device)
