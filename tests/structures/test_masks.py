import numpy as np
import pytest
import torch

from vosbench.structures import (FramePrediction, VideoPrediction, index_to_masks, masks_to_boxes,
                                 masks_to_index, probs_to_index, resize_masks, rle_decode,
                                 rle_encode)


def test_index_roundtrip_ignores_void():
    idx = torch.tensor([[0, 1, 2], [255, 2, 0]], dtype=torch.uint8)
    masks, ids = index_to_masks(idx)
    assert ids.tolist() == [1, 2]
    assert masks.sum().item() == 3
    assert torch.equal(masks_to_index(masks, ids), torch.where(idx == 255, 0, idx))


def test_index_to_masks_absent_id_gives_empty_row():
    masks, ids = index_to_masks(torch.zeros(2, 2, dtype=torch.uint8), [3])
    assert masks.shape == (1, 2, 2) and not masks.any()


def test_probs_to_index_argmax_and_threshold():
    p = torch.tensor([[[0.9, 0.2]], [[0.6, 0.4]]])
    assert probs_to_index(p, [4, 7]).tolist() == [[4, 0]]


def test_rle_roundtrip_and_size_check():
    m = np.zeros((2, 5, 7), bool)
    m[0, 1:3, 2:6] = True
    m[1, 4, 6] = True
    rles = rle_encode(m)
    for k, r in enumerate(rles):
        assert np.array_equal(rle_decode(r, (5, 7)), m[k])
    with pytest.raises(ValueError, match="disagrees"):
        rle_decode(rles[0], (6, 7), where="x.json")


def test_uncompressed_rle_sum_checked():
    with pytest.raises(ValueError, match="sum"):
        rle_decode({"size": [2, 2], "counts": [1, 2]})


def test_resize_nearest_and_boxes():
    m = torch.zeros(1, 4, 4, dtype=torch.bool)
    m[0, 1, 2] = True
    r = resize_masks(m, (8, 8))
    assert r.dtype == torch.bool and r.sum() == 4
    assert masks_to_boxes(m).tolist() == [[2.0, 1.0, 3.0, 2.0]]


def test_prediction_validates_frames():
    pred = VideoPrediction("v", torch.tensor([1]), torch.ones(1), torch.tensor([-1]),
                           [FramePrediction(0, torch.zeros(1, 2, 2, dtype=torch.bool)),
                            FramePrediction(1, torch.zeros(1, 3, 2, dtype=torch.bool))],
                           (2, 2), 2)
    it = pred.iter_frames()
    next(it)
    with pytest.raises(ValueError, match="masks must be bool"):
        next(it)
