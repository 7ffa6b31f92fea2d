"""Plugin registry: in-process registration, entry points, and failures reported with their fix."""
import pytest

from bridge import registry
from bridge.errors import EngineNotAvailable, SetupError


class FakeEngine:
    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


def test_register_and_load_in_process(entry_points):
    registry.register(registry.ENGINES, "fake", FakeEngine)
    assert registry.load("fake") is FakeEngine
    assert "fake" in registry.names()
    eng = registry.engine("fake", 1, temperature=300.0)
    assert isinstance(eng, FakeEngine) and eng.args == (1,) and eng.kwargs == {"temperature": 300.0}
    st = {s.name: s for s in registry.status()}
    assert st["fake"].loaded and st["fake"].error is None


def test_register_unknown_group():
    with pytest.raises(SetupError, match="unknown plugin group") as exc:
        registry.register("multiscale_bridge.nope", "x", object())
    assert registry.VALIDATION in exc.value.fix


def test_registrations_do_not_leak_between_tests():
    # the autouse fixture of conftest.py restored the registry after the test above
    assert "fake" not in registry._extra_plugins[registry.ENGINES]


def test_entry_point_is_loaded(entry_points, make_ep):
    ep = make_ep("lammps", "lammps_bridge:Engine", target=FakeEngine)
    entry_points[registry.ENGINES] = [ep]
    assert registry.names() == ["lammps"]
    assert registry.load("lammps") is FakeEngine and ep.loads == 1


def test_unknown_name_lists_the_known_ones(entry_points, make_ep):
    entry_points[registry.ENGINES] = [make_ep("openmm", "x:Y", target=FakeEngine)]
    registry.register(registry.ENGINES, "inproc", FakeEngine)
    with pytest.raises(SetupError) as exc:
        registry.load("opennmm")
    msg = str(exc.value)
    assert "unknown engines plugin 'opennmm'" in msg and "openmm" in msg and "inproc" in msg
    assert exc.value.fix and not isinstance(exc.value, EngineNotAvailable)
    with pytest.raises(SetupError, match=r"\(known: none\)"):
        registry.load("anything", registry.BENCHMARKS)


def test_import_error_of_an_engine_names_the_extra(entry_points, make_ep):
    entry_points[registry.ENGINES] = [
        make_ep("dolfinx", "bridge_adapters.dolfinx:DolfinxField",
                       error=ModuleNotFoundError("No module named 'dolfinx'"))]
    with pytest.raises(EngineNotAvailable) as exc:
        registry.load("dolfinx")
    assert exc.value.engine == "dolfinx" and exc.value.extra == registry.EXTRAS["dolfinx"]
    assert "pip install 'multiscale-bridge[dolfinx]'" in str(exc.value)
    assert "No module named 'dolfinx'" in str(exc.value)
    with pytest.raises(EngineNotAvailable, match="not available"):
        registry.engine("dolfinx")


def test_import_error_of_another_plugin_is_a_setup_error(entry_points, make_ep):
    entry_points[registry.VALIDATION] = [make_ep("qmmm", "pkg.cases:CASES", error=ImportError("boom"))]
    with pytest.raises(SetupError, match="cannot be imported: boom") as exc:
        registry.load("qmmm", registry.VALIDATION)
    assert not isinstance(exc.value, EngineNotAvailable)


def test_entry_point_naming_a_missing_object(entry_points, make_ep):
    entry_points[registry.ENGINES] = [make_ep("x", "pkg:Gone", error=AttributeError("no Gone"))]
    with pytest.raises(SetupError, match="does not exist") as exc:
        registry.load("x")
    assert "pyproject.toml" in exc.value.fix


def test_status_reports_failures_without_raising(entry_points, make_ep):
    entry_points[registry.ENGINES] = [
        make_ep("good", "a:B", target=FakeEngine),
        make_ep("broken", "c:D", error=ImportError("libfoo.so: cannot open shared object file")),
        make_ep("typo", "e:F", error=AttributeError("module 'e' has no attribute 'F'")),
    ]
    registry.register(registry.ENGINES, "inproc", FakeEngine)
    st = {s.name: s for s in registry.status()}
    assert set(st) == {"good", "broken", "typo", "inproc"}
    assert st["good"].loaded and st["good"].target == "a:B"
    assert not st["broken"].loaded and st["broken"].error.startswith("ImportError: libfoo.so")
    assert not st["typo"].loaded and st["typo"].error.startswith("AttributeError")
    assert st["inproc"].loaded and st["inproc"].target == "<registered in-process>"
