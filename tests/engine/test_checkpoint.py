"""Checkpoints: weights_only loading, atomic writes, RNG round trip, exact in-process resume."""
from __future__ import annotations

import os
import random

import numpy as np
import pytest
import torch

from engine_testing import BatchItems, TinyTestMethod, collate_items
from vosbench.engine import SimpleTrainer, load_checkpoint, load_model_weights, save_checkpoint
from vosbench.engine.checkpoint import get_rng_state, set_rng_state
from vosbench.engine.data import InfiniteLoader
from vosbench.engine.hooks import MetricsLogger, PeriodicCheckpointer, resume_from_checkpoint


def test_rng_round_trip():
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    np.random.randn()  # leaves a cached gaussian in numpy's state
    state = get_rng_state()
    a = (random.random(), np.random.randn(3), torch.rand(3))
    random.seed(9), np.random.seed(9), torch.manual_seed(9)
    set_rng_state(state)
    b = (random.random(), np.random.randn(3), torch.rand(3))
    assert a[0] == b[0] and np.array_equal(a[1], b[1]) and torch.equal(a[2], b[2])


def test_checkpoint_loads_weights_only_and_is_atomic(tmp_path, tiny_model):
    opt = torch.optim.Adam(tiny_model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, 2)
    cfg = {"method": {"name": "_tiny_test_method", "hidden": 4}, "trainer": {"max_iter": 3}}
    path = save_checkpoint(tmp_path / "ck.pth", tiny_model, optimizer=opt, scheduler=sched,
                           iteration=7, config=cfg)
    obj = torch.load(path, weights_only=True)
    assert obj["iteration"] == 7 and obj["config"] == cfg
    assert obj["optimizer"] is not None and obj["scheduler"]["step_size"] == 2
    assert isinstance(obj["rng"][0]["torch"], torch.Tensor)
    assert os.listdir(tmp_path) == ["ck.pth"]  # no temporary file left behind

    other = TinyTestMethod(hidden=4)
    load_model_weights(other, path)
    for a, b in zip(tiny_model.state_dict().values(), other.state_dict().values()):
        assert torch.equal(a, b)


def test_failed_save_keeps_previous_file(tmp_path, tiny_model):
    path = save_checkpoint(tmp_path / "last.pth", tiny_model, iteration=1)
    before = path.read_bytes()

    class Boom:
        def state_dict(self):
            return {"x": object()}  # torch.save can pickle it, so fail differently:

    with pytest.raises(AttributeError):
        save_checkpoint(path, tiny_model, optimizer=Boom(), scaler=object(), iteration=2)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["last.pth"]


def test_load_errors_name_the_file(tmp_path, tiny_model):
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        load_model_weights(tiny_model, tmp_path / "nope.pth")
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="bad.pth"):
        load_checkpoint(bad)
    wrong = save_checkpoint(tmp_path / "wrong.pth", TinyTestMethod(hidden=8))
    with pytest.raises(ValueError, match="wrong.pth"):
        load_model_weights(tiny_model, wrong)
    torch.save({"conv1.weight": torch.zeros(4, 3, 3, 3), "extra": torch.zeros(1)}, tmp_path / "bare.pth")
    with pytest.raises(ValueError, match="missing keys.*conv2.weight.*unexpected keys.*extra"):
        load_model_weights(tiny_model, tmp_path / "bare.pth")


def _run(out_dir, start, stop, *, resume=False):
    """Train the tiny method (dropout on, so the torch RNG matters) from ``start`` to ``stop``."""
    torch.manual_seed(0)
    model = TinyTestMethod(hidden=4, dropout=0.3)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.5)
    loader = InfiniteLoader(BatchItems(n=5), batch_size=2, collate_fn=collate_items, seed=1)
    trainer = SimpleTrainer(model, loader, opt, scheduler=sched, hooks=[
        MetricsLogger(out_dir, period=1, tensorboard=False),
        PeriodicCheckpointer(out_dir, period=1)])
    torch.manual_seed(123)
    if resume:
        start = resume_from_checkpoint(trainer, out_dir / "last.pth")
    loader.start_batch = start
    # Stopping at ``stop`` < 8 emulates a crash right after the checkpoint of iteration ``stop``.
    trainer.train(start, stop)
    return model, trainer


def test_resume_in_process_is_exact(tmp_path):
    ref, _ = _run(tmp_path / "a", 0, 8)
    _run(tmp_path / "b", 0, 3)  # "crashes" after 3 iterations (last.pth at iteration 3)
    assert load_checkpoint(tmp_path / "b" / "last.pth")["iteration"] == 3
    resumed, trainer = _run(tmp_path / "b", None, 8, resume=True)
    assert trainer.start_iter == 3
    for (k, a), b in zip(ref.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), k
    lines = (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 8  # iterations 1-3 then 4-8, no duplicates

