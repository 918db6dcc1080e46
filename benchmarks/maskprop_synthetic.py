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
    """``configs/method/<name>.yaml`` composed by Hydra (its ``defaults:`` list applied) + ``over``."""
    from vosbench.config import compose, to_dict

    cfg = to_dict(compose([f"method={name}", "dataset=synthetic_vis"]).method)
    cfg.update(over)
    return cfg


def train(args: argparse.Namespace) -> Path:
    from torch.utils.data import DataLoader


    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    ds = dataset(args, "train")
    model = build(method_cfg("maskprop_tiny", prop_train_masks=args.prop_train_masks), METHODS)
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


# The grid reaches a link threshold of any overlap (0.01) and an age of a whole 16-frame video:
# on the first grid (0.05-0.5 x 1-12) the best point was its corner (0.05, 12).
IOU_GRID = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5)
AGE_GRID = (1, 2, 3, 4, 6, 8, 12, 16)


@torch.no_grad()
def tune_framelink(args: argparse.Namespace, ckpt: Path) -> dict:
    """Grid over the frame-linking baseline's ``link_iou_thresh`` x ``link_max_age`` on the
    TRAIN split (``--tune-videos`` videos, never val); the detector runs once per frame and its
    states are reused for every grid point. Returns the grid and the best point (by video mAP,
    ties: AP50, then the looser point)."""
    from vosbench.metrics import build_evaluator

    a = argparse.Namespace(**vars(args))
    a.train_videos, a.frames = args.tune_videos, args.val_frames
    ds = dataset(a, "train")
    model = build(method_cfg("maskprop_framelink_tiny", weights=str(ckpt)), METHODS).eval()
    t0 = time.time()
    cached = [(sample, [model._frame_state(f.image) for f in sample.frames]) for sample in ds]
    print(f"tune: {len(cached)} train videos x {args.val_frames} frames, detector states in "
          f"{time.time() - t0:.0f} s", flush=True)
    grid = []
    for iou in IOU_GRID:
        for age in AGE_GRID:
            model.link_iou_thresh, model.link_max_age = iou, age
            ev = build_evaluator("ytvis")
            ev.reset()
            for sample, states in cached:
                ev.process(sample, model.link_frames(sample, states).materialize())
            r = ev.evaluate()
            grid.append({"link_iou_thresh": iou, "link_max_age": age, **{k: r[k] for k in KEYS}})
    best = max(grid, key=lambda g: (round(g["mAP"], 6), round(g["AP50"], 6), -g["link_iou_thresh"], g["link_max_age"]))
    print("tune (train split, video mAP %): rows link_iou_thresh, columns link_max_age", flush=True)
    print("iou\\age " + " ".join(f"{a:>6d}" for a in AGE_GRID))
    for iou in IOU_GRID:
        print(f"{iou:7.2f} " + " ".join(f"{100 * g['mAP']:6.2f}" for g in grid if g["link_iou_thresh"] == iou))
    print(f"tune: best link_iou_thresh {best['link_iou_thresh']} link_max_age {best['link_max_age']} "
          f"(train mAP {100 * best['mAP']:.2f}, AP50 {100 * best['AP50']:.2f})", flush=True)
    return {"grid": grid, "best": best, "videos": len(cached), "frames": args.val_frames}


FLOW_GRID = (("dis", True), ("dis", False), ("farneback", True), ("farneback", False))


@torch.no_grad()
def tune_flowprop(args: argparse.Namespace, ckpt: Path) -> dict:
    """The flow baseline's flow estimator x chaining, chosen on the TRAIN split
    (``--tune-videos`` videos), by video mAP (ties: AP50)."""
    from vosbench.metrics import build_evaluator

    a = argparse.Namespace(**vars(args))
    a.train_videos, a.frames = args.tune_videos, args.val_frames
    ds = dataset(a, "train")
    grid = []
    for flow, chain in FLOW_GRID:
        model = build(method_cfg("maskprop_flowprop_tiny", weights=str(ckpt), flow=flow, flow_chain=chain),
                      METHODS).eval()
        ev = build_evaluator("ytvis")
        ev.reset()
        for sample in ds:
            ev.process(sample, model.predict(sample).materialize())
        r = ev.evaluate()
        grid.append({"flow": flow, "flow_chain": chain, **{k: r[k] for k in KEYS}})
        print(f"tune flowprop (train): flow {flow:9s} chain {chain!s:5s} " +
              "  ".join(f"{k} {100 * r[k]:.2f}" for k in KEYS), flush=True)
    best = max(grid, key=lambda g: (round(g["mAP"], 6), round(g["AP50"], 6)))
    print(f"tune flowprop: best flow {best['flow']} flow_chain {best['flow_chain']}", flush=True)
    return {"grid": grid, "best": best, "videos": len(ds), "frames": args.val_frames}


def evaluate(args: argparse.Namespace, ckpt: Path, tuned: dict | None = None,
             tuned_flow: dict | None = None) -> dict:
    from vosbench.metrics import build_evaluator

    ds = dataset(args, "val")
    variants = {
        "maskprop": ("maskprop_tiny", {}),
        "maskprop (no refinement)": ("maskprop_tiny", {"refine_at_test": False}),
        "maskprop_flowprop": ("maskprop_flowprop_tiny", {}),
        "maskprop_framelink": ("maskprop_framelink_tiny", {}),
    }
    if tuned is not None:
        variants["maskprop_framelink (tuned on train)"] = (
            "maskprop_framelink_tiny", {"link_iou_thresh": tuned["link_iou_thresh"],
                                        "link_max_age": tuned["link_max_age"]})
    if tuned_flow is not None:
        variants["maskprop_flowprop (tuned on train)"] = (
            "maskprop_flowprop_tiny", {"flow": tuned_flow["flow"], "flow_chain": tuned_flow["flow_chain"]})
    if args.only:
        variants = {k: v for k, v in variants.items() if any(o == k.split(" ")[0] for o in args.only)}
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
    ap.add_argument("--tune-framelink", action="store_true",
                    help="grid-search the baseline's link_iou_thresh x link_max_age on the train split "
                         "(--tune-videos videos of --val-frames frames), then evaluate the best on val")
    ap.add_argument("--tune-flowprop", action="store_true",
                    help="choose the flow baseline's estimator (dis / farneback) and chaining on the train split")
    ap.add_argument("--tune-videos", type=int, default=48)
    ap.add_argument("--only", nargs="*", default=None,
                    help="evaluate only these rows (maskprop, maskprop_flowprop, maskprop_framelink)")
    ap.add_argument("--prop-train-masks", choices=("gt", "predicted"), default="gt",
                    help="method.prop_train_masks while training (the masks propagated by eq. 2)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}", flush=True)
    ckpt = args.eval_only or train(args)
    if args.no_eval:
        return
    tuned = tune_framelink(args, Path(ckpt)) if args.tune_framelink else None
    tuned_flow = tune_flowprop(args, Path(ckpt)) if args.tune_flowprop else None
    results = evaluate(args, Path(ckpt), tuned["best"] if tuned else None,
                       tuned_flow["best"] if tuned_flow else None)
    if tuned:
        results["framelink_tuning"] = tuned
    if tuned_flow:
        results["flowprop_tuning"] = tuned_flow
    for what, get in (("video mAP", lambda r: r["mAP"]),
                      ("class-agnostic video mAP", lambda r: r["class_agnostic"]["mAP"])):
        if "maskprop" not in results:
            break
        mp = get(results["maskprop"])
        for base in ("maskprop_flowprop", "maskprop_flowprop (tuned on train)", "maskprop_framelink",
                     "maskprop_framelink (tuned on train)"):
            if base in results:
                fl = get(results[base])
                print(f"{what}: maskprop / {base} = {100 * mp:.1f} / {100 * fl:.1f} "
                      f"(lead {100 * (mp - fl):+.1f} points, ratio {mp / fl if fl > 0 else math.inf:.2f})")
    if args.json:
        tmp = args.json.with_suffix(".tmp")
        tmp.write_text(json.dumps(results, indent=2, default=float))
        os.replace(tmp, args.json)


if __name__ == "__main__":
    main()
