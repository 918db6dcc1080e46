"""Where a result came from: code version, configs, packages, device, date and command."""
from __future__ import annotations

import importlib.metadata
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

from vosbench.bench.cache import REPO, canonical_hash

PACKAGES = ["vosbench", "torch", "torchvision", "numpy", "opencv-python-headless", "pycocotools",
            "scikit-image", "scipy", "pillow", "hydra-core", "omegaconf", "matplotlib"]


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            mod = {"vosbench": "vosbench", "opencv-python-headless": "cv2", "pillow": "PIL",
                   "scikit-image": "skimage", "hydra-core": "hydra"}.get(name, name)
            v = getattr(sys.modules.get(mod), "__version__", None)
            versions[name] = str(v) if v else "not installed"
    return versions


def device_info(device: str) -> dict[str, str | int]:
    info: dict[str, str | int] = {"device": device, "cpu_count": os.cpu_count() or 0,
                                  "platform": platform.platform()}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        info["cpu"] = platform.processor() or "unknown"
    import torch

    info["torch_threads"] = torch.get_num_threads()
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
        info["cuda"] = str(torch.version.cuda)
    return info


def collect(*, suite_text: str, device: str, argv: list[str] | None = None,
            row_config_hashes: dict[str, str] | None = None) -> dict:
    """Provenance block of ``results.json`` and the HTML report."""
    commit = _git("rev-parse", "HEAD")
    dirty = _git("status", "--porcelain", "--untracked-files=no")
    argv = list(sys.argv if argv is None else argv)
    return {
        "git_commit": commit or "unknown (not a git checkout)",
        "git_dirty": bool(dirty) if dirty is not None else None,
        "suite_hash": canonical_hash(suite_text),
        "config_hashes": dict(row_config_hashes or {}),
        "packages": package_versions(),
        "device": device_info(device),
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": " ".join(shlex.quote(a) for a in ["python", *argv]),
        "cwd": os.getcwd(),
    }
