"""Fixtures of the fuzz suite: fresh, writable copies of small real-format folders."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fixtures as fx  # noqa: E402


@pytest.fixture(scope="session")
def _masters(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz_masters")
    d17 = fx.make_davis2017(root / "d17")
    d16 = fx.make_davis2016(root / "d16")
    st = fx.make_segtrack(root / "st")
    yt = fx.make_ytvis(root / "yt")
    return {
        "davis2017": (d17, fx.make_davis2017_results(d17, root / "d17_res")),
        "davis2016": (d16, fx.make_davis2016_results(d16, root / "d16_res")),
        "segtrackv2": (st, fx.make_segtrack_results(st, root / "st_res")),
        "ytvis": (yt, fx.make_ytvis_results(yt / "train.json", root / "yt_res" / "results.json")),
    }


@pytest.fixture
def data(tmp_path, _masters):
    """``data(task) -> (gt, results)``: fresh copies the test may break."""
    def get(task: str):
        gt, res = _masters[task]
        g, r = tmp_path / f"{task}_gt", tmp_path / f"{task}_res"
        shutil.copytree(gt, g)
        if res.is_dir():
            shutil.copytree(res, r)
        else:
            r.mkdir()
            shutil.copyfile(res, r / res.name)
            r = r / res.name
        return g, r
    return get


@pytest.fixture
def mini(tmp_path):
    """Two trimmed davis2016-mini sequences (real release files) and results from them."""
    if not (fx.MINI / "JPEGImages").is_dir():
        pytest.skip("shared davis2016-mini data not present")
    gt = fx.real_davis2016(tmp_path / "mini")
    return gt, fx.make_davis2016_results(gt, tmp_path / "mini_res")


@pytest.fixture
def formats_dir():
    if not (fx.FORMATS / "ovis_sample_ann.json").is_file():
        pytest.skip("shared format samples not present")
    return fx.FORMATS
