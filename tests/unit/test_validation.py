"""The validation runner: outcomes to results, broken plugins as failing cases, JSON and report."""
import json
import math

import numpy as np
import pytest

from bridge import registry, validation
from bridge.errors import CalculationError, EngineNotAvailable, SetupError
from bridge.validation import Case, Outcome


def passing(quick, outdir):
    return Outcome("relative error of C11", 1.0 + 1e-9, 1.0, 1e-6, details={"quick": quick, "n": np.int64(4)},
                   figures=[] if outdir is None else [str(outdir / "fig.png")])


def failing(quick, outdir):
    return Outcome("ghost force", 0.5, 0.0, 1e-10)


def nan_value(quick, outdir):
    return Outcome("energy drift", math.nan, 0.0, math.inf)  # NaN must never pass, even within inf


def raising(quick, outdir):
    raise CalculationError("SCF not converged", reason="50 cycles")


def missing_engine(quick, outdir):
    raise EngineNotAvailable("pyscf")


def case(func, name=None, level=1):
    return Case(name or func.__name__, level, f"{func.__name__} case", func)


def test_run_case_passing(tmp_path):
    r = validation.run_case(case(passing), quick=True, outdir=tmp_path)
    assert r.passed and r.error is None
    assert (r.name, r.metric, r.value, r.reference, r.tolerance) == ("passing", "relative error of C11",
                                                                     1.0 + 1e-9, 1.0, 1e-6)
    assert r.details["quick"] is True and r.figures == [str(tmp_path / "fig.png")]
    assert r.seconds >= 0.0 and r.description == "passing case"


def test_run_case_failing_and_nan():
    r = validation.run_case(case(failing), quick=False, outdir=None)
    assert not r.passed and r.error is None and r.value == 0.5
    r = validation.run_case(case(nan_value), quick=False, outdir=None)
    assert not r.passed and math.isnan(r.value)


def test_run_case_raising_is_a_failed_result_with_the_error():
    r = validation.run_case(case(raising), quick=True, outdir=None)
    assert not r.passed and r.metric == "error" and math.isnan(r.value)
    assert r.error.startswith("CalculationError: SCF not converged: 50 cycles")
    assert "Traceback" in r.error
    r = validation.run_case(case(missing_engine), quick=True, outdir=None)
    assert not r.passed and r.error.startswith("EngineNotAvailable") and "Traceback" not in r.error
    assert "multiscale-bridge[pyscf]" in r.error


def test_discover_sorts_by_level_and_turns_a_broken_plugin_into_a_failing_case(entry_points, make_ep):
    registry.register(registry.VALIDATION, "mine", [case(failing, "b_hard", 3), case(passing, "a_easy", 1),
                                                    case(passing, "c_easy", 1)])
    entry_points[registry.VALIDATION] = [make_ep("qmmm", "pkg.qmmm_cases:CASES", error=ImportError("no pyscf"))]
    cases = validation.discover()
    assert [c.name for c in cases] == ["plugin:qmmm", "a_easy", "c_easy", "b_hard"]
    broken = validation.run_case(cases[0], quick=True, outdir=None)
    assert not broken.passed and "no pyscf" in broken.error and broken.name == "plugin:qmmm"


def test_select():
    cases = [case(passing, "a"), case(failing, "b")]
    assert validation.select(cases, None) == cases and validation.select(cases, []) == cases
    assert [c.name for c in validation.select(cases, ["b", "a"])] == ["b", "a"]
    import dataclasses
    heavy = dataclasses.replace(case(passing, "h"), heavy=True)
    assert [c.name for c in validation.select(cases + [heavy], None)] == ["a", "b"]        # not by default
    assert [c.name for c in validation.select(cases + [heavy], None, heavy=True)] == ["a", "b", "h"]
    assert [c.name for c in validation.select(cases + [heavy], ["h"])] == ["h"]            # by name
    with pytest.raises(SetupError, match=r"unknown validation case\(s\) \['zz'\]") as exc:
        validation.select(cases, ["a", "zz"])
    assert "a, b" in exc.value.fix


def test_write_json_is_strict_json(tmp_path):
    results = [validation.run_case(case(f), quick=True, outdir=None) for f in (passing, failing, nan_value, raising)]
    path = tmp_path / "sub" / "results.json"
    validation.write_json(results, path, meta={"machine": {"cores": np.int64(8)}, "arr": np.arange(2)})

    def no_constants(name):
        raise ValueError(f"{name} is not JSON")

    data = json.loads(path.read_text(), parse_constant=no_constants)  # NaN/Infinity would be refused
    assert data["passed"] is False
    assert [c["name"] for c in data["cases"]] == ["passing", "failing", "nan_value", "raising"]
    assert [c["passed"] for c in data["cases"]] == [True, False, False, False]
    first = data["cases"][0]
    assert set(first) >= {"name", "metric", "value", "reference", "tolerance", "passed", "seconds"}
    assert first["value"] == 1.0 + 1e-9 and first["details"]["n"] == 4
    assert data["cases"][2]["value"] is None and data["cases"][2]["tolerance"] is None  # NaN, inf -> null
    assert data["meta"] == {"machine": {"cores": 8}, "arr": [0, 1]}
    assert sorted(p.name for p in path.parent.iterdir()) == ["results.json"]  # no temp file left


def test_write_report_lists_every_case_and_figure(tmp_path):
    results = [validation.run_case(case(passing), quick=True, outdir=tmp_path),
               validation.run_case(case(raising), quick=True, outdir=tmp_path)]
    path = validation.write_report(results, tmp_path / "report", meta={"quick": True})
    text = path.read_text()
    assert path.name == "report.md" and text.startswith("# msbridge validation report")
    assert "- quick: True" in text
    assert "## passing" in text and "## raising" in text
    assert "![passing](fig.png)" in text
    assert "| passing | relative error of C11 |" in text and "**NO**" in text
    assert "CalculationError: SCF not converged" in text
    table = validation.format_table(results)
    assert "passing" in table and "NO" in table and "CalculationError" in table
