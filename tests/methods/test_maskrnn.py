"""MaskRNN: heads, losses, training contract (both stages, BPTT), streaming prediction."""
from __future__ import annotations

import math
import sys
from pathlib import Path

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
    """Two 4-frame clips (frames 0-2 are trained; frame 3 only gives the forward flow of 2)."""
    fr, gts = video(4, late=True)
    fr2, gts2 = video(4, late=False, num_objects=1)
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
    zero = class_balanced_bce(torch.zeros(1, 4, 4), t, reduction="sum")
    beta = 12 / 16
    expected = beta * 4 * math.log(2) + (1 - beta) * 12 * math.log(2)  # OSVOS sums over pixels
    assert zero.item() == pytest.approx(expected, rel=1e-5)
    mean = class_balanced_bce(torch.zeros(1, 4, 4), t)  # default: mean over the valid pixels
    assert mean.item() == pytest.approx(expected / 16, rel=1e-5)
    # The mean is resolution independent: the same pattern at 4x the pixels gives the same value.
    big = t.repeat_interleave(2, 1).repeat_interleave(2, 2)
    assert class_balanced_bce(torch.zeros(1, 8, 8), big).item() == pytest.approx(mean.item(), rel=1e-5)
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
@pytest.mark.parametrize("stage", ["single", "recurrent", "recurrent_with_box"])
def test_training_step_finite_and_backward(clip_batch, stage):
    model = tiny(single_frame_iters=0 if stage.startswith("recurrent") else 10**6,
                 recurrent_train_localization=stage == "recurrent_with_box")
    model.train()
    losses = model.training_step(clip_batch)
    # §4: the recurrent stage trains the segmentation net only (the box loss is stage 1's).
    assert set(losses) == ({"loss_mask"} if stage == "recurrent" else {"loss_mask", "loss_box"})
    assert all(torch.isfinite(v) and v.dim() == 0 for v in losses.values())
    sum(losses.values()).backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    for prefix in ("appearance.", "flow_net.", "fusion.", "localization."):
        reached = any(g is not None and g.abs().sum() > 0 for n, g in grads.items() if n.startswith(prefix))
        assert reached == (prefix != "localization." or stage != "recurrent"), prefix
    assert int(model.train_iter) == 1


def test_recurrent_stage_backpropagates_through_time(clip_batch, monkeypatch):
    """From the second unrolled step on, the input mask is the own (differentiable) prediction."""
    model = tiny(single_frame_iters=0)
    seen = []
    orig = model.forward_objects

    def spy(images, prev, mags, **kw):
        seen.append(prev.requires_grad)
        return orig(images, prev, mags, **kw)

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


# ------------------------------------------------------------- session 5 (#16): paper scale
class ShiftFlow(torch.nn.Module):
    """A real (global-translation) flow estimator: ``flow(a, b)`` is the integer shift d that
    minimises ``|a(x) - b(x + d)|``, i.e. the displacement from frame a to frame b."""

    cache_key = "shift"

    def forward(self, a, b):
        single = a.dim() == 3
        a, b = (a[None], b[None]) if single else (a, b)
        best = []
        for ai, bi in zip(a, b):
            err = {(dx, dy): (ai[:, 4:-4, 4:-4] - torch.roll(bi, (-dy, -dx), (-2, -1))[:, 4:-4, 4:-4]).abs().mean()
                   for dx in range(-4, 5) for dy in range(-4, 5)}
            dx, dy = min(err, key=err.get)
            best.append(torch.tensor([float(dx), float(dy)]).view(2, 1, 1).expand(2, *ai.shape[-2:]))
        out = torch.stack(best)
        return out[0] if single else out


def panning_video(num_frames: int = 3, v: int = 4):
    """The whole textured frame (and the object) moves right by ``v`` px per frame."""
    g = torch.Generator().manual_seed(3)
    base = torch.rand(3, H, W, generator=g)
    m0 = torch.zeros(H, W, dtype=torch.bool)
    m0[10:20, 8:18] = True
    frames, gts = [], []
    for t in range(num_frames):
        frames.append(Frame(image=torch.roll(base, v * t, -1), index=t, name=f"{t:05d}"))
        gts.append(torch.roll(m0, v * t, -1)[None])
    return frames, gts


def _iou(a, b):
    return float((a & b).sum()) / max(1, float((a | b).sum()))


def test_warp_direction_through_step_and_training(monkeypatch):
    """y_{t-1} is warped with flow(I_t, I_{t-1}) onto frame t: it lands on the moved object."""
    frames, gts = panning_video(3)
    model = tiny(flow_estimator=ShiftFlow(), apply_localization=False)
    assert torch.equal(ShiftFlow()(frames[1].image, frames[0].image)[:, 0, 0], torch.tensor([-4.0, 0.0]))
    seen = []
    orig = model.forward_objects

    def spy(images, prev, mags, **kw):
        seen.append(prev.detach().clone())
        return orig(images, prev, mags, **kw)

    monkeypatch.setattr(model, "forward_objects", spy)
    sample = VideoSample("pan", frames, orig_size=(H, W), reference={0: ObjectMasks(torch.tensor([1]), gts[0])},
                         frame_names=[f.name for f in frames])
    model.predict(sample).materialize()
    warped = seen[0][0] > 0.5  # frame 1's input: y_0 warped
    assert _iou(warped, gts[1][0]) > 0.9 and _iou(warped, gts[0][0]) < 0.6
    # The same direction in the single-frame training stage (perturbation off).
    seen.clear()
    model.perturbation = type(model.perturbation)(p_morph=0, p_elastic=0, p_affine=0)
    model.single_frame_iters = 10**6
    model.training_step(batch_from([gts], [frames], torch.ones(1, 1, dtype=torch.bool)))
    assert _iou(seen[0][0] > 0.5, gts[1][0]) > 0.9


def test_box_restriction_through_step():
    """The fused output is b_t zeroed outside the PREDICTED box enlarged 1.25x."""
    frames, gts = video(2, late=False, num_objects=1)
    sample = VideoSample("box", frames, orig_size=(H, W), reference={0: ObjectMasks(torch.tensor([1]), gts[0])},
                         frame_names=[f.name for f in frames])
    for apply in (True, False):
        model = tiny(flow_stream=False, warp_mask=False, flow_estimator=None, apply_localization=apply)
        with torch.no_grad():
            model.fusion.weight.zero_()
            model.fusion.bias.fill_(10.0)  # b_t ~ 1 everywhere
            model.localization.bbox_pred.weight.zero_()
            model.localization.bbox_pred.bias.copy_(torch.tensor([5.0, 0.0, 0.0, 0.0]))  # +0.5 box width
        pred = model.predict(sample).materialize()
        prop = mask_boxes(gts[0])[0]  # the proposal: box of y_0 (no warp)
        box = decode_boxes(torch.tensor([[5.0, 0.0, 0.0, 0.0]]), prop)
        assert box[0, 0] - prop[0, 0] == pytest.approx(5.0)
        expected = boxes_to_masks(enlarge_boxes(box, 1.25, (H, W)), (H, W))[0]
        got = pred.frames[1].masks[0]
        assert torch.equal(got, expected) if apply else bool(got.all())


def test_next_frame_flow_trains_only_frames_with_a_successor(clip_batch, monkeypatch):
    model = tiny(single_frame_iters=10**6)
    sizes = []
    orig = model.forward_objects
    monkeypatch.setattr(model, "forward_objects",
                        lambda i, p, m, **kw: sizes.append(i.shape[0]) or orig(i, p, m, **kw))
    model.training_step(clip_batch)  # 3 objects x frames 1-2 (frame 3 only gives I_{t+1})
    model.next_frame_flow = False
    model.training_step(clip_batch)  # 3 objects x frames 1-3
    assert sizes == [6, 9]
    two = VideoBatch(**{**clip_batch.__dict__, "images": clip_batch.images[:, :2], "masks": clip_batch.masks[:, :2],
                        "annotated": clip_batch.annotated[:, :2], "pad": clip_batch.pad[:, :2],
                        "void": clip_batch.void[:, :2], "frame_idx": clip_batch.frame_idx[:, :2]})
    model.next_frame_flow = True
    with pytest.raises(ValueError, match="num_frames >= 3"):
        model.training_step(two)


def _clip_loss(model, frames, gts) -> float:
    """Mean single-frame loss over frames 1.. of a clip, previous mask = GT (no perturbation)."""
    model.eval()
    with torch.no_grad():
        imgs = torch.stack([f.image for f in frames[1:]])
        prev = torch.stack([g[0] for g in gts[:-1]]).float()
        target = torch.stack([g[0] for g in gts[1:]])
        out = model.forward_objects(imgs, prev, None)
        valid = torch.ones_like(target)
        return float(sum(model._losses(out, target, valid, torch.ones(len(target))).values()))


def test_online_finetuning_lowers_the_loss_on_the_clip():
    frames, gts = video(5, late=False, num_objects=1)
    model = tiny(flow_stream=False, warp_mask=False, flow_estimator=None, finetune_iters=30,
                 finetune_lr=3e-3, finetune_batch=2)
    sample = VideoSample("ft", frames, orig_size=(H, W), reference={0: ObjectMasks(torch.tensor([1]), gts[0])},
                         frame_names=[f.name for f in frames])
    before = _clip_loss(model, frames, gts)
    offline = {k: v.clone() for k, v in model.state_dict().items()}
    params = model.finetune(sample, (H, W), None)  # per object: the tuned values, module restored
    assert all(torch.equal(offline[k], v) for k, v in model.state_dict().items())
    model._load_params(params[0])
    after = _clip_loss(model, frames, gts)
    assert after < 0.8 * before, (before, after)
    losses = model.finetune_losses[1]
    assert len(losses) == 30 and sum(losses[-5:]) < sum(losses[:5])


def test_per_object_finetuning_one_net_per_object(monkeypatch):
    """Each object's net is tuned on its own mask only (== the same object alone in a video),
    the nets differ, step runs each object through its own net, and the offline weights come
    back exactly after the video."""
    frames, gts = video(3, late=False)
    model = tiny(finetune_iters=3, finetune_lr=1e-2)
    ids = torch.tensor([3, 7])
    both = VideoSample("two", frames, orig_size=(H, W), reference={0: ObjectMasks(ids, gts[0])},
                       frame_names=[f.name for f in frames])
    alone = VideoSample("one", frames, orig_size=(H, W), reference={0: ObjectMasks(ids[1:], gts[0][1:])},
                        frame_names=[f.name for f in frames])
    p_both = model.finetune(both, (H, W), None)
    p_alone = model.finetune(alone, (H, W), None)
    assert all(torch.equal(a, b) for a, b in zip(p_both[1], p_alone[0]))
    assert not all(torch.equal(a, b) for a, b in zip(p_both[0], p_both[1]))
    offline = {k: v.clone() for k, v in model.state_dict().items()}
    used = []
    orig = model.forward_objects

    def spy(images, prev, mags, **kw):
        if not torch.is_grad_enabled():  # step, not fine-tuning
            used.append((images.shape[0], float(model.fusion.bias)))
        return orig(images, prev, mags, **kw)

    monkeypatch.setattr(model, "forward_objects", spy)
    pred = model.predict(both).materialize()
    bias = [i for i, q in enumerate(model._tunable()) if q is model.fusion.bias][0]
    expected = [(1, float(p_both[0][bias])), (1, float(p_both[1][bias]))] * 2  # frames 1, 2
    assert used == expected
    assert all(torch.equal(offline[k], v) for k, v in model.state_dict().items())
    # The shared option: one batched net for both objects.
    used.clear()
    model.finetune_per_object = False
    shared = model.predict(both).materialize()
    assert [n for n, _ in used] == [2, 2] and len(shared.frames) == len(pred.frames)
    assert all(torch.equal(offline[k], v) for k, v in model.state_dict().items())


def test_prediction_does_not_depend_on_the_videos_before():
    """Fine-tuning draws from generators seeded per (seed, object), not the training stream."""
    frames, gts = video(3, late=False)
    s = _sample(frames, gts, late=False)
    model = tiny(finetune_iters=2, finetune_lr=1e-2)
    first = model.predict(s).materialize()
    model.training_step(batch_from([gts], [frames], torch.ones(1, 2, dtype=torch.bool)))  # draws
    model.predict(_sample(*video(3, late=True))).materialize()
    again = model.predict(s).materialize()
    assert all(torch.equal(a.masks, b.masks) for a, b in zip(first.frames, again.frames))


def test_short_overfit_halves_the_loss(clip_batch):
    torch.manual_seed(0)
    model = tiny(single_frame_iters=10**6)
    model.perturbation = type(model.perturbation)(p_morph=0, p_elastic=0, p_affine=0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(25):
        loss = sum(model.training_step(clip_batch).values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert min(losses[-3:]) < 0.5 * losses[0], losses


def test_flow_stream_input_init():
    from vosbench_methods.maskrnn.model import init_flow_stream_input

    net = build({"name": "vgg16_side_tiny"}, BACKBONES, in_channels=3)
    w = net.features[0].weight.detach().clone()
    init_flow_stream_input(net)
    new = net.features[0].weight
    assert torch.allclose(new[:, 0], w.sum(1) / 2) and torch.allclose(new[:, 1], w.sum(1) / 2)
    assert not new[:, 2].any()  # the mask channel starts at zero, like the appearance stream's
    # A magnitude map in both channels responds like the grey image of it did before.
    x = torch.rand(1, 1, 8, 8)
    before = torch.nn.functional.conv2d(x.expand(1, 3, 8, 8), w, padding=1)
    after = torch.nn.functional.conv2d(torch.cat([x, x, torch.rand(1, 1, 8, 8)], 1), new, padding=1)
    assert torch.allclose(before, after, atol=1e-5)


def test_paper_width_model_builds_and_steps_every_stage():
    """configs/method/maskrnn.yaml (full VGG-16 streams, 4096-d fc6/fc7) from random init: one
    optimizer step of stage 1 and of stage 2, then predict with one fine-tuning iteration."""
    from vosbench.models.weights import MissingWeightsError, weights_policy

    cfg = to_dict(compose(["~dataset", "method=maskrnn", "method.backbone.weights=null"]).method)
    with pytest.raises(MissingWeightsError, match="allow_random_init"):
        build(cfg, METHODS)  # no silent random init
    torch.manual_seed(0)
    with weights_policy(allow_random_init=True):
        model = build({**cfg, "finetune_iters": 1}, METHODS)
    assert model.appearance.widths[-1][-1] == 512 and model.localization.fc6.out_features == 4096
    assert model.criterion.mask_reduction == "mean" and model.finetune_per_object
    fr, gts = video(4, late=True)
    batch = batch_from([gts], [fr], torch.ones(1, 2, dtype=torch.bool))
    opt = torch.optim.Adam(model.parameters(), lr=1e-5)
    model.train()
    for stage_iters, keys in ((10**6, {"loss_mask", "loss_box"}), (0, {"loss_mask"})):
        model.single_frame_iters = stage_iters
        losses = model.training_step(batch)
        assert set(losses) == keys and all(torch.isfinite(v) for v in losses.values())
        opt.zero_grad()
        sum(losses.values()).backward()
        opt.step()
    del opt, losses
    one = VideoSample("one", fr, orig_size=(H, W), reference={0: ObjectMasks(torch.tensor([3]), gts[0][:1])},
                      frame_names=[f.name for f in fr])  # one object: one tuned copy (~0.6 GB) at this width
    pred = model.predict(one).materialize()
    assert len(pred.frames) == 4 and list(model.finetune_losses) == [3]


def test_max_train_objects_caps_the_samples_per_clip(clip_batch, monkeypatch):
    model = tiny(single_frame_iters=10**6, max_train_objects=1)
    sizes = []
    orig = model.forward_objects
    monkeypatch.setattr(model, "forward_objects",
                        lambda i, p, m, **kw: sizes.append(i.shape[0]) or orig(i, p, m, **kw))
    model.training_step(clip_batch)  # clip 0 has 2 objects, clip 1 one: 2 objects x 2 frames
    assert sizes == [4]
    with pytest.raises(ValueError, match="max_train_objects"):
        tiny(max_train_objects=0)


REPO = Path(__file__).resolve().parents[2]
MINI = REPO.parent / "shared" / "data" / "davis2016-mini"


@pytest.mark.skipif(not MINI.is_dir(), reason="../shared/data/davis2016-mini not present")
def test_paper_recipe_stages_run_in_the_harness_on_the_tiny_model():
    """configs/experiment/maskrnn/* through benchmarks/paper_scale.py (tiny model, real frames):
    both training stages train, fine-tuning runs its capped iterations, predict works. The
    paper-size run of the same command is in benchmarks/RESULTS.md (#16)."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    import paper_scale as ps

    assert ps.find_stages("maskrnn") == ["finetune", "predict", "stage1_single_frame", "stage2_recurrent"]
    for stage in ps.find_stages("maskrnn"):
        r = ps.run_stage("maskrnn", stage, smoke=True, extra=["method=maskrnn_tiny"], log=lambda s: None)
        assert r.ok, (r.line, r.details)
        if stage == "finetune":
            assert r.numbers["finetune"]["finetune_iters"] == 2 and r.numbers["predict"]["num_frames"] == 4
        if stage.startswith("stage"):
            assert math.isfinite(r.numbers["train"]["loss"]) and r.numbers["projection"]["objects_factor"] == 4
