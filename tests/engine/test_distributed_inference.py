"""Sharded inference under a 2-process gloo group gives the single-process results and files."""
from __future__ import annotations

import json
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from engine_testing import TinyTestMethod, make_video
from vosbench.engine import DavisWriter, inference_on_dataset


class FrameCounter:
    """A duck-typed evaluator: per-video frame counts and foreground pixel sums."""

    def reset(self):
        self.rows = []

    def process(self, sample, prediction):
        fg = sum(int(fp.masks.sum()) for fp in prediction.iter_frames())
        self.rows.append([sample.video_id, fg])

    def evaluate(self):
        return {"fg_total": float(sum(r[1] for r in self.rows)), "order": json.dumps(self.rows)}


def _videos():
    return [make_video(f"v{i}", num_frames=3 + i % 3, seed=i) for i in range(5)]


def _model():
    torch.manual_seed(0)
    return TinyTestMethod(hidden=4)


def _worker(rank, world, port, out_dir):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        res = inference_on_dataset(_model(), _videos(), evaluator=FrameCounter(),
                                   writer=DavisWriter(os.path.join(out_dir, "pred")), progress=False)
        with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
            json.dump({k: v for k, v in res.items() if k != "files"}, f)
    finally:
        dist.destroy_process_group()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_rank_inference_matches_single(tmp_path):
    single = inference_on_dataset(_model(), _videos(), evaluator=FrameCounter(),
                                  writer=DavisWriter(tmp_path / "single" / "pred"), progress=False)
    # fork: the children reuse this process's imports (a spawn would re-import torch twice)
    mp.start_processes(_worker, args=(2, _free_port(), str(tmp_path / "ddp")), nprocs=2,
                       start_method="fork")
    r0 = json.loads((tmp_path / "ddp" / "rank0.json").read_text())
    r1 = json.loads((tmp_path / "ddp" / "rank1.json").read_text())
    assert r0 == r1  # every rank returns the merged result
    assert r0["fg_total"] == single["fg_total"] and r0["order"] == single["order"]  # dataset order
    assert r0["num_videos"] == 5 and r0["num_frames"] == single["num_frames"]
    files = sorted(p.relative_to(tmp_path / "single") for p in (tmp_path / "single").rglob("*.png"))
    assert files == sorted(p.relative_to(tmp_path / "ddp") for p in (tmp_path / "ddp").rglob("*.png"))
    for f in files:
        assert (tmp_path / "single" / f).read_bytes() == (tmp_path / "ddp" / f).read_bytes()
