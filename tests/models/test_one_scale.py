"""One scale per clip: MaskRCNNBase's explicit short side, and LIP / MaskProp training and test.

torchvision's GeneralizedRCNNTransform draws a new short side from ``min_size`` for every image;
the frames of one clip then get different sizes (LIP's Conv-GRU state stops matching, MaskProp
learns to propagate across a scale change). Every method that resizes is checked here with a
``min_size`` list and clips of T >= 2 frames.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

import vosbench_methods  # noqa: F401  (registers lip, maskprop)
from vosbench.config import build
from vosbench.data import collate_clips
from vosbench.engine.checkpoint import get_rng_state, set_rng_state
from vosbench.registry import BACKBONES, METHODS
from vosbench.structures import Frame, ObjectMasks, VideoBatch, VideoSample

from vosbench.models.detector import MaskRCNNBase

REPO = Path(__file__).resolve().parents[2]
H, W = 48, 64
SIZES = [40, 56, 72]          # training short sides; the last one is the test size


def _det(**kw) -> MaskRCNNBase:
    torch.manual_seed(0)
    backbone = build({"name": "resnet_tiny_fpn", "width": 8, "out_channels": 16}, BACKBONES)
    return MaskRCNNBase(backbone=backbone, num_classes=3, min_size=tuple(SIZES), max_size=200,
                        anchor_sizes=((8,), (16,), (32,), (64,), (128,)), representation_size=32,
                        mask_head_layers=(16, 16), **kw)


def _short(image_sizes) -> list[int]:
    return [min(int(h), int(w)) for h, w in image_sizes]


def test_draw_and_resize_one_size_per_call():
    det = _det().train()
    images = [torch.rand(3, H, W) for _ in range(12)]
    torch.manual_seed(3)
    il, _ = det.resize(images)                        # torchvision: a new draw per image
    assert len(set(_short(il.image_sizes))) > 1       # (the bug this issue fixes)
    s = det.draw_min_size()
    assert s in SIZES
    il, _ = det.resize(images, min_size=s)
    assert set(_short(il.image_sizes)) == {s}
    per = [40, 40, 72, 72] * 3
    il, _ = det.resize(images, min_size=per)          # one size per image (per clip, repeated)
    assert _short(il.image_sizes) == per
    with pytest.raises(ValueError, match="3 min_size values for 12 images"):
        det.resize(images, min_size=[40, 56, 72])
    # the forced size is for one call only
    torch.manual_seed(3)
    il2, _ = det.resize(images)
    assert len(set(_short(il2.image_sizes))) > 1
    det.eval()
    assert det.draw_min_size() == 72 and det.draw_min_size(3) == [72, 72, 72]
    il, _ = det.resize(images)
    assert set(_short(il.image_sizes)) == {72}


def test_draws_come_from_the_training_rng_and_resume_reproduces_them():
    det = _det().train()
    torch.manual_seed(11)
    state = get_rng_state()                     # what a checkpoint saves
    first = det.draw_min_size(16)
    set_rng_state(state)                        # what resume restores
    assert det.draw_min_size(16) == first
    assert set(first) <= set(SIZES) and len(set(first)) > 1


def test_forward_with_min_size_targets_follow():
    det = _det().train()
    m = torch.zeros(1, H, W, dtype=torch.bool)
    m[0, 10:30, 10:40] = True
    tgt = {"boxes": torch.tensor([[10.0, 10.0, 40.0, 30.0]]), "labels": torch.tensor([1]),
           "masks": m.to(torch.uint8)}
    out = det([torch.rand(3, H, W), torch.rand(3, H, W)], [tgt, dict(tgt)], min_size=56)
    assert set(_short(out.image_sizes)) == {56}
    assert all(torch.isfinite(v) for v in out.losses.values())


# ----------------------------------------------------------------------------- methods
def _box(y0, y1, x0, x1):
    m = torch.zeros(H, W, dtype=torch.bool)
    m[y0:y1, x0:x1] = True
    return m


def _batch(B=2, T=3, labels=True) -> VideoBatch:
    """B clips of T frames, two moving boxes each, through the real collate."""
    g = torch.Generator().manual_seed(1)  # own generator: the global RNG draws the scales
    clips = []
    for b in range(B):
        frames = []
        for t in range(T):
            masks = torch.stack([_box(8, 30, 10 + 3 * t, 34 + 3 * t), _box(28, 44, 40, 60)])
            frames.append(Frame(image=torch.rand(3, H, W, generator=g), index=t, name=f"{t:05d}",
                                masks=masks, obj_ids=torch.tensor([1, 2]),
                                labels=torch.tensor([1, 2]) if labels else torch.tensor([-1, -1])))
        clips.append(VideoSample(f"v{b}", frames, task="vis" if labels else "vos", orig_size=(H, W),
                                 frame_names=[f.name for f in frames]))
    return collate_clips(clips)


class SizeSpy:
    """Records the (resized) image sizes of every detector transform call."""

    def __init__(self, det: MaskRCNNBase):
        self.calls: list[list[int]] = []
        orig = det.transform.forward

        def spy(images, targets=None):
            il, tg = orig(images, targets)
            self.calls.append(_short(il.image_sizes))
            return il, tg

        det.transform.forward = spy


def _lip(**kw):
    cfg = OmegaConf.to_container(OmegaConf.load(REPO / "configs/method/lip_tiny.yaml"))
    cfg.update({"finetune_iters": 2, "online_id_iters": 1, "num_ids": 8, "min_size": SIZES,
                "max_size": 200, "anchor_sizes": [[8], [16], [32], [64], [128]], **kw})
    torch.manual_seed(0)
    return build(cfg, METHODS)


def test_lip_video_stage_one_scale_per_clip():
    """Before the fix this raised 'ConvGRUNeck: level 0 state ... does not match features'."""
    model = _lip(stage="video", reverse_prob=0.0)
    spy = SizeSpy(model.detector)
    for seed in range(3):
        torch.manual_seed(seed)
        losses = model.training_step(_batch(B=2, T=4, labels=False))
        assert all(torch.isfinite(v) for v in losses.values())
    assert len(spy.calls) == 12                      # one call per frame, 3 steps x 4 frames
    for step in range(3):
        frames = spy.calls[4 * step:4 * step + 4]    # [B] sizes per frame of this step
        assert all(f == frames[0] for f in frames)   # every frame of a clip: the same size
        assert set(frames[0]) <= set(SIZES)
    assert len({tuple(c) for c in spy.calls}) > 1    # ... while clips still draw multi-scale


def test_lip_image_stage_one_scale_per_clip():
    model = _lip(stage="image", num_ids=1)
    spy = SizeSpy(model.detector)
    torch.manual_seed(5)
    model.training_step(_batch(B=3, T=2, labels=False))
    sizes = spy.calls[0]                              # 3 clips x 2 annotated frames, clip-major
    assert len(sizes) == 6 and all(sizes[2 * b] == sizes[2 * b + 1] for b in range(3))


def test_lip_predict_uses_the_test_size_for_the_whole_video():
    model = _lip().eval()
    spy = SizeSpy(model.detector)
    frames = [Frame(image=torch.rand(3, H, W), index=t, name=f"{t:05d}") for t in range(3)]
    ref = {0: ObjectMasks(torch.tensor([1]), _box(8, 30, 10, 34)[None])}
    sample = VideoSample("v", frames, orig_size=(H, W), reference=ref, frame_names=[f.name for f in frames])
    with torch.inference_mode():
        model.predict(sample).materialize()
    assert spy.calls and all(set(c) == {SIZES[-1]} for c in spy.calls)


def _maskprop(**kw):
    cfg = OmegaConf.to_container(OmegaConf.load(REPO / "configs/method/maskprop_tiny.yaml"))
    cfg.update({"min_size": SIZES, "max_size": 200, "num_classes": 3, **kw})
    cfg["detector"].update({"rpn_post_nms_top_n_test": 20, "box_detections_per_img": 5})
    torch.manual_seed(0)
    return build(cfg, METHODS)


def test_maskprop_training_pairs_one_scale_per_clip():
    """Before the fix the frames of a training pair were resized independently."""
    model = _maskprop().train()
    spy = SizeSpy(model.detector)
    B, T = 3, 2
    for seed in range(4):
        torch.manual_seed(seed)
        losses = model.training_step(_batch(B=B, T=T))
        assert all(torch.isfinite(v) for v in losses.values())
    for sizes in spy.calls:                          # one call per step: B clips x T frames
        assert len(sizes) == B * T
        assert all(len(set(sizes[b * T:(b + 1) * T])) == 1 for b in range(B))
    assert len({s for c in spy.calls for s in c}) > 1


def test_maskprop_predict_uses_the_test_size():
    model = _maskprop(clip_radius=1).eval()
    spy = SizeSpy(model.detector)
    frames = [Frame(image=torch.rand(3, H, W), index=t, name=f"{t:05d}") for t in range(3)]
    sample = VideoSample("v", frames, task="vis", orig_size=(H, W), frame_names=[f.name for f in frames])
    with torch.inference_mode():
        model.predict(sample).materialize()
    assert len(spy.calls) == 3 and all(c == [SIZES[-1]] for c in spy.calls)
