"""SimpleTrainer: loss decreases, accumulation, clipping, hooks, errors, optimizer configs."""
from __future__ import annotations

import copy

import pytest
import torch

from engine_testing import BatchItems, TinyTestMethod, collate_items, make_batch
from vosbench.config import ConfigError
from vosbench.engine import HookBase, SimpleTrainer
from vosbench.engine.data import InfiniteLoader
from vosbench.engine.defaults import build_optimizer, build_scheduler
from vosbench.engine.train_loop import resolve_amp


def _repeat(batch):
    while True:
        yield batch


def test_loss_decreases(tiny_model):
    batch = make_batch(b=2, seed=1)
    opt = torch.optim.Adam(tiny_model.parameters(), lr=0.05)
    trainer = SimpleTrainer(tiny_model, _repeat(batch), opt)
    first = tiny_model.training_step(batch)["loss_mask"].item()
    trainer.train(0, 40)
    last = tiny_model.training_step(batch)["loss_mask"].item()
    assert trainer.iter == 40
    assert last < 0.5 * first
    assert {"loss_mask", "total_loss", "lr", "time", "data_time"} <= set(trainer.metrics)


def test_accumulation_matches_larger_batch(tiny_model):
    big = make_batch(b=4, seed=2)
    halves = [collate_items([make_batch_slice(big, i) for i in idx]) for idx in ([0, 1], [2, 3])]
    m1, m2 = tiny_model, copy.deepcopy(tiny_model)
    t1 = SimpleTrainer(m1, _repeat(big), torch.optim.SGD(m1.parameters(), lr=0.5))
    t2 = SimpleTrainer(m2, iter(halves * 2), torch.optim.SGD(m2.parameters(), lr=0.5), accum_steps=2)
    t1.train(0, 2)
    t2.train(0, 2)
    for p1, p2 in zip(m1.parameters(), m2.parameters()):
        torch.testing.assert_close(p1, p2, rtol=1e-5, atol=1e-6)


def make_batch_slice(batch, i):
    from vosbench.structures import VideoBatch

    return VideoBatch(**{k: getattr(batch, k)[i:i + 1] for k in
                         ("images", "masks", "obj_ids", "labels", "obj_valid", "annotated", "pad",
                          "void", "frame_idx")})


def test_grad_clip_limits_norm(tiny_model):
    seen = {}

    class Spy(HookBase):
        def after_backward(self):
            seen["norm"] = torch.nn.utils.get_total_norm(
                [p.grad for p in self.trainer.method.parameters() if p.grad is not None])

    batch = make_batch(seed=3)
    opt = torch.optim.SGD(tiny_model.parameters(), lr=0.0)
    trainer = SimpleTrainer(tiny_model, _repeat(batch), opt, grad_clip=1e-3, hooks=[Spy()])
    trainer.train(0, 1)
    # after_backward sees the raw gradient; the reported norm is the pre-clip norm and the
    # optimizer got the clipped one.
    assert trainer.metrics["grad_norm"] == pytest.approx(float(seen["norm"]), rel=1e-5)
    assert trainer.metrics["grad_norm"] > 1e-3


def test_hook_order_and_after_train_on_error(tiny_model):
    calls = []

    class Rec(HookBase):
        def before_train(self):
            calls.append("before_train")

        def before_step(self):
            calls.append(f"before_step{self.trainer.iter}")

        def after_backward(self):
            calls.append("after_backward")

        def after_step(self):
            calls.append(f"after_step{self.trainer.iter}")
            if self.trainer.iter == 1:
                raise RuntimeError("boom")

        def after_train(self):
            calls.append("after_train")

    trainer = SimpleTrainer(tiny_model, _repeat(make_batch()),
                            torch.optim.SGD(tiny_model.parameters(), lr=0.1), hooks=[Rec()])
    with pytest.raises(RuntimeError, match="boom"):
        trainer.train(0, 5)
    assert calls == ["before_train", "before_step0", "after_backward", "after_step0",
                     "before_step1", "after_backward", "after_step1", "after_train"]


def test_non_finite_loss_raises(tiny_model):
    batch = make_batch()
    batch.images[0, 0, 0, 0, 0] = float("nan")
    trainer = SimpleTrainer(tiny_model, _repeat(batch), torch.optim.SGD(tiny_model.parameters(), lr=0.1))
    with pytest.raises(FloatingPointError, match="loss_mask"):
        trainer.train(0, 1)


def test_bad_loss_keys_rejected(tiny_model):
    tiny_model.training_step = lambda batch: {"mask": torch.tensor(1.0, requires_grad=True)}
    trainer = SimpleTrainer(tiny_model, _repeat(make_batch()),
                            torch.optim.SGD(TinyTestMethod().parameters(), lr=0.1))
    with pytest.raises(KeyError, match="loss_"):
        trainer.train(0, 1)


def test_scheduler_is_stepped_each_iteration(tiny_model):
    opt = torch.optim.SGD(tiny_model.parameters(), lr=1.0)
    sched = build_scheduler({"_target_": "torch.optim.lr_scheduler.StepLR", "step_size": 2,
                             "gamma": 0.5}, opt, warmup_iters=0)
    trainer = SimpleTrainer(tiny_model, _repeat(make_batch()), opt, scheduler=sched)
    trainer.train(0, 4)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.25)


def test_warmup_then_main_schedule(tiny_model):
    opt = torch.optim.SGD(tiny_model.parameters(), lr=1.0)
    sched = build_scheduler({"_target_": "torch.optim.lr_scheduler.MultiStepLR", "milestones": [6],
                             "gamma": 0.1}, opt, warmup_iters=4, warmup_factor=0.5)
    lrs = []
    for _ in range(12):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(0.5) and lrs[4] == pytest.approx(1.0)
    # SequentialLR restarts the main scheduler at the milestone, so its milestone 6 is iteration 10.
    assert lrs[9] == pytest.approx(1.0) and lrs[10] == pytest.approx(0.1)


@pytest.mark.parametrize("target", ["os.system", "torch.nn.Linear", "torch.optim.lr_scheduler.StepLR",
                                    "torch.optim.NoSuchThing", "builtins.eval"])
def test_optimizer_target_must_be_torch_optim(tiny_model, target):
    with pytest.raises(ConfigError, match="_target_"):
        build_optimizer({"_target_": target, "lr": 0.1}, tiny_model)


def test_scheduler_target_checked(tiny_model):
    opt = torch.optim.SGD(tiny_model.parameters(), lr=0.1)
    with pytest.raises(ConfigError, match="torch.optim.lr_scheduler"):
        build_scheduler({"_target_": "torch.optim.SGD"}, opt)
    with pytest.raises(ConfigError, match="nested _target_"):
        build_scheduler({"_target_": "torch.optim.lr_scheduler.StepLR", "step_size":
                         {"_target_": "os.getpid"}}, opt)
    with pytest.raises(ConfigError, match="unexpected keyword"):
        build_optimizer({"_target_": "torch.optim.SGD", "lr": 0.1, "bogus": 1}, opt and TinyTestMethod())


def test_frozen_parameters_left_out(tiny_model):
    tiny_model.conv1.requires_grad_(False)
    opt = build_optimizer({"_target_": "torch.optim.SGD", "lr": 0.1}, tiny_model)
    ids = {id(p) for g in opt.param_groups for p in g["params"]}
    assert id(tiny_model.conv1.weight) not in ids and id(tiny_model.conv2.weight) in ids


def test_amp_resolution():
    cpu = torch.device("cpu")
    assert resolve_amp(None, cpu) is None and resolve_amp("auto", cpu) is None
    assert resolve_amp("off", cpu) is None
    assert resolve_amp("bf16", cpu) is torch.bfloat16
    with pytest.raises(ValueError, match="fp16"):
        resolve_amp("fp16", cpu)
    with pytest.raises(ValueError, match="amp must be"):
        resolve_amp("int8", cpu)


def test_bf16_autocast_runs_on_cpu(tiny_model):
    trainer = SimpleTrainer(tiny_model, _repeat(make_batch()),
                            torch.optim.SGD(tiny_model.parameters(), lr=0.1), amp="bf16")
    trainer.train(0, 2)
    assert trainer.amp_dtype is torch.bfloat16 and not trainer.scaler.is_enabled()
    assert torch.isfinite(torch.tensor(trainer.metrics["total_loss"]))


def test_infinite_loader_resumes_mid_epoch():
    ds = BatchItems(n=5)
    full = InfiniteLoader(ds, batch_size=2, collate_fn=collate_items, seed=3)
    assert len(full) == 2  # 5 clips, batches of 2, tail dropped
    it = iter(full)
    ref = [next(it).images for _ in range(7)]
    resumed = InfiniteLoader(ds, batch_size=2, collate_fn=collate_items, seed=3, start_batch=3)
    it = iter(resumed)
    for k in range(3, 7):
        torch.testing.assert_close(next(it).images, ref[k], rtol=0, atol=0)
    # different epochs shuffle differently
    assert not all(torch.equal(a, b) for a, b in zip(ref[0:2], ref[2:4]))


def test_infinite_loader_too_small():
    with pytest.raises(ValueError, match="fewer than one batch"):
        InfiniteLoader(BatchItems(n=1), batch_size=2, collate_fn=collate_items)
