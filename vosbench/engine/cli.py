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


#: exit status of a tool that stopped on bad input (config, data, checkpoint, output folder)
EXIT_BAD_INPUT = 2
#: exit status of a tool that crashed (a bug, or a bad input nobody anticipated)
EXIT_INTERNAL = 3


def debug_enabled() -> bool:
    """Tracebacks wanted: ``HYDRA_FULL_ERROR=1`` (Hydra's own switch) or ``VOSBENCH_DEBUG=1``."""
    import os

    return os.environ.get("HYDRA_FULL_ERROR") == "1" or os.environ.get("VOSBENCH_DEBUG") == "1"


def run_tool(fn: Callable[[Any], Any], cfg: Any) -> Any:
    """Run ``fn(cfg)``; every error becomes one clear line, without a traceback.

    Errors a user causes (unknown registry name, a key a constructor does not accept or a value of
    the wrong type, a bad optimizer ``_target_``, a missing, corrupt or foreign checkpoint or
    dataset file, an output folder that cannot be written) print ``error: <message>`` and exit
    with ``EXIT_BAD_INPUT`` (2). Anything else prints ``internal error: ...`` and exits with
    ``EXIT_INTERNAL`` (3). ``HYDRA_FULL_ERROR=1`` (or ``VOSBENCH_DEBUG=1``) re-raises instead,
    for the full traceback. Config values are type-checked before anything is built.
    """
    from vosbench.config import check_config_types
    from vosbench.engine.checkpoint import CheckpointError
    from vosbench.metrics.vis import YTVISFormatError
    from vosbench.metrics.vos import EvaluationError

    runtime_output_dir(cfg)
    try:
        check_required(cfg)
        check_config_types(cfg)
        return fn(cfg)
    except (ConfigError, DataError, FileNotFoundError, CheckpointError, EvaluationError,
            YTVISFormatError) as e:
        if debug_enabled():
            raise
        _fail(e)
    except KeyError as e:
        msg = e.args[0] if e.args else ""
        if debug_enabled():
            raise
        if isinstance(msg, str) and msg.startswith("No "):  # a registry lookup miss
            _fail(msg)
        _fail(f"internal error: KeyError {e} (HYDRA_FULL_ERROR=1 for the traceback)", EXIT_INTERNAL)
    except OSError as e:  # an output folder that cannot be created or written, a full disk
        if debug_enabled():
            raise
        where = f"{e.filename}: " if getattr(e, "filename", None) else ""
        _fail(f"{where}{e.strerror or e}")
    except Exception as e:
        if debug_enabled():
            raise
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        _fail(f"internal error: {type(e).__name__}: {first} (HYDRA_FULL_ERROR=1 for the traceback)",
              EXIT_INTERNAL)


def _fail(e: Any, code: int = EXIT_BAD_INPUT) -> None:
    from vosbench.engine import comm

    msg = str(e)
    if comm.is_main_process():
        print(msg if msg.startswith("internal error") else f"error: {msg}", file=sys.stderr)
    comm.destroy_distributed()
    sys.exit(code)


def bad_input_errors() -> tuple[type[BaseException], ...]:
    """The exception types that mean "bad input" (each message names the file or key)."""
    from vosbench.engine.checkpoint import CheckpointError
    from vosbench.metrics.vis import YTVISFormatError
    from vosbench.metrics.vos import EvaluationError

    return (ConfigError, DataError, FileNotFoundError, CheckpointError, EvaluationError,
            YTVISFormatError)


def guarded(fn: Callable[[], int], *, debug: bool = False, prog: str = "vosbench") -> int:
    """Run an argparse tool's body ``fn() -> exit status``; errors become one line on stderr.

    Bad input (``bad_input_errors``, or an ``OSError`` such as an unwritable output folder):
    ``error: <message>``, exit ``EXIT_BAD_INPUT`` (2). Anything else: ``internal error: ...``,
    exit ``EXIT_INTERNAL`` (3). ``debug`` (``--debug``) or ``HYDRA_FULL_ERROR=1`` re-raises.
    """
    debug = debug or debug_enabled()
    try:
        return fn()
    except bad_input_errors() as e:
        if debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as e:
        if debug:
            raise
        where = f"{e.filename}: " if getattr(e, "filename", None) else ""
        print(f"error: {where}{e.strerror or e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        if debug:
            raise
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        print(f"internal error: {type(e).__name__}: {first} (--debug for the traceback)",
              file=sys.stderr)
        return EXIT_INTERNAL
