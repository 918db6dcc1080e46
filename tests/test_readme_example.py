"""The README, executed as a user would: in a fresh copy of the clone, `pip install -e .` into a
venv, then the walkthrough block in order and the "Adding a method" page (files written as
shown, its test run with pytest, its train / test / benchmark commands run as written).

One editable install per module (~20-40 s: it compiles the small C extension); everything runs
with ``HOME`` in a temporary folder, so ``~/.cache/vosbench`` (where the README's eval command
finds the built-in ground truth) is this test's own.
"""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent / "packaging"))
from installed import clean_env, install, pip_available  # noqa: E402

README = Path(__file__).resolve().parent.parent / "README.md"
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]


def _section(tag: str) -> str:
    text = README.read_text()
    return text.split(f"<!-- {tag}:start -->")[1].split(f"<!-- {tag}:end -->")[0]


def _blocks() -> dict[str, str]:
    blocks = {}
    for lang, body in re.findall(r"```(python|yaml)\n(.*?)```", _section("add-method"), flags=re.S):
        first, rest = body.split("\n", 1)
        assert first.startswith("# "), f"README block must start with '# <path>': {first!r}"
        blocks[first[2:].split(" (")[0].strip()] = rest
    return blocks


def _commands(text: str) -> list[str]:
    """Shell commands of a bash block, and `vosbench ...` commands quoted inline."""
    out = []
    for body in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        out += [ln.split("  #")[0].strip() for ln in body.splitlines() if ln.strip()]
    return out


def test_readme_has_the_pieces():
    assert set(_blocks()) == {"methods/my_method/__init__.py", "methods/my_method/model.py",
                              "configs/method/my_method.yaml", "tests/methods/test_my_method.py",
                              "benchmarks/suites/default.yaml"}
    assert len(_commands(_section("walkthrough"))) == 6


@pytest.fixture(scope="module")
def clone(tmp_path_factory):
    if not pip_available():
        pytest.skip("pip is not available to this interpreter")
    base = tmp_path_factory.mktemp("readme")
    info = install(base, editable=True)
    (base / "home").mkdir()
    env = clean_env(HOME=str(base / "home"), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env.pop("VOSBENCH_CACHE", None)
    env["PATH"] = f"{info['bin']}:{env.get('PATH', '')}"
    info["env"] = env
    return info


def sh(clone, cmd: str, timeout: float = 900) -> subprocess.CompletedProcess:
    r = subprocess.run(["bash", "-c", cmd], cwd=clone["source"], env=clone["env"], capture_output=True,
                       text=True, timeout=timeout)
    assert r.returncode == 0, f"{cmd}\nfailed ({r.returncode}):\n{r.stdout[-2500:]}\n{r.stderr[-4000:]}"
    return r


def test_walkthrough_runs_as_written(clone):
    outs = [sh(clone, cmd) for cmd in _commands(_section("walkthrough"))]
    src = clone["source"]
    assert "done: 12 iterations" in outs[1].stdout  # the resume continued the debug run
    assert (src / "out" / "mrnn" / "eval" / "global_results-val.csv").is_file()
    assert any(p.suffix == ".mp4" for p in (src / "out" / "mrnn" / "vis").iterdir())
    assert "== Config groups" in outs[5].stdout


def test_adding_a_method_as_a_user_does(clone):
    b, src = _blocks(), clone["source"]
    for rel in ("methods/my_method/__init__.py", "methods/my_method/model.py",
                "configs/method/my_method.yaml", "tests/methods/test_my_method.py"):
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text(b[rel])
    init = src / "methods" / "__init__.py"
    text, n = re.subn(r"^(from vosbench_methods import [^\n#]*?)(\s*#.*)?$", r"\1, my_method\2",
                      init.read_text(), count=1, flags=re.M)
    assert n == 1, "methods/__init__.py has no `from vosbench_methods import ...` line"
    init.write_text(text)
    suite = src / "benchmarks" / "suites" / "default.yaml"
    assert "\nexpected:" in suite.read_text()
    # the README block is the row as it sits under `methods:` (indented): append it to that list
    suite.write_text(suite.read_text().replace(
        "\nexpected:", "\n" + b["benchmarks/suites/default.yaml"].rstrip() + "\n\nexpected:", 1))
    assert yaml.safe_load(suite.read_text())["methods"][-1]["row"] == "my_method"

    sh(clone, "python -m pytest -q -p no:cacheprovider tests/methods/test_my_method.py")
    cmds = re.findall(r"`(vosbench (?:train|test|bench) [^`]*my_method[^`]*)`", _section("add-method"))
    assert [c.split()[1] for c in cmds] == ["train", "test", "bench"], cmds
    outs = [sh(clone, c, timeout=1200) for c in cmds]
    assert (src / "out" / "my_method" / "model_final.pth").is_file()
    md = next((src / "bench_out" / "default").glob("*/leaderboard.md")).read_text()
    assert "| my_method |" in md and "| first_frame_copy |" in md, outs[-1].stderr[-2000:]
