"""Registries: the five places where users plug in their own code.

A registry maps a name (the Hydra config file name, e.g. ``configs/method/maskprop.yaml`` has
``name: maskprop``) to a class or factory. It is deliberately tiny (cf. torchvision
``models/_api.py``): no scopes, no parents, no lazy locations.

External packages register through the ``vosbench.plugins`` entry-point group: each entry point
names a module (or callable) that, when loaded, registers its objects. Plugins are loaded the first
time a registry lookup misses or a registry is listed, so ``pip install my-vos-method`` is enough
for ``method=my_method`` to work.
"""
from __future__ import annotations

import importlib.metadata
from typing import Any, Iterator, TypeVar

T = TypeVar("T")

PLUGIN_GROUP = "vosbench.plugins"
_plugins_loaded = False


def load_plugins() -> list[str]:
    """Load every ``vosbench.plugins`` entry point once; returns the entry-point names loaded.

    An entry point may reference a module (importing it registers its objects) or a callable,
    which is then called with no arguments.
    """
    global _plugins_loaded
    if _plugins_loaded:
        return []
    _plugins_loaded = True
    loaded = []
    for ep in importlib.metadata.entry_points(group=PLUGIN_GROUP):
        obj = ep.load()
        if callable(obj) and not isinstance(obj, type):
            obj()
        loaded.append(ep.name)
    return loaded


class Registry:
    """A name -> object mapping with loud errors.

    Args:
        name: what is registered, used in error messages ("method", "backbone", ...).
        contract: the call contract every registered object must follow (kept in ``__doc__``).
    """

    def __init__(self, name: str, contract: str = "") -> None:
        self.name = name
        self._obj: dict[str, Any] = {}
        self.__doc__ = f"Registry of {name}s.\n\n{contract}"

    def register(self, name: str | None = None, obj: Any = None) -> Any:
        """Register ``obj`` under ``name``; used as ``@REG.register("x")`` or ``REG.register("x", f)``."""
        if obj is not None:
            self._add(name or obj.__name__, obj)
            return obj

        def deco(o: T) -> T:
            self._add(name or o.__name__, o)  # type: ignore[attr-defined]
            return o

        return deco

    def _add(self, name: str, obj: Any) -> None:
        if name in self._obj and self._obj[name] is not obj:
            raise ValueError(
                f"A {self.name} named {name!r} is already registered ({self._obj[name]!r}); "
                "pick another name"
            )
        self._obj[name] = obj

    def get(self, name: str) -> Any:
        if name not in self._obj:
            load_plugins()
        if name not in self._obj:
            hint = (" (is the package that registers it installed? The shipped methods come "
                    "with `pip install -e .`; a plugin registers in the `vosbench.plugins` "
                    "entry-point group)") if self.name == "method" else ""
            raise KeyError(
                f"No {self.name} named {name!r}{hint}. Registered {self.name}s: "
                f"{', '.join(self.list()) or '(none)'}"
            )
        return self._obj[name]

    def list(self) -> list[str]:
        load_plugins()
        return sorted(self._obj)

    def __contains__(self, name: str) -> bool:
        if name not in self._obj:
            load_plugins()
        return name in self._obj

    def __iter__(self) -> Iterator[str]:
        return iter(self.list())

    def __repr__(self) -> str:
        return f"Registry({self.name!r}, {sorted(self._obj)})"


METHODS = Registry(
    "method",
    "Entries are `vosbench.models.base.VideoMethod` subclasses built with keyword-only arguments "
    "(optionally through `from_config(cfg) -> dict`). They implement "
    "`training_step(VideoBatch) -> dict[str, Tensor]` (keys `loss_*`) and "
    "`predict(VideoSample) -> VideoPrediction`.",
)
BACKBONES = Registry(
    "backbone",
    "Entries are `nn.Module` classes or factories taking keyword-only arguments; "
    "`forward(Tensor[B, C, H, W])` returns a Tensor or an ordered dict of feature maps, and "
    "`output_shape()` documents channels and strides.",
)
FLOWS = Registry(
    "flow",
    "Entries are `vosbench.models.flow.FlowEstimator` subclasses: "
    "`__call__(frame_a: Tensor[3, H, W] in 0-1, frame_b) -> Tensor[2, H, W]` (pixels, see the "
    "sign convention in `vosbench/models/flow/base.py`).",
)
DATASETS = Registry(
    "dataset",
    "Entries are dataset classes built with keyword-only arguments (`root`, `split`, ...). "
    "They are sequences of `VideoSample` (lazily decoded) and offer `clip_dataset(...)` for "
    "training clips.",
)
METRICS = Registry(
    "metric",
    "Entries are `vosbench.metrics.base.Evaluator` subclasses: `reset()`, "
    "`process(sample, prediction)`, `evaluate() -> dict[str, float]`.",
)

__all__ = ["Registry", "METHODS", "BACKBONES", "FLOWS", "DATASETS", "METRICS", "load_plugins"]
