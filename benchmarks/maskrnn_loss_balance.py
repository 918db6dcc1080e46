"""MaskRNN loss balance: gradient norm of the mask loss vs the box loss on the appearance stream.

The appearance stream is shared by the segmentation net and the localization net (RoI pooling
on its conv5_3), so the ratio ``||d loss_mask / d theta_app|| / ||d loss_box / d theta_app||``
says which task shapes its features. This script measures it on the same clip at several
resolutions (frames resized bilinearly, masks nearest), for a stage-1 (single-frame) training
step with one perturbation draw (made at the clip's own size and resized), so the only thing
that changes is the resolution.

    OMP_NUM_THREADS=1 python benchmarks/maskrnn_loss_balance.py \\
        --checkpoint methods/maskrnn/weights/maskrnn_tiny_synthetic.pth --reduction sum mean
    OMP_NUM_THREADS=1 python benchmarks/maskrnn_loss_balance.py --config maskrnn --random-init \\
        --data blackswan --sizes 64x96 480x854 --reduction mean

Prints one JSON line per (reduction, size) and a summary line with the ratio of ratios.
Measured numbers: ``benchmarks/RESULTS.md`` (#16) and the method README (deviations).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import vosbench_methods  # noqa: E402,F401  (registers every method)
from vosbench.config import build, compose, to_dict  # noqa: E402
from vosbench.models.weights import weights_policy  # noqa: E402
from vosbench.registry import METHODS  # noqa: E402

DAVIS_MINI = REPO.parent / "shared" / "data" / "davis2016-mini"


def method_config(name: str, sets: list[str]) -> dict:
    return to_dict(compose(["~dataset", f"method={name}"] + [f"method.{s}" for s in sets]).method)


def load_frames(data: str, num_frames: int):
    """(images Tensor[T, 3, H, W], masks Tensor[T, O, H, W] bool, obj_ids) of the clip at its own size."""
    from vosbench.data import build_dataset

    if data == "blackswan":
        ds = build_dataset({"name": "davis2016", "root": str(DAVIS_MINI), "split": "val",
                            "resolution": "480p"})
        video = ds["blackswan"]
    else:
        cfg = to_dict(compose(["dataset=synthetic"]).dataset)
        cfg.update(split="val", num_videos=8, num_frames=12)
        video = build_dataset(cfg)[0]
    frames = [video.frames[t] for t in range(num_frames)]
    ids = sorted({int(i) for f in frames for i in f.obj_ids})
    masks = torch.stack([torch.stack([f.masks[f.obj_ids == i].any(0) if bool((f.obj_ids == i).any())
                                      else torch.zeros(f.size, dtype=torch.bool) for i in ids])
                         for f in frames])
    return torch.stack([f.image for f in frames]), masks, ids


def make_batch(images, masks, size):
    from vosbench.structures import VideoBatch

    T, O = masks.shape[:2]
    im = F.interpolate(images, size=size, mode="bilinear", align_corners=False, antialias=True)
    ms = F.interpolate(masks.float(), size=size, mode="nearest-exact") > 0.5
    h, w = size
    return VideoBatch(images=im[None], masks=ms[None], obj_ids=torch.arange(1, O + 1)[None],
                      labels=torch.full((1, O), -1), obj_valid=torch.ones(1, O, dtype=torch.bool),
                      annotated=torch.ones(1, T, dtype=torch.bool),
                      pad=torch.zeros(1, T, h, w, dtype=torch.bool),
                      void=torch.zeros(1, T, h, w, dtype=torch.bool),
                      frame_idx=torch.arange(T)[None])


def grad_norm(loss, params) -> float:
    grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    return float(torch.sqrt(sum((g.double() ** 2).sum() for g in grads if g is not None)))


def fixed_perturbation(model, masks, seed: int):
    """Perturbed previous masks drawn once at the clip's own resolution, in the order stage 1
    asks for them (pairs (t-1, t) for t = 1.., then objects), as Tensor[N, H, W] bool.

    The perturbation's morphology radius is in pixels, so drawing it again at each size would
    perturb a 64x96 mask relatively ~8x more than a 480x854 one; resizing one draw keeps the
    input identical up to resolution.
    """
    from vosbench.data.mask_perturb import perturb_mask

    rng = np.random.default_rng(seed)
    T, O = masks.shape[:2]
    n_t = model._num_trained_frames(T)
    out = [perturb_mask(masks[t - 1, o], rng, model.perturbation) if bool(masks[t - 1, o].any())
           else masks[t - 1, o] for t in range(1, n_t) for o in range(O)]
    return torch.stack(out)


def measure(model, batch, perturbed) -> dict:
    model.train()
    model.train_iter.zero_()
    model.single_frame_iters = 10**9  # stage 1: single frames with a perturbed previous mask

    def same_perturbation(masks, rng=None):  # [N, h, w] bool -> the fixed draw at this size
        assert masks.shape[0] == perturbed.shape[0], "perturbation order changed"
        return F.interpolate(perturbed[None].float(), size=tuple(masks.shape[-2:]),
                             mode="nearest-exact")[0].to(masks.device)

    model._perturb = same_perturbation
    t0 = time.perf_counter()
    losses = model.training_step(batch)
    app = [p for p in model.appearance.parameters() if p.requires_grad]
    gm = grad_norm(losses["loss_mask"], app)
    gb = grad_norm(losses["loss_box"], app)
    return {"loss_mask": float(losses["loss_mask"].detach()), "loss_box": float(losses["loss_box"].detach()),
            "grad_mask": gm, "grad_box": gb, "ratio": gm / max(gb, 1e-30),
            "seconds": round(time.perf_counter() - t0, 1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="maskrnn_tiny", help="a configs/method/ name")
    p.add_argument("--checkpoint", default=None, help="weights to load (default: none)")
    p.add_argument("--random-init", action="store_true",
                   help="random init of the paper-size model (no ImageNet VGG-16 here)")
    p.add_argument("--set", action="append", default=[], help="method config override key=value")
    p.add_argument("--data", choices=["synthetic", "blackswan"], default="synthetic")
    p.add_argument("--frames", type=int, default=3, help="clip frames (3: one trained pair)")
    p.add_argument("--sizes", nargs="+", default=["64x96", "480x854"])
    p.add_argument("--reduction", nargs="+", default=["mean"], choices=["mean", "sum"])
    p.add_argument("--box-weight", type=float, default=None, help="override box_loss_weight")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(1)
    images, masks, ids = load_frames(args.data, args.frames)
    sets = list(args.set)
    summary = {}
    for red in args.reduction:
        over = sets + [f"mask_loss_reduction={red}"]
        if args.box_weight is not None:
            over.append(f"box_loss_weight={args.box_weight}")
        cfg = method_config(args.config, over)
        torch.manual_seed(args.seed)
        with weights_policy(allow_random_init=args.random_init):
            model = build(cfg, METHODS)
        if args.checkpoint:
            from vosbench.engine.checkpoint import load_model_weights

            load_model_weights(model, args.checkpoint)
        perturbed = fixed_perturbation(model, masks, args.seed)
        ratios = []
        for spec in args.sizes:
            h, w = (int(v) for v in spec.lower().split("x"))
            res = measure(model, make_batch(images, masks, (h, w)), perturbed)
            res = {"reduction": red, "size": spec, "box_weight": model.criterion.box_weight, **res}
            ratios.append(res["ratio"])
            print(json.dumps({k: (float(f"{v:.4g}") if isinstance(v, float) else v) for k, v in res.items()}),
                  flush=True)
        summary[red] = max(ratios) / min(ratios)
    print(json.dumps({"data": args.data, "config": args.config, "checkpoint": args.checkpoint,
                      "ratio_max_over_min": {k: float(f"{v:.4g}") for k, v in summary.items()}}))


if __name__ == "__main__":
    main()
