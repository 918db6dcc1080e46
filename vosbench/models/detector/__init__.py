"""Mask R-CNN base shared by LIP and MaskProp."""
from vosbench.models.detector.mask_rcnn import (BoxPredictor, DetectorOutput, MaskPredictor, MaskRCNNBase,
                                                targets_from_masks)

__all__ = ["MaskRCNNBase", "DetectorOutput", "BoxPredictor", "MaskPredictor", "targets_from_masks"]
