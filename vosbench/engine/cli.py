"""Shared plumbing of the Hydra tools (``tools/train.py``, ``tools/test.py``)."""
from __future__ import annotations

import sys
from typing import Any, Callable

from vosbench.config import ConfigError
from vosbench.utils.io import DataError


def runtime_output_dir(cfg: Any) -> None:
    """Use the folder Hydra created for this job as ``cfg.output_dir``.

    In a ``-m`` sweep that is ``<output_dir>/<job number>`` (Hydra's sweep subdir); in a single
    run it is ``output_dir`` itself, resolved once (so a default ``outputs/${now:...}`` names the
    same folder for Hydra's files and ours).
    """
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        cfg.output_dir = HydraConfig.get().runtime.output_dir


def check_required(cfg: Any) -> None:
    """Raise ``ConfigError`` naming every mandatory key (``???``) left unset, e.g. ``dataset.root``."""
    from omegaconf import DictConfig, OmegaConf

    if isinstance(cfg, DictConfig):
        missing = sorted(OmegaConf.missing_keys(cfg))
        if missing:
            raise ConfigError(f"required config value(s) not set: {', '.join(missing)} "
                              f"(pass them as overrides, e.g. {missing[0]}=...)")


def run_tool(fn: Callable[[Any], Any], cfg: Any) -> Any:
    """Run ``fn(cfg)``; configuration and input errors become one clear line and exit code 2.

    Errors a user causes with an override (unknown registry name, a key a constructor does not
    accept, a bad optimizer ``_target_``, a missing checkpoint or dataset file) are not bugs: they
    are printed as ``error: <message>`` without a traceback. Anything else propagates.
    """
    runtime_output_dir(cfg)
    try:
        check_required(cfg)
        return fn(cfg)
    except (ConfigError, DataError, FileNotFoundError) as e:
        _fail(e)
    except KeyError as e:
        msg = e.args[0] if e.args else ""
        if isinstance(msg, str) and msg.startswith("No "):  # a registry lookup miss
            _fail(msg)
        raise


def _fail(e: Any) -> None:
    from vosbench.engine import comm

    if comm.is_main_process():
        print(f"error: {e}", file=sys.stderr)
    comm.destroy_distributed()
    sys.exit(2)
