"""LIP: convolutional gated recurrent Mask R-CNN (importing the model registers ``lip``)."""
from methods.lip import model  # noqa: F401
from methods.lip.model import LIP, LIPVideoState

__all__ = ["LIP", "LIPVideoState"]
