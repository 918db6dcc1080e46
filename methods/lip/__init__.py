"""LIP: convolutional gated recurrent Mask R-CNN (importing the model registers ``lip``)."""
from vosbench_methods.lip import model  # noqa: F401
from vosbench_methods.lip.model import LIP, LIPVideoState

__all__ = ["LIP", "LIPVideoState"]
