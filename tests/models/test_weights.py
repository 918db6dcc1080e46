"""load_weights: file formats, prefixes and error messages."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from vosbench.models.weights import WeightsError, load_weights, read_state_dict


def make():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))


@pytest.mark.parametrize("wrap", ["plain", "model", "state_dict", "ddp"])
def test_load_formats(tmp_path, wrap):
    src = make()
    for p in src.parameters():
        nn.init.normal_(p)
    sd = src.state_dict()
    obj = {"plain": sd, "model": {"model": sd, "iteration": 7}, "state_dict": {"state_dict": sd},
           "ddp": {f"module.{k}": v for k, v in sd.items()}}[wrap]
    path = tmp_path / "w.pth"
    torch.save(obj, path)
    dst = make()
    nn.init.zeros_(dst[0].weight)
    assert load_weights(dst, path) is dst
    assert torch.equal(dst[0].weight, src[0].weight)


def test_prefix(tmp_path):
    src = make()
    path = tmp_path / "w.pth"
    torch.save({f"backbone.{k}": v for k, v in src.state_dict().items()} | {"head.w": torch.ones(1)}, path)
    dst = load_weights(make(), path, prefix="backbone.")
    assert torch.equal(dst[1].running_var, src[1].running_var)
    with pytest.raises(WeightsError, match="prefix 'neck.'"):
        load_weights(make(), path, prefix="neck.")


def test_errors_name_the_file_and_keys(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        load_weights(make(), tmp_path / "missing.pth")
    path = tmp_path / "partial.pth"
    sd = make().state_dict()
    sd.pop("0.bias")
    sd["extra.weight"] = torch.zeros(1)
    torch.save(sd, path)
    with pytest.raises(WeightsError, match=r"partial.pth.*missing 1 key\(s\): 0.bias.*unexpected 1 key\(s\): extra.weight"):
        load_weights(make(), path)
    loose = load_weights(make(), path, strict=False)  # non-strict: the matching keys load
    assert torch.equal(loose[0].weight, sd["0.weight"])
    shape = tmp_path / "shape.pth"
    sd = make().state_dict()
    sd["0.weight"] = torch.zeros(4, 3, 5, 5)
    torch.save(sd, shape)
    with pytest.raises(WeightsError, match=r"shape mismatch.*0.weight: file \(4, 3, 5, 5\)"):
        load_weights(make(), shape, strict=False)  # shapes must match even when not strict
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a pickle")
    with pytest.raises(WeightsError, match="junk.pth"):
        read_state_dict(junk)
    torch.save({"epoch": 3}, tmp_path / "nosd.pth")
    with pytest.raises(WeightsError, match="neither a state dict"):
        read_state_dict(tmp_path / "nosd.pth")


def test_batchnorm_file_loads_into_frozen_batchnorm(tmp_path):
    from torchvision.ops import FrozenBatchNorm2d

    src = make()
    src[1].running_mean.fill_(0.5)
    path = tmp_path / "bn.pth"
    torch.save(src.state_dict(), path)  # has 1.num_batches_tracked
    dst = nn.Sequential(nn.Conv2d(3, 4, 3), FrozenBatchNorm2d(4))
    load_weights(dst, path)  # strict, yet num_batches_tracked is not "unexpected"
    assert torch.equal(dst[1].running_mean, torch.full((4,), 0.5))
    torch.save(src.state_dict() | {"1.other": torch.zeros(1)}, path)
    with pytest.raises(WeightsError, match="unexpected 1 key.*1.other"):
        load_weights(dst, path)
