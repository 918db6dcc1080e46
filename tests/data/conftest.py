import shutil

import pytest

from vosbench.data.synthetic import generate


@pytest.fixture(scope="session")
def _davis_master(tmp_path_factory):
    root = tmp_path_factory.mktemp("davis_master")
    generate(root, fmt="davis2017", split="train", num_videos=2, num_frames=5, height=48, width=64,
             max_objects=3, seed=3)
    return root


@pytest.fixture
def davis17(tmp_path, _davis_master):
    """A fresh, writable tiny DAVIS-2017 folder (tests may break it)."""
    dst = tmp_path / "davis"
    shutil.copytree(_davis_master, dst)
    return dst


@pytest.fixture(scope="session")
def _ytvis_master(tmp_path_factory):
    root = tmp_path_factory.mktemp("ytvis_master")
    generate(root, fmt="ytvis", split="train", num_videos=2, num_frames=4, height=48, width=64,
             max_objects=3, seed=5)
    return root


@pytest.fixture
def ytvis(tmp_path, _ytvis_master):
    dst = tmp_path / "ytvis"
    shutil.copytree(_ytvis_master, dst)
    return dst
