"""Checkpoints that load with ``torch.load(weights_only=True)``.

A training checkpoint is a plain dict of tensors and Python primitives::

    {
      "format": "vosbench-checkpoint", "version": 1,
      "model": state_dict,                  # the bare VideoMethod (never the DDP wrapper)
      "optimizer": state_dict | None, "scheduler": state_dict | None, "scaler": state_dict | None,
      "iteration": int,                     # number of completed iterations
      "rng": [per-rank RNG state],          # python / numpy / torch / cuda, as tensors and lists,
                                            # + "method" / "data": the generators the method and the
                                            # data pipeline own (``generator_states``)
      "hooks": {hook name: state},          # e.g. the best validation score so far
      "config": dict,                       # the resolved config of the run
      "world_size": int,
    }

Objects that ``weights_only`` refuses (numpy arrays, tuples of odd types, OmegaConf nodes) are
converted on save: RNG states become tensors and lists, the config a plain dict.
Writes are atomic (temporary file in the same folder, then ``os.replace``), so a run killed while
saving leaves the previous checkpoint intact.
"""
from __future__ import annotations

import json
import logging
import os
import random
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from vosbench.utils.io import atomic_write

CHECKPOINT_FORMAT = "vosbench-checkpoint"
CHECKPOINT_VERSION = 1

logger = logging.getLogger(__name__)


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used (truncated, foreign, not loadable with
    ``weights_only=True``, wrong keys); the message names the file."""


# ----------------------------------------------------------------------------- RNG states
def get_rng_state() -> dict[str, Any]:
    """Capture the python, numpy, torch and CUDA generators as ``weights_only``-safe values."""
    py_version, py_state, py_gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state: dict[str, Any] = {
        "python": {"version": int(py_version), "state": torch.tensor(py_state, dtype=torch.int64),
                   "gauss": py_gauss},
        "numpy": {"name": str(np_name), "keys": torch.from_numpy(np_keys.astype(np.int64)),
                  "pos": int(np_pos), "has_gauss": int(np_has_gauss), "gauss": float(np_gauss)},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore what ``get_rng_state`` captured."""
    py = state["python"]
    random.setstate((py["version"], tuple(int(v) for v in py["state"].tolist()), py["gauss"]))
    nps = state["numpy"]
    np.random.set_state((nps["name"], nps["keys"].numpy().astype(np.uint32), nps["pos"],
                         nps["has_gauss"], nps["gauss"]))
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        cuda = list(state["cuda"])
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)


# ------------------------------------------------------------------- owned random generators
_GENERATOR_TYPES = (np.random.Generator, np.random.RandomState, random.Random, torch.Generator)


def _generator_state(g: Any) -> dict[str, Any]:
    """One generator's state as ``weights_only``-safe values (a JSON string or a tensor)."""
    def plain(x):
        if isinstance(x, np.ndarray):
            return x.tolist()
        if isinstance(x, dict):
            return {k: plain(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [plain(v) for v in x]
        return x.item() if isinstance(x, np.generic) else x

    if isinstance(g, torch.Generator):
        return {"kind": "torch", "state": g.get_state()}
    if isinstance(g, np.random.Generator):  # PCG64 states are 128-bit ints: JSON keeps them exact
        return {"kind": "numpy_generator", "state": json.dumps(plain(g.bit_generator.state))}
    if isinstance(g, np.random.RandomState):
        return {"kind": "numpy_randomstate", "state": json.dumps(plain(g.get_state(legacy=False)))}
    return {"kind": "python", "state": json.dumps(plain(g.getstate()))}


def _set_generator_state(g: Any, st: Mapping[str, Any], where: str) -> None:
    kind = st.get("kind")
    if isinstance(g, torch.Generator) and kind == "torch":
        g.set_state(st["state"])
    elif isinstance(g, np.random.Generator) and kind == "numpy_generator":
        g.bit_generator.state = json.loads(st["state"])
    elif isinstance(g, np.random.RandomState) and kind == "numpy_randomstate":
        d = json.loads(st["state"])
        d["state"]["key"] = np.asarray(d["state"]["key"], dtype=np.uint32)
        g.set_state(d)
    elif isinstance(g, random.Random) and kind == "python":
        v, internal, gauss = json.loads(st["state"])
        g.setstate((v, tuple(internal), gauss))
    else:
        raise CheckpointError(f"{where}: saved generator of kind {kind!r} does not match the "
                              f"{type(g).__name__} the run now has")


def _owned_generators(obj: Any, prefix: str = "", depth: int = 0) -> dict[str, Any]:
    """``name -> generator`` for the random generators an object owns as attributes: for an
    ``nn.Module`` those of every submodule (``named_modules``), for other objects their own and
    those of a wrapped ``dataset`` (the clip dataset around a video dataset)."""
    found: dict[str, Any] = {}
    if isinstance(obj, nn.Module):
        for mname, mod in obj.named_modules():
            for k, v in vars(mod).items():
                if isinstance(v, _GENERATOR_TYPES):
                    found[f"{mname}.{k}" if mname else k] = v
        return found
    if obj is None or depth > 3:
        return found
    for k, v in list(vars(obj).items()) if hasattr(obj, "__dict__") else ():
        if isinstance(v, _GENERATOR_TYPES):
            found[f"{prefix}{k}"] = v
        elif k == "dataset" and v is not obj:
            found.update(_owned_generators(v, f"{prefix}dataset.", depth + 1))
    return found


def generator_states(obj: Any) -> dict[str, Any]:
    """The states of every random generator ``obj`` owns (see ``_owned_generators``), so a
    checkpoint can carry e.g. MaskRNN's mask-perturbation ``np.random.Generator``; what a method
    saves is ``VideoMethod.random_state()``, which defaults to this."""
    return {k: _generator_state(g) for k, g in sorted(_owned_generators(obj).items())}


def load_generator_states(obj: Any, states: Mapping[str, Any] | None, where: str = "") -> None:
    """Restore what ``generator_states`` saved; a generator on one side only is a warning
    (the run continues, but its random stream is not the uninterrupted run's)."""
    states = dict(states or {})
    gens = _owned_generators(obj)
    for name, g in gens.items():
        if name in states:
            _set_generator_state(g, states.pop(name), f"{where} ({name})")
        else:
            logger.warning("%s: no saved state for the random generator %s of %s: its stream "
                           "restarts", where, name, type(obj).__name__)
    for name in states:
        logger.warning("%s: saved random generator %s has no counterpart in %s", where, name,
                       type(obj).__name__)


def method_random_state(model: nn.Module) -> dict[str, Any]:
    """``random_state()`` of the bare method (the generic generator scan for other modules)."""
    m = unwrap_model(model)
    fn = getattr(m, "random_state", None)
    return fn() if callable(fn) else generator_states(m)


def load_method_random_state(model: nn.Module, state: Mapping[str, Any] | None, where: str) -> None:
    m = unwrap_model(model)
    fn = getattr(m, "load_random_state", None)
    if callable(fn):
        fn(state or {})
    else:
        load_generator_states(m, state, where)


# ----------------------------------------------------------------------------- save / load
def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` through ``atomic_write``: a crash never leaves a half-written checkpoint."""
    with atomic_write(path, "wb") as f:
        torch.save(obj, f)


def unwrap_model(model: nn.Module) -> nn.Module:
    """The bare module inside DDP / ``TrainingStepModule`` wrappers."""
    while True:
        inner = getattr(model, "module", None)
        if isinstance(inner, nn.Module):
            model = inner
        else:
            return model


def plain_config(cfg: Any) -> Any:
    """A resolved config as plain dicts/lists/primitives (OmegaConf nodes resolved)."""
    if cfg is None:
        return None
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf

        if isinstance(cfg, (DictConfig, ListConfig)):
            return OmegaConf.to_container(cfg, resolve=True)
    except ImportError:  # pragma: no cover
        pass
    return cfg


def save_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    scaler: Any = None,
    iteration: int = 0,
    rng: list[dict] | None = None,
    hooks: dict[str, Any] | None = None,
    config: Any = None,
    world_size: int = 1,
) -> Path:
    """Write a checkpoint atomically (see the module docstring for the layout).

    Args:
        path: destination file (``last.pth``...).
        model: the method (DDP wrappers are unwrapped).
        iteration: number of completed iterations.
        rng: one ``get_rng_state()`` per rank (rank order); default: this process's state.
    Returns:
        The path written.
    """
    obj = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "model": unwrap_model(model).state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "scaler": scaler.state_dict() if scaler is not None and scaler.is_enabled() else None,
        "iteration": int(iteration),
        "rng": rng if rng is not None else [get_rng_state()],
        "hooks": hooks or {},
        "config": plain_config(config),
        "world_size": int(world_size),
    }
    atomic_torch_save(obj, path)
    return Path(path)


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """Read a checkpoint with ``torch.load(weights_only=True)``.

    Raises:
        FileNotFoundError: the file does not exist (never a silent random init).
        CheckpointError: the file is not a loadable checkpoint (the message names it).
    """
    p = Path(path)
    if not p.is_file():
        if p.is_dir():
            raise CheckpointError(f"{p}: is a folder, expected a checkpoint file")
        raise FileNotFoundError(f"checkpoint not found: {p}")
    if p.stat().st_size == 0:
        raise CheckpointError(f"{p}: empty file (0 bytes), not a checkpoint")
    try:
        obj = torch.load(p, map_location=map_location, weights_only=True)
    except Exception as e:  # truncated file, pickle with non-allowlisted globals, ...
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{p}: cannot load checkpoint with torch.load(weights_only=True): "
                              f"{first}") from e
    if not isinstance(obj, dict):
        raise CheckpointError(f"{p}: a checkpoint must be a dict, got {type(obj).__name__}")
    return obj


def extract_state_dict(obj: Mapping[str, Any], where: str = "") -> dict[str, torch.Tensor]:
    """The model state dict in a vosbench checkpoint, or ``obj`` itself if it is a bare state dict."""
    if obj.get("format") == CHECKPOINT_FORMAT or "model" in obj and isinstance(obj["model"], Mapping):
        return dict(obj["model"])
    if all(isinstance(v, torch.Tensor) for v in obj.values()):
        return dict(obj)
    raise CheckpointError(f"{where}: neither a vosbench checkpoint nor a state dict "
                          f"(keys: {sorted(map(str, obj))[:10]})")


def load_model_weights(model: nn.Module, path: str | os.PathLike, *, strict: bool = True) -> nn.Module:
    """Load the weights of a vosbench checkpoint (or a bare state dict file) into ``model``.

    Args:
        model: the method (or a DDP wrapper around it).
        path: ``last.pth`` / ``model_final.pth`` / a bare state dict saved with ``torch.save``.
        strict: raise when keys are missing or unexpected (the message lists them).
    Returns:
        ``model``.
    Raises:
        FileNotFoundError: missing file; ``ValueError``: unreadable file or key mismatch.
    """
    obj = load_checkpoint(path)
    state = extract_state_dict(obj, where=str(path))
    target = unwrap_model(model)
    own = target.state_dict()
    mismatched = [f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}"
                  for k, v in state.items() if k in own and tuple(v.shape) != tuple(own[k].shape)]
    if mismatched:
        raise CheckpointError(f"{path}: weights do not match {type(target).__name__}: shape mismatch for "
                         + "; ".join(mismatched[:10]) + (" ..." if len(mismatched) > 10 else ""))
    missing, unexpected = target.load_state_dict(state, strict=False)
    if strict and (missing or unexpected):
        raise CheckpointError(
            f"{path}: weights do not match {type(target).__name__}: missing keys {list(missing)[:20]}"
            f"{' ...' if len(missing) > 20 else ''}, unexpected keys {list(unexpected)[:20]}"
            f"{' ...' if len(unexpected) > 20 else ''}"
        )
    return model
