"""Layers shared by methods: LIP's conv-GRU memory and MaskProp's deformable propagation."""
from vosbench.models.layers.convgru import ConvGRUCell
from vosbench.models.layers.deform_prop import DeformablePropagation

__all__ = ["ConvGRUCell", "DeformablePropagation"]
