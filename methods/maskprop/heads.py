"""MaskProp heads: the mask propagation branch (§4.2) and the high-resolution refinement (§4.4)."""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import roi_align

from vosbench.models.layers.deform_prop import DeformablePropagation


class MaskPropagationHead(nn.Module):
    """Propagate the instances of a source frame to a target frame (Fig. 4 of the paper).

    1. instance-specific features ``f_t * M_t^i`` (the frame-level masks zero out the rest);
    2. ``DeformablePropagation``: offsets from ``f_t - f_{t+delta}`` through a residual block,
       deformable convolutions at dilations 3, 6, 12 -> ``f_{t, t+delta}^i``;
    3. ``g^i = f_{t, t+delta}^i + f_{t+delta}``; a convolution gives one mask logit map per instance,
       normalised with a softmax ACROSS instances, then multiplied by an instance-agnostic attention
       map ``sigmoid(conv(f_{t+delta}))`` that zeroes pixels belonging to no instance.

    Args:
        in_channels: channels C of the FPN level (256 for the paper's FPN).
        offset_channels: residual block width (128 in the paper).
        dilations: deformable convolution dilations ((3, 6, 12) in the paper).
        background_logit: add a constant zero logit ("no instance") to the softmax, so an
            instance's mask can vanish far from it even where the attention map is high (not in
            the paper, which relies on the attention map alone; off in the paper config).
    """

    def __init__(self, *, in_channels: int, offset_channels: int = 128,
                 dilations: Sequence[int] = (3, 6, 12), background_logit: bool = False) -> None:
        super().__init__()
        self.background_logit = background_logit
        self.propagation = DeformablePropagation(in_channels=in_channels, out_channels=in_channels,
                                                 offset_channels=offset_channels, dilations=dilations)
        self.mask_logits = nn.Conv2d(in_channels, 1, 3, padding=1)
        self.attention = nn.Conv2d(in_channels, 1, 3, padding=1)

    def offsets(self, feat_src: Tensor, feat_tgt: Tensor) -> list[Tensor]:
        """Offsets of one frame pair (shared by all its instances), see ``DeformablePropagation``."""
        return self.propagation.offsets(feat_src, feat_tgt)

    def forward(self, feat_src: Tensor, feat_tgt: Tensor, inst_masks: Tensor,
                offsets: Sequence[Tensor] | None = None) -> Tensor:
        """Propagated instance masks on the target frame.

        Args:
            feat_src: Tensor[1, C, h, w] source frame features ``f_t``.
            feat_tgt: Tensor[1, C, h, w] target frame features ``f_{t+delta}``.
            inst_masks: Tensor[N, h, w] frame-level instance masks ``M_t^i`` in [0, 1] on the
                same grid.
            offsets: precomputed ``offsets(feat_src, feat_tgt)`` (inference reuses them).
        Returns:
            Tensor[N, h, w] probabilities ``M_{t, t+delta}^i`` (softmax over N times attention).
        """
        n = inst_masks.shape[0]
        if n == 0:
            return inst_masks.new_zeros((0, *feat_tgt.shape[-2:]))
        inst_feats = feat_src * inst_masks[:, None].to(feat_src.dtype)        # [N, C, h, w]
        if offsets is None:
            offsets = self.offsets(feat_src, feat_tgt)
        prop = self.propagation.propagate(inst_feats, offsets)                 # [N, C, h, w]
        logits = self.mask_logits(prop + feat_tgt)[:, 0]                      # [N, h, w]
        attention = torch.sigmoid(self.attention(feat_tgt))[:, 0]             # [1, h, w]
        if self.background_logit:
            probs = torch.cat([torch.zeros_like(logits[:1]), logits]).softmax(dim=0)[1:]
        else:
            probs = logits.softmax(dim=0)
        return probs * attention

    # ------------------------------------------------------------------ inference: whole clips
    @torch.no_grad()
    def frame_parts(self, feat: Tensor) -> dict[str, Tensor]:
        """The per-frame terms of the offset block (computed once per frame, shared by pairs).

        The residual block's first convolution and its shortcut are linear in
        ``f_t - f_{t'}``, so ``conv1(f_t - f_{t'}) = A(f_t) - A(f_{t'}) + b`` with
        ``A = conv1`` without bias (zero padding is linear too); likewise the 1x1 shortcut.
        A frame is the source of one clip and a target of 2K, so its ``A`` and ``S`` are computed
        once instead of once per pair.

        Args:
            feat: Tensor[B, C, h, w] frame features.
        Returns:
            ``{"a": Tensor[B, C_off, h, w], "s": Tensor[B, C_off, h, w]}``.
        """
        blk = self.propagation.offset_block
        a = F.conv2d(feat, blk.conv1.weight, None, padding=blk.conv1.padding)
        sc = blk.shortcut
        s = F.conv2d(feat, sc.weight, None) if isinstance(sc, nn.Conv2d) else feat
        return {"a": a, "s": s}

    @torch.no_grad()
    def pair_offsets(self, src: dict[str, Tensor], tgt: dict[str, Tensor]) -> list[Tensor]:
        """``DeformablePropagation.offsets(f_t, f_{t'})`` from ``frame_parts`` of both frames.

        Args:
            src: ``frame_parts`` of the source (batch 1); tgt: of T targets (batch T).
        Returns:
            one Tensor[T, 2*k*k, h, w] per dilation (equal to ``offsets`` up to rounding).
        """
        blk = self.propagation.offset_block
        y = F.relu(src["a"] - tgt["a"] + blk.conv1.bias.view(1, -1, 1, 1))
        y = blk.conv2(y)
        sc = src["s"] - tgt["s"]
        if isinstance(blk.shortcut, nn.Conv2d):
            sc = sc + blk.shortcut.bias.view(1, -1, 1, 1)
        h = F.relu(y + sc)
        return [head(h) for head in self.propagation.offset_heads]

    @torch.no_grad()
    def source_maps(self, feat_src: Tensor) -> Tensor:
        """``H[g, k, j] = (w_j^T W_{g,k}) f_t``: the source features through one deformable tap
        (dilation g, kernel tap k) and one tap j of the mask-logit convolution.

        Channel mixing commutes with the per-pixel instance mask and with bilinear sampling, so
        ``w_j^T W_{g,k} sample(f_t * M^i) = sample(H[g, k, j] * M^i)``: the 256-channel
        propagated features never need to exist, only these G*k*k*9 one-channel maps (once per
        source frame, for all its instances and targets).

        Args:
            feat_src: Tensor[1, C, h, w].
        Returns:
            Tensor[G, k*k, 9, h, w] (G dilations, k*k deformable taps, 9 logit-conv taps).
        """
        prop = self.propagation
        k2 = prop.kernel_size ** 2
        w_log = self.mask_logits.weight[0].flatten(1)                              # [C_out, 9]
        w_def = torch.stack([w.flatten(2) for w in prop.weights])                  # [G, C_out, C_in, k2]
        v = torch.einsum("oj,gock->gkjc", w_log, w_def)                            # [G, k2, 9, C_in]
        h, w = feat_src.shape[-2:]
        maps = v.flatten(0, 2) @ feat_src[0].flatten(1)                            # [G*k2*9, h*w]
        return maps.view(len(prop.dilations), k2, 9, h, w)

    @torch.no_grad()
    def propagate_clip(self, feat_src: Tensor, feat_tgts: Tensor, inst_masks: Tensor, *,
                       src_parts: dict[str, Tensor] | None = None,
                       tgt_parts: dict[str, Tensor] | None = None,
                       max_samples: int = 2 ** 24, stats: dict | None = None) -> Tensor:
        """``forward`` for one source frame and T target frames at once, for inference: equal to
        ``forward`` per target up to float rounding (tests), at a fraction of its cost.

        Three exact rewrites, each because a step is linear:

        1. Offsets from per-frame terms (``frame_parts`` / ``pair_offsets``).
        2. Only the mask logits are computed, never the propagated 256-channel features: the
           logit convolution of ``f^i_{t,t'} + f_{t'}`` is
           ``conv(b + f_{t'}) + sum_j sum_{g,k} sample_{g,k}(H[g,k,j] * M^i)(p + j)``, with the
           instance-free first term computed once per target and ``H`` from ``source_maps``.
        3. ``f_t * M^i`` is zero outside the support of ``M^i`` (the detection's pasted box),
           so the instance term is zero at every cell none of whose G*k*k sampling points (at
           the predicted offsets) lies within one cell of that support; it is computed on the
           bounding box of the other cells (the window) only.

        The softmax across instances and the attention map then run on the full grid.

        Cost per clip (h x w grid, C channels, C_off offset width, N instances, T targets,
        A_i window cells of instance i, G = 3 dilations, k = 3): offsets
        ``T * h*w * (9*C_off^2 + G*9*C_off*2k^2)`` plus ``h*w * C_off * (9*C + C)`` per frame;
        logit maps ``G*k^2*9 * C * h*w`` per source frame; instance terms
        ``sum_i T * A_i * G*k^2*9`` bilinear samples; softmax ``N * T * h*w``. The dense path
        spends ``N * T * h*w * G*k^2*C^2`` on the deformable convolutions alone (for the paper's
        C = 256 that is ~7,000 times the samples per cell here).

        Args:
            feat_src: Tensor[1, C, h, w] features of the clip's centre frame ``f_t``.
            feat_tgts: Tensor[T, C, h, w] features of the target frames ``f_{t'}``.
            inst_masks: Tensor[N, h, w] frame-level masks ``M_t^i`` in [0, 1] on the grid.
            src_parts, tgt_parts: ``frame_parts`` of the source / targets (computed if None;
                inference caches them per frame).
            max_samples: bound on the floats of one sampling call (targets are chunked).
            stats: optional dict; ``window_cells`` / ``grid_cells`` (summed over instances and
                targets) are added to it, to report the saving.
        Returns:
            Tensor[N, T, h, w] probabilities ``M^i_{t, t'}``.
        """
        T, C, h, w = feat_tgts.shape
        n = inst_masks.shape[0]
        if n == 0 or T == 0:
            return inst_masks.new_zeros((n, T, h, w))
        prop = self.propagation
        k = prop.kernel_size
        k2, G = k * k, len(prop.dilations)
        dev, dt = feat_src.device, feat_src.dtype
        src_parts = self.frame_parts(feat_src) if src_parts is None else src_parts
        tgt_parts = self.frame_parts(feat_tgts) if tgt_parts is None else tgt_parts
        offsets = self.pair_offsets(src_parts, tgt_parts)                          # G x [T, 2k2, h, w]
        # sampling positions (grid coordinates) of every tap at every output cell
        ys = torch.arange(h, device=dev, dtype=dt).view(1, 1, h, 1)
        xs = torch.arange(w, device=dev, dtype=dt).view(1, 1, 1, w)
        taps = torch.arange(k, device=dev, dtype=dt) - (k // 2)
        ty = taps.view(k, 1).expand(k, k).reshape(1, k2, 1, 1)                     # tap (ky, kx) -> ky
        tx = taps.view(1, k).expand(k, k).reshape(1, k2, 1, 1)
        pos_y = torch.stack([ys + d * ty + off[:, 0::2] for d, off in zip(prop.dilations, offsets)], 1)
        pos_x = torch.stack([xs + d * tx + off[:, 1::2] for d, off in zip(prop.dilations, offsets)], 1)
        # pos_*: [T, G, k2, h, w]; their range per output cell decides the windows
        y_lo, y_hi = pos_y.flatten(1, 2).amin(1), pos_y.flatten(1, 2).amax(1)      # [T, h, w]
        x_lo, x_hi = pos_x.flatten(1, 2).amin(1), pos_x.flatten(1, 2).amax(1)
        # instance-free part: conv(b + f_t') for the logits, and the attention map
        base_logits = self.mask_logits(feat_tgts + prop.bias.view(1, -1, 1, 1))[:, 0]   # [T, h, w]
        attention = torch.sigmoid(self.attention(feat_tgts))[:, 0]                 # [T, h, w]
        logits = base_logits[None].repeat(n, 1, 1, 1)                              # [N, T, h, w]
        maps = self.source_maps(feat_src).flatten(0, 1)                            # [G*k2, 9, h, w]
        # sum over the 9 logit taps of E_j(p + j): a convolution with one-hot kernels
        shift = torch.zeros(1, 9, 3, 3, device=dev, dtype=dt)
        shift.view(9, 9)[torch.arange(9), torch.arange(9)] = 1.0
        for i in range(n):
            support = inst_masks[i] > 0
            if not support.any():
                continue                                                           # no instance term
            rows = support.any(1).nonzero()[:, 0]
            cols = support.any(0).nonzero()[:, 0]
            by0, by1 = int(rows[0]), int(rows[-1])
            bx0, bx1 = int(cols[0]), int(cols[-1])
            # a sample reads the support (bilinearly) only strictly within one cell of its box
            hit = (y_hi > by0 - 1) & (y_lo < by1 + 1) & (x_hi > bx0 - 1) & (x_lo < bx1 + 1)   # [T, h, w]
            if not hit.any():
                continue
            hy = hit.any(0).any(1).nonzero()[:, 0]
            hx = hit.any(0).any(0).nonzero()[:, 0]
            wy0, wy1, wx0, wx1 = int(hy[0]), int(hy[-1]), int(hx[0]), int(hx[-1])
            wh, ww = wy1 - wy0 + 1, wx1 - wx0 + 1
            # the instance's maps, cropped to its support box grown by one cell (zero beyond)
            cy0, cy1, cx0, cx1 = max(by0 - 1, 0), min(by1 + 1, h - 1), max(bx0 - 1, 0), min(bx1 + 1, w - 1)
            src = maps[:, :, cy0:cy1 + 1, cx0:cx1 + 1] * inst_masks[i, cy0:cy1 + 1, cx0:cx1 + 1]
            bh, bw = cy1 - cy0 + 1, cx1 - cx0 + 1
            E = []
            step = max(1, max_samples // (G * k2 * 9 * wh * ww))
            for s0 in range(0, T, step):
                py = pos_y[s0:s0 + step, :, :, wy0:wy1 + 1, wx0:wx1 + 1]          # [t, G, k2, wh, ww]
                px = pos_x[s0:s0 + step, :, :, wy0:wy1 + 1, wx0:wx1 + 1]
                tc = py.shape[0]
                # grid_sample's normalised coordinates (align_corners=False) of the crop
                gx = (2 * (px - cx0) + 1) / bw - 1
                gy = (2 * (py - cy0) + 1) / bh - 1
                grid = torch.stack([gx, gy], -1).reshape(tc * G * k2, wh, ww, 2)
                inp = src[None].expand(tc, -1, -1, -1, -1).reshape(tc * G * k2, 9, bh, bw)
                z = F.grid_sample(inp, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
                E.append(z.view(tc, G * k2, 9, wh, ww).sum(1))                    # [t, 9, wh, ww]
            E = torch.cat(E)                                                       # [T, 9, wh, ww]
            inst = F.conv2d(F.pad(E, (2, 2, 2, 2)), shift)[:, 0]                   # [T, wh+2, ww+2]
            oy0, ox0 = wy0 - 1, wx0 - 1                                            # its origin
            ly0, lx0, ly1, lx1 = max(oy0, 0), max(ox0, 0), min(wy1 + 1, h - 1), min(wx1 + 1, w - 1)
            logits[i, :, ly0:ly1 + 1, lx0:lx1 + 1] += inst[:, ly0 - oy0:ly1 - oy0 + 1, lx0 - ox0:lx1 - ox0 + 1]
            if stats is not None:
                stats["window_cells"] = stats.get("window_cells", 0) + T * wh * ww
        if stats is not None:
            stats["grid_cells"] = stats.get("grid_cells", 0) + n * T * h * w
        if self.background_logit:
            probs = torch.cat([torch.zeros_like(logits[:1]), logits]).softmax(dim=0)[1:]
        else:
            probs = logits.softmax(dim=0)
        return probs * attention[None]


class _ResBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(x + self.conv2(F.relu(self.conv1(x))))


class MaskRefinementHead(nn.Module):
    """High-resolution mask refinement (§4.4): RGB patch + low-resolution mask -> residual blocks.

    A square patch (aspect ratio preserved) centred on the object's box is resampled to
    ``patch_size`` x ``patch_size`` from the image and from the upsampled low-resolution mask; a
    stem convolution and ``num_blocks`` residual blocks of ``channels`` channels predict a
    correction added to the mask's logit (so an untrained head returns the input mask).

    Args:
        channels: width of the residual blocks (128 in the paper).
        num_blocks: number of residual blocks (3 in the paper).
        patch_size: side of the resampled patch (384 in the paper).
        context: the patch side is ``context * max(box w, box h)``.
    """

    def __init__(self, *, channels: int = 128, num_blocks: int = 3, patch_size: int = 384,
                 context: float = 1.25) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.context = context
        self.stem = nn.Conv2d(4, channels, 3, padding=1)
        self.blocks = nn.Sequential(*[_ResBlock(channels) for _ in range(num_blocks)])
        self.out = nn.Conv2d(channels, 1, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def patch_boxes(self, boxes: Tensor) -> Tensor:
        """Square crop boxes around ``boxes`` (Tensor[N, 4] xyxy) -> Tensor[N, 4] xyxy."""
        c = (boxes[:, :2] + boxes[:, 2:]) / 2
        side = (boxes[:, 2:] - boxes[:, :2]).max(dim=1).values.clamp(min=2.0) * self.context
        return torch.cat([c - side[:, None] / 2, c + side[:, None] / 2], dim=1)

    def crop(self, image: Tensor, masks: Tensor, patch_boxes: Tensor) -> tuple[Tensor, Tensor]:
        """Resample patches.

        Args:
            image: Tensor[3, H, W] normalised RGB; masks: Tensor[N, H, W] in [0, 1] on the same
                grid; patch_boxes: Tensor[N, 4] from ``patch_boxes``.
        Returns:
            (rgb Tensor[N, 3, S, S], mask Tensor[N, 1, S, S])
        """
        s = self.patch_size
        rois = torch.cat([torch.zeros_like(patch_boxes[:, :1]), patch_boxes], dim=1)
        rgb = roi_align(image[None], rois, (s, s), spatial_scale=1.0, sampling_ratio=2, aligned=True)
        idx = torch.arange(masks.shape[0], device=masks.device, dtype=rois.dtype)[:, None]
        m = roi_align(masks[:, None].to(rgb.dtype), torch.cat([idx, patch_boxes], 1), (s, s),
                      spatial_scale=1.0, sampling_ratio=2, aligned=True)
        return rgb, m

    def forward(self, rgb: Tensor, mask: Tensor) -> Tensor:
        """Tensor[N, 3, S, S] + Tensor[N, 1, S, S] probabilities -> Tensor[N, 1, S, S] logits."""
        prior = torch.logit(mask.clamp(1e-4, 1 - 1e-4))
        x = F.relu(self.stem(torch.cat([rgb, mask * 2 - 1], dim=1)))
        return prior + self.out(self.blocks(x))

    def paste(self, patch_probs: Tensor, patch_boxes: Tensor, size: tuple[int, int]) -> Tensor:
        """Put refined patches back on the image grid (zero outside each patch).

        Args:
            patch_probs: Tensor[N, 1, S, S]; patch_boxes: Tensor[N, 4]; size: (H, W).
        Returns:
            Tensor[N, H, W] probabilities.
        """
        H, W = size
        out = patch_probs.new_zeros((patch_probs.shape[0], H, W))
        for k in range(patch_probs.shape[0]):
            x0, y0, x1, y1 = patch_boxes[k].tolist()
            ix0, iy0 = max(int(math.floor(x0)), 0), max(int(math.floor(y0)), 0)
            ix1, iy1 = min(int(math.ceil(x1)), W), min(int(math.ceil(y1)), H)
            if ix1 <= ix0 or iy1 <= iy0:
                continue
            # pixel centres of the covered region in the patch's normalised [-1, 1] coordinates
            xs = ((torch.arange(ix0, ix1, device=out.device) + 0.5) - x0) / (x1 - x0) * 2 - 1
            ys = ((torch.arange(iy0, iy1, device=out.device) + 0.5) - y0) / (y1 - y0) * 2 - 1
            gy, gx = torch.meshgrid(ys, xs, indexing="ij")
            grid = torch.stack([gx, gy], dim=-1)[None].to(patch_probs.dtype)
            out[k, iy0:iy1, ix0:ix1] = F.grid_sample(patch_probs[k:k + 1], grid, mode="bilinear",
                                                     align_corners=False)[0, 0]
        return out


__all__ = ["MaskPropagationHead", "MaskRefinementHead"]
