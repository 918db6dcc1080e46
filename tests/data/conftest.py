import shutil

import pytest

from vosbench.data.synthetic import generate


def _generated(tmp_path_factory, fmt: str, num_frames: int, seed: int):
    """A tiny generated dataset folder in ``fmt``, written once per session."""
    root = tmp_path_factory.mktemp(f"{fmt}_master")
    generate(root, fmt=fmt, split="train", num_videos=2, num_frames=num_frames, height=48,
             width=64, max_objects=3, seed=seed)
    return root


@pytest.fixture(scope="session")
def _davis_master(tmp_path_factory):
    return _generated(tmp_path_factory, "davis2017", num_frames=5, seed=3)


@pytest.fixture(scope="session")
def _ytvis_master(tmp_path_factory):
    return _generated(tmp_path_factory, "ytvis", num_frames=4, seed=5)


@pytest.fixture
def davis17(tmp_path, _davis_master):
    """A fresh, writable tiny DAVIS-2017 folder (tests may break it)."""
    dst = tmp_path / "davis"
    shutil.copytree(_davis_master, dst)
    return dst


@pytest.fixture
def ytvis(tmp_path, _ytvis_master):
    """A fresh, writable tiny YouTube-VIS folder (tests may break it)."""
    dst = tmp_path / "ytvis"
    shutil.copytree(_ytvis_master, dst)
    return dst
