"""MaskProp learning evidence on synthetic YouTube-VIS-format videos (tiny model, CPU).

Trains ``configs/method/maskprop_tiny.yaml`` on frame pairs with a random gap for a fixed
wall-clock budget, then evaluates on held-out synthetic videos (a disjoint seed stream) with the
``ytvis`` evaluator (video AP/AR):

* ``maskprop``            clip-level tracks + eq. 4-5 linking + aggregation + refinement;
* ``maskprop (no refine)`` the same without the high-resolution refinement;
* ``maskprop_framelink``  the same detector weights, propagation off, greedy mask-IoU linking.

``--vis-clean`` uses the generator's instance-segmentation variant for train and val
(``distractors=False, fast_objects=False``: no unannotated shapes of the annotated categories,
no fast movers; see benchmarks/RESULTS.md for why). ``--oracle`` adds a diagnostic upper bound
(the detector's per-frame masks with ground-truth identities and categories).

Usage (the committed checkpoint; budgets are wall-clock minutes on the shared 2-core CPU):
    # stages 1-2 (earlier sessions, default data, 80 training videos): 14 + 24 min
    OMP_NUM_THREADS=1 python benchmarks/maskprop_synthetic.py --budget-min 14 --lr 3e-3 --save stage1.pth
    OMP_NUM_THREADS=1 python benchmarks/maskprop_synthetic.py --budget-min 24 --lr 3e-3 \
        --init stage1.pth --save stage2.pth --no-eval
    # stages 3-4 (VIS-clean data, 800 training videos): 28 + 26 min
    OMP_NUM_THREADS=1 python benchmarks/maskprop_synthetic.py --vis-clean --train-videos 800 \
        --budget-min 28 --lr 3e-3 --init stage2.pth --save stage3.pth --no-eval
    OMP_NUM_THREADS=1 python benchmarks/maskprop_synthetic.py --vis-clean --train-videos 800 \
        --budget-min 26 --lr 3e-3 --init stage3.pth \
        --save methods/maskprop/weights/maskprop_tiny_synthetic.pth --no-eval
    # evaluation: held-out VIS-clean videos (24 x 16 frames), and the default data
    OMP_NUM_THREADS=1 python benchmarks/maskprop_synthetic.py --vis-clean --oracle \
        --eval-only methods/maskprop/weights/maskprop_tiny_synthetic.pth
    OMP_NUM_THREADS=1 python benchmarks/maskprop_synthetic.py \
        --eval-only methods/maskprop/weights/maskprop_tiny_synthetic.pth
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import vosbench_methods  # noqa: E402,F401  (registers the methods)
from vosbench.config import build  # noqa: E402
from vosbench.registry import METHODS  # noqa: E402

KEYS = ("mAP", "AP50", "AP75", "AR1", "AR10")


def dataset(args: argparse.Namespace, split: str):
    """The registered ``synthetic`` dataset in YouTube-VIS format (written, then read back);
    ``--vis-clean``: its instance-segmentation variant (``distractors=False, fast_objects=False``)."""
    from vosbench.data import build_dataset

    kw = dict(num_videos=args.train_videos if split == "train" else args.val_videos,
              num_frames=args.frames if split == "train" else args.val_frames,
              height=args.height, width=args.width, max_objects=args.max_objects, seed=args.seed)
    if args.vis_clean:
        kw.update(distractors=False, fast_objects=False)
    ds = build_dataset({"name": "synthetic", "root": str(args.data_root), "split": split,
                        "format": "ytvis", **kw})
    if args.vis_clean:
        ds.dataset_name = "synthetic-ytvis-clean"
    return ds


def method_cfg(name: str, **over) -> dict:
    cfg = yaml.safe_load((REPO / "configs" / "method" / f"{name}.yaml").read_text())
    cfg.update(over)
    return cfg


def train(args: argparse.Namespace) -> Path:
    from torch.utils.data import DataLoader


    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    ds = dataset(args, "train")
    model = build(method_cfg("maskprop_tiny"), METHODS)
    init_meta = None
    if args.init:  # continue training a previous checkpoint (its budget adds to this one)
        from vosbench.models.weights import load_weights

        load_weights(model, str(args.init))
        init_meta = torch.load(args.init, map_location="cpu", weights_only=True).get("meta")
        print(f"initialised from {args.init}: {init_meta}", flush=True)
    model.train()
    from vosbench.data import ClipDataset, collate_clips

    clips = ClipDataset(ds, num_frames=2, max_stride=args.max_gap, samples_per_epoch=len(ds) * 4,
                        hflip=True, seed=args.seed)
    loader = DataLoader(clips, batch_size=args.batch, shuffle=True, collate_fn=collate_clips,
                        num_workers=0, drop_last=True)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    budget = args.budget_min * 60
    t0 = time.time()
    it, dropped = 0, False
    avg: dict[str, float] = {}
    while True:
        for batch in loader:
            elapsed = time.time() - t0
            if elapsed > budget or it >= args.max_iter:
                break
            warm = min(1.0, (it + 1) / 100)
            if not dropped and elapsed > 0.8 * budget:  # one step decay, as the paper's schedule
                dropped = True
            for g in opt.param_groups:
                g["lr"] = args.lr * warm * (0.1 if dropped else 1.0)
            losses = model.training_step(batch)
            total = sum(losses.values())
            opt.zero_grad(set_to_none=True)
            total.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
            opt.step()
            for k, v in losses.items():
                v = float(v.detach())
                avg[k] = 0.9 * avg.get(k, v) + 0.1 * v
            it += 1
            if it % args.log_period == 0:
                print(f"iter {it:5d}  {elapsed / 60:5.1f} min  " +
                      "  ".join(f"{k[5:]} {v:.3f}" for k, v in sorted(avg.items())), flush=True)
        else:
            continue
        break
    train_min = (time.time() - t0) / 60
    print(f"trained {it} iterations in {train_min:.1f} min (batch {args.batch} pairs)", flush=True)
    out = Path(args.save)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    torch.save({"model": {k: v.detach().clone() for k, v in model.state_dict().items()},
                "meta": {"iterations": it, "train_minutes": round(train_min, 2), "init": init_meta,
                         "config": "configs/method/maskprop_tiny.yaml",
                         "args": {k: v if isinstance(v, (int, float)) else str(v)
                                  for k, v in vars(args).items()}}}, tmp)
    os.replace(tmp, out)
    print(f"saved {out} ({out.stat().st_size / 2**20:.2f} MiB)")
    return out


def class_agnostic(sample, pred):
    """Sample and prediction with every category set to 1 and one entry per video-level sequence
    (its best-scored category): video AP of tracking + segmentation alone, the part in which
    MaskProp and the baseline differ (they share the detector and its classifier)."""
    from vosbench.structures import Frame, FramePrediction, VideoPrediction, VideoSample

    frames = [Frame(image=f.image, index=f.index, name=f.name, masks=f.masks, obj_ids=f.obj_ids,
                    labels=torch.ones_like(f.labels)) for f in sample.frames]
    s2 = VideoSample(sample.video_id, frames, task="vis", orig_size=sample.orig_size,
                     categories={1: "object"}, meta=dict(sample.meta))
    seq = pred.meta.get("sequence_of_entry", list(range(len(pred.obj_ids))))
    best: dict[int, int] = {}
    for k, v in enumerate(seq):
        if v not in best or pred.scores[k] > pred.scores[best[v]]:
            best[v] = k
    keep = torch.tensor(sorted(best.values()), dtype=torch.int64)
    p2 = VideoPrediction(pred.video_id, pred.obj_ids[keep], pred.scores[keep],
                         torch.ones(len(keep), dtype=torch.int64),
                         [FramePrediction(f.index, f.masks[keep]) for f in pred.frames],
                         pred.orig_size, pred.num_frames)
    return s2, p2


@torch.no_grad()
def oracle_gt_identities(ckpt: Path, ds) -> dict:
    """Diagnostic upper bound of the detector alone: its per-frame masks, with identities and
    categories taken from the ground truth (no tracking, no classification errors).

    Every ground-truth object gets, on each frame, the detection (after the same score
    threshold and class-agnostic NMS as MaskProp) with the highest mask IoU; score 1, GT
    category. Also reports the frame-level detector figures: mean best IoU per visible object
    and the classification accuracy of detections matched at IoU > 0.5.
    """
    from vosbench.metrics import build_evaluator
    from vosbench.structures import FramePrediction, VideoPrediction

    model = build(method_cfg("maskprop_tiny", weights=str(ckpt)), METHODS).eval()
    ev = build_evaluator("ytvis")
    ev.reset()
    best_ious, cls_ok, cls_n = [], 0, 0
    for sample in ds:
        H, W = sample.orig_size
        cat = {int(i): int(c) for f in sample.frames for i, c in zip(f.obj_ids, f.labels)}
        ids = sorted(cat)
        frames = []
        for t, f in enumerate(sample.frames):
            st = model._frame_state(f.image)
            pm = st.masks_full > model.mask_thresh                                   # [K, H, W]
            out = torch.zeros((len(ids), H, W), dtype=torch.bool)
            for oid, gm in zip(f.obj_ids.tolist(), f.masks):
                if not gm.any():
                    continue
                if not len(pm):
                    best_ious.append(0.0)
                    continue
                iou = (pm & gm).flatten(1).sum(1) / (pm | gm).flatten(1).sum(1).clamp(min=1)
                j = int(iou.argmax())
                best_ious.append(float(iou[j]))
                out[ids.index(oid)] = pm[j]
                if iou[j] > 0.5:
                    cls_n += 1
                    cls_ok += int(st.class_probs[j].argmax()) + 1 == cat[oid]
            frames.append(FramePrediction(t, out))
        ev.process(sample, VideoPrediction(sample.video_id, torch.tensor(ids, dtype=torch.int64),
                                           torch.ones(len(ids)), torch.tensor([cat[i] for i in ids]),
                                           frames, (H, W), sample.num_frames))
    res = ev.evaluate()
    res["frame_best_iou"] = float(np.mean(best_ious)) if best_ious else 0.0
    res["frame_class_acc"] = cls_ok / max(cls_n, 1)
    print(f"{'oracle: GT ids + labels':28s} " + "  ".join(f"{k} {100 * res[k]:.1f}" for k in KEYS) +
          f"  (frame: best-IoU {res['frame_best_iou']:.3f}, class acc {100 * res['frame_class_acc']:.1f} % "
          f"of {cls_n})", flush=True)
    return res


def evaluate(args: argparse.Namespace, ckpt: Path) -> dict:
    from vosbench.metrics import build_evaluator

    ds = dataset(args, "val")
    variants = {
        "maskprop": ("maskprop_tiny", {}),
        "maskprop (no refinement)": ("maskprop_tiny", {"refine_at_test": False}),
        "maskprop_framelink": ("maskprop_framelink_tiny", {}),
    }
    results = {}
    for label, (cfg_name, extra) in variants.items():
        refine = extra.pop("refine_at_test", True)
        model = build(method_cfg(cfg_name, weights=str(ckpt), **extra), METHODS).eval()
        if not refine:
            model.refinement = None
        ev, ev_agn = build_evaluator("ytvis"), build_evaluator("ytvis")
        ev.reset()
        ev_agn.reset()
        t_model, frames = 0.0, 0
        for sample in ds:
            t0 = time.time()
            with torch.inference_mode():
                pred = model.predict(sample).materialize()
            t_model += time.time() - t0
            frames += sample.num_frames
            ev.process(sample, pred)
            ev_agn.process(*class_agnostic(sample, pred))
        res = ev.evaluate()
        res["fps"] = frames / max(t_model, 1e-9)
        res["class_agnostic"] = ev_agn.evaluate()
        results[label] = res
        print(f"{label:28s} " + "  ".join(f"{k} {100 * res[k]:.1f}" for k in KEYS) +
              f"  fps {res['fps']:.1f}", flush=True)
        agn = res["class_agnostic"]
        print(f"{'  class-agnostic':28s} " + "  ".join(f"{k} {100 * agn[k]:.1f}" for k in KEYS),
              flush=True)
    if args.oracle:
        results["oracle_gt_identities"] = oracle_gt_identities(ckpt, ds)
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", type=Path, default=REPO / "outputs" / "maskprop_bench" / "data")
    ap.add_argument("--train-videos", type=int, default=80)
    ap.add_argument("--val-videos", type=int, default=24)
    ap.add_argument("--frames", type=int, default=12)
    ap.add_argument("--val-frames", type=int, default=16)
    ap.add_argument("--height", type=int, default=64)
    ap.add_argument("--width", type=int, default=96)
    ap.add_argument("--max-objects", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--vis-clean", action="store_true",
                    help="generator option distractors=False, fast_objects=False (train and val): "
                         "no unannotated shapes of the annotated categories, no fast movers")
    ap.add_argument("--budget-min", type=float, default=12.0, help="training wall-clock budget")
    ap.add_argument("--max-iter", type=int, default=10**9)
    ap.add_argument("--batch", type=int, default=4, help="frame pairs per step")
    ap.add_argument("--max-gap", type=int, default=3, help="largest frame gap of a training pair")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--log-period", type=int, default=50)
    ap.add_argument("--save", default=str(REPO / "outputs" / "maskprop_bench" / "maskprop_tiny.pth"))
    ap.add_argument("--init", type=Path, default=None,
                    help="start training from this checkpoint instead of random weights")
    ap.add_argument("--eval-only", type=Path, default=None, help="evaluate this checkpoint, no training")
    ap.add_argument("--no-eval", action="store_true", help="train and save only")
    ap.add_argument("--oracle", action="store_true",
                    help="also the diagnostic upper bound: detector masks with GT identities and labels")
    ap.add_argument("--json", type=Path, default=None, help="also write the metrics here")
    args = ap.parse_args()
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}", flush=True)
    ckpt = args.eval_only or train(args)
    if args.no_eval:
        return
    results = evaluate(args, Path(ckpt))
    for what, get in (("video mAP", lambda r: r["mAP"]),
                      ("class-agnostic video mAP", lambda r: r["class_agnostic"]["mAP"])):
        mp, fl = get(results["maskprop"]), get(results["maskprop_framelink"])
        print(f"{what}: maskprop / framelink = {100 * mp:.1f} / {100 * fl:.1f} "
              f"(ratio {mp / fl if fl > 0 else math.inf:.2f})")
    if args.json:
        tmp = args.json.with_suffix(".tmp")
        tmp.write_text(json.dumps(results, indent=2, default=float))
        os.replace(tmp, args.json)


if __name__ == "__main__":
    main()
