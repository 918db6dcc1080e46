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

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"


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
    """Compose the Hydra config (``configs/config.yaml`` + overrides) without running an app."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(Path(config_dir or CONFIG_DIR).resolve()),
                               version_base="1.3"):
        return hydra_compose(config_name=config_name, overrides=list(overrides))
