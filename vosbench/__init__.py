"""vosbench: video object segmentation methods implemented, trained and benchmarked side by side."""
__version__ = "0.1.0"

# The one-call API; light at import time (the metrics load on the first call). Importing vosbench
# never imports a method: the shipped ones register through the vosbench.plugins entry points.
from vosbench.api import evaluate  # noqa: E402

__all__ = ["evaluate", "__version__"]
