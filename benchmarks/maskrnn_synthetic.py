"""MaskRNN learning evidence on the synthetic dataset (2-core CPU, time-budgeted).

Two sub-commands; numbers go to ``benchmarks/results/maskrnn.md``.

``train``: trains the tiny MaskRNN (``configs/method/maskrnn_tiny.yaml`` + ``--set`` overrides)
on the synthetic train split for a wall-clock budget. The paper's two offline stages are kept:
single frames with perturbed previous masks for the first ``--single-frac`` of the budget, then
recurrent clips with back-propagation through time. Adam with a cosine decay over the budget.
Writes ``<out>/model_final.pth`` (a vosbench checkpoint, model weights only) and
``<out>/train_log.json``.

``eval``: runs ``first_frame_copy``, ``flow_propagation`` and each ``--run name=ckpt[:k=v,...]``
on the held-out synthetic val split with the ``davis2017`` evaluator and prints a table.

    OMP_NUM_THREADS=1 python benchmarks/maskrnn_synthetic.py train --minutes 12 --out outputs/maskrnn_full
    OMP_NUM_THREADS=1 python benchmarks/maskrnn_synthetic.py train --minutes 12 --set warp_mask=false --out outputs/maskrnn_nowarp
    OMP_NUM_THREADS=1 python benchmarks/maskrnn_synthetic.py eval --run full=outputs/maskrnn_full/model_final.pth \\
        --run nowarp=outputs/maskrnn_nowarp/model_final.pth:warp_mask=false
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import methods  # noqa: E402,F401  (registers every method)
from vosbench.config import CONFIG_DIR, build  # noqa: E402
from vosbench.registry import METHODS  # noqa: E402

# Training split: disjoint seed stream from val (the generator derives it from the split name).
TRAIN_DATA = dict(num_videos=60, num_frames=16)


def method_config(name: str, sets: list[str]) -> dict:
    """Compose ``configs/method/<name>.yaml`` (Hydra defaults resolved) with ``key=value`` overrides."""
    from vosbench.config import compose, to_dict

    return to_dict(compose([f"method={name}"] + [f"method.{s}" for s in sets]).method)


def dataset_config(split: str, **over) -> dict:
    cfg = yaml.safe_load((CONFIG_DIR / "dataset" / "synthetic.yaml").read_text())
    cfg = {k: v for k, v in cfg.items() if k != "defaults"}
    cfg.update(split=split, **over)
    return cfg


def train(args) -> None:
    from torch.utils.data import DataLoader

    from vosbench.data import ClipDataset, build_dataset, collate_clips
    from vosbench.engine.checkpoint import save_checkpoint

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    cfg = method_config(args.config, args.set)
    cfg["single_frame_iters"] = 10**9  # switched to the recurrent stage by time below
    model = build(cfg, METHODS)
    model.train()
    data = build_dataset(dataset_config("train", **TRAIN_DATA))
    clips = ClipDataset(data, num_frames=args.frames, max_stride=args.max_stride,
                        samples_per_epoch=100000, hflip=True, seed=args.seed)
    loader = DataLoader(clips, batch_size=args.batch, shuffle=True, num_workers=0,
                        collate_fn=collate_clips, drop_last=True)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=args.lr)
    budget = args.minutes * 60.0
    t0 = time.time()
    log, it, recurrent_from = [], 0, None
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    run_avg: dict[str, float] = {}
    for batch in loader:
        elapsed = time.time() - t0
        if elapsed >= budget:
            break
        if recurrent_from is None and model.recurrent and elapsed >= args.single_frac * budget:
            recurrent_from = it
            model.single_frame_iters = int(model.train_iter)
        for g in opt.param_groups:  # cosine decay over the wall-clock budget
            g["lr"] = args.lr * 0.5 * (1 + math.cos(math.pi * min(elapsed / budget, 1.0)))
        losses = model.training_step(batch)
        loss = sum(losses.values())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, args.grad_clip)
        opt.step()
        it += 1
        for k, v in losses.items():
            run_avg[k] = 0.9 * run_avg.get(k, float(v)) + 0.1 * float(v)
        if it % 25 == 0:
            row = {"iter": it, "time_s": round(time.time() - t0, 1), "lr": opt.param_groups[0]["lr"],
                   "stage": "recurrent" if recurrent_from is not None else "single",
                   **{k: round(v, 4) for k, v in run_avg.items()}}
            log.append(row)
            print(json.dumps(row), flush=True)
    model.eval()
    save_checkpoint(out / "model_final.pth", model, iteration=it, config=cfg)
    summary = {"iterations": it, "recurrent_from_iter": recurrent_from,
               "wall_s": round(time.time() - t0, 1), "args": vars(args), "config": cfg, "log": log}
    (out / "train_log.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps({k: summary[k] for k in ("iterations", "recurrent_from_iter", "wall_s")}))


def evaluate(args) -> None:
    from vosbench.data import build_dataset
    from vosbench.engine import inference_on_dataset
    from vosbench.engine.checkpoint import load_model_weights
    from vosbench.metrics import build_evaluator

    torch.set_num_threads(args.threads)
    data = build_dataset(dataset_config("val"))
    runs = []
    if not args.no_baselines:
        for name in ("first_frame_copy", "flow_propagation"):
            runs.append((name, build(method_config(name, []), METHODS)))
    for spec in args.run:
        name, _, rest = spec.partition("=")
        ckpt, _, over = rest.partition(":")
        sets = [s for s in over.split(",") if s]
        cfg = method_config(args.config, sets)
        model = build(cfg, METHODS)
        load_model_weights(model, ckpt)
        runs.append((name, model.eval()))
    rows = []
    for name, model in runs:
        t0 = time.time()
        ev = build_evaluator(data.metric)
        res = inference_on_dataset(model, data, evaluator=ev, progress=False)
        res = {k: float(v) for k, v in res.items() if isinstance(v, (int, float))}
        res["wall_s"] = time.time() - t0
        rows.append((name, res))
        print(json.dumps({"method": name, **{k: round(v, 4) for k, v in res.items()}}), flush=True)
    keys = ["J&F", "J_mean", "F_mean", "T_mean", "fps", "wall_s"]
    print("\n| method | " + " | ".join(keys) + " |")
    print("|---" * (len(keys) + 1) + "|")
    for name, res in rows:
        print(f"| {name} | " + " | ".join(f"{res.get(k, float('nan')):.3f}" for k in keys) + " |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--config", default="maskrnn_tiny", help="a configs/method/ name")
    t.add_argument("--set", action="append", default=[], help="method config override key=value")
    t.add_argument("--minutes", type=float, default=12.0)
    t.add_argument("--single-frac", type=float, default=0.5,
                   help="fraction of the budget for the single-frame stage (then recurrent)")
    t.add_argument("--frames", type=int, default=4, help="clip length for BPTT (paper: 7)")
    t.add_argument("--max-stride", type=int, default=2)
    t.add_argument("--batch", type=int, default=4)
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--grad-clip", type=float, default=10.0)
    t.add_argument("--threads", type=int, default=1)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--out", required=True)
    e = sub.add_parser("eval")
    e.add_argument("--config", default="maskrnn_tiny", help="a configs/method/ name")
    e.add_argument("--run", action="append", default=[], help="name=ckpt[:key=value,...]")
    e.add_argument("--no-baselines", action="store_true")
    e.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    train(args) if args.cmd == "train" else evaluate(args)


if __name__ == "__main__":
    main()
