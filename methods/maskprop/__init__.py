"""MaskProp (Bertasius & Torresani, CVPR 2020): video instance segmentation by mask propagation.

Importing the package registers ``maskprop`` and two baselines on the same detector:
``maskprop_flowprop`` (the paper's optical-flow propagation ablation, Table 3) and
``maskprop_framelink`` (this repository's per-frame greedy mask-IoU linking).
"""
from vosbench_methods.maskprop import model  # noqa: F401  (registers the methods)
from vosbench_methods.maskprop.model import MaskProp, MaskPropFlowProp, MaskPropFrameLink

__all__ = ["MaskProp", "MaskPropFlowProp", "MaskPropFrameLink"]
