"""The ``vosbench`` command: ``vosbench train|test|eval|bench|check|visualize|precompute-flow``.

Installed as a console script (``setup.py``) and as ``python -m vosbench``; ``tools/<name>.py``
in a clone are thin wrappers around the same modules:

=================== ============================= ==================================
command             module                        clone wrapper
=================== ============================= ==================================
``train``           ``vosbench.cli.train``        ``tools/train.py`` (Hydra app)
``test``            ``vosbench.cli.test``         ``tools/test.py`` (Hydra app)
``eval``            ``vosbench.cli.eval``         ``tools/eval.py``
``bench``           ``vosbench.cli.bench``        ``tools/bench.py``
``check``           ``vosbench.cli.check``        ``tools/check_dataset.py``
``visualize``       ``vosbench.cli.visualize``    ``tools/visualize.py``
``precompute-flow`` ``vosbench.cli.precompute_flow`` ``tools/precompute_flow.py``
=================== ============================= ==================================
"""
from __future__ import annotations

import importlib
import sys

# command -> (module, one-line summary)
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("vosbench.cli.train", "train a method (Hydra overrides: method=X dataset=Y ...)"),
    "test": ("vosbench.cli.test", "run a method over a dataset, write results, evaluate, FPS"),
    "eval": ("vosbench.cli.eval", "score results in the official layouts (official numbers)"),
    "bench": ("vosbench.cli.bench", "run a benchmark suite and write its leaderboard"),
    "check": ("vosbench.cli.check", "list every problem of a dataset folder"),
    "visualize": ("vosbench.cli.visualize", "overlay predictions / ground truth on the frames"),
    "precompute-flow": ("vosbench.cli.precompute_flow", "fill an optical-flow cache"),
}
ALIASES = {"check_dataset": "check", "check-dataset": "check", "precompute_flow": "precompute-flow"}
HYDRA_COMMANDS = ("train", "test")  # these parse sys.argv themselves (Hydra apps)


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: vosbench COMMAND [ARGS...]   (vosbench COMMAND --help for its options)", "",
             "commands:"]
    lines += [f"  {name:<{width}}  {summary}" for name, (_, summary) in COMMANDS.items()]
    lines += ["", "Also `python -m vosbench COMMAND ...`; in a clone `python tools/<command>.py ...`."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Dispatch ``argv`` (default ``sys.argv[1:]``) to the command's ``main``; returns its status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    if args[0] in ("-V", "--version"):
        from vosbench import __version__

        print(f"vosbench {__version__}")
        return 0
    cmd = ALIASES.get(args[0], args[0])
    if cmd not in COMMANDS:
        print(f"vosbench: unknown command {args[0]!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[cmd][0])
    if cmd in HYDRA_COMMANDS:
        # Hydra reads sys.argv; the program name shows up in its --help and error messages.
        sys.argv = [f"vosbench {cmd}", *args[1:]]
        module.main()
        return 0
    return int(module.main(args[1:]) or 0)
