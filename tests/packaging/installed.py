"""A non-editable ``pip install .`` of this checkout into a fresh venv (for tests and benchmarks).

The venv is made with ``--system-site-packages --without-pip``: torch & co. come from the
interpreter's own site-packages (nothing is downloaded, ``--no-index``), ``python -m pip`` is the
interpreter's pip, and the install is a real wheel build (``--no-build-isolation`` uses the
installed setuptools). The source is first copied out of the working tree (the files git tracks
or would track), so the build never writes into the checkout.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import venv
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
IGNORE = shutil.ignore_patterns(".git", "__pycache__", "*.pyc", "*.so", "build", "*.egg-info",
                                "bench_out", "outputs", "multirun", ".pytest_cache", ".hypothesis",
                                ".cache", "weights", "cache", "out")


def copy_source(dest: Path) -> Path:
    """Copy the checkout (git's file list when git is there, else the tree minus build junk)."""
    dest.mkdir(parents=True, exist_ok=True)
    try:
        files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO,
                               capture_output=True, check=True, timeout=60).stdout.split(b"\0")
    except (OSError, subprocess.SubprocessError):
        files = None
    if files is None:
        shutil.copytree(REPO, dest, ignore=IGNORE, dirs_exist_ok=True)
        return dest
    for rel in filter(None, (f.decode() for f in files)):
        src = REPO / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


def clean_env(**extra: str) -> dict[str, str]:
    """The environment of a user who has no PYTHONPATH into the checkout."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(extra)
    return env


def install(base: Path, *, source: Path | None = None, log=None, editable: bool = False) -> dict:
    """Make ``base/venv`` and ``pip install`` ``source`` (default: a copy of this checkout) into it
    (``editable``: ``pip install -e``, as a developer of a clone does).

    Returns ``{"python", "bin", "venv", "seconds", "source"}``.
    """
    t0 = time.perf_counter()
    src = source or copy_source(base / "src")
    env_dir = base / "venv"
    venv.EnvBuilder(system_site_packages=True, with_pip=False, clear=True).create(env_dir)
    python = env_dir / "bin" / "python"
    cmd = [str(python), "-m", "pip", "install", "--no-index", "--no-build-isolation",
           "--no-cache-dir", "--disable-pip-version-check", "-q", *(["-e"] if editable else []), str(src)]
    r = subprocess.run(cmd, cwd=base, env=clean_env(), capture_output=True, text=True, timeout=900)
    if r.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    if log:
        log(f"installed {src} into {env_dir} in {time.perf_counter() - t0:.1f} s")
    return {"python": python, "bin": env_dir / "bin", "venv": env_dir, "source": src,
            "seconds": time.perf_counter() - t0}


def pip_available() -> bool:
    r = subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True)
    return r.returncode == 0
