"""The benchmark contract behind ``msbridge bench`` (DESIGN.md section 5).

A :class:`Benchmark` times a coupled run against its baseline *in the same process*,
interleaved (baseline, coupled, baseline, coupled, ...) over several repeats, and reports the
ratio of the medians, the absolute medians, the problem size and the machine.  Ratios are what
we compare over time; absolute times only on the same machine.
"""
from __future__ import annotations

import os
import platform
import shutil
import statistics
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from . import fileio, registry
from .errors import SetupError


@dataclass
class Timing:
    """Interleaved timings (s) of a baseline and a coupled run."""

    baseline: list[float]
    coupled: list[float]

    @property
    def baseline_median(self) -> float:
        return statistics.median(self.baseline)

    @property
    def coupled_median(self) -> float:
        return statistics.median(self.coupled)

    @property
    def ratio(self) -> float:
        return self.coupled_median / self.baseline_median


def interleave(baseline: Callable[[], Any], coupled: Callable[[], Any], repeats: int,
               warmup: int = 1) -> Timing:
    """Run ``warmup`` untimed pairs, then ``repeats`` timed pairs, alternating which goes first."""
    if int(repeats) < 1:
        raise SetupError(f"a benchmark needs at least one timed repeat, got {repeats}", fix="pass repeats >= 1")
    for _ in range(warmup):
        baseline()
        coupled()
    tb, tc = [], []
    for r in range(repeats):
        order = ((baseline, tb), (coupled, tc)) if r % 2 == 0 else ((coupled, tc), (baseline, tb))
        for fn, sink in order:
            t0 = time.perf_counter()
            fn()
            sink.append(time.perf_counter() - t0)
    return Timing(tb, tc)


@dataclass
class BenchResult:
    name: str
    ratio: float
    ratio_name: str
    baseline_seconds: float
    coupled_seconds: float
    size: dict[str, Any]
    goal: float | None = None
    details: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, list[float]] = field(default_factory=dict)

    @property
    def met_goal(self) -> bool | None:
        return None if self.goal is None else self.ratio <= self.goal


@dataclass
class Benchmark:
    name: str
    description: str
    func: Callable[..., BenchResult]
    engines: tuple[str, ...] = ()


def discover() -> list[Benchmark]:
    out: list[Benchmark] = []
    for name in registry.names(registry.BENCHMARKS):
        out.extend(registry.load(name, registry.BENCHMARKS))
    return out


def machine() -> dict[str, Any]:
    """CPU model, core count, memory, GPU (from nvidia-smi when present), Python."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info: dict[str, Any] = {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
                            "system": f"{platform.system()} {platform.release()}"}
    try:
        info["memory_gib"] = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30, 1)
    except (ValueError, OSError, AttributeError):
        pass
    info["gpu"] = gpus() or None
    return info


def gpus() -> list[str]:
    """GPU names from ``nvidia-smi`` (empty when there is none)."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return []
    try:
        out = subprocess.run([exe, "--query-gpu=name,memory.total", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.splitlines() if line.strip()]


def write_json(results: list[BenchResult], path: Path) -> None:
    fileio.write_json(path, {"machine": machine(),
                             "benchmarks": [asdict(r) | {"met_goal": r.met_goal} for r in results]})


def format_result(r: BenchResult) -> str:
    goal = "" if r.goal is None else f" (goal <= {r.goal:g}: {'met' if r.met_goal else 'MISSED'})"
    size = ", ".join(f"{k}={v}" for k, v in r.size.items())
    lines = [f"{r.name}: {r.ratio_name} = {r.ratio:.4f}{goal}",
             f"    baseline {r.baseline_seconds:.4f} s, coupled {r.coupled_seconds:.4f} s (medians); {size}"]
    for k, v in r.details.items():
        lines.append(f"    {k}: {v}")
    return "\n".join(lines)
