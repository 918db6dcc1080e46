"""torchvision RAFT (Teed & Deng, ECCV 2020) as flow providers ``raft_small`` / ``raft_large``.

Weights come from a local file only (torchvision's ``raft_small_C_T_V2-01064c6d.pth`` /
``raft_large_C_T_SKHT_V2-ff5fadd5.pth`` state dicts, or a vosbench checkpoint). ``weights`` is
required: an untrained RAFT outputs noise, so there is no silent random init. Tests that only
exercise the plumbing pass ``allow_random_init=True`` explicitly.

torchvision's ``RAFT(image1, image2)`` returns the flow from ``image1`` to ``image2`` with
``flow[:, 0] = dx``, ``flow[:, 1] = dy`` on ``image1``'s grid, which is our convention
(``vosbench.models.flow.base``), so it is passed through unchanged. Inputs are mapped to [-1, 1]
(torchvision's ``OpticalFlow`` preset transform) and replicate-padded on the bottom/right to a
multiple of 8 and at least 128 px, which RAFT requires; the padding is cropped off the result.
"""
from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import Tensor

from vosbench.models.flow.base import FlowEstimator
from vosbench.models.weights import load_weights
from vosbench.registry import FLOWS


class _RAFTFlow(FlowEstimator):
    arch: str = ""
    weights_hint: str = ""

    def __init__(self, *, weights: str | os.PathLike | None = None, num_flow_updates: int = 12,
                 allow_random_init: bool = False) -> None:
        super().__init__()
        from torchvision.models import optical_flow

        if weights is None and not allow_random_init:
            raise ValueError(
                f"{self.name}: `weights` must be the path of a local {self.arch} state dict (e.g. "
                f"{self.weights_hint} from torchvision); an untrained RAFT gives meaningless flow. "
                "Only tests may pass allow_random_init=True."
            )
        self.model = getattr(optical_flow, self.arch)(weights=None, progress=False)
        if weights is not None:
            load_weights(self.model, weights)
        self.model.eval()
        self.weights = None if weights is None else str(weights)
        self.num_flow_updates = int(num_flow_updates)

    @property
    def cache_key(self) -> str:
        w = "random" if self.weights is None else os.path.splitext(os.path.basename(self.weights))[0]
        return f"{self.name}-{w}-it{self.num_flow_updates}"

    def train(self, mode: bool = True):  # RAFT is a frozen provider; keep its BN in eval mode
        return super().train(False)

    def estimate(self, frame_a: Tensor, frame_b: Tensor) -> Tensor:
        dev = next(self.model.parameters()).device
        H, W = frame_a.shape[-2:]
        # RAFT needs sides divisible by 8 and at least 128 px (its correlation pyramid).
        ph, pw = max(128 - H, (-H) % 8), max(128 - W, (-W) % 8)
        pair = torch.cat([frame_a, frame_b]).to(dev, torch.float32) * 2.0 - 1.0  # [2B, 3, H, W]
        if ph or pw:
            pair = F.pad(pair, (0, pw, 0, ph), mode="replicate")
        a, b = pair.chunk(2)
        flow = self.model(a, b, num_flow_updates=self.num_flow_updates)[-1]  # [B, 2, H+ph, W+pw]
        return flow[..., :H, :W]


@FLOWS.register("raft_small")
class RAFTSmallFlow(_RAFTFlow):
    """torchvision ``raft_small`` (~1M parameters). Args: ``weights`` (local path, required),
    ``num_flow_updates`` (recurrent refinement steps, default 12), ``allow_random_init`` (tests)."""

    name = "raft_small"
    arch = "raft_small"
    weights_hint = "raft_small_C_T_V2-01064c6d.pth"


@FLOWS.register("raft_large")
class RAFTLargeFlow(_RAFTFlow):
    """torchvision ``raft_large`` (~5M parameters). Same arguments as ``raft_small``."""

    name = "raft_large"
    arch = "raft_large"
    weights_hint = "raft_large_C_T_SKHT_V2-ff5fadd5.pth"
