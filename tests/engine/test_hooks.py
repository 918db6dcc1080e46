"""Logging, validation, timing and progress hooks."""
from __future__ import annotations

import json

import torch

from engine_testing import make_batch
from vosbench.engine import SimpleTrainer
from vosbench.engine.hooks import EvalHook, IterationTimer, MetricsLogger, PeriodicCheckpointer, ProgressBar


def _repeat(batch):
    while True:
        yield batch


def test_logging_validation_and_progress(tmp_path, tiny_model, capsys):
    calls = []

    def eval_fn():
        calls.append(tiny_model.training)
        return {"J&F": 0.5 + len(calls), "T_mean": float("nan")}

    hooks = [IterationTimer(), EvalHook(3, eval_fn), MetricsLogger(tmp_path, period=2, tensorboard=True),
             ProgressBar(True), PeriodicCheckpointer(tmp_path, period=0, keep_every=2)]
    trainer = SimpleTrainer(tiny_model, _repeat(make_batch()), torch.optim.SGD(tiny_model.parameters(), lr=0.1),
                            hooks=hooks)
    trainer.train(0, 4)
    assert calls == [True, True]  # at iteration 3 and at the end (4); the hook itself does not switch modes
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    train_its = [r["iteration"] for r in records if "split" not in r]
    val = [r for r in records if r.get("split") == "val"]
    assert train_its == [2, 4] and [r["iteration"] for r in val] == [3, 4]
    assert val[0]["J&F"] == 1.5 and val[0]["T_mean"] is None  # NaN written as null (strict JSON)
    assert {"total_loss", "loss_mask", "lr", "time", "data_time", "step_time", "eta_seconds"} <= set(records[0])
    assert records[-2]["eta_seconds"] == 0.0 or records[-1]["eta_seconds"] == 0.0
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))
    assert "train" in capsys.readouterr().err  # tqdm bar
    assert (tmp_path / "model_0000002.pth").is_file() and (tmp_path / "model_0000004.pth").is_file()
    assert (tmp_path / "model_final.pth").is_file()
    assert hooks[1].history[-1]["iteration"] == 4
