"""A small training loop with hooks (after detectron2 ``engine/train_loop.py``).

``TrainerBase.train(start_iter, max_iter)`` calls, for each iteration::

    before_step -> run_step (data -> training_step -> backward [-> after_backward] -> step) -> after_step

and ``before_train`` / ``after_train`` around the loop. Everything else (checkpoints, LR schedule,
validation, logs, progress bar, timing) is a hook in ``vosbench.engine.hooks``.

Iteration counting: inside a step ``trainer.iter`` is the 0-based index of the step being run;
after the loop ``trainer.iter == max_iter``. A checkpoint written in ``after_step`` stores
``iteration = trainer.iter + 1`` (completed steps), and resuming calls ``train(iteration, ...)``.
"""
from __future__ import annotations

import logging
import time
import weakref
from contextlib import nullcontext
from typing import Any, Iterable, Sequence

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from vosbench.engine.checkpoint import unwrap_model
from vosbench.structures import VideoBatch
from vosbench.utils.io import DataError

logger = logging.getLogger(__name__)


class HookBase:
    """A callback run by ``TrainerBase`` at five points of the loop.

    ``self.trainer`` is set (as a weak proxy) when the hook is registered. Hooks that carry
    state across a resume (a best score, an EMA...) return it from ``state_dict``; it is saved in
    the checkpoint under the hook's class name and given back through ``load_state_dict``.
    """

    trainer: "TrainerBase"

    def before_train(self) -> None:
        """Called once before the first iteration."""

    def after_train(self) -> None:
        """Called once after the last iteration, also when training stopped with an exception."""

    def before_step(self) -> None:
        """Called before each iteration."""

    def after_backward(self) -> None:
        """Called after the gradients are computed and before the optimizer step."""

    def after_step(self) -> None:
        """Called after each iteration (optimizer stepped, ``trainer.metrics`` filled)."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""


class TrainerBase:
    """Iterates ``run_step`` between ``start_iter`` and ``max_iter`` and calls the hooks.

    Attributes:
        iter: index of the current iteration (``max_iter`` after the loop).
        start_iter, max_iter: the bounds given to ``train``.
        metrics: ``name -> float`` of the latest iteration (losses, ``lr``, ``time``...), read by
            the logging hooks. Hooks may add entries (e.g. validation scores).
    """

    def __init__(self) -> None:
        self._hooks: list[HookBase] = []
        self.iter = 0
        self.start_iter = 0
        self.max_iter = 0
        self.metrics: dict[str, float] = {}

    @property
    def hooks(self) -> list[HookBase]:
        return list(self._hooks)

    def register_hooks(self, hooks: Iterable[HookBase | None]) -> None:
        """Append hooks (``None`` entries are skipped); they run in registration order."""
        for h in hooks:
            if h is None:
                continue
            if not isinstance(h, HookBase):
                raise TypeError(f"hooks must be HookBase instances, got {type(h).__name__}")
            # A weak proxy avoids a trainer <-> hook reference cycle (as detectron2 does).
            h.trainer = weakref.proxy(self)
            self._hooks.append(h)

    def train(self, start_iter: int, max_iter: int) -> None:
        """Run iterations ``start_iter .. max_iter - 1``."""
        if not 0 <= start_iter <= max_iter:
            raise ValueError(f"need 0 <= start_iter <= max_iter, got {start_iter}, {max_iter}")
        logger.info("Starting training from iteration %d to %d", start_iter, max_iter)
        self.iter = self.start_iter = start_iter
        self.max_iter = max_iter
        self.exception: BaseException | None = None  # what stopped the loop (hooks read it)
        try:
            self.before_train()
            for self.iter in range(start_iter, max_iter):
                self.before_step()
                self.run_step()
                self.after_step()
            # After a full loop ``iter`` points past the last step, as detectron2 does.
            self.iter = max_iter
        except BaseException as e:
            self.exception = e
            raise
        finally:
            self.after_train()

    def run_step(self) -> None:
        raise NotImplementedError

    def before_train(self) -> None:
        for h in self._hooks:
            h.before_train()

    def after_train(self) -> None:
        for h in self._hooks:
            h.after_train()

    def before_step(self) -> None:
        self.metrics = {}
        for h in self._hooks:
            h.before_step()

    def after_backward(self) -> None:
        for h in self._hooks:
            h.after_backward()

    def after_step(self) -> None:
        for h in self._hooks:
            h.after_step()

    def state_dict(self) -> dict[str, Any]:
        """``{"iteration": self.iter, "hooks": {hook class name: state}}`` (checkpoints written in
        ``after_step`` store ``iteration = self.iter + 1``, the number of completed steps)."""
        hooks = {}
        for h in self._hooks:
            s = h.state_dict()
            if s:
                name = type(h).__qualname__
                if name in hooks:
                    raise ValueError(f"two hooks of type {name} both carry state; cannot save them")
                hooks[name] = s
        return {"iteration": self.iter, "hooks": hooks}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.iter = int(state.get("iteration", 0))
        hook_states = state.get("hooks", {})
        for h in self._hooks:
            name = type(h).__qualname__
            if name in hook_states:
                h.load_state_dict(hook_states[name])


class TrainingDataError(DataError):
    """A data error while training (a file that went bad after the pre-flight check).

    Attributes:
        iteration: the iteration whose batch could not be loaded (= completed iterations).
        micro_batches_done: micro-batches of that iteration already forwarded (0: the model,
            buffers and RNG are exactly as after ``iteration`` completed steps).
    """

    def __init__(self, msg: str, *, iteration: int, micro_batches_done: int = 0) -> None:
        super().__init__(msg)
        self.iteration = int(iteration)
        self.micro_batches_done = int(micro_batches_done)


def worker_message(e: BaseException) -> str:
    """The original one-line message of an exception re-raised from a DataLoader worker
    (``"Caught DataError in DataLoader worker process 0. Original Traceback ... DataError: msg"``)."""
    text = str(e)
    if "Original Traceback" not in text:
        return text
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    name = type(e).__name__
    for ln in reversed(lines):
        head, sep, rest = ln.partition(": ")
        if sep and head.split(".")[-1] in (name, "DataError"):
            return rest.strip()
    return lines[-1].strip()


class TrainingStepModule(nn.Module):
    """Makes ``method.training_step`` the ``forward`` of a module, so DDP can wrap it.

    DDP prepares its gradient all-reduce inside ``forward``; calling ``training_step`` on the bare
    method would bypass it. The parameters are the method's own (no copy).
    """

    def __init__(self, method: nn.Module) -> None:
        super().__init__()
        self.module = method

    def forward(self, batch: VideoBatch) -> dict[str, Tensor]:
        return self.module.training_step(batch)


def resolve_amp(amp: Any, device: torch.device) -> torch.dtype | None:
    """Map the ``amp`` option to an autocast dtype (None = full precision).

    ``None``/``"auto"``: bf16 on a CUDA device that supports it, else fp16 on CUDA; off on CPU
    (CPU autocast is slower than fp32 for the convolutions these methods use).
    ``"bf16"``, ``"fp16"``: forced; ``False``/``"off"``/``"none"``: disabled.
    """
    if amp is None or amp == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if amp is False or (isinstance(amp, str) and amp.lower() in ("off", "none", "false", "fp32")):
        return None
    if amp is True:
        return resolve_amp(None, device) or (torch.bfloat16 if device.type == "cpu" else None)
    table = {"bf16": torch.bfloat16, "bfloat16": torch.bfloat16, "fp16": torch.float16,
             "float16": torch.float16}
    if isinstance(amp, str) and amp.lower() in table:
        dtype = table[amp.lower()]
        if dtype == torch.float16 and device.type != "cuda":
            raise ValueError("amp=fp16 needs a CUDA device; use amp=bf16 or amp=off on CPU")
        return dtype
    raise ValueError(f"amp must be auto, bf16, fp16 or off, got {amp!r}")


class SimpleTrainer(TrainerBase):
    """data -> ``training_step`` -> sum of ``loss_*`` -> backward -> (clip) -> optimizer step.

    Args:
        model: a ``VideoMethod`` or ``DistributedDataParallel(TrainingStepModule(method))``.
        data_loader: an iterable of ``VideoBatch`` that does not end (see
            ``vosbench.engine.data.InfiniteLoader``); if it does end it is iterated again.
        optimizer: a torch optimizer over the trainable parameters.
        scheduler: optional LR scheduler, stepped once per iteration (iteration-based schedules,
            as in detectron2) by an ``LRScheduler`` hook registered before ``hooks``.
        grad_clip: max global L2 norm of the gradients (None: no clipping).
        amp: autocast mode, see ``resolve_amp`` (default: bf16/fp16 on GPU, off on CPU).
        accum_steps: micro-batches accumulated into one optimizer step (each loss is divided by
            ``accum_steps`` so the step equals one of an ``accum_steps``-times larger batch).
        hooks: hooks to register.
    """

    def __init__(
        self,
        model: nn.Module,
        data_loader: Iterable[VideoBatch],
        optimizer: torch.optim.Optimizer,
        *,
        scheduler: Any = None,
        grad_clip: float | None = None,
        amp: Any = None,
        accum_steps: int = 1,
        hooks: Sequence[HookBase] = (),
    ) -> None:
        super().__init__()
        if accum_steps < 1:
            raise ValueError(f"accum_steps must be >= 1, got {accum_steps}")
        if grad_clip is not None and grad_clip <= 0:
            raise ValueError(f"grad_clip must be positive or None, got {grad_clip}")
        self.model = model
        self.method = unwrap_model(model)
        self.data_loader = data_loader
        self._data_iter = None
        self._micro_done = 0
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.grad_clip = grad_clip
        self.accum_steps = int(accum_steps)
        self.device = self.method.device
        self.amp_dtype = resolve_amp(amp, self.device)
        # Loss scaling is only needed for fp16 (bf16 has fp32's exponent range).
        self.scaler = torch.amp.GradScaler(
            self.device.type, enabled=self.amp_dtype == torch.float16)
        from vosbench.engine.hooks import LRScheduler  # hooks.py imports this module

        self.register_hooks([LRScheduler()] if scheduler is not None else [])
        self.register_hooks(hooks)

    # ------------------------------------------------------------------ data
    def _next_batch(self) -> VideoBatch:
        try:
            if self._data_iter is None:
                self._data_iter = iter(self.data_loader)
            try:
                return next(self._data_iter)
            except StopIteration:
                self._data_iter = iter(self.data_loader)
                return next(self._data_iter)
        except DataError as e:
            # A DataLoader worker re-raises the worker's exception with its whole traceback in
            # the message: keep the one line that names the file.
            raise TrainingDataError(worker_message(e), iteration=self.iter,
                                    micro_batches_done=self._micro_done) from e

    def _forward(self, batch: VideoBatch) -> dict[str, Tensor]:
        if isinstance(self.model, DistributedDataParallel):
            return self.model(batch)
        return self.method.training_step(batch)

    # ------------------------------------------------------------------ step
    def run_step(self) -> None:
        self.model.train()
        start = time.perf_counter()
        data_time = 0.0
        totals: dict[str, float] = {}
        for micro in range(self.accum_steps):
            self._micro_done = micro  # micro-batches already forwarded in this step
            t0 = time.perf_counter()
            batch = self._next_batch()
            if isinstance(batch, VideoBatch):
                batch = batch.to(self.device)
            data_time += time.perf_counter() - t0

            last = micro == self.accum_steps - 1
            # Only the last micro-batch all-reduces gradients under DDP.
            sync = (self.model.no_sync() if isinstance(self.model, DistributedDataParallel)
                    and not last else nullcontext())
            with sync:
                with torch.autocast(self.device.type, dtype=self.amp_dtype,
                                    enabled=self.amp_dtype is not None):
                    loss_dict = self._forward(batch)
                loss = self._sum_losses(loss_dict)
                self.scaler.scale(loss / self.accum_steps).backward()
            for k, v in loss_dict.items():
                totals[k] = totals.get(k, 0.0) + float(v.detach()) / self.accum_steps
            totals["total_loss"] = totals.get("total_loss", 0.0) + float(loss.detach()) / self.accum_steps

        self.after_backward()
        if self.grad_clip is not None:
            self.scaler.unscale_(self.optimizer)
            params = [p for g in self.optimizer.param_groups for p in g["params"] if p.grad is not None]
            grad_norm = torch.nn.utils.clip_grad_norm_(params, self.grad_clip)
            totals["grad_norm"] = float(grad_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        totals["lr"] = float(self.optimizer.param_groups[0]["lr"])
        totals["data_time"] = data_time
        totals["time"] = time.perf_counter() - start
        self.metrics.update(totals)

    def _sum_losses(self, loss_dict: dict[str, Tensor]) -> Tensor:
        if not isinstance(loss_dict, dict) or not loss_dict:
            raise TypeError(
                f"{type(self.method).__name__}.training_step must return a non-empty dict of "
                f"'loss_*' tensors, got {type(loss_dict).__name__}")
        bad = [k for k in loss_dict if not k.startswith("loss_")]
        if bad:
            raise KeyError(f"{type(self.method).__name__}.training_step returned non-loss keys {bad}; "
                           "every key must start with 'loss_'")
        loss = sum(v.float() for v in loss_dict.values())
        if not torch.isfinite(loss).all():
            raise FloatingPointError(
                f"non-finite loss at iteration {self.iter}: "
                + ", ".join(f"{k}={float(v.detach()):.4g}" for k, v in loss_dict.items()))
        return loss

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["optimizer"] = self.optimizer.state_dict()
        state["scheduler"] = self.scheduler.state_dict() if self.scheduler is not None else None
        state["scaler"] = self.scaler.state_dict() if self.scaler.is_enabled() else None
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        if state.get("optimizer") is not None:
            self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state.get("scheduler") is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler.is_enabled() and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
