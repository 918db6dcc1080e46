"""Exact resume for every registered trainable method (issue #19, case 5).

Training 2k iterations must equal training k, stopping, resuming with ``resume=true`` and
training k more, bit for bit on CPU: every random state the method or the data pipeline owns
(e.g. MaskRNN's mask-perturbation ``np.random.Generator``) travels in the checkpoint. The test
is parametrised over the METHODS registry (test-only methods excluded), each with its tiny config.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from vosbench.config import compose
from vosbench.engine.checkpoint import load_checkpoint
from vosbench.engine.defaults import train
from vosbench.registry import METHODS

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "method"
K = 2


def _tiny_config(name: str) -> str | None:
    """The tiny config file of a registered method (``<name>_tiny.yaml`` or a ``*tiny*`` file
    whose ``name:`` is it)."""
    cands = []
    for f in sorted(CONFIGS.glob("*tiny*.yaml")):
        d = yaml.safe_load(f.read_text()) or {}
        if d.get("name") == name or f.stem == f"{name}_tiny":
            cands.append(f.stem)
    return min(cands, key=len) if cands else None


def _trainable() -> list[str]:
    names = []
    for n in sorted(METHODS.list() if hasattr(METHODS, "list") else METHODS):
        cls = METHODS.get(n)
        if n.startswith("_") or not getattr(cls, "trainable", False):
            continue
        names.append(n)
    return names


TRAINABLE = _trainable()


def test_every_trainable_method_has_a_tiny_config():
    assert {"maskrnn", "lip", "maskprop"} <= set(TRAINABLE)
    assert all(_tiny_config(n) for n in TRAINABLE), {n: _tiny_config(n) for n in TRAINABLE}


def _cfg(name: str, root: Path, out: Path, max_iter: int, resume: bool = False):
    cls = METHODS.get(name)
    vis = getattr(cls, "task", "vos") == "vis"
    return compose([
        f"method={_tiny_config(name)}", "dataset=synthetic_vis" if vis else "dataset=synthetic",
        f"dataset.root={root}", "dataset.num_videos=3", "dataset.num_frames=5",
        "dataset.height=32", "dataset.width=48", "dataset.max_objects=2", "trainer=debug",
        f"trainer.max_iter={max_iter}", f"trainer.checkpoint_period={K}", "trainer.batch_size=1",
        "trainer.clip.samples_per_epoch=3", f"output_dir={out}", f"resume={str(resume).lower()}",
        "device=cpu", "allow_random_init=true",
    ])


@pytest.mark.parametrize("name", TRAINABLE)
def test_train_2k_equals_k_stop_resume_k(name, tmp_path):
    torch.set_num_threads(1)
    root = tmp_path / "data"
    train(_cfg(name, root, tmp_path / "full", 2 * K))
    train(_cfg(name, root, tmp_path / "split", K))  # stops after k (last.pth at k)
    assert load_checkpoint(tmp_path / "split" / "last.pth")["iteration"] == K
    train(_cfg(name, root, tmp_path / "split", 2 * K, resume=True))
    a = load_checkpoint(tmp_path / "full" / "model_final.pth")["model"]
    b = load_checkpoint(tmp_path / "split" / "model_final.pth")["model"]
    assert a.keys() == b.keys()
    diff = {k: float((a[k].double() - b[k].double()).abs().max()) for k in a
            if not torch.equal(a[k], b[k])}
    assert not diff, (f"{name}: {len(diff)} resumed tensors differ from the uninterrupted run, "
                      f"max |dw| {max(diff.values()):.3g} (e.g. {sorted(diff)[:3]})")
    # and the method's own generators were in the checkpoint (MaskRNN: the perturbation stream)
    rng = load_checkpoint(tmp_path / "split" / "last.pth")["rng"][0]
    assert "method" in rng and "data" in rng
