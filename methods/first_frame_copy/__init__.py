"""first_frame_copy: the zero-motion baseline (repeat each object's reference mask)."""
from vosbench_methods.first_frame_copy import model  # noqa: F401  (registers "first_frame_copy")
from vosbench_methods.first_frame_copy.model import FirstFrameCopy

__all__ = ["FirstFrameCopy"]
