"""Loading pretrained weights from local files (nothing is ever downloaded).

Accepted files (all read with ``torch.load(..., weights_only=True)``):

* a torchvision state dict (``resnet50-0676ba61.pth``, ``vgg16-397923af.pth``,
  ``raft_small_C_T_V2-01064c6d.pth``, ...): a flat ``{name: Tensor}`` mapping;
* a vosbench checkpoint (written by ``vosbench.engine``): a dict whose ``"model"`` entry is the
  state dict (``"state_dict"`` is accepted too, as Lightning and mmengine write it);
* either of those saved from ``DistributedDataParallel`` (keys prefixed ``module.``, stripped).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

import torch
from torch import Tensor, nn

__all__ = ["WeightsError", "read_state_dict", "load_state_dict_checked", "load_weights"]


class WeightsError(RuntimeError):
    """A weight file does not fit the module (the message lists the offending keys)."""


def _is_state_dict(obj: object) -> bool:
    return isinstance(obj, Mapping) and len(obj) > 0 and all(
        isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items())


def read_state_dict(path: str | os.PathLike, *, prefix: str | None = None) -> dict[str, Tensor]:
    """Read a state dict from a local file.

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
    sd = dict(obj)
    if all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    if prefix:
        sub = {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
        if not sub:
            raise WeightsError(
                f"{p}: no key starts with prefix {prefix!r} (first keys: {sorted(sd)[:8]})"
            )
        sd = sub
    return sd


def _summarise(keys: list[str], limit: int = 20) -> str:
    more = f" ... (+{len(keys) - limit} more)" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def load_state_dict_checked(module: nn.Module, state_dict: Mapping[str, Tensor], *,
                            strict: bool = True, source: str = "state dict") -> tuple[list[str], list[str]]:
    """``module.load_state_dict`` with readable errors.

    Shape mismatches are always an error. With ``strict`` any missing or unexpected key is an
    error too; without it they are returned.

    Returns:
        (missing_keys, unexpected_keys)
    Raises:
        WeightsError: listing the missing / unexpected / mismatched keys and naming ``source``.
    """
    own = module.state_dict()
    # FrozenBatchNorm2d drops a BatchNorm file's `num_batches_tracked` itself (torchvision does
    # the same), so such keys are not "unexpected".
    from torchvision.ops import FrozenBatchNorm2d

    frozen = {f"{n}.num_batches_tracked" if n else "num_batches_tracked"
              for n, m in module.named_modules() if isinstance(m, FrozenBatchNorm2d)}
    state_dict = {k: v for k, v in state_dict.items() if k not in frozen}
    mismatched = [f"{k}: file {tuple(v.shape)} vs model {tuple(own[k].shape)}"
                  for k, v in state_dict.items() if k in own and tuple(v.shape) != tuple(own[k].shape)]
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    problems = []
    if mismatched:
        problems.append(f"shape mismatch for {len(mismatched)} key(s): {_summarise(mismatched)}")
    if strict and missing:
        problems.append(f"missing {len(missing)} key(s): {_summarise(missing)}")
    if strict and unexpected:
        problems.append(f"unexpected {len(unexpected)} key(s): {_summarise(unexpected)}")
    if problems:
        raise WeightsError(f"{source} does not fit {type(module).__name__}: " + "; ".join(problems))
    module.load_state_dict(state_dict, strict=False)
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
