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


def test_fade_alpha_changes_only_the_alpha(tmp_path):
    """Another alpha range: the same episodes and labels, only the faded pixels differ; near 0 the
    object all but vanishes (``synthetic_fade_hard``)."""
    base = generate(tmp_path / "base", split="val", fade=1.0, **SIZE)
    hard = generate(tmp_path / "hard", split="val", fade=1.0, fade_alpha=[0.0, 0.05], **SIZE)
    plain = generate(tmp_path / "plain", split="val", **SIZE)
    ep_base = json.loads((base / FADES_FILE.format(split="val")).read_text())
    ep_hard = json.loads((hard / FADES_FILE.format(split="val")).read_text())
    assert ep_base.keys() == ep_hard.keys()
    n = 0
    for seq in ep_base:
        assert [e[:3] for e in ep_base[seq]] == [e[:3] for e in ep_hard[seq]]  # same episodes
        assert all(0.0 <= e[3] <= 0.05 for e in ep_hard[seq])
        for o, t0, t1, _ in ep_hard[seq]:
            for t in range(t0, t1):
                lab = _read(hard, "Annotations", seq, t)
                assert np.array_equal(lab, _read(base, "Annotations", seq, t))
                m = lab == o
                # faded harder: the object's pixels moved further from the unfaded rendering
                d_base = np.abs(_read(plain, "JPEGImages", seq, t) - _read(base, "JPEGImages", seq, t)).max(-1)
                d_hard = np.abs(_read(plain, "JPEGImages", seq, t) - _read(hard, "JPEGImages", seq, t)).max(-1)
                assert d_hard[m].mean() > d_base[m].mean()
                n += 1
    assert n >= 3
    key = cache_key(fmt="davis2017", split="val", fade=1.0, fade_alpha=(0.0, 0.05), **SIZE)
    assert key.endswith("_fade1_alpha0-0.05")
    assert cache_key(fmt="davis2017", split="val", fade=1.0, **SIZE).endswith("_fade1")
    for bad in ([0.2, 0.1], [0.0, 1.0], [0.1], "x"):
        with pytest.raises(ValueError, match="fade_alpha"):
            generate(tmp_path / "bad", fade=1.0, fade_alpha=bad, **SIZE)


def test_fade_hard_config(tmp_path):
    cfg = to_dict(compose(["dataset=synthetic_fade_hard"]).dataset)
    assert cfg["fade"] == 1.0 and list(cfg["fade_alpha"]) == [0.0, 0.1] and cfg["fast_objects"] is False
    cfg.update(root=str(tmp_path / "cache"), split="train", num_videos=2, num_frames=5, height=48, width=64)
    ds = build_dataset(cfg)
    assert ds.root.name.endswith("_fade1_nofast_alpha0-0.1") and len(ds) == 2


def _centroid_steps(labels: np.ndarray) -> list[float]:
    """Per-frame displacement (px) of every object's label centroid, over consecutive frames
    where the object is visible in both."""
    steps = []
    for o in np.unique(labels)[1:]:
        c = [np.argwhere(lab == o).mean(0) if (lab == o).any() else None for lab in labels]
        steps += [float(np.linalg.norm(b - a)) for a, b in zip(c, c[1:]) if a is not None and b is not None]
    return steps


def test_motion_scale_slows_the_same_videos(tmp_path):
    """motion_scale=1 is the default generator; 0.25 renders the same first frame and the same
    objects, moving several times less (``synthetic_fade_slow``)."""
    kw = dict(num_frames=10, height=64, width=96, max_objects=3, fast_objects=False)
    slow_steps, fast_steps = [], []
    for seed in range(6):
        a = render_video(np.random.default_rng(seed), **kw)
        assert all(np.array_equal(x, y) for x, y in
                   zip(a[:2], render_video(np.random.default_rng(seed), motion_scale=1.0, **kw)[:2]))
        b = render_video(np.random.default_rng(seed), motion_scale=0.25, **kw)
        assert a[2] == b[2]  # same objects (categories, ids)
        assert np.array_equal(a[1][0], b[1][0])  # same first frame
        fast_steps += _centroid_steps(a[1])
        slow_steps += _centroid_steps(b[1])
    assert np.median(slow_steps) < 0.5 * np.median(fast_steps)
    assert cache_key(fmt="davis2017", split="val", motion_scale=1.0, **SIZE) == cache_key(
        fmt="davis2017", split="val", **SIZE)
    assert cache_key(fmt="davis2017", split="val", motion_scale=0.25, **SIZE).endswith("_motion0.25")
    for bad in (0.0, -1.0, 5.0, "x"):
        with pytest.raises(ValueError, match="motion_scale"):
            generate(tmp_path / "bad", motion_scale=bad, **SIZE)


def test_fade_slow_config(tmp_path):
    cfg = to_dict(compose(["dataset=synthetic_fade_slow"]).dataset)
    assert cfg["motion_scale"] == 0.25 and cfg["fade"] == 1.0 and cfg["fast_objects"] is False
    cfg.update(root=str(tmp_path / "cache"), split="train", num_videos=2, num_frames=5, height=48, width=64)
    ds = build_dataset(cfg)
    assert ds.root.name.endswith("_fade1_nofast_alpha0-0.1_motion0.25") and len(ds) == 2
