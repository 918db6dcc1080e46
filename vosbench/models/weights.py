"""Pretrained weights from local files (nothing is ever downloaded), and the one weights policy.

Accepted files (all read with ``torch.load(..., weights_only=True)``):

* a torchvision state dict (``resnet50-0676ba61.pth``, ``vgg16-397923af.pth``,
  ``raft_small_C_T_V2-01064c6d.pth``, ...): a flat ``{name: Tensor}`` mapping;
* a vosbench checkpoint (written by ``vosbench.engine``): a dict whose ``"model"`` entry is the
  state dict (``"state_dict"`` is accepted too, as Lightning and mmengine write it);
* either of those saved from ``DistributedDataParallel`` (keys prefixed ``module.``, stripped).

**Layouts.** torchvision renamed modules over its releases (0.13: ``RPNHead.conv``,
``MaskRCNNHeads`` and the FPN blocks became ``Conv2dNormActivation`` sequences) and upgrades old
files in the modules' own ``_load_from_state_dict`` hooks, keyed on the module version stored in
the state dict's ``_metadata``. ``read_state_dict`` keeps that metadata and
``load_state_dict_upgrading`` hands the file to ``module.load_state_dict`` unfiltered, so every
published layout loads; missing/unexpected keys are the ones torch reports *after* the hooks.

**Policy** (``load_pretrained`` / ``resolve_pretrained``), the same for every component with a
published file (``PUBLISHED``): an existing file is loaded and logged (file, tensors, missing and
unexpected keys); no path or a missing file is a one-line ``MissingWeightsError`` naming the file
to get and where to put it, unless random init is allowed (explicit ``allow_random_init=True``
or the scope ``weights_policy(allow_random_init=True)``, which the jobs open from the top-level
config key ``allow_random_init``), in which case a ``RANDOM INIT`` warning is logged. Inside
``weights_policy(covered_by=CKPT)`` a missing file is deferred instead: CKPT will overwrite
every tensor (loaded strictly), which ``verify_covered`` checks afterwards.
"""
from __future__ import annotations

import contextlib
import contextvars
import logging
import os
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Mapping, Sequence

import torch
from torch import Tensor, nn

__all__ = [
    "WeightsError", "MissingWeightsError", "PUBLISHED", "LoadReport", "WeightsPolicy",
    "weights_policy", "current_policy", "default_weights_path", "resolve_pretrained",
    "load_pretrained", "verify_covered", "read_state_dict", "load_state_dict_upgrading",
    "load_state_dict_checked", "load_weights",
]

logger = logging.getLogger("vosbench")

DOWNLOAD_ROOT = "https://download.pytorch.org/models/"


def _published() -> dict[str, str]:
    """Component key -> torchvision file name, read from torchvision's own Weights enums."""
    from torchvision.models import (ResNet50_Weights, ResNet101_Weights, ResNeXt101_32X8D_Weights,
                                    ResNeXt101_64X4D_Weights, VGG16_Weights)
    from torchvision.models.detection import MaskRCNN_ResNet50_FPN_Weights
    from torchvision.models.optical_flow import Raft_Large_Weights, Raft_Small_Weights

    enums = {
        "resnet50": ResNet50_Weights.IMAGENET1K_V1,
        "resnet101": ResNet101_Weights.IMAGENET1K_V1,
        "resnext101_64x4d": ResNeXt101_64X4D_Weights.IMAGENET1K_V1,
        "resnext101_32x8d": ResNeXt101_32X8D_Weights.IMAGENET1K_V1,
        "vgg16": VGG16_Weights.IMAGENET1K_V1,
        "raft_small": Raft_Small_Weights.C_T_V2,
        "raft_large": Raft_Large_Weights.C_T_SKHT_V2,
        "maskrcnn_resnet50_fpn_coco": MaskRCNN_ResNet50_FPN_Weights.COCO_V1,
    }
    return {k: w.url.rsplit("/", 1)[-1] for k, w in enums.items()}


#: component key -> published torchvision file name (``resnet101`` -> ``resnet101-63fe2227.pth``)
PUBLISHED: dict[str, str] = _published()


class WeightsError(RuntimeError):
    """A weight file does not fit the module (the message lists the offending keys)."""


class MissingWeightsError(FileNotFoundError):
    """A pretrained file is needed and absent (one line: the file, where to get and put it)."""


# ----------------------------------------------------------------------------- policy
@dataclass(frozen=True)
class WeightsPolicy:
    """What a missing pretrained file means in the current scope.

    Attributes:
        allow_random_init: log a RANDOM INIT warning instead of raising.
        covered_by: a checkpoint that will be loaded strictly over the built model: a missing
            pretrained file is deferred (``verify_covered`` checks it afterwards).
    """

    allow_random_init: bool = False
    covered_by: str | None = None


@dataclass
class LoadReport:
    """What happened to one component's pretrained weights.

    Attributes:
        component: ``PUBLISHED`` key; name: label used in messages (e.g. ``resnet101_fpn``).
        file: the published file name; path: the path given (None: none).
        status: ``"loaded"``, ``"random"`` (random init allowed) or ``"covered"`` (deferred to
            the checkpoint ``covered_by``).
        num_tensors: tensors loaded from the file; missing / unexpected: keys torch reported
            after torchvision's upgrade hooks; skipped: keys whose shape differs and that were
            allowed to (``skip_mismatched``), kept at their init.
    """

    component: str
    name: str
    file: str
    path: str | None
    status: str
    key: str = ""
    covered_by: str | None = None
    num_tensors: int = 0
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    module: nn.Module | None = field(default=None, repr=False, compare=False)

    def line(self) -> str:
        """One log line."""
        if self.status == "loaded":
            return (f"weights: {self.name} <- {self.path}: {self.num_tensors} tensors, missing "
                    f"{len(self.missing)} {_summarise(self.missing, 8)}, unexpected "
                    f"{len(self.unexpected)} {_summarise(self.unexpected, 8)}"
                    + (f", kept at init (shape differs) {len(self.skipped)} {_summarise(self.skipped, 8)}"
                       if self.skipped else ""))
        if self.status == "covered":
            return (f"weights: {self.name}: {self.file} not loaded ({_where(self.path)}); its tensors "
                    f"come from {self.covered_by}, loaded over it")
        return (f"RANDOM INIT: {self.name} starts from random weights ({self.file} {_where(self.path)}; "
                "allow_random_init=true) - results are not comparable to a pretrained model")


_SCOPE: contextvars.ContextVar[tuple[WeightsPolicy, tuple[list, ...]]] = contextvars.ContextVar(
    "vosbench_weights_policy", default=(WeightsPolicy(), ()))


def current_policy() -> WeightsPolicy:
    """The policy of the innermost ``weights_policy`` scope (default: nothing allowed)."""
    return _SCOPE.get()[0]


@contextlib.contextmanager
def weights_policy(*, allow_random_init: bool | None = None,
                   covered_by: str | os.PathLike | None = None) -> Iterator[list[LoadReport]]:
    """Scope a weights policy; unspecified fields are inherited from the enclosing scope.

    Yields:
        the list of ``LoadReport`` of every pretrained component resolved inside the scope.
    """
    outer, lists = _SCOPE.get()
    policy = WeightsPolicy(
        allow_random_init=outer.allow_random_init if allow_random_init is None else bool(allow_random_init),
        covered_by=outer.covered_by if covered_by is None else str(covered_by),
    )
    reports: list[LoadReport] = []
    token = _SCOPE.set((policy, lists + (reports,)))
    try:
        yield reports
    finally:
        _SCOPE.reset(token)


def _record(rep: LoadReport) -> LoadReport:
    for lst in _SCOPE.get()[1]:
        lst.append(rep)
    if rep.status == "random":
        logger.warning(rep.line())
    elif rep.status == "covered" and not Path(str(rep.covered_by)).expanduser().is_file():
        # the covering file is missing too: its own error (or RANDOM INIT line) follows and says
        # what to get, so this deferral would only be a confusing extra line
        logger.debug(rep.line())
    else:
        logger.info(rep.line())
    return rep


def default_weights_path(component: str) -> Path:
    """``$VOSBENCH_WEIGHTS/<file>`` (or ``weights/<file>``) for a ``PUBLISHED`` component."""
    return Path(os.environ.get("VOSBENCH_WEIGHTS", "weights")) / PUBLISHED[component]


def _where(path: str | None) -> str:
    return "no path given" if path is None else f"not found at {path}"


def _missing_message(name: str, component: str, path: str | None, key: str) -> str:
    file = PUBLISHED[component]
    env = os.environ.get("VOSBENCH_WEIGHTS")
    return (f"{name}: pretrained weights {file} needed ({_where(path)}); download "
            f"{DOWNLOAD_ROOT}{file} into $VOSBENCH_WEIGHTS ({env or 'unset'}) or weights/"
            + (f", or set {key}=PATH" if key else "")
            + "; or pass allow_random_init=true to start from random weights")


def resolve_pretrained(path: str | os.PathLike | None, *, component: str, key: str = "",
                       name: str | None = None, allow_random_init: bool | None = None,
                       module: nn.Module | None = None) -> Path | None:
    """Apply the policy to a pretrained file without loading it.

    Args:
        path: the configured file (None: none given).
        component: a ``PUBLISHED`` key (names the file to get in the error).
        key: the config key that sets the path (``method.backbone.weights``), for the error.
        name: label for messages (default ``component``).
        allow_random_init: explicit decision; None follows ``current_policy()``.
        module: the module the file would fill (kept in a deferred report for ``verify_covered``).
    Returns:
        the existing file, or None when the caller must keep its random init (allowed, or
        deferred to a covering checkpoint; both recorded and logged).
    Raises:
        MissingWeightsError: no usable file and random init not allowed.
    """
    if component not in PUBLISHED:
        raise KeyError(f"unknown pretrained component {component!r}; known: {sorted(PUBLISHED)}")
    name = name or component
    p = None if path is None or str(path) in ("", "None", "null") else Path(path).expanduser()
    if p is not None and p.is_file():
        return p
    policy = current_policy()
    allowed = policy.allow_random_init if allow_random_init is None else bool(allow_random_init)
    shown = None if p is None else str(p)
    if policy.covered_by and allow_random_init is not False:
        _record(LoadReport(component, name, PUBLISHED[component], shown, "covered", key=key,
                           covered_by=policy.covered_by, module=module))
        return None
    if not allowed:
        raise MissingWeightsError(_missing_message(name, component, shown, key))
    _record(LoadReport(component, name, PUBLISHED[component], shown, "random", key=key, module=module))
    return None


def load_pretrained(module: nn.Module, path: str | os.PathLike | None, *, component: str,
                    key: str = "", name: str | None = None, allow_random_init: bool | None = None,
                    prefix: str | None = None,
                    transform: Callable[[dict[str, Tensor]], dict[str, Tensor]] | None = None,
                    strict: bool = True, skip_mismatched: Sequence[str] = ()) -> LoadReport | None:
    """The policy + loading for one component (see the module docstring).

    Args:
        module: module to fill in place.
        path, component, key, name, allow_random_init: see ``resolve_pretrained``.
        prefix: load only the file's keys under this prefix (stripped), e.g. ``"features."``.
        transform: edits the state dict before loading (drop ``fc.*``, extend a first conv);
            layout renames are NOT done here: torchvision's hooks do them.
        strict: missing / unexpected keys (after the hooks) are an error.
        skip_mismatched: key prefixes (after the hooks) whose tensors may have another shape
            (class-dependent layers): they keep their init and are listed in ``skipped``.
    Returns:
        the ``LoadReport`` when a file was loaded, None when the module keeps its init
        (random allowed or deferred; the report is recorded in the scope).
    """
    p = resolve_pretrained(path, component=component, key=key, name=name,
                           allow_random_init=allow_random_init, module=module)
    if p is None:
        return None
    sd = read_state_dict(p, prefix=prefix)
    if transform is not None:
        meta = getattr(sd, "_metadata", None)
        sd = OrderedDict(transform(sd))
        if meta is not None:
            sd._metadata = meta  # type: ignore[attr-defined]
    missing, unexpected, skipped = load_state_dict_upgrading(
        module, sd, strict=strict, skip_mismatched=skip_mismatched, source=str(p))
    n = len(module.state_dict()) - len(missing) - len(skipped)
    return _record(LoadReport(component, name or component, PUBLISHED[component], str(p), "loaded",
                              key=key, num_tensors=n, missing=missing, unexpected=unexpected,
                              skipped=skipped, module=module))


def verify_covered(model: nn.Module, reports: Sequence[LoadReport]) -> None:
    """After loading a covering checkpoint strictly into ``model``: every deferred component
    must be a submodule of ``model`` (else its tensors did not come from the checkpoint).

    Raises:
        MissingWeightsError: for the first deferred component outside ``model``.
    """
    inside = {id(m) for m in model.modules()}
    for r in reports:
        if r.status == "covered" and (r.module is None or id(r.module) not in inside):
            raise MissingWeightsError(
                _missing_message(r.name, r.component, r.path, r.key)
                + f" (checkpoint {r.covered_by} does not hold its tensors)")


# ----------------------------------------------------------------------------- reading
def _is_state_dict(obj: object) -> bool:
    return isinstance(obj, Mapping) and len(obj) > 0 and all(
        isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items())


def _strip(sd: Mapping[str, Tensor], prefix: str) -> "OrderedDict[str, Tensor]":
    """Keys under ``prefix`` with it removed; the module-version metadata re-keyed alike."""
    out = OrderedDict((k[len(prefix):], v) for k, v in sd.items() if k.startswith(prefix))
    meta = getattr(sd, "_metadata", None)
    if meta is not None:
        base = prefix[:-1] if prefix.endswith(".") else prefix
        new = OrderedDict()
        for k, v in meta.items():
            if k == base:
                new[""] = v
            elif k.startswith(prefix):
                new[k[len(prefix):]] = v
        out._metadata = new  # type: ignore[attr-defined]
    return out


def read_state_dict(path: str | os.PathLike, *, prefix: str | None = None) -> "OrderedDict[str, Tensor]":
    """Read a state dict from a local file, keeping its ``_metadata`` (module versions).

    Args:
        path: a torchvision state dict or a vosbench checkpoint (see the module docstring).
        prefix: keep only the keys that start with it, with the prefix removed (e.g.
            ``"features."`` to load a VGG-16 file into its ``features`` module, or
            ``"backbone."`` to take the backbone out of a whole-detector checkpoint).
    Raises:
        FileNotFoundError: ``path`` is not a file (the message names it).
        WeightsError: the file is not a state dict / checkpoint, or no key has ``prefix``.
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(
            f"weights file not found: {p} (vosbench never downloads weights; put the file there "
            "or fix the path in the config)"
        )
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # unpickling errors, truncated files, non-tensor pickles
        raise WeightsError(f"{p}: cannot read as a torch weights file ({type(e).__name__}: {e})") from e
    if not _is_state_dict(obj) and isinstance(obj, Mapping):
        for key in ("model", "state_dict"):
            if _is_state_dict(obj.get(key)):
                obj = obj[key]
                break
    if not _is_state_dict(obj):
        keys = sorted(obj)[:10] if isinstance(obj, Mapping) else type(obj).__name__
        raise WeightsError(
            f"{p}: neither a state dict nor a checkpoint with a 'model' state dict (found {keys})"
        )
    sd = obj if isinstance(obj, OrderedDict) else OrderedDict(obj)
    if all(k.startswith("module.") for k in sd):
        sd = _strip(sd, "module.")
    if prefix:
        sub = _strip(sd, prefix)
        if not sub:
            raise WeightsError(
                f"{p}: no key starts with prefix {prefix!r} (first keys: {sorted(sd)[:8]})"
            )
        sd = sub
    return sd


# ----------------------------------------------------------------------------- loading
def _summarise(keys: list[str], limit: int = 20) -> str:
    if not keys:
        return "[]"
    more = f" ... (+{len(keys) - limit} more)" if len(keys) > limit else ""
    return "[" + ", ".join(keys[:limit]) + more + "]"


def load_state_dict_upgrading(module: nn.Module, state_dict: Mapping[str, Tensor], *,
                              strict: bool = True, skip_mismatched: Sequence[str] = (),
                              source: str = "state dict") -> tuple[list[str], list[str], list[str]]:
    """``module.load_state_dict`` through torchvision's layout-upgrade hooks, with readable errors.

    The file goes to ``load_state_dict`` unfiltered (its ``_metadata`` included), so the modules'
    ``_load_from_state_dict`` hooks rename old layouts first. Shape mismatches are found after
    those renames (load pre-hooks on every submodule): an error, except for keys under a
    ``skip_mismatched`` prefix, which keep the module's values. With ``strict`` any missing or
    unexpected key (as torch reports them after the hooks) is an error too. On an error the
    module may be partly loaded: discard it.

    Returns:
        (missing_keys, unexpected_keys, skipped_keys) ; skipped keys are not in missing.
    Raises:
        WeightsError: listing the mismatched / missing / unexpected keys and naming ``source``.
    """
    mismatched: list[str] = []
    skipped: list[str] = []
    skip = tuple(skip_mismatched)

    def pre_hook(mod, sd, prefix, *args) -> None:
        own = {**mod._parameters, **{n: b for n, b in mod._buffers.items()
                                     if n not in mod._non_persistent_buffers_set}}
        for n, t in own.items():
            k = prefix + n
            if t is None or k not in sd or not isinstance(sd[k], Tensor):
                continue
            if tuple(sd[k].shape) != tuple(t.shape):
                if skip and k.startswith(skip):
                    skipped.append(k)
                else:
                    mismatched.append(f"{k}: file {tuple(sd[k].shape)} vs model {tuple(t.shape)}")
                sd.pop(k)

    handles = [m.register_load_state_dict_pre_hook(pre_hook) for m in module.modules()]
    sd = state_dict if isinstance(state_dict, OrderedDict) else OrderedDict(state_dict)
    meta = getattr(state_dict, "_metadata", None)
    if meta is not None and not hasattr(sd, "_metadata"):
        sd._metadata = meta  # type: ignore[attr-defined]
    try:
        result = module.load_state_dict(sd, strict=False)
    finally:
        for h in handles:
            h.remove()
    missing = sorted(set(result.missing_keys) - set(skipped))
    unexpected = sorted(result.unexpected_keys)
    problems = []
    if mismatched:
        problems.append(f"shape mismatch for {len(mismatched)} key(s): {_summarise(mismatched)[1:-1]}")
    if strict and missing:
        problems.append(f"missing {len(missing)} key(s): {_summarise(missing)[1:-1]}")
    if strict and unexpected:
        problems.append(f"unexpected {len(unexpected)} key(s): {_summarise(unexpected)[1:-1]}")
    if problems:
        raise WeightsError(f"{source} does not fit {type(module).__name__}: " + "; ".join(problems))
    return missing, unexpected, sorted(skipped)


def load_state_dict_checked(module: nn.Module, state_dict: Mapping[str, Tensor], *,
                            strict: bool = True, source: str = "state dict") -> tuple[list[str], list[str]]:
    """``load_state_dict_upgrading`` without skips (shape mismatches are always an error).

    Returns:
        (missing_keys, unexpected_keys)
    Raises:
        WeightsError: listing the missing / unexpected / mismatched keys and naming ``source``.
    """
    missing, unexpected, _ = load_state_dict_upgrading(module, state_dict, strict=strict, source=source)
    return missing, unexpected


def load_weights(module: nn.Module, path: str | os.PathLike, *, strict: bool = True,
                 prefix: str | None = None) -> nn.Module:
    """Load a local weight file into ``module`` (in place) and return the module.

    Args:
        module: the module to fill.
        path: a torchvision state dict or vosbench checkpoint (module docstring).
        strict: require the keys to match exactly (shapes must always match).
        prefix: load only the keys under this prefix, with the prefix stripped.
    Raises:
        FileNotFoundError: the file does not exist (named in the message).
        WeightsError: unreadable file, or missing / unexpected / mismatched keys (listed).
    """
    sd = read_state_dict(path, prefix=prefix)
    load_state_dict_checked(module, sd, strict=strict, source=str(path))
    return module

