"""MaskRNN (Hu, Huang, Schwing, NIPS 2017); importing registers ``maskrnn`` in METHODS."""
from methods.maskrnn import model  # noqa: F401
from methods.maskrnn.model import MaskRNN, MaskRNNState

__all__ = ["MaskRNN", "MaskRNNState"]
