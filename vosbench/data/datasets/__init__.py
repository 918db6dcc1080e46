"""Registered dataset loaders (importing this module registers them in DATASETS)."""
from vosbench.data.datasets.base import VideoDataset
from vosbench.data.datasets.coco import COCO
from vosbench.data.datasets.davis import DAVIS2016, DAVIS2017
from vosbench.data.datasets.segtrackv2 import SegTrackV2
from vosbench.data.datasets.synthetic import synthetic
from vosbench.data.datasets.ytvis import YTVIS2019, YTVIS2021

__all__ = ["VideoDataset", "COCO", "DAVIS2016", "DAVIS2017", "SegTrackV2", "YTVIS2019", "YTVIS2021", "synthetic"]
