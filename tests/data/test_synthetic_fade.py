"""The synthetic generator's ``fade`` option (objects lose their contrast for a few frames)."""
import json

import numpy as np
import pytest
from PIL import Image

from vosbench.config import compose, to_dict
from vosbench.data import build_dataset
from vosbench.data.synthetic import FADES_FILE, cache_key, generate, render_video

SIZE = dict(num_videos=3, num_frames=8, height=48, width=64, max_objects=3, seed=4)


def _read(root, kind, seq, t):
    ext = "jpg" if kind == "JPEGImages" else "png"
    return np.asarray(Image.open(root / kind / "480p" / seq / f"{t:05d}.{ext}"), dtype=np.float32)


def test_fade_zero_is_the_default_generator():
    """fade=0 draws nothing extra: the same pixels, the same marker and cache key as before."""
    for fade in (None, 0.0):
        kw = {} if fade is None else {"fade": fade}
        a = render_video(np.random.default_rng(7), num_frames=6, height=40, width=56, max_objects=3, **kw)
        b = render_video(np.random.default_rng(7), num_frames=6, height=40, width=56, max_objects=3)
        assert all(np.array_equal(x, y) for x, y in zip(a[:2], b[:2])) and a[2] == b[2]
    key = cache_key(fmt="davis2017", split="val", fade=0.0, **SIZE)
    assert key == "davis2017_val_n3_t8_48x64_o3_s4_v1"
    assert cache_key(fmt="davis2017", split="val", fade=0.5, **SIZE) == key + "_fade0.5"


def test_fade_changes_only_the_faded_objects(tmp_path):
    plain = generate(tmp_path / "plain", split="val", **SIZE)
    faded = generate(tmp_path / "faded", split="val", fade=1.0, **SIZE)
    assert not (plain / FADES_FILE.format(split="val")).exists()
    assert "fade" not in json.loads((plain / ".vosbench_synthetic_davis2017_val.json").read_text())
    episodes = json.loads((faded / FADES_FILE.format(split="val")).read_text())
    assert sum(len(v) for v in episodes.values()) >= 3  # fade=1: every annotated object fades
    seqs = (plain / "ImageSets" / "2017" / "val.txt").read_text().split()
    for seq in seqs:
        labels = [_read(plain, "Annotations", seq, t) for t in range(SIZE["num_frames"])]
        first = {o: min(t for t, lab in enumerate(labels) if (lab == o).any())
                 for o in np.unique(np.stack(labels)) if o}
        faded_px = np.zeros((SIZE["num_frames"], SIZE["height"], SIZE["width"]), bool)
        for o, t0, t1, alpha in episodes[seq]:
            assert o in first and first[o] < t0 < t1 <= SIZE["num_frames"] - 1  # reference stays clear
            assert 1 <= t1 - t0 <= 4 and 0.1 <= alpha <= 0.35
            for t in range(t0, t1):
                faded_px[t] |= labels[t] == o
        for t in range(SIZE["num_frames"]):
            # same videos: identical ground truth, identical pixels away from the faded objects
            assert np.array_equal(labels[t], _read(faded, "Annotations", seq, t))
            diff = np.abs(_read(plain, "JPEGImages", seq, t) - _read(faded, "JPEGImages", seq, t)).max(-1)
            if not faded_px[t].any():
                assert diff.max() == 0  # same input pixels, same JPEG
            else:
                # a faded object really changed (mostly: what lies behind it shows through)
                assert diff[faded_px[t]].mean() > 5 * diff[~faded_px[t]].mean() + 5


def test_fade_validation_and_config(tmp_path):
    with pytest.raises(ValueError, match="fade"):
        generate(tmp_path / "bad", fade=1.5, **SIZE)
    cfg = to_dict(compose(["dataset=synthetic_fade"]).dataset)
    assert cfg["fade"] > 0 and cfg["format"] == "davis2017"
    cfg.update(root=str(tmp_path / "cache"), split="train", num_videos=2, num_frames=5,
               height=48, width=64)
    ds = build_dataset(cfg)
    assert ds.root.name.endswith(f"_fade{cfg['fade']:g}") and len(ds) == 2
    assert (ds.root / FADES_FILE.format(split="train")).is_file()
