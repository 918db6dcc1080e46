"""List every problem of a dataset folder at once.

Exit status: 0 no problem, 1 problems found (listed, one per line, each naming the file),
2 bad arguments (a folder that does not exist), 3 the checker itself crashed.

    vosbench check /data/DAVIS --format davis2017 --split val
    vosbench check ../shared/data/davis2016-mini --format davis2016

Checks the structure (split files, frame/annotation lists and counts, image/annotation pairing,
JSON layout and types, unknown ids, RLE sizes) and then decodes every frame and annotation
(corrupt, truncated or empty images, non-palette or odd-valued PNGs, a varying alpha, size
mismatches, invalid RLE counts, DAVIS-2017 object ids: phantom ids, and labels above the first
frame's object count, which the DAVIS-2017 protocol does not score). It uses the readers of the
loaders and of ``vosbench eval``, so whatever a later tool would reject is listed here.
``--level header`` reads file headers only (what ``train`` checks before it starts).
"""
from __future__ import annotations

import argparse
import sys

FORMATS = ("davis2016", "davis2017", "segtrackv2", "ytvis2019", "ytvis2021")
DEFAULT_SPLIT = {"davis2016": "val", "davis2017": "val", "segtrackv2": "all", "ytvis2019": "train",
                 "ytvis2021": "train"}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="vosbench check", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("root", help="dataset folder")
    ap.add_argument("--format", required=True, choices=FORMATS)
    ap.add_argument("--split", default=None, help="split to check (default: val / all / train)")
    ap.add_argument("--resolution", default=None, help="DAVIS: 480p | 1080p | Full-Resolution")
    ap.add_argument("--level", choices=("full", "header"), default="full",
                    help="full: decode every file (default); header: headers and sizes only (fast)")
    ap.add_argument("--late-objects", choices=("problem", "ok"), default=None,
                    help="davis2017: labels above the first frame's object count (objects entering "
                         "later) are a problem in the splits the DAVIS-2017 protocol scores "
                         "(default: ok for split train, problem otherwise)")
    ap.add_argument("--debug", action="store_true", help="show the traceback if the checker crashes")
    from vosbench.utils.threads import add_threads_argument, limit_threads

    add_threads_argument(ap)
    args = ap.parse_args(argv)
    limit_threads(args.threads)
    from vosbench.engine.cli import EXIT_INTERNAL, debug_enabled

    try:
        return _check(args)
    except Exception as e:  # a crash of the checker itself, never "problems found"
        if args.debug or debug_enabled():
            raise
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        print(f"internal error: {type(e).__name__}: {first} (--debug for the traceback)",
              file=sys.stderr)
        return EXIT_INTERNAL


def _check(args) -> int:
    from pathlib import Path

    from vosbench.data import datasets  # noqa: F401
    from vosbench.registry import DATASETS

    root = Path(args.root)
    if not root.is_dir():
        print(f"error: {root}: " + ("dataset folder does not exist" if not root.exists()
                                    else "is a file, expected the dataset folder"), file=sys.stderr)
        return 2
    split = args.split or DEFAULT_SPLIT[args.format]
    kwargs = {"root": args.root, "split": split}
    if args.resolution:
        kwargs["resolution"] = args.resolution
    if args.format == "davis2017":
        late = args.late_objects or ("ok" if split == "train" else "problem")
        kwargs["late_objects"] = "allow" if late == "ok" else "problem"
    problems = DATASETS.get(args.format).check_root(level=args.level, **kwargs)
    for p in problems:
        print(p)
    what = f"{args.root} ({args.format}, split {split}, {args.level} check)"
    if problems:
        print(f"{len(problems)} problem(s) in {what}")
        return 1
    print(f"no problems in {what}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
