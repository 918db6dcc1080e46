"""Flow providers, warping, magnitude and the flow cache."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from vosbench.config import ConfigError
from vosbench.models.flow import FlowCache, build_flow, flow_magnitude, warp
from vosbench.models.weights import WeightsError
from vosbench.utils.io import DataError

H, W = 64, 96


def textured_pair(dx: int, dy: int, h: int = H, w: int = W, seed: int = 0):
    """A smooth random texture and a copy whose content moved by (dx, dy) pixels.

    Pixel (x, y) of ``a`` shows the scene point that is at (x + dx, y + dy) in ``b``, so the true
    flow(a, b) is the constant (dx, dy).
    """
    g = torch.Generator().manual_seed(seed)
    m = 12
    base = F.interpolate(torch.rand(1, 3, (h + 2 * m) // 4, (w + 2 * m) // 4, generator=g),
                         size=(h + 2 * m, w + 2 * m), mode="bicubic", align_corners=False)[0].clamp(0, 1)
    a = base[:, m:m + h, m:m + w]
    b = base[:, m - dy:m - dy + h, m - dx:m - dx + w]
    return a.contiguous(), b.contiguous()


def box_mask(y0, y1, x0, x1, h=H, w=W):
    m = torch.zeros(h, w, dtype=torch.bool)
    m[y0:y1, x0:x1] = True
    return m


@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
def test_constant_flow_warp_moves_mask_exactly(mode):
    # A mask on frame b, and flow(a, b) = (dx, dy) everywhere: the mask on frame a is the mask
    # shifted by (-dx, -dy), because a(x, y) reads b(x + dx, y + dy).
    dx, dy = 5, -3
    src = box_mask(20, 40, 30, 60)
    flow = torch.empty(2, H, W)
    flow[0], flow[1] = dx, dy
    out = warp(src[None].float(), flow, mode=mode)[0]
    expected = box_mask(20 - dy, 40 - dy, 30 - dx, 60 - dx)
    # Exact up to float32 rounding of the normalised grid (~1e-5).
    assert torch.allclose(out, expected.float(), atol=1e-4)
    assert torch.equal(out > 0.5, expected)
    assert torch.equal(warp(src[None], flow, mode="nearest")[0], expected)  # bool stays bool


def test_warp_moves_mask_forward_in_time_with_the_object():
    # Object moves by (+4, +2) from frame t-1 to t. Propagating its mask with
    # warp(mask_{t-1}, flow(I_t, I_{t-1})) must move the mask by (+4, +2) as well.
    mask_prev = box_mask(10, 30, 10, 40)
    flow_t_prev = torch.empty(2, H, W)
    flow_t_prev[0], flow_t_prev[1] = -4, -2  # pixel x of frame t came from x-4 in frame t-1
    out = warp(mask_prev[None, None], flow_t_prev, mode="nearest")[0, 0]
    assert out.dtype == torch.bool
    assert torch.equal(out, box_mask(12, 32, 14, 44))


def test_warp_labels_nearest_keeps_values_and_dtype_and_broadcasts():
    labels = torch.zeros(1, H, W, dtype=torch.int64)
    labels[0, 5:10, 5:10] = 7
    labels[0, 30:40, 50:60] = 3
    flow = torch.full((2, H, W), 0.4)  # sub-pixel: nearest must not blend labels
    out = warp(labels, flow, mode="nearest")
    assert out.dtype == torch.int64
    assert set(out.unique().tolist()) <= {0, 3, 7}
    # One flow broadcast over K object channels with a leading dim.
    probs = torch.rand(3, 1, H, W)
    out = warp(probs, torch.zeros(2, H, W))
    assert out.shape == (3, 1, H, W) and torch.allclose(out, probs, atol=1e-4)


def test_warp_fractional_is_bilinear_and_outside_is_zero():
    src = torch.arange(W, dtype=torch.float32).expand(1, H, W).clone()
    flow = torch.zeros(2, H, W)
    flow[0] = 0.25
    out = warp(src, flow)[0]
    assert torch.allclose(out[:, :-1], src[0, :, :-1] + 0.25, atol=1e-5)
    flow[0] = -1.0  # column 0 reads column -1: outside -> 0 with padding "zeros"
    assert torch.all(warp(src, flow)[0, :, 0] == 0)


def test_warp_rejects_bad_input():
    with pytest.raises(ValueError, match="share"):
        warp(torch.zeros(1, H, W), torch.zeros(2, H, W + 1))
    with pytest.raises(ValueError, match="bilinear"):
        warp(torch.zeros(1, H, W, dtype=torch.bool), torch.zeros(2, H, W))
    with pytest.raises(ValueError, match="mode"):
        warp(torch.zeros(1, H, W), torch.zeros(2, H, W), mode="bicubic")


def test_flow_magnitude():
    flow = torch.zeros(4, 2, 5, 6)
    flow[:, 0], flow[:, 1] = 3.0, -4.0
    mag = flow_magnitude(flow)
    assert mag.shape == (4, 1, 5, 6)
    assert torch.allclose(mag, torch.full_like(mag, 5.0))


@pytest.mark.parametrize("name", ["dis", "farneback"])
def test_sign_convention_on_translated_pair(name):
    dx, dy = 3, -2
    a, b = textured_pair(dx, dy)
    est = build_flow(name)
    flow = est(a, b)
    assert flow.shape == (2, H, W) and flow.dtype == torch.float32
    inner = flow[:, 12:-12, 12:-12]  # away from the borders, where content leaves the frame
    assert abs(inner[0].median().item() - dx) < 0.3
    assert abs(inner[1].median().item() - dy) < 0.3
    # Batched input gives the same per-pair result.
    batched = est(torch.stack([a, b]), torch.stack([b, a]))
    assert batched.shape == (2, 2, H, W)
    assert torch.allclose(batched[0], flow)


def test_zero_flow_and_shape_errors():
    a, b = textured_pair(2, 1)
    assert torch.equal(build_flow("zero")(a, b), torch.zeros(2, H, W))
    with pytest.raises(ValueError, match="differ"):
        build_flow("zero")(a, b[:, :-1])
    with pytest.raises(ValueError, match="RGB"):
        build_flow("dis")(a[:1], b[:1])


def test_build_flow_errors():
    with pytest.raises(KeyError, match="dis"):
        build_flow("no_such_flow")
    with pytest.raises(ConfigError, match="presett"):
        build_flow({"name": "dis", "presett": "fast"})
    with pytest.raises(ValueError, match="preset"):
        build_flow({"name": "dis", "preset": "slow"})


def test_raft_requires_weights_and_reports_missing_file(tmp_path):
    from vosbench.models.weights import MissingWeightsError

    with pytest.raises(MissingWeightsError, match=r"raft_small_C_T_V2-01064c6d\.pth.*allow_random_init=true"):
        build_flow("raft_small")
    missing = tmp_path / "raft_small.pth"
    with pytest.raises(FileNotFoundError, match="raft_small.pth"):
        build_flow({"name": "raft_large", "weights": str(missing)})
    torch.save({"not": torch.zeros(1)}, missing)
    with pytest.raises(WeightsError, match="missing"):
        build_flow({"name": "raft_small", "weights": str(missing)})


def test_raft_wrapper_plumbing(tmp_path):
    """An untrained RAFT cannot estimate flow, so this checks only the plumbing of the sign.

    torchvision documents ``RAFT(image1, image2)[-1]`` as the flow from image1 to image2 with
    channel 0 = dx and channel 1 = dy, i.e. our convention. The wrapper must return exactly the
    model's output for (a, b) (inputs mapped to [-1, 1]), with no sign flip or channel swap, and
    crop its padding off for sizes RAFT cannot take directly.
    """
    torch.manual_seed(0)
    est = build_flow({"name": "raft_small", "allow_random_init": True, "num_flow_updates": 2})
    a, b = textured_pair(3, -2, h=128, w=136)
    with torch.no_grad():
        ref = est.model(a[None] * 2 - 1, b[None] * 2 - 1, num_flow_updates=2)[-1][0]
    out = est(a, b)
    assert torch.allclose(out, ref, atol=1e-5)
    # Loading the same weights from a local file gives the same estimator.
    path = tmp_path / "raft_small.pth"
    torch.save(est.model.state_dict(), path)
    est2 = build_flow({"name": "raft_small", "weights": str(path), "num_flow_updates": 2})
    assert torch.allclose(est2(a, b), out, atol=1e-5)
    assert est2.cache_key == "raft_small-raft_small-it2"
    # Small frames are padded to RAFT's minimum and cropped back.
    small_a, small_b = textured_pair(1, 1)
    assert est(small_a, small_b).shape == (2, H, W)


class CountingFlow(torch.nn.Module):
    cache_key = "counting"

    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, a, b):
        self.calls += 1
        return torch.full((2, *a.shape[-2:]), 1.0 / 3.0)


def test_flow_cache_computes_once_and_rounds_consistently(tmp_path):
    est = CountingFlow()
    cache = FlowCache(tmp_path, est, "synthetic")
    a, b = textured_pair(1, 1)
    f1 = cache.get("seq1", "00001", "00000", a, b)
    assert est.calls == 1 and cache.has("seq1", "00001", "00000")
    assert cache.path("seq1", "00001", "00000") == tmp_path / "synthetic" / "counting" / "seq1" / "00001__00000.npy"
    f2 = cache.get("seq1", "00001", "00000", a, b)
    assert est.calls == 1  # read back, not recomputed
    assert torch.equal(f1, f2)  # the fresh result is already float16-rounded
    assert abs(f1[0, 0, 0].item() - 1 / 3) < 1e-3
    assert not list(tmp_path.rglob("*.tmp"))  # atomic write left no temporary file
    with pytest.raises(DataError, match="use another dataset_name"):
        cache.get("seq1", "00001", "00000", a[:, :32], b[:, :32])
    cache.path("seq1", "x", "y").write_bytes(b"garbage")
    with pytest.raises(DataError, match="x__y.npy"):
        cache.load("seq1", "x", "y")
    with pytest.raises(ValueError, match="file name"):
        cache.path("../escape", 0, 1)


def test_real_frames_dis_moves_blackswan_mask(davis_mini):
    """DIS on two real DAVIS frames: the warped mask overlaps the next GT better than a copy."""
    import numpy as np

    from vosbench.utils.io import read_image, read_index_png

    seq = "blackswan"
    img = [torch.from_numpy(read_image(davis_mini / "JPEGImages/480p" / seq / f"{i:05d}.jpg").copy()).permute(2, 0, 1).float() / 255
           for i in (0, 5)]
    gt = [torch.from_numpy(read_index_png(davis_mini / "Annotations/480p" / seq / f"{i:05d}.png") > 0)
          for i in (0, 5)]
    flow = build_flow({"name": "dis", "preset": "fast"})(img[1], img[0])
    warped = warp(gt[0][None, None].float(), flow)[0, 0] > 0.5

    def iou(p, g):
        return (p & g).sum().item() / max((p | g).sum().item(), 1)

    assert iou(warped, gt[1]) > iou(gt[0], gt[1]) + 0.02
    assert np.isfinite(flow.numpy()).all()


def _load_tool():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "tools" / "precompute_flow.py"
    spec = importlib.util.spec_from_file_location("precompute_flow", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _video(video_id, n=4, dataset="tiny"):
    from vosbench.structures import Frame, VideoSample

    frames = []
    for t in range(n):
        a, _ = textured_pair(0, 0, seed=t)
        frames.append(Frame(image=a, index=t, name=f"{t:05d}"))
    return VideoSample(video_id=video_id, frames=frames, orig_size=(H, W),
                       frame_names=[f.name for f in frames], meta={"dataset": dataset})


def test_precompute_flow_tool_is_resumable(tmp_path, capsys):
    tool = _load_tool()
    assert tool.frame_pairs(3, "both") == [(1, 0), (2, 1), (0, 1), (1, 2)]
    videos = [_video("v1"), _video("v2", n=3)]
    cfg = {"name": "fake", "root": "r", "split": "val"}
    tool._DATASETS[repr(sorted(cfg.items()))] = videos  # stands in for build_dataset(cfg)
    argv = ["--dataset", "fake", "--root", "r", "--flow", "farneback", "--cache-dir", str(tmp_path),
            "--workers", "1"]
    assert tool.main(argv) == 0
    est = build_flow("farneback")
    folder = tmp_path / f"tiny-{H}x{W}" / est.cache_key
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.npy")) == [
        "v1/00001__00000.npy", "v1/00002__00001.npy", "v1/00003__00002.npy",
        "v2/00001__00000.npy", "v2/00002__00001.npy"]
    (folder / "v1" / "00002__00001.npy").unlink()  # as if interrupted
    capsys.readouterr()
    assert tool.main(argv + ["--videos", "v1"]) == 0
    out = capsys.readouterr().out
    assert "v1: 1 computed, 2 already cached" in out and "v2" not in out.split("done")[0]
    cache = FlowCache(tmp_path, est, FlowCache.dataset_name_for(videos[0], size=(H, W)))
    assert FlowCache.dataset_name_for(videos[0], "other") == "other"
    assert torch.allclose(cache.load("v1", "00002", "00001"), est(videos[0].frames[2].image,
                                                                  videos[0].frames[1].image), atol=0.01)
    with pytest.raises(SystemExit, match="unknown video ids"):
        tool.main(argv + ["--videos", "nope"])


def test_dis_pickles_for_dataloader_workers():
    import pickle

    est = build_flow({"name": "dis", "preset": "fast"})
    a, b = textured_pair(2, 1)
    flow = est(a, b)  # creates the (unpicklable) OpenCV object
    clone = pickle.loads(pickle.dumps(est))
    assert clone.preset == "fast" and torch.equal(clone(a, b), flow)
