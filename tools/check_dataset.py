#!/usr/bin/env python
"""List every problem of a dataset folder at once; exit 1 if there is any.

    python tools/check_dataset.py /data/DAVIS --format davis2017 --split val
    python tools/check_dataset.py ../shared/data/davis2016-mini --format davis2016

Checks the structure (split files, frame/annotation lists and counts, JSON layout, unknown ids,
RLE sizes) and then decodes every frame and annotation (corrupt images, non-palette or
odd-valued PNGs, size mismatches).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a clone without install

FORMATS = ("davis2016", "davis2017", "segtrackv2", "ytvis2019", "ytvis2021")
DEFAULT_SPLIT = {"davis2016": "val", "davis2017": "val", "segtrackv2": "all", "ytvis2019": "train",
                 "ytvis2021": "train"}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("root", help="dataset folder")
    ap.add_argument("--format", required=True, choices=FORMATS)
    ap.add_argument("--split", default=None, help="split to check (default: val / all / train)")
    ap.add_argument("--resolution", default=None, help="DAVIS: 480p | 1080p | Full-Resolution")
    args = ap.parse_args(argv)

    from vosbench.data import datasets  # noqa: F401
    from vosbench.registry import DATASETS

    kwargs = {"root": args.root, "split": args.split or DEFAULT_SPLIT[args.format]}
    if args.resolution:
        kwargs["resolution"] = args.resolution
    problems = DATASETS.get(args.format).check_root(**kwargs)
    for p in problems:
        print(p)
    if problems:
        print(f"{len(problems)} problem(s) in {args.root} ({args.format}, split {kwargs['split']})")
        return 1
    print(f"no problems in {args.root} ({args.format}, split {kwargs['split']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
