"""Shared model components: backbones, flow, detector base, layers, weight loading."""
from vosbench.models.base import VideoMethod

__all__ = ["VideoMethod"]
