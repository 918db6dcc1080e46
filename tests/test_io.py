import numpy as np
import pytest
from PIL import Image

from vosbench.utils.io import DataError, read_image, read_index_png, write_index_png, write_json


def test_jpeg_fast_path_equals_pil_and_rejects_truncation(tmp_path):
    rng = np.random.default_rng(0)
    a = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
    Image.fromarray(a).save(tmp_path / "x.jpg", quality=90)
    assert np.array_equal(read_image(tmp_path / "x.jpg"), np.asarray(Image.open(tmp_path / "x.jpg").convert("RGB")))
    data = (tmp_path / "x.jpg").read_bytes()
    (tmp_path / "t.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="t.jpg: corrupt"):
        read_image(tmp_path / "t.jpg")
    with pytest.raises(DataError, match="missing file"):
        read_image(tmp_path / "absent.jpg")


def test_index_png_roundtrip_and_atomic_json(tmp_path):
    lab = np.zeros((5, 6), np.uint8)
    lab[1:3, 2:4] = 2
    lab[4, 5] = 255
    write_index_png(tmp_path / "a.png", lab)
    assert Image.open(tmp_path / "a.png").mode == "P"
    assert np.array_equal(read_index_png(tmp_path / "a.png"), lab)
    with pytest.raises(TypeError):
        write_json(tmp_path / "r.json", {"x": object()})  # not serialisable: nothing is left behind
    assert list(tmp_path.glob("*r.json*")) == []


def test_atomic_files_get_normal_permissions(tmp_path):
    import os
    write_json(tmp_path / "r.json", {"a": 1})
    mode = os.stat(tmp_path / "r.json").st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask
