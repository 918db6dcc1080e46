"""Optical flow providers (FLOWS registry), backward warping, flow magnitude and a disk cache.

See ``vosbench/models/flow/base.py`` for the one sign convention every provider follows.
"""
from vosbench.models.flow.base import FlowEstimator, build_flow, flow_magnitude, pixel_grid, warp
from vosbench.models.flow.classical import DISFlow, FarnebackFlow, ZeroFlow
from vosbench.models.flow.raft import RAFTLargeFlow, RAFTSmallFlow
from vosbench.models.flow.cache import FlowCache

__all__ = [
    "FlowEstimator", "build_flow", "flow_magnitude", "pixel_grid", "warp", "FlowCache",
    "DISFlow", "FarnebackFlow", "ZeroFlow", "RAFTSmallFlow", "RAFTLargeFlow",
]
