"""MaskProp (Bertasius & Torresani, CVPR 2020): video instance segmentation by mask propagation.

Importing the package registers ``maskprop`` and the ``maskprop_framelink`` baseline.
"""
from vosbench_methods.maskprop import model  # noqa: F401  (registers the methods)
from vosbench_methods.maskprop.model import MaskProp, MaskPropFrameLink

__all__ = ["MaskProp", "MaskPropFrameLink"]
