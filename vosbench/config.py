"""Config -> object: ``build(cfg, REGISTRY)`` and a Hydra compose helper.

Configs can only build registered names: ``cfg.name`` is looked up in the given registry, and the
remaining keys must be keyword arguments of the registered constructor (or of its
``from_config``), otherwise a ``ConfigError`` lists the accepted keys. There is no ``_target_``
for user-facing components.
"""
from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, Mapping, Sequence

from vosbench.registry import Registry

from vosbench.utils.resources import PACKAGED_CONFIG_MODULE, config_dir, is_packaged

# configs/ of the clone, or its copy in vosbench/_resources/ after a normal `pip install .`
CONFIG_DIR = config_dir()


class ConfigError(ValueError):
    """A config names something unknown or passes keys the target does not accept."""


def to_dict(cfg: Any) -> dict:
    """Resolve an OmegaConf node (or pass through a mapping) into a plain ``dict``."""
    try:
        from omegaconf import DictConfig, OmegaConf

        if isinstance(cfg, DictConfig):
            return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    except ImportError:  # pragma: no cover
        pass
    return dict(cfg)


def _accepted(fn: Any) -> tuple[set[str], bool]:
    sig = inspect.signature(fn)
    names = {n for n, p in sig.parameters.items() if n not in ("self", "cls")
             and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}
    var_kw = any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values())
    return names, var_kw


def build(cfg: Mapping[str, Any], registry: Registry, **overrides: Any) -> Any:
    """Build ``registry.get(cfg["name"])`` with the other keys as keyword arguments.

    Args:
        cfg: mapping with ``name`` plus constructor kwargs (OmegaConf nodes are resolved).
        registry: one of ``METHODS, BACKBONES, FLOWS, DATASETS, METRICS``.
        overrides: extra keyword arguments that win over ``cfg`` (e.g. ``root``).
    Raises:
        KeyError: unknown name (the message lists the registered names).
        ConfigError: a key the constructor does not accept.
    """
    d = to_dict(cfg)
    if "name" not in d:
        raise ConfigError(f"{registry.name} config has no 'name' key: {sorted(d)}")
    name = d.pop("name")
    cls = registry.get(name)
    d.update(overrides)
    if hasattr(cls, "from_config") and inspect.ismethod(getattr(cls, "from_config")):
        d = cls.from_config(d)
    target = cls.__init__ if isinstance(cls, type) else cls
    accepted, var_kw = _accepted(target)
    unknown = sorted(set(d) - accepted)
    if unknown and not var_kw:
        raise ConfigError(
            f"{registry.name} {name!r} does not accept key(s) {unknown}; accepted keys: "
            f"{sorted(accepted)}"
        )
    return cls(**d)


def compose(overrides: Sequence[str] = (), config_name: str = "config",
            config_dir: str | Path | None = None):
    """Compose the Hydra config (``configs/config.yaml`` + overrides) without running an app.

    The shipped configs come from ``pkg://vosbench._resources.configs`` in a normal install and
    from the clone's ``configs/`` otherwise; a user's own folder joins the search path with the
    override ``hydra.searchpath=[file:///my/configs]`` (its ``method/x.yaml`` adds ``method=x``).
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir, initialize_config_module

    if config_dir is None and is_packaged():
        init = initialize_config_module(config_module=PACKAGED_CONFIG_MODULE, version_base="1.3")
    else:
        init = initialize_config_dir(config_dir=str(Path(config_dir or CONFIG_DIR).resolve()),
                                     version_base="1.3")
    with init:
        return hydra_compose(config_name=config_name, overrides=list(overrides))


# ------------------------------------------------------------------------------ type checks
#: Types of the top-level and ``trainer`` keys of the tools' config (``configs/config.yaml``,
#: ``configs/trainer/default.yaml``), as annotation strings; ``check_config_types`` reads them.
TOOL_SCHEMA: dict[str, str] = {
    "seed": "int", "device": "str", "threads": "int | None", "output_dir": "str",
    "checkpoint": "str | None", "resume": "bool", "max_videos": "int | None",
    "save_predictions": "bool", "allow_random_init": "bool",
    "trainer.max_iter": "int", "trainer.batch_size": "int", "trainer.accum_steps": "int",
    "trainer.num_workers": "int", "trainer.train_split": "str", "trainer.val_split": "str",
    "trainer.data_check": "Literal['header', 'full', 'off']", "trainer.clip": "dict",
    "trainer.optimizer": "dict", "trainer.scheduler": "dict | None", "trainer.warmup_iters": "int",
    "trainer.warmup_factor": "float", "trainer.grad_clip": "float | None",
    "trainer.amp": "str | bool | None", "trainer.find_unused_parameters": "bool",
    "trainer.checkpoint_period": "int", "trainer.keep_every": "int", "trainer.eval_period": "int",
    "trainer.eval_max_videos": "int | None", "trainer.log_period": "int",
    "trainer.tensorboard": "bool", "trainer.progress": "bool",
}
#: keys that must also be >= this
_MINIMUM = {"trainer.max_iter": 1, "trainer.batch_size": 1, "trainer.accum_steps": 1,
            "trainer.num_workers": 0, "trainer.warmup_iters": 0, "trainer.keep_every": 0,
            "trainer.log_period": 1, "max_videos": 1, "trainer.eval_max_videos": 1, "threads": 0}


def _type_error(value: Any, ann: Any) -> str | None:
    """None if ``value`` fits the annotation ``ann`` (a type / typing form / string), else what
    was expected. Unknown or complex annotations are accepted (not checked)."""
    import types
    import typing

    if isinstance(ann, str):
        env = {"Literal": typing.Literal, "Any": typing.Any, "Path": Path, "Sequence": Sequence,
               "Mapping": Mapping}
        try:
            ann = eval(ann, env)  # noqa: S307 - annotation strings of our own constructors
        except Exception:
            return None
    if ann is typing.Any or ann is inspect.Parameter.empty:
        return None
    origin = typing.get_origin(ann)
    if origin in (typing.Union, types.UnionType):
        members = typing.get_args(ann)
        errors = [_type_error(value, m) for m in members]
        return None if any(e is None for e in errors) else " or ".join(e for e in errors if e)
    if origin is typing.Literal:
        opts = typing.get_args(ann)
        return None if value in opts else "one of " + ", ".join(map(repr, opts))
    if ann is type(None):
        return None if value is None else "null"
    base = origin or ann
    from omegaconf import DictConfig, ListConfig

    if base is bool:
        return None if isinstance(value, bool) else "true/false"
    if base is int:
        return None if isinstance(value, int) and not isinstance(value, bool) else "an integer"
    if base is float:
        return None if isinstance(value, (int, float)) and not isinstance(value, bool) else "a number"
    if base is str or base is Path:
        return None if isinstance(value, str) else "a string"
    if base in (list, tuple) or base is Sequence or (isinstance(base, type) and base.__name__ == "Sequence"):
        return None if isinstance(value, (list, tuple, ListConfig)) else "a list"
    if base in (dict, Mapping) or (isinstance(base, type) and issubclass(base, Mapping)):
        return None if isinstance(value, (dict, Mapping, DictConfig)) else "a mapping"
    return None


def check_kwargs_types(fn: Any, kwargs: Mapping[str, Any], prefix: str) -> list[str]:
    """Type errors of ``kwargs`` against the annotations of ``fn`` (a class or a function):
    one message per key, naming ``<prefix>.<key>``, the value and the expected type."""
    import typing

    target = fn.__init__ if isinstance(fn, type) else fn
    try:
        sig = inspect.signature(target)
    except (TypeError, ValueError):
        return []
    try:
        hints = typing.get_type_hints(target)
    except Exception:  # unresolvable forward references: fall back to the raw strings
        hints = {}
    errors = []
    for k, v in kwargs.items():
        p = sig.parameters.get(k)
        if p is None or isinstance(v, (Mapping,)) and not isinstance(v, str):
            continue  # unknown keys are build()'s business; nested configs are built elsewhere
        try:
            from omegaconf import DictConfig
            if isinstance(v, DictConfig):
                continue
        except ImportError:  # pragma: no cover
            pass
        ann = hints.get(k, p.annotation)
        if ann is inspect.Parameter.empty and p.default is not inspect.Parameter.empty \
                and p.default is not None and type(p.default) in (int, float, bool, str):
            ann = type(p.default)  # an unannotated keyword: the type of its default
        err = _type_error(v, ann)
        if err is not None:
            errors.append(f"{prefix}.{k}={v!r}: expected {err}")
    return errors


def check_config_types(cfg: Any) -> None:
    """Type-check a tool config BEFORE anything is built: the top-level and ``trainer`` keys
    (``TOOL_SCHEMA``), ``trainer.clip`` against ``ClipDataset``, and ``method`` / ``dataset``
    against their registered constructors' annotations.

    Raises:
        ConfigError: one line per bad value, naming the key (``trainer.max_iter='abc': expected
            an integer``).
    """
    from omegaconf import DictConfig, OmegaConf

    if not isinstance(cfg, DictConfig):
        return
    errors = []
    for key, ann in TOOL_SCHEMA.items():
        try:
            v = OmegaConf.select(cfg, key, throw_on_missing=False)
        except Exception:
            continue
        if v is None and OmegaConf.select(cfg, key, default="<absent>") == "<absent>":
            continue
        if isinstance(v, DictConfig):
            v = dict(v)
        err = _type_error(v, ann)
        if err is not None:
            errors.append(f"{key}={v!r}: expected {err}")
        elif key in _MINIMUM and isinstance(v, int) and not isinstance(v, bool) and v < _MINIMUM[key]:
            errors.append(f"{key}={v!r}: must be >= {_MINIMUM[key]}")
    clip = OmegaConf.select(cfg, "trainer.clip")
    if isinstance(clip, DictConfig):
        from vosbench.data.clips import ClipDataset

        errors += check_kwargs_types(ClipDataset, OmegaConf.to_container(clip, resolve=True),
                                     "trainer.clip")
    for group, reg_name in (("method", "METHODS"), ("dataset", "DATASETS")):
        node = cfg.get(group)
        if not isinstance(node, DictConfig) or not isinstance(node.get("name"), str):
            continue
        import vosbench.registry as registry

        if reg_name == "DATASETS":
            import vosbench.data  # noqa: F401  (registers the datasets)
        reg = getattr(registry, reg_name)
        try:
            target = reg.get(node.name)
        except KeyError:
            continue  # build() reports the unknown name with the registered ones
        d = {k: v for k, v in OmegaConf.to_container(node, resolve=True).items() if k != "name"}
        errors += check_kwargs_types(target, d, group)
    if errors:
        raise ConfigError("config value(s) of the wrong type: " + "; ".join(errors))
