"""QM/MM MD step time against PySCF alone on the same QM work.

Coupled: a QM water (RHF/6-31G*, and B3LYP/6-31G* with grid response) in a periodic box of 257 rigid TIP3P waters (774 atoms), QM/MM
electrostatic embedding with a 0.75 nm switched cutoff, PME at OpenMM's default accuracy for
MM-MM, one OpenMM Verlet step (0.5 fs) per
sample -- MM forces (PME), the bridge's coupling (embedding set-up, chain rule, link and charge
bookkeeping) and PySCF's SCF + gradients + MM-charge forces + the potential at the charges.

Baseline: PySCF's own ``pyscf.qmmm`` calculation at exactly the geometries and embedded charges
the coupled run visited (recorded), same basis, tolerance, thread count and density guess (the
previous step's density): SCF, nuclear gradient and the forces on the MM charges.  On top of the
QM, the coupled step pays for the MM forces (PME of the whole box), the potential of the QM
region at the charges (for the switch's chain-rule forces) and the bridge's bookkeeping.  The ratio of
the median step times is what the bridge and the MM side cost on top of the QM (goal <= 1.10).
The MM-only step time of the same box is reported alongside.
"""
from __future__ import annotations

import time

import numpy as np

from bridge.bench import Benchmark, BenchResult
from bridge.units import BOHR

BASIS, CONV_TOL, THREADS = "6-31g*", 1e-11, 1


class _Recorder:
    """Wraps an EnergyModel and records the inputs of each call."""

    def __init__(self, model):
        self.model = model
        self.implemented_properties = model.implemented_properties
        self.calls: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def compute(self, positions, properties=("energy", "forces"), charges=None, charge_positions=None):
        self.calls.append((np.array(positions), np.array(charges), np.array(charge_positions)))
        return self.model.compute(positions, properties, charges=charges, charge_positions=charge_positions)


def _pyscf_alone(calls, xc: str | None) -> list[float]:
    from pyscf import dft, gto, lib, qmmm, scf

    times, dm = [], None
    with lib.with_omp_threads(THREADS):
        for x, q, r in calls:
            t0 = time.perf_counter()
            mol = gto.M(atom=[(s, tuple(p)) for s, p in zip(("O", "H", "H"), x / BOHR)], basis=BASIS,
                        unit="Bohr", verbose=0)
            mf = qmmm.mm_charge(scf.RHF(mol) if xc is None else dft.RKS(mol, xc=xc), r / BOHR, q, unit="Bohr")
            mf.conv_tol = CONV_TOL
            mf.chkfile = None
            mf.kernel(dm0=dm)
            dm = mf.make_rdm1()
            g = mf.nuc_grad_method()
            if xc is not None:
                g.grid_response = True          # as PySCFModel does for Kohn-Sham gradients
            g.kernel()
            g.grad_hcore_mm(dm) + g.grad_nuc_mm()
            times.append(time.perf_counter() - t0)
    return times


def qmmm_step(quick: bool = False, repeats: int | None = None) -> list[BenchResult]:
    return [_qmmm_step(quick, repeats, method, xc) for method, xc in (("RHF", None), ("RKS", "b3lyp"))]


def _qmmm_step(quick: bool, repeats: int | None, method: str, xc: str | None) -> BenchResult:
    import openmm

    from bridge_adapters.openmm import OpenMMEngine
    from bridge_adapters.openmm.qmmm import python_force_errors
    from bridge_adapters.openmm.qmmm_setup import embed_qm_region
    from bridge_adapters.pyscf import PySCFModel
    from bridge_validation.qmmm_cases import water_box

    steps = 20 if quick else 60
    repeats = repeats or (2 if quick else 3)
    top, x, system = water_box(2.0, ewald_tolerance=5e-4)       # OpenMM's default PME accuracy
    model = _Recorder(PySCFModel(["O", "H", "H"], x[:3], method=method, xc=xc, basis=BASIS, conv_tol=CONV_TOL,
                                 guess="previous", threads=THREADS))
    setup = embed_qm_region(system, top, [0, 1, 2], model, cutoff=0.75, switch_width=0.15)
    eng = OpenMMEngine(setup.system, x, integrator=openmm.VerletIntegrator(0.0005), platform=None)
    coupled, baseline = [], []
    with python_force_errors():
        eng.minimize(tolerance=50.0, max_iterations=50)
        eng.set_velocities_to_temperature(300.0, seed=2)
        eng.step(5)
        for _ in range(repeats):
            model.calls.clear()
            for _ in range(steps):
                t0 = time.perf_counter()
                eng.step(1)
                coupled.append(time.perf_counter() - t0)
            baseline += _pyscf_alone(list(model.calls), xc)
    mm = OpenMMEngine(system, x, integrator=openmm.VerletIntegrator(0.0005), platform=eng.platform)
    mm.step(5)
    t0 = time.perf_counter()
    mm.step(10 * steps)
    mm_step = (time.perf_counter() - t0) / (10 * steps)
    tc, tb = float(np.median(coupled)), float(np.median(baseline))
    return BenchResult(
        name=f"qmmm_md_step_{method.lower()}{'_' + xc if xc else ''}", ratio=tc / tb, ratio_name="QM/MM MD step / PySCF alone (same QM work)",
        baseline_seconds=tb, coupled_seconds=tc,
        size={"atoms": eng.n_particles, "qm_atoms": 3, "embedded_charges": setup.coupling.last.get("n_charges"),
              "steps": steps, "repeats": repeats},
        goal=1.10,
        details={"platform": eng.platform, "method": method, "xc": xc, "basis": BASIS, "pyscf_threads": THREADS,
                 "mm_only_step_ms": round(1e3 * mm_step, 3),
                 "qm_calls_per_step": len(model.calls) / steps},
        timings={"baseline": baseline, "coupled": coupled})


BENCHMARKS = [
    Benchmark("qmmm_md_step", "QM water (HF/6-31G* and B3LYP/6-31G*) in 257 TIP3P waters: one QM/MM MD step through OpenMM vs "
              "PySCF's own QM/MM energy + gradient on the same inputs.", qmmm_step, engines=("openmm", "pyscf")),
]
