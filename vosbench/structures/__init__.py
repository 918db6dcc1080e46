"""Typed data contract: frames, videos, batches, predictions and mask conversions."""
from vosbench.structures.masks import (
    index_to_masks,
    masks_to_boxes,
    masks_to_index,
    probs_to_index,
    resize_masks,
    rle_decode,
    rle_encode,
)
from vosbench.structures.prediction import FramePrediction, VideoPrediction
from vosbench.structures.video import Frame, LazyFrames, ObjectMasks, Task, VideoBatch, VideoSample

__all__ = [
    "Frame", "LazyFrames", "ObjectMasks", "Task", "VideoBatch", "VideoSample",
    "FramePrediction", "VideoPrediction",
    "index_to_masks", "masks_to_index", "probs_to_index", "rle_encode", "rle_decode",
    "resize_masks", "masks_to_boxes",
]
