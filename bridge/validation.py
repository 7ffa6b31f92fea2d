"""The validation hierarchy behind ``msbridge validate`` (DESIGN.md section 5).

A :class:`Case` is a canonical problem with a known answer.  Its function takes ``quick`` (bool)
and ``outdir`` (a folder for figures, or None) and returns a :class:`Outcome`; the runner times
it and turns it into a :class:`CaseResult` with ``name, metric, value, reference, tolerance,
passed, seconds``.  Cases register through the ``multiscale_bridge.validation`` entry-point
group as a list of :class:`Case` objects, ordered simplest first by ``level``.

``passed`` is ``abs(value - reference) <= tolerance``; a case whose metric is an error norm uses
``reference = 0``.  Extra figures of merit go in ``details``.
"""
from __future__ import annotations

import math
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from . import fileio, registry
from .errors import EngineNotAvailable


@dataclass
class Outcome:
    metric: str
    value: float
    reference: float
    tolerance: float
    details: dict[str, Any] = field(default_factory=dict)
    figures: list[str] = field(default_factory=list)


@dataclass
class Case:
    name: str
    level: int
    description: str
    func: Callable[..., Outcome]
    engines: tuple[str, ...] = ()
    heavy: bool = False      # minutes to tens of minutes (2 cores) even in quick mode: run by name or --heavy


@dataclass
class CaseResult:
    name: str
    metric: str
    value: float
    reference: float
    tolerance: float
    passed: bool
    seconds: float
    description: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    figures: list[str] = field(default_factory=list)
    error: str | None = None


def discover() -> list[Case]:
    """All registered cases, simplest first.

    A plugin that cannot be loaded becomes a case named ``plugin:<name>`` that fails with the
    load error, so a broken or missing plugin is reported and fails the run, never skipped.
    """
    cases: list[Case] = []
    for name in registry.names(registry.VALIDATION):
        try:
            cases.extend(registry.load(name, registry.VALIDATION))
        except Exception as exc:  # noqa: BLE001 - a broken plugin becomes a failing case
            cases.append(Case(f"plugin:{name}", 0, f"validation plugin '{name}' failed to load",
                              _raiser(exc)))
    return sorted(cases, key=lambda c: (c.level, c.name))


def _raiser(exc: Exception) -> Callable[..., Outcome]:
    def func(quick: bool, outdir: Path | None) -> Outcome:
        raise exc

    return func


def select(cases: list[Case], names: list[str] | None, *, heavy: bool = False) -> list[Case]:
    """The cases named (any tier), or all of them -- without the heavy ones unless ``heavy``."""
    if not names:
        return [c for c in cases if heavy or not c.heavy]
    by = {c.name: c for c in cases}
    unknown = [n for n in names if n not in by]
    if unknown:
        from .errors import SetupError
        raise SetupError(f"unknown validation case(s) {unknown}",
                         fix=f"choose from: {', '.join(by)}")
    return [by[n] for n in names]


def run_case(case: Case, *, quick: bool, outdir: Path | None) -> CaseResult:
    t0 = time.perf_counter()
    try:
        out = case.func(quick=quick, outdir=outdir)
    except Exception as exc:  # noqa: BLE001 - one failing case is recorded, the run goes on
        seconds = time.perf_counter() - t0
        err = f"{type(exc).__name__}: {exc}"
        if not isinstance(exc, EngineNotAvailable):
            err += "\n" + traceback.format_exc(limit=6)
        return CaseResult(case.name, "error", math.nan, math.nan, math.nan, False, seconds,
                          case.description, error=err)
    seconds = time.perf_counter() - t0
    passed = bool(math.isfinite(out.value) and abs(out.value - out.reference) <= out.tolerance)
    return CaseResult(case.name, out.metric, float(out.value), float(out.reference),
                      float(out.tolerance), passed, seconds, case.description,
                      out.details, out.figures)


def write_json(results: list[CaseResult], path: Path, meta: dict | None = None) -> None:
    """Write results as strict JSON (a failed case's NaN becomes null), atomically."""
    fileio.write_json(path, {"meta": meta or {}, "cases": [asdict(r) for r in results],
                             "passed": all(r.passed for r in results)})


def format_table(results: list[CaseResult]) -> str:
    head = f"{'case':<28} {'metric':<44} {'value':>11} {'reference':>11} {'tolerance':>10} {'pass':>5} {'s':>7}"
    lines = [head, "-" * len(head)]
    for r in results:
        lines.append(f"{r.name:<28} {r.metric[:44]:<44} {r.value:>11.4g} {r.reference:>11.4g} "
                     f"{r.tolerance:>10.2g} {'yes' if r.passed else 'NO':>5} {r.seconds:>7.1f}")
        if r.error:
            lines.append("    " + r.error.splitlines()[0])
    return "\n".join(lines)


def write_report(results: list[CaseResult], outdir: Path, meta: dict | None = None) -> Path:
    """A short Markdown report with the table and the figures each case saved."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    lines = ["# msbridge validation report", ""]
    for k, v in (meta or {}).items():
        lines.append(f"- {k}: {v}")
    lines += ["", "| case | metric | value | reference | tolerance | passed | seconds |",
              "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in results:
        lines.append(f"| {r.name} | {r.metric.replace('|', '&#124;')} | {r.value:.6g} | {r.reference:.6g} | {r.tolerance:.3g} | "
                     f"{'yes' if r.passed else '**NO**'} | {r.seconds:.1f} |")
    for r in results:
        lines += ["", f"## {r.name}", "", r.description, ""]
        for k, v in r.details.items():
            lines.append(f"- {k}: {v}")
        if r.error:
            lines += ["", "```", r.error, "```"]
        for fig in r.figures:
            lines += ["", f"![{r.name}]({Path(fig).name})"]
    return fileio.atomic_write_text(outdir / "report.md", "\n".join(lines) + "\n")
