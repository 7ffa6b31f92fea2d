"""The ``msbridge`` command, in-process, against fake plugins (no engine is imported)."""
import json
import sys
import types

import pytest

from bridge import cli, log, registry
from bridge.bench import BenchResult, Benchmark
from bridge.validation import Case, Outcome


@pytest.fixture(autouse=True)
def _keep_logger(monkeypatch):
    """main() configures the 'msbridge' logger: undo that, so no handler outlives capsys."""
    monkeypatch.setattr(log.logger, "handlers", list(log.logger.handlers))
    monkeypatch.setattr(log.logger, "level", log.logger.level)


def good(quick, outdir):
    return Outcome("error", 0.0, 0.0, 1e-12, details={"quick": quick})


def bad(quick, outdir):
    return Outcome("error", 1.0, 0.0, 1e-12)


@pytest.fixture
def fake_cases(entry_points):
    registry.register(registry.VALIDATION, "fake", [Case("alpha", 1, "a passing case", good),
                                                    Case("beta", 2, "a failing case", bad)])


def test_validate_list(fake_cases, capsys):
    assert cli.main(["validate", "--list"]) == 0
    out = capsys.readouterr().out
    assert "alpha" in out and "a passing case" in out and "beta" in out
    assert out.index("alpha") < out.index("beta")  # simplest first


def test_validate_unknown_case_is_exit_2_with_a_fix(fake_cases, capsys):
    assert cli.main(["validate", "gamma"]) == 2
    err = capsys.readouterr().err
    assert "unknown validation case" in err and "gamma" in err and "fix" in err and "alpha" in err


def test_validate_runs_and_exits_by_outcome(fake_cases, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cli.benchmod, "machine", lambda: {"cpu": "fake", "cores": 1, "gpu": None})
    assert cli.main(["validate", "--quick", "alpha", "--json", str(tmp_path / "r.json")]) == 0
    data = json.loads((tmp_path / "r.json").read_text())
    assert [c["name"] for c in data["cases"]] == ["alpha"] and data["passed"] is True
    assert data["cases"][0]["details"] == {"quick": True} and data["meta"]["quick"] is True
    assert cli.main(["validate", "--report", str(tmp_path / "rep")]) == 1  # beta fails
    out = capsys.readouterr().out
    assert "NO" in out and (tmp_path / "rep" / "report.md").exists()


def test_info_json(entry_points, make_ep, capsys, monkeypatch):
    # one engine loads (its module has describe()), one is missing; MPI is absent
    mod = types.ModuleType("fake_engine_mod")

    class FakeEngine:
        pass

    FakeEngine.__module__ = mod.__name__
    mod.FakeEngine = FakeEngine
    mod.describe = lambda: {"usable": "Reference"}
    monkeypatch.setitem(sys.modules, mod.__name__, mod)
    entry_points[registry.ENGINES] = [make_ep("fake", "fake_engine_mod:FakeEngine", target=FakeEngine),
                                      make_ep("pyscf", "x:Y", error=ModuleNotFoundError("No module named 'pyscf'"))]
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # import of mpi4py fails
    monkeypatch.setattr(cli.benchmod, "gpus", lambda: [])
    assert cli.main(["info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert {"engines", "mpi", "machine"} <= set(info)
    assert info["engines"]["fake"]["loaded"] is True and info["engines"]["fake"]["usable"] == "Reference"
    missing = info["engines"]["pyscf"]
    assert missing["loaded"] is False and "No module named 'pyscf'" in missing["error"]
    assert missing["fix"] == "pip install 'multiscale-bridge[pyscf]'"
    assert "error" in info["mpi"] and "mpi" in info["mpi"]["fix"]
    # the human-readable form says the same
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    assert "pyscf    MISSING" in out and "mpi: MISSING" in out and "usable Reference" in out


def test_info_with_mpi(entry_points, capsys, monkeypatch):
    comm = types.SimpleNamespace(Get_size=lambda: 3)
    mpi = types.SimpleNamespace(Get_library_version=lambda: "MPICH Version: 4.2.0\nMPICH Release date", COMM_WORLD=comm)
    monkeypatch.setitem(sys.modules, "mpi4py", types.SimpleNamespace(MPI=mpi))
    assert cli.main(["info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["engines"] == {} and info["mpi"]["ranks"] == 3 and info["mpi"]["library"] == "MPICH Version: 4.2.0"


def test_bench_list_run_and_unknown(entry_points, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cli.benchmod, "gpus", lambda: [])
    seen = {}

    def run(quick, repeats):
        seen.update(quick=quick, repeats=repeats)
        return BenchResult("fake", 1.25, "coupled/native", 0.8, 1.0, {"atoms": 10})

    registry.register(registry.BENCHMARKS, "fake", [Benchmark("fake", "a fake benchmark", run)])
    assert cli.main(["bench", "--list"]) == 0 and "a fake benchmark" in capsys.readouterr().out
    assert cli.main(["bench", "--quick", "--repeats", "3", "--json", str(tmp_path / "b.json")]) == 0
    assert seen == {"quick": True, "repeats": 3}
    assert json.loads((tmp_path / "b.json").read_text())["benchmarks"][0]["ratio"] == 1.25
    assert "coupled/native = 1.2500" in capsys.readouterr().out
    assert cli.main(["bench", "nope"]) == 2
    assert "fix" in capsys.readouterr().err


def test_bad_usage_exits_2():
    with pytest.raises(SystemExit) as exc:
        cli.main(["no-such-command"])
    assert exc.value.code == 2
