"""Cost of adaptive resolution on OpenMM (``msbridge bench adress``): a step of the AdResS liquid against
a step of the same box fully atomistic.

A Lennard-Jones liquid (rho = 0.8, kT = 1.0, Langevin, OpenMM CPU platform) in a 48 x 8 x 8 box
(2458 particles), the atomistic core plus its hybrid layers covering a quarter (``adress_quarter``)
or a tenth (``adress_tenth``) of the box along x.  Three variants per size (two in quick mode),
each timed in interleaved repeats with the
baseline, OpenMM's own ``NonbondedForce`` Lennard-Jones (cut at 2.5 sigma) on the same particles:

- ``*_force``: force interpolation, ``CustomNonbondedForce`` with per-particle weights refreshed
  every 5 steps;
- ``*_force_every_step``: the same, refreshed every step (exact force interpolation);
- ``*_hamiltonian``: H-AdResS, ``CustomGBForce`` with the weights computed on the device.

Ratio = AdResS / fully atomistic wall time per step.  For one-bead molecules the coarse region
saves nothing (the atomistic and coarse models are both pair potentials of the same particles),
so the ratios measure the price of the machinery.

``adress_tetra_*``: molecules of four atoms (the tetrahedral liquid of the validation, rho =
0.175, 48 x 8 x 8, 538 molecules, 2152 atoms), force interpolation with centre-of-mass virtual
sites and a coarse pair potential of range 2.5 sigma, weights refreshed every 5 steps, against
the same molecules fully atomistic (``MolecularLiquid``).  Here the coarse region does drop
atom-atom interactions, but every atom is still integrated and the coarse force runs over the
atoms and the sites (a per-particle flag, no interaction groups on the CPU platform): the
ratio says whether adaptive resolution pays on this engine.
"""
from __future__ import annotations

import numpy as np

from bridge.bench import Benchmark, BenchResult, interleave


def adress(quick: bool = False, repeats: int | None = None) -> list[BenchResult]:
    import openmm

    from bridge.adress import lennard_jones, wca
    from bridge.zones import Slab
    from bridge_adapters.openmm import lennard_jones_system
    from bridge_adapters.openmm.adress import KB, AdResSLiquid
    from bridge_validation.adress_cases import lattice_fill

    reps = repeats or (3 if quick else 5)
    steps = 200 if quick else 500
    L = np.array([48.0, 8.0, 8.0])
    n = int(round(0.8 * L.prod()))
    x = lattice_fill(n, L, np.array([48, 8, 8]), seed=0)
    base_sys = lennard_jones_system(n, 1.0, 1.0, mass=1.0, box=np.diag(L), cutoff=2.5)
    base_int = openmm.LangevinMiddleIntegrator(1.0 / KB, 1.0, 0.005)
    base = openmm.Context(base_sys, base_int, openmm.Platform.getPlatformByName("CPU"))
    base.setPositions(x)
    openmm.LocalEnergyMinimizer.minimize(base, 10.0, 200)
    out = []
    for label, fraction in (("quarter", 0.25), ("tenth", 0.10)):
        hybrid = 2.0
        half = max(0.0, fraction * L[0] / 2 - hybrid)
        zone = Slab(0, L[0] / 2, half, hybrid, period=L[0])
        variants = [("force", "force", 5), ("force_every_step", "force", 1)]
        if not quick:
            variants.append(("hamiltonian", "hamiltonian", 1))
        for name, scheme, every in variants:
            liq = AdResSLiquid(x, L, zone, lennard_jones(1.0, 1.0, 2.5), wca(1.0, 1.0), scheme=scheme,
                               update_every=every, kT=1.0)
            openmm.LocalEnergyMinimizer.minimize(liq.context, 10.0, 200)
            liq.refresh_weights()
            t = interleave(lambda: base_int.step(steps), lambda: liq.step(steps), repeats=reps)
            out.append(BenchResult(
                name=f"adress_{label}_{name}", ratio=t.ratio, ratio_name="AdResS / fully atomistic wall time per step",
                baseline_seconds=t.baseline_median / steps, coupled_seconds=t.coupled_median / steps,
                size={"particles": n, "steps": steps, "atomistic_fraction": fraction},
                details={"platform": liq.platform, "scheme": scheme, "weight_refresh_every": every,
                         "core_half_width": half, "hybrid_width": hybrid},
                timings={"baseline": t.baseline, "coupled": t.coupled}))
    out += adress_molecules(quick, reps, steps)
    return out


def adress_molecules(quick: bool, reps: int, steps: int) -> list[BenchResult]:
    import openmm

    from bridge.adress import capped, lennard_jones, wca
    from bridge.zones import Slab
    from bridge_adapters.openmm.adress import AdResSMolecules, MolecularLiquid
    from bridge_validation.adress_cases import tetrahedral_liquid

    L = np.array([48.0, 8.0, 8.0])
    x, m, mol, bonded = tetrahedral_liquid(L)
    base = MolecularLiquid(x, m, mol, L, wca(1.0, 1.0), bonded=bonded, kT=1.0)
    openmm.LocalEnergyMinimizer.minimize(base.context, 10.0, 200)
    base.step(500)
    x = base.positions()
    out = []
    for label, fraction in (("quarter", 0.25),) + ((("tenth", 0.10),) if not quick else ()):
        hybrid = 2.0
        zone = Slab(0, L[0] / 2, max(0.0, fraction * L[0] / 2 - hybrid), hybrid, period=L[0])
        liq = AdResSMolecules(x, m, mol, L, zone, capped(wca(1.0, 1.0), 0.8), lennard_jones(1.5, 1.0, 2.5),
                              bonded=bonded, kT=1.0, update_every=5)
        liq.step(200)
        t = interleave(lambda: base.step(steps), lambda: liq.step(steps), repeats=reps)
        out.append(BenchResult(
            name=f"adress_tetra_{label}", ratio=t.ratio, ratio_name="AdResS / fully atomistic wall time per step",
            baseline_seconds=t.baseline_median / steps, coupled_seconds=t.coupled_median / steps,
            size={"molecules": len(liq.molecules), "atoms": liq.n, "steps": steps, "atomistic_fraction": fraction},
            details={"platform": liq.platform, "scheme": "force", "weight_refresh_every": 5,
                     "coarse_cutoff": 2.5, "hybrid_width": hybrid},
            timings={"baseline": t.baseline, "coupled": t.coupled}))
    return out


BENCHMARKS = [
    Benchmark("adress", "AdResS liquid on OpenMM (force interpolation, H-AdResS) against the fully atomistic box: "
              "cost per step for atomistic regions of a quarter and a tenth of the box.", adress,
              engines=("openmm",)),
]
