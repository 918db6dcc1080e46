"""Compute a dataset's optical flow once and store it in a ``FlowCache``.

    vosbench precompute-flow --dataset davis2016 --root data/DAVIS --split val \\
        --flow dis --cache-dir cache/flow --pairs prev --workers 2

``--pairs prev`` stores flow(I_t, I_{t-1}) for t >= 1, what warps frame t-1 onto frame t (used
by ``flow_propagation`` and MaskRNN); ``next`` stores flow(I_t, I_{t+1}); ``both`` both.
Sequences are spread over ``--workers`` processes; finished pairs are skipped, so an
interrupted run resumes where it stopped (every file is written atomically). The cache folder is
``<cache-dir>/<--cache-name or sample.meta["dataset"]>-<H>x<W>/<flow cache_key>/<video>/<a>__<b>.npy``
(``FlowCache.dataset_name_for``); point ``flow_propagation``'s ``cache_dir`` at ``--cache-dir``
(and its ``cache_name`` at ``--cache-name`` if you set one).
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import time
from pathlib import Path
from typing import Any, Sequence



def frame_pairs(num_frames: int, pairs: str) -> list[tuple[int, int]]:
    """Ordered (a, b) frame-index pairs whose flow(a, b) is stored."""
    out = []
    if pairs in ("prev", "both"):
        out += [(t, t - 1) for t in range(1, num_frames)]
    if pairs in ("next", "both"):
        out += [(t, t + 1) for t in range(num_frames - 1)]
    if pairs not in ("prev", "next", "both"):
        raise ValueError(f"--pairs must be prev, next or both, got {pairs!r}")
    return out


def precompute_sequence(sample, estimator, cache_dir: str | os.PathLike, cache_name: str | None = None,
                        pairs: str = "prev") -> tuple[int, int]:
    """Fill the cache for one video; returns (pairs computed, pairs already present).

    ``cache_name`` overrides the dataset folder name (default ``sample.meta["dataset"]``, the
    rule ``FlowCache.dataset_name_for`` that ``flow_propagation`` also follows).
    """
    from vosbench.models.flow import FlowCache

    names = list(sample.frame_names) or [f"{t:05d}" for t in range(sample.num_frames)]
    if sample.num_frames < 2:
        return 0, 0
    images: dict[int, Any] = {0: sample.frames[0].image}  # decode each frame once
    size = tuple(images[0].shape[-2:])
    cache = FlowCache(cache_dir, estimator, FlowCache.dataset_name_for(sample, cache_name, size=size))
    todo = [(a, b) for a, b in frame_pairs(sample.num_frames, pairs)
            if not cache.has(sample.video_id, names[a], names[b])]
    done = len(frame_pairs(sample.num_frames, pairs)) - len(todo)
    for i, (a, b) in enumerate(todo):
        for t in (a, b):
            if t not in images:
                images[t] = sample.frames[t].image
        cache.get(sample.video_id, names[a], names[b], images[a], images[b])
        needed = {t for pair in todo[i + 1:] for t in pair}  # keep only frames still needed
        for t in [t for t in images if t not in needed]:
            del images[t]
    return len(todo), done


def _worker(job: tuple[dict, dict, int, str, str | None, str]) -> tuple[str, int, int, float]:
    dataset_cfg, flow_cfg, index, cache_dir, cache_name, pairs = job
    from vosbench.utils.threads import limit_threads

    limit_threads()  # one thread per worker process unless $OMP_NUM_THREADS (set by --threads) says more
    dataset = _build_dataset(dataset_cfg)
    from vosbench.models.flow import build_flow

    sample = dataset[index]
    t0 = time.perf_counter()
    new, old = precompute_sequence(sample, build_flow(flow_cfg), cache_dir, cache_name, pairs)
    return sample.video_id, new, old, time.perf_counter() - t0


_DATASETS: dict[str, Any] = {}


def _build_dataset(cfg: dict):
    key = repr(sorted(cfg.items()))
    if key not in _DATASETS:  # one dataset per worker process
        from vosbench.data import build_dataset

        _DATASETS[key] = build_dataset(dict(cfg))
    return _DATASETS[key]


def parse_kv(items: Sequence[str]) -> dict[str, Any]:
    """``key=value`` strings -> dict, values parsed as YAML scalars (``preset=fast``, ``levels=5``)."""
    import yaml

    out = {}
    for it in items:
        if "=" not in it:
            raise SystemExit(f"expected key=value, got {it!r}")
        k, v = it.split("=", 1)
        out[k] = yaml.safe_load(v)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="vosbench precompute-flow", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", required=True, help="DATASETS name, e.g. davis2016")
    ap.add_argument("--root", required=True, help="dataset root folder")
    ap.add_argument("--split", default="val")
    ap.add_argument("--resize-short", type=int, default=None, help="dataset resize_short (frames' short side)")
    ap.add_argument("--dataset-arg", nargs="*", default=[], metavar="K=V", help="extra dataset kwargs")
    ap.add_argument("--flow", default="dis", help="FLOWS name (configs/flow/<name>.yaml)")
    ap.add_argument("--flow-arg", nargs="*", default=[], metavar="K=V", help="flow kwargs, e.g. preset=fast")
    ap.add_argument("--cache-dir", default="cache/flow")
    ap.add_argument("--cache-name", default=None,
                    help="dataset folder name in the cache (default: sample.meta['dataset'])")
    ap.add_argument("--pairs", default="prev", choices=["prev", "next", "both"])
    ap.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) // 2))
    ap.add_argument("--videos", nargs="*", default=None, help="only these video ids")
    from vosbench.utils.threads import add_threads_argument, limit_threads

    add_threads_argument(ap)
    args = ap.parse_args(argv)
    limit_threads(args.threads)

    dataset_cfg = {"name": args.dataset, "root": args.root, "split": args.split,
                   **({"resize_short": args.resize_short} if args.resize_short else {}),
                   **parse_kv(args.dataset_arg)}
    flow_cfg = {"name": args.flow, **parse_kv(args.flow_arg)}
    from vosbench.models.flow import build_flow

    build_flow(flow_cfg)  # fail fast on a bad flow config / missing weights file
    dataset = _build_dataset(dataset_cfg)
    indices = list(range(len(dataset)))
    if args.videos:
        ids = {s: i for i, s in enumerate(getattr(dataset, "video_ids", None) or
                                         [dataset[i].video_id for i in indices])}
        unknown = sorted(set(args.videos) - set(ids))
        if unknown:
            raise SystemExit(f"unknown video ids {unknown}; the dataset has {sorted(ids)[:10]}...")
        indices = [ids[v] for v in args.videos]
    jobs = [(dataset_cfg, flow_cfg, i, args.cache_dir, args.cache_name, args.pairs) for i in indices]
    t0 = time.perf_counter()
    total_new = total_old = 0
    if args.workers <= 1:
        results = map(_worker, jobs)
    else:
        pool = mp.get_context("spawn").Pool(args.workers)
        results = pool.imap_unordered(_worker, jobs)
    try:
        for k, (vid, new, old, secs) in enumerate(results, 1):
            total_new += new
            total_old += old
            rate = f"{secs / new:.3f} s/pair" if new else "cached"
            print(f"[{k}/{len(jobs)}] {vid}: {new} computed, {old} already cached ({rate})", flush=True)
    finally:
        if args.workers > 1:
            pool.close()
            pool.join()
    print(f"done: {total_new} pairs computed, {total_old} reused, {time.perf_counter() - t0:.1f} s "
          f"-> {Path(args.cache_dir).resolve()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
