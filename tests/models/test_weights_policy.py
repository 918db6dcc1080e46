"""The weights policy (one rule for every published file) and torchvision's file layouts.

Stand-in files have the real key names and shapes of torchvision's published files and random
values; they are written by the tests in each layout torchvision has published.
"""
from __future__ import annotations

import logging
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn

from vosbench.config import build, compose
from vosbench.models.weights import (PUBLISHED, MissingWeightsError, load_pretrained, verify_covered,
                                     weights_policy)
from vosbench.registry import BACKBONES, FLOWS

REPO = Path(__file__).resolve().parents[2]


# ----------------------------------------------------------------------------- the rule
def test_published_names_are_torchvisions():
    assert PUBLISHED["resnet101"] == "resnet101-63fe2227.pth"
    assert PUBLISHED["resnext101_64x4d"] == "resnext101_64x4d-173b62eb.pth"
    assert PUBLISHED["vgg16"] == "vgg16-397923af.pth"
    assert PUBLISHED["raft_large"] == "raft_large_C_T_SKHT_V2-ff5fadd5.pth"
    assert PUBLISHED["maskrcnn_resnet50_fpn_coco"] == "maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth"


@pytest.mark.parametrize("cfg,file", [
    ({"name": "resnet50_fpn"}, "resnet50-0676ba61.pth"),
    ({"name": "vgg16_side", "in_channels": 4}, "vgg16-397923af.pth"),
])
def test_no_file_is_a_one_line_error(cfg, file, monkeypatch):
    monkeypatch.setenv("VOSBENCH_WEIGHTS", "/nowhere")
    with pytest.raises(MissingWeightsError) as e:
        build(cfg, BACKBONES)
    msg = str(e.value)
    assert "\n" not in msg and file in msg
    assert f"https://download.pytorch.org/models/{file}" in msg
    assert "$VOSBENCH_WEIGHTS (/nowhere) or weights/" in msg and "method.backbone.weights=PATH" in msg
    assert "allow_random_init=true" in msg and "no path given" in msg
    with pytest.raises(MissingWeightsError, match=r"not found at /x/none\.pth"):
        build({**cfg, "weights": "/x/none.pth"}, BACKBONES)


def test_random_init_only_when_allowed_and_logged(caplog):
    with caplog.at_level(logging.WARNING, logger="vosbench"), weights_policy(allow_random_init=True) as reps:
        net = build({"name": "resnet50_fpn"}, BACKBONES)
        with pytest.raises(MissingWeightsError):   # an explicit False wins over the scope
            build({"name": "resnet50_fpn", "allow_random_init": False}, BACKBONES)
    assert isinstance(net, nn.Module)
    assert [r.status for r in reps] == ["random"] and reps[0].name == "resnet50_fpn"
    assert "RANDOM INIT: resnet50_fpn" in caplog.text
    net2 = build({"name": "resnet50_fpn", "allow_random_init": True}, BACKBONES)  # explicit keyword
    assert isinstance(net2, nn.Module)
    with pytest.raises(MissingWeightsError):          # the scope ended: default is strict again
        build({"name": "resnet50_fpn"}, BACKBONES)
    # tiny test components have no published file: exempt
    build({"name": "resnet_tiny_fpn"}, BACKBONES)
    build({"name": "vgg16_side_tiny"}, BACKBONES)


def test_loaded_file_is_logged_with_counts(tmp_path, caplog):
    path = tmp_path / "resnet50-0676ba61.pth"
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet50().state_dict(), path)
    with caplog.at_level(logging.INFO, logger="vosbench"), weights_policy() as reps:
        net = build({"name": "resnet50_fpn", "weights": str(path)}, BACKBONES)
    (r,) = reps
    assert r.status == "loaded" and r.path == str(path) and r.missing == [] and r.unexpected == []
    # every tensor of the ResNet-50 body (frozen BN drops the file's num_batches_tracked itself)
    assert r.num_tensors == len(net.body.state_dict()) == 265
    assert f"weights: resnet50_fpn <- {path}: 265 tensors, missing 0 [], unexpected 0 []" in caplog.text


def test_flow_nets_follow_the_same_rule():
    with pytest.raises(MissingWeightsError, match=r"raft_large_C_T_SKHT_V2-ff5fadd5\.pth.*method\.flow\.weights"):
        build({"name": "raft_large"}, FLOWS)
    with weights_policy(allow_random_init=True) as reps:
        build({"name": "raft_small"}, FLOWS)
    assert reps[0].status == "random" and reps[0].component == "raft_small"


def test_covered_by_a_checkpoint_and_verify(tmp_path):
    class Holder(nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone = build({"name": "resnet50_fpn"}, BACKBONES)

    with weights_policy(covered_by="ckpt.pth") as reps:
        model = Holder()
        outside = build({"name": "raft_small"}, FLOWS)  # e.g. MaskRNN keeps its flow net outside
    assert [r.status for r in reps] == ["covered", "covered"]
    verify_covered(model, reps[:1])                     # the backbone is inside the checkpointed model
    with pytest.raises(MissingWeightsError, match=r"raft_small.*checkpoint ckpt\.pth does not hold its tensors"):
        verify_covered(model, reps)
    assert isinstance(outside, nn.Module)


@pytest.mark.parametrize("method", ["lip", "maskprop", "maskrnn"])
def test_paper_configs_never_build_random_weights_silently(method, monkeypatch, tmp_path):
    from vosbench.engine.defaults import build_method

    monkeypatch.setenv("VOSBENCH_WEIGHTS", str(tmp_path))  # an empty weights folder
    cfg = compose([f"method={method}"])
    assert cfg.allow_random_init is False
    with pytest.raises(MissingWeightsError, match=str(tmp_path)):
        build_method(cfg)


def test_test_job_with_checkpoint_needs_no_imagenet_file(tmp_path, monkeypatch, caplog):
    """tools/test.py checkpoint=X: X is loaded strictly over the build, the ImageNet / COCO files
    may be absent (deferred, verified), and the log says so."""
    import vosbench_methods  # noqa: F401
    from vosbench.engine.defaults import build_method, load_covering_checkpoint

    monkeypatch.setenv("VOSBENCH_WEIGHTS", str(tmp_path / "empty"))
    over = ["method=maskprop", "method.backbone.trainable_layers=0", "method.refine=false"]
    torch.manual_seed(0)
    src = build_method(compose(over + ["allow_random_init=true"]))
    ckpt = tmp_path / "model_final.pth"
    torch.save({"model": src.state_dict()}, ckpt)
    reports: list = []
    with caplog.at_level(logging.INFO, logger="vosbench"):
        model = build_method(compose(over), covered_by=str(ckpt), reports=reports)
        load_covering_checkpoint(model, str(ckpt), reports)
    assert {r.status for r in reports} == {"covered"}     # backbone (and no COCO load under `weights`)
    key = "detector.rpn.head.conv.0.0.weight"
    assert torch.equal(model.state_dict()[key], src.state_dict()[key])
    assert f"checkpoint {ckpt} loaded strictly" in caplog.text and "not loaded" in caplog.text


# ----------------------------------------------------------------------------- layouts
def _old_mask_rcnn_layout(sd: "OrderedDict[str, torch.Tensor]", *, metadata: bool) -> OrderedDict:
    """The torchvision < 0.13 key layout of a Mask R-CNN state dict (the published COCO file's).

    0.13 turned ``RPNHead.conv``, ``MaskRCNNHeads`` and the FPN blocks into
    ``Conv2dNormActivation`` sequences and bumped those modules' ``_version`` to 2; the files
    saved before carry version 1 (or, re-saved as a plain dict, no metadata).
    """
    import re

    rules = [(r"^rpn\.head\.conv\.0\.0\.", "rpn.head.conv."),
             (r"^roi_heads\.mask_head\.(\d+)\.0\.", lambda m: f"roi_heads.mask_head.mask_fcn{int(m.group(1)) + 1}."),
             (r"^backbone\.fpn\.(inner_blocks|layer_blocks)\.(\d+)\.0\.", r"backbone.fpn.\1.\2.")]
    out = OrderedDict()
    for k, v in sd.items():
        for pat, rep in rules:
            k = re.sub(pat, rep, k)
        out[k] = v
    if metadata:
        meta = OrderedDict()
        for k, v in sd._metadata.items():
            if k in ("rpn.head", "roi_heads.mask_head", "backbone.fpn"):
                meta[k] = {"version": 1}
            elif not re.match(r"^(rpn\.head\.conv|roi_heads\.mask_head\.\d|backbone\.fpn\.(inner|layer)_blocks\.\d)", k):
                meta[k] = v
        out._metadata = meta
    assert "rpn.head.conv.weight" in out and "roi_heads.mask_head.mask_fcn4.weight" in out
    assert "backbone.fpn.inner_blocks.0.weight" in out
    return out


@pytest.fixture(scope="module")
def coco_standin(tmp_path_factory):
    """torchvision's maskrcnn_resnet50_fpn (91 COCO classes), random values, in 3 layouts."""
    from torchvision.models.detection import maskrcnn_resnet50_fpn

    torch.manual_seed(0)
    ref = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=91)
    for p in ref.parameters():  # non-trivial values everywhere (zero biases would hide a miss)
        nn.init.normal_(p, std=0.02)
    # The published file was trained with FrozenBatchNorm2d: no num_batches_tracked (the random
    # model here has BatchNorm2d; its other BN keys are the frozen ones').
    sd = ref.state_dict()
    meta = sd._metadata
    sd = OrderedDict((k, v) for k, v in sd.items() if not k.endswith("num_batches_tracked"))
    sd._metadata = meta
    d = tmp_path_factory.mktemp("coco")
    files = {"v0.13+": sd, "pre-0.13": _old_mask_rcnn_layout(sd, metadata=True),
             "pre-0.13 no metadata": _old_mask_rcnn_layout(sd, metadata=False)}
    paths = {}
    for name, obj in files.items():
        paths[name] = d / f"maskrcnn_{name.replace(' ', '_')}.pth"
        torch.save(obj, paths[name])
    return sd, paths


def _maskprop_detector(num_classes=41):
    import vosbench_methods  # noqa: F401
    from vosbench.registry import METHODS

    with weights_policy(allow_random_init=True):
        return build({"name": "maskprop", "num_classes": num_classes, "refine": False,
                      "backbone": {"name": "resnet50_fpn", "trainable_layers": 0}}, METHODS)


@pytest.mark.parametrize("layout", ["v0.13+", "pre-0.13", "pre-0.13 no metadata"])
def test_coco_mask_rcnn_file_loads_in_every_layout(coco_standin, layout):
    """MaskProp's detector_weights: every non-class tensor comes from the file, whatever its layout.
    (The old load_detector_weights kept only keys matching before load_state_dict and silently
    lost the RPN conv, the four mask-head convs and the FPN blocks of a pre-0.13 file.)"""
    sd, paths = coco_standin
    model = _maskprop_detector()
    model.load_detector_weights(str(paths[layout]))
    own = model.detector.state_dict()
    class_layers = {"roi_heads.box_predictor.cls_score.weight", "roi_heads.box_predictor.cls_score.bias",
                    "roi_heads.box_predictor.bbox_pred.weight", "roi_heads.box_predictor.bbox_pred.bias",
                    "roi_heads.mask_predictor.mask_fcn_logits.weight", "roi_heads.mask_predictor.mask_fcn_logits.bias"}
    for k in ("rpn.head.conv.0.0.weight", "roi_heads.mask_head.0.0.weight", "roi_heads.mask_head.3.0.bias",
              "backbone.fpn.inner_blocks.0.0.weight", "backbone.fpn.layer_blocks.3.0.weight"):
        assert torch.equal(own[k], sd[k]), f"{k} was not loaded from the {layout} file"
    lost = [k for k in sd if k not in class_layers and not torch.equal(own[k], sd[k])]
    assert lost == []
    rep = model.detector_weights_report
    assert set(rep.skipped) == class_layers and rep.missing == [] and rep.unexpected == []
    assert rep.num_tensors == len(own) - len(class_layers)


def test_coco_file_into_81_classes_loads_the_class_layers_too(coco_standin):
    sd, paths = coco_standin
    model = _maskprop_detector(num_classes=91)
    model.load_detector_weights(str(paths["pre-0.13"]))
    assert model.detector_weights_report.skipped == []
    assert torch.equal(model.detector.state_dict()["roi_heads.box_predictor.cls_score.weight"],
                       sd["roi_heads.box_predictor.cls_score.weight"])


def test_a_file_of_another_architecture_is_refused(coco_standin, tmp_path):
    from vosbench.models.weights import WeightsError

    sd, _ = coco_standin
    bad = OrderedDict(sd)
    bad["rpn.head.conv.0.0.weight"] = torch.zeros(8, 8, 3, 3)     # not a class layer
    path = tmp_path / "bad.pth"
    torch.save(bad, path)
    with pytest.raises(WeightsError, match=r"bad\.pth.*shape mismatch.*rpn\.head\.conv\.0\.0\.weight"):
        _maskprop_detector().load_detector_weights(str(path))
    with pytest.raises(MissingWeightsError, match=r"maskrcnn_resnet50_fpn_coco-bf2d0c1e\.pth.*method\.detector_weights"):
        _maskprop_detector().load_detector_weights(str(tmp_path / "none.pth"))


def test_vgg_file_with_old_module_versions_loads(tmp_path):
    """The ImageNet trunk and VGG-16 files have one key layout (unchanged since torchvision 0.2;
    ResNet-50 is loaded above, ResNet-101/ResNeXt-101 share its code path); a file saved by an
    old torchvision carries module version 1 metadata and must load the same."""
    torch.manual_seed(0)
    vgg = torchvision.models.vgg16()
    full = vgg.state_dict()
    # features.* only (the classifier's 120M tensors are not used and cost seconds to write)
    sd = OrderedDict((k, v) for k, v in full.items() if k.startswith("features."))
    sd._metadata = OrderedDict((k, {"version": 1}) for k in full._metadata if not k.startswith("classifier"))
    path = tmp_path / "vgg16-397923af.pth"
    torch.save(sd, path)
    net = build({"name": "vgg16_side", "in_channels": 3, "weights": str(path)}, BACKBONES)
    assert torch.equal(net.features[28].weight, vgg.features[28].weight)


def test_load_pretrained_transform_and_prefix(tmp_path):
    src = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    path = tmp_path / "w.pth"
    torch.save({f"features.{k}": v for k, v in src.state_dict().items()}, path)
    dst = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    rep = load_pretrained(dst, path, component="vgg16", prefix="features.",
                          transform=lambda sd: {k: v * 0 if k == "0.bias" else v for k, v in sd.items()})
    assert rep.status == "loaded" and not dst[0].bias.any()
    assert torch.equal(dst[0].weight, src[0].weight)
