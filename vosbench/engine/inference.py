"""Streaming inference: one frame at a time from the method to the writers and the evaluator.

``inference_on_dataset`` runs ``method.predict`` on each video and pulls the prediction's frames
one by one; each frame goes to the writer (official result files) and then to the evaluator, and
is dropped. Memory is therefore bounded by what the method itself keeps (its recurrent state),
not by the video length.

What the method sees: a copy of the sample whose frames carry NO ground truth (``masks``,
``obj_ids``, ``void`` removed); only ``sample.reference`` (first-appearance masks) is visible,
as the semi-supervised protocol requires.

Timing: ``fps`` counts model time only. The time spent inside ``predict`` and inside each
``next(frames)`` is measured, minus the time spent decoding frames from disk (the frame sequence
handed to the method is timed), and excludes writers and evaluators. On CUDA the clock is
synchronised. ``peak_mem_mb`` is the CUDA ``max_memory_allocated`` on GPU and the peak resident
set size (sampled every 5 ms) on CPU; ``peak_mem_delta_mb`` is the increase over the RSS at start.

Under ``torchrun`` the videos are sharded across ranks (video ``i`` on rank ``i % world``); each
rank encodes its predicted masks as COCO RLE and rank 0 gathers them, writes and evaluates in
dataset order. Every rank returns the same result dict.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import threading
import time
import zipfile
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from vosbench.engine import comm
from vosbench.structures import Frame, FramePrediction, VideoPrediction, VideoSample
from vosbench.structures.masks import masks_to_index, rle_decode, rle_encode
from vosbench.utils.io import atomic_write, write_index_png, write_json

logger = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- writers
class PredictionWriter:
    """Consumes a prediction frame by frame and writes result files.

    Call order per video: ``begin_video``, ``write_frame`` for each frame in order,
    ``end_video``; ``finalize`` once at the end (returns ``name -> path`` of what was written).
    """

    def begin_video(self, sample: VideoSample, prediction: VideoPrediction) -> None:
        """Start a video."""

    def write_frame(self, sample: VideoSample, prediction: VideoPrediction, frame: FramePrediction) -> None:
        raise NotImplementedError

    def end_video(self, sample: VideoSample, prediction: VideoPrediction) -> None:
        """Finish a video."""

    def finalize(self) -> dict[str, str]:
        return {}


class DavisWriter(PredictionWriter):
    """DAVIS format: one palette PNG per frame, ``<out_dir>/<video_id>/<frame name>.png``.

    Pixel value = object id (DAVIS palette), 0 = background; where predicted masks overlap, the
    object listed later in ``prediction.obj_ids`` wins. Ids must lie in 1..254.
    """

    def __init__(self, out_dir: str | os.PathLike) -> None:
        self.out_dir = Path(out_dir)
        self.num_frames = 0

    def write_frame(self, sample: VideoSample, prediction: VideoPrediction, frame: FramePrediction) -> None:
        names = sample.frame_names
        name = names[frame.index] if frame.index < len(names) else f"{frame.index:05d}"
        index = masks_to_index(frame.masks.cpu(), prediction.obj_ids.cpu())
        write_index_png(self.out_dir / str(sample.video_id) / f"{name}.png", index.numpy())
        self.num_frames += 1

    def finalize(self) -> dict[str, str]:
        return {"predictions": str(self.out_dir)}


def ytvis_video_id(sample: VideoSample) -> int | str:
    """The integer YouTube-VIS video id of a sample (``meta["ytvis_id"]`` or a numeric video_id)."""
    for key in ("ytvis_id", "video_int_id", "id"):
        if key in sample.meta:
            return int(sample.meta[key])
    vid = str(sample.video_id)
    return int(vid) if vid.isdigit() else vid


class YTVISWriter(PredictionWriter):
    """YouTube-VIS format: ``<out_dir>/results.json`` plus ``<out_dir>/submission.zip``.

    ``results.json`` is a list of ``{"video_id": int, "category_id": int, "score": float,
    "segmentations": [compressed RLE per frame]}``, one entry per predicted instance, the layout
    the YouTube-VIS / OVIS servers expect; the zip holds that file at its root (the CodaLab
    submission). Only the RLE strings are kept in memory, never masks.
    """

    def __init__(self, out_dir: str | os.PathLike, *, zip_name: str = "submission.zip") -> None:
        self.out_dir = Path(out_dir)
        self.zip_name = zip_name
        self.results: list[dict[str, Any]] = []
        self._segs: list[list[dict]] = []

    def begin_video(self, sample: VideoSample, prediction: VideoPrediction) -> None:
        if prediction.labels.numel() and int(prediction.labels.min()) < 0:
            raise ValueError(f"{sample.video_id!r}: YouTube-VIS results need a category per instance, "
                             f"got labels {prediction.labels.tolist()}")
        self._segs = [[] for _ in range(int(prediction.obj_ids.numel()))]

    def write_frame(self, sample: VideoSample, prediction: VideoPrediction, frame: FramePrediction) -> None:
        for segs, rle in zip(self._segs, rle_encode(frame.masks.cpu())):
            segs.append({"size": [int(v) for v in rle["size"]], "counts": rle["counts"]})

    def end_video(self, sample: VideoSample, prediction: VideoPrediction) -> None:
        vid = ytvis_video_id(sample)
        for n, segs in enumerate(self._segs):
            self.results.append({"video_id": vid, "category_id": int(prediction.labels[n]),
                                 "score": float(prediction.scores[n]), "segmentations": segs})
        self._segs = []

    def finalize(self) -> dict[str, str]:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        json_path = self.out_dir / "results.json"
        write_json(json_path, self.results)
        zip_path = self.out_dir / self.zip_name
        with atomic_write(zip_path, "wb") as f:
            with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_DEFLATED) as zf:
                zf.write(json_path, arcname="results.json")
        return {"results": str(json_path), "submission": str(zip_path)}


def build_writer(task: str, out_dir: str | os.PathLike) -> PredictionWriter:
    """``DavisWriter`` for VOS datasets, ``YTVISWriter`` for VIS datasets."""
    if task == "vis":
        return YTVISWriter(out_dir)
    if task == "vos":
        return DavisWriter(out_dir)
    raise ValueError(f"unknown task {task!r}; expected 'vos' or 'vis'")


# ----------------------------------------------------------------------------- measurement
class _Clock:
    """Accumulates decode time of the frames handed to the method."""

    def __init__(self) -> None:
        self.io = 0.0


class _MethodFrames(Sequence[Frame]):
    """The frames a method may see: ground truth stripped, decode time recorded."""

    def __init__(self, frames: Sequence[Frame], clock: _Clock) -> None:
        self._frames = frames
        self._clock = clock

    def __len__(self) -> int:
        return len(self._frames)

    @staticmethod
    def _strip(frame: Frame) -> Frame:
        return Frame(image=frame.image, index=frame.index, name=frame.name)

    def __getitem__(self, i):  # type: ignore[override]
        t0 = time.perf_counter()
        out = self._frames[i]
        self._clock.io += time.perf_counter() - t0
        if isinstance(out, list):
            return [self._strip(f) for f in out]
        return self._strip(out)

    def __iter__(self) -> Iterator[Frame]:
        it = iter(self._frames)
        while True:
            t0 = time.perf_counter()
            try:
                frame = next(it)
            except StopIteration:
                return
            finally:
                self._clock.io += time.perf_counter() - t0
            yield self._strip(frame)


def method_view(sample: VideoSample, clock: _Clock | None = None) -> VideoSample:
    """A copy of ``sample`` whose frames carry no ground truth (only ``reference`` remains)."""
    return dataclasses.replace(sample, frames=_MethodFrames(sample.frames, clock or _Clock()))


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):  # not Linux: fall back to the lifetime peak
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class PeakMemory:
    """Peak memory during a block: CUDA max allocated on GPU, sampled RSS on CPU (MB)."""

    def __init__(self, device: torch.device, interval: float = 0.005) -> None:
        self.device = device
        self.interval = interval
        self.start_rss = 0
        self.peak_rss = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _poll(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak_rss = max(self.peak_rss, _rss_bytes())

    def __enter__(self) -> "PeakMemory":
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        self.start_rss = self.peak_rss = _rss_bytes()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.peak_rss = max(self.peak_rss, _rss_bytes())

    def result(self) -> dict[str, float]:
        out = {"peak_rss_mb": self.peak_rss / 2**20,
               "peak_mem_delta_mb": (self.peak_rss - self.start_rss) / 2**20}
        if self.device.type == "cuda":
            out["peak_mem_mb"] = torch.cuda.max_memory_allocated(self.device) / 2**20
        else:
            out["peak_mem_mb"] = out["peak_rss_mb"]
        return out


# ----------------------------------------------------------------------------- streaming
def _grad_context(method: nn.Module):
    return contextlib.nullcontext() if getattr(method, "needs_grad_at_test", False) else torch.inference_mode()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_method(method: nn.Module, sample: VideoSample, device: torch.device,
               stats: dict[str, float]) -> VideoPrediction:
    """``method.predict`` on a GT-free view of ``sample``; the returned prediction's frames are
    timed as they are pulled (``stats["model_time"]``, ``stats["frames"]`` accumulate) and come
    out on CPU as ordinary (non-inference) tensors."""
    clock = _Clock()
    view = method_view(sample, clock)
    t0 = time.perf_counter()
    with _grad_context(method):
        pred = method.predict(view)
    _sync(device)
    stats["model_time"] += time.perf_counter() - t0 - clock.io
    clock.io = 0.0
    if pred.video_id != sample.video_id:
        raise ValueError(f"{type(method).__name__}.predict answered video {pred.video_id!r} for "
                         f"{sample.video_id!r}")
    inner = iter(pred.frames)

    def frames() -> Iterator[FramePrediction]:
        while True:
            t = time.perf_counter()
            with _grad_context(method):
                try:
                    fp = next(inner)
                except StopIteration:
                    return
            _sync(device)
            stats["model_time"] += time.perf_counter() - t - clock.io
            clock.io = 0.0
            stats["frames"] += 1
            # Clone outside inference mode so writers/evaluators get ordinary CPU tensors.
            scores = fp.scores.detach().cpu().clone() if fp.scores is not None else None
            yield FramePrediction(fp.index, fp.masks.detach().cpu().clone(), scores)

    return VideoPrediction(pred.video_id, pred.obj_ids.cpu(), pred.scores.detach().cpu(),
                           pred.labels.cpu(), frames(), tuple(pred.orig_size), pred.num_frames,
                           dict(pred.meta))


def _consume(sample: VideoSample, pred: VideoPrediction, writer: PredictionWriter | None,
             evaluator: Any, on_frame: Callable[[FramePrediction], None] | None = None) -> None:
    """Stream ``pred`` through the writer and the evaluator (or just drain it)."""
    if writer is not None:
        writer.begin_video(sample, pred)

    def tee() -> Iterator[FramePrediction]:
        for fp in pred.iter_frames():
            if writer is not None:
                writer.write_frame(sample, pred, fp)
            if on_frame is not None:
                on_frame(fp)
            yield fp

    stream = dataclasses.replace(pred, frames=tee())
    if evaluator is not None:
        evaluator.process(sample, stream)
        # An evaluator may stop early (e.g. no GT after some frame); finish writing anyway.
        for _ in stream.frames:
            pass
    else:
        for _ in stream.frames:
            pass
    if writer is not None:
        writer.end_video(sample, pred)


def _encode(pred: VideoPrediction) -> dict[str, Any]:
    """Drain a prediction into RLE (for gathering across ranks); validates as it goes."""
    frames = [(fp.index, rle_encode(fp.masks), None if fp.scores is None else fp.scores.tolist())
              for fp in pred.iter_frames()]
    return {"video_id": pred.video_id, "obj_ids": pred.obj_ids.tolist(), "scores": pred.scores.tolist(),
            "labels": pred.labels.tolist(), "orig_size": list(pred.orig_size),
            "num_frames": pred.num_frames, "meta": pred.meta, "frames": frames}


def _decode(d: dict[str, Any]) -> VideoPrediction:
    h, w = d["orig_size"]
    n = len(d["obj_ids"])

    def frames() -> Iterator[FramePrediction]:
        for index, rles, scores in d["frames"]:
            masks = (torch.from_numpy(np.stack([rle_decode(r) for r in rles])) if n
                     else torch.zeros((0, h, w), dtype=torch.bool))
            yield FramePrediction(index, masks, None if scores is None else torch.tensor(scores))

    return VideoPrediction(d["video_id"], torch.tensor(d["obj_ids"], dtype=torch.int64),
                           torch.tensor(d["scores"], dtype=torch.float32),
                           torch.tensor(d["labels"], dtype=torch.int64), frames(), (h, w),
                           d["num_frames"], d["meta"])


def inference_on_dataset(
    method: nn.Module,
    dataset: Sequence[VideoSample],
    *,
    evaluator: Any = None,
    writer: PredictionWriter | None = None,
    device: str | torch.device = "cpu",
    max_videos: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Run ``method`` over ``dataset`` (first ``max_videos`` videos), streaming frame by frame.

    Args:
        method: a ``VideoMethod`` (moved to ``device`` and put in eval mode).
        dataset: a sequence of ``VideoSample``.
        evaluator: optional ``Evaluator``; it is reset first and its ``evaluate()`` keys are
            merged into the result.
        writer: optional ``PredictionWriter`` (``DavisWriter`` / ``YTVISWriter``).
        device: where the method runs.
        max_videos: evaluate only the first N videos.
        progress: show a tqdm bar (rank 0).
    Returns:
        ``{<metric keys>..., "fps", "model_time_s", "num_videos", "num_frames", "peak_mem_mb",
        "peak_rss_mb", "peak_mem_delta_mb", "files": {...}}``; identical on every rank.
    """
    device = torch.device(device)
    method.to(device).eval()
    # The ground truth is always scored at its original size (predictions come at the original
    # size): with ``resize_short`` the method sees resized frames and the evaluator gets the
    # same videos read by the original-size twin of the dataset.
    gt_view = dataset
    if evaluator is not None and getattr(dataset, "resize_short", None) and hasattr(dataset, "original_size"):
        gt_view = dataset.original_size()
    n = len(dataset) if max_videos is None else min(int(max_videos), len(dataset))
    rank, world = comm.get_rank(), comm.get_world_size()
    mine = list(range(rank, n, world))
    if evaluator is not None:
        evaluator.reset()
    stats = {"model_time": 0.0, "frames": 0}
    encoded: list[tuple[int, dict]] = []
    bar = None
    if progress and comm.is_main_process():
        from tqdm.auto import tqdm

        bar = tqdm(total=len(mine), desc=f"inference ({type(method).__name__})", dynamic_ncols=True)
    with PeakMemory(device) as mem:
        for i in mine:
            sample = dataset[i]
            pred = run_method(method, sample, device, stats)
            if world == 1:
                _consume(gt_view[i] if gt_view is not dataset else sample, pred, writer, evaluator)
            else:
                encoded.append((i, _encode(pred)))
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()

    local = {"model_time": stats["model_time"], "frames": stats["frames"], **mem.result()}
    if world > 1:
        # Rank 0 alone receives the encoded predictions, then writes and evaluates everything
        # in dataset order.
        all_stats = comm.all_gather_object(local)
        gathered = comm.gather_object(encoded)
        if comm.is_main_process():
            by_index = {i: d for enc in gathered for i, d in enc}
            for i in range(n):
                _consume(gt_view[i], _decode(by_index[i]), writer, evaluator)
    else:
        all_stats = [local]

    result: dict[str, Any] = {}
    if comm.is_main_process():
        if evaluator is not None:
            result.update(evaluator.evaluate())
        if writer is not None:
            result["files"] = writer.finalize()
    result = comm.broadcast_object(result)
    model_time = sum(s["model_time"] for s in all_stats)
    frames = sum(s["frames"] for s in all_stats)
    result.update({
        # Per-process throughput: frames over the summed model time of all processes.
        "fps": frames / model_time if model_time > 0 else float("nan"),
        "model_time_s": model_time,
        "num_videos": n,
        "num_frames": frames,
        "peak_mem_mb": max(s["peak_mem_mb"] for s in all_stats),
        "peak_rss_mb": max(s["peak_rss_mb"] for s in all_stats),
        "peak_mem_delta_mb": max(s["peak_mem_delta_mb"] for s in all_stats),
    })
    return result


# ----------------------------------------------------------------------------- test job
def evaluate(cfg: Any) -> dict[str, Any]:
    """The job behind ``tools/test.py``: build, load weights, stream, write, evaluate, report.

    Writes ``<output_dir>/predictions/`` (DAVIS PNGs, or YouTube-VIS ``results.json`` +
    ``submission.zip``) when ``save_predictions``, and ``<output_dir>/metrics.json``.
    """
    from vosbench.engine.defaults import run_job

    return run_job(_evaluate, cfg)


def _evaluate(cfg: Any, device: torch.device) -> dict[str, Any]:
    from vosbench.config import ConfigError
    from vosbench.data import build_dataset
    from vosbench.engine.defaults import build_method, load_covering_checkpoint, seed_everything

    out = Path(cfg.output_dir)
    seed_everything(int(cfg.seed))
    # checkpoint= is loaded strictly over the built method: it covers the pretrained files
    # (ImageNet trunks, COCO detector), which are then not needed (vosbench.models.weights).
    weight_reports: list = []
    method = build_method(cfg, device, covered_by=cfg.checkpoint or None, reports=weight_reports)
    if cfg.checkpoint:
        load_covering_checkpoint(method, cfg.checkpoint, weight_reports)
        logger.info("Loaded weights from %s", cfg.checkpoint)
    elif getattr(method, "trainable", False):
        logger.warning("method %r is trainable but no checkpoint=PATH was given: evaluating the "
                       "weights its constructor produced (pretrained files named in its config, "
                       "random elsewhere)", cfg.method.name)
    dataset = build_dataset(cfg.dataset)
    task = getattr(dataset, "task", getattr(method, "task", "vos"))
    if getattr(method, "task", task) != task:
        raise ConfigError(f"method {cfg.method.name!r} solves task {method.task!r} but dataset "
                          f"{cfg.dataset.name!r} is a {task!r} dataset")
    evaluator = None
    # YouTube-VIS valid/test JSONs have no annotations; DAVIS test-dev carries references only.
    has_gt = getattr(dataset, "has_annotations", True) and not getattr(dataset, "hides_gt", False)
    if has_gt:
        from vosbench.metrics import build_evaluator

        evaluator = build_evaluator(dataset.metric)
    else:
        logger.info("%s split %r has no ground truth: writing predictions only",
                    cfg.dataset.name, cfg.dataset.get("split"))
    writer = build_writer(task, out / "predictions") if cfg.save_predictions else None
    result = inference_on_dataset(method, dataset, evaluator=evaluator, writer=writer, device=device,
                                  max_videos=cfg.max_videos, progress=comm.is_main_process())
    result = {"method": cfg.method.name, "dataset": cfg.dataset.name,
              "checkpoint": cfg.checkpoint, "device": str(device), "world_size": comm.get_world_size(),
              **result}
    if comm.is_main_process():
        write_json(out / "metrics.json", result, indent=2)
        per_seq = getattr(evaluator, "per_sequence", None)
        if callable(per_seq):
            rows = per_seq()
            if rows:
                write_json(out / "per_sequence.json", rows, indent=2, default=str)
    return result
