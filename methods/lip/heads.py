"""LIP's modules on top of the shared Mask R-CNN base (Lyu et al., §3.2, §4, Fig. 3-5).

* ``ConvGRUNeck``: one ``ConvGRUCell`` per FPN level directly after the backbone, then bottom-up
  path augmentation over the GRU outputs (Fig. 3). Plugged into ``MaskRCNNBase`` as its ``neck``.
* ``IdBoxPredictor``: box regression + the id classification head (the class head whose last
  linear layer is replaced by one predicting object ids, §4.1.2, §4.2).
* ``ShortcutMaskPredictor``: the 28x28 mask head with the shortcut from the RoI-aligned feature
  to the head logits (Fig. 4).

Both predictors switch from class-agnostic to class-specific by copying the agnostic foreground
weights to every instance (Fig. 5), so outputs are identical right after the switch.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vosbench.models.layers.convgru import ConvGRUCell

LEVELS = ("0", "1", "2", "3", "pool")


def _gn(channels: int, groups: int) -> nn.GroupNorm:
    g = max(1, min(groups, channels))
    while channels % g:
        g -= 1
    return nn.GroupNorm(g, channels)


class ConvGRUNeck(nn.Module):
    """Visual memory: a Conv-GRU per FPN level + bottom-up path augmentation (LIP Fig. 3).

    ``forward(features, state) -> (features', state')`` is the ``MaskRCNNBase`` neck contract.
    The hidden state of level ``l`` is the GRU output ``g_l`` (before augmentation)::

        g_l = ConvGRU_l(p_l, h_l)                    (eq. 1, one cell per level, own weights)
        n_0 = g_0,  n_l = g_l + Down_l(n_{l-1})      (bottom-up path augmentation, stride 2)

    Args:
        channels: FPN width = hidden width (256 in the paper).
        levels: FPN keys, finest first (torchvision: '0'..'3', 'pool').
        kernel_size: Conv-GRU kernel (3).
        num_groups: GroupNorm groups in the GRU and in the down-sampling convs.
        zero_hidden_state: the Table-3 ablation: the input hidden state is always zero, so the
            GRU is a static layer and no information flows between frames.
        path_augmentation: bottom-up path augmentation on/off.
    """

    def __init__(self, *, channels: int, levels: Sequence[str] = LEVELS, kernel_size: int = 3,
                 num_groups: int = 32, zero_hidden_state: bool = False,
                 path_augmentation: bool = True) -> None:
        super().__init__()
        self.levels = tuple(levels)
        self.zero_hidden_state = zero_hidden_state
        self.grus = nn.ModuleDict({
            k: ConvGRUCell(channels, channels, kernel_size=kernel_size, num_groups=num_groups)
            for k in self.levels
        })
        # "down-sampling and addition" (§3.2); as in PANet [35], whose augmentation LIP adopts,
        # the down-sampling is a learned 3x3 stride-2 conv (here + GN + ReLU, GN everywhere).
        self.down = nn.ModuleDict({
            k: nn.Sequential(nn.Conv2d(channels, channels, 3, stride=2, padding=1, bias=False),
                             _gn(channels, num_groups), nn.ReLU(inplace=True))
            for k in self.levels[1:]
        }) if path_augmentation else None

    def forward(self, features: "OrderedDict[str, Tensor]", state: tuple[Tensor, ...] | None
                ) -> tuple["OrderedDict[str, Tensor]", tuple[Tensor, ...] | None]:
        """One frame.

        Args:
            features: ``OrderedDict[level -> Tensor[B, C, h_l, w_l]]`` from the backbone FPN.
            state: previous hidden states, one ``Tensor[B, C, h_l, w_l]`` per level, or None
                (first frame / image-level training): zeros.
        Returns:
            (augmented features with the same keys and shapes, new state tuple). With
            ``zero_hidden_state`` the returned state is None (nothing is carried).
        """
        missing = [k for k in self.levels if k not in features]
        if missing:
            raise KeyError(f"ConvGRUNeck: FPN levels {missing} missing; got {list(features)}")
        if state is not None and (self.zero_hidden_state or len(state) != len(self.levels)):
            if not self.zero_hidden_state:
                raise ValueError(f"ConvGRUNeck: state has {len(state)} levels, expected {len(self.levels)}")
        hidden = []
        for i, k in enumerate(self.levels):
            h_prev = None if (state is None or self.zero_hidden_state) else state[i]
            if h_prev is not None and h_prev.shape != features[k].shape:
                raise ValueError(
                    f"ConvGRUNeck: level {k} state {tuple(h_prev.shape)} does not match features "
                    f"{tuple(features[k].shape)} (frame sizes must be constant within a video)")
            hidden.append(self.grus[k](features[k], h_prev))
        out = OrderedDict()
        prev = None
        for k, g in zip(self.levels, hidden):
            if prev is not None and self.down is not None:
                d = self.down[k](prev)
                if d.shape[-2:] != g.shape[-2:]:  # odd sizes: align like FPN's nearest upsampling
                    d = F.interpolate(d, size=g.shape[-2:], mode="nearest")
                g = g + d
            out[k] = g
            prev = g
        for k in features:  # pass through any level the neck does not own
            if k not in out:
                out[k] = features[k]
        return out, (None if self.zero_hidden_state else tuple(hidden))


class IdBoxPredictor(nn.Module):
    """Box regression + id classification on the box head's representation (LIP §3.1, §4).

    The classification head of Mask R-CNN becomes an id head: its last linear layer predicts
    ``num_classes`` = 1 (background) + number of ids. Offline the ids are those of the training
    set ("video sequence name plus object index", Fig. 2); online the layer is replaced by a
    fresh one for the objects of the current video (``replace_id_layer``).

    Args:
        in_channels: box head representation size.
        num_classes: background + ids.
        class_agnostic: one box regression shared by all ids (offline training).
    Shapes:
        forward(x: Tensor[N, in_channels]) -> (id logits Tensor[N, num_classes],
        deltas Tensor[N, 4 * num_classes]) (agnostic deltas are repeated, so torchvision's
        loss and post-processing apply unchanged).
    """

    def __init__(self, in_channels: int, num_classes: int, *, class_agnostic: bool = True) -> None:
        super().__init__()
        self.class_agnostic = class_agnostic
        self.cls_score = nn.Linear(in_channels, num_classes)
        self.bbox_pred = nn.Linear(in_channels, 4 if class_agnostic else 4 * num_classes)
        # Online fine-tuning stops the id loss at the last FC layer (§5.1): the representation
        # seen by the id layer is detached, so only the new layer learns from the id loss.
        self.detach_id_input = False
        nn.init.normal_(self.cls_score.weight, std=0.01)
        nn.init.normal_(self.bbox_pred.weight, std=0.001)
        nn.init.zeros_(self.cls_score.bias)
        nn.init.zeros_(self.bbox_pred.bias)

    @property
    def num_classes(self) -> int:
        return self.cls_score.out_features

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x = x.flatten(start_dim=1)
        scores = self.cls_score(x.detach() if self.detach_id_input else x)
        deltas = self.bbox_pred(x)  # [N, 4] agnostic or [N, 4 * num_classes]
        if self.class_agnostic:
            deltas = deltas.repeat(1, self.num_classes)
        return scores, deltas

    @torch.no_grad()
    def replace_id_layer(self, num_classes: int, keep: int = 0) -> None:
        """A fresh last id layer with ``num_classes`` outputs (§4.1.2, §4.2).

        Args:
            num_classes: background + ids.
            keep: copy the first ``keep`` rows of the old layer (objects already fine-tuned when
                a new object joins later in the video); the others are newly initialised.
        """
        old = self.cls_score
        new = nn.Linear(old.in_features, num_classes).to(old.weight)
        nn.init.normal_(new.weight, std=0.01)
        nn.init.zeros_(new.bias)
        k = min(keep, num_classes, old.out_features)
        new.weight[:k] = old.weight[:k]
        new.bias[:k] = old.bias[:k]
        self.cls_score = new  # class-specific boxes must follow: call to_class_specific(agnostic, keep)

    @torch.no_grad()
    def to_class_specific(self, agnostic: "IdBoxPredictor | None" = None, keep: int = 0) -> None:
        """Per-id box regression weights copied from the agnostic foreground weights (Fig. 5).

        Args:
            agnostic: where to copy the foreground/background rows from (default: ``self``,
                which must then be class-agnostic).
            keep: rows (ids) of the current class-specific layer to keep (objects joining later).
        """
        src = agnostic if agnostic is not None else self
        if not src.class_agnostic:
            raise ValueError("to_class_specific: the source predictor is not class-agnostic")
        n = self.num_classes
        w, b = src.bbox_pred.weight, src.bbox_pred.bias  # [4, C], [4]
        new = nn.Linear(w.shape[-1], 4 * n).to(w)
        # One copy per class (the background copy is never used: post-processing drops it).
        new.weight.copy_(w.repeat(n, 1))
        new.bias.copy_(b.repeat(n))
        if keep and not self.class_agnostic:
            k = 4 * min(keep, n, self.bbox_pred.out_features // 4)
            new.weight[:k] = self.bbox_pred.weight[:k]
            new.bias[:k] = self.bbox_pred.bias[:k]
        self.bbox_pred = new
        self.class_agnostic = False


class ShortcutMaskPredictor(nn.Module):
    """The 28x28 mask head with the RoI-feature shortcut (LIP Fig. 4, §5.1).

    ``MaskRCNNBase`` runs ``mask_head`` then ``mask_predictor`` on the RoI-aligned features; LIP's
    shortcut needs the RoI-aligned feature at the logits, so the whole head (conv tower +
    logits + shortcut) lives here and ``mask_head`` is an ``nn.Identity``::

        logits = W_logit * tower(f_roi) + W_short * f_roi        (1x1 convs, addition)

    The shortcut lets the Conv-GRU output act directly on the mask (Fig. 4). RoIs are aligned
    at 28x28 (paper), so the tower has no deconvolution.

    Args:
        in_channels: RoI feature channels (FPN width).
        conv_channels: channels of the tower's 3x3 convs.
        num_convs: tower depth (4, as Mask R-CNN's FPN mask head).
        num_classes: background + ids (logits are computed for every class, index 0 unused).
        class_agnostic: one foreground mask shared by all ids.
        num_groups: GroupNorm groups in the tower.
    Shapes:
        forward(x: Tensor[N, in_channels, 28, 28]) -> Tensor[N, num_classes, 28, 28] logits.
    """

    def __init__(self, *, in_channels: int, conv_channels: int, num_convs: int, num_classes: int,
                 class_agnostic: bool = True, num_groups: int = 32) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = in_channels
        for _ in range(num_convs):
            layers += [nn.Conv2d(c, conv_channels, 3, padding=1, bias=False),
                       _gn(conv_channels, num_groups), nn.ReLU(inplace=True)]
            c = conv_channels
        self.tower = nn.Sequential(*layers)
        self.num_classes = num_classes
        self.class_agnostic = class_agnostic
        k = 1 if class_agnostic else num_classes
        self.mask_fcn_logits = nn.Conv2d(c, k, 1)
        self.shortcut = nn.Conv2d(in_channels, k, 1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        nn.init.normal_(self.shortcut.weight, std=0.001)

    def forward(self, x: Tensor) -> Tensor:
        logits = self.mask_fcn_logits(self.tower(x)) + self.shortcut(x)  # Fig. 4 shortcut
        if self.class_agnostic:
            logits = logits.expand(-1, self.num_classes, -1, -1)
        return logits

    @torch.no_grad()
    def to_class_specific(self, agnostic: "ShortcutMaskPredictor | None" = None, keep: int = 0) -> None:
        """Copy the agnostic logits + shortcut filters to every id (Fig. 5); see IdBoxPredictor."""
        src = agnostic if agnostic is not None else self
        if not src.class_agnostic:
            raise ValueError("to_class_specific: the source mask predictor is not class-agnostic")
        n = self.num_classes
        for name in ("mask_fcn_logits", "shortcut"):
            old_src, old_self = getattr(src, name), getattr(self, name)
            new = nn.Conv2d(old_src.in_channels, n, 1).to(old_src.weight)
            new.weight.copy_(old_src.weight.repeat(n, 1, 1, 1))
            new.bias.copy_(old_src.bias.repeat(n))
            if keep and not self.class_agnostic:
                k = min(keep, n, old_self.out_channels)
                new.weight[:k] = old_self.weight[:k]
                new.bias[:k] = old_self.bias[:k]
            setattr(self, name, new)
        self.class_agnostic = False


__all__ = ["ConvGRUNeck", "IdBoxPredictor", "ShortcutMaskPredictor", "LEVELS"]
