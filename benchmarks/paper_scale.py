#!/usr/bin/env python
"""Paper-scale smoke harness: every stage of a method's paper recipe, built at paper size.

For each stage ``configs/experiment/<method>/<stage>.yaml`` (or the one named with ``--stage``)
this composes ``+experiment=<method>/<stage>`` with ``allow_random_init=true`` (printed: no
pretrained file is needed here, the weights are random), prepares the data the stage's
``recipe.data`` names, and runs what ``recipe.runs`` lists:

* ``train``: 2 iterations of ``training_step`` + backward + optimizer step with the stage's
  optimizer, clip sampling (``trainer.clip``: clip length, stride, flips) and model, one clip per
  step; the loss, seconds per iteration and peak memory are measured.
* ``finetune``: ``predict`` on the reference frame alone (a method's online fine-tuning runs
  there); seconds per fine-tuning iteration.
* ``predict``: one ``predict`` on the first ``recipe.predict_frames`` frames of a real
  davis2016-mini video (as DAVIS for VOS methods, as its YouTube-VIS json for VIS methods).

``--smoke`` adds ``recipe.smoke`` (reduced resolution); without it the stage runs at the paper's
resolution. ``recipe.harness`` (bounded cost, e.g. fine-tuning iterations) always applies.
Output, one line per stage, then its memory projection::

    stage stage2_video: ok  loss 4.1234  8.52s/it  peak 5123MB
      ...
      memory/sample 812MB (1 object(s), activations saved for backward); projected paper batch 1 on 1 GPU(s): 5.3 GB/GPU (x6.9 pixels)
      memory: static 1650MB (...), saved for backward 812MB, first-iteration growth beyond the model 790MB

Memory per sample is the CUDA allocated growth of one clip's step on a GPU, the activations the
autograd graph saves for backward on CPU (``SavedActivations``: RSS growth is not reliable there).

Exit status 1 if any stage failed (its line says ``FAILED`` and why). The stage contract
(``recipe:`` keys) is in configs/experiment/README.md.

    python benchmarks/paper_scale.py --method lip --smoke
    python benchmarks/paper_scale.py --method maskprop --stage ytvis_train
    python benchmarks/paper_scale.py --method lip --smoke --override method=lip_tiny   # CI: tiny model
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Sequence

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

SHARED = REPO.parent / "shared" / "data"
MINI = SHARED / "davis2016-mini"
MINI_YTVIS = SHARED / "formats" / "davis2016-mini_ytvis.json"
YTVIS_SAMPLE = SHARED / "formats" / "ytvis2019_sample_ann.json"
RUN_KINDS = ("train", "finetune", "predict")
DATA_KINDS = ("coco", "davis2016_mini", "davis2016_mini_ytvis", "ytvis2019_sample", "none")
RECIPE_KEYS = {"paper", "data", "runs", "paper_batch", "paper_gpus", "paper_accum",
               "paper_objects_per_sample", "harness", "smoke", "predict_frames"}


# ----------------------------------------------------------------------------- stages
def find_stages(method: str, config_dir: Path | None = None) -> list[str]:
    """Stage names of ``configs/experiment/<method>/`` (sorted file stems)."""
    d = (config_dir or REPO / "configs") / "experiment" / method
    return sorted(p.stem for p in d.glob("*.yaml")) if d.is_dir() else []


def read_recipe(cfg: Any, where: str) -> dict:
    """The validated ``recipe:`` block of a composed stage config."""
    from vosbench.engine.checkpoint import plain_config

    r = plain_config(cfg.get("recipe")) if cfg.get("recipe") is not None else None
    if not isinstance(r, dict):
        raise ValueError(f"{where}: no `recipe:` block (see configs/experiment/README.md)")
    unknown = sorted(set(r) - RECIPE_KEYS)
    if unknown:
        raise ValueError(f"{where}: unknown recipe key(s) {unknown}; known: {sorted(RECIPE_KEYS)}")
    if r.get("data") not in DATA_KINDS:
        raise ValueError(f"{where}: recipe.data must be one of {DATA_KINDS}, got {r.get('data')!r}")
    runs = r.get("runs") or []
    if not runs or any(k not in RUN_KINDS for k in runs):
        raise ValueError(f"{where}: recipe.runs must be a non-empty subset of {RUN_KINDS}, got {runs!r}")
    if "train" in runs and r["data"] == "none":
        raise ValueError(f"{where}: a `train` run needs recipe.data (not none)")
    r.setdefault("paper_batch", 1)
    r.setdefault("paper_gpus", 1)
    r.setdefault("paper_accum", 1)
    r.setdefault("harness", [])
    r.setdefault("smoke", [])
    r.setdefault("predict_frames", 4)
    return r


def write_coco_from_mini(root: Path, *, per_video: int = 2) -> Path:
    """A COCO-format folder of real davis2016-mini frames and their masks (polygons and RLE)."""
    import numpy as np

    from vosbench.data import build_dataset
    from vosbench.data.datasets.coco import write_coco_instances

    ds = build_dataset({"name": "davis2016", "root": str(MINI), "split": "val"})
    images = []
    for v in range(len(ds)):
        s = ds[v]
        for t in range(min(per_video, s.num_frames)):
            fr = s.frames[t]
            rgb = (fr.image.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
            inst = [{"mask": m.numpy(), "category_id": 1, "format": "polygon" if (v + t) % 2 else "rle"}
                    for m in (fr.masks if fr.masks is not None else []) if bool(m.any())]
            images.append({"file_name": f"{s.video_id}_{t:05d}.jpg", "image": rgb, "instances": inst})
    write_coco_instances(root, "train2017", images, {1: "object"})
    return root


def write_ytvis_sample(root: Path) -> Path:
    """A YouTube-VIS folder with the shared annotation sample (``ytvis2019_sample_ann.json``,
    mmtracking's per-image layout: 1 video, 20 frames of 720x1280, 30 instance masks) as
    ``train.json``. Its frames are not shared: stand-in JPEGs (fixed-seed noise) at the annotated
    size are written under ``JPEGImages/`` (the annotations, their RLE masks and the loader are real)."""
    import shutil

    import numpy as np
    from PIL import Image

    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(YTVIS_SAMPLE, root / "train.json")
    rng = np.random.default_rng(0)
    for im in json.loads(YTVIS_SAMPLE.read_text())["images"]:
        p = root / "JPEGImages" / im["file_name"]
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (im["height"], im["width"], 3), dtype=np.uint8)).save(p, quality=75)
    return root


def data_overrides(kind: str, workdir: Path) -> list[str]:
    """Dataset overrides (and the data itself, for ``coco``) of a ``recipe.data`` kind."""
    if kind == "coco":
        root = write_coco_from_mini(workdir / "coco")
        return ["dataset=coco", f"dataset.root={root}", "dataset.split=train2017", "trainer.train_split=train2017"]
    if kind == "davis2016_mini":
        return ["dataset=davis2016", f"dataset.root={MINI}", "dataset.split=val", "trainer.train_split=val"]
    if kind == "davis2016_mini_ytvis":
        return ["dataset=ytvis2019", f"dataset.root={MINI}", f"+dataset.ann_file={MINI_YTVIS}",
                f"dataset.image_dir={MINI / 'JPEGImages' / '480p'}", "dataset.split=train",
                "trainer.train_split=train"]
    if kind == "ytvis2019_sample":
        root = write_ytvis_sample(workdir / "ytvis_sample")
        return ["dataset=ytvis2019", f"dataset.root={root}", "dataset.split=train", "trainer.train_split=train"]
    return []


def _fix_ytvis_override(ov: list[str], cfg_dataset: Any) -> list[str]:
    # ann_file is a key of configs/dataset/ytvis2019.yaml: set it without `+`
    return [o[1:] if o.startswith("+dataset.ann_file") and "ann_file" in cfg_dataset else o for o in ov]


def compose_stage(method: str, stage: str, *, smoke: bool, workdir: Path, extra: Sequence[str] = (),
                  device: str = "cpu") -> tuple[Any, dict]:
    """The composed config of one stage as the harness runs it, and its recipe."""
    from vosbench.config import compose

    exp = f"+experiment={method}/{stage}"
    recipe = read_recipe(compose([exp, *extra]), f"configs/experiment/{method}/{stage}.yaml")
    data = data_overrides(recipe["data"], workdir)
    if data and data[0] == "dataset=ytvis2019":
        probe = compose([exp, *extra, *data[:1]])
        data = _fix_ytvis_override(data, probe.dataset)
    # the caller's overrides come last: they win over the harness's and the smoke ones
    over = [exp, *data, "allow_random_init=true", f"device={device}", "trainer.num_workers=0",
            "trainer.batch_size=1", "trainer.accum_steps=1", "trainer.data_check=off",
            *recipe["harness"], *(recipe["smoke"] if smoke else []), *extra]
    return compose(over), recipe


# ----------------------------------------------------------------------------- measuring
@dataclasses.dataclass
class Measure:
    seconds: float = 0.0
    cpu_seconds: float = 0.0   # process CPU time (wall time inflates when the cores are shared)
    peak_mb: float = 0.0       # process peak (CUDA: max allocated) during the block
    start_mb: float = 0.0      # at the start of the block (CUDA: allocated)


def _release_freed_memory() -> None:
    """Give the heap memory freed by earlier work back to the OS (glibc ``malloc_trim``), so
    a block's RSS growth is its own and not hidden by memory a previous stage left cached."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: RSS growth may be under-estimated
        pass


@contextlib.contextmanager
def measure(device: Any) -> Any:
    """Time and peak memory of a block: CUDA max allocated on GPU, sampled RSS on CPU (MB)."""
    import gc

    import torch

    from vosbench.engine.inference import PeakMemory

    gc.collect()
    _release_freed_memory()
    m = Measure()
    dev = torch.device(device)
    start_cuda = torch.cuda.memory_allocated(dev) / 2**20 if dev.type == "cuda" else 0.0
    pm = PeakMemory(dev)
    t0, c0 = time.perf_counter(), time.process_time()
    with pm:
        yield m
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
    m.seconds = time.perf_counter() - t0
    m.cpu_seconds = time.process_time() - c0
    r = pm.result()
    m.peak_mb = r["peak_mem_mb"]
    m.start_mb = start_cuda if dev.type == "cuda" else pm.start_rss / 2**20


def amp_context(device: Any, dtype: Any) -> Any:
    import torch

    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=dtype)


def _tensor_mb(tensors) -> float:
    return sum(t.numel() * t.element_size() for t in tensors) / 2**20


class SavedActivations:
    """Bytes of the distinct storages autograd saves for backward inside the block (MB).

    That is the memory one clip keeps alive from its forward to its backward, the part of a
    training step that grows with the batch; the storages of ``exclude`` (the parameters, which
    convolutions and linear layers save too) are not counted. It is read from the autograd graph
    (``torch.autograd.graph.saved_tensors_hooks``), so it does not depend on the allocator: on CPU
    a block's RSS growth hides everything it allocates inside memory that glibc kept from earlier
    work (a second stage in the same process can show 0 MB growth). Views of one storage count
    once; a storage freed before backward and reused by another saved tensor counts twice (an
    over-estimate, rare: saved tensors live until backward). The transients of the backward (the
    gradients of the activations) are not in it: on CPU memory/sample is a lower bound, the CUDA
    number (allocated growth) includes them.
    """

    def __init__(self, exclude: Any = ()) -> None:
        self._skip = {self._key(t) for t in exclude}
        self._sizes: dict = {}
        self._hooks: Any = None

    @staticmethod
    def _key(t: Any) -> tuple:
        st = t.untyped_storage()
        return (str(st.device), st.data_ptr())

    def _pack(self, t: Any) -> Any:
        try:
            key, nbytes = self._key(t), t.untyped_storage().nbytes()
        except (RuntimeError, NotImplementedError, TypeError):  # no storage (sparse, nested, ...)
            return t
        if key[1] and key not in self._skip:
            self._sizes[key] = max(self._sizes.get(key, 0), nbytes)
        return t

    @property
    def mb(self) -> float:
        return sum(self._sizes.values()) / 2**20

    def __enter__(self) -> "SavedActivations":
        import torch

        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t)
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._hooks.__exit__(*exc)


def train_iterations(cfg: Any, method: Any, device: Any, iters: int, *, amp_dtype: Any = None,
                     step_fn: Callable[[Any], Any] | None = None) -> dict:
    """``iters`` optimizer steps on the stage's clips (batch 1): loss, s/it, memory.

    Memory (MB): ``static`` = memory before the first iteration (CUDA: allocated; CPU: process
    RSS) + the gradients and optimizer state it created (per model, not per clip).
    ``mem_per_sample`` (one clip): on CUDA the first iteration's allocated-memory peak growth minus
    those gradients and optimizer state (everything the step needs beyond the model, transients
    included); on CPU the activations saved for backward (``SavedActivations``, max over the
    iterations), because RSS growth is not reliable there (memory glibc kept from earlier work
    hides it). ``saved_mb`` (both devices) and ``rss_growth_mb`` (CPU; CUDA: allocated growth) are
    returned too. ``mem_source`` says which one ``mem_per_sample`` is.

    Returns:
        ``{"loss", "loss_parts", "s_per_it", "cpu_s_per_it", "peak_mb", "mem_per_sample_mb",
        "mem_source", "saved_mb", "growth_mb", "static_mb", "objects", "iters"}``.
    """
    import torch

    from vosbench.data import ClipDataset, build_dataset, collate_clips
    from vosbench.engine.defaults import build_optimizer, build_scheduler, epoch_schedule

    t = cfg.trainer
    dataset = build_dataset(cfg.dataset, split=t.train_split)
    _, sched_cfg, clip_cfg = epoch_schedule(t, dataset)
    clips = ClipDataset(dataset, seed=int(cfg.seed), **clip_cfg)
    optimizer = build_optimizer(t.optimizer, method)
    scheduler = build_scheduler(sched_cfg, optimizer, warmup_iters=t.warmup_iters,
                                warmup_factor=t.warmup_factor)
    method.train()
    losses, times, cpu, peaks, objects, saved = [], [], [], [], [], []
    first = Measure()
    per_model_mb = 0.0
    params = list(method.parameters())
    for i in range(iters):
        batch = collate_clips([clips[i % len(clips)]])
        if hasattr(batch, "to"):
            batch = batch.to(device)
        objects.append(float(batch.obj_valid.sum()) / batch.batch_size)
        with measure(device) as m:
            with amp_context(device, amp_dtype), SavedActivations(exclude=params) as acts:
                out = (step_fn or method.training_step)(batch)
                total = sum(v.float() for v in out.values())
            saved.append(acts.mb)
            optimizer.zero_grad(set_to_none=True)
            total.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
        if i == 0:
            first = m
            grads = [p.grad for p in method.parameters() if p.grad is not None]
            state = [v for st in optimizer.state.values() for v in st.values() if hasattr(v, "numel")]
            per_model_mb = _tensor_mb(grads) + _tensor_mb(state)
        if not math.isfinite(float(total.detach())):
            raise FloatingPointError(f"non-finite loss at iteration {i}: "
                                     f"{ {k: float(v) for k, v in out.items()} }")
        losses.append(float(total.detach()))
        parts = {k: float(v.detach()) for k, v in out.items()}
        times.append(m.seconds)
        cpu.append(m.cpu_seconds)
        peaks.append(m.peak_mb)
    growth = max(0.0, first.peak_mb - first.start_mb - per_model_mb)
    on_cuda = torch.device(device).type == "cuda"
    per_sample = growth if on_cuda else max(saved)
    return {"loss": losses[-1], "loss_parts": parts, "s_per_it": sum(times) / len(times),
            "cpu_s_per_it": sum(cpu) / len(cpu),
            "peak_mb": max(peaks), "mem_per_sample_mb": per_sample,
            "mem_source": "CUDA allocated growth" if on_cuda else "activations saved for backward",
            "saved_mb": max(saved), "growth_mb": growth,
            "static_mb": first.start_mb + per_model_mb, "objects": sum(objects) / len(objects), "iters": iters}


def short_clip(sample: Any, num_frames: int) -> Any:
    """The first ``num_frames`` frames of a ``VideoSample`` (references inside them kept)."""
    n = min(num_frames, sample.num_frames)
    return dataclasses.replace(
        sample, frames=[sample.frames[t] for t in range(n)],
        reference={t: r for t, r in sample.reference.items() if t < n},
        frame_names=list(sample.frame_names[:n]))


def predict_sample(task: str, num_frames: int) -> Any:
    """A short real clip: davis2016-mini (VOS) or the same video through its YouTube-VIS json."""
    from vosbench.data import build_dataset

    if task == "vis":
        ds = build_dataset({"name": "ytvis2019", "root": str(MINI), "split": "train", "ann_file": str(MINI_YTVIS),
                            "image_dir": str(MINI / "JPEGImages" / "480p")})
    else:
        ds = build_dataset({"name": "davis2016", "root": str(MINI), "split": "val"})
    return short_clip(ds[0], num_frames)


def run_predict(method: Any, sample: Any, device: Any, *, amp_dtype: Any = None) -> dict:
    """One ``predict`` (materialised): seconds, s/frame, peak memory, online fine-tuning log."""
    import torch

    method.eval()
    ctx = contextlib.nullcontext() if getattr(method, "needs_grad_at_test", False) else torch.inference_mode()
    with measure(device) as m, ctx, amp_context(device, amp_dtype):
        pred = method.predict(sample)
        pred = pred.materialize() if hasattr(pred, "materialize") else pred
    meta = getattr(pred, "meta", {}) or {}
    ft = [e for e in meta.get("online_log", []) if e.get("event") == "finetune"]
    ft_iters = sum(int(e.get("iters", 0)) for e in ft)
    ft_loss = sum(ft[-1].get("losses", {}).values()) if ft and ft[-1].get("losses") else None
    return {"seconds": m.seconds, "cpu_seconds": m.cpu_seconds, "s_per_frame": m.seconds / max(1, sample.num_frames),
            "peak_mb": m.peak_mb, "finetune_iters": ft_iters, "finetune_loss": ft_loss,
            "num_frames": sample.num_frames, "num_objects": len(pred.obj_ids)}


def _short_side(v: Any) -> float | None:
    if v is None:
        return None
    if isinstance(v, (list, tuple)) or hasattr(v, "__len__"):
        vals = [float(x) for x in v]
        return max(vals) if vals else None
    return float(v)


def pixel_ratio(paper_cfg: Any, run_cfg: Any) -> float:
    """Paper pixels / measured pixels per frame, from ``method.min_size`` (detectors) or else
    ``trainer.clip.crop_size`` / ``dataset.resize_short``: 1 when the run is at paper resolution."""
    for get in (lambda c: _short_side(c.method.get("min_size")),
                lambda c: (math.prod(c.trainer.clip.crop_size) ** 0.5
                           if c.trainer.clip.get("crop_size") else None),
                lambda c: _short_side(c.dataset.get("resize_short")) or _short_side(c.method.get("resize_short"))):
        a, b = get(paper_cfg), get(run_cfg)
        if a and b:
            return (a / b) ** 2
    return 1.0


@dataclasses.dataclass
class StageResult:
    name: str
    ok: bool
    line: str
    details: list[str]
    numbers: dict


def run_stage(method: str, stage: str, *, smoke: bool, device: str = "cpu", extra: Sequence[str] = (),
              train_iters: int = 2, amp_dtype: Any = None, log: Callable[[str], None] = print) -> StageResult:
    """Build one stage's paper-size model and run its ``recipe.runs`` (see the module docstring)."""
    import torch

    from vosbench.engine.defaults import build_method, seed_everything

    import vosbench_methods  # noqa: F401  (registers the shipped methods)

    with tempfile.TemporaryDirectory(prefix=f"paper_scale_{stage}_") as tmp:
        try:
            cfg, recipe = compose_stage(method, stage, smoke=smoke, workdir=Path(tmp), extra=extra, device=device)
            paper_cfg, _ = compose_stage(method, stage, smoke=False, workdir=Path(tmp), extra=extra, device=device)
            seed_everything(int(cfg.seed))
            reports: list = []
            model = build_method(cfg, device, reports=reports)
            params = sum(p.numel() for p in model.parameters()) / 1e6
            details = [f"  built {cfg.method.name} ({params:.1f}M parameters) with allow_random_init=true: "
                       + (", ".join(f"{r.name} RANDOM ({r.file})" for r in reports if r.status == "random")
                          or "no pretrained file involved")]
            numbers: dict = {"stage": stage, "params_m": params, "smoke": smoke}
            loss, s_it, peak = None, None, 0.0
            for run in recipe["runs"]:
                if run == "train":
                    tr = train_iterations(cfg, model, device, train_iters, amp_dtype=amp_dtype)
                    numbers["train"] = tr
                    loss, s_it, peak = tr["loss"], tr["s_per_it"], max(peak, tr["peak_mb"])
                    numbers["projection"] = projection(tr, recipe, pixel_ratio(paper_cfg, cfg))
                    details.append(f"  train: {tr['iters']} iterations, {tr['s_per_it']:.2f}s/it wall, "
                                   f"{tr['cpu_s_per_it']:.2f}s/it CPU; last losses "
                                   + " ".join(f"{k}={v:.4g}" for k, v in tr["loss_parts"].items()))
                    details.append("  " + numbers["projection"]["line"])
                    details.append(f"  memory: static {tr['static_mb']:.0f}MB (model, gradients, optimizer state"
                                   f"{', process' if torch.device(device).type != 'cuda' else ''}), saved for "
                                   f"backward {tr['saved_mb']:.0f}MB, first-iteration growth beyond the model "
                                   f"{tr['growth_mb']:.0f}MB")
                elif run == "finetune":
                    task = getattr(model, "task", "vos")
                    fr = run_predict(model, predict_sample(task, 1), device, amp_dtype=amp_dtype)
                    numbers["finetune"] = fr
                    peak = max(peak, fr["peak_mb"])
                    if fr["finetune_loss"] is not None and loss is None:
                        loss = fr["finetune_loss"]
                    if s_it is None:
                        s_it = fr["seconds"] / max(1, fr["finetune_iters"])
                    details.append(f"  finetune: {fr['finetune_iters']} iterations on the reference frame "
                                   f"in {fr['seconds']:.2f}s wall, {fr['cpu_seconds']:.2f}s CPU")
                elif run == "predict":
                    task = getattr(model, "task", "vos")
                    pr = run_predict(model, predict_sample(task, int(recipe["predict_frames"])), device,
                                     amp_dtype=amp_dtype)
                    numbers["predict"] = pr
                    peak = max(peak, pr["peak_mb"])
                    if s_it is None:
                        s_it = pr["s_per_frame"]
                    details.append(f"  predict: {pr['num_frames']} real frames in {pr['seconds']:.2f}s wall, "
                                   f"{pr['cpu_seconds']:.2f}s CPU ({pr['s_per_frame']:.2f}s/frame, "
                                   f"{pr['num_objects']} object(s))")
            loss_s = "n/a" if loss is None else f"{loss:.4f}"
            line = f"stage {stage}: ok  loss {loss_s}  {s_it:.2f}s/it  peak {peak:.0f}MB"
            numbers.update(loss=loss, s_per_it=s_it, peak_mb=peak)
            return StageResult(stage, True, line, details, numbers)
        except Exception as e:  # one failing stage does not hide the others
            tb = traceback.format_exc(limit=6)
            return StageResult(stage, False, f"stage {stage}: FAILED  {type(e).__name__}: {e}",
                               ["  " + ln for ln in tb.rstrip().splitlines()[-6:]], {"stage": stage})
        finally:
            if torch.cuda.is_available():
                torch.cuda.empty_cache()


def projection(tr: dict, recipe: dict, ratio: float) -> dict:
    """Per-GPU memory of the paper's batch from one measured clip (linear in clips, objects, pixels).

    projected = static + clips_per_gpu x memory/sample x (paper objects / measured objects) x pixel ratio
    where clips_per_gpu = paper_batch / (paper_gpus x paper_accum) (clips in memory at once).
    """
    per_sample = tr["mem_per_sample_mb"]
    objs = recipe.get("paper_objects_per_sample")
    obj_factor = (float(objs) / max(tr["objects"], 1e-6)) if objs else 1.0
    per_gpu = float(recipe["paper_batch"]) / (float(recipe["paper_gpus"]) * float(recipe["paper_accum"]))
    proj = tr["static_mb"] + per_gpu * per_sample * obj_factor * ratio
    obj_txt = f" x {float(objs):g} objects (measured {tr['objects']:g})" if objs else ""
    src = f", {tr['mem_source']}" if tr.get("mem_source") else ""
    line = (f"memory/sample {per_sample:.0f}MB ({tr['objects']:g} object(s){src}); projected paper batch "
            f"{recipe['paper_batch']}{obj_txt} on {recipe['paper_gpus']} GPU(s)"
            + (f" ({recipe['paper_accum']} accumulated)" if recipe["paper_accum"] != 1 else "")
            + f": {proj / 1024:.1f} GB/GPU" + (f" (x{ratio:.1f} pixels)" if abs(ratio - 1) > 1e-6 else ""))
    return {"per_sample_mb": per_sample, "per_gpu_clips": per_gpu, "objects_factor": obj_factor,
            "pixel_ratio": ratio, "projected_mb_per_gpu": proj, "line": line}


# ----------------------------------------------------------------------------- CLI
def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--method", required=True, help="configs/experiment/<method>/")
    ap.add_argument("--stage", action="append", help="only this stage (repeatable)")
    ap.add_argument("--smoke", action="store_true", help="reduced resolution (recipe.smoke)")
    ap.add_argument("--device", default="cpu", help="cpu | cuda")
    ap.add_argument("--iters", type=int, default=2, help="training iterations per train run")
    ap.add_argument("--override", action="append", default=[], help="extra Hydra override (repeatable)")
    args = ap.parse_args(argv)

    stages = find_stages(args.method)
    if not stages:
        print(f"error: no stage configs in configs/experiment/{args.method}/", file=sys.stderr)
        return 2
    if args.stage:
        unknown = sorted(set(args.stage) - set(stages))
        if unknown:
            print(f"error: unknown stage(s) {unknown} of {args.method}; stages: {stages}", file=sys.stderr)
            return 2
        stages = [s for s in stages if s in args.stage]
    import torch

    print(f"paper_scale: method {args.method}, stages {stages}, {'smoke (reduced resolution)' if args.smoke else 'paper resolution'}, "
          f"device {args.device}, torch {torch.__version__}, {torch.get_num_threads()} thread(s)")
    failed = 0
    for s in stages:
        r = run_stage(args.method, s, smoke=args.smoke, device=args.device, extra=args.override,
                      train_iters=args.iters)
        print(r.line, flush=True)
        for d in r.details:
            print(d, flush=True)
        failed += not r.ok
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
