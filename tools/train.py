#!/usr/bin/env python
"""Train a method (Hydra app; ``--help`` lists the config groups and the composed config).

    python tools/train.py method=NAME dataset=NAME trainer=debug output_dir=DIR
    python tools/train.py ... resume=true              # continue from DIR/last.pth
    torchrun --nproc_per_node=N tools/train.py ...     # DDP
    python tools/train.py -m seed=0,1 ...              # sweep (hydra/launcher=slurm for SLURM)

The job itself is ``vosbench.engine.defaults.train(cfg)``.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a clone without install

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402


@hydra.main(config_path="../configs", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from vosbench.engine.cli import run_tool
    from vosbench.engine.defaults import train

    result = run_tool(train, cfg)
    if result is not None:
        from vosbench.engine import comm

        if comm.is_main_process():
            print(f"done: {result['iteration']} iterations, checkpoint {result['final_checkpoint']}")
        comm.destroy_distributed()


if __name__ == "__main__":
    main()
