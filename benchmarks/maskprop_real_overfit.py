"""Paper-width MaskProp from random init overfits one real one-instance video (issue #18).

The video: the first ``--frames`` frames of DAVIS-2016 ``blackswan`` as YouTube-VIS, i.e. the
shared conversion ``../shared/data/formats/davis2016-mini_ytvis.json`` cut to those frames
(written to ``<out>/blackswan<N>.json``; the frames are read from the davis2016-mini folder by
the real ``ytvis2019`` loader). One instance, one category.

The model: ``configs/method/maskprop.yaml`` as composed by Hydra, at full width (ResNet-50-FPN
256 channels, 1024-d box head, 4x256 mask head, 41 classes, 128-channel offset block with
dilations 3/6/12 on the stride-8 map, 128-channel 3-block refinement, clips of 13 frames). What
differs, and why:

* random init (``allow_random_init``; no pretrained file offline) with ``backbone.norm=gn`` and
  ``trainable_layers=5``: frozen BatchNorm keeps pretrained statistics, and with random weights
  there are none (frozen, it would also freeze conv1/layer1 at random values);
* the input resolution (``--short``: the detector's short side, train and test) and, with it,
  the refinement patch (``--patch``; the paper's 384 px patch is for ~800 px frames);
* the optimiser: AdamW (an overfitting check, not the paper schedule, which is in
  ``configs/experiment/maskprop/ytvis_train.yaml``).

Training: pairs of frames with a gap of up to ``--max-gap`` (``ClipDataset``), batch 1 pair,
Mask R-CNN + propagation (eq. 2) + refinement losses. Every ``--eval-every`` steps ``predict``
runs on the same frames and the ``ytvis`` evaluator gives video AP / AP50. It stops at
``--target`` AP50 or when the process CPU time (user + system, evaluation included) reaches
``--cpu-minutes``.

    OMP_NUM_THREADS=1 python benchmarks/maskprop_real_overfit.py --out outputs/e18_overfit

Writes ``<out>/curve.json`` (losses per logged step, AP per evaluation, CPU seconds). Measured:
``benchmarks/RESULTS.md`` (#18).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import vosbench_methods  # noqa: E402,F401  (registers every method)
from vosbench.config import build, compose, to_dict  # noqa: E402
from vosbench.registry import METHODS  # noqa: E402

SHARED = REPO.parent / "shared" / "data"
DAVIS_MINI = SHARED / "davis2016-mini"
MINI_YTVIS = SHARED / "formats" / "davis2016-mini_ytvis.json"


def cpu_seconds() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def cut_video(src: Path, video: str, frames: int, out: Path) -> Path:
    """A per-video YouTube-VIS json with only the first ``frames`` frames of ``video``."""
    js = json.loads(src.read_text())
    vids = [v for v in js["videos"] if v["file_names"][0].split("/")[0] == video]
    if not vids:
        raise SystemExit(f"error: {src}: no video {video!r}")
    v = dict(vids[0])
    if v["length"] < frames:
        raise SystemExit(f"error: {src}: {video} has {v['length']} frames, {frames} asked")
    v["file_names"], v["length"] = v["file_names"][:frames], frames
    anns = []
    for a in js["annotations"]:
        if a["video_id"] == v["id"]:
            a = dict(a)
            for k in ("segmentations", "areas", "bboxes"):
                if k in a:
                    a[k] = a[k][:frames]
            a["length"] = frames
            anns.append(a)
    out.write_text(json.dumps({"info": js.get("info", {}), "videos": [v], "categories": js["categories"],
                               "annotations": anns}))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--video", default="blackswan")
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--short", type=int, default=192, help="detector short side (480p frames: 192x342)")
    p.add_argument("--patch", type=int, default=96, help="refinement patch side (paper: 384 at ~800 px)")
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--max-gap", type=int, default=7)
    p.add_argument("--max-steps", type=int, default=5000)
    p.add_argument("--eval-every", type=int, default=50)
    p.add_argument("--log-every", type=int, default=10)
    p.add_argument("--target", type=float, default=0.9, help="stop at this video AP50")
    p.add_argument("--cpu-minutes", type=float, default=30.0)
    p.add_argument("--override", nargs="*", default=[], help="more method.<key>=<value> overrides")
    p.add_argument("--save", action="store_true", help="write <out>/model.pth at every evaluation")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    args.out = args.out.resolve()
    torch.set_num_threads(1)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)

    from torch.utils.data import DataLoader

    from vosbench.data import ClipDataset, build_dataset, collate_clips
    from vosbench.metrics import build_evaluator
    from vosbench.models.weights import weights_policy

    ann = cut_video(MINI_YTVIS, args.video, args.frames, args.out / f"{args.video}{args.frames}.json")
    ds = build_dataset({"name": "ytvis2019", "root": str(DAVIS_MINI), "split": "train",
                        "ann_file": str(ann), "image_dir": str(DAVIS_MINI / "JPEGImages" / "480p")})
    over = ["method.backbone.weights=null", "method.detector_weights=null", "method.backbone.norm=gn",
            "method.backbone.trainable_layers=5", f"method.min_size=[{args.short}]",
            f"method.max_size={int(args.short * 854 / 480) + 1}", f"method.refine_patch={args.patch}",
            *[f"+method.{o[1:]}" if o.startswith("+") else f"method.{o}" for o in args.override]]
    cfg = to_dict(compose(["method=maskprop", "dataset=ytvis2019", "dataset.root=unused",
                           "allow_random_init=true", *over]).method)
    with weights_policy(allow_random_init=True):
        model = build(cfg, METHODS)
    n_params = sum(p.numel() for p in model.parameters())
    print(json.dumps({"model": "configs/method/maskprop.yaml", "overrides": over, "params": n_params,
                      "video": args.video, "frames": args.frames, "torch": torch.__version__,
                      "threads": torch.get_num_threads(), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS")}),
          flush=True)
    clips = ClipDataset(ds, num_frames=2, max_stride=args.max_gap, samples_per_epoch=64, hflip=True,
                        seed=args.seed)
    loader = DataLoader(clips, batch_size=1, shuffle=True, collate_fn=collate_clips, num_workers=0)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=args.lr,
                            weight_decay=1e-4)
    video = ds[0]
    curve: dict = {"args": {k: str(v) for k, v in vars(args).items()}, "overrides": over, "steps": [], "evals": []}
    cpu0, wall0 = cpu_seconds(), time.time()
    step, done, best = 0, False, 0.0

    def evaluate() -> dict:
        model.eval()
        ev = build_evaluator("ytvis")
        ev.reset()
        c0 = cpu_seconds()
        with torch.inference_mode():
            pred = model.predict(video).materialize()
        ev.process(video, pred)
        r = ev.evaluate()
        model.train()
        # diagnostics: the video IoU (YouTube-VIS definition: summed over frames) of every entry
        # with the instance, and the rank of the best one among the category-1 entries
        gt = torch.stack([f.masks[0] for f in video.frames])                        # [T, H, W]
        pm = torch.stack([f.masks for f in pred.frames], 1) if len(pred.obj_ids) else gt[None][:0]
        inter = (pm & gt[None]).flatten(1).sum(1).float()
        union = (pm | gt[None]).flatten(1).sum(1).float().clamp(min=1)
        viou = (inter / union).tolist()
        cat1 = [k for k in range(len(pred.obj_ids)) if int(pred.labels[k]) == 1]
        order = sorted(cat1, key=lambda k: -float(pred.scores[k]))
        best = max(order, key=lambda k: viou[k]) if order else None
        return {"step": step, "cpu_s": cpu_seconds() - cpu0, "AP": r["mAP"], "AP50": r["AP50"],
                "AP75": r["AP75"], "AR1": r["AR1"], "entries": int(len(pred.obj_ids)),
                "top_score": float(pred.scores.max()) if len(pred.scores) else 0.0,
                "best_video_iou": max(viou) if viou else 0.0,
                "top_cat1_video_iou": viou[order[0]] if order else 0.0,
                "rank_of_best_cat1": order.index(best) if best is not None else None,
                "eval_cpu_s": cpu_seconds() - c0}

    model.train()
    avg: dict[str, float] = {}
    while not done:
        for batch in loader:
            losses = model.training_step(batch)
            total = sum(losses.values())
            opt.zero_grad(set_to_none=True)
            total.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
            opt.step()
            step += 1
            for k, v in losses.items():
                v = float(v.detach())
                avg[k] = 0.8 * avg.get(k, v) + 0.2 * v
            if step % args.log_every == 0:
                rec = {"step": step, "cpu_s": round(cpu_seconds() - cpu0, 1), "wall_s": round(time.time() - wall0, 1),
                       **{k[5:]: round(v, 4) for k, v in sorted(avg.items())}}
                curve["steps"].append(rec)
                print(json.dumps(rec), flush=True)
            over_budget = cpu_seconds() - cpu0 > args.cpu_minutes * 60
            if step % args.eval_every == 0 or over_budget or step >= args.max_steps:
                r = evaluate()
                if args.save:   # the model of the last evaluation (diagnosis), written atomically
                    tmp = args.out / "model.pth.tmp"
                    torch.save({"model": model.state_dict(), "step": step, "overrides": over}, tmp)
                    os.replace(tmp, args.out / "model.pth")
                best = max(best, r["AP50"])
                curve["evals"].append(r)
                print(json.dumps({"eval": r}), flush=True)
                if r["AP50"] >= args.target or over_budget or step >= args.max_steps:
                    done = True
                    break
    curve["result"] = {"reached": best >= args.target, "best_AP50": best, "steps": step,
                       "cpu_minutes": (cpu_seconds() - cpu0) / 60, "wall_minutes": (time.time() - wall0) / 60}
    print(json.dumps({"result": curve["result"]}), flush=True)
    tmp = args.out / "curve.json.tmp"
    tmp.write_text(json.dumps(curve, indent=1))
    os.replace(tmp, args.out / "curve.json")
    return 0 if best >= args.target else 1


if __name__ == "__main__":
    sys.exit(main())
