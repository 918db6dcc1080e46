"""ClipDataset clip-level geometric augmentation (random resize and rotation; MaskRNN §4)."""
from __future__ import annotations

import random

import pytest
import torch

from vosbench.data import ClipDataset
from vosbench.data.clips import _rotate_frame
from vosbench.structures import Frame, VideoSample

H, W = 24, 40


def _video(num_frames: int = 6, vid: str = "v") -> VideoSample:
    g = torch.Generator().manual_seed(0)
    frames = []
    for t in range(num_frames):
        m = torch.zeros(2, H, W, dtype=torch.bool)
        m[0, 4:12, 3 + t:13 + t] = True
        m[1, 14:20, 20:30] = True
        frames.append(Frame(image=torch.rand(3, H, W, generator=g), index=t, name=f"{t:05d}", masks=m,
                            obj_ids=torch.tensor([1, 2]), labels=torch.tensor([-1, -1])))
    return VideoSample(vid, frames, orig_size=(H, W), reference={}, frame_names=[f.name for f in frames])


def test_defaults_draw_and_return_what_they_did_before():
    """Off by default: the plain sampler's draws (stride, start, flip) and unchanged pixels; the
    dataset's own frames are never modified."""
    data = [_video()]
    keep = [f.image.clone() for f in data[0].frames]
    clips = ClipDataset(data, num_frames=3, max_stride=2, samples_per_epoch=5, seed=4)
    assert clips.scale_range is None and clips.max_rotation == 0.0
    for i in range(5):
        c = clips[i]
        rng = random.Random(hash((4, 0, i)) & 0xFFFFFFFF)  # the documented per-index stream
        stride = rng.randint(1, 2)
        start = rng.randint(0, max(0, 6 - 1 - 2 * stride))
        flip = rng.random() < 0.5
        assert c.meta["clip_frame_idx"] == [start + k * stride for k in range(3)]
        for f, t in zip(c.frames, c.meta["clip_frame_idx"]):
            src = keep[t].flip(-1) if flip else keep[t]
            assert torch.equal(f.image, src) and f.void is None
    assert all(torch.equal(f.image, k) for f, k in zip(data[0].frames, keep))


def test_one_scale_and_rotation_per_clip_deterministic_and_void_outside():
    data = [_video()]
    clips = ClipDataset(data, num_frames=4, samples_per_epoch=6, hflip=False, scale_range=(0.6, 1.4),
                        max_rotation=30.0, seed=1)
    sizes, voids = set(), 0
    for i in range(6):
        c = clips[i]
        assert len({f.size for f in c.frames}) == 1  # one draw per clip
        sizes.add(c.frames[0].size)
        for f in c.frames:
            assert f.masks.dtype == torch.bool and f.masks.shape == (2, *f.size)
            assert f.void is not None and not (f.masks & f.void[None]).any()
        voids += int(c.frames[0].void.any())  # rotated-in corners are void
        # The static object (id 2) is rotated/resized identically in every frame of the clip.
        assert all(torch.equal(f.masks[1], c.frames[0].masks[1]) for f in c.frames)
        again = clips[i]
        assert all(torch.equal(a.image, b.image) and torch.equal(a.masks, b.masks)
                   for a, b in zip(c.frames, again.frames))
    assert len(sizes) > 1 and voids > 0  # different clips, different scales; void corners
    clips.set_epoch(1)
    assert not torch.equal(clips[0].frames[0].image, ClipDataset(
        data, num_frames=4, samples_per_epoch=6, hflip=False, scale_range=(0.6, 1.4),
        max_rotation=30.0, seed=1)[0].frames[0].image)


def test_crop_padding_is_void_with_geometric_augmentation():
    clips = ClipDataset([_video()], num_frames=2, samples_per_epoch=1, hflip=False, scale_range=(0.5, 0.5),
                        crop_size=(H, W), seed=0)
    f = clips[0].frames[0]
    assert f.size == (H, W)
    assert f.void[H // 2:, :].all() and f.void[:, W // 2:].all() and not f.void[:H // 2, :W // 2].any()


def test_rotation_direction_and_nearest_masks():
    m = torch.zeros(1, 21, 21, dtype=torch.bool)
    m[0, 10, 15:18] = True  # right of the centre
    f = Frame(image=torch.zeros(3, 21, 21), index=0, masks=m.clone(), obj_ids=torch.tensor([1]))
    _rotate_frame(f, 90.0)
    ys, xs = f.masks[0].nonzero(as_tuple=True)
    # Counter-clockwise on screen: the bar now points up from the centre (smaller row index).
    assert set(xs.tolist()) == {10} and set(ys.tolist()) == {3, 4, 5}
    assert f.void.sum() == 0  # 90 degrees of a square frame: nothing comes from outside


def test_bad_arguments():
    with pytest.raises(ValueError, match="scale_range"):
        ClipDataset([_video()], num_frames=2, scale_range=(1.2, 0.8))
    with pytest.raises(ValueError, match="max_rotation"):
        ClipDataset([_video()], num_frames=2, max_rotation=-1)
