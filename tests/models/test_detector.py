from collections import OrderedDict

import torch
from torch import nn
from torchvision.ops import FeaturePyramidNetwork
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from vosbench.models.detector import MaskRCNNBase, targets_from_masks


class TinyFPN(nn.Module):
    """4 strided stages (strides 4..32) + FPN with 'pool': the BackboneWithFPN contract."""

    def __init__(self, c: int = 16):
        super().__init__()
        chans = [8, 8, 16, 16]
        layers, cin = [], 3
        for i, co in enumerate(chans):
            stride = 4 if i == 0 else 2
            layers.append(nn.Sequential(nn.Conv2d(cin, co, 3, stride, 1), nn.ReLU()))
            cin = co
        self.stages = nn.ModuleList(layers)
        self.fpn = FeaturePyramidNetwork(chans, c, extra_blocks=LastLevelMaxPool())
        self.out_channels = c

    def forward(self, x):
        feats = OrderedDict()
        for i, s in enumerate(self.stages):
            x = s(x)
            feats[str(i)] = x
        return self.fpn(feats)


class CountingNeck(nn.Module):
    """A stateful neck: adds a learnable bias and counts frames in its state."""

    def __init__(self, c):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(c))

    def forward(self, feats, state):
        n = 0 if state is None else state
        return OrderedDict((k, v + self.bias.view(1, -1, 1, 1)) for k, v in feats.items()), n + 1


def _model(**kw):
    torch.manual_seed(0)
    return MaskRCNNBase(backbone=TinyFPN(), num_classes=3, min_size=64, max_size=96,
                        anchor_sizes=((8,), (16,), (32,), (64,), (128,)), representation_size=32,
                        mask_head_layers=(16, 16), box_batch_size_per_image=32,
                        rpn_batch_size_per_image=32, **kw)


def _batch():
    images = [torch.rand(3, 64, 96), torch.rand(3, 64, 96)]
    m = torch.zeros(2, 64, 96, dtype=torch.bool)
    m[0, 10:30, 20:50] = True
    m[1, 35:60, 60:90] = True
    targets = [targets_from_masks(m, torch.tensor([1, 2])),
               targets_from_masks(torch.zeros(0, 64, 96, dtype=torch.bool), torch.zeros(0, dtype=torch.int64))]
    return images, targets


def test_training_step_with_neck_gives_finite_losses_and_grads():
    model = _model(neck=CountingNeck(16), class_agnostic=True)
    model.train()
    images, targets = _batch()
    out = model(images, targets, neck_state=None)
    assert set(out.losses) == {"loss_objectness", "loss_rpn_box_reg", "loss_classifier", "loss_box_reg", "loss_mask"}
    total = sum(out.losses.values())
    assert torch.isfinite(total)
    total.backward()
    assert model.neck.bias.grad is not None and model.neck.bias.grad.abs().sum() > 0
    assert out.neck_state == 1
    assert out.features["1"].shape[-2:] == (8, 12)  # stride 8 on the 64x96 input


def test_eval_detections_in_original_coordinates():
    model = _model().eval()
    with torch.no_grad():
        out = model([torch.rand(3, 40, 50)])
    det = out.detections[0]
    assert det["masks"].shape[-2:] == (40, 50)
    if det["boxes"].numel():
        assert det["boxes"][:, 2].max() <= 50 and det["boxes"][:, 3].max() <= 40


def test_class_specific_copy_keeps_outputs_identical():
    model = _model(class_agnostic=True, box_score_thresh=0.0).eval()
    images, _ = _batch()
    with torch.no_grad():
        before = model(images).detections
        model.to_class_specific()
        after = model(images).detections
    assert not model.roi_heads.box_predictor.class_agnostic
    assert model.roi_heads.box_predictor.bbox_pred.out_features == 4 * 3
    for b, a in zip(before, after):
        assert torch.equal(b["labels"], a["labels"])
        torch.testing.assert_close(b["boxes"], a["boxes"])
        torch.testing.assert_close(b["masks"], a["masks"])


def test_roi_features_shapes():
    model = _model().eval()
    with torch.no_grad():
        out = model([torch.rand(3, 64, 96)])
    pooled = model.roi_features(out.features, [torch.tensor([[0.0, 0.0, 32.0, 32.0]])], out.image_sizes)
    assert pooled.shape == (1, 16, 14, 14)


def test_widened_boxes_are_clipped():
    m = torch.zeros(1, 20, 20, dtype=torch.bool)
    m[0, 0:10, 5:15] = True
    t = targets_from_masks(m, torch.tensor([1]), box_widen=0.1)
    assert t["boxes"].tolist() == [[4.5, 0.0, 15.5, 10.5]]
