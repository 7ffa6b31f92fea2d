"""QM/MM validation cases (issue: QM/MM with PySCF regions in OpenMM systems).

``qmmm_fd_forces`` (level 5)
    A QM methyl group (HF/6-31G on CH3 plus a link hydrogen) cut from ethane, in a shell of
    TIP3P waters embedded electrostatically with a 0.60 nm cutoff and a 0.15 nm switch (some
    waters sit inside the switching shell), redistributed-charge boundary scheme.  Analytic
    forces from :class:`bridge.qmmm.QMMMCoupling` against central finite differences of the
    coupled energy, on the QM atoms, the MM link host, the redistributed-charge neighbours and
    the MM charges inside the cutoff (the switching shell included).  Tolerance 1e-4
    hartree/bohr (the issue's); the error budget is the SCF convergence (conv_tol 1e-11,
    gradient ~1e-6) and the O(h^2) truncation with h = 2e-4 nm (~1e-7).

``qmmm_net_force`` (level 5)
    The same system, isolated: the sum of all forces (QM atoms, link hosts, MM charges,
    switch chain-rule terms) vanishes by translation invariance; tolerance 1e-5 hartree/bohr,
    the issue's (observed: round-off, the SCF gradient tolerance bounds it).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from bridge import units
from bridge.qmmm import QMMMCoupling
from bridge.validation import Case, Outcome

from ._figures import pyplot, save
from .qmmm_geometry import ethane_in_water_shell

QM = [0, 1, 2, 3]
CUTOFF, SWITCH = 0.60, 0.15
H_FD = 2e-4                                      # nm


def _coupling(n_water: int, basis: str = "6-31g"):
    from bridge_adapters.pyscf import PySCFModel

    x, el, bonds, q, mols = ethane_in_water_shell(n_water, (0.32, 0.62))
    qm_symbols = [el[i] for i in QM] + ["H"]          # one link hydrogen
    model = PySCFModel(qm_symbols, np.vstack([x[QM], x[4]]), method="RHF", basis=basis, conv_tol=1e-11)
    coupling = QMMMCoupling(model, QM, len(x), charges=q, elements=el, bonds=bonds, boundary="rc",
                            cutoff=CUTOFF, switch_width=SWITCH, molecules=[np.array([4, 5, 6, 7])] + mols)
    return coupling, x


def _fd(coupling: QMMMCoupling, x: np.ndarray, atoms: np.ndarray) -> np.ndarray:
    f = np.zeros((len(atoms), 3))
    for a, i in enumerate(atoms):
        for k in range(3):
            xp, xm = x.copy(), x.copy()
            xp[i, k] += H_FD
            xm[i, k] -= H_FD
            f[a, k] = -(coupling.compute(xp)[0] - coupling.compute(xm)[0]) / (2 * H_FD)
    return f


def qmmm_fd_forces(quick: bool, outdir: Path | None) -> Outcome:
    n_water = 4 if quick else 8
    coupling, x = _coupling(n_water)
    energy, forces = coupling.compute(x)
    centroid = x[QM].mean(axis=0)
    d = np.linalg.norm(x[coupling.anchors] - centroid, axis=1)
    inside = [g for g, dist in enumerate(d) if dist < CUTOFF]
    mm_inside = np.flatnonzero(np.isin(coupling.group, inside))
    atoms = np.unique(np.concatenate([QM, [4, 5, 6, 7], mm_inside]))
    if quick:
        atoms = np.unique(np.concatenate([QM, [4, 5], mm_inside[:6]]))
    fd = _fd(coupling, x, atoms)
    err = np.abs(fd - forces[atoms]) / units.HARTREE_PER_BOHR
    in_shell = [g for g, dist in enumerate(d) if CUTOFF - SWITCH < dist < CUTOFF]
    figures = []
    if outdir is not None:
        plt = pyplot()
        fig, ax = plt.subplots(figsize=(5, 3.2))
        ax.semilogy(np.arange(len(atoms)), np.maximum(err.max(axis=1), 1e-12), "o")
        ax.axhline(1e-4, color="r", ls="--", label="tolerance")
        ax.set_xticks(np.arange(len(atoms)), [str(a) for a in atoms], fontsize=6, rotation=90)
        ax.set_xlabel("atom")
        ax.set_ylabel("|F - F_fd| (hartree/bohr)")
        ax.legend(fontsize=8)
        ax.set_title("QM/MM forces vs finite differences")
        figures = save(fig, outdir, "qmmm_fd_forces")
    return Outcome(metric="max |F_analytic - F_fd| (hartree/bohr)", value=float(err.max()), reference=0.0,
                   tolerance=1e-4,
                   details={"atoms_checked": atoms.tolist(), "waters": n_water,
                            "waters_in_switching_shell": len(in_shell), "embedded_charges": coupling.last["n_charges"],
                            "qm_energy_kJ_per_mol": energy, "step_nm": H_FD,
                            "max_force_hartree_per_bohr": float(np.abs(forces).max() / units.HARTREE_PER_BOHR)},
                   figures=figures)


def qmmm_net_force(quick: bool, outdir: Path | None) -> Outcome:
    coupling, x = _coupling(4 if quick else 8)
    _, forces = coupling.compute(x)
    net = forces.sum(axis=0) / units.HARTREE_PER_BOHR
    return Outcome(metric="|sum of QM/MM forces| (hartree/bohr)", value=float(np.linalg.norm(net)),
                   reference=0.0, tolerance=1e-5,
                   details={"net_force_hartree_per_bohr": net.tolist(),
                            "largest_force_hartree_per_bohr": float(np.abs(forces).max() / units.HARTREE_PER_BOHR)})


CASES = [
    Case("qmmm_fd_forces", 5, "QM/MM (HF/6-31G methyl + link atom in TIP3P waters, switched cutoff, "
         "RC boundary): analytic forces vs finite differences.", qmmm_fd_forces, engines=("pyscf",)),
    Case("qmmm_net_force", 5, "QM/MM forces of an isolated system sum to zero.", qmmm_net_force,
         engines=("pyscf",)),
]
