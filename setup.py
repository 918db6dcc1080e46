from setuptools import find_packages, setup

setup(
    name="vosbench",
    version="0.1.0",
    description="Video object segmentation methods implemented, trained and benchmarked side by side",
    python_requires=">=3.10",
    packages=find_packages(include=["vosbench", "vosbench.*", "methods", "methods.*"]),
    include_package_data=True,
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
    },
)
