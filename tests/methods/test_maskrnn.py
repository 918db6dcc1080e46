"""MaskRNN: heads, losses, training contract (both stages, BPTT), streaming prediction."""
from __future__ import annotations

import math

import pytest
import torch

import vosbench_methods  # noqa: F401  (registers maskrnn)
from vosbench_methods.maskrnn.heads import (LocalizationHead, boxes_to_masks, decode_boxes, encode_boxes,
                                   enlarge_boxes, mask_boxes)
from vosbench_methods.maskrnn.losses import box_regression_loss, class_balanced_bce
from vosbench_methods.maskrnn.model import MaskRNN, _fuse
from vosbench.config import build, compose, to_dict
from vosbench.models.flow import build_flow
from vosbench.registry import BACKBONES, METHODS
from vosbench.structures import Frame, ObjectMasks, VideoBatch, VideoSample
from vosbench.structures.masks import masks_to_boxes

H, W = 32, 48


def tiny(**kw) -> MaskRNN:
    """The smallest MaskRNN: 1/16-width VGG streams, 16-d localization FCs."""
    torch.manual_seed(0)
    app = kw.pop("appearance_stream", True)
    flo = kw.pop("flow_stream", True)
    bb = {"name": "vgg16_side_tiny"}
    args = dict(
        appearance=build(bb, BACKBONES, in_channels=4) if app else None,
        flow_net=build(bb, BACKBONES, in_channels=3) if flo else None,
        flow_estimator=build_flow("dis"), fc_dim=16, finetune_iters=0, single_frame_iters=0)
    args.update(kw)
    return MaskRNN(**args)


def square(t: int, y0: int, x0: int, v: int = 2, s: int = 10) -> torch.Tensor:
    m = torch.zeros(H, W, dtype=torch.bool)
    m[y0:y0 + s, x0 + v * t:x0 + v * t + s] = True
    return m


def video(num_frames: int = 4, late: bool = True, num_objects: int = 2):
    """Frames with textured squares moving right; object 2 appears at frame 1 when ``late``."""
    g = torch.Generator().manual_seed(1)
    bg = torch.rand(3, H, W, generator=g) * 0.3
    frames, gts = [], []
    for t in range(num_frames):
        img = bg.clone()
        ms = [square(t, 4, 2), square(t, 18, 20, v=-2)][:num_objects]
        if late and num_objects > 1 and t == 0:
            ms[1] = torch.zeros(H, W, dtype=torch.bool)
        for k, m in enumerate(ms):
            img[:, m] = torch.tensor([[0.9], [0.2], [0.2]]) if k == 0 else torch.tensor([[0.2], [0.8], [0.9]])
        frames.append(Frame(image=img, index=t, name=f"{t:05d}"))
        gts.append(torch.stack(ms) if ms else torch.zeros(0, H, W, dtype=torch.bool))
    return frames, gts


def batch_from(gts_list, frames_list, obj_valid) -> VideoBatch:
    B, T = len(frames_list), len(frames_list[0])
    O = obj_valid.shape[1]
    images = torch.stack([torch.stack([f.image for f in fr]) for fr in frames_list])
    masks = torch.zeros(B, T, O, H, W, dtype=torch.bool)
    for b, gts in enumerate(gts_list):
        for t, g in enumerate(gts):
            masks[b, t, :g.shape[0]] = g
    ids = torch.where(obj_valid, torch.arange(1, O + 1).expand(B, O), -1)
    return VideoBatch(images=images, masks=masks, obj_ids=ids, labels=torch.full((B, O), -1),
                      obj_valid=obj_valid, annotated=torch.ones(B, T, dtype=torch.bool),
                      pad=torch.zeros(B, T, H, W, dtype=torch.bool),
                      void=torch.zeros(B, T, H, W, dtype=torch.bool),
                      frame_idx=torch.arange(T).expand(B, T))


@pytest.fixture(scope="module")
def clip_batch() -> VideoBatch:
    fr, gts = video(3, late=True)
    fr2, gts2 = video(3, late=False, num_objects=1)
    return batch_from([gts, gts2], [fr, fr2], torch.tensor([[True, True], [True, False]]))


# ------------------------------------------------------------------------------------ heads
def test_box_coder_roundtrip_and_identity():
    props = torch.tensor([[2.0, 3.0, 20.0, 13.0], [0.0, 0.0, 48.0, 32.0]])
    gt = torch.tensor([[4.0, 1.0, 30.0, 15.0], [10.0, 5.0, 20.0, 25.0]])
    d = encode_boxes(gt, props)
    assert torch.allclose(decode_boxes(d, props), gt, atol=1e-4)
    assert torch.allclose(encode_boxes(props, props), torch.zeros(2, 4), atol=1e-6)
    # Fast R-CNN parameterisation with weights (10, 10, 5, 5): dx = 10 * (gx - px) / pw.
    assert d[0, 0].item() == pytest.approx(10 * ((17.0 - 11.0) / 18.0), rel=1e-5)
    assert d[0, 2].item() == pytest.approx(5 * math.log(26.0 / 18.0), rel=1e-5)


def test_mask_boxes_matches_shared_helper_and_empty_is_full_image():
    m = torch.zeros(3, H, W, dtype=torch.bool)
    m[0, 5:9, 7:20] = True
    m[1, 0, 47] = True
    boxes, nonempty = mask_boxes(m)
    assert torch.equal(boxes[:2], masks_to_boxes(m[:2]))
    assert nonempty.tolist() == [True, True, False]
    assert boxes[2].tolist() == [0.0, 0.0, W, H]


def test_enlarged_box_restriction():
    box = torch.tensor([[10.0, 10.0, 20.0, 20.0]])
    big = enlarge_boxes(box, 1.25, (H, W))
    assert big.tolist() == [[8.75, 8.75, 21.25, 21.25]]
    keep = boxes_to_masks(big, (H, W))[0]
    assert keep[9, 9] and keep[20, 20] and not keep[8, 10] and not keep[10, 22]
    model = tiny()
    probs = torch.ones(1, H, W)
    out = model.restrict_to_boxes(probs, box)
    assert out.sum() == keep.sum() and out[0, 0, 0] == 0


def test_localization_head_pools_conv5_and_starts_near_identity():
    head = LocalizationHead(in_channels=8, fc_dim=16)
    feats = torch.randn(2, 8, 2, 3)
    deltas = head(feats, torch.tensor([[0.0, 0.0, 20.0, 20.0], [5.0, 5.0, 40.0, 30.0]]))
    assert deltas.shape == (2, 4) and deltas.abs().max() < 0.1  # regressor init std 0.001


# ----------------------------------------------------------------------------------- losses
def test_class_balanced_bce_values():
    t = torch.zeros(1, 4, 4, dtype=torch.bool)
    t[0, :1] = True  # 4 positives, 12 negatives -> beta = 12/16 on positives
    zero = class_balanced_bce(torch.zeros(1, 4, 4), t)
    beta = 12 / 16
    expected = beta * 4 * math.log(2) + (1 - beta) * 12 * math.log(2)  # OSVOS sums over pixels
    assert zero.item() == pytest.approx(expected, rel=1e-5)
    mean = class_balanced_bce(torch.zeros(1, 4, 4), t, reduction="mean")
    assert mean.item() == pytest.approx(expected / 16, rel=1e-5)
    perfect = class_balanced_bce(torch.where(t, 20.0, -20.0), t)
    assert perfect.item() < 1e-6
    # Void pixels do not count: masking every wrong pixel gives ~0 loss.
    wrong = torch.where(t, -20.0, -20.0)
    assert class_balanced_bce(wrong, t, valid=~t).item() < 1e-6
    # Balance: missing the 4 positives costs as much as wrongly claiming the 12 negatives.
    miss = class_balanced_bce(torch.full((1, 4, 4), -20.0), t)
    claim = class_balanced_bce(torch.full((1, 4, 4), 20.0), t)
    assert miss.item() == pytest.approx(claim.item(), rel=1e-4)


def test_box_loss_is_smooth_l1():
    d = torch.tensor([[0.5, -2.0, 0.0, 0.0]])
    assert box_regression_loss(d, torch.zeros(1, 4)).item() == pytest.approx(0.5 * 0.25 + 1.5)


def test_fusion_argmax_with_background_threshold():
    probs = torch.tensor([[[0.9, 0.3, 0.6]], [[0.7, 0.4, 0.8]]])  # [2, 1, 3]
    m = _fuse(probs, 0.5)
    assert m[:, 0].tolist() == [[True, False, False], [False, False, True]]


# -------------------------------------------------------------------------------- training
@pytest.mark.parametrize("stage", ["single", "recurrent"])
def test_training_step_finite_and_backward(clip_batch, stage):
    model = tiny(single_frame_iters=0 if stage == "recurrent" else 10**6)
    model.train()
    losses = model.training_step(clip_batch)
    assert set(losses) == {"loss_mask", "loss_box"}
    assert all(torch.isfinite(v) and v.dim() == 0 for v in losses.values())
    sum(losses.values()).backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    for prefix in ("appearance.", "flow_net.", "fusion.", "localization."):
        assert any(g is not None and g.abs().sum() > 0 for n, g in grads.items()
                   if n.startswith(prefix)), f"no gradient reached {prefix}"
    assert int(model.train_iter) == 1


def test_recurrent_stage_backpropagates_through_time(clip_batch, monkeypatch):
    """From the second unrolled step on, the input mask is the own (differentiable) prediction."""
    model = tiny(single_frame_iters=0)
    seen = []
    orig = model.forward_objects

    def spy(images, prev, mags):
        seen.append(prev.requires_grad)
        return orig(images, prev, mags)

    monkeypatch.setattr(model, "forward_objects", spy)
    model.training_step(clip_batch)
    assert seen == [False, True]  # t=1 gets the ground truth of t=0, t=2 the prediction of t=1
    seen.clear()
    model.recurrent = False
    model.training_step(clip_batch)
    assert seen == [False]  # single-frame stage: all pairs in one batch, perturbed GT


def test_training_without_objects_and_switch_rows():
    fr, _ = video(3, num_objects=0)
    batch = batch_from([[torch.zeros(0, H, W, dtype=torch.bool)] * 3], [fr],
                       torch.zeros(1, 1, dtype=torch.bool))
    model = tiny()
    losses = model.training_step(batch)
    assert all(v.item() == 0 for v in losses.values())
    sum(losses.values()).backward()
    # Table 2 row 1 (appearance stream only, no warp, no localization, no RNN) trains too.
    row1 = tiny(flow_stream=False, warp_mask=False, train_localization=False,
                apply_localization=False, recurrent=False)
    assert row1.flow_net is None and row1.localization is None
    fr, gts = video(3)
    out = row1.training_step(batch_from([gts], [fr], torch.ones(1, 2, dtype=torch.bool)))
    assert set(out) == {"loss_mask"} and torch.isfinite(out["loss_mask"])
    with pytest.raises(ValueError, match="apply_localization"):
        tiny(train_localization=False, apply_localization=True)
    with pytest.raises(ValueError, match="flow estimator"):
        tiny(flow_estimator=None)


# ------------------------------------------------------------------------------- inference
def _sample(frames, gts, late=True) -> VideoSample:
    ref = {0: ObjectMasks(torch.tensor([3]), gts[0][:1])}
    if late:
        ref[1] = ObjectMasks(torch.tensor([7]), gts[1][1:2])
    else:
        ref[0] = ObjectMasks(torch.tensor([3, 7]), gts[0])
    return VideoSample("vid", frames, orig_size=(H, W), reference=ref,
                       frame_names=[f.name for f in frames], meta={"dataset": "test"})


def test_predict_several_objects_late_entry_and_finetune_restores_weights():
    frames, gts = video(4, late=True)
    model = tiny(finetune_iters=2, finetune_lr=1e-3)
    assert model.needs_grad_at_test
    before = {k: v.clone() for k, v in model.state_dict().items()}
    pred = model.predict(_sample(frames, gts)).materialize()
    assert pred.obj_ids.tolist() == [3, 7] and pred.labels.tolist() == [-1, -1]
    assert len(pred.frames) == 4
    f0, f1 = pred.frames[0].masks, pred.frames[1].masks
    assert torch.equal(f0[0], gts[0][0]) and not f0[1].any()  # object 7 not there yet
    assert torch.equal(f1[1], gts[1][1])  # joins with its reference mask
    for fp in pred.frames:
        assert not (fp.masks[0] & fp.masks[1]).any()  # argmax fusion: disjoint
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # offline weights restored


def test_predict_without_objects_and_resized_work_size():
    frames, _ = video(3, num_objects=0)
    model = tiny(finetune_iters=3)
    sample = VideoSample("empty", frames, orig_size=(H, W), reference={},
                         frame_names=[f.name for f in frames])
    pred = model.predict(sample).materialize()
    assert pred.obj_ids.numel() == 0 and [f.masks.shape for f in pred.frames] == [(0, H, W)] * 3
    frames, gts = video(3, late=False)
    model = tiny(resize_short=16)
    pred = model.predict(_sample(frames, gts, late=False)).materialize()
    assert all(f.masks.shape == (2, H, W) for f in pred.frames)


def test_flow_cache_used_at_test_time(tmp_path):
    frames, gts = video(3, late=False)
    model = tiny(flow_cache=str(tmp_path))
    list(model.predict(_sample(frames, gts, late=False)).iter_frames())
    files = sorted(p.name for p in tmp_path.rglob("*.npy"))
    assert "00001__00000.npy" in files and "00001__00002.npy" in files


def test_configs_build():
    cfg = to_dict(compose(["~dataset", "method=maskrnn_tiny"]).method)
    model = build(cfg, METHODS)
    assert isinstance(model, MaskRNN) and model.box_enlarge == 1.25
    assert model.flow_estimator.cache_key == "dis-medium"
    paper = to_dict(compose(["~dataset", "method=maskrnn"]).method)
    assert paper["finetune_iters"] == 200 and paper["finetune_lr"] == 1e-5
    assert paper["flow"]["name"] == "dis" and paper["backbone"]["name"] == "vgg16_side"
    cfg.update(flow_stream=False, warp_mask=False)
    model = build(cfg, METHODS)
    assert model.flow_net is None and model.flow_estimator is None


def test_trains_on_synthetic_clips_through_the_shared_loader(tmp_path):
    """Real data path: synthetic DAVIS-2017 folder -> loader -> ClipDataset -> collate -> loss."""
    from vosbench.data import ClipDataset, build_dataset, collate_clips

    data = build_dataset({"name": "synthetic", "root": str(tmp_path), "split": "train",
                          "num_videos": 2, "num_frames": 4, "height": H, "width": W,
                          "max_objects": 2, "seed": 0})
    clips = ClipDataset(data, num_frames=3, max_stride=1, samples_per_epoch=2, seed=0)
    batch = collate_clips([clips[0], clips[1]])
    model = tiny(single_frame_iters=0)
    losses = model.training_step(batch)
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    pred = model.predict(data[0]).materialize()
    assert len(pred.frames) == 4 and pred.obj_ids.tolist() == data[0].obj_ids.tolist()
