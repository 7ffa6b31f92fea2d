"""A covalent QM/MM boundary: half of an ethane molecule in QM, optimised in water, two schemes.

Ethane (OPLS-AA) in TIP3P water; one methyl group (C1 H11 H12 H13) is QM (PySCF, HF/6-31G), the
other methyl and the water are MM.  The C1-C2 bond is cut: a link hydrogen sits on the bond line
at the fixed ratio g = (r_C + r_H) / (r_C + r_C) of covalent radii, and its force is handed to C1
and C2 by the chain rule.  After an MM relaxation of the whole box, the ethane geometry is
optimised in the frozen water (zero-mass particles, which OpenMM's L-BFGS minimiser leaves in
place) with the QM/MM force inside the System, for

- electrostatic embedding (redistributed-charge boundary: C2's charge moved to the midpoints of
  its C-H bonds; the QM density feels the waters' charges), and
- subtractive ONIOM-2 (mechanical embedding: E_MM(all) + E_QM(CH3 + H_link) - E_MM(CH3 + H_link)),

and compared with the pure-MM optimum.  Checks (known answers): the link atom stays on the C1-C2
line at ratio g to round-off; the optimiser converges to a stationary point (RMS force on the
ethane within twice the tolerance it was given); the optimised C-C bond is a C-C single bond
(0.150-0.157 nm) in both schemes.

Run:  python examples/ethane_link_atom.py [--quick] [--out DIR]
"""
from __future__ import annotations

import argparse
import copy
from pathlib import Path

import numpy as np
import openmm

from bridge.qmmm import link_ratio
from bridge_adapters.openmm import OpenMMEngine
from bridge_adapters.openmm.qmmm import python_force_errors
from bridge_adapters.openmm.qmmm_setup import embed_qm_region
from bridge_adapters.pyscf import PySCFModel
from bridge_validation.solutes import ethane_in_water

QM = [0, 1, 2, 3]                       # C1 H11 H12 H13; C2 = atom 4
TOLERANCE = 1.0                         # kJ/mol/nm, RMS force on the ethane at the optimum (quick: 5)


def freeze_water(system) -> None:
    """Zero the mass of every atom after the ethane (and drop the water constraints with it)."""
    for c in reversed(range(system.getNumConstraints())):
        system.removeConstraint(c)
    for i in range(8, system.getNumParticles()):
        system.setParticleMass(i, 0.0)


def optimise(scheme: str | None, top, x, system, tolerance: float) -> dict:
    setup = None
    if scheme is not None:
        qm_x = np.vstack([x[QM], x[4]])
        model = PySCFModel(["C", "H", "H", "H", "H"], qm_x, method="RHF", basis="6-31g", conv_tol=1e-10,
                           threads=1)
        setup = embed_qm_region(system, top, QM, model, scheme=scheme, cutoff=0.75, switch_width=0.15)
        system = setup.system
    else:
        system = copy.deepcopy(system)
    freeze_water(system)
    eng = OpenMMEngine(system, x, integrator=openmm.VerletIntegrator(0.001), platform="CPU")
    with python_force_errors():
        e0 = eng.get_potential_energy()
        # OpenMM's criterion is the RMS over all 3N force components, the frozen ones included:
        # scale it so that the RMS over the ethane's 24 components reaches TOLERANCE
        e1 = eng.minimize(tolerance=tolerance * np.sqrt(24 / (3 * eng.n_particles)), max_iterations=0)
        p = eng.get_positions()
        f = eng.get_forces()
    out = {"scheme": scheme or "MM", "E_start": e0, "E_final": e1,
           "C-C (nm)": float(np.linalg.norm(p[4] - p[0])),
           "C1-H (nm)": float(np.mean(np.linalg.norm(p[1:4] - p[0], axis=1))),
           "max |F| on ethane (kJ/mol/nm)": float(np.abs(f[:8]).max()),
           "rms F on ethane (kJ/mol/nm)": float(np.sqrt(np.mean(f[:8] ** 2)))}
    if setup is not None:
        lk = setup.coupling.links[0]
        xl = p[lk.qm_host] + lk.ratio * (p[lk.mm_host] - p[lk.qm_host])
        region = setup.coupling.last["region"]                     # QM atoms + link atom, last evaluation
        out["link ratio g"] = lk.ratio
        out["link atom off the bond line (nm)"] = float(np.linalg.norm(region[-1] - xl))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a smaller box and fewer iterations for CI")
    ap.add_argument("--out", type=Path, default=None, help="folder for the figure")
    args = ap.parse_args(argv)
    top, x, system = ethane_in_water(1.8 if args.quick else 2.4)
    relax = OpenMMEngine(system, x, integrator=openmm.VerletIntegrator(0.001), platform="CPU")
    relax.minimize(tolerance=10.0, max_iterations=500)               # MM relaxation of the whole box
    x = relax.get_positions()
    tol = 5 * TOLERANCE if args.quick else TOLERANCE
    rows = [optimise(s, top, x, system, tol) for s in (None, "electrostatic", "subtractive")]
    for r in rows:
        print(", ".join(f"{k}: {v:.5g}" if isinstance(v, float) else f"{k}: {v}" for k, v in r.items()))
    if args.out is not None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, (a1, a2) = plt.subplots(1, 2, figsize=(8, 3.2))
        names = [r["scheme"] for r in rows]
        a1.bar(names, [10 * r["C-C (nm)"] for r in rows], color=["0.6", "C0", "C1"])
        a1.set_ylim(1.45, 1.60)
        a1.set_ylabel("optimised C-C (Angstrom)")
        a2.bar(names, [10 * r["C1-H (nm)"] for r in rows], color=["0.6", "C0", "C1"])
        a2.set_ylim(1.0, 1.15)
        a2.set_ylabel("mean C1-H (Angstrom)")
        fig.suptitle("ethane in water, QM methyl + link atom: MM vs electrostatic vs subtractive")
        args.out.mkdir(parents=True, exist_ok=True)
        fig.tight_layout()
        fig.savefig(args.out / "ethane_link_atom.png", dpi=110)
        plt.close(fig)
    link_rows = rows[1:]
    assert all(r["link ratio g"] == link_ratio("C", "C") for r in link_rows)
    assert all(r["link atom off the bond line (nm)"] < 1e-9 for r in link_rows), "link atom off the bond"
    assert all(r["E_final"] < r["E_start"] for r in rows), "minimisation must lower the energy"
    assert all(0.150 < r["C-C (nm)"] < 0.157 for r in rows), "not a C-C single bond"
    assert all(r["rms F on ethane (kJ/mol/nm)"] <= 2 * tol for r in rows), "not a stationary point"
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
