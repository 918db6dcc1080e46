import numpy as np
import pytest
import torch
from PIL import Image

from vosbench.data.datasets import SegTrackV2
from vosbench.utils.io import DataError


@pytest.fixture
def segtrack(tmp_path):
    """Two sequences: one single-object (.png frames, 1-channel masks), one multi-object
    (.bmp frames, 3-channel masks in numbered folders)."""
    root = tmp_path / "SegTrackv2"
    (root / "ImageSets").mkdir(parents=True)
    (root / "ImageSets" / "all.txt").write_text("girl\n*drift\n")
    for seq, ext, objs in (("girl", ".png", [None]), ("drift", ".bmp", ["1", "2"])):
        (root / "JPEGImages" / seq).mkdir(parents=True)
        stems = [f"{seq}_{t:03d}" for t in range(3)]
        (root / "ImageSets" / f"{seq}.txt").write_text("/some/prefix/\n" + "\n".join(stems) + "\n")
        for t, stem in enumerate(stems):
            Image.fromarray(np.full((16, 24, 3), 50 * t, np.uint8)).save(root / "JPEGImages" / seq / (stem + ext))
            for k, o in enumerate(objs):
                d = root / "GroundTruth" / seq / (o or "")
                d.mkdir(parents=True, exist_ok=True)
                m = np.zeros((16, 24), np.uint8)
                m[2 + k * 6:6 + k * 6, 3 + t:9 + t] = 255
                img = Image.fromarray(np.stack([m] * 3, -1) if o else m)
                img.save(d / (stem + (".bmp" if o else ".png")))
    return root


def test_single_and_multi_object(segtrack):
    ds = SegTrackV2(root=segtrack)
    assert ds.video_ids == ["girl", "drift"] and ds.metric == "segtrackv2"
    girl, drift = ds[0], ds[1]
    assert girl.obj_ids.tolist() == [1] and drift.obj_ids.tolist() == [1, 2]
    f = drift.frames[2]
    assert f.masks.shape == (2, 16, 24) and f.masks[1, 8:12, 5:11].all()


def test_non_binary_and_missing_masks(segtrack):
    p = segtrack / "GroundTruth" / "girl" / "girl_001.png"
    m = np.zeros((16, 24), np.uint8)
    m[0, :3] = [0, 100, 255]
    Image.fromarray(m).save(p)
    with pytest.raises(DataError, match="not binary"):
        SegTrackV2(root=segtrack)[0].frames[1]
    (segtrack / "GroundTruth" / "drift" / "2" / "drift_002.bmp").unlink()
    problems = SegTrackV2.check_root(root=segtrack, split="all")
    assert any("not binary" in p for p in problems)
    assert any("drift_002" in p and "missing mask" in p for p in problems)


def test_duplicate_and_gapped_object_folders(segtrack):
    """``01`` and ``1`` name the same object; ``1, 3`` lacks object 2: both are errors."""
    g = segtrack / "GroundTruth" / "drift"
    (g / "2").rename(g / "01")
    with pytest.raises(DataError, match=r"drift: object folders \['01', '1'\] name the same object id 1"):
        SegTrackV2(root=segtrack)
    (g / "01").rename(g / "3")
    with pytest.raises(DataError, match=r"numbered 1..2, found \['1', '3'\] \(missing \[2\]\)"):
        SegTrackV2(root=segtrack)
    assert any("missing [2]" in p for p in SegTrackV2.check_root(root=segtrack, split="all"))


def test_one_and_three_channel_masks_and_opaque_alpha(segtrack):
    """1-channel (girl) and 3-channel (drift) masks read alike; an RGBA / LA mask with an
    opaque alpha is its grey part; a varying alpha or a colour mask is an error."""
    ds = SegTrackV2(root=segtrack)
    ref = ds[1].frames[1].masks.clone()
    p = segtrack / "GroundTruth" / "drift" / "1" / "drift_001.bmp"
    rgb = np.asarray(Image.open(p).convert("RGB"))
    q = p.with_suffix(".png")
    p.unlink()
    Image.fromarray(np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)]), mode="RGBA").save(q)
    assert torch.equal(SegTrackV2(root=segtrack)[1].frames[1].masks, ref)
    a = np.full(rgb.shape[:2], 255, np.uint8)
    a[0, 0] = 10
    Image.fromarray(np.dstack([rgb, a]), mode="RGBA").save(q)
    with pytest.raises(DataError, match="drift_001.png: RGBA PNG whose alpha"):
        SegTrackV2(root=segtrack)[1].frames[1]
    col = rgb.copy()
    col[col[..., 0] > 0] = (255, 0, 0)
    Image.fromarray(col).save(q)
    with pytest.raises(DataError, match="drift_001.png: colour mask"):
        SegTrackV2(root=segtrack)[1].frames[1]
    assert SegTrackV2.check_root(root=segtrack, split="all", level="header") == []
