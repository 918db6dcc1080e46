import glob
import os
import shutil

from setuptools import Extension, find_packages, setup
from setuptools.command.build_py import build_py

# Files that ship with the package, by their path in the repository (the folders stay where they
# are in a clone): a normal install copies them to vosbench/_resources/<same path>, where
# vosbench.utils.resources finds them (and Hydra reads pkg://vosbench._resources.configs).
# Keep in sync with vosbench/utils/resources.py:SHIPPED and MANIFEST.in.
RESOURCES = ("configs/**/*.yaml", "benchmarks/suites/*.yaml", "benchmarks/reported.yaml",
             "methods/*/weights/*.pth")


class BuildWithResources(build_py):
    """build_py + the shipped configs, suites, reported numbers and tiny checkpoints."""

    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):  # an editable install reads the clone's folders
            return
        here = os.path.dirname(os.path.abspath(__file__))
        dest = os.path.join(self.build_lib, "vosbench", "_resources")
        for pattern in RESOURCES:
            for src in sorted(glob.glob(os.path.join(here, pattern), recursive=True)):
                target = os.path.join(dest, os.path.relpath(src, here))
                os.makedirs(os.path.dirname(target), exist_ok=True)
                shutil.copyfile(src, target)
        for pkg in ("", "configs"):  # Hydra's pkg:// source needs a package with an __init__.py
            with open(os.path.join(dest, pkg, "__init__.py"), "w") as f:
                f.write('"""Package data copied from the repository by setup.py (do not edit)."""\n')

# The DAVIS-2016 T metric resolves equal-cost matching paths in Boost's heap order; this small C
# module replays that order (vosbench/metrics/_grid_dijkstra.c). Optional: without a C compiler
# the install still works and T falls back to a numpy solver that may break such ties differently.
EXT_MODULES = [
    Extension("vosbench.metrics._grid_dijkstra", ["vosbench/metrics/_grid_dijkstra.c"],
              extra_compile_args=["-O2", "-ffp-contract=off"], optional=True),
]

setup(
    name="vosbench",
    version="0.1.0",
    description="Video object segmentation methods implemented, trained and benchmarked side by side",
    python_requires=">=3.10",
    # The shipped methods live in the folder methods/ but install as `vosbench_methods`: a
    # top-level `methods` in site-packages would collide with any other project's `methods`.
    packages=find_packages(include=["vosbench", "vosbench.*"])
    + ["vosbench_methods"] + [f"vosbench_methods.{p}" for p in find_packages("methods")],
    package_dir={"vosbench_methods": "methods"},
    include_package_data=True,
    # The tiny checkpoints ship once, in vosbench/_resources/methods/<name>/weights (BuildWithResources).
    exclude_package_data={"": ["weights/*.pth"]},
    ext_modules=EXT_MODULES,
    cmdclass={"build_py": BuildWithResources},
    install_requires=[
        "torch>=2.14",
        "torchvision>=0.29",
        "numpy",
        "opencv-python-headless",
        "pycocotools",
        "hydra-core>=1.3,<1.4",
        "omegaconf>=2.3,<2.4",
        "scikit-image",
        "scipy",
        "pillow",
        "tqdm",
        "matplotlib",
        "tensorboard",
        "pyyaml",
        # H.264 mp4 for `vosbench visualize` (browsers do not play OpenCV's mp4v): the package
        # ships a static ffmpeg binary with libx264, so nothing else needs installing.
        "imageio-ffmpeg>=0.5",
    ],
    extras_require={
        "dev": ["pytest", "pytest-xdist", "pytest-timeout", "hypothesis", "hydra-submitit-launcher"],
    },
    entry_points={
        "console_scripts": ["vosbench = vosbench.cli:main"],
        # The shipped methods register exactly as a third-party plugin does: the core imports
        # no method; the registry loads these modules on its first miss.
        "vosbench.plugins": [
            "first_frame_copy = vosbench_methods.first_frame_copy",
            "flow_propagation = vosbench_methods.flow_propagation",
            "maskrnn = vosbench_methods.maskrnn",
            "lip = vosbench_methods.lip",
            "maskprop = vosbench_methods.maskprop",
        ],
    },
)
