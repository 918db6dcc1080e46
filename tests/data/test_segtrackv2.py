import numpy as np
import pytest
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
