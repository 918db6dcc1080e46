from setuptools import Extension, find_packages, setup

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
    ext_modules=EXT_MODULES,
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
    ],
    extras_require={
        "dev": ["pytest", "pytest-xdist", "pytest-timeout", "hypothesis", "hydra-submitit-launcher"],
    },
    entry_points={
        "console_scripts": [],
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
