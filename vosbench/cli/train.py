"""Train a method (Hydra app; ``--help`` lists the config groups and the composed config).

    vosbench train method=NAME dataset=NAME trainer=debug output_dir=DIR
    vosbench train ... resume=true              # continue from DIR/last.pth
    torchrun --nproc_per_node=N -m vosbench train ...     # DDP (or tools/train.py in a clone)
    vosbench train -m seed=0,1 ...              # sweep (hydra/launcher=slurm for SLURM)

The job itself is ``vosbench.engine.defaults.train(cfg)``. Configs come from the shipped
``configs/`` (``pkg://vosbench._resources.configs`` when installed); add your own folder with
``hydra.searchpath=[file:///my/configs]`` or Hydra's ``--config-dir /my/configs``.
"""
from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig

from vosbench.utils.resources import hydra_config_path
from vosbench.utils.threads import limit_threads


@hydra.main(config_path=hydra_config_path(), config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from vosbench.engine.cli import run_tool
    from vosbench.engine.defaults import train

    cfg = resume_config(cfg)
    limit_threads(cfg.get("threads"), device=_device(cfg))
    if cfg.get("checkpoint"):  # a shipped checkpoint by its repository path works from any folder
        from vosbench.utils.resources import resolve_shipped

        cfg.checkpoint = str(resolve_shipped(cfg.checkpoint))
    result = run_tool(train, cfg)
    if result is not None:
        from vosbench.engine import comm

        if comm.is_main_process():
            print(f"done: {result['iteration']} iterations, checkpoint {result['final_checkpoint']}")
            print_outputs(Path(result["output_dir"]))
        comm.destroy_distributed()


TRAIN_OUTPUTS = ("model_final.pth", "last.pth", "config.yaml", "metrics.jsonl", "train.log", "log.txt",
                 "tb")


def print_outputs(out: Path) -> None:
    """The files a training run left in ``out`` (what the README promises, as they exist)."""
    found = [n + ("/" if (out / n).is_dir() else "") for n in TRAIN_OUTPUTS if (out / n).exists()]
    print(f"wrote {out}/: {', '.join(found)}")


def resume_config(cfg: DictConfig) -> DictConfig:
    """``resume=true``: the run folder's ``config.yaml`` with this command's overrides on top.

    So ``vosbench train output_dir=out/mrnn resume=true`` continues with the settings the
    checkpoint was trained with (``trainer=debug`` included) instead of the defaults; anything
    given on the command line (``trainer.max_iter=12``, ``method=...``) still wins. Without a
    saved config (first run) the composed config is used as is.
    """
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    if not cfg.get("resume") or not HydraConfig.initialized():
        return cfg
    hc = HydraConfig.get()
    saved_file = Path(hc.runtime.output_dir) / "config.yaml"
    if not saved_file.is_file():
        return cfg
    merged, changed = merge_resume_config(OmegaConf.load(saved_file), cfg, list(hc.overrides.task),
                                          set(hc.runtime.choices))
    print(f"resume: config from {saved_file}" +
          (f", overridden on the command line: {', '.join(changed)}" if changed else ""), flush=True)
    return merged


def merge_resume_config(saved: DictConfig, fresh: DictConfig, overrides: list[str],
                        groups: set[str]) -> tuple[DictConfig, list[str]]:
    """``saved`` (top-level keys replaced, not merged) with ``overrides`` taken from ``fresh``.

    Args:
        saved: the run folder's resolved config.
        fresh: the config Hydra composed for this command line.
        overrides: this command's overrides (``trainer=debug``, ``trainer.max_iter=12``,
            ``+method.x=1``, ``~method.y``, ``flow@method.flow=dis``).
        groups: the config groups Hydra knows (``HydraConfig.runtime.choices`` keys).
    Returns:
        (the config to run, the overridden keys).
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    fresh_c = OmegaConf.create(OmegaConf.to_container(fresh, resolve=True))
    # Start from the fresh composition so keys added to vosbench since the run exist, and
    # replace every top-level key the run saved (a group is replaced, never merged key by key:
    # the default method's keys must not leak into the saved method).
    merged = OmegaConf.create(OmegaConf.to_container(fresh_c))
    for k, v in OmegaConf.to_container(saved).items():
        merged[k] = v
    changed = []
    for o in OverridesParser.create().parse_overrides(overrides):
        key = o.key_or_group
        if key == "hydra" or key.startswith(("hydra.", "hydra/")):
            continue
        group = key + (f"@{o.package}" if o.package else "")
        path = (o.package or key.replace("/", ".")) if group in groups else key
        if o.is_delete():
            parent, _, leaf = path.rpartition(".")
            node = OmegaConf.select(merged, parent) if parent else merged
            if node is not None and leaf in node:
                node.pop(leaf)
        else:
            OmegaConf.update(merged, path, OmegaConf.select(fresh_c, path), merge=False,
                             force_add=True)
        changed.append(path)
    OmegaConf.set_struct(merged, True)
    return merged, changed


def _device(cfg: DictConfig) -> str:
    """``cfg.device`` with ``auto`` resolved the way the engine resolves it (CUDA when present)."""
    import torch

    d = str(cfg.get("device", "auto"))
    return ("cuda" if torch.cuda.is_available() else "cpu") if d == "auto" else d


if __name__ == "__main__":
    main()
