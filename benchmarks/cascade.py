"""Cascade MD cost (``msbridge bench cascade``): EAM iron in OpenMM, per simulated picosecond.

``cascade_n{atoms}``: a PKA cascade (:class:`bridge_adapters.openmm.cascade.Cascade`, 100 K,
variable time step, thermostatted border, Wigner–Seitz probes every 0.25 ps) against the same
crystal run without the PKA (the plain thermal MD at ``dt_max``) for the same simulated time.
Ratio = cascade / thermal wall time per ps: what the ballistic phase's short steps and the
defect probes cost.

Details: wall seconds per ps of each, the platform, and the Frenkel pairs left against NRT and
arc-dpa.  The surviving-defect statistics over many cascades are the heavy validation case
``cascade_statistics``.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

from bridge.bench import Benchmark, BenchResult


def cascade(quick: bool = False, repeats: int | None = None) -> list[BenchResult]:
    from bridge.defects import arc_dpa, nrt_dpa
    from bridge.eam import mendelev_fe, read_setfl, write_setfl
    from bridge_adapters.openmm.cascade import Cascade

    f = mendelev_fe()
    a = f.lattice_constant / 10.0
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        tables = read_setfl(write_setfl(Path(tmp) / "Fe.eam.alloy", f))
        for cells, energy, t_sim in (((8, 300.0, 1.0),) if quick else ((8, 300.0, 2.0), (14, 1000.0, 2.0))):
            c = Cascade(tables, a, cells, pka_energy=energy, seed=1)
            t0 = time.perf_counter()
            res = c.run(t_max=t_sim, settle=10 * t_sim)             # no early stop: time a fixed span
            t_casc = (time.perf_counter() - t0) / max(res.time[-1] if res.time else t_sim, 1e-9)
            quiet = Cascade(tables, a, cells, pka_energy=1e-6, seed=1)   # a thermal crystal
            steps = int(round(t_sim / quiet.dt_max))
            quiet.integrator.setStepSize(quiet.dt_max)
            quiet.integrator.step(10)
            t0 = time.perf_counter()
            quiet.integrator.step(steps)
            t_quiet = (time.perf_counter() - t0) / t_sim
            out.append(BenchResult(
                name=f"cascade_n{c.n}", ratio=t_casc / t_quiet, ratio_name="cascade / thermal MD wall time per ps",
                baseline_seconds=t_quiet, coupled_seconds=t_casc,
                size={"atoms": c.n, "pka_eV": energy, "simulated_ps": t_sim},
                details={"platform": c.platform, "cascade_seconds_per_ps": t_casc, "thermal_seconds_per_ps": t_quiet,
                         "steps": res.steps, "frenkel_pairs": res.frenkel_pairs, "peak": res.max_defects,
                         "nrt": nrt_dpa(energy), "arc_dpa": arc_dpa(energy)},
                timings={"baseline": [t_quiet], "coupled": [t_casc]}))
    return out


BENCHMARKS = [
    Benchmark("cascade", "Cascade MD in EAM iron (OpenMM custom forces): wall time per simulated ps against "
              "thermal MD of the same crystal.", cascade, engines=("openmm",)),
]
