"""The methods shipped with vosbench. Importing this package registers all of them.

Each subpackage is imported explicitly (no directory scanning); a method never imports another.
"""
from vosbench_methods import first_frame_copy, flow_propagation, lip, maskprop, maskrnn  # noqa: F401
