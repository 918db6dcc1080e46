"""``train(cfg)``: the whole training job behind ``tools/train.py``, in plain Python.

Reading order: ``train`` builds the method (``vosbench.config.build(cfg.method, METHODS)``), the
clip loader, optimizer and scheduler (``build_optimizer`` / ``build_scheduler``), the hooks
(``default_hooks``), optionally resumes from ``<output_dir>/last.pth``, then runs
``SimpleTrainer.train``.

The trainer config (``configs/trainer/default.yaml``) documents every key.
"""
from __future__ import annotations

import importlib
import inspect
import logging
import math
import random
import sys
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch
from torch import nn

from vosbench.config import ConfigError, build
from vosbench.engine import comm
from vosbench.engine.checkpoint import load_model_weights, plain_config
from vosbench.engine.data import InfiniteLoader, preflight_dataset
from vosbench.engine.hooks import (
    EvalHook,
    IterationTimer,
    MetricsLogger,
    PeriodicCheckpointer,
    ProgressBar,
    resume_from_checkpoint,
)
from vosbench.engine.train_loop import HookBase, SimpleTrainer, TrainingStepModule

logger = logging.getLogger("vosbench")

OPTIMIZER_PREFIX = "torch.optim."
SCHEDULER_PREFIX = "torch.optim.lr_scheduler."


# ----------------------------------------------------------------------------- helpers
def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def as_config(cfg: Any):
    """Accept a DictConfig or a plain mapping; return a DictConfig."""
    from omegaconf import DictConfig, OmegaConf

    return cfg if isinstance(cfg, DictConfig) else OmegaConf.create(dict(cfg))


def _resolve_torch_class(target: str, prefix: str, base: type, what: str) -> type:
    """Import ``target`` (a dotted path) only if it lies in ``prefix`` and subclasses ``base``."""
    if not isinstance(target, str) or not target.startswith(prefix):
        raise ConfigError(f"{what} _target_ must name a class in {prefix}*, got {target!r}")
    module_name, _, attr = target.rpartition(".")
    try:
        obj = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as e:
        raise ConfigError(f"{what} _target_ {target!r} does not exist: {e}") from e
    if not (inspect.isclass(obj) and issubclass(obj, base)):
        raise ConfigError(f"{what} _target_ {target!r} is not a {base.__name__} subclass")
    return obj


def _leaf_kwargs(d: Mapping[str, Any], what: str) -> dict[str, Any]:
    kwargs = {k: v for k, v in d.items() if k != "_target_"}
    for k, v in kwargs.items():
        if isinstance(v, Mapping) and "_target_" in v:
            raise ConfigError(f"{what}.{k}: nested _target_ is not allowed")
    return kwargs


def build_optimizer(cfg: Mapping[str, Any], model: nn.Module) -> torch.optim.Optimizer:
    """``cfg = {_target_: torch.optim.X, **kwargs}`` over the parameters that require grad.

    A method may define ``optimizer_param_groups(base_lr) -> list[dict]`` to set per-group LRs
    (e.g. a smaller LR for a pretrained backbone); otherwise one group holds every trainable
    parameter.
    """
    d = plain_config(cfg)
    cls = _resolve_torch_class(d.get("_target_"), OPTIMIZER_PREFIX, torch.optim.Optimizer,
                               "trainer.optimizer")
    if d["_target_"].startswith(SCHEDULER_PREFIX):
        raise ConfigError(f"trainer.optimizer _target_ {d['_target_']!r} is a scheduler")
    kwargs = _leaf_kwargs(d, "trainer.optimizer")
    groups_fn = getattr(model, "optimizer_param_groups", None)
    if callable(groups_fn):
        params = groups_fn(kwargs.get("lr"))
    else:
        params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ConfigError(f"{type(model).__name__} has no trainable parameters")
    try:
        return cls(params, **kwargs)
    except TypeError as e:
        raise ConfigError(f"trainer.optimizer: {d['_target_']}: {e}") from e


def build_scheduler(cfg: Mapping[str, Any] | None, optimizer: torch.optim.Optimizer, *,
                    warmup_iters: int = 0, warmup_factor: float = 0.001) -> Any:
    """An iteration-based LR scheduler ``{_target_: torch.optim.lr_scheduler.X, **kwargs}``.

    With ``warmup_iters > 0`` a linear warmup from ``warmup_factor * lr`` is chained in front
    (``SequentialLR``). ``cfg=None`` and no warmup gives no scheduler (constant LR).
    """
    d = plain_config(cfg)
    main = None
    if d:
        cls = _resolve_torch_class(d.get("_target_"), SCHEDULER_PREFIX,
                                   torch.optim.lr_scheduler.LRScheduler, "trainer.scheduler")
        try:
            main = cls(optimizer, **_leaf_kwargs(d, "trainer.scheduler"))
        except TypeError as e:
            raise ConfigError(f"trainer.scheduler: {d['_target_']}: {e}") from e
    if warmup_iters <= 0:
        return main
    warm = torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=warmup_factor, end_factor=1.0,
                                             total_iters=warmup_iters)
    if main is None:
        return warm
    return torch.optim.lr_scheduler.SequentialLR(optimizer, [warm, main], milestones=[warmup_iters])


def setup_logging(output_dir: Path | None = None) -> list[logging.Handler]:
    """Log INFO to stderr (rank 0 only) and to ``<output_dir>/log.txt`` unless a file log exists.

    Returns:
        The handlers added (the caller removes them with ``remove_handlers`` when the job ends,
        so jobs run one after another in one process do not log into each other's files).
    """
    root = logging.getLogger()
    added: list[logging.Handler] = []
    if not root.handlers:
        h = logging.StreamHandler(sys.stderr)
        h.setFormatter(logging.Formatter("[%(asctime)s %(name)s] %(message)s", "%H:%M:%S"))
        added.append(h)
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)
    if not comm.is_main_process():
        logging.getLogger("vosbench").setLevel(logging.WARNING)
    if output_dir is not None and comm.is_main_process():
        output_dir.mkdir(parents=True, exist_ok=True)
        # Under Hydra the job log (<output_dir>/<tool>.log) is already a file handler.
        if not any(isinstance(h, logging.FileHandler) for h in root.handlers):
            fh = logging.FileHandler(output_dir / "log.txt")
            fh.setFormatter(logging.Formatter("[%(asctime)s %(name)s %(levelname)s] %(message)s"))
            added.append(fh)
    for h in added:
        root.addHandler(h)
    return added


def remove_handlers(handlers: list[logging.Handler]) -> None:
    root = logging.getLogger()
    for h in handlers:
        root.removeHandler(h)
        h.close()


def build_method(cfg: Any, device: torch.device | str = "cpu", *, covered_by: str | None = None,
                 reports: list | None = None) -> nn.Module:
    """Build ``cfg.method`` through the METHODS registry, under the weights policy.

    The shipped methods register like any third-party plugin (the ``vosbench.plugins`` entry
    points of ``setup.py``), loaded on the first registry miss: the core imports no method.

    Pretrained files follow ``vosbench.models.weights``: a missing one is an error unless the
    top-level ``allow_random_init`` is true. ``covered_by``: a checkpoint the caller loads
    strictly right after (``load_covering_checkpoint``), so missing pretrained files are
    deferred to it. ``reports`` (a list) receives the ``LoadReport`` of every pretrained file.
    """
    from vosbench.models.weights import weights_policy
    from vosbench.registry import METHODS

    with weights_policy(allow_random_init=bool(cfg.get("allow_random_init", False)),
                        covered_by=covered_by or None) as got:
        method = build(cfg.method, METHODS)
    if reports is not None:
        reports.extend(got)
    return method.to(device)


def load_covering_checkpoint(method: nn.Module, path: str, reports: list) -> None:
    """Load ``path`` strictly into ``method`` and check it covered every deferred pretrained
    file (``vosbench.models.weights.verify_covered``); logs what it loaded."""
    from vosbench.models.weights import verify_covered

    load_model_weights(method, path)  # strict: no missing, no unexpected key
    verify_covered(method, reports)
    logger.info("weights: checkpoint %s loaded strictly into %s: all %d tensors (no missing, no "
                "unexpected keys)", path, type(method).__name__, len(method.state_dict()))


def make_eval_fn(cfg: Any, method: nn.Module, device: torch.device):
    """A closure running sharded inference + evaluation on ``cfg.trainer.val_split``."""
    state: dict[str, Any] = {}

    def eval_fn() -> dict[str, float]:
        from vosbench.data import build_dataset
        from vosbench.engine.inference import inference_on_dataset
        from vosbench.metrics import build_evaluator

        if "dataset" not in state:
            state["dataset"] = build_dataset(cfg.dataset, split=cfg.trainer.val_split)
        ds = state["dataset"]
        evaluator = build_evaluator(ds.metric)
        method.eval()
        return inference_on_dataset(method, ds, evaluator=evaluator, device=device,
                                    max_videos=cfg.trainer.eval_max_videos, progress=False)

    return eval_fn


def default_hooks(cfg: Any, output_dir: Path, method: nn.Module, device: torch.device) -> list[HookBase]:
    """Timer, (validation), logger, progress bar, checkpointer: in that order (see hooks.py)."""
    t = cfg.trainer
    hooks: list[HookBase] = [IterationTimer()]
    if t.eval_period and t.eval_period > 0:
        hooks.append(EvalHook(t.eval_period, make_eval_fn(cfg, method, device)))
    hooks += [
        MetricsLogger(output_dir, t.log_period, tensorboard=t.tensorboard),
        ProgressBar(t.progress),
        PeriodicCheckpointer(output_dir, t.checkpoint_period, config=plain_config(cfg),
                             keep_every=t.get("keep_every", 0)),
    ]
    return hooks


# ----------------------------------------------------------------------------- jobs
def run_job(job: Callable[[Any, torch.device], dict[str, Any]], cfg: Any) -> dict[str, Any]:
    """Resolve ``cfg``, join the process group (torchrun) and log to ``output_dir`` around ``job``."""
    cfg = as_config(cfg)
    device = comm.init_distributed(cfg.device)
    handlers = setup_logging(Path(cfg.output_dir))
    try:
        return job(cfg, device)
    finally:
        remove_handlers(handlers)


def epoch_schedule(t: Any, dataset: Any) -> tuple[int, Any, dict]:
    """The iteration schedule of a trainer config, converting an epoch-based one.

    ``trainer.epochs`` null: ``(max_iter, scheduler, clip)`` as configured. Set (papers that count
    epochs, e.g. MaskProp's 20 epochs on YouTube-VIS): an epoch is one clip per frame of the
    training split (the per-frame epoch of the image-detector / MaskTrack R-CNN loaders), so
    ``clip.samples_per_epoch`` = number of frames, ``max_iter = epochs x iterations per epoch``
    (iterations per epoch = ceil(frames / (batch_size x accum_steps))) and the scheduler's
    ``milestones`` are read in epochs and converted alike.
    """
    clip = dict(plain_config(t.clip))
    sched = plain_config(t.scheduler)
    epochs = t.get("epochs")
    if not epochs:
        return int(t.max_iter), t.scheduler, clip
    videos = getattr(dataset, "videos", None)
    frames = (sum(len(v.frame_paths) for v in videos) if videos is not None
              else sum(len(dataset[i]) for i in range(len(dataset))))
    per_epoch = max(1, math.ceil(frames / (int(t.batch_size) * int(t.accum_steps))))
    clip["samples_per_epoch"] = frames
    if sched and "milestones" in sched:
        sched = {**sched, "milestones": [int(round(m * per_epoch)) for m in sched["milestones"]]}
    logger.info("trainer.epochs=%s: %d training frames -> %d iterations per epoch, max_iter %d, "
                "milestones %s", epochs, frames, per_epoch, int(epochs * per_epoch),
                sched.get("milestones") if sched else None)
    return int(round(epochs * per_epoch)), sched, clip


# ----------------------------------------------------------------------------- train
def train(cfg: Any) -> dict[str, Any]:
    """Train ``cfg.method`` on ``cfg.dataset`` with ``cfg.trainer``; single process or torchrun DDP.

    Writes ``<output_dir>/last.pth`` (full state, for ``resume=true``), ``model_final.pth``
    (weights + config), ``metrics.jsonl``, ``tb/`` and ``log.txt``.

    Returns:
        ``{"output_dir", "iteration", "last_checkpoint", "final_checkpoint", "eval"}``.
    """
    return run_job(_train, cfg)


def _train(cfg: Any, device: torch.device) -> dict[str, Any]:
    from vosbench.data import ClipDataset, build_dataset, collate_clips

    t = cfg.trainer
    rank, world = comm.get_rank(), comm.get_world_size()
    output_dir = Path(cfg.output_dir)
    if comm.is_main_process():
        output_dir.mkdir(parents=True, exist_ok=True)
    if t.batch_size % world:
        raise ConfigError(f"trainer.batch_size={t.batch_size} (global) is not divisible by the "
                          f"{world} processes")

    # Fail in the first second, not at iteration 385: every file of the training split is
    # checked (vosbench.engine.data.preflight_dataset) before the model is built.
    dataset = preflight_dataset(cfg.dataset, split=t.train_split, level=t.get("data_check", "header"))
    # The same seed on every rank for the model init (DDP also broadcasts rank 0's weights) ...
    seed_everything(int(cfg.seed))
    # A checkpoint loaded strictly right after the build (checkpoint=, or resume's last.pth)
    # overwrites every tensor: pretrained files are not needed then (vosbench.models.weights).
    resume_file = Path(cfg.output_dir) / "last.pth"
    cover = cfg.checkpoint or (str(resume_file) if cfg.resume and resume_file.is_file() else None)
    weight_reports: list = []
    method = build_method(cfg, device, covered_by=cover, reports=weight_reports)
    if not getattr(method, "trainable", True):
        raise ConfigError(f"method {cfg.method.name!r} is training-free (trainable=False); "
                          "use tools/test.py")
    if cfg.checkpoint:
        load_covering_checkpoint(method, cfg.checkpoint, weight_reports)
        logger.info("Initialised weights from %s", cfg.checkpoint)
    # ... and a different stream per rank for training-time randomness.
    seed_everything(int(cfg.seed) + rank)

    optimizer = build_optimizer(t.optimizer, method)
    max_iter, sched_cfg, clip_cfg = epoch_schedule(t, dataset)  # trainer.epochs -> iterations
    scheduler = build_scheduler(sched_cfg, optimizer, warmup_iters=t.warmup_iters,
                                warmup_factor=t.warmup_factor)
    model: nn.Module = method
    if world > 1:
        model = torch.nn.parallel.DistributedDataParallel(
            TrainingStepModule(method), device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=bool(t.get("find_unused_parameters", False)))

    hooks = default_hooks(cfg, output_dir, method, device)
    trainer = SimpleTrainer(model, [], optimizer, scheduler=scheduler, grad_clip=t.grad_clip,
                            amp=t.amp, accum_steps=t.accum_steps, hooks=hooks)
    data_task = getattr(dataset, "task", None)
    if data_task is not None and data_task != getattr(method, "task", data_task):
        raise ConfigError(f"method {cfg.method.name!r} solves task {method.task!r} but dataset "
                          f"{cfg.dataset.name!r} is a {data_task!r} dataset")
    clips = ClipDataset(dataset, seed=int(cfg.seed), **clip_cfg)
    trainer.data_loader = loader = InfiniteLoader(
        clips, batch_size=t.batch_size // world, collate_fn=collate_clips,
        num_workers=t.num_workers, seed=int(cfg.seed), pin_memory=device.type == "cuda")

    # Resume last, right before the loop: the RNG state it restores must not be consumed by
    # anything built above.
    start_iter = 0
    last = output_dir / "last.pth"
    if cfg.resume:
        if last.is_file():
            start_iter = resume_from_checkpoint(trainer, last)
            from vosbench.models.weights import verify_covered

            verify_covered(method, weight_reports)  # resume loaded every tensor strictly
            logger.info("Resumed from %s at iteration %d", last, start_iter)
        else:
            logger.info("resume=true but %s does not exist: starting from scratch", last)
    loader.start_batch = start_iter * t.accum_steps
    if comm.is_main_process():
        # Written once everything above succeeded: a run that fails to start (a bad override on
        # resume) leaves the config.yaml that matches the run folder's checkpoints untouched.
        from omegaconf import OmegaConf

        from vosbench.utils.io import atomic_write

        with atomic_write(output_dir / "config.yaml", "w") as f:
            f.write(OmegaConf.to_yaml(cfg, resolve=True))
    logger.info("Training %s on %s (%d videos, %d clips/epoch) for %d iterations, global batch %d "
                "on %d process(es)", cfg.method.name, cfg.dataset.name, len(dataset), len(clips),
                max_iter, t.batch_size, world)
    trainer.train(start_iter, max_iter)

    eval_hooks = [h for h in trainer.hooks if isinstance(h, EvalHook)]
    result = {
        "output_dir": str(output_dir),
        "iteration": trainer.iter,
        "last_checkpoint": str(last),
        "final_checkpoint": str(output_dir / "model_final.pth"),
        "eval": eval_hooks[0].history[-1] if eval_hooks and eval_hooks[0].history else None,
    }
    comm.barrier()
    return result
