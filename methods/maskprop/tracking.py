"""Clip-level tracks, video-level id assignment (§4.3, eq. 4-5), mask aggregation and scoring.

Also the per-frame greedy mask-IoU linker of the ``maskprop_framelink`` baseline.

All masks here live on one low-resolution grid per video (the stride-8 feature grid), as
``float`` probabilities ``Tensor[h, w]``; the model upsamples and refines them at output time.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor


@dataclass
class ClipTrack:
    """The clip-level track of one instance detected at a clip's centre frame.

    Attributes:
        center: the centre frame t (where the instance was detected).
        frames: the covered frame indices t-K..t+K (clipped to the video), ascending.
        masks: Tensor[len(frames), h, w] probabilities ``M^i_{t, t'}`` for t' in ``frames``.
        class_probs: Tensor[C] foreground class probabilities of the detection (category
            ``c`` at index ``c - 1``).
    """

    center: int
    frames: list[int]
    masks: Tensor
    class_probs: Tensor

    @property
    def label(self) -> int:
        return int(self.class_probs.argmax()) + 1


def _frame_soft_iou(a: Tensor, b: Tensor, min_union: float) -> tuple[Tensor, Tensor]:
    """Per-frame pairwise soft IoU.

    Args:
        a: Tensor[N, F, P]; b: Tensor[M, F, P] (same F frames, flattened masks).
    Returns:
        (iou Tensor[N, M, F], informative Tensor[N, M, F] bool: the union exceeds ``min_union``).
    """
    inter = torch.einsum("nfp,mfp->nmf", a, b)
    union = a.sum(-1)[:, None] + b.sum(-1)[None] - inter
    informative = union > min_union
    return inter / union.clamp(min=1e-6), informative


class VideoLevelLinker:
    """Assign video-level instance ids to clip-level tracks, in order of their centre frame.

    Matching score between two overlapping tracks (eq. 4): the mean soft IoU of their masks over
    the overlapping frames. Score of a track against a video-level id v (eq. 5): the average of
    the matching scores with every previously processed overlapping track that was assigned v.
    The best id is taken if its score exceeds ``match_thresh``; otherwise a new id is created.

    Two details the paper leaves open: frames where both masks are (almost) empty carry no
    evidence and are left out of eq. 4's average (``min_union`` pixels of the grid); and within one
    clip, two tracks cannot take the same id (greedy by decreasing score), as two detections of
    one frame are two instances after NMS.

    Args:
        match_thresh: the threshold on eq. 5's score.
        min_union: soft-union area (grid pixels) below which an overlapping frame is ignored.
    """

    def __init__(self, *, match_thresh: float = 0.3, min_union: float = 1.0) -> None:
        self.match_thresh = match_thresh
        self.min_union = min_union
        self.history: list[tuple[ClipTrack, int]] = []
        self.next_id = 1

    def matching_scores(self, new: list[ClipTrack], old: list[ClipTrack]) -> Tensor:
        """Eq. 4 between every new and every old track -> Tensor[len(new), len(old)] (NaN where
        they share no informative frame)."""
        out = torch.full((len(new), len(old)), float("nan"))
        if not new or not old:
            return out
        # tracks of one clip share their frames, so group the old ones by centre
        by_center: dict[int, list[int]] = {}
        for j, tr in enumerate(old):
            by_center.setdefault(tr.center, []).append(j)
        new_frames = new[0].frames
        a_all = torch.stack([tr.masks for tr in new]).flatten(2).float()          # [N, F, P]
        for center, js in by_center.items():
            old_frames = old[js[0]].frames
            common = sorted(set(new_frames) & set(old_frames))
            if not common:
                continue
            ia = torch.tensor([new_frames.index(f) for f in common])
            ib = torch.tensor([old_frames.index(f) for f in common])
            b = torch.stack([old[j].masks for j in js]).flatten(2).float()[:, ib]  # [M, O, P]
            iou, inf = _frame_soft_iou(a_all[:, ia], b, self.min_union)
            num = (iou * inf).sum(-1)
            den = inf.sum(-1)
            score = torch.where(den > 0, num / den.clamp(min=1), torch.full_like(num, float("nan")))
            out[:, js] = score
        return out

    def add_clip(self, tracks: list[ClipTrack]) -> list[int]:
        """Assign ids to the tracks of one clip (all with the same centre, processed in time order).

        Returns:
            the video-level id of each track.
        """
        if not tracks:
            return []
        old = [(tr, v) for tr, v in self.history if set(tr.frames) & set(tracks[0].frames)]
        ids: list[int | None] = [None] * len(tracks)
        if old:
            m = self.matching_scores(tracks, [tr for tr, _ in old])             # [N, M]
            old_ids = torch.tensor([v for _, v in old])
            cand = sorted(set(old_ids.tolist()))
            # eq. 5: average of the matching scores with the tracks assigned id v
            score = torch.full((len(tracks), len(cand)), float("nan"))
            for k, v in enumerate(cand):
                sel = m[:, old_ids == v]
                valid = ~torch.isnan(sel)
                cnt = valid.sum(1)
                s = torch.where(valid, sel, torch.zeros_like(sel)).sum(1) / cnt.clamp(min=1)
                score[:, k] = torch.where(cnt > 0, s, torch.full_like(s, float("nan")))
            pairs = [(float(score[i, k]), i, cand[k]) for i in range(len(tracks))
                     for k in range(len(cand)) if not torch.isnan(score[i, k])]
            used: set[int] = set()
            for s, i, v in sorted(pairs, key=lambda p: (-p[0], p[1])):  # ties: earlier detection first
                if s <= self.match_thresh:
                    break
                if ids[i] is None and v not in used:
                    ids[i] = v
                    used.add(v)
        for i in range(len(tracks)):
            if ids[i] is None:
                ids[i] = self.next_id
                self.next_id += 1
        self.history += list(zip(tracks, ids))  # type: ignore[arg-type]
        # clips come in time order, so no later clip starts before this one: a track that ends
        # before this clip's first frame can never overlap again (frees its masks)
        first = tracks[0].frames[0]
        self.history = [(tr, v) for tr, v in self.history if tr.frames[-1] >= first]
        return ids  # type: ignore[return-value]


@dataclass
class VideoAggregator:
    """Final masks and scores per video-level id (§4.3, §4.4).

    Masks: the mean of ``M^j_{t, t''}`` over the clip-level tracks j assigned id v that cover
    frame t''. Scores: for each category, the mean of the tracks' classification scores for it.
    """

    mask_sum: dict[tuple[int, int], Tensor] = field(default_factory=dict)
    mask_count: dict[tuple[int, int], int] = field(default_factory=dict)
    class_probs: dict[int, list[Tensor]] = field(default_factory=dict)

    def add(self, track: ClipTrack, vid: int) -> None:
        for k, f in enumerate(track.frames):
            key = (f, vid)
            m = track.masks[k].float()
            self.mask_sum[key] = self.mask_sum[key] + m if key in self.mask_sum else m.clone()
            self.mask_count[key] = self.mask_count.get(key, 0) + 1
        self.class_probs.setdefault(vid, []).append(track.class_probs.float())

    def add_frame_mask(self, frame: int, vid: int, mask: Tensor, class_probs: Tensor) -> None:
        """A single-frame observation (used by the frame-linking baseline)."""
        key = (frame, vid)
        self.mask_sum[key] = mask.float().clone()
        self.mask_count[key] = 1
        self.class_probs.setdefault(vid, []).append(class_probs.float())

    @property
    def ids(self) -> list[int]:
        return sorted(self.class_probs)

    def mask(self, frame: int, vid: int) -> Tensor | None:
        key = (frame, vid)
        if key not in self.mask_sum:
            return None
        return self.mask_sum[key] / self.mask_count[key]

    def peak(self, vid: int) -> float:
        """Highest aggregated mask probability of sequence ``vid`` over all its frames."""
        return max((float((self.mask_sum[k] / self.mask_count[k]).max()) for k in self.mask_sum
                    if k[1] == vid and self.mask_sum[k].numel()), default=0.0)

    def entries(self, max_labels: int = 3, min_peak: float | None = None) -> list[tuple[int, int, float]]:
        """Video-level predictions ``(video id, category, score)``.

        Each sequence is scored separately for each category some of its tracks predict
        (argmax label), at most ``max_labels`` of them, by the average classification score
        for that category over all its tracks.

        ``min_peak``: drop sequences whose aggregated masks never exceed it on any frame. With
        the binarisation threshold here, such a sequence would be output with an empty mask on
        every frame: an instance that is nowhere, which can only be a false positive for the
        video AP (bilinear upsampling cannot exceed the grid's maximum).
        """
        out = []
        for vid in self.ids:
            if min_peak is not None and self.peak(vid) <= min_peak:
                continue
            probs = torch.stack(self.class_probs[vid])                     # [n_tracks, C]
            mean = probs.mean(0)
            labels = sorted({int(p.argmax()) for p in probs}, key=lambda c: -float(mean[c]))
            for c in labels[:max_labels]:
                out.append((vid, c + 1, float(mean[c])))
        return out


class GreedyMaskLinker:
    """Frame-by-frame linking for the baseline: greedy on mask IoU with the live tracks.

    A detection joins the track whose latest mask (seen at most ``max_age`` frames ago) has the
    highest IoU with it, if that IoU is at least ``iou_thresh`` (greedy by decreasing IoU, one
    detection per track); otherwise it starts a new track.
    """

    def __init__(self, *, iou_thresh: float = 0.3, max_age: int = 3) -> None:
        self.iou_thresh = iou_thresh
        self.max_age = max_age
        self.last: dict[int, tuple[int, Tensor]] = {}   # id -> (frame, flattened mask)
        self.next_id = 1

    def step(self, frame: int, masks: Tensor) -> list[int]:
        """Link the detections of one frame.

        Args:
            masks: Tensor[K, h, w] probabilities or binary masks of the frame's detections.
        Returns:
            the track id of each detection.
        """
        k = masks.shape[0]
        ids: list[int | None] = [None] * k
        live = [(v, m) for v, (f, m) in self.last.items() if frame - f <= self.max_age]
        if k and live:
            a = (masks.flatten(1) > 0.5).float()
            b = torch.stack([m for _, m in live])
            inter = a @ b.t()
            union = a.sum(1, keepdim=True) + b.sum(1)[None] - inter
            iou = inter / union.clamp(min=1e-6)
            pairs = sorted(((float(iou[i, j]), i, j) for i in range(k) for j in range(len(live))),
                           key=lambda p: (-p[0], p[1], p[2]))
            used: set[int] = set()
            for s, i, j in pairs:
                if s < self.iou_thresh:
                    break
                if ids[i] is None and j not in used:
                    ids[i] = live[j][0]
                    used.add(j)
        for i in range(k):
            if ids[i] is None:
                ids[i] = self.next_id
                self.next_id += 1
            self.last[ids[i]] = (frame, (masks[i].flatten() > 0.5).float())  # type: ignore[index]
        return ids  # type: ignore[return-value]


__all__ = ["ClipTrack", "VideoLevelLinker", "VideoAggregator", "GreedyMaskLinker"]
