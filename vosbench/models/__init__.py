"""Shared model components: backbones, flow, detector base, layers, weight loading.

Importing this package registers the backbones (BACKBONES) and flow providers (FLOWS).
"""
from vosbench.models import backbones, flow  # noqa: F401  (registration)
from vosbench.models.base import VideoMethod

__all__ = ["VideoMethod"]
