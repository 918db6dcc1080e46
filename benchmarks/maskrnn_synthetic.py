"""MaskRNN learning evidence on the synthetic dataset (2-core CPU, time-budgeted).

Two sub-commands; the measured numbers are in ``benchmarks/RESULTS.md``.

``train``: trains the tiny MaskRNN (``configs/method/maskrnn_tiny.yaml`` + ``--set key=value``
overrides) on the synthetic train split for a wall-clock budget (``--minutes``) or a fixed
number of steps (``--iters``, with ``--recurrent-from`` for the stage switch). The paper's two offline stages
are kept: single frames with perturbed previous masks for the first ``--single-frac`` of the
budget, then recurrent clips with back-propagation through time. Adam with a cosine learning
rate decay over the budget. Writes ``<out>/model_final.pth`` (a vosbench checkpoint holding the
model weights only) and ``<out>/train_log.json``.

``eval``: runs ``first_frame_copy``, ``flow_propagation`` and each ``--run name=ckpt[:k=v,...]``
on the held-out synthetic val split (``vosbench.engine.inference_on_dataset`` + the ``davis2017``
evaluator) and prints a markdown table.

    # the committed checkpoint (#16): the budget of the previous one, 422 steps, switch at 174
    OMP_NUM_THREADS=1 python benchmarks/maskrnn_synthetic.py train --iters 422 --recurrent-from 174 \
        --frames 5 --out outputs/e16_tiny_meanbce
    OMP_NUM_THREADS=1 python benchmarks/maskrnn_synthetic.py train --minutes 13 --out outputs/mrnn_full
    OMP_NUM_THREADS=1 python benchmarks/maskrnn_synthetic.py train --minutes 13 --set warp_mask=false \\
        --out outputs/mrnn_nowarp
    OMP_NUM_THREADS=1 python benchmarks/maskrnn_synthetic.py eval --run full=outputs/mrnn_full/model_final.pth \\
        --run nowarp=outputs/mrnn_nowarp/model_final.pth:warp_mask=false

Data: the registered ``synthetic`` dataset (``configs/dataset/synthetic.yaml``) and
``vosbench.data.ClipDataset``; while those are not importable, the same generator
(``vosbench.data.synthetic.generate``) is read by a small private DAVIS-2017-folder reader here.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import vosbench_methods  # noqa: E402,F401  (registers every method)
from vosbench.config import CONFIG_DIR, build, compose, to_dict  # noqa: E402
from vosbench.registry import METHODS  # noqa: E402

# Training split (disjoint seed stream from val: the generator derives it from the split name).
TRAIN_DATA = dict(num_videos=60, num_frames=16)
# Held-out split used when configs/dataset/synthetic.yaml is not there yet.
FALLBACK_DATA = dict(height=64, width=96, max_objects=3, seed=0, num_videos=12, num_frames=16)
CACHE = REPO / ".cache" / "maskrnn_synthetic"


def method_config(name: str, sets: list[str]) -> dict:
    """Compose ``configs/method/<name>.yaml`` (Hydra defaults resolved) with ``key=value`` overrides."""
    return to_dict(compose(["~dataset", f"method={name}"] + [f"method.{s}" for s in sets]).method)


def _shared_data_available() -> bool:
    try:
        from vosbench.data import ClipDataset, build_dataset, collate_clips  # noqa: F401
    except ImportError:
        return False
    return (CONFIG_DIR / "dataset" / "synthetic.yaml").is_file()


def load_split(split: str, **over):
    """The synthetic split as a sequence of ``VideoSample`` (shared loader, or the fallback)."""
    if _shared_data_available():
        from vosbench.data import build_dataset

        cfg = to_dict(compose(["dataset=synthetic"]).dataset)
        cfg.update(split=split, **over)
        return build_dataset(cfg)
    return _FallbackSplit(split, **{**FALLBACK_DATA, **over})


class _FallbackSplit(list):
    """DAVIS-2017-format synthetic folder read into ``VideoSample``s (used only as a fallback)."""

    metric = "davis2017"

    def __init__(self, split: str, **kw) -> None:
        from PIL import Image

        from vosbench.data.synthetic import generate
        from vosbench.structures import Frame, ObjectMasks, VideoSample

        key = "_".join(f"{k}{v}" for k, v in sorted(kw.items()))
        root = generate(CACHE / key, split=split, **kw)
        seqs = (root / "ImageSets" / "2017" / f"{split}.txt").read_text().split()
        for seq in seqs:
            files = sorted((root / "JPEGImages" / "480p" / seq).glob("*.jpg"))
            frames, ref, seen = [], {}, set()
            for t, f in enumerate(files):
                img = torch.from_numpy(np.array(Image.open(f).convert("RGB"))).permute(2, 0, 1).float() / 255
                lab = torch.from_numpy(np.array(Image.open(root / "Annotations" / "480p" / seq / f"{f.stem}.png")))
                ids = [i for i in torch.unique(lab).tolist() if i not in (0, 255)]
                masks = lab[None] == torch.tensor(ids, dtype=lab.dtype).view(-1, 1, 1)
                frames.append(Frame(image=img, index=t, name=f.stem, masks=masks,
                                    obj_ids=torch.tensor(ids, dtype=torch.int64),
                                    labels=torch.full((len(ids),), -1), void=lab == 255))
                new = [k for k, i in enumerate(ids) if i not in seen]
                if new:
                    ref[t] = ObjectMasks(torch.tensor([ids[k] for k in new]), masks[new])
                    seen |= {ids[k] for k in new}
            self.append(VideoSample(seq, frames, orig_size=tuple(frames[0].image.shape[-2:]),
                                    reference=ref, frame_names=[f.stem for f in files],
                                    meta={"dataset": f"synthetic-{split}"}))


def _fallback_batches(data, *, batch: int, num_frames: int, max_stride: int, seed: int):
    """Random clips (stride 1..max_stride, random start, horizontal flip) as ``VideoBatch``es."""
    from vosbench.structures import VideoBatch

    rng = np.random.default_rng(seed)
    while True:
        clips = []
        for _ in range(batch):
            s = data[int(rng.integers(len(data)))]
            stride = int(rng.integers(1, max_stride + 1))
            start = int(rng.integers(0, len(s.frames) - (num_frames - 1) * stride))
            fr = [s.frames[start + k * stride] for k in range(num_frames)]
            ids = sorted({int(i) for f in fr for i in f.obj_ids})
            im = torch.stack([f.image for f in fr])
            m = torch.stack([torch.stack([f.masks[(f.obj_ids == i)].any(0) if (f.obj_ids == i).any()
                                          else torch.zeros(f.image.shape[-2:], dtype=torch.bool)
                                          for i in ids]) if ids else
                             torch.zeros(0, *f.image.shape[-2:], dtype=torch.bool) for f in fr])
            if rng.random() < 0.5:
                im, m = im.flip(-1), m.flip(-1)
            clips.append((im, m))
        omax = max(1, max(c[1].shape[1] for c in clips))
        b, (h, w) = len(clips), clips[0][0].shape[-2:]
        masks = torch.zeros(b, num_frames, omax, h, w, dtype=torch.bool)
        valid = torch.zeros(b, omax, dtype=torch.bool)
        for k, (_, m) in enumerate(clips):
            masks[k, :, :m.shape[1]] = m
            valid[k, :m.shape[1]] = True
        yield VideoBatch(images=torch.stack([c[0] for c in clips]), masks=masks,
                         obj_ids=torch.where(valid, 1, -1), labels=torch.full((b, omax), -1),
                         obj_valid=valid, annotated=torch.ones(b, num_frames, dtype=torch.bool),
                         pad=torch.zeros(b, num_frames, h, w, dtype=torch.bool),
                         void=torch.zeros(b, num_frames, h, w, dtype=torch.bool),
                         frame_idx=torch.zeros(b, num_frames, dtype=torch.int64))


def train(args) -> None:
    from vosbench.engine.checkpoint import save_checkpoint

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    cfg = method_config(args.config, args.set)
    cfg["single_frame_iters"] = 10**9  # switched to the recurrent stage by time below
    model = build(cfg, METHODS)
    model.train()
    data = load_split("train", **TRAIN_DATA)
    if _shared_data_available():
        from torch.utils.data import DataLoader

        from vosbench.data import ClipDataset, collate_clips

        clips = ClipDataset(data, num_frames=args.frames, max_stride=args.max_stride,
                            samples_per_epoch=100000, hflip=True, seed=args.seed)
        loader = iter(DataLoader(clips, batch_size=args.batch, shuffle=True, num_workers=0,
                                 collate_fn=collate_clips, drop_last=True))
        source = "vosbench.data.ClipDataset"
    else:
        loader = _fallback_batches(data, batch=args.batch, num_frames=args.frames,
                                   max_stride=args.max_stride, seed=args.seed)
        source = "fallback clip sampler (shared ClipDataset not importable)"
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=args.lr)
    budget = args.minutes * 60.0
    # --iters: a fixed number of steps (reproducible on a shared CPU) instead of the wall-clock
    # budget; the cosine decay and the stage switch then count steps.
    by_iters = args.iters is not None
    total = float(args.iters) if by_iters else budget
    switch_at = (args.recurrent_from if args.recurrent_from is not None
                 else args.single_frac * total) if by_iters else args.single_frac * budget
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    log, it, recurrent_from = [], 0, None
    run_avg: dict[str, float] = {}
    cpu0 = time.process_time()
    for batch in loader:
        elapsed = time.time() - t0
        progress = it if by_iters else elapsed
        if progress >= total:
            break
        if recurrent_from is None and model.recurrent and progress >= switch_at:
            recurrent_from = it
            model.single_frame_iters = int(model.train_iter)
        for g in opt.param_groups:  # cosine decay over the budget (steps or wall clock)
            g["lr"] = args.lr * 0.5 * (1 + math.cos(math.pi * min(progress / total, 1.0)))
        losses = model.training_step(batch)
        loss = sum(losses.values())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        it += 1
        for k in [k for k in run_avg if k not in losses]:
            del run_avg[k]  # e.g. loss_box after the switch to the recurrent stage
        for k, v in losses.items():
            fv = float(v.detach())
            run_avg[k] = 0.95 * run_avg.get(k, fv) + 0.05 * fv
        if it % 25 == 0:
            row = {"iter": it, "time_s": round(time.time() - t0, 1), "lr": opt.param_groups[0]["lr"],
                   "stage": "recurrent" if recurrent_from is not None else "single",
                   **{k: round(v, 4) for k, v in run_avg.items()}}
            log.append(row)
            print(json.dumps(row), flush=True)
    model.eval()
    save_checkpoint(out / "model_final.pth", model, iteration=it, config=cfg)
    summary = {"iterations": it, "recurrent_from_iter": recurrent_from,
               "wall_s": round(time.time() - t0, 1), "cpu_s": round(time.process_time() - cpu0, 1),
               "data": source, "args": vars(args),
               "config": cfg, "log": log}
    (out / "train_log.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps({k: summary[k] for k in ("iterations", "recurrent_from_iter", "wall_s", "cpu_s", "data")}))


def evaluate(args) -> None:
    from vosbench.engine import inference_on_dataset
    from vosbench.engine.checkpoint import load_model_weights
    from vosbench.metrics import build_evaluator

    torch.set_num_threads(args.threads)
    data = load_split("val", num_videos=args.val_videos, num_frames=args.val_frames)
    runs = []
    if not args.no_baselines:
        for name in ("first_frame_copy", "flow_propagation"):
            runs.append((name, lambda name=name: build(method_config(name, []), METHODS)))
    for spec in args.run:
        name, _, rest = spec.partition("=")
        ckpt, _, over = rest.partition(":")

        def make(ckpt=ckpt, over=over):
            model = build(method_config(args.config, [s for s in over.split(",") if s]), METHODS)
            return load_model_weights(model, ckpt)

        runs.append((name, make))
    rows = []
    for name, make in runs:
        t0 = time.time()
        res = inference_on_dataset(make(), data, evaluator=build_evaluator(data.metric), progress=False)
        res = {k: float(v) for k, v in res.items() if isinstance(v, (int, float))}
        res["wall_s"] = time.time() - t0
        rows.append((name, res))
        print(json.dumps({"method": name, **{k: round(v, 4) for k, v in res.items()}}), flush=True)
    keys = ["J&F", "J_mean", "F_mean", "J_recall", "F_recall", "fps", "wall_s"]
    print(f"\nsynthetic val: {len(data)} videos, {sum(len(s) for s in data)} frames")
    print("| method | " + " | ".join(keys) + " |")
    print("|---" * (len(keys) + 1) + "|")
    for name, res in rows:
        print(f"| {name} | " + " | ".join(f"{res.get(k, float('nan')):.3f}" for k in keys) + " |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--config", default="maskrnn_tiny", help="a configs/method/ name")
    t.add_argument("--set", action="append", default=[], help="method config override key=value")
    t.add_argument("--minutes", type=float, default=13.0)
    t.add_argument("--single-frac", type=float, default=0.5,
                   help="fraction of the budget for the single-frame stage (then recurrent)")
    t.add_argument("--iters", type=int, default=None,
                   help="train for this many steps instead of --minutes (reproducible budget)")
    t.add_argument("--recurrent-from", type=int, default=None,
                   help="with --iters: first step of the recurrent stage (default single-frac * iters)")
    t.add_argument("--frames", type=int, default=4,
                   help="clip length (with next_frame_flow the last frame only gives the forward flow)")
    t.add_argument("--max-stride", type=int, default=2)
    t.add_argument("--batch", type=int, default=4)
    t.add_argument("--lr", type=float, default=3e-3)
    t.add_argument("--threads", type=int, default=1)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--out", required=True)
    e = sub.add_parser("eval")
    e.add_argument("--config", default="maskrnn_tiny", help="a configs/method/ name")
    e.add_argument("--run", action="append", default=[], help="name=ckpt[:key=value,...]")
    e.add_argument("--no-baselines", action="store_true")
    e.add_argument("--val-videos", type=int, default=8, help="as benchmarks/suites/default.yaml")
    e.add_argument("--val-frames", type=int, default=12)
    e.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    train(args) if args.cmd == "train" else evaluate(args)


if __name__ == "__main__":
    main()
