"""A method living in its own pip package registers through the `vosbench.plugins` entry point."""
import os
import subprocess
import sys
import textwrap


def _make_installed_package(site):
    """Lay out what `pip install my-vos-plugin` leaves in site-packages: the module + dist-info."""
    pkg = site / "my_vos_plugin"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(textwrap.dedent('''
        import torch
        from vosbench.models.base import VideoMethod
        from vosbench.registry import METHODS
        from vosbench.structures import FramePrediction, VideoPrediction

        @METHODS.register("plugin_empty")
        class PluginEmpty(VideoMethod):
            trainable = False

            def __init__(self, *, fill: bool = False):
                super().__init__()
                self.fill = fill

            def predict(self, sample):
                ids = sample.obj_ids
                H, W = sample.orig_size
                frames = (FramePrediction(t, torch.full((len(ids), H, W), self.fill))
                          for t in range(len(sample)))
                return VideoPrediction(sample.video_id, ids, torch.ones(len(ids)),
                                       torch.full((len(ids),), -1), frames, (H, W), len(sample))
    '''))
    dist = site / "my_vos_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: my-vos-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[vosbench.plugins]\nmy_vos_plugin = my_vos_plugin\n")


def test_entry_point_plugin_registers_method(tmp_path):
    _make_installed_package(tmp_path)
    code = textwrap.dedent('''
        import sys
        from vosbench.config import build
        from vosbench.registry import METHODS
        assert "plugin_empty" not in METHODS._obj  # nothing imported it yet
        m = build({"name": "plugin_empty", "fill": True}, METHODS)
        assert type(m).__module__ == "my_vos_plugin", type(m)
        assert m.fill is True
        assert "plugin_empty" in METHODS.list()
        print("OK")
    ''')
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    assert "OK" in r.stdout


def test_unknown_method_error_mentions_registered(tmp_path):
    code = ("from vosbench.registry import METHODS\n"
            "try:\n    METHODS.get('nope')\nexcept KeyError as e:\n    print(e)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "No method named 'nope'" in r.stdout
