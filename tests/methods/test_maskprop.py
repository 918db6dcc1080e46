"""MaskProp + the frame-linking baseline: losses, linking, aggregation, contract tests (tiny, CPU)."""
from __future__ import annotations

import math

import pytest
import torch

import vosbench_methods  # noqa: F401  (registers every method)
from vosbench_methods.maskprop.heads import MaskPropagationHead, MaskRefinementHead
from vosbench_methods.maskprop.losses import pairwise_soft_iou, propagation_loss, soft_iou
from vosbench_methods.maskprop.tracking import ClipTrack, GreedyMaskLinker, VideoAggregator, VideoLevelLinker
from vosbench.config import build
from vosbench.registry import METHODS
from vosbench.structures import Frame, VideoBatch, VideoSample

H, W = 64, 96

TINY = dict(
    backbone={"name": "resnet_tiny_fpn", "norm": "gn", "out_channels": 16, "width": 8},
    num_classes=4, min_size=64, max_size=96,
    detector=dict(anchor_sizes=[[8], [16], [32], [64], [128]], representation_size=32,
                  mask_head_layers=[16, 16], rpn_pre_nms_top_n_train=100, rpn_post_nms_top_n_train=50,
                  rpn_pre_nms_top_n_test=50, rpn_post_nms_top_n_test=20, box_batch_size_per_image=32,
                  rpn_batch_size_per_image=32, box_detections_per_img=10),
    prop_offset_channels=8, prop_dilations=[1, 2, 3], refine_channels=8, refine_blocks=1,
    refine_patch=16, clip_radius=2, score_thresh=0.0, max_instances=4,
)


def _build(name: str = "maskprop", **kw):
    torch.manual_seed(0)
    cfg = {"name": name, **TINY, **kw}
    return build(cfg, METHODS)


def _box_mask(x0: int, y0: int, s: int = 14) -> torch.Tensor:
    m = torch.zeros(H, W, dtype=torch.bool)
    m[max(y0, 0):max(y0 + s, 0), max(x0, 0):max(x0 + s, 0)] = True
    return m


def _video(num_frames: int, objects: dict[int, tuple[int, list[bool]]], vid: str = "v") -> VideoSample:
    """Squares moving right; ``objects``: obj id -> (label, visible per frame)."""
    frames = []
    for t in range(num_frames):
        img = torch.full((3, H, W), 0.2)
        masks, ids, labels = [], [], []
        for oid, (label, vis) in objects.items():
            m = _box_mask(8 + 4 * t + 30 * (oid - 1), 10 + 20 * (oid - 1))
            if vis[t]:
                img[:, m] = torch.tensor([0.9, 0.3 * label, 0.1]).view(3, 1)
            masks.append(m & vis[t])
            ids.append(oid)
            labels.append(label)
        frames.append(Frame(image=img, index=t, name=f"{t:05d}",
                            masks=torch.stack(masks) if masks else torch.zeros((0, H, W), dtype=torch.bool),
                            obj_ids=torch.tensor(ids, dtype=torch.int64),
                            labels=torch.tensor(labels, dtype=torch.int64)))
    return VideoSample(vid, frames, task="vis", orig_size=(H, W), categories={1: "a", 2: "b", 3: "c"})


def _batch(samples: list[VideoSample]) -> VideoBatch:
    B, T = len(samples), len(samples[0].frames)
    omax = max(max(len(f.obj_ids) for f in s.frames) for s in samples)
    masks = torch.zeros(B, T, omax, H, W, dtype=torch.bool)
    obj_ids = torch.full((B, omax), -1, dtype=torch.int64)
    labels = torch.full((B, omax), -1, dtype=torch.int64)
    for b, s in enumerate(samples):
        f0 = s.frames[0]
        obj_ids[b, :len(f0.obj_ids)] = f0.obj_ids
        labels[b, :len(f0.labels)] = f0.labels
        for t, f in enumerate(s.frames):
            masks[b, t, :len(f.obj_ids)] = f.masks
    return VideoBatch(images=torch.stack([torch.stack([f.image for f in s.frames]) for s in samples]),
                      masks=masks, obj_ids=obj_ids, labels=labels, obj_valid=obj_ids >= 0,
                      annotated=torch.ones(B, T, dtype=torch.bool), pad=torch.zeros(B, T, H, W, dtype=torch.bool),
                      void=torch.zeros(B, T, H, W, dtype=torch.bool),
                      frame_idx=torch.arange(T).repeat(B, 1), samples=samples)


# ------------------------------------------------------------------------------ losses
def test_soft_iou_hand_values():
    a = torch.zeros(4, 4)
    a[:2] = 1.0                      # 8 pixels
    b = torch.zeros(4, 4)
    b[1:3] = 1.0                     # 8 pixels, 4 shared
    assert math.isclose(float(soft_iou(a, b)), 4 / 12, rel_tol=1e-5)
    assert math.isclose(float(soft_iou(a, a)), 1.0, rel_tol=1e-5)
    assert float(soft_iou(a, torch.zeros(4, 4))) == 0.0
    # soft values: sum ab / sum (a + b - ab)
    assert math.isclose(float(soft_iou(torch.full((2, 2), 0.5), torch.ones(2, 2))), 2 / 4, rel_tol=1e-5)
    p = pairwise_soft_iou(torch.stack([a, b]).flatten(1), torch.stack([b]).flatten(1))
    torch.testing.assert_close(p[:, 0], torch.tensor([4 / 12, 1.0]), atol=1e-5, rtol=1e-5)


def test_propagation_loss_eq2_and_gradient():
    gt = torch.zeros(2, 8, 8)
    gt[0, :4] = 1
    gt[1, 4:] = 1
    assert float(propagation_loss(gt.clone(), gt)) < 1e-5
    pred = torch.full((2, 8, 8), 0.5, requires_grad=True)
    loss = propagation_loss(pred, gt)
    # each row: inter = 32 * 0.5 = 16, union = 32 (pred) + 32 (gt) - 16 = 48 -> sIoU 1/3
    assert math.isclose(float(loss.detach()), 1 - 1 / 3, rel_tol=1e-4)
    loss.backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0
    assert float(propagation_loss(pred[:0], gt[:0]).detach()) == 0.0


def test_propagation_head_softmax_across_instances_times_attention():
    torch.manual_seed(0)
    head = MaskPropagationHead(in_channels=8, offset_channels=8, dilations=(1, 2))
    f_src, f_tgt = torch.randn(1, 8, 10, 12), torch.randn(1, 8, 10, 12)
    inst = torch.rand(3, 10, 12)
    out = head(f_src, f_tgt, inst)
    att = torch.sigmoid(head.attention(f_tgt))[0, 0]
    assert out.shape == (3, 10, 12)
    torch.testing.assert_close(out.sum(0), att, atol=1e-5, rtol=1e-5)   # softmax rows sum to 1
    assert head(f_src, f_tgt, inst[:0]).shape == (0, 10, 12)


def test_background_logit_lets_a_single_instance_mask_vanish():
    torch.manual_seed(0)
    head = MaskPropagationHead(in_channels=4, offset_channels=4, dilations=(1,), background_logit=True)
    f_src, f_tgt = torch.randn(1, 4, 6, 6), torch.randn(1, 4, 6, 6)
    with torch.no_grad():
        head.mask_logits.bias.fill_(-20.0)       # the instance scores "not me" everywhere
    out = head(f_src, f_tgt, torch.rand(1, 6, 6))
    assert float(out.detach().max()) < 1e-6
    head.background_logit = False                # the paper's softmax over one instance is 1
    att = torch.sigmoid(head.attention(f_tgt))[0]
    torch.testing.assert_close(head(f_src, f_tgt, torch.rand(1, 6, 6)), att)


def test_propagation_head_learns_to_follow_a_moving_object():
    """Two objects with distinct features move by one cell; 60 Adam steps on eq. 2 must cut the
    loss markedly (the offsets/deformable path and the softmax are trainable end to end)."""
    torch.manual_seed(0)
    head = MaskPropagationHead(in_channels=8, offset_channels=8, dilations=(1, 2, 3))
    opt = torch.optim.Adam(head.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(1)

    def scene(shift):
        feat = torch.zeros(1, 8, 12, 12)
        masks = torch.zeros(2, 12, 12)
        for k, (y, x) in enumerate([(2, 2), (7, 6)]):
            masks[k, y:y + 3, x + shift:x + shift + 3] = 1.0
            feat[0, :, masks[k] > 0] = torch.linspace(-1, 1, 8).roll(4 * k)[:, None] * (1 + k)
        return feat + 0.05 * torch.randn(feat.shape, generator=g), masks

    def loss_once():
        shift = int(torch.randint(0, 2, (1,), generator=g))
        f_src, m_src = scene(shift)
        f_tgt, m_tgt = scene(shift + 1)
        return propagation_loss(head(f_src, f_tgt, m_src), m_tgt)

    with torch.no_grad():
        before = sum(float(loss_once()) for _ in range(4)) / 4
    for _ in range(60):
        loss = loss_once()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        after = sum(float(loss_once()) for _ in range(4)) / 4
    assert after < 0.6 * before, (before, after)   # measured: 0.95 -> 0.44


def test_refinement_starts_as_identity_and_pastes_back():
    head = MaskRefinementHead(channels=4, num_blocks=1, patch_size=16)
    probs = torch.zeros(1, 32, 32)
    probs[0, 8:20, 10:22] = 0.9
    boxes = torch.tensor([[10.0, 8.0, 22.0, 20.0]])
    pb = head.patch_boxes(boxes)
    assert torch.allclose(pb[:, 2] - pb[:, 0], pb[:, 3] - pb[:, 1])   # square: aspect ratio kept
    rgb, m = head.crop(torch.zeros(3, 32, 32), probs, pb)
    out = torch.sigmoid(head(rgb, m))                                  # zero-initialised output conv
    torch.testing.assert_close(out, m.clamp(1e-4, 1 - 1e-4), atol=1e-4, rtol=1e-4)
    back = head.paste(out.detach(), pb, (32, 32))
    assert back.shape == (1, 32, 32)
    assert float(back[0, 10:18, 12:20].min()) > 0.8 and float(back[0, 0, 0]) == 0.0


# --------------------------------------------------------------------------- linking
def _track(center, frames, boxes, label=1, C=3):
    masks = torch.zeros(len(frames), 16, 16)
    for k, (y, x) in enumerate(boxes):
        if y is not None:
            masks[k, y:y + 4, x:x + 4] = 1.0
    probs = torch.full((C,), 0.1)
    probs[label - 1] = 0.8
    return ClipTrack(center, frames, masks, probs)


def test_video_level_linker_matches_overlaps_and_creates_new_ids():
    linker = VideoLevelLinker(match_thresh=0.5)
    a0 = _track(0, [0, 1, 2], [(0, 0), (0, 1), (0, 2)])
    b0 = _track(0, [0, 1, 2], [(8, 8), (8, 8), (8, 8)], label=2)
    assert linker.add_clip([a0, b0]) == [1, 2]
    # next clip: same objects in swapped order + a new one far away
    a1 = _track(1, [0, 1, 2, 3], [(0, 0), (0, 1), (0, 2), (0, 3)])
    b1 = _track(1, [0, 1, 2, 3], [(8, 8), (8, 8), (8, 8), (8, 8)], label=2)
    c1 = _track(1, [0, 1, 2, 3], [(12, 0)] * 4, label=3)
    assert linker.add_clip([b1, c1, a1]) == [2, 3, 1]
    # eq. 4 is the mean soft IoU over overlapping frames: a0 vs a1 overlap at 0, 1, 2 exactly
    s = linker.matching_scores([a1], [a0])
    assert math.isclose(float(s[0, 0]), 1.0, rel_tol=1e-5)
    # two detections of one clip never share an id, even if both match
    dup = linker.add_clip([_track(2, [0, 1, 2, 3, 4], [(0, 0), (0, 1), (0, 2), (0, 3), (0, 4)]),
                           _track(2, [0, 1, 2, 3, 4], [(0, 0), (0, 1), (0, 2), (0, 3), (0, 4)])])
    assert dup[0] == 1 and dup[1] not in (1, 2, 3)


def test_reappearing_instance_keeps_its_id_through_overlapping_clips():
    """An object visible at 0-2, occluded at 3, back at 4-6 (K = 2): the clip centred at 4 still
    overlaps the one centred at 2 (frames 2-4), whose propagated masks reach frame 2 and 4."""
    linker = VideoLevelLinker(match_thresh=0.3)
    obj = {0: (0, 0), 1: (0, 1), 2: (0, 2), 3: (None, None), 4: (0, 4), 5: (0, 5), 6: (0, 6)}
    other = (10, 10)
    ids = {}
    for c in range(7):
        frames = list(range(max(0, c - 2), min(7, c + 3)))
        tracks = [_track(c, frames, [other] * len(frames), label=2)]
        if c != 3:     # not detected while occluded
            tracks.append(_track(c, frames, [obj[f] for f in frames]))
        ids[c] = linker.add_clip(tracks)
    assert all(ids[c][0] == ids[0][0] for c in ids)                 # the static object: one id
    assert {ids[c][1] for c in ids if c != 3} == {ids[0][1]}        # the occluded one: one id too
    assert ids[0][0] != ids[0][1]


def test_grid_roundtrip_and_missing_weights():
    from vosbench_methods.maskprop.model import grid_to_image, image_to_grid

    m = torch.zeros(1, 60, 90)
    m[0, 16:48, 24:72] = 1.0
    g = image_to_grid(m, (60, 90), (64, 96), (8, 12))               # stride 8 of the padded canvas
    assert g.shape == (1, 8, 12) and math.isclose(float(g.sum()) * 64, 32 * 48, rel_tol=1e-5)
    back = grid_to_image(g, (60, 90), (64, 96), (60, 90)) > 0.5
    assert (back & (m > 0)).sum() / (back | (m > 0)).sum() > 0.8
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        _build(weights="/nonexistent/nope.pth")
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        _build(detector_weights="/nonexistent/nope.pth")


def test_aggregator_averages_masks_and_scores_per_category():
    agg = VideoAggregator()
    t1 = _track(0, [0, 1], [(0, 0), (0, 0)], label=1)
    t2 = _track(1, [0, 1, 2], [(0, 0), (None, None), (0, 0)], label=2)
    agg.add(t1, 7)
    agg.add(t2, 7)
    m = agg.mask(1, 7)
    assert math.isclose(float(m.max()), 0.5)                          # mean of 1 and 0
    assert agg.mask(2, 7).max() == 1.0 and agg.mask(3, 7) is None
    entries = agg.entries()
    assert {(v, c) for v, c, _ in entries} == {(7, 1), (7, 2)}
    for _, c, s in entries:
        assert math.isclose(s, (0.8 + 0.1) / 2, rel_tol=1e-5)        # average over the tracks
    # a sequence whose averaged masks never pass the binarisation threshold would be an empty
    # instance on every frame: min_peak drops it, the other one stays
    faint = _track(0, [0, 1], [(0, 0), (0, 0)], label=1)
    faint.masks = faint.masks * 0.4
    agg.add(faint, 9)
    assert {v for v, _, _ in agg.entries()} == {7, 9}
    assert math.isclose(agg.peak(9), 0.4, rel_tol=1e-5) and agg.peak(7) == 1.0
    assert {v for v, _, _ in agg.entries(min_peak=0.5)} == {7}


def test_greedy_linker():
    lk = GreedyMaskLinker(iou_thresh=0.3, max_age=1)
    m = torch.zeros(2, 16, 16)
    m[0, :4, :4] = 1
    m[1, 8:, 8:] = 1
    assert lk.step(0, m) == [1, 2]
    assert lk.step(1, m.flip(0)) == [2, 1]
    assert lk.step(3, m[:1]) == [3]            # older than max_age: a new track


# ---------------------------------------------------------------------- contract tests
@pytest.mark.parametrize("name", ["maskprop", "maskprop_framelink", "maskprop_flowprop"])
def test_training_step_finite_and_backward(name):
    model = _build(name)
    model.train()
    batch = _batch([_video(2, {1: (1, [True, True]), 2: (2, [True, False])}),
                    _video(2, {1: (3, [True, True])}, vid="w")])
    losses = model.training_step(batch)
    assert {"loss_classifier", "loss_box_reg", "loss_mask", "loss_objectness", "loss_rpn_box_reg",
            "loss_prop", "loss_refine"} <= set(losses)
    total = sum(losses.values())
    assert all(torch.isfinite(v) for v in losses.values())
    total.backward()
    grads = [p.grad for p in model.propagation.parameters() if p.grad is not None]
    assert grads and any(g.abs().sum() > 0 for g in grads)


def test_training_step_without_instances():
    model = _build()
    model.train()
    losses = model.training_step(_batch([_video(2, {1: (1, [False, False])})]))
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()


def _check(pred, sample):
    pred = pred.materialize()
    assert pred.num_frames == sample.num_frames and len(pred.frames) == sample.num_frames
    assert pred.labels.dtype == torch.int64 and (pred.labels >= 1).all()
    assert ((pred.scores >= 0) & (pred.scores <= 1)).all()
    return pred


@pytest.mark.parametrize("name", ["maskprop", "maskprop_framelink", "maskprop_flowprop"])
def test_predict_valid_with_disappearing_instance(name):
    model = _build(name).eval()
    vis = [True, True, False, False, True, True]
    sample = _video(6, {1: (1, vis), 2: (2, [True] * 6)})
    with torch.inference_mode():
        pred = _check(model.predict(sample), sample)
    assert len(pred.obj_ids) > 0    # score_thresh 0: the untrained detector still reports boxes


@pytest.mark.parametrize("name", ["maskprop", "maskprop_framelink", "maskprop_flowprop"])
def test_predict_video_without_instances(name):
    model = _build(name, score_thresh=1.1).eval()     # nothing passes: zero instances
    sample = _video(3, {})
    with torch.inference_mode():
        pred = _check(model.predict(sample), sample)
    assert pred.obj_ids.numel() == 0 and all(f.masks.shape == (0, H, W) for f in pred.frames)


# ------------------------------------------------------------- paper-size inference path (#18)
def _random_offsets(head, seed=0):
    """Non-zero offsets (the heads are zero-initialised) and bias, so windows are irregular."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for hd in head.propagation.offset_heads:
            hd.weight.copy_(torch.randn(hd.weight.shape, generator=g) * 0.3)
            hd.bias.copy_(torch.randn(hd.bias.shape, generator=g))
        head.propagation.bias.copy_(torch.randn(head.propagation.bias.shape, generator=g))


@pytest.mark.parametrize("background_logit,channels,dilations", [
    (False, 16, (3, 6, 12)),      # the paper's dilations, 1x1 shortcut in the offset block
    (True, 8, (1, 2, 3)),         # the tiny config's, identity shortcut
])
def test_propagate_clip_equals_the_dense_branch(background_logit, channels, dilations):
    """The inference path (per-frame offset terms, logits from one-channel maps, windows) must
    give the dense forward's probabilities: instances at the borders, a one-cell instance, an
    empty one, soft values; small max_samples forces chunking over targets."""
    torch.manual_seed(1)
    head = MaskPropagationHead(in_channels=channels, offset_channels=8, dilations=dilations,
                               background_logit=background_logit)
    _random_offsets(head)
    fs, ft = torch.randn(1, channels, 17, 23), torch.randn(4, channels, 17, 23)
    m = torch.zeros(5, 17, 23)
    m[0, 0:3, 0:4] = torch.rand(3, 4)
    m[1, 14:17, 20:23] = 1.0
    m[2, 8, 11] = 0.7
    m[3, 5:12, 2:9] = 0.4                                             # m[4]: empty
    with torch.no_grad():
        offs = head.offsets(fs.expand(4, -1, -1, -1), ft)
        parts = head.pair_offsets(head.frame_parts(fs), head.frame_parts(ft))
        for a, b in zip(offs, parts):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
        dense = torch.stack([head(fs, ft[t:t + 1], m) for t in range(4)], 1)      # [N, T, h, w]
        stats = {}
        sparse = head.propagate_clip(fs, ft, m, max_samples=3000, stats=stats)
    torch.testing.assert_close(sparse, dense, atol=1e-5, rtol=1e-5)
    assert 0 < stats["window_cells"] < stats["grid_cells"]


def test_sparse_predict_equals_dense_predict_and_caps_refinement():
    model = _build(clip_radius=2, max_instances=3).eval()
    _random_offsets(model.propagation)
    sample = _video(5, {1: (1, [True] * 5), 2: (2, [True, True, False, True, True])})
    outs = {}
    for sparse in (True, False):
        model.sparse_propagation = sparse
        with torch.inference_mode():
            pred = model.predict(sample).materialize()
        outs[sparse] = (pred.scores, torch.stack([f.masks for f in pred.frames]))
    assert outs[True][1].shape[1] > 0
    torch.testing.assert_close(outs[True][0], outs[False][0])
    assert torch.equal(outs[True][1], outs[False][1])
    # refine_max_per_frame: at most that many refinement patches per frame, the best-scored
    calls = []
    orig = model.refinement.forward
    model.refinement.forward = lambda rgb, m: calls.append(len(rgb)) or orig(rgb, m)
    model.refine_max_per_frame = 1
    probs = torch.zeros(3, H, W)
    probs[:, 10:30, 10:30] = 0.9
    out = model.refine_masks(sample.frames[0].image, probs, torch.tensor([0.1, 0.9, 0.5]))
    assert calls == [1]
    assert torch.equal(out[0], probs[0]) and torch.equal(out[2], probs[2]) and not torch.equal(out[1], probs[1])


def test_predicted_train_masks_option():
    with pytest.raises(ValueError, match="prop_train_masks"):
        _build(prop_train_masks="detections")
    model = _build(prop_train_masks="predicted").train()
    seen = []
    orig = model.propagation.forward
    model.propagation.forward = lambda fs, ft, inst, offsets=None: seen.append(inst) or orig(fs, ft, inst, offsets)
    torch.manual_seed(0)
    batch = _batch([_video(2, {1: (1, [True, True]), 2: (2, [True, True])})])
    losses = model.training_step(batch)
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    inst = seen[0]
    assert inst.shape[0] == 2 and not inst.requires_grad
    # the mask head's (untrained, soft) masks: not the binary ground truth, zero outside the boxes
    gt_like = ((inst == 0) | (inst == 1)).float().mean()
    assert float(gt_like) < 0.99 and float(inst.min()) >= 0.0 and float(inst.max()) <= 1.0


def test_flowprop_with_zero_flow_copies_the_centre_masks():
    from vosbench_methods.maskprop.model import image_to_grid

    model = _build("maskprop_flowprop", flow="zero", clip_radius=2).eval()
    sample = _video(5, {1: (1, [True] * 5)})
    with torch.inference_mode():
        states = {t: model._frame_state(f.image) for t, f in enumerate(sample.frames)}
        st = states[2]
        prop = model.propagate_instances(2, [0, 1, 3, 4], states)
    assert prop.shape[:2] == (len(st.boxes), 4) and len(st.boxes) > 0
    want = image_to_grid(st.masks_full, st.image_size, st.padded_size, tuple(st.masks_grid.shape[-2:]))
    for k in range(4):
        torch.testing.assert_close(prop[:, k], want, atol=1e-5, rtol=1e-5)
    # the flow is computed once per consecutive pair and cached on the frame states
    assert set(states[3].flows) == {2} and set(states[1].flows) == {2}


def test_framelink_link_frames_is_predict():
    model = _build("maskprop_framelink").eval()
    sample = _video(4, {1: (1, [True] * 4), 2: (2, [True, False, True, True])})
    with torch.inference_mode():
        a = model.predict(sample).materialize()
        states = [model._frame_state(f.image) for f in sample.frames]
        b = model.link_frames(sample, states).materialize()
    assert torch.equal(a.scores, b.scores) and torch.equal(a.labels, b.labels)
    assert all(torch.equal(x.masks, y.masks) for x, y in zip(a.frames, b.frames))


# ------------------------------------------------------------------ the paper config (#18)
def _pre_013_layout(sd: dict) -> dict:
    """torchvision < 0.13 key names (the published COCO file's layout), no module metadata."""
    import re

    rules = [(r"^rpn\.head\.conv\.0\.0\.", "rpn.head.conv."),
             (r"^roi_heads\.mask_head\.(\d+)\.0\.", lambda m: f"roi_heads.mask_head.mask_fcn{int(m.group(1)) + 1}."),
             (r"^backbone\.fpn\.(inner_blocks|layer_blocks)\.(\d+)\.0\.", r"backbone.fpn.\1.\2.")]
    out = {}
    for k, v in sd.items():
        for pat, rep in rules:
            k = re.sub(pat, rep, k)
        out[k] = v
    return out


@pytest.fixture(scope="module")
def coco_weights_dir(tmp_path_factory):
    """A stand-in for torchvision's COCO Mask R-CNN file: the real key names and shapes
    (maskrcnn_resnet50_fpn, 91 classes, pre-0.13 layout as published), random values, under its
    published file name in a VOSBENCH_WEIGHTS folder that holds nothing else."""
    from torchvision.models.detection import maskrcnn_resnet50_fpn

    torch.manual_seed(0)
    ref = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=91)
    with torch.no_grad():
        for p in ref.parameters():
            p.normal_(std=0.02)
    sd = {k: v.clone() for k, v in ref.state_dict().items() if not k.endswith("num_batches_tracked")}
    d = tmp_path_factory.mktemp("weights")
    torch.save(_pre_013_layout(sd), d / "maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth")
    return d, sd


def test_paper_config_builds_from_the_coco_file_trains_one_scale_per_clip_and_predicts(coco_weights_dir, monkeypatch):
    """configs/method/maskprop.yaml as shipped (ResNet-50-FPN, 41 classes, stride-8 propagation,
    dilations 3/6/12, K = 6, 1000 test proposals) at a tiny resolution: the COCO file (no ImageNet
    file present: it covers the backbone) initialises every non-class tensor; training pairs take
    one short side per clip from a min_size list; predict runs the sparse propagation."""
    from vosbench.config import compose
    from vosbench.engine.defaults import build_method

    wdir, sd = coco_weights_dir
    monkeypatch.setenv("VOSBENCH_WEIGHTS", str(wdir))
    sizes = [64, 80, 96]
    # tiny resolution and fewer sampled RoIs / proposals (cost only; every width is the paper's)
    cfg = compose(["method=maskprop", f"method.min_size=[{','.join(map(str, sizes))}]", "method.max_size=160",
                   "method.refine_patch=32", "method.max_instances=2", "method.score_thresh=0.0",
                   "method.detector.box_score_thresh=0.0", "+method.detector.box_batch_size_per_image=64",
                   "+method.detector.rpn_post_nms_top_n_train=100", "method.detector.rpn_post_nms_top_n_test=50"])
    assert cfg.allow_random_init is False and cfg.method.prop_level == "1"
    assert list(cfg.method.prop_dilations) == [3, 6, 12] and cfg.method.clip_radius == 6
    torch.manual_seed(0)
    model = build_method(cfg)
    own = model.detector.state_dict()
    rep = model.detector_weights_report
    assert rep is not None and rep.missing == [] and rep.unexpected == []
    assert {k.rsplit(".", 1)[0] for k in rep.skipped} == {
        "roi_heads.box_predictor.cls_score", "roi_heads.box_predictor.bbox_pred",
        "roi_heads.mask_predictor.mask_fcn_logits"}                        # 91 COCO classes vs 41
    for k in ("rpn.head.conv.0.0.weight", "roi_heads.mask_head.3.0.weight", "backbone.fpn.inner_blocks.1.0.weight",
              "backbone.body.layer1.0.conv1.weight", "roi_heads.box_head.fc7.weight"):
        assert torch.equal(own[k], sd[k]), k
    assert own["roi_heads.box_predictor.cls_score.weight"].shape[0] == 41
    # training: one short side per clip, drawn from the list
    model.train()
    seen: list[list[int]] = []
    orig = model.detector.transform.forward

    def spy(images, targets=None):
        il, tg = orig(images, targets)
        seen.append([min(s) for s in il.image_sizes])
        return il, tg

    model.detector.transform.forward = spy
    batch = _batch([_video(2, {1: (1, [True, True]), 2: (2, [True, True])}),
                    _video(2, {1: (3, [True, True])}, vid="w")])
    for seed in range(2):
        torch.manual_seed(seed)
        losses = model.training_step(batch)
        assert all(torch.isfinite(v) for v in losses.values()), losses
    sum(losses.values()).backward()
    assert all(s[0] == s[1] and s[2] == s[3] for s in seen)                # frames of a clip: one size
    assert {x for s in seen for x in s} <= set(sizes) and len({x for s in seen for x in s}) > 1   # seeds 0, 1
    # inference: the test size for the whole video, a valid prediction
    model.eval()
    seen.clear()
    model.profile = {}
    sample = _video(3, {1: (1, [True] * 3)})
    with torch.inference_mode():
        _check(model.predict(sample), sample)
    assert seen and all(s == [sizes[-1]] for s in seen)
    # 2 instances (max_instances) per frame, each propagated to the 2 other frames (K = 6 > video)
    assert model.profile["grid_cells"] == 3 * 2 * 2 * 12 * 20   # stride 8 of 96x144 padded to 96x160
    assert 0 < model.profile["window_cells"] <= model.profile["grid_cells"]


def test_stage_two_starts_from_the_stage_one_detector(tmp_path):
    """configs/experiment/maskprop: the COCO stage trains the detector with 81 classes; the
    YouTube-VIS stage loads that checkpoint through detector_weights (the class layers keep their
    fresh init for 41 classes, everything else of the detector comes from it)."""
    stage1 = _build(num_classes=81)
    ckpt = tmp_path / "model_final.pth"
    torch.save({"model": stage1.state_dict(), "iteration": 10}, ckpt)
    stage2 = _build(num_classes=41, detector_weights=str(ckpt))
    a, b = stage1.detector.state_dict(), stage2.detector.state_dict()
    skipped = {k for k in a if a[k].shape != b[k].shape}
    assert skipped and all(k.startswith(("roi_heads.box_predictor.", "roi_heads.mask_predictor.mask_fcn_logits."))
                           for k in skipped)
    assert all(torch.equal(a[k], b[k]) for k in a if k not in skipped)
    # the propagation branch and the refinement are not in the detector file: fresh
    assert not torch.equal(stage1.propagation.attention.weight, stage2.propagation.attention.weight) or \
        not torch.equal(stage1.propagation.mask_logits.weight, stage2.propagation.mask_logits.weight)


def test_experiment_stages_compose_with_the_paper_values():
    """configs/experiment/maskprop/*: the stages compose and carry the paper's values."""
    from vosbench.config import compose

    coco = compose(["+experiment=maskprop/detector_coco"])
    assert coco.dataset.name == "coco" and coco.method.num_classes == 81 and coco.trainer.clip.num_frames == 1
    vis = compose(["+experiment=maskprop/ytvis_train"])
    assert vis.dataset.name == "ytvis2019" and vis.method.num_classes == 41
    assert list(vis.method.min_size) == [640, 672, 704, 736, 768, 800]          # §4.4 640-800
    assert vis.trainer.clip.num_frames == 2 and vis.trainer.clip.max_stride == 25   # pairs, |gap| <= 25
    assert vis.trainer.optimizer._target_ == "torch.optim.SGD" and vis.trainer.optimizer.lr == 0.008
    assert vis.trainer.epochs == 20 and list(vis.trainer.scheduler.milestones) == [16, 19]
    assert vis.trainer.batch_size == 32 and vis.recipe.data == "davis2016_mini_ytvis"
    # the same recipe on the shared YouTube-VIS annotation sample (benchmarks/paper_scale.py)
    sample = compose(["+experiment=maskprop/ytvis_train_sample"])
    assert sample.recipe.data == "ytvis2019_sample" and sample.recipe.runs == vis.recipe.runs
    assert {k: sample[k] for k in ("method", "dataset", "trainer")} == {k: vis[k] for k in ("method", "dataset", "trainer")}
    inf = compose(["+experiment=maskprop/inference"])
    assert inf.method.clip_radius == 6 and inf.method.score_thresh == 0.1   # T = 13, boxes > 0.1
    assert inf.method.detector.rpn_post_nms_top_n_test == 1000
    assert inf.method.max_instances == 20 and inf.method.refine_max_per_frame == 20
    assert list(inf.recipe.runs) == ["predict"]


def test_random_detector_file_warns_about_the_random_frozen_trunk(tmp_path, monkeypatch, caplog):
    """The YouTube-VIS stage names the COCO detector file; with allow_random_init and no file the
    whole detector is random, frozen BatchNorm included (identity statistics: the paper-size smoke
    then shows loss_mask ~ 1e4). That must be said, as it is when the ImageNet trunk is missing;
    a GroupNorm trunk with every layer trainable has nothing to warn about."""
    import logging

    from vosbench.config import compose
    from vosbench.engine.defaults import build_method

    monkeypatch.setenv("VOSBENCH_WEIGHTS", str(tmp_path))        # an empty folder: no file at all
    small = ["method.min_size=64", "method.max_size=96", "method.refine_patch=32", "allow_random_init=true"]
    cfg = compose(["method=maskprop", *small])
    assert cfg.method.detector_weights and cfg.method.backbone.norm == "frozen_bn"
    with caplog.at_level(logging.WARNING):
        build_method(cfg)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("MaskProp: the backbone")]
    assert len(lines) == 1 and "frozen BatchNorm" in lines[0] and "conv1, layer1" in lines[0], lines
    caplog.clear()
    cfg = compose(["method=maskprop", *small, "method.backbone.norm=gn", "method.backbone.trainable_layers=5"])
    with caplog.at_level(logging.WARNING):
        build_method(cfg)
    assert not [r for r in caplog.records if r.getMessage().startswith("MaskProp: the backbone")]
