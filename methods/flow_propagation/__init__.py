"""flow_propagation: warp the previous prediction along optical flow (DIS by default)."""
from vosbench_methods.flow_propagation import model  # noqa: F401  (registers "flow_propagation")
from vosbench_methods.flow_propagation.model import FlowPropagation

__all__ = ["FlowPropagation"]
