"""Fixtures of the tool tests (helpers live in tools_testing.py)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory) -> Path:
    """A cache folder for the tiny synthetic dataset shared by the tool tests."""
    return tmp_path_factory.mktemp("synthetic")
