#!/usr/bin/env python
"""Evaluate results made by any tool, in the official layouts, with the official numbers.

    python tools/eval.py --task davis2017 --gt DAVIS --results my_results --out eval_out
    python tools/eval.py --task davis2016 --gt DAVIS2016 --results res --out out --workers 2
    python tools/eval.py --task ytvis --gt valid.json --results results.json --out out

Writes ``global_results-<split>.csv`` and ``per-sequence_results-<split>.csv`` (official column
names; ``Sequence`` = ``<seq>_<object id>``; ``T-Mean`` where T is computed) and
``results.json`` (every per-object and per-frame value; for ``ytvis`` the ``global`` AP/AR keys
and per-category AP). Interrupted runs resume from ``<out>/cache``. See
``vosbench/metrics/runner.py`` for the layouts.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vosbench.metrics.runner import TASKS, evaluate_vos_folder, evaluate_ytvis_folder  # noqa: E402
from vosbench.metrics.vis import YTVISFormatError  # noqa: E402
from vosbench.metrics.vos import EvaluationError  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--task", required=True, choices=TASKS)
    p.add_argument("--gt", required=True, help="GT folder (DAVIS layouts, SegTrack v2) or json (ytvis)")
    p.add_argument("--results", required=True, help="results folder, or results.json / zip (ytvis)")
    p.add_argument("--out", required=True, help="output folder for the CSVs and results.json")
    p.add_argument("--split", default=None, help="subset name (default: val, 'valid' for ytvis)")
    p.add_argument("--resolution", default="480p")
    p.add_argument("--workers", type=int, default=1, help="processes over sequences")
    p.add_argument("--allow-missing", action="store_true",
                   help="count missing result frames/sequences as empty (reported)")
    p.add_argument("--ignore-extra-labels", action="store_true",
                   help="davis2017: ignore labels above the first-frame object count (reported) "
                        "instead of stopping as the official script does")
    p.add_argument("--with-t", action="store_true",
                   help="also compute T per object (davis2017/segtrackv2; always on for davis2016)")
    p.add_argument("--no-t", action="store_true", help="skip T for davis2016")
    p.add_argument("--t-from-db-info", action="store_true",
                   help="davis2016: T only for the eval_t sequences of <gt>/db_info.yml (official run)")
    p.add_argument("--fix-uint8-wrap", action="store_true",
                   help="corrected decay for sequences longer than 258 frames (not official)")
    p.add_argument("--no-cache", action="store_true", help="do not read/write the per-sequence cache")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p.parse_args(argv)


def main(argv=None) -> int:
    a = parse_args(argv)
    try:
        if a.task == "ytvis":
            rep = evaluate_ytvis_folder(a.gt, a.results, a.out, split=a.split or "valid")
            for k, v in rep["global"].items():
                print(f"{k:>10s}: {v:.4f}")
            return 0
        with_t = None
        if a.task == "davis2016":
            with_t = not a.no_t
        elif a.with_t:
            with_t = True
        rep = evaluate_vos_folder(
            a.task, a.gt, a.results, a.out, split=a.split or "val", resolution=a.resolution,
            workers=a.workers, allow_missing=a.allow_missing, with_t=with_t,
            t_from_db_info=a.t_from_db_info, fix_uint8_wrap=a.fix_uint8_wrap,
            use_cache=not a.no_cache, progress=not a.quiet,
            ignore_extra_labels=a.ignore_extra_labels)
    except (EvaluationError, YTVISFormatError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    g = rep["global"]
    print(" ".join(f"{k}={g[k]:.4f}" for k in ("J&F", "J_mean", "J_recall", "J_decay", "F_mean",
                                             "F_recall", "F_decay", "T_mean") if k in g))
    for seq, frames in rep.get("ignored_extra_label_frames", {}).items():
        print(f"warning: {seq}: labels above the object count ignored in {len(frames)} frames")
    if rep["missing_frames"]:
        print(f"warning: {rep['missing_frames']} missing result frames counted as empty")
    print(f"wrote {Path(a.out) / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
