"""Real video end to end (issue #22): train the tiny MaskRNN and LIP on real DAVIS-2016 train
frames, commit the checkpoints, score them on real DAVIS-2016 val sequences.

Everything goes through the real command-line tools in subprocesses, exactly as a user would
run them: ``tools/train.py`` (data check of the training split, ``ClipDataset``, the trainer,
``last.pth`` / ``model_final.pth``) and ``tools/test.py`` (``vosbench.engine.inference_on_dataset``
and the ``davis2016`` evaluator, the path ``tools/bench.py`` uses; predictions at the original
480p size, ground truth scored at its original size). Every command is printed before it runs
and recorded in ``<out>/real_video.json`` with the CPU time it used (user + system of the child
process and its children, ``resource.getrusage(RUSAGE_CHILDREN)``).

Recipe (all choices here, none in the method code):

* Data: ``../shared/data/davis2016-train`` (20 of the 30 DAVIS-2016 train sequences, 480p, as
  released, including the grey+alpha ``bear/00077.png``), clips resized to short side
  ``--short`` (120: 120x214 frames), horizontal flips.
* Initialisation: the committed synthetic checkpoints (``*_tiny_synthetic.pth``, trained on
  generated moving shapes, #16/#17). There are no ImageNet/COCO weights for the tiny
  backbones, so this is the only pre-training the tiny models have.
* MaskRNN (``method=maskrnn_tiny``): one ``train`` run, the paper's two offline stages in one
  schedule (single frames with perturbed previous masks for the first half,
  ``method.single_frame_iters``, then recurrent 4-frame clips with BPTT), AdamW, step decay.
* LIP (``method=lip_tiny``): the paper's two offline stages as two ``train`` runs: ``stage=image``
  (frames as independent images, one foreground class, ``num_ids=1``, from the synthetic
  checkpoint through ``method.pretrained``: its id layer is replaced) and ``stage=video`` (8-frame
  clips through the Conv-GRU memory, backbone frozen, a fresh id layer over the training ids,
  from the image-stage checkpoint).
* Test: the method's working size matches training: MaskRNN ``method.resize_short=<short>``
  (the method resizes internally and predicts at the original size), LIP
  ``dataset.resize_short=<short>`` (its Mask R-CNN transform then rescales the 120x214 frames to
  its ``min_size``/``max_size`` exactly as in training). The same overrides are in the rows of
  ``benchmarks/suites/default.yaml``.

    # the committed checkpoints (numbers in benchmarks/RESULTS.md, #22)
    OMP_NUM_THREADS=1 python benchmarks/real_video.py --out outputs/real_video --install
    # only one method, only the evaluation of committed weights, or print the commands:
    OMP_NUM_THREADS=1 python benchmarks/real_video.py --methods lip --out outputs/real_video
    OMP_NUM_THREADS=1 python benchmarks/real_video.py --steps eval --out outputs/real_video_eval
    python benchmarks/real_video.py --dry-run

``--install`` copies each ``model_final.pth`` (model weights + config, no optimizer state) to
``methods/<m>/weights/<m>_tiny_davis2016.pth`` (refused above 5 MB). ``--steps eval`` without a
training step of the same run evaluates those committed files.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data"
MAX_CKPT_BYTES = 5 * 1024 * 1024

SYNTHETIC = {"maskrnn": "methods/maskrnn/weights/maskrnn_tiny_synthetic.pth",
             "lip": "methods/lip/weights/lip_tiny_synthetic.pth"}
COMMITTED = {"maskrnn": "methods/maskrnn/weights/maskrnn_tiny_davis2016.pth",
             "lip": "methods/lip/weights/lip_tiny_davis2016.pth"}


def common_train(args) -> list[str]:
    """Overrides every training run shares (data, resolution, bookkeeping, one thread)."""
    return ["dataset=davis2016", f"dataset.root={args.train_root}", "trainer.train_split=train",
            f"trainer.clip.resize_short={args.short}", "trainer.clip.hflip=true",
            "trainer.num_workers=0", "trainer.eval_period=0", "trainer.tensorboard=false",
            "trainer.progress=false", "trainer.log_period=20", "trainer.checkpoint_period=100",
            "trainer.optimizer._target_=torch.optim.AdamW", "trainer.optimizer.weight_decay=1.0e-4",
            "trainer.warmup_factor=0.1", f"seed={args.seed}", "threads=1", "device=cpu"]


def schedule(iters: int, lr: float, warmup: int, batch: int, frames: int, stride: int) -> list[str]:
    """A run's length, batch, clips and step-decay schedule (x0.1 at 3/4 of the run)."""
    return [f"trainer.max_iter={iters}", f"trainer.batch_size={batch}",
            f"trainer.clip.num_frames={frames}", f"trainer.clip.max_stride={stride}",
            f"trainer.optimizer.lr={lr}", f"trainer.warmup_iters={warmup}",
            f"trainer.scheduler.milestones=[{int(0.75 * iters)}]", "trainer.scheduler.gamma=0.1"]


def train_runs(args) -> dict[str, list[tuple[str, list[str]]]]:
    """method -> [(run name, tools/train.py overrides)], in order; the last run is the model."""
    out = Path(args.out)
    n = args.maskrnn_iters
    maskrnn = [("maskrnn", ["method=maskrnn_tiny", *common_train(args),
                            f"checkpoint={SYNTHETIC['maskrnn']}", f"method.single_frame_iters={n // 2}",
                            *schedule(n, args.maskrnn_lr, 50, batch=4, frames=4, stride=2),
                            f"output_dir={out / 'maskrnn'}"])]
    lip_common = ["method=lip_tiny", *common_train(args), "trainer.grad_clip=10.0"]
    lip = [("lip_image", [*lip_common, "method.stage=image", "method.num_ids=1",
                          f"method.pretrained={SYNTHETIC['lip']}",
                          *schedule(args.lip_image_iters, args.lip_lr, 50, batch=4, frames=2, stride=5),
                          f"output_dir={out / 'lip_image'}"]),
           ("lip", [*lip_common, "method.stage=video",
                    f"method.pretrained={out / 'lip_image' / 'model_final.pth'}",
                    *schedule(args.lip_video_iters, args.lip_lr / 2, 20, batch=1, frames=8, stride=1),
                    f"output_dir={out / 'lip'}"])]
    return {"maskrnn": maskrnn, "lip": lip}


def test_overrides(method: str, short: int) -> tuple[str, list[str]]:
    """(method config, working-size overrides) of the bench rows (see the module docstring)."""
    if method == "maskrnn":
        return "maskrnn_tiny", [f"method.resize_short={short}"]
    if method == "lip":
        return "lip_tiny", [f"dataset.resize_short={short}"]
    if "@" in method:  # a baseline at a reduced size: "flow_propagation@120"
        name, size = method.split("@")
        return name, [f"dataset.resize_short={int(size)}"]
    return method, []  # training-free baselines: original size


def run(cmd: list[str], log: Path, dry: bool) -> dict:
    """Run ``cmd`` (printed first), its output to ``log``; returns wall and CPU seconds."""
    shown = ["python" if c == sys.executable else c for c in cmd]
    line = "OMP_NUM_THREADS=1 " + " ".join(shlex.quote(c) for c in shown)
    print(f"$ {line}", flush=True)
    if dry:
        return {"command": line, "dry_run": True}
    log.parent.mkdir(parents=True, exist_ok=True)
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.time()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    with open(log, "w") as f:
        rc = subprocess.call(cmd, cwd=REPO, env=env, stdout=f, stderr=subprocess.STDOUT)
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    rec = {"command": line, "rc": rc, "wall_s": round(time.time() - t0, 1), "cpu_s": round(cpu, 1),
           "log": str(log)}
    print(f"  -> rc {rc}, wall {rec['wall_s']:.0f} s, CPU {cpu / 60:.1f} min, log {log}", flush=True)
    if rc != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-5:]
        raise SystemExit(f"command failed (rc {rc}), last lines of {log}:\n" + "\n".join(tail))
    return rec


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="outputs/real_video")
    ap.add_argument("--methods", default="maskrnn,lip", help="comma-separated: maskrnn, lip")
    ap.add_argument("--steps", default="train,eval", help="comma-separated: train, eval")
    ap.add_argument("--baselines", default="",
                    help="also evaluate these method configs (e.g. flow_propagation,first_frame_copy); "
                         "NAME@S runs NAME on frames of short side S (dataset.resize_short=S, scored at 480p)")
    ap.add_argument("--train-root", default=str(DATA / "davis2016-train"))
    ap.add_argument("--val-root", default=str(DATA / "davis2016-mini"))
    ap.add_argument("--short", type=int, default=120, help="short side of the training clips / test working size")
    ap.add_argument("--maskrnn-iters", type=int, default=900)
    ap.add_argument("--maskrnn-lr", type=float, default=1e-3)
    ap.add_argument("--lip-image-iters", type=int, default=250)
    ap.add_argument("--lip-video-iters", type=int, default=200)
    ap.add_argument("--lip-lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--install", action="store_true",
                    help="copy the trained model_final.pth files to methods/<m>/weights/<m>_tiny_davis2016.pth")
    ap.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    methods = [m for m in args.methods.split(",") if m]
    steps = {s for s in args.steps.split(",") if s}
    out = Path(args.out)
    if not out.is_absolute():
        out = REPO / out
    args.out = str(out)
    py = sys.executable
    report: dict = {"args": vars(args), "train": {}, "eval": {}}
    report_path = out / "real_video.json"

    def save() -> None:
        if not args.dry_run:
            out.mkdir(parents=True, exist_ok=True)
            report_path.write_text(json.dumps(report, indent=2))

    runs = train_runs(args)
    ckpts: dict[str, str] = {}
    for m in methods:
        if m not in runs:
            raise SystemExit(f"unknown method {m!r} (maskrnn, lip)")
        if "train" in steps:
            recs = []
            for name, ov in runs[m]:
                recs.append({"run": name, **run([py, "tools/train.py", *ov], out / "logs" / f"train_{name}.log",
                                                args.dry_run)})
            final = out / runs[m][-1][0] / "model_final.pth"
            report["train"][m] = {"runs": recs, "cpu_min": round(sum(r.get("cpu_s", 0) for r in recs) / 60, 2),
                                  "model": str(final)}
            ckpts[m] = str(final)
            if args.install and not args.dry_run:
                size = final.stat().st_size
                if size > MAX_CKPT_BYTES:
                    raise SystemExit(f"{final}: {size / 2**20:.1f} MB is above the 5 MB limit")
                dst = REPO / COMMITTED[m]
                shutil.copyfile(final, dst)
                print(f"installed {dst} ({size / 2**20:.2f} MB)")
                report["train"][m]["installed"] = str(dst)
            save()
        else:
            ckpts[m] = str(REPO / COMMITTED[m])

    if "eval" in steps:
        for m in [*methods, *[b for b in args.baselines.split(",") if b]]:
            res_dir = out / f"eval_{m.replace('@', '_at')}"
            cfg_name, sizes = test_overrides(m, args.short)
            cmd = [py, "tools/test.py", f"method={cfg_name}", "dataset=davis2016",
                   f"dataset.root={args.val_root}", "dataset.split=val", *sizes, "threads=1", "device=cpu",
                   f"output_dir={res_dir}"]
            if m in ckpts:
                cmd.append(f"checkpoint={ckpts[m]}")
            rec = run(cmd, out / "logs" / f"test_{m}.log", args.dry_run)
            if not args.dry_run:
                metrics = json.loads((res_dir / "metrics.json").read_text())
                rec.update({k: metrics.get(k) for k in ("J&F", "J_mean", "F_mean", "J_recall", "F_recall",
                                                         "fps", "num_videos", "num_frames")})
            report["eval"][m] = rec
            save()
        if not args.dry_run:
            print("\n| method | trained on | train CPU min | J&F | J mean | F mean | test CPU min |")
            print("|---|---|---|---|---|---|---|")
            for m, r in report["eval"].items():
                tr = report["train"].get(m, {})
                print(f"| {m} | {'davis2016-train' if m in runs else '-'} | "
                      f"{tr.get('cpu_min', '-') if tr else ('committed' if m in runs else '-')} | "
                      f"{r['J&F']:.4f} | {r['J_mean']:.4f} | {r['F_mean']:.4f} | {r['cpu_s'] / 60:.1f} |")
    save()
    if not args.dry_run:
        print(f"wrote {report_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
