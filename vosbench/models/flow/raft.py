"""torchvision RAFT (Teed & Deng, ECCV 2020) as flow providers ``raft_small`` / ``raft_large``.

Weights come from a local file only (torchvision's ``raft_small_C_T_V2-01064c6d.pth`` /
``raft_large_C_T_SKHT_V2-ff5fadd5.pth`` state dicts, or a vosbench checkpoint), under the
weights policy of ``vosbench.models.weights``: an untrained RAFT outputs noise, so no file is an
error naming the file, unless random init is allowed (``allow_random_init=True``, or None and
the scoped ``weights_policy``/top-level ``allow_random_init=true``).

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
from vosbench.models.weights import load_pretrained
from vosbench.registry import FLOWS


class _RAFTFlow(FlowEstimator):
    arch: str = ""

    def __init__(self, *, weights: str | os.PathLike | None = None, num_flow_updates: int = 12,
                 allow_random_init: bool | None = None) -> None:
        super().__init__()
        from torchvision.models import optical_flow

        self.model = getattr(optical_flow, self.arch)(weights=None, progress=False)
        # The weights policy (vosbench.models.weights): an untrained RAFT outputs meaningless
        # flow, so no file is an error unless random init is allowed (explicitly or by scope).
        rep = load_pretrained(self.model, weights, component=self.arch, name=self.name,
                              key="method.flow.weights", allow_random_init=allow_random_init)
        self.model.eval()
        self.weights = None if rep is None else str(weights)
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
    ``num_flow_updates`` (recurrent refinement steps, default 12), ``allow_random_init``
    (None: the scoped policy)."""

    name = "raft_small"
    arch = "raft_small"


@FLOWS.register("raft_large")
class RAFTLargeFlow(_RAFTFlow):
    """torchvision ``raft_large`` (~5M parameters). Same arguments as ``raft_small``."""

    name = "raft_large"
    arch = "raft_large"
