"""Shared test fixtures. Area-specific fixtures live in tests/<area>/conftest.py."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("VOSBENCH_SHARED", REPO.parent / "shared"))
DAVIS_MINI = SHARED / "data" / "davis2016-mini"
FORMATS = SHARED / "data" / "formats"

# Two xdist workers on two cores: one intra-op thread each avoids oversubscription.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def davis_mini() -> Path:
    """The real DAVIS-2016 sequences in ../shared (skips cleanly when absent)."""
    if not (DAVIS_MINI / "JPEGImages").is_dir():
        pytest.skip(f"real DAVIS-2016 data not found at {DAVIS_MINI}")
    return DAVIS_MINI


@pytest.fixture(scope="session")
def formats_dir() -> Path:
    """The real annotation samples in ../shared/data/formats (skips cleanly when absent)."""
    if not FORMATS.is_dir():
        pytest.skip(f"annotation samples not found at {FORMATS}")
    return FORMATS
