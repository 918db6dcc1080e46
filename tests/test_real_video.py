"""Issue #22: the trained-on-real-video rows of the default suite, their checkpoints, and the
recipe of ``benchmarks/real_video.py`` (which trains them through ``tools/train.py``).

Fast: nothing here trains or runs inference; the rows' numbers are checked by
``python tools/bench.py --verify`` (benchmarks/RESULTS.md, #22).
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from vosbench.bench.suite import load_suite
from vosbench.config import compose, to_dict

REPO = Path(__file__).resolve().parent.parent
ROWS = {"maskrnn_tiny_davis2016": "maskrnn", "lip_tiny_davis2016": "lip"}


def _script():
    spec = importlib.util.spec_from_file_location("real_video", REPO / "benchmarks" / "real_video.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def suite():
    return load_suite(REPO / "benchmarks" / "suites" / "default.yaml")


def _args(mod, tmp_path):
    """The script's default recipe (its own argument parser), output under ``tmp_path``."""
    return mod.build_parser().parse_args(["--out", str(tmp_path)])


def test_every_training_command_composes_with_the_real_configs(tmp_path):
    """Each ``tools/train.py`` command of the script is a valid Hydra override list (struct
    mode: a misspelt key fails here) with the recipe the note states."""
    mod = _script()
    runs = mod.train_runs(_args(mod, tmp_path))
    assert [n for n, _ in runs["maskrnn"]] == ["maskrnn"]
    assert [n for n, _ in runs["lip"]] == ["lip_image", "lip"]
    for method, seq in runs.items():
        for name, ov in seq:
            cfg = compose(ov)
            assert cfg.dataset.name == "davis2016" and cfg.trainer.train_split == "train"
            assert cfg.trainer.clip.resize_short == 120
            assert cfg.trainer.data_check != "off"  # the split is checked before the model is built
            assert cfg.output_dir == str(tmp_path / name)
    mr = compose(runs["maskrnn"][0][1])
    assert mr.method.single_frame_iters == mr.trainer.max_iter // 2  # both offline stages run
    assert mr.checkpoint.endswith("maskrnn_tiny_synthetic.pth")
    img, vid = (compose(ov) for _, ov in runs["lip"])
    assert img.method.stage == "image" and img.method.num_ids == 1
    assert vid.method.stage == "video" and vid.method.pretrained == str(tmp_path / "lip_image" / "model_final.pth")
    assert vid.trainer.clip.num_frames == 8 and vid.method.freeze_backbone_in_video


@pytest.mark.parametrize("row", sorted(ROWS))
def test_suite_row_runs_the_committed_real_checkpoint_at_the_training_size(suite, row):
    mod = _script()
    spec = suite.row(row)
    m = ROWS[row]
    assert spec.datasets == ["davis2016_mini"]
    assert spec.checkpoint == mod.COMMITTED[m]
    cfg_name, sizes = mod.test_overrides(m, 120)
    assert spec.method == cfg_name and list(spec.overrides) == sizes  # the script scores what bench scores
    exp = [e for e in suite.expected if e.row == row and e.dataset == "davis2016_mini"]
    assert {e.metric for e in exp} >= {"J&F", "J_mean"} and all(e.tol <= 0.02 for e in exp)


@pytest.mark.parametrize("row", sorted(ROWS))
def test_committed_checkpoint_is_small_and_loads_strictly(suite, row):
    from vosbench.engine.checkpoint import load_checkpoint
    from vosbench.engine.defaults import build_method, load_covering_checkpoint

    spec = suite.row(row)
    path = REPO / spec.checkpoint
    assert path.stat().st_size <= 5 * 1024 * 1024
    ck = load_checkpoint(path)
    trained = ck["config"]
    # trained by tools/train.py on the real DAVIS-2016 train split at short side 120
    assert trained["dataset"]["name"] == "davis2016" and trained["trainer"]["train_split"] == "train"
    assert trained["trainer"]["clip"]["resize_short"] == 120
    assert Path(trained["dataset"]["root"]).name == "davis2016-train"
    cfg = compose([f"method={spec.method}", "dataset=davis2016", *spec.overrides,
                   f"checkpoint={path}"])
    reports: list = []
    method = build_method(cfg, "cpu", covered_by=str(path), reports=reports)
    before = {k: v.clone() for k, v in method.state_dict().items()}
    load_covering_checkpoint(method, str(path), reports)  # strict: raises on any key mismatch
    changed = sum(not torch.equal(before[k], v) for k, v in method.state_dict().items())
    assert changed > 0.5 * len(before)
    # and the weights differ from the synthetic checkpoint they started from
    syn = load_checkpoint(REPO / _script().SYNTHETIC[ROWS[row]])["model"]
    diff = [k for k, v in ck["model"].items() if k in syn and v.shape == syn[k].shape
            and v.is_floating_point() and not torch.equal(v, syn[k])]
    assert len(diff) > 0.3 * len(syn)
    assert to_dict(cfg.method)["name"] == trained["method"]["name"]
