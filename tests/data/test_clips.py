import torch
from torch.utils.data import DistributedSampler

from vosbench.data import ClipDataset, collate_clips
from vosbench.data.datasets import DAVIS2017


def test_clips_and_collate(davis17):
    ds = DAVIS2017(root=davis17, split="train")
    clips = ClipDataset(ds, num_frames=3, max_stride=2, samples_per_epoch=6, crop_size=(40, 60), seed=1)
    assert len(clips) == 6
    a, b = clips[0], clips[0]
    assert torch.equal(a.frames[0].image, b.frames[0].image)  # deterministic per index
    batch = collate_clips([clips[i] for i in range(3)])
    B, T, O = 3, 3, batch.obj_ids.shape[1]
    assert batch.images.shape == (B, T, 3, 40, 60)
    assert batch.masks.shape == (B, T, O, 40, 60) and batch.masks.dtype == torch.bool
    assert batch.annotated.all()
    for bi in range(B):
        valid = batch.obj_valid[bi]
        assert (batch.obj_ids[bi][~valid] == -1).all()
        assert not batch.masks[bi][:, ~valid].any()


def test_distributed_sampler_gives_disjoint_clips(davis17):
    ds = DAVIS2017(root=davis17, split="train")
    clips = ClipDataset(ds, num_frames=2, samples_per_epoch=8)
    idx = [list(DistributedSampler(clips, num_replicas=2, rank=r, shuffle=True, seed=0)) for r in range(2)]
    assert len(idx[0]) == len(idx[1]) == 4 and not set(idx[0]) & set(idx[1])
