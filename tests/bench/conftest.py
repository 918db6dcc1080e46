"""Fixtures of the bench tests: a hand-made run (no model needed) and suite writing helpers."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml


def _job(row: str, dataset: str, jf: float, fps: float, *, task: str = "vos") -> dict:
    if task == "vos":
        metrics = {"J&F": jf, "J_mean": jf - 0.02, "J_recall": 0.9, "J_decay": 0.05,
                   "F_mean": jf + 0.02, "F_recall": 0.8, "F_decay": 0.04, "T_mean": 0.2}
        per_seq = [{"Sequence": f"seq{i}_1", "video": f"seq{i}", "J-Mean": jf - 0.1 * i,
                    "F-Mean": jf - 0.1 * i} for i in range(3)]
        per_frame = {f"seq{i}_1": {"video": f"seq{i}", "J": [jf, jf - 0.05, None, jf - 0.1],
                                   "F": [jf] * 4} for i in range(3)}
        curve = [jf - 0.01 * b for b in range(20)]
    else:
        metrics = {"mAP": jf, "AP50": jf + 0.1, "AP75": jf - 0.1, "AR1": jf, "AR10": jf + 0.05}
        per_seq, per_frame, curve = [{"Sequence": "1", "num_gt": 2, "num_det": 3}], {}, []
    return {"row": row, "dataset": dataset, "metrics": metrics, "fps": fps, "peak_mem_mb": 512.0,
            "params": 1234567, "engine": {}, "per_sequence": per_seq, "per_frame": per_frame,
            "j_curve": curve, "wall_s": 1.0, "created": "2026-01-01T00:00:00Z", "cached": False,
            "job": {"index": 0, "row": row, "dataset": dataset}}


@pytest.fixture
def fake_run() -> dict:
    """A run dict as the CLI builds it: two VOS rows, one VIS row, a skipped dataset."""
    prov = {"git_commit": "0123456789abcdef", "git_dirty": False, "suite_hash": "ab" * 32,
            "config_hashes": {"a@vos": "cd" * 32}, "packages": {"torch": "2.x"},
            "device": {"device": "cpu", "cpu": "Test CPU", "cpu_count": 2},
            "date_utc": "2026-01-01T00:00:00Z", "command": "python tools/bench.py", "cwd": "/x"}
    info = {"task": "vos", "metric": "davis2016", "num_videos": 3, "root": "/r", "config": "davis2016",
            "note": "3 sequences", "reported_as": "davis2016", "max_videos": None}
    return {
        "suite": "fake", "suite_path": "fake.yaml", "description": "hand-made run", "provenance": prov,
        "datasets": {"vos": info, "vis": {**info, "task": "vis", "metric": "ytvis", "config": "synthetic_vis",
                                          "reported_as": None, "note": ""}},
        "jobs": [_job("slow_good", "vos", 0.8, 0.5), _job("fast_bad", "vos", 0.6, 30.0),
                 _job("vis_method", "vis", 0.3, 3.0, task="vis")],
        "skipped": [{"dataset": "davis2017_mini", "reason": "skipped: root /nope does not exist"}],
    }


@pytest.fixture
def reported() -> dict:
    return {"davis2016": {"description": "DAVIS-2016 val", "rows": [
        {"method": "PaperNet", "source": "Someone et al., Table 1",
         "metrics": {"J_mean": 80.4, "F_mean": 82.3}}]}}


@pytest.fixture
def write_suite(tmp_path: Path):
    """write_suite(dict) -> path of a suite YAML in tmp_path."""
    def write(d: dict, name: str = "suite.yaml") -> Path:
        p = tmp_path / name
        p.write_text(yaml.safe_dump(d, sort_keys=False))
        return p
    return write
