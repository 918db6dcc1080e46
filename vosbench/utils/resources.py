"""Where the files that ship with vosbench live: configs, suites, reported numbers, tiny checkpoints.

Two layouts, one lookup:

* a clone (and an editable ``pip install -e .``): the repository folders ``configs/``,
  ``benchmarks/suites/``, ``benchmarks/reported.yaml`` and ``methods/<name>/weights/``;
* a normal ``pip install .``: ``setup.py`` copies the same files, with the same relative paths,
  into the package folder ``vosbench/_resources/`` (``configs/`` gets an ``__init__.py`` there so
  Hydra can read it as ``pkg://vosbench._resources.configs``).

So a path written relative to the repository root in a suite or a config
(``methods/maskrnn/weights/maskrnn_tiny_synthetic.pth``) means the same file in both layouts.
"""
from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent.parent          # .../vosbench
PACKAGED = PACKAGE_DIR / "_resources"                          # present only in a built install
REPO = PACKAGE_DIR.parent                                      # the clone's root (when it is one)
PACKAGED_CONFIG_MODULE = "vosbench._resources.configs"

# The relative paths setup.py copies into vosbench/_resources (globs, relative to the repo root).
SHIPPED = ("configs/**/*.yaml", "benchmarks/suites/*.yaml", "benchmarks/reported.yaml",
           "methods/*/weights/*.pth")


def is_packaged() -> bool:
    """True in a normal (non-editable) install: the resources are package data."""
    return (PACKAGED / "configs" / "config.yaml").is_file()


def resource_root() -> Path:
    """The folder the shipped relative paths are relative to (the clone's root or ``_resources``)."""
    return PACKAGED if is_packaged() else REPO


def resource_path(rel: str | os.PathLike) -> Path:
    """``resource_path("benchmarks/suites")`` -> the shipped folder or file of that name."""
    return resource_root() / rel


def config_dir() -> Path:
    """The folder holding ``config.yaml`` and the config groups (``method/``, ``dataset/``, ...)."""
    return resource_path("configs")


def hydra_config_path() -> str:
    """What ``@hydra.main(config_path=...)`` gets: ``pkg://`` when installed, the folder in a clone."""
    return f"pkg://{PACKAGED_CONFIG_MODULE}" if is_packaged() else str(REPO / "configs")


def resolve_shipped(path: str | os.PathLike) -> Path:
    """A user path: absolute or existing relative to the working folder as given, else a shipped file.

    ``methods/maskrnn/weights/maskrnn_tiny_synthetic.pth`` in the default suite resolves to the
    clone's file, or to the installed copy when vosbench runs from any other folder.
    """
    p = Path(path).expanduser()
    if p.is_absolute() or p.exists():
        return p
    shipped = resource_path(p)
    return shipped if shipped.exists() else p  # neither: the user's path, for the error message
