"""Run a method over a dataset, write official-format results, evaluate, report FPS and memory.

    vosbench test method=NAME dataset=NAME dataset.root=DIR checkpoint=PATH output_dir=DIR
    torchrun --nproc_per_node=N -m vosbench test ...      # videos sharded across processes

Writes DIR/predictions/ (DAVIS palette PNGs <seq>/<frame>.png, or YouTube-VIS results.json +
submission.zip) and DIR/metrics.json. The job itself is ``vosbench.engine.inference.evaluate``.
"""
from __future__ import annotations

import json
from pathlib import Path

import hydra
from omegaconf import DictConfig

from vosbench.utils.resources import hydra_config_path
from vosbench.utils.threads import limit_threads


@hydra.main(config_path=hydra_config_path(), config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from vosbench.engine import comm
    from vosbench.engine.cli import run_tool
    from vosbench.engine.inference import evaluate

    limit_threads(cfg.get("threads"), device=_device(cfg))
    if cfg.get("checkpoint"):  # a shipped checkpoint by its repository path works from any folder
        from vosbench.utils.resources import resolve_shipped

        cfg.checkpoint = str(resolve_shipped(cfg.checkpoint))
    result = run_tool(evaluate, cfg)
    if comm.is_main_process():
        shown = {k: v for k, v in result.items() if not isinstance(v, dict)}
        print(json.dumps(shown, indent=2, default=str))
        print(f"{result['method']} on {result['dataset']}: {result['fps']:.2f} FPS (model time), "
              f"peak memory {result['peak_mem_mb']:.0f} MB")
        print_outputs(cfg, result)
    comm.destroy_distributed()


def print_outputs(cfg: DictConfig, result: dict) -> None:
    """Where this run wrote, and where its ground truth is (for ``vosbench eval --gt``)."""
    out = Path(cfg.output_dir)
    files = [str(out / n) for n in ("metrics.json", "per_sequence.json") if (out / n).is_file()]
    files += [str(v) for v in (result.get("files") or {}).values()]
    print("wrote " + ", ".join(files))
    root = _dataset_root(cfg)
    if root:
        print(f"ground truth: {root} (dataset={cfg.dataset.name}, split {cfg.dataset.get('split')})")


def _dataset_root(cfg: DictConfig) -> str | None:
    """The folder the dataset was read from; for the built-in data, the generated folder."""
    if str(cfg.dataset.name).startswith("synthetic"):
        from vosbench.data import build_dataset

        return str(getattr(build_dataset(cfg.dataset), "root", "") or "") or None  # cached: no work
    return str(cfg.dataset.get("root") or "") or None


def _device(cfg: DictConfig) -> str:
    """``cfg.device`` with ``auto`` resolved the way the engine resolves it (CUDA when present)."""
    import torch

    d = str(cfg.get("device", "auto"))
    return ("cuda" if torch.cuda.is_available() else "cpu") if d == "auto" else d


if __name__ == "__main__":
    main()
