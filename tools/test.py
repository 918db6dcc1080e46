#!/usr/bin/env python
"""Run a method over a dataset, write official-format results, evaluate, report FPS and memory.

    python tools/test.py method=NAME dataset=NAME dataset.root=DIR checkpoint=PATH output_dir=DIR
    torchrun --nproc_per_node=N tools/test.py ...      # videos sharded across processes

Writes DIR/predictions/ (DAVIS palette PNGs <seq>/<frame>.png, or YouTube-VIS results.json +
submission.zip) and DIR/metrics.json. The job itself is ``vosbench.engine.inference.evaluate``.
"""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a clone without install

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402


@hydra.main(config_path="../configs", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from vosbench.engine import comm
    from vosbench.engine.cli import run_tool
    from vosbench.engine.inference import evaluate

    result = run_tool(evaluate, cfg)
    if comm.is_main_process():
        shown = {k: v for k, v in result.items() if not isinstance(v, dict)}
        print(json.dumps(shown, indent=2, default=str))
        print(f"{result['method']} on {result['dataset']}: {result['fps']:.2f} FPS (model time), "
              f"peak memory {result['peak_mem_mb']:.0f} MB")
    comm.destroy_distributed()


if __name__ == "__main__":
    main()
