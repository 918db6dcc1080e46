import pytest

from vosbench.config import ConfigError, build
from vosbench.registry import Registry


def test_register_get_list():
    reg = Registry("thing")

    @reg.register("a")
    class A:
        def __init__(self, *, x: int = 1):
            self.x = x

    assert reg.get("a") is A
    assert reg.list() == ["a"]
    assert "a" in reg


def test_unknown_name_lists_registered():
    reg = Registry("method")
    reg.register("known", obj=lambda: None)
    with pytest.raises(KeyError) as e:
        reg.get("nope")
    msg = str(e.value)
    assert "known" in msg and "vosbench.plugins" in msg


def test_duplicate_name_raises():
    reg = Registry("thing")
    reg.register("a", obj=int)
    with pytest.raises(ValueError, match="already registered"):
        reg.register("a", obj=float)


def test_build_rejects_unknown_keys():
    reg = Registry("thing")

    @reg.register("a")
    class A:
        def __init__(self, *, x: int = 1):
            self.x = x

    assert build({"name": "a", "x": 3}, reg).x == 3
    with pytest.raises(ConfigError, match="does not accept key"):
        build({"name": "a", "y": 3}, reg)
    with pytest.raises(KeyError):
        build({"name": "b"}, reg)
