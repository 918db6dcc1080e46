"""Evaluate results made by any tool, in the official layouts, with the official numbers.

    vosbench eval --task davis2017 --gt DAVIS --results my_results --out eval_out
    vosbench eval --task davis2016 --gt DAVIS2016 --results res --out out --workers 2
    vosbench eval --task ytvis --gt valid.json --results results.json --out out

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


from vosbench.metrics.runner import TASKS, evaluate_vos_folder, evaluate_ytvis_folder
from vosbench.utils.threads import add_threads_argument, cpu_cores, limit_threads


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="vosbench eval", description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--task", required=True, choices=TASKS)
    p.add_argument("--gt", required=True, help="GT folder (DAVIS layouts, SegTrack v2) or json (ytvis)")
    p.add_argument("--results", required=True, help="results folder, or results.json / zip (ytvis)")
    p.add_argument("--out", required=True, help="output folder for the CSVs and results.json")
    p.add_argument("--split", default=None, help="subset name (default: val; 'all' for segtrackv2, 'valid' for ytvis)")
    p.add_argument("--resolution", default="480p")
    p.add_argument("--workers", type=int, default=cpu_cores(),
                   help="processes over sequences, one CPU thread each (default: the number of "
                        "cores, %(default)s here)")
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
    p.add_argument("--t-all-sequences", action="store_true",
                   help="davis2016: T for every sequence even when db_info.yml lists eval_t flags")
    p.add_argument("--debug", action="store_true",
                   help="show the traceback of an error (default: one line; exit 2 bad input, 3 crash)")
    add_threads_argument(p)
    return p.parse_args(argv)


def main(argv=None) -> int:
    """Exit status: 0 done, 2 bad input (one line naming the file), 3 internal error."""
    from vosbench.engine.cli import guarded

    a = parse_args(argv)
    return guarded(lambda: _main(a), debug=a.debug, prog="vosbench eval")


def _main(a: argparse.Namespace) -> int:
    limit_threads(a.threads)  # before the worker pool starts: the workers inherit it
    if a.task == "ytvis":
        rep = evaluate_ytvis_folder(a.gt, a.results, a.out, split=a.split or "valid")
        for k, v in rep["global"].items():
            print(f"{k:>10s}: {v:.4f}")
        print_outputs(a.out, rep.get("split", a.split or "valid"), ytvis=True)
        return 0
    split = a.split or ("all" if a.task == "segtrackv2" else "val")
    with_t = None
    if a.task == "davis2016":
        with_t = not a.no_t
    elif a.with_t:
        with_t = True
    rep = evaluate_vos_folder(
        a.task, a.gt, a.results, a.out, split=split, resolution=a.resolution,
        workers=a.workers, allow_missing=a.allow_missing, with_t=with_t,
        t_from_db_info=a.t_from_db_info, fix_uint8_wrap=a.fix_uint8_wrap,
        use_cache=not a.no_cache, progress=not a.quiet,
        ignore_extra_labels=a.ignore_extra_labels, t_all_sequences=a.t_all_sequences)
    g = rep["global"]
    print(" ".join(f"{k}={g[k]:.4f}" for k in ("J&F", "J_mean", "J_recall", "J_decay", "F_mean",
                                             "F_recall", "F_decay", "T_mean") if k in g))
    print_attributes(a, rep, split)  # db_info.yml: T protocol and J&F per attribute (#21)
    for seq, frames in rep.get("ignored_extra_label_frames", {}).items():
        print(f"warning: {seq}: labels above the object count ignored in {len(frames)} frames")
    if rep["missing_frames"]:
        print(f"warning: {rep['missing_frames']} missing result frames counted as empty")
    for seq, ids in rep.get("gt_late_objects", {}).items():
        print(f"warning: {seq}: ground-truth object(s) {ids} first appear after the first frame: "
              "not scored (DAVIS-2017 protocol)")
    print_outputs(a.out, split)
    return 0


def print_attributes(a: argparse.Namespace, rep: dict, split: str) -> None:
    """With a ``db_info.yml`` in the GT folder (DAVIS-2016 release; synthetic data): how T was
    computed, and J&F per attribute with the number of sequences behind each and a 95 %
    bootstrap interval over them; also written to ``per-attribute_results-<split>.csv``."""
    from vosbench.bench import stats
    from vosbench.data.datasets.davis_info import load_db_info

    if a.task not in ("davis2016", "davis2017") or not rep.get("per_object"):
        return
    info = load_db_info(a.gt)
    if info is None:
        return
    names = list(info.sequences)
    seqs = list(dict.fromkeys(stats.sequence_of_row(str(r["Sequence"]), names) for r in rep["per_object"]))
    if "T_mean" in rep["global"] and rep.get("t_protocol"):
        k = sum(info.eval_t(s) for s in seqs) if "official" in rep["t_protocol"] else len(seqs)
        print(f"T_mean over {k} of {len(seqs)} sequences: {rep['t_protocol']}")
    table = stats.attribute_table(rep["per_object"], info.attributes_of(seqs), info.attributes,
                                  sequences=names)
    print(f"J&F per attribute ({info.path}; n = sequences; 95 % bootstrap interval over them, "
          f"{stats.DEFAULT_RESAMPLES} resamples, seed {stats.DEFAULT_SEED}):")
    rows = []
    for t in table:
        iv = t["interval"]
        desc = "every sequence" if t["attribute"] == "all" else info.descriptions.get(t["attribute"], "")
        v = "-" if t["value"] is None else f"{t['value']:.4f}"
        ivs = "" if iv is None or t["num_sequences"] < 2 else f"  [{iv[0]:.4f}, {iv[1]:.4f}]"
        print(f"  {t['attribute']:<5s} n={t['num_sequences']:<3d} J&F={v}{ivs}  {desc}")
        rows.append([t["attribute"], desc, t["num_sequences"], v,
                     "" if iv is None else f"{iv[0]:.6f}", "" if iv is None else f"{iv[1]:.6f}"])
    if a.out:
        import csv

        from vosbench.utils.io import atomic_write

        with atomic_write(Path(a.out) / f"per-attribute_results-{split}.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["Attribute", "Description", "Sequences", "J&F-Mean", "J&F-Low95", "J&F-High95"])
            w.writerows(rows)


def print_outputs(out: str, split: str, *, ytvis: bool = False) -> None:
    """The files this run wrote (the CSVs only where the task writes them)."""
    out_p = Path(out)
    names = [f"global_results-{split}.csv"] + ([] if ytvis else [f"per-sequence_results-{split}.csv",
                                                                  f"per-attribute_results-{split}.csv"])
    files = [str(out_p / n) for n in names + ["results.json"] if (out_p / n).is_file()]
    print("wrote " + ", ".join(files))


if __name__ == "__main__":
    sys.exit(main())
