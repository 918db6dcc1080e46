"""vosbench: video object segmentation methods implemented, trained and benchmarked side by side."""
__version__ = "0.1.0"
