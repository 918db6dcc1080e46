"""Engine test fixtures: a tiny learnable method and in-memory batches (no dataset code needed)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import engine_testing  # noqa: E402  (registers _tiny_test_method)


@pytest.fixture
def tiny_model():
    torch.manual_seed(0)
    return engine_testing.TinyTestMethod(hidden=4)
