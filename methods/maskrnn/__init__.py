"""MaskRNN (Hu, Huang, Schwing, NIPS 2017); importing registers ``maskrnn`` in METHODS."""
from vosbench_methods.maskrnn import model  # noqa: F401
from vosbench_methods.maskrnn.model import MaskRNN, MaskRNNState

__all__ = ["MaskRNN", "MaskRNNState"]
