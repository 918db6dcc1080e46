"""Training hooks: LR schedule, timing, checkpoints, validation, logs, progress bar.

Recommended order (``vosbench.engine.defaults.default_hooks`` uses it): ``IterationTimer`` first
(it times the whole step), then ``EvalHook``, ``MetricsLogger``, ``ProgressBar`` and
``PeriodicCheckpointer`` last, so that a checkpoint captures the RNG state after everything the
step did (exact resume).
"""
from __future__ import annotations

import json
import logging
import math
import os
import statistics
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable

import torch

from vosbench.engine import comm
from vosbench.engine.checkpoint import (
    CheckpointError,
    generator_states,
    get_rng_state,
    load_checkpoint,
    load_generator_states,
    load_method_random_state,
    method_random_state,
    save_checkpoint,
    set_rng_state,
    unwrap_model,
)
from vosbench.engine.train_loop import HookBase, TrainingDataError

logger = logging.getLogger(__name__)


class LRScheduler(HookBase):
    """Steps ``trainer.scheduler`` once per iteration (registered by ``SimpleTrainer`` itself)."""

    def after_step(self) -> None:
        self.trainer.scheduler.step()


class IterationTimer(HookBase):
    """Times each step and estimates the remaining time from the median of recent steps.

    Adds ``step_time`` and ``eta_seconds`` to ``trainer.metrics``.
    """

    def __init__(self, window: int = 20) -> None:
        self._times: deque[float] = deque(maxlen=window)
        self._start = 0.0
        self.train_start = 0.0
        self.total_time = 0.0

    def before_train(self) -> None:
        self.train_start = time.perf_counter()

    def before_step(self) -> None:
        self._start = time.perf_counter()

    def after_step(self) -> None:
        dt = time.perf_counter() - self._start
        # The first step of a run pays for lazy initialisation; keep it out of the ETA.
        if self.trainer.iter > self.trainer.start_iter:
            self._times.append(dt)
        med = statistics.median(self._times) if self._times else dt
        self.trainer.metrics["step_time"] = dt
        self.trainer.metrics["eta_seconds"] = med * (self.trainer.max_iter - self.trainer.iter - 1)

    def after_train(self) -> None:
        self.total_time = time.perf_counter() - self.train_start
        done = self.trainer.iter - self.trainer.start_iter
        if done > 0:
            logger.info("Trained %d iterations in %.1f s (%.3f s/it)", done, self.total_time,
                        self.total_time / done)


def rank_random_state(trainer: Any) -> dict[str, Any]:
    """This process's random state for a checkpoint: the global python / numpy / torch / CUDA
    streams, plus every generator the method (``VideoMethod.random_state``) and the training
    data pipeline (``generator_states`` of the loader's dataset) own."""
    state = get_rng_state()
    state["method"] = method_random_state(trainer.model)
    loader = getattr(trainer, "data_loader", None)
    state["data"] = generator_states(getattr(loader, "dataset", None)) if loader is not None else {}
    return state


def set_rank_random_state(trainer: Any, state: dict[str, Any], where: str) -> None:
    set_rng_state(state)
    load_method_random_state(trainer.model, state.get("method"), where)
    loader = getattr(trainer, "data_loader", None)
    if loader is not None and state.get("data"):
        load_generator_states(getattr(loader, "dataset", None), state.get("data"), where)


class PeriodicCheckpointer(HookBase):
    """Writes ``<output_dir>/last.pth`` every ``period`` iterations and at the end, plus
    ``model_final.pth`` (weights, config, iteration) when training completes.

    All ranks gather their random states (``rank_random_state``) into the checkpoint (rank ``r``
    gets its own state back on resume); only rank 0 writes. Writes are atomic.

    When a data error stops the run (``TrainingDataError``: a file that went bad after the
    pre-flight check), ``last.pth`` is written with the state from before the failed iteration
    (the random state is taken at each ``before_step``), so ``resume=true`` continues exactly
    once the file is fixed (exactly: also when micro-batches of that step had run, only their
    buffer updates, e.g. BatchNorm statistics, are not undone; a warning says so).

    Args:
        output_dir: run folder.
        period: iterations between checkpoints (<= 0: only at the end).
        config: the resolved run config, stored in every checkpoint.
        keep_every: also keep ``model_<iteration>.pth`` copies every this many iterations (0: no).
    """

    def __init__(self, output_dir: str | os.PathLike, period: int, *, config: Any = None,
                 keep_every: int = 0) -> None:
        self.output_dir = Path(output_dir)
        self.period = int(period)
        self.config = config
        self.keep_every = int(keep_every)

    @property
    def last_path(self) -> Path:
        return self.output_dir / "last.pth"

    def before_step(self) -> None:
        # cheap (a few KB): the state to save if this step's batch fails to load
        self._step_rng = rank_random_state(self.trainer) if comm.get_world_size() == 1 else None

    def save(self, path: Path) -> None:
        t = self.trainer
        rng = comm.all_gather_object(rank_random_state(t))
        if comm.is_main_process():
            state = t.state_dict()
            save_checkpoint(
                path, t.model, optimizer=t.optimizer, scheduler=t.scheduler,
                scaler=t.scaler if t.scaler.is_enabled() else None,
                iteration=t.iter + 1, rng=rng, hooks=state["hooks"], config=self.config,
                world_size=comm.get_world_size())
            logger.info("Saved checkpoint %s (iteration %d)", path, t.iter + 1)
        comm.barrier()

    def after_step(self) -> None:
        done = self.trainer.iter + 1
        keep = self.keep_every > 0 and done % self.keep_every == 0
        if done == self.trainer.max_iter or (self.period > 0 and done % self.period == 0) or keep:
            self.save(self.last_path)
            if keep and comm.is_main_process():
                # A hard link would share the inode that the next atomic save replaces; copy.
                import shutil

                shutil.copyfile(self.last_path, self.output_dir / f"model_{done:07d}.pth")

    def _save_on_data_error(self, e: TrainingDataError) -> None:
        t = self.trainer
        rng = getattr(self, "_step_rng", None)
        if rng is None:  # DDP: the other ranks are blocked in a collective; nothing to save safely
            return
        state = t.state_dict()
        save_checkpoint(self.last_path, t.model, optimizer=t.optimizer, scheduler=t.scheduler,
                        scaler=t.scaler if t.scaler.is_enabled() else None,
                        iteration=e.iteration, rng=[rng], hooks=state["hooks"], config=self.config,
                        world_size=1)
        if e.micro_batches_done:
            logger.warning("%s: written after %d of %d micro-batches of iteration %d; a resumed run "
                           "is exact except for their buffer updates", self.last_path,
                           e.micro_batches_done, t.accum_steps, e.iteration + 1)
        e.args = (f"{e.args[0]} (training stopped before iteration {e.iteration + 1}; "
                  f"{self.last_path} holds the state after {e.iteration}: fix the file, then rerun "
                  "with resume=true)",)

    def after_train(self) -> None:
        t = self.trainer
        exc = getattr(t, "exception", None)
        if isinstance(exc, TrainingDataError) and comm.is_main_process():
            self._save_on_data_error(exc)
            return
        if t.iter < t.max_iter or not comm.is_main_process():
            return  # stopped early (exception): keep last.pth only
        save_checkpoint(self.output_dir / "model_final.pth", t.model, iteration=t.max_iter,
                        config=self.config, world_size=comm.get_world_size(), rng=[])
        logger.info("Saved %s", self.output_dir / "model_final.pth")


def resume_from_checkpoint(trainer: Any, path: str | os.PathLike) -> int:
    """Restore model, optimizer, scheduler, scaler, hook states and RNG from ``path``.

    Returns:
        The iteration to continue from (number of completed iterations).
    """
    obj = load_checkpoint(path, map_location="cpu")
    if obj.get("optimizer") is None:
        raise CheckpointError(f"{path}: holds only weights (no optimizer state); cannot resume from "
                              "it. Use checkpoint=PATH to initialise a new run from these weights "
                              "instead.")
    for key in ("model", "iteration"):
        if key not in obj:
            raise CheckpointError(f"{path}: not a vosbench training checkpoint (no {key!r}); cannot "
                                  "resume from it")
    try:
        unwrap_model(trainer.model).load_state_dict(obj["model"])
        trainer.load_state_dict({
            "iteration": obj["iteration"], "hooks": obj.get("hooks", {}),
            "optimizer": obj["optimizer"], "scheduler": obj.get("scheduler"),
            "scaler": obj.get("scaler")})
    except (RuntimeError, KeyError, ValueError, TypeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{path}: does not match this run's method/optimizer ({first}); "
                              "resume with the config it was written with, or start a new "
                              "output_dir") from e
    rng = obj.get("rng") or []
    rank, world = comm.get_rank(), comm.get_world_size()
    if len(rng) == world:
        set_rank_random_state(trainer, rng[rank], str(path))
    elif rng:
        logger.warning("%s was saved by %d process(es), resuming with %d: RNG streams differ from "
                       "an uninterrupted run", path, len(rng), world)
        set_rank_random_state(trainer, rng[0], str(path))
    return int(obj["iteration"])


class EvalHook(HookBase):
    """Runs ``eval_fn() -> dict[str, float]`` every ``period`` iterations and after the last one.

    ``eval_fn`` runs on every rank (inference is sharded across ranks and merged on rank 0).
    The results are kept in ``self.history`` and exposed as ``trainer.latest_eval =
    (iteration, results)`` for ``MetricsLogger``.
    """

    def __init__(self, period: int, eval_fn: Callable[[], dict[str, float]]) -> None:
        self.period = int(period)
        self.eval_fn = eval_fn
        self.history: list[dict[str, Any]] = []

    def _do_eval(self) -> None:
        done = self.trainer.iter + 1
        was_training = self.trainer.model.training
        results = self.eval_fn()
        self.trainer.model.train(was_training)
        self.history.append({"iteration": done, **results})
        self.trainer.latest_eval = (done, results)
        if comm.is_main_process():
            logger.info("Validation at iteration %d: %s", done,
                        ", ".join(f"{k}={v:.4f}" for k, v in results.items() if isinstance(v, float)))

    def after_step(self) -> None:
        done = self.trainer.iter + 1
        if self.period > 0 and (done % self.period == 0 or done == self.trainer.max_iter):
            self._do_eval()

    def state_dict(self) -> dict[str, Any]:
        return {"history": json.dumps(self.history)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.history = json.loads(state.get("history", "[]"))


class MetricsLogger(HookBase):
    """Averages ``trainer.metrics`` over ``period`` iterations (and across ranks) and writes them
    to ``<output_dir>/metrics.jsonl`` and TensorBoard (``<output_dir>/tb``) on rank 0.

    Each JSON line is ``{"iteration": completed steps, "total_loss": ..., "loss_*": ..., "lr": ...,
    "time": ..., "data_time": ..., "eta_seconds": ...}``; validation results are written as
    ``{"iteration": ..., "split": "val", <metric>: ...}`` lines.
    """

    def __init__(self, output_dir: str | os.PathLike, period: int = 20, *,
                 tensorboard: bool = True) -> None:
        self.output_dir = Path(output_dir)
        self.period = max(1, int(period))
        self.use_tb = tensorboard
        self._tb = None
        self._sums: dict[str, float] = {}
        self._count = 0

    def before_train(self) -> None:
        if not comm.is_main_process():
            return
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self._truncate_after(self.trainer.start_iter)
        if self.use_tb:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(self.output_dir / "tb"),
                                         purge_step=self.trainer.start_iter + 1)
            except ImportError as e:  # pragma: no cover - tensorboard is a dependency
                logger.warning("TensorBoard logging disabled: %s", e)

    def _truncate_after(self, iteration: int) -> None:
        """On resume, drop the records a killed run wrote after its last checkpoint (they are
        about to be written again), as TensorBoard's ``purge_step`` does for the event files."""
        path = self.output_dir / "metrics.jsonl"
        if not path.is_file():
            return
        lines = path.read_text().splitlines()
        keep = []
        for line in lines:
            try:
                if json.loads(line).get("iteration", 0) <= iteration:
                    keep.append(line)
            except json.JSONDecodeError:  # a line cut short by the kill
                continue
        if len(keep) != len(lines):
            from vosbench.utils.io import atomic_write

            with atomic_write(path, "w") as f:
                f.write("".join(k + "\n" for k in keep))

    def _write(self, record: dict[str, Any], prefix: str = "") -> None:
        if not comm.is_main_process():
            return
        # Non-finite values (a T_mean with no frames...) become null: strict JSON.
        clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                 for k, v in record.items()}
        with open(self.output_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(clean) + "\n")
        if self._tb is not None:
            step = record["iteration"]
            for k, v in record.items():
                if k not in ("iteration", "split") and isinstance(v, (int, float)) and math.isfinite(v):
                    self._tb.add_scalar(f"{prefix}{k}", v, step)

    def after_step(self) -> None:
        t = self.trainer
        for k, v in t.metrics.items():
            self._sums[k] = self._sums.get(k, 0.0) + float(v)
        self._count += 1
        done = t.iter + 1
        if done % self.period == 0 or done == t.max_iter:
            keys = sorted(self._sums)
            vals = torch.tensor([self._sums[k] / self._count for k in keys], dtype=torch.float64)
            if comm.is_distributed():
                torch.distributed.all_reduce(vals)
                vals /= comm.get_world_size()
            record = {"iteration": done, **{k: float(v) for k, v in zip(keys, vals.tolist())}}
            if "eta_seconds" in t.metrics:
                record["eta_seconds"] = float(t.metrics["eta_seconds"])  # latest, not averaged
            self._write(record, prefix="train/")
            if comm.is_main_process():  # one line per log period, whatever the trainer config
                shown = " ".join(f"{k} {record[k]:.4g}" for k in ("total_loss", *sorted(
                    k for k in record if k.startswith("loss_"))) if k in record)
                eta = record.get("eta_seconds")
                logger.info("iter %d/%d %s lr %.2e time %.2fs%s", done, t.max_iter, shown,
                            record.get("lr", float("nan")), record.get("time", float("nan")),
                            f" eta {int(eta) // 60}:{int(eta) % 60:02d}" if eta is not None else "")
            self._sums, self._count = {}, 0
        latest = getattr(t, "latest_eval", None)
        if latest is not None and latest[0] == done:
            self._write({"iteration": done, "split": "val",
                         **{k: v for k, v in latest[1].items() if isinstance(v, (int, float))}},
                        prefix="val/")

    def after_train(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None


class ProgressBar(HookBase):
    """A tqdm bar over iterations (rank 0) showing the loss, the LR and the ETA."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._bar = None

    def before_train(self) -> None:
        if self.enabled and comm.is_main_process():
            from tqdm.auto import tqdm

            self._bar = tqdm(total=self.trainer.max_iter, initial=self.trainer.start_iter,
                             desc="train", dynamic_ncols=True)

    def after_step(self) -> None:
        if self._bar is None:
            return
        m = self.trainer.metrics
        post = {}
        if "total_loss" in m:
            post["loss"] = f"{m['total_loss']:.4f}"
        if "lr" in m:
            post["lr"] = f"{m['lr']:.2e}"
        self._bar.set_postfix(post, refresh=False)
        self._bar.update(1)

    def after_train(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
