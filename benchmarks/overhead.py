"""Cost of the bridge itself: an OpenMM system stepped natively vs. through the bridge.

System: a TIP3P-FB water box (amber14 force field, PME, 0.9 nm cutoff, rigid water, 2 fs
Langevin steps) of 10,170 atoms (quick: the same box, fewer steps and repeats).  Baseline: the
system stepped by its own integrator alone.  Coupled: the same system with an
:class:`~bridge_adapters.openmm.ExternalForce` on a subset of 999 atoms, and every 10 steps an
exchange -- positions out through the adapter, a tether force ``-k (x - x_0)`` computed in
NumPy, forces in through ``set_forces``.  Both contexts live in this process on the same
platform and are timed interleaved; the ratio of the medians is the bridge overhead (goal:
<= 1.05).  An A/A run (a second native context against the first) is reported alongside as
the noise floor of these ratios on the machine at hand.  Both external-force implementations are measured: ``PythonForce`` (the default) and
the ``CustomExternalForce`` fallback.
"""
from __future__ import annotations

import numpy as np

from bridge.bench import Benchmark, BenchResult, interleave

EXCHANGE_EVERY = 10
SUBSET = 999
TETHER_K = 100.0    # kJ/(mol nm^2)


def _water_box(edge_nm: float):
    import openmm
    import openmm.app as app
    import openmm.unit as u

    ff = app.ForceField("amber14/tip3pfb.xml")
    modeller = app.Modeller(app.Topology(), [])
    modeller.addSolvent(ff, model="tip3p", boxSize=openmm.Vec3(edge_nm, edge_nm, edge_nm) * u.nanometer)

    def make_system():
        return ff.createSystem(modeller.topology, nonbondedMethod=app.PME, nonbondedCutoff=0.9 * u.nanometer,
                               constraints=app.HBonds, rigidWater=True)

    return modeller, make_system


def bridge_overhead(quick: bool = False, repeats: int | None = None, platform: str | None = None) -> list[BenchResult]:
    import openmm

    from bridge_adapters.openmm import OpenMMEngine

    steps = 100 if quick else 300
    repeats = repeats or (3 if quick else 5)
    modeller, make_system = _water_box(4.7)
    n_atoms = modeller.topology.getNumAtoms()

    def engine(seed: int) -> OpenMMEngine:
        return OpenMMEngine(make_system(), modeller.positions, topology=modeller.topology, temperature=300.0,
                            timestep=0.002, platform=platform, seed=seed)

    prep = engine(1)
    prep.minimize(tolerance=100.0, max_iterations=200)
    prep.set_velocities_to_temperature(300.0, seed=1)
    start = prep.get_state()
    subset = np.arange(SUBSET)

    baseline_engine = engine(2)
    baseline_engine.set_state(start)

    def baseline() -> None:
        baseline_engine.integrator.step(steps)

    # A/A run: a second native context against the first measures the timing noise floor.
    twin_engine = engine(2)
    twin_engine.set_state(start)
    t = interleave(baseline, lambda: twin_engine.integrator.step(steps), repeats)
    results = [BenchResult(
        name="native_noise_floor", ratio=t.ratio, ratio_name="native / native time (A/A)",
        baseline_seconds=t.baseline_median, coupled_seconds=t.coupled_median,
        size={"atoms": n_atoms, "steps": steps, "repeats": repeats},
        details={"platform": twin_engine.platform, "meaning": "spread expected of the ratios below from noise alone"},
        timings={"baseline": t.baseline, "coupled": t.coupled})]
    del twin_engine
    for mode in ("python", "parameters"):
        coupled_engine = engine(3)
        handle = coupled_engine.add_external_force(subset, mode=mode)
        coupled_engine.set_state(start)
        x0 = coupled_engine.get_positions()[subset]

        def coupled() -> None:
            for _ in range(steps // EXCHANGE_EVERY):
                coupled_engine.step(EXCHANGE_EVERY)
                x = coupled_engine.get_positions()[subset]
                handle.set_forces(-TETHER_K * (x - x0), reference=x)

        t = interleave(baseline, coupled, repeats)
        results.append(BenchResult(
            name=f"bridge_overhead_{mode}", ratio=t.ratio, ratio_name="coupled / native time",
            baseline_seconds=t.baseline_median, coupled_seconds=t.coupled_median,
            size={"atoms": n_atoms, "steps": steps, "exchange_every": EXCHANGE_EVERY, "subset": SUBSET,
                  "repeats": repeats},
            goal=1.05,
            details={"platform": coupled_engine.platform, "external_force": mode,
                     "openmm": openmm.__version__,
                     "ms_per_step_native": round(1e3 * t.baseline_median / steps, 3)},
            timings={"baseline": t.baseline, "coupled": t.coupled}))
        del coupled_engine
    return results


BENCHMARKS = [
    Benchmark("bridge_overhead",
              "10,170-atom OpenMM water box stepped natively vs. through the bridge with an exchange "
              "(positions out, forces in on 999 atoms) every 10 steps.", bridge_overhead, engines=("openmm",)),
]
