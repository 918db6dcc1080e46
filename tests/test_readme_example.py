"""The README's "Adding a method" page is executed as written: code, config, test, benchmark row."""
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import yaml

README = Path(__file__).resolve().parent.parent / "README.md"


def _blocks() -> dict[str, str]:
    text = README.read_text()
    section = text.split("<!-- add-method:start -->")[1].split("<!-- add-method:end -->")[0]
    blocks = {}
    for lang, body in re.findall(r"```(python|yaml)\n(.*?)```", section, flags=re.S):
        first, rest = body.split("\n", 1)
        assert first.startswith("# "), f"README block must start with '# <path>': {first!r}"
        blocks[first[2:].split(" (")[0].strip()] = rest
    return blocks


def test_readme_has_the_four_pieces():
    assert set(_blocks()) == {"methods/my_method/model.py", "configs/method/my_method.yaml",
                              "tests/methods/test_my_method.py", "benchmarks/suites/default.yaml"}


def test_readme_method_example_runs(tmp_path):
    b = _blocks()
    pkg = tmp_path / "readme_method"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "model.py").write_text(b["methods/my_method/model.py"])
    (tmp_path / "test_my_method.py").write_text(b["tests/methods/test_my_method.py"])
    cfg = yaml.safe_load(b["configs/method/my_method.yaml"])
    row = yaml.safe_load(textwrap.dedent(b["benchmarks/suites/default.yaml"]))[0]
    assert row["method"] == cfg["name"] == "my_method" and row["checkpoint"]
    code = textwrap.dedent(f'''
        import sys, pathlib
        sys.path.insert(0, {str(tmp_path)!r})
        import readme_method.model  # registers "my_method"
        from vosbench.config import build
        from vosbench.registry import METHODS
        m = build({cfg!r}, METHODS)
        assert sum(p.numel() for p in m.parameters()) > 0
        import test_my_method
        test_my_method.test_my_method(pathlib.Path({str(tmp_path / "data")!r}))
        print("OK")
    ''')
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "OK" in r.stdout
