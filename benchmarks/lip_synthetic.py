"""LIP learning evidence on the synthetic dataset (2-core CPU, time-budgeted).

Two sub-commands; numbers go to ``benchmarks/RESULTS.md``.

``train``: trains the tiny LIP (``configs/method/<config>.yaml`` + ``--set`` overrides) on the
synthetic train split for a wall-clock budget, with the paper's two offline stages:

1. image-level pre-training (``stage=image``, §4.1.1) for ``--image-frac`` of the budget: single
   annotated frames, hidden states fixed at zero, one generic foreground class, class-agnostic
   boxes and masks, backbone trained;
2. video fine-tuning (``stage=video``, §4.1.2) for the rest (all of the budget with
   ``--init-image <out>/stage1_image.pth`` of an earlier run, so that a model and its ablation
   share stage 1): a fresh last id layer predicting the training ids, backbone frozen, clips of
   ``--frames`` (8) with the gradient stopped every 4 frames, reversed clips, GT boxes widened
   by 10 %.

AdamW with a linear warm-up and a cosine decay per stage. Writes ``<out>/model_final.pth`` (a
vosbench checkpoint holding the model weights) and ``<out>/train_log.json``.

``--dataset synthetic_fade_hard`` (objects all but vanish for 2-4 frames) is the session-3 probe.
``--dataset synthetic_fade_slow`` (the same, objects moving 4x slower) is the session-4 probe.

``eval``: runs ``first_frame_copy``, ``flow_propagation`` and each ``--run name=ckpt[:k=v,...]``
(``k=v`` are method-config overrides, e.g. ``zero_hidden_state=true``) on the held-out synthetic
val split with the ``davis2017`` evaluator and prints a table. ``--dataset synthetic_fade``
(train and eval) uses the faded variant (``configs/dataset/synthetic_fade.yaml``); eval then
also reports ``J_faded`` / ``J_clear``: mean IoU over the object-frames inside / outside a fade
episode (evaluated frames 1..T-2, after the object's reference frame), from the generator's
``fades_<split>.json``.

    OMP_NUM_THREADS=1 python benchmarks/lip_synthetic.py train --minutes 14 --out outputs/lip_full
    OMP_NUM_THREADS=1 python benchmarks/lip_synthetic.py train --minutes 14 \\
        --config lip_tiny_zero_state --out outputs/lip_zero
    OMP_NUM_THREADS=1 python benchmarks/lip_synthetic.py eval --run lip=outputs/lip_full/model_final.pth \\
        --run lip_zero_state=outputs/lip_zero/model_final.pth:zero_hidden_state=true
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import vosbench_methods  # noqa: E402,F401  (registers every method)
from vosbench.config import build  # noqa: E402
from vosbench.registry import METHODS  # noqa: E402

# Training split: disjoint seed stream from val (the generator derives it from the split name).
TRAIN_DATA = dict(num_videos=60, num_frames=16)
# Held-out evaluation: the val seed stream, more and longer videos than the 4x6 default config so
# that tracking through fast motion, occlusions and late entries is actually measured.
VAL_DATA = dict(num_videos=8, num_frames=12)


def method_config(name: str, sets: list[str]) -> dict:
    """Compose ``configs/method/<name>.yaml`` (Hydra defaults resolved) with ``key=value`` overrides."""
    from vosbench.config import compose, to_dict

    return to_dict(compose([f"method={name}"] + [f"method.{s}" for s in sets]).method)


def dataset_config(split: str, name: str = "synthetic", **over) -> dict:
    """Compose ``configs/dataset/<name>.yaml`` (``synthetic`` or a variant) for ``split``."""
    from vosbench.config import compose, to_dict

    cfg = to_dict(compose([f"dataset={name}"]).dataset)
    if cfg.get("name") != "synthetic":
        raise ValueError(f"lip_synthetic: dataset config {name!r} is not a synthetic dataset")
    cfg.update(split=split, **over)
    return cfg


class FadeProbe:
    """Evaluator wrapper: forwards to ``inner`` and measures IoU on faded / clear object-frames.

    Args:
        inner: the dataset's evaluator (``davis2017``).
        fades: video id -> ``[[object id, first frame, end frame (exclusive), alpha]]``.
    """

    def __init__(self, inner, fades: dict[str, list]) -> None:
        self.inner, self.fades = inner, fades
        self.reset()

    def reset(self) -> None:
        self.inner.reset()
        self.rows: list[tuple[bool, float]] = []  # (faded, IoU) per evaluated object-frame

    def process(self, sample, prediction) -> None:
        import dataclasses

        frames = list(prediction.iter_frames())
        ids = [int(o) for o in prediction.obj_ids]
        ref_t = {int(o): t for t, r in sample.reference.items() for o in r.obj_ids.tolist()}
        episodes = self.fades.get(sample.video_id, [])
        for fp in frames[1:-1]:  # DAVIS protocol: first and last frames are not evaluated
            t = fp.index
            gt = sample.frames[t]
            gt_ids = gt.obj_ids.tolist()
            for k, o in enumerate(ids):
                if o not in ref_t or t <= ref_t[o]:
                    continue
                g = gt.masks[gt_ids.index(o)] if o in gt_ids else torch.zeros_like(fp.masks[k])
                p = fp.masks[k]
                union = int((g | p).sum())
                iou = 1.0 if union == 0 else int((g & p).sum()) / union
                faded = any(e[0] == o and e[1] <= t < e[2] for e in episodes)
                self.rows.append((faded, iou))
        self.inner.process(sample, dataclasses.replace(prediction, frames=frames))

    def evaluate(self) -> dict:
        res = dict(self.inner.evaluate())
        for name, flag in (("faded", True), ("clear", False)):
            v = [iou for f, iou in self.rows if f == flag]
            res[f"J_{name}"] = sum(v) / len(v) if v else float("nan")
            res[f"n_{name}"] = len(v)
        return res


def _loader(data, *, frames: int, batch: int, seed: int):
    from torch.utils.data import DataLoader

    from vosbench.data import ClipDataset, collate_clips

    clips = ClipDataset(data, num_frames=frames, max_stride=1 if frames > 2 else 3,
                        samples_per_epoch=100000, hflip=True, seed=seed)
    return iter(DataLoader(clips, batch_size=batch, shuffle=True, num_workers=0,
                           collate_fn=collate_clips, drop_last=True))


def _run_stage(model, loader, *, name: str, seconds: float, lr: float, warmup: int, grad_clip: float,
               log: list, t_start: float) -> int:
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=1e-4)
    t0 = time.time()
    it = 0
    run_avg: dict[str, float] = {}
    while time.time() - t0 < seconds:
        frac = (time.time() - t0) / seconds
        for g in opt.param_groups:  # warm-up, then cosine decay over the stage's wall-clock budget
            g["lr"] = lr * min(1.0, (it + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0)))
        losses = model.training_step(next(loader))
        loss = sum(losses.values())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, grad_clip)
        opt.step()
        it += 1
        for k, v in losses.items():
            run_avg[k] = 0.9 * run_avg.get(k, float(v.detach())) + 0.1 * float(v.detach())
        if it % 25 == 0:
            row = {"stage": name, "iter": it, "time_s": round(time.time() - t_start, 1),
                   "lr": round(opt.param_groups[0]["lr"], 6), **{k: round(v, 4) for k, v in run_avg.items()}}
            log.append(row)
            print(json.dumps(row), flush=True)
    return it


def train(args) -> None:
    from vosbench.data import build_dataset
    from vosbench.engine.checkpoint import save_checkpoint

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    cfg = method_config(args.config, args.set)
    num_ids = cfg["num_ids"]
    if args.init and args.init_image:
        raise SystemExit("lip_synthetic: give --init or --init-image, not both")
    if args.init:  # continue video fine-tuning of a trained (stage-2) checkpoint: no stage 1
        cfg.update(stage="video", weights=args.init, pretrained=None)
    else:  # from scratch, or from a stage-1 checkpoint (--init-image, shared by an ablation pair)
        cfg.update(stage="image", num_ids=1, weights=args.init_image, pretrained=None)
    model = build(cfg, METHODS)
    model.train()
    data = build_dataset(dataset_config("train", args.dataset, **TRAIN_DATA))
    budget = args.minutes * 60.0
    t_start = time.time()
    log: list = []
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    # Stage 1: images (pairs of frames per clip only to amortise decoding; each frame is its own
    # image with zero hidden state).
    it1 = 0
    if not (args.init or args.init_image):
        it1 = _run_stage(model, _loader(data, frames=2, batch=args.image_batch, seed=args.seed), name="image",
                         seconds=args.image_frac * budget, lr=args.lr, warmup=50, grad_clip=args.grad_clip,
                         log=log, t_start=t_start)
        save_checkpoint(out / "stage1_image.pth", model, iteration=it1, config=cfg)
    if not args.init:
        # Stage 2: a fresh last id layer over the training ids, backbone frozen, recurrent clips.
        model.replace_id_layer(num_ids)
    model.set_stage("video")
    it2 = _run_stage(model, _loader(data, frames=args.frames, batch=args.video_batch, seed=args.seed + 1),
                     name="video", seconds=budget - (time.time() - t_start), lr=args.lr * args.video_lr_mult,
                     warmup=20, grad_clip=args.grad_clip, log=log, t_start=t_start)
    model.eval()
    cfg.update(stage="video", num_ids=num_ids, weights=None)
    save_checkpoint(out / "model_final.pth", model, iteration=it1 + it2, config=cfg, rng=[])
    summary = {"image_iterations": it1, "video_iterations": it2, "wall_s": round(time.time() - t_start, 1),
               "ids_used": int((model.train_id_keys >= 0).sum()), "args": vars(args), "config": cfg, "log": log}
    (out / "train_log.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps({k: summary[k] for k in ("image_iterations", "video_iterations", "wall_s", "ids_used")}))


def evaluate(args) -> None:
    from vosbench.data import build_dataset
    from vosbench.engine import inference_on_dataset
    from vosbench.engine.checkpoint import load_model_weights
    from vosbench.metrics import build_evaluator

    from vosbench.data.synthetic import FADES_FILE

    torch.set_num_threads(args.threads)
    data_cfg = dataset_config("val", args.dataset, **dict(VAL_DATA, num_videos=args.val_videos,
                                                          num_frames=args.val_frames))
    data = build_dataset(data_cfg)
    fades = None
    if data_cfg.get("fade", 0):
        fades = json.loads((Path(data.root) / FADES_FILE.format(split="val")).read_text())
    runs = []
    if not args.no_baselines:
        for name in ("first_frame_copy", "flow_propagation"):
            runs.append((name, build(method_config(name, []), METHODS)))
    for spec in args.run:
        name, _, rest = spec.partition("=")
        ckpt, _, over = rest.partition(":")
        sets = [s for s in over.split(",") if s]
        model = build(method_config(args.config, sets), METHODS)
        load_model_weights(model, ckpt)
        runs.append((name, model.eval()))
    rows = []
    for name, model in runs:
        t0 = time.time()
        torch.manual_seed(args.seed)
        ev = build_evaluator(data.metric)
        ev = ev if fades is None else FadeProbe(ev, fades)
        res = inference_on_dataset(model, data, evaluator=ev, progress=False)
        res = {k: float(v) for k, v in res.items() if isinstance(v, (int, float))}
        res["wall_s"] = time.time() - t0
        rows.append((name, res))
        print(json.dumps({"method": name, **{k: round(v, 4) for k, v in res.items()}}), flush=True)
    keys = ["J&F", "J_mean", "F_mean", "J_recall"] + (["J_faded", "J_clear"] if fades is not None else []) \
        + ["fps", "wall_s"]
    print("\n| method | " + " | ".join(keys) + " |")
    print("|---" * (len(keys) + 1) + "|")
    for name, res in rows:
        print(f"| {name} | " + " | ".join(f"{res.get(k, float('nan')):.3f}" for k in keys) + " |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--config", default="lip_tiny")
    t.add_argument("--dataset", default="synthetic", help="configs/dataset/<name>.yaml (synthetic variant)")
    t.add_argument("--set", action="append", default=[], help="method config override key=value")
    t.add_argument("--minutes", type=float, default=14.0)
    t.add_argument("--image-frac", type=float, default=0.5)
    t.add_argument("--image-batch", type=int, default=4, help="clips of 2 frames per image-stage step")
    t.add_argument("--video-batch", type=int, default=2)
    t.add_argument("--frames", type=int, default=8)
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--video-lr-mult", type=float, default=0.5)
    t.add_argument("--grad-clip", type=float, default=10.0)
    t.add_argument("--threads", type=int, default=1)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--out", required=True)
    t.add_argument("--init", default=None,
                   help="a model_final.pth of this script: skip stage 1 and continue stage 2 (the id "
                        "table and id layer are kept) for the whole budget")
    t.add_argument("--init-image", default=None,
                   help="a stage1_image.pth of this script: skip stage 1, start stage 2 from it (fresh "
                        "id layer) for the whole budget; lets an ablation pair share one stage 1")
    e = sub.add_parser("eval")
    e.add_argument("--config", default="lip_tiny")
    e.add_argument("--dataset", default="synthetic", help="configs/dataset/<name>.yaml (synthetic variant)")
    e.add_argument("--run", action="append", default=[], help="name=ckpt[:key=value,...]")
    e.add_argument("--no-baselines", action="store_true")
    e.add_argument("--val-videos", type=int, default=VAL_DATA["num_videos"],
                   help="held-out videos (the first 8 are the default set: one seed stream)")
    e.add_argument("--val-frames", type=int, default=VAL_DATA["num_frames"],
                   help="frames per held-out video (another length renders other videos)")
    e.add_argument("--threads", type=int, default=1)
    e.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    train(args) if args.cmd == "train" else evaluate(args)


if __name__ == "__main__":
    main()
