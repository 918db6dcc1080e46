"""The HTML report renders in headless Chromium (skipped where no Chromium is installed)."""
from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from vosbench.bench import report

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def _browser() -> str:
    for b in BROWSERS:
        path = shutil.which(b)
        if path:
            return path
    pytest.skip(f"no headless browser found (looked for {', '.join(BROWSERS)})")


def test_report_html_renders_in_headless_chromium(tmp_path, fake_run, reported):
    browser = _browser()
    files = report.write_report(tmp_path / "run", fake_run, reported=reported)
    shot = tmp_path / "shot.png"
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
           "--window-size=1280,2000", f"--screenshot={shot}", files["report.html"].as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert shot.is_file(), f"no screenshot; chromium said:\n{proc.stderr[-2000:]}"
    img = np.asarray(Image.open(shot).convert("RGB"))
    assert img.shape[:2] == (2000, 1280)
    # Not a blank page: dark text pixels near the top (title and tables)...
    top = img[:400]
    assert (top.min(axis=2) < 80).mean() > 0.005
    # ...and the embedded base64 plots were decoded and drawn: matplotlib's first two default
    # colours (#1f77b4 blue, #ff7f0e orange) fill the bars of the per-sequence plot.
    for colour in ((0x1F, 0x77, 0xB4), (0xFF, 0x7F, 0x0E)):
        close = (np.abs(img.astype(int) - colour).sum(axis=2) < 30).sum()
        assert close > 2000, f"plot colour {colour} barely present ({close} px): images not rendered?"
    # The reported row is highlighted (its row background #fff8e1 is on screen).
    assert ((np.abs(img.astype(int) - (0xFF, 0xF8, 0xE1)).sum(axis=2)) < 6).sum() > 1000
