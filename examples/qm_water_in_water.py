"""A QM water (PySCF, HF/6-31G) in a box of MM water (OpenMM, TIP3P), NVE, energy conserved.

The coupling script itself is the ~15 lines of ``run`` below: build the MM system with
OpenMM, pick the QM region, give it a PySCF model, and let :func:`embed_qm_region` put the
QM/MM force into the OpenMM ``System`` once.  From then on it is an ordinary OpenMM
simulation: the minimiser, the Verlet integrator and ``getState`` all see the QM/MM energy
(electrostatic embedding: the QM density feels every MM charge within 0.75 nm, switched off
smoothly over the last 0.15 nm, and the MM charges feel the QM density).  For NVE the MM
side is made smooth too (switched Lennard-Jones, tight Ewald tolerance) and the
centre-of-mass motion remover, which changes the kinetic energy, is left out.

Known answer: NVE conserves the total energy; the drift per atom must stay below
0.01 kJ/mol/ps (the standard for QM/MM MD), and the figure shows the total energy against time.
The total energy oscillates by about 0.1-0.4 kJ/mol (RMS) at the 0.5 fs step, so a slope fitted
over 0.05 ps scatters by about 0.01 kJ/mol/ps per atom between runs, as large as the limit
itself; over 0.2 ps (``--quick``, every step sampled) the scatter is about 0.001, and the limit
is decided.

Run:  python examples/qm_water_in_water.py [--quick] [--out DIR]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import openmm
import openmm.app as app
import openmm.unit as u

from bridge_adapters.openmm.qmmm import python_force_errors, select_atoms
from bridge_adapters.openmm.qmmm_setup import embed_qm_region
from bridge_adapters.pyscf import PySCFModel


def run(n_steps: int, outdir: Path | None) -> dict:
    ff = app.ForceField("amber14/tip3p.xml")
    box = app.Modeller(app.Topology(), [])
    box.addSolvent(ff, model="tip3p", boxSize=openmm.Vec3(2.0, 2.0, 2.0) * u.nanometer)
    system = ff.createSystem(box.topology, nonbondedMethod=app.PME, nonbondedCutoff=0.9 * u.nanometer,
                             switchDistance=0.75 * u.nanometer, ewaldErrorTolerance=1e-5,
                             constraints=app.HBonds, rigidWater=True, removeCMMotion=False)
    x = box.positions.value_in_unit(u.nanometer)
    qm = select_atoms(box.topology, residues=[0])                   # the first water is QM
    model = PySCFModel(["O", "H", "H"], np.asarray(x)[qm], method="RHF", basis="6-31g",
                       conv_tol=1e-11, guess="extrapolate", threads=1)
    setup = embed_qm_region(system, box.topology, qm, model, cutoff=0.75, switch_width=0.15)
    sim = app.Simulation(box.topology, setup.system, openmm.VerletIntegrator(0.5 * u.femtosecond))
    sim.context.setPositions(box.positions)
    with python_force_errors():                                     # PySCF errors come out as themselves
        sim.minimizeEnergy(tolerance=50.0, maxIterations=50)
        sim.context.setVelocitiesToTemperature(300 * u.kelvin, 5)
        sim.step(20)                                                # past the start-up transient
        t, e = [], []
        for _ in range(n_steps + 1):                                # every step: the QM part is cached
            state = sim.context.getState(getEnergy=True)
            t.append(state.getTime().value_in_unit(u.picosecond))
            e.append((state.getPotentialEnergy() + state.getKineticEnergy()).value_in_unit(u.kilojoule_per_mole))
            sim.step(1)
    t, e = np.array(t) - t[0], np.array(e)
    slope = float(np.polyfit(t, e, 1)[0])
    n_atoms = system.getNumParticles()
    if outdir is not None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5, 3.2))
        ax.plot(t, e - e[0], "k-", lw=1, label="total energy")
        ax.set_xlabel("t (ps)")
        ax.set_ylabel("E - E(0) (kJ/mol)")
        ax.set_title(f"QM water in {n_atoms // 3 - 1} TIP3P waters, NVE 0.5 fs")
        ax.legend(fontsize=8)
        outdir.mkdir(parents=True, exist_ok=True)
        fig.tight_layout()
        fig.savefig(outdir / "qm_water_in_water.png", dpi=110)
        plt.close(fig)
    return {"atoms": n_atoms, "steps": n_steps, "drift_kJ_per_mol_per_ps": slope,
            "drift_per_atom": abs(slope) / n_atoms, "fluctuation_rms": float(np.std(e)),
            "mean_scf_cycles": model.total_scf_cycles / max(model.scf_runs, 1)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a short run for CI (0.2 ps)")
    ap.add_argument("--out", type=Path, default=None, help="folder for the figure")
    args = ap.parse_args(argv)
    res = run(n_steps=400 if args.quick else 2000, outdir=args.out)
    for k, v in res.items():
        print(f"{k}: {v}")
    assert res["drift_per_atom"] < 0.01, "energy drift above 0.01 kJ/mol/ps per atom"
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
