"""LIP: contract, Conv-GRU memory, class-agnostic -> class-specific copy, online constraints."""
from __future__ import annotations

import copy
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

import vosbench_methods  # noqa: F401  (registers every method)
from vosbench_methods.lip.heads import ConvGRUNeck, IdBoxPredictor, ShortcutMaskPredictor
from vosbench_methods.lip.losses import HeadEarlyStopping, focal_loss
from vosbench_methods.lip.model import LIP, OnlineHeads, select_per_id
from vosbench.config import build
from vosbench.registry import METHODS
from vosbench.structures import Frame, ObjectMasks, VideoBatch, VideoSample

REPO = Path(__file__).resolve().parents[2]
H, W = 64, 96


def _lip(**overrides) -> LIP:
    cfg = OmegaConf.to_container(OmegaConf.load(REPO / "configs/method/lip_tiny.yaml"))
    # native 64x96 (the benchmark up-samples 2x) and short online fine-tuning keep the tests fast
    cfg.update({"finetune_iters": 4, "online_id_iters": 2, "num_ids": 8, "min_size": 64, "max_size": 96,
                "anchor_sizes": [[8], [16], [32], [64], [128]], **overrides})
    torch.manual_seed(0)
    return build(cfg, METHODS)


@pytest.fixture(scope="module")
def lip() -> LIP:
    return _lip()


def _box_mask(y0, y1, x0, x1):
    m = torch.zeros(H, W, dtype=torch.bool)
    m[y0:y1, x0:x1] = True
    return m


def _batch(T=4) -> VideoBatch:
    B, O = 2, 2
    masks = torch.zeros(B, T, O, H, W, dtype=torch.bool)
    for t in range(T):
        masks[:, t, 0] = _box_mask(8, 30, 10 + 3 * t, 40 + 3 * t)
        masks[0, t, 1] = _box_mask(34, 60, 50, 90)
    torch.manual_seed(1)
    return VideoBatch(
        images=torch.rand(B, T, 3, H, W), masks=masks, obj_ids=torch.tensor([[1, 2], [3, -1]]),
        labels=torch.full((B, O), -1), obj_valid=torch.tensor([[True, True], [True, False]]),
        annotated=torch.ones(B, T, dtype=torch.bool), pad=torch.zeros(B, T, H, W, dtype=torch.bool),
        void=torch.zeros(B, T, H, W, dtype=torch.bool), frame_idx=torch.arange(T).repeat(B, 1),
        samples=[VideoSample("vid-a", []), VideoSample("vid-b", [])])


def _video(refs: dict[int, dict[int, torch.Tensor]], T=5) -> VideoSample:
    torch.manual_seed(2)
    frames = [Frame(image=torch.rand(3, H, W), index=t, name=f"{t:05d}") for t in range(T)]
    reference = {t: ObjectMasks(torch.tensor(list(objs)), torch.stack(list(objs.values())))
                 for t, objs in refs.items()}
    return VideoSample("v", frames, orig_size=(H, W), reference=reference,
                       frame_names=[f.name for f in frames])


# ----------------------------------------------------------------------------- contract
@pytest.mark.parametrize("stage", ["image", "video"])
def test_training_step_finite_losses_and_backward(stage):
    # the image stage on class-agnostic clips: one generic foreground class (num_ids=1)
    model = _lip(stage=stage, **({"num_ids": 1} if stage == "image" else {}))
    losses = model.training_step(_batch())
    assert set(losses) == {"loss_objectness", "loss_rpn_box_reg", "loss_id", "loss_box_reg", "loss_mask"}
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()
    gru = model.detector.neck.grus["0"].conv_x.weight
    bb = next(model.detector.backbone.parameters())
    if stage == "video":  # everything but the backbone trains (§4.1.2)
        assert gru.grad is not None and gru.grad.abs().sum() > 0
        assert bb.grad is None and not bb.requires_grad
    else:  # zero hidden state: the h-convs get no gradient, the backbone does
        assert bb.grad is not None and bb.grad.abs().sum() > 0
        g = model.detector.neck.grus["0"].conv_h_gates.weight.grad
        assert g is None or g.abs().sum() == 0


@pytest.mark.parametrize("reverse_prob", [1.0, 0.0])
def test_video_stage_detaches_every_recurrence_and_reverses(reverse_prob):
    model = _lip(stage="video", reverse_prob=reverse_prob)
    seen, order, heads_calls = [], [], []
    det = model.detector
    neck_forward, resize, heads = det.neck.forward, det.resize, det.heads
    batch = _batch(T=8)
    batch.annotated[:, 7] = False  # the last frame (the first one after reversal) has no GT

    def spy_neck(feats, state):
        seen.append(None if state is None else state[0].grad_fn is not None)
        return neck_forward(feats, state)

    def spy_resize(images, targets=None, **kw):  # which clip frame enters the recurrence
        order.append([t for t in range(8) if torch.equal(images[0], batch.images[0, t])])
        return resize(images, targets, **kw)

    def spy_heads(*a, **kw):
        heads_calls.append(order[-1][0])
        return heads(*a, **kw)

    det.neck.forward, det.resize, det.heads = spy_neck, spy_resize, spy_heads
    losses = model.training_step(batch)
    assert all(torch.isfinite(v) for v in losses.values())
    # zero state first, gradient stopped between the 4th and 5th frames only
    assert seen == [None, True, True, True, False, True, True, True]
    frames = list(range(8))[::-1] if reverse_prob == 1.0 else list(range(8))
    assert order == [[t] for t in frames]  # the clip is played backwards (reverse_prob=1) or not
    assert heads_calls == [t for t in frames if t != 7]  # frame 7 only updates the memory


@pytest.mark.parametrize("stage", ["image", "video"])
def test_paper_multi_scale_min_size_trains_one_scale_per_clip(stage):
    """The paper config's ``min_size`` list (11 short sides, §5.1) trains: one scale per clip.

    Before #17 the video stage let torchvision draw a new short side for every frame, so the
    Conv-GRU state of frame t-1 had another shape than frame t's features (crash on the first
    step of the paper config); the image stage drew per image, not per clip."""
    model = _lip(stage=stage, min_size=(48, 64, 80, 96), max_size=160, **({"num_ids": 1} if stage == "image" else {}))
    det = model.detector
    shapes, resize = [], det.resize

    def spy(images, targets=None, **kw):
        il, tr = resize(images, targets, **kw)
        shapes.append([tuple(s) for s in il.image_sizes])
        return il, tr

    det.resize = spy
    torch.manual_seed(11)
    for _ in range(4):  # several draws: the chance that 8 per-frame draws all agree is tiny
        shapes.clear()
        losses = model.training_step(_batch(T=8 if stage == "video" else 2))
        assert torch.isfinite(sum(losses.values()))
        per_clip = list(zip(*shapes)) if stage == "video" else None
        if stage == "video":
            assert len(shapes) == 8 and all(len(set(c)) == 1 for c in per_clip), shapes
            assert all(min(c[0]) in (48, 64, 80, 96) for c in per_clip)
        else:  # one call with the 2 clips x 2 frames: both frames of a clip at its scale
            (sizes,) = shapes
            assert sizes[0] == sizes[1] and sizes[2] == sizes[3] and min(sizes[0]) in (48, 64, 80, 96), sizes


def test_training_ids_are_stable_and_bounded():
    model = _lip(num_ids=3)
    a = model._train_ids("vid-a", torch.tensor([1, 2]))
    assert model._train_ids("vid-a", torch.tensor([2, 1])).tolist() == a.flip(0).tolist()
    assert set(a.tolist()) <= {1, 2, 3}
    model._train_ids("vid-b", torch.tensor([1]))
    with pytest.raises(RuntimeError, match="num_ids"):
        model._train_ids("vid-c", torch.tensor([1]))


def test_predict_several_objects_late_entry_and_offline_weights_untouched(lip):
    before = copy.deepcopy(lip.state_dict())
    a, b, c = _box_mask(5, 25, 5, 30), _box_mask(35, 60, 60, 90), _box_mask(30, 50, 10, 40)
    sample = _video({0: {1: a, 2: b}, 2: {5: c}})
    pred = lip.predict(sample)
    assert lip.needs_grad_at_test
    frames = list(pred.iter_frames())
    assert pred.obj_ids.tolist() == [1, 2, 5] and pred.labels.tolist() == [-1, -1, -1]
    assert len(frames) == 5
    assert torch.equal(frames[0].masks[0], a) and torch.equal(frames[0].masks[1], b)
    assert not frames[0].masks[2].any() and not frames[1].masks[2].any()  # 5 joins at frame 2
    assert torch.equal(frames[2].masks[2], c)
    assert frames[2].masks.sum(0).max() <= 1  # one label map: objects do not overlap
    events = [e["event"] for e in pred.meta["online_log"]]
    assert events.count("finetune") == 2  # frame 0 and frame 2
    after = lip.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_predict_without_objects(lip):
    pred = lip.predict(_video({}, T=3))
    frames = list(pred.iter_frames())
    assert len(frames) == 3 and all(f.masks.shape == (0, H, W) for f in frames)


def test_predict_under_inference_mode(lip):
    sample = _video({0: {1: _box_mask(5, 25, 5, 30)}}, T=2)
    with torch.inference_mode():
        frames = list(lip.predict(sample).iter_frames())
    assert len(frames) == 2


# ----------------------------------------------------------------------------- memory
def _frames_features(model, images, zero_at=None):
    """Run the detector's features over frames; returns the last frame's id logits."""
    det = model.detector.eval()
    state = None
    with torch.no_grad():
        for t, im in enumerate(images):
            if t == zero_at:
                state = None
            il, _, feats, state = det.extract_features([im], None, state)
        props = [torch.tensor([[10.0, 10.0, 50.0, 40.0], [40.0, 20.0, 90.0, 60.0]])]
        rep = det.roi_heads.box_head(det.roi_heads.box_roi_pool(feats, props, il.image_sizes))
        return feats, det.roi_heads.box_predictor(rep)[0]


def test_convgru_state_carries_information(lip):
    torch.manual_seed(3)
    images = [torch.rand(3, H, W) for _ in range(3)]
    feats, logits = _frames_features(lip, images)
    feats0, logits0 = _frames_features(lip, images, zero_at=2)  # zero the state before frame 2
    assert not torch.allclose(feats["1"], feats0["1"], atol=1e-5)
    assert not torch.allclose(logits, logits0, atol=1e-6)


def test_zero_hidden_state_ablation_ignores_the_past():
    model = _lip(zero_hidden_state=True)
    torch.manual_seed(3)
    images = [torch.rand(3, H, W) for _ in range(3)]
    feats, logits = _frames_features(model, images)
    feats0, logits0 = _frames_features(model, images, zero_at=2)
    assert torch.allclose(feats["1"], feats0["1"]) and torch.allclose(logits, logits0)


def test_path_augmentation_goes_bottom_up():
    torch.manual_seed(0)
    neck = ConvGRUNeck(channels=8, num_groups=4)
    sizes = {"0": 16, "1": 8, "2": 4, "3": 2, "pool": 1}
    feats = OrderedDict((k, torch.randn(1, 8, s, s)) for k, s in sizes.items())
    out, state = neck(feats, None)
    assert [tuple(v.shape) for v in out.values()] == [tuple(v.shape) for v in feats.values()]
    assert len(state) == 5
    bumped = OrderedDict(feats)
    bumped["0"] = feats["0"] + 1
    out2, _ = neck(bumped, None)
    assert not torch.allclose(out["pool"], out2["pool"])  # the finest level reaches the top
    bumped = OrderedDict(feats)
    bumped["pool"] = feats["pool"] + 1
    out3, _ = neck(bumped, None)
    assert torch.allclose(out["0"], out3["0"])  # ... but never the other way round


# ----------------------------------------------------------------------------- Fig. 5 copy
def test_class_agnostic_to_class_specific_copy_is_identical():
    torch.manual_seed(0)
    box = IdBoxPredictor(16, 4, class_agnostic=True)
    mask = ShortcutMaskPredictor(in_channels=8, conv_channels=8, num_convs=2, num_classes=4, num_groups=4)
    x, r = torch.randn(5, 16), torch.randn(5, 8, 28, 28)
    s0, d0 = box(x)
    m0 = mask(r)
    box2, mask2 = copy.deepcopy(box), copy.deepcopy(mask)
    box2.to_class_specific()
    mask2.to_class_specific()
    assert not box2.class_agnostic and box2.bbox_pred.out_features == 16
    assert mask2.mask_fcn_logits.out_channels == 4
    s1, d1 = box2(x)
    assert torch.equal(s0, s1) and torch.allclose(d0, d1, atol=1e-6)
    assert torch.allclose(m0, mask2(r), atol=1e-5)
    # the per-instance copies then train independently
    with torch.no_grad():
        mask2.mask_fcn_logits.weight[2] += 1
    m2 = mask2(r)
    assert torch.allclose(m2[:, 1], m0[:, 1], atol=1e-5) and not torch.allclose(m2[:, 2], m0[:, 2], atol=1e-3)


def test_online_heads_match_offline_before_finetuning(lip):
    """The per-video class-specific heads detect exactly what the agnostic offline heads do."""
    from vosbench_methods.lip.model import LIPVideoState

    st = LIPVideoState()
    lip._grow_heads(st, [7, 9])
    off, on = lip.detector.roi_heads, st.heads.roi_heads
    on.box_predictor.cls_score.load_state_dict(_resized(off.box_predictor.cls_score, 3))
    torch.manual_seed(4)
    il, _, feats, _ = lip.detector.eval().extract_features([torch.rand(3, H, W)])
    props = [torch.tensor([[10.0, 10.0, 50.0, 40.0], [40.0, 20.0, 90.0, 60.0]])]
    with torch.no_grad():
        rep = off.box_head(off.box_roi_pool(feats, props, il.image_sizes))
        _, d_off = off.box_predictor(rep)
        _, d_on = on.box_predictor(on.box_head(on.box_roi_pool(feats, props, il.image_sizes)))
        r = off.mask_roi_pool(feats, props, il.image_sizes)
        m_off, m_on = off.mask_predictor(r), on.mask_predictor(r)
    # identical up to float rounding (convolutions with 1 vs 3 filters sum in another order)
    assert torch.allclose(d_off[:, :12], d_on, atol=1e-5) and torch.allclose(m_off[:, :3], m_on, atol=1e-4)
    # a later object keeps the first objects' rows and gets fresh agnostic copies
    with torch.no_grad():
        on.mask_predictor.mask_fcn_logits.weight[1] += 1
    lip._grow_heads(st, [11])
    assert st.obj_ids == [7, 9, 11]
    assert on.mask_predictor.mask_fcn_logits.out_channels == 4
    with torch.no_grad():
        m_new = on.mask_predictor(r)
    assert not torch.allclose(m_new[:, 1], m_off[:, 1], atol=1e-4)
    assert torch.allclose(m_new[:, 3], m_off[:, 1], atol=1e-4)


def _resized(layer, n):
    return {"weight": layer.weight[:n].clone(), "bias": layer.bias[:n].clone()}


# ----------------------------------------------------------------------------- constraints
def test_select_per_id_one_maximum_and_location_continuity():
    boxes = torch.tensor([[0, 0, 10, 10], [50, 50, 60, 60], [1, 1, 11, 11], [0, 0, 9, 9.]])
    scores = torch.tensor([0.9, 0.95, 0.5, 0.3])
    labels = torch.tensor([1, 1, 1, 2])
    # one maximum: the best box of id 1 only
    idx, cls = select_per_id(boxes, scores, labels, [4, 8], {}, {})
    assert idx == [1, 3] and cls == [1, 2]
    # continuity: id 1 was confidently at the top-left -> the far box is suppressed
    prev = {4: torch.tensor([0, 0, 10, 10.])}
    idx, _ = select_per_id(boxes, scores, labels, [4, 8], prev, {4: 0.9})
    assert idx[0] == 0
    # ... unless the previous score was low
    idx, _ = select_per_id(boxes, scores, labels, [4, 8], prev, {4: 0.3})
    assert idx[0] == 1
    # nothing survives -> the id is not detected
    idx, _ = select_per_id(boxes[1:2], scores[1:2], labels[1:2], [4], prev, {4: 0.9})
    assert idx == []
    # only the top-k candidates are considered
    idx, _ = select_per_id(boxes, scores, labels, [4, 8], prev, {4: 0.9}, topk=1)
    assert 0 not in idx


def test_focal_loss_and_head_early_stopping():
    logits, labels = torch.randn(6, 4), torch.tensor([0, 1, 2, 3, 0, 0])
    assert torch.allclose(focal_loss(logits, labels, gamma=0.0), torch.nn.functional.cross_entropy(logits, labels))
    assert focal_loss(logits, labels, gamma=2.0) < focal_loss(logits, labels, gamma=0.0)
    stop = HeadEarlyStopping({"id": 0.1, "mask": 0.1})
    losses = {"loss_id": torch.tensor(0.05), "loss_mask": torch.tensor(0.5), "loss_box_reg": torch.tensor(0.2)}
    total, active = stop.active_loss(losses)
    assert active == ["box", "mask"] and float(total) == pytest.approx(0.7)
    total, active = HeadEarlyStopping({"id": 1, "mask": 1, "box": 1}).active_loss(losses)
    assert total is None and active == []


def test_online_finetuning_early_stops_and_learns():
    model = _lip(finetune_thresholds={"rpn": 1e9, "id": 1e9, "box": 1e9, "mask": 1e9})
    sample = _video({0: {1: _box_mask(5, 25, 5, 30)}}, T=1)
    pred = model.predict(sample)
    list(pred.iter_frames())
    assert pred.meta["online_log"][0]["iters"] == 0  # every head below threshold at once
    # the same frame's losses fall while fine-tuning (a step that does not learn, e.g. lr 0,
    # keeps them at their first value) ...
    curves = {}
    for lr in (0.02, 0.0):
        model = _lip(finetune_iters=40, finetune_lr=lr, finetune_thresholds={}, finetune_hflip=False)
        torch.manual_seed(5)
        pred = model.predict(sample)
        list(pred.iter_frames())
        rec = pred.meta["online_log"][0]
        assert rec["iters"] == 40 and set(rec["active_heads"]) == {"rpn", "id", "box", "mask"}
        curves[lr] = rec["loss_curve"]
    first, last = sum(curves[0.02][:5]) / 5, sum(curves[0.02][-5:]) / 5
    assert last < 0.6 * first, curves[0.02]
    assert sum(curves[0.0][-5:]) / 5 > 0.8 * sum(curves[0.0][:5]) / 5, curves[0.0]
    # ... and a head below its threshold stops training: its loss is no longer in the sum
    model = _lip(finetune_iters=3, finetune_thresholds={"rpn": 1e9, "box": 1e9, "mask": 1e9})
    pred = model.predict(sample)
    list(pred.iter_frames())
    assert pred.meta["online_log"][0]["active_heads"] == ["id"]


def test_finetune_memory_view_adds_views_through_the_memory():
    """The deviation option fine-tunes also on the reference frame seen through the memory it just
    wrote; these features differ from the zero-state ones. The ablation has no memory: no views."""
    image = torch.rand(3, H, W)
    masks, classes = _box_mask(5, 25, 5, 30)[None], torch.tensor([1])
    for zero, expect in ((False, 4), (True, 2)):
        model = _lip(finetune_memory_view=True, zero_hidden_state=zero).eval()
        il, feats, h_out = model._features(image, None)
        views = model._views(image, None, il, feats, masks, classes, hidden_out=h_out)
        assert len(views) == expect
        if not zero:
            assert views[1][2] is views[0][2]  # same targets, other features
            assert any(not torch.allclose(views[0][1][k], views[1][1][k]) for k in feats)
            # the mirrored memory view goes through the mirrored video's own state
            _, _, flip_out = model._features(image.flip(-1), None)
            _, feats_fm, _ = model._features(image.flip(-1), flip_out)
            assert all(torch.equal(views[3][1][k], feats_fm[k]) for k in feats)
    model = _lip().eval()  # off by default
    il, feats, h_out = model._features(image, None)
    assert h_out is not None and len(model._views(image, None, il, feats, masks, classes, hidden_out=h_out)) == 2


def test_checkpoint_roundtrip_and_id_layer_replacement(tmp_path):
    model = _lip(stage="image", num_ids=1)
    path = tmp_path / "stage1.pth"
    torch.save({"model": model.state_dict()}, path)
    video = _lip(stage="video", num_ids=8, pretrained=str(path))
    assert video.load_report["replaced_id_layer"]
    assert torch.equal(video.detector.neck.grus["0"].conv_x.weight, model.detector.neck.grus["0"].conv_x.weight)
    assert video.detector.roi_heads.box_predictor.cls_score.out_features == 9
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        _lip(weights=str(tmp_path / "nope.pth"))


def test_paper_config_builds():
    cfg = OmegaConf.to_container(OmegaConf.load(REPO / "configs/method/lip.yaml"))
    assert cfg["backbone"]["name"] == "resnet101_fpn" and cfg["backbone"]["norm"] == "gn"
    cfg["backbone"] = {"name": "resnet_tiny_fpn", "norm": "gn", "out_channels": 32}
    model = build(cfg, METHODS)
    assert model.detector.roi_heads.mask_roi_pool.output_size == (28, 28)
    assert model.detector.roi_heads.box_roi_pool.featmap_names == ["0", "1", "2", "3"]
    assert len(model.detector.neck.grus) == 5
    assert isinstance(OnlineHeads(model.detector.rpn, model.detector.roi_heads), torch.nn.Module)


def test_committed_tiny_checkpoint_loads():
    path = REPO / "methods/lip/weights/lip_tiny_synthetic.pth"
    if not path.is_file():
        pytest.skip(f"{path} not present")
    model = _lip(weights=str(path), num_ids=128)
    assert model.load_report["replaced_id_layer"] == []
    assert int((model.train_id_keys >= 0).sum()) > 0  # trained: the id table is filled


# ----------------------------------------------------------------------------- review fixes (#17)
def test_image_stage_trains_per_class_labels():
    """Stage 1 on COCO (§4.1.1) trains the dataset's classes, not one label for everything."""
    model = _lip(stage="image", num_ids=80)
    batch = _batch(T=2)
    batch.labels = torch.tensor([[3, 7], [12, -1]])  # contiguous COCO labels; -1 = padding slot
    seen = []
    forward = model.detector.forward

    def spy(images, targets=None, *a, **kw):
        seen.extend(t["labels"].tolist() for t in targets)
        return forward(images, targets, *a, **kw)

    model.detector.forward = spy
    losses = model.training_step(batch)
    assert torch.isfinite(sum(losses.values()))
    assert seen == [[3, 7], [3, 7], [12], [12]]
    # one generic foreground class with num_ids=1; no silent class 1 for unlabelled data otherwise
    assert model._image_labels(batch, 0).tolist() == [3, 7]
    one = _lip(stage="image", num_ids=1)
    assert one._image_labels(batch, 0).tolist() == [1, 1]
    batch.labels = torch.full((2, 2), -1)
    with pytest.raises(ValueError, match="num_ids=80.*vid-a"):
        model.training_step(batch)
    batch.labels = torch.tensor([[3, 81], [1, -1]])
    with pytest.raises(ValueError, match="81"):
        model.training_step(batch)


def test_set_stage_keeps_the_backbone_trainable_layers():
    """``backbone.trainable_layers`` holds in stage 1 too; stage 2 freezes the whole backbone."""
    cfg_bb = {"name": "resnet_tiny_fpn", "norm": "gn", "width": 16, "out_channels": 32, "trainable_layers": 3}
    model = _lip(stage="image", num_ids=1, backbone=cfg_bb)
    bb = model.detector.backbone

    def trainable():
        return {n for n, p in bb.named_parameters() if p.requires_grad}

    built = trainable()
    stem = [n for n, _ in bb.named_parameters() if "conv1" in n and "layer" not in n]
    assert stem and not set(stem) & built and any("layer4" in n for n in built)
    model.set_stage("video")
    assert trainable() == set()
    model.set_stage("image")
    assert trainable() == built  # not every backbone parameter
    losses = model.training_step(_batch(T=2))
    sum(losses.values()).backward()
    assert all(dict(bb.named_parameters())[n].grad is None for n in stem)


def test_mirrored_memory_is_aligned_when_the_width_is_not_a_multiple_of_32():
    """Late-join hflip view: the memory is mirrored about the image content, not the padding."""
    model = _lip().eval()
    image = torch.rand(3, H, 90)  # resized 64x90, batched (padded) to 64x96
    il, feats, _ = model._features(image, None)
    assert tuple(il.image_sizes[0]) == (64, 90) and il.tensors.shape[-1] == 96
    # a memory that stores, in every cell, the x coordinate (pixels) of the cell centre
    ramp = []
    for f in feats.values():
        w = f.shape[-1]
        s = 96 / w
        ramp.append(((torch.arange(w) + 0.5) * s).expand(1, f.shape[1], f.shape[2], w).clone())
    captured = []
    features = model._features

    def spy(img, hidden):
        captured.append(hidden)
        return features(img, hidden)

    model._features = spy
    masks, classes = _box_mask(5, 25, 5, 30)[:, :90][None], torch.tensor([1])
    model._views(image, tuple(ramp), il, feats, masks, classes)
    (flipped,) = captured  # the mirrored frame's memory
    for lvl, (h, f) in enumerate(zip(flipped, feats.values())):
        w = f.shape[-1]
        s = 96 / w
        n = 90 / s
        j = torch.arange(w)
        src = n - 1 - j
        ok = ((j + 0.5) < n) & (src >= 0) & (src <= w - 1)
        # the mirrored frame shows at x what the frame shows at 90 - x
        expect = 90 - (j + 0.5) * s
        assert torch.allclose(h[0, 0, 0, ok], expect[ok].float(), atol=1e-4), (lvl, h[0, 0, 0], expect)
    # no padding: a plain flip
    from vosbench_methods.lip.model import mirror_state

    x = torch.randn(1, 2, 3, 6)
    assert torch.equal(mirror_state([x], content_width=96, padded_width=96)[0], x.flip(-1))


def test_online_id_finetuning_does_not_push_tracked_objects_to_background(lip):
    """Proposals on a tracked object whose score is below ``online_id_score`` are not negatives."""
    from vosbench_methods.lip import model as lip_model
    from vosbench_methods.lip.model import LIPVideoState

    st = LIPVideoState()
    lip._grow_heads(st, [1, 2])
    rh = st.heads.roi_heads
    a, b = torch.tensor([5.0, 5, 30, 25]), torch.tensor([60.0, 35, 90, 60])
    near_a = [a + d for d in (0.0, 1.0, -1.0)]
    near_b = [b + d for d in (0.0, 1.0, -1.0)]
    far = [torch.tensor([35.0, 5, 55, 20]), torch.tensor([5.0, 40, 25, 60])]
    props = torch.stack(near_a + near_b + far)
    st.heads.rpn.forward = lambda il, f, t=None: ([props], {})
    # A (id 1) confident, B (id 2) tracked with a score below online_id_score (0.8)
    rh.postprocess_detections = lambda *a_, **k: ([torch.stack([a, b])], [torch.tensor([0.95, 0.5])],
                                                  [torch.tensor([1, 2])])
    seen = []
    focal = lip_model.focal_loss

    def spy(logits, labels, **kw):
        seen.append(labels.clone())
        return focal(logits, labels, **kw)

    lip_model.focal_loss = spy
    try:
        il, _, feats, _ = lip.detector.eval().extract_features([torch.rand(3, H, W)])
        dets, iters = lip._detect(st, il, feats, (H, W))
    finally:
        lip_model.focal_loss = focal
    assert set(dets) == {1, 2} and iters >= 1
    labels = seen[0]
    assert (labels == 1).sum() == 3 and (labels == 0).sum() == 2 and not (labels == 2).any()
    # the rule itself: positive / ignored / negative
    from vosbench_methods.lip.model import online_id_labels

    lab = online_id_labels(props, torch.stack([a, b]), torch.tensor([1, 2]), torch.tensor([True, False]))
    assert lab.tolist() == [1, 1, 1, -1, -1, -1, 0, 0]
    lab = online_id_labels(props, torch.stack([a, b]), torch.tensor([1, 2]), torch.tensor([True, True]))
    assert lab.tolist() == [1, 1, 1, 2, 2, 2, 0, 0]


def _flat(d, prefix=""):
    for k, v in d.items():
        if isinstance(v, dict):
            yield from _flat(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}", v


def test_experiment_configs_carry_the_paper_values():
    """configs/experiment/lip/*.yaml compose with §5.1's values, and every value is commented."""
    import re

    from vosbench.config import compose, to_dict

    cache: dict = {}

    def cfg(name):
        if name not in cache:
            cache[name] = to_dict(compose([f"+experiment=lip/{name}", "dataset.root=/x"]))
        return cache[name]

    s1, s2, on = cfg("stage1_coco"), cfg("stage2_video"), cfg("online")
    m, t = s1["method"], s1["trainer"]
    assert (m["stage"], m["num_ids"], m["box_batch_size_per_image"], s1["dataset"]["name"]) == ("image", 80, 512, "coco")
    assert sorted(m["min_size"]) == list(range(320, 641, 32)) and m["max_size"] == 1333
    assert m["aspect_ratios"] == [0.2, 0.5, 1.0, 2.0, 5.0]
    assert (t["max_iter"], t["scheduler"]["milestones"], t["batch_size"] * t["accum_steps"]) == (270000, [210000, 250000], 16)
    assert (t["optimizer"]["_target_"], t["optimizer"]["lr"], t["optimizer"]["momentum"],
            t["optimizer"]["weight_decay"]) == ("torch.optim.SGD", 0.02, 0.9, 1e-4)
    m, t = s2["method"], s2["trainer"]
    assert (m["stage"], m["recurrence"], m["reverse_prob"], m["box_widen"], m["freeze_backbone_in_video"],
            m["box_batch_size_per_image"], s2["dataset"]["name"], s2["dataset"]["split"]) == (
        "video", 4, 0.5, 0.1, True, 128, "davis2017", "train")
    assert (t["max_iter"], t["scheduler"]["milestones"], t["optimizer"]["lr"], t["clip"]["num_frames"]) == (
        12000, [8000, 10000], 0.002, 8)
    m = on["method"]
    assert (m["finetune_iters"], m["online_id_iters"], m["topk_per_id"], m["id_score_thresh"],
            m["continuity_iou"], m["continuity_score"]) == (1000, 500, 10, 0.2, 0.3, 0.4)
    # the Table-3 ablation changes nothing but the hidden state
    for full, zero in (("stage2_video", "stage2_video_zero_state"), ("online", "online_zero_state")):
        a, b = dict(_flat(cfg(full))), dict(_flat(cfg(zero)))
        diff = {k for k in set(a) | set(b) if a.get(k) != b.get(k)} - {"output_dir", "recipe.paper"}
        assert diff == {"method.zero_hidden_state"} and b["method.zero_hidden_state"] is True
    # every value of the stage configs (up to `recipe:`) carries a comment, on its line or above
    leaf = re.compile(r"^\s*[A-Za-z_]+:\s*[^\s#]")
    for path in sorted((REPO / "configs/experiment/lip").glob("*.yaml")):
        prev = ""
        for line in path.read_text().splitlines():
            if line.startswith("recipe:"):
                break
            if leaf.match(line) and "#" not in line and not prev.lstrip().startswith("#") and not line.startswith("  - "):
                raise AssertionError(f"{path.name}: value without a comment: {line.strip()!r}")
            prev = line
