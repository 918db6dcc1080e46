"""Overlay predictions and/or ground truth on the frames of a dataset's videos.

Writes, per video, an mp4 (or gif) with one panel per source side by side, and a contact-sheet
PNG of evenly spaced frames.

Examples:
    # ground truth only
    vosbench visualize dataset=davis2016 dataset.root=/data/DAVIS --gt --out vis/
    # DAVIS-format predictions (vosbench test output) next to the ground truth, two videos
    vosbench visualize dataset=synthetic --pred runs/test/predictions --gt \\
        --videos video_000 video_001 --out vis/ --format gif
    # YouTube-VIS results.json
    vosbench visualize dataset=ytvis2019 dataset.root=/data/ytvis dataset.split=valid \\
        --pred runs/test/predictions/results.json --score-threshold 0.3 --out vis/

Positional arguments are Hydra overrides of the dataset config (dataset=NAME, dataset.KEY=VALUE),
composed from the shipped configs exactly as vosbench train does, so unknown keys are errors.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path



def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="vosbench visualize", description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 2)[2], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("overrides", nargs="*", metavar="dataset=NAME|dataset.KEY=VALUE",
                   help="dataset config overrides (default dataset: the one in configs/config.yaml)")
    p.add_argument("--pred", metavar="PATH",
                   help="predictions: a DAVIS-format folder (<video>/<frame>.png) or a YouTube-VIS "
                        "results.json")
    p.add_argument("--gt", action="store_true", help="show the ground truth (a panel of its own)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--videos", nargs="+", metavar="ID", help="video ids (default: the first --max-videos)")
    p.add_argument("--max-videos", type=int, default=3, help="videos to render when --videos is not given")
    p.add_argument("--max-frames", type=int, default=None, help="render only the first N frames")
    p.add_argument("--format", choices=["mp4", "gif", "none"], default="mp4",
                   help="animation format ('none': contact sheet only)")
    p.add_argument("--fps", type=float, default=8.0)
    p.add_argument("--sheet-frames", type=int, default=8, help="frames on the contact sheet")
    p.add_argument("--sheet-cols", type=int, default=4)
    p.add_argument("--alpha", type=float, default=0.5, help="mask opacity")
    p.add_argument("--score-threshold", type=float, default=0.5,
                   help="YouTube-VIS: draw instances scoring at least this")
    from vosbench.utils.threads import add_threads_argument

    add_threads_argument(p)
    args = p.parse_args(argv)
    bad = [o for o in args.overrides
           if not o.lstrip("+~").startswith(("dataset", "hydra.searchpath="))]
    if bad:
        p.error(f"only dataset overrides (and hydra.searchpath=) are accepted as positional "
                f"arguments, got {bad}")
    if not args.gt and not args.pred:
        p.error("nothing to draw: pass --pred PATH and/or --gt")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from vosbench.utils.threads import limit_threads

    limit_threads(args.threads)
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from vosbench.config import ConfigError, compose
    from vosbench.data import build_dataset
    from vosbench.engine.inference import ytvis_video_id
    from vosbench.engine.visualize import (davis_source, gt_source, load_ytvis_results, select_videos,
                                           visualize_video, ytvis_source)
    from vosbench.utils.io import DataError

    try:
        cfg = compose(args.overrides)
        dataset = build_dataset(cfg.dataset)
        samples = select_videos(dataset, args.videos, None if args.videos else args.max_videos)
        results = None
        if args.pred and Path(args.pred).suffix == ".json":
            results = load_ytvis_results(args.pred)
        elif args.pred and not Path(args.pred).is_dir():
            raise DataError(f"{args.pred}: neither a predictions folder nor a results .json file")
        for sample in samples:
            sources = []
            if args.gt:
                sources.append(("gt", gt_source(sample)))
            if results is not None:
                sources.append(("pred", ytvis_source(results, sample, ytvis_video_id(sample),
                                                     score_threshold=args.score_threshold)))
            elif args.pred:
                sources.append(("pred", davis_source(args.pred, sample)))
            files = visualize_video(sample, sources, args.out, fmt=args.format, fps=args.fps,
                                    sheet_frames=args.sheet_frames, sheet_cols=args.sheet_cols,
                                    alpha=args.alpha, max_frames=args.max_frames)
            print(f"{sample.video_id}: " + ", ".join(files.values()))
    except (ConfigError, DataError, FileNotFoundError, HydraException, OmegaConfBaseException) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyError as e:
        if e.args and isinstance(e.args[0], str) and e.args[0].startswith("No "):
            print(f"error: {e.args[0]}", file=sys.stderr)
            return 2
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
