"""The default-off generator options ``distractors`` / ``fast_objects`` of vosbench.data.synthetic
(used by benchmarks/maskprop_synthetic.py --vis-clean)."""
import json

import numpy as np
import pytest

from vosbench.data import synthetic
from vosbench.data.datasets import YTVIS2019


def _record_shapes(monkeypatch):
    """Record every shape the generator creates: (annotated, fast) and its centre path."""
    made = []
    orig = synthetic._random_shape

    def rec(rng, h, w, t_len, *, start, annotated, fast, **kw):
        s = orig(rng, h, w, t_len, start=start, annotated=annotated, fast=fast, **kw)
        made.append((annotated, fast, s))
        return s

    monkeypatch.setattr(synthetic, "_random_shape", rec)
    return made


@pytest.mark.parametrize("clean", [False, True])
def test_clean_option_drops_distractors_and_fast_movers(monkeypatch, clean):
    made = _record_shapes(monkeypatch)
    rng = np.random.default_rng(11)
    for _ in range(30):
        synthetic.render_video(rng, num_frames=6, height=48, width=64, max_objects=3,
                               distractors=not clean, fast_objects=not clean)
    unannotated = sum(not a for a, _, _ in made)
    fast = sum(f for _, f, _ in made)
    if clean:
        assert unannotated == 0 and fast == 0 and len(made) >= 30
    else:  # the default keeps the hard cases (30 videos: both occur)
        assert unannotated > 0 and fast > 0


def test_clean_option_cache_key_marker_and_default_unchanged(tmp_path):
    kw = dict(fmt="ytvis", split="val", num_videos=2, num_frames=3, height=32, width=48,
              max_objects=2, seed=1)
    default_key = synthetic.cache_key(**kw)
    assert default_key == synthetic.cache_key(**kw, distractors=True, fast_objects=True)
    assert synthetic.cache_key(**kw, distractors=False, fast_objects=False) == default_key + "_nodistr_nofast"
    a = synthetic.cached_generate(tmp_path, **kw)
    b = synthetic.cached_generate(tmp_path, **kw, distractors=False, fast_objects=False)
    assert a != b and a.name == default_key
    marker_a = json.loads((a / ".vosbench_synthetic_ytvis_val.json").read_text())
    marker_b = json.loads((b / ".vosbench_synthetic_ytvis_val.json").read_text())
    assert "distractors" not in marker_a and marker_b["distractors"] is False
    assert marker_b["fast_objects"] is False
    ds = YTVIS2019(root=b, split="val")  # the real loader reads the clean split
    assert len(ds) == 2 and all(int(lab) in synthetic.SHAPES for s in ds for f in s.frames for lab in f.labels)


def test_vis_clean_dataset_config(tmp_path):
    """``dataset=synthetic_vis_clean`` reaches the generator through the registered dataset."""
    from vosbench.config import compose, to_dict
    from vosbench.data import build_dataset
    cfg = to_dict(compose(["dataset=synthetic_vis_clean"]).dataset)
    assert cfg["format"] == "ytvis" and cfg["distractors"] is False and cfg["fast_objects"] is False
    cfg.update(root=str(tmp_path), num_videos=2, num_frames=3)
    clean = build_dataset(cfg)
    default = build_dataset(dict(cfg, distractors=True, fast_objects=True))
    assert clean.root != default.root and len(clean) == len(default) == 2
