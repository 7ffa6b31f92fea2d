"""MD-side cost of flux coupling (``msbridge bench flux``): the coupled window against OpenMM alone.

``couette_md_chunk{k}``: the Couette slab of :mod:`bridge_validation.flux_cases` (1951 Lennard-Jones
particles, OpenMM CPU platform), one coupling window of 1000 steps with the exchange every ``k``
steps -- one ``getState`` of positions and velocities, cell sampling, the constrained-dynamics
shift, the ``y`` thermostat, one ``setVelocities`` -- against ``integrator.step(1000)`` on the
same context, interleaved.  Ratio = coupled / alone; the issue's goal is <= 1.05 (MaMiCo reports
1.10-1.20).  ``k = 1`` is the constraint of Nie et al. applied at every step (full mode only).

``couette_window``: the whole coupled window, MD plus the continuum's predictor and corrector
(two DOLFINx pieces, 20 Crank–Nicolson steps each, twice), against OpenMM alone.

``heat_md_chunk20``: the FCC bar of the thermal cases (1200 atoms), a window with the HEX
energy exchange every 20 steps against the bar's plain steps.
"""
from __future__ import annotations

import numpy as np

from bridge.bench import Benchmark, BenchResult, interleave


def _result(name, timing, size, details) -> BenchResult:
    return BenchResult(name=name, ratio=timing.ratio, ratio_name="coupled MD window / OpenMM steps alone",
                       baseline_seconds=timing.baseline_median, coupled_seconds=timing.coupled_median, size=size,
                       goal=1.05, details=details, timings={"baseline": timing.baseline, "coupled": timing.coupled})


def flux(quick: bool = False, repeats: int | None = None) -> list[BenchResult]:
    from bridge_validation.flux_cases import couette_model, heat_model

    reps = repeats or (3 if quick else 5)
    out = []
    steps = 1000
    for k in ((10, 20, 50) if quick else (1, 10, 20, 50)):
        c = couette_model(chunk=k, calibrate=20.0, equilibrate=5.0)
        md = c.replicas[0]
        targets = np.array([0.3, 0.1])
        t = interleave(lambda: md.integrator.step(steps), lambda: md.run_window(steps, targets, targets),
                       repeats=reps)
        out.append(_result(f"couette_md_chunk{k}", t, {"particles": md.n, "steps": steps},
                           {"platform": md.platform, "exchange_every_steps": k,
                            "overhead_per_exchange_ms": 1e3 * (t.coupled_median - t.baseline_median) * k / steps}))
    c = couette_model(calibrate=20.0, equilibrate=5.0)
    md = c.replicas[0]
    t = interleave(lambda: md.integrator.step(c.md_steps), c.step_window, repeats=reps)
    out.append(_result("couette_window", t, {"particles": md.n, "steps": c.md_steps},
                       {"platform": md.platform, "continuum_substeps": c.substeps}))
    h = heat_model(outer="reservoirs", equilibrate=5.0)
    bar = h.md
    heat = np.array([1.0, -1.0])
    t = interleave(lambda: bar.integrator.step(steps), lambda: bar.run_window(steps, heat), repeats=reps)
    out.append(_result(f"heat_md_chunk{bar.chunk}", t, {"atoms": bar.n, "steps": steps}, {"platform": bar.platform}))
    return out


BENCHMARKS = [
    Benchmark("flux", "Flux coupling, MD side: a coupled window (sampling, constrained dynamics or HEX energy "
              "exchange once per chunk of steps) against the same OpenMM system stepped alone.", flux,
              engines=("openmm", "dolfinx")),
]
