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

``qmmm_degenerate_energy`` (level 5)
    The degenerate limit (ASE's own QM/MM check): flexible TIP3P used both as the "QM" model
    (:class:`~bridge_adapters.openmm.qmmm.MMRegionModel`, with point-charge embedding) and as
    MM reproduces the pure-MM energy of water clusters -- electrostatic and subtractive
    schemes, at several distorted geometries -- to round-off (relative 1e-10).

``qmmm_degenerate_dimer_oo`` (level 5)
    The water dimer minimised by OpenMM's L-BFGS with the QM/MM force in the System gives the
    pure-MM O-O distance within 0.001 nm (0.01 A, ASE's criterion).

``qmmm_nve_water`` (level 6)
    A QM water (HF/6-31G, PySCF) in a periodic box of rigid TIP3P water (OpenMM, PME for MM-MM),
    electrostatic embedding with a 0.75 nm cutoff and 0.15 nm switch, NVE with 0.5 fs Verlet
    steps through OpenMM itself (the QM/MM force is a ``PythonForce`` in the System): the
    drift of the total energy (slope of a linear fit) per atom, against the issue's bound
    0.01 kJ/mol/ps/atom.  0.5 ps (quick: 0.1 ps).

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
    model = PySCFModel(qm_symbols, np.vstack([x[QM], x[4]]), method="RHF", basis=basis, conv_tol=1e-11,
                       threads=1)
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


def tip3p_waters(positions: np.ndarray, box: float | None = None):
    """Topology, flexible TIP3P System (NoCutoff) for waters at ``positions`` ``(3 w, 3)`` nm."""
    import openmm.app as app

    top = app.Topology()
    chain = top.addChain()
    O, H = app.Element.getBySymbol("O"), app.Element.getBySymbol("H")
    for _ in range(len(positions) // 3):
        res = top.addResidue("HOH", chain)
        o = top.addAtom("O", O, res)
        top.addBond(o, top.addAtom("H1", H, res))
        top.addBond(o, top.addAtom("H2", H, res))
    ff = app.ForceField("amber14/tip3p.xml")
    system = ff.createSystem(top, nonbondedMethod=app.NoCutoff, constraints=None, rigidWater=False)
    return top, system


def _dimer() -> np.ndarray:
    """A hydrogen-bonded water dimer (donor H along O...O), O-O 0.29 nm."""
    from .qmmm_geometry import water

    a = water(np.zeros(3), np.eye(3))
    donor_h = a[1] / np.linalg.norm(a[1])
    rot = np.array([[np.cos(2.2), -np.sin(2.2), 0.0], [np.sin(2.2), np.cos(2.2), 0.0], [0.0, 0.0, 1.0]])
    b = water(0.29 * donor_h, rot @ np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0]]))
    return np.vstack([a, b])


def _degenerate_systems(x: np.ndarray, scheme: str):
    """(pure-MM engine, QM/MM engine) for waters at x, the first water as the 'QM' region."""
    from bridge_adapters.openmm import OpenMMEngine
    from bridge_adapters.openmm.qmmm import MMRegionModel
    from bridge_adapters.openmm.qmmm_setup import embed_qm_region

    top, system = tip3p_waters(x)
    _, single = tip3p_waters(x[:3])
    setup = embed_qm_region(system, top, [0, 1, 2], MMRegionModel(single), scheme=scheme)
    ref = OpenMMEngine(system, x, platform="Reference")
    coupled = OpenMMEngine(setup.system, x, platform="Reference")
    return ref, coupled


def qmmm_degenerate_energy(quick: bool, outdir: Path | None) -> Outcome:
    from .qmmm_geometry import _rotation, water

    rng = np.random.default_rng(3)
    clusters = [_dimer()]
    n_clusters = 2 if quick else 4
    for c in range(n_clusters - 1):
        cl = [_dimer()]
        for w in range(3):
            o = rng.normal(size=3)
            cl.append(water(0.3 * (w + 1.2) * o / np.linalg.norm(o), _rotation(rng)))
        clusters.append(np.vstack(cl))
    worst, rows = 0.0, []
    for scheme in ("electrostatic", "subtractive"):
        for x in clusters:
            ref, coupled = _degenerate_systems(x, scheme)
            for trial in range(3):
                xt = x + 0.005 * rng.normal(size=x.shape) * (trial > 0)
                ref.set_positions(xt)
                coupled.set_positions(xt)
                e_ref, e = ref.get_potential_energy(), coupled.get_potential_energy()
                f_ref, f = ref.get_forces(), coupled.get_forces()
                rel = abs(e - e_ref) / abs(e_ref)
                frel = float(np.abs(f - f_ref).max() / np.abs(f_ref).max())
                worst = max(worst, rel, frel)
                rows.append({"scheme": scheme, "waters": len(x) // 3, "E_MM": e_ref, "E_QMMM": e,
                             "energy_rel_diff": rel, "force_rel_diff": frel})
    return Outcome(metric="max relative |E_QMMM - E_MM| and |F_QMMM - F_MM|", value=worst, reference=0.0,
                   tolerance=1e-10, details={"evaluations": rows})


def qmmm_degenerate_dimer_oo(quick: bool, outdir: Path | None) -> Outcome:
    x = _dimer()
    out = {}
    for scheme in ("electrostatic", "subtractive"):
        ref, coupled = _degenerate_systems(x, scheme)
        for name, eng in (("MM", ref), (scheme, coupled)):
            eng.minimize(tolerance=1e-3, max_iterations=0)
            p = eng.get_positions()
            out[name] = float(np.linalg.norm(p[3] - p[0]))
    dev = max(abs(out[s] - out["MM"]) for s in ("electrostatic", "subtractive"))
    return Outcome(metric="|O-O(QM/MM) - O-O(MM)| after minimisation (nm)", value=dev, reference=0.0,
                   tolerance=1e-3, details={f"O-O {k} (nm)": v for k, v in out.items()})


def water_box(edge_nm: float, ewald_tolerance: float = 1e-5):
    """Topology, positions (nm) and a rigid-TIP3P PME System of a cubic water box."""
    import openmm
    import openmm.app as app
    import openmm.unit as u

    ff = app.ForceField("amber14/tip3p.xml")
    modeller = app.Modeller(app.Topology(), [])
    modeller.addSolvent(ff, model="tip3p", boxSize=openmm.Vec3(edge_nm, edge_nm, edge_nm) * u.nanometer)
    # switched Lennard-Jones and a tight Ewald tolerance: a smooth MM energy, so that what drifts
    # in NVE is the coupling, not the truncation of the MM potential
    system = ff.createSystem(modeller.topology, nonbondedMethod=app.PME, nonbondedCutoff=0.9 * u.nanometer,
                             constraints=app.HBonds, rigidWater=True, switchDistance=0.75 * u.nanometer,
                             ewaldErrorTolerance=ewald_tolerance)
    for k in reversed(range(system.getNumForces())):
        if isinstance(system.getForce(k), openmm.CMMotionRemover):
            system.removeForce(k)
    x = np.asarray(modeller.positions.value_in_unit(u.nanometer))
    return modeller.topology, x, system


def energy_series(engine, n_steps: int, every: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Run ``n_steps``; return times (ps, from 0) and total energies (kJ/mol) every ``every`` steps."""
    t, e = [], []
    for k in range(n_steps // every + 1):
        if k:
            engine.step(every)
        t.append(engine.time)
        e.append(engine.get_potential_energy() + engine.get_kinetic_energy())
    return np.array(t) - t[0], np.array(e)


def qmmm_nve_water(quick: bool, outdir: Path | None) -> Outcome:
    import openmm

    from bridge_adapters.openmm import OpenMMEngine
    from bridge_adapters.openmm.qmmm import python_force_errors
    from bridge_adapters.openmm.qmmm_setup import embed_qm_region
    from bridge_adapters.pyscf import PySCFModel

    top, x, system = water_box(2.0)
    qm = [0, 1, 2]
    model = PySCFModel(["O", "H", "H"], x[qm], method="RHF", basis="6-31g", conv_tol=1e-11, guess="extrapolate",
                       threads=1)
    setup = embed_qm_region(system, top, qm, model, cutoff=0.75, switch_width=0.15)
    dt = 0.0005
    eng = OpenMMEngine(setup.system, x, integrator=openmm.VerletIntegrator(dt), platform="CPU")
    n_steps = 200 if quick else 1000
    with python_force_errors():
        eng.minimize(tolerance=50.0, max_iterations=50)
        eng.set_velocities_to_temperature(300.0, seed=5)
        eng.step(20)                                   # leave the velocity-assignment transient
        t, e = energy_series(eng, n_steps)
    slope = float(np.polyfit(t, e, 1)[0])
    n_atoms = eng.n_particles
    drift = abs(slope) / n_atoms
    figures = []
    if outdir is not None:
        plt = pyplot()
        fig, ax = plt.subplots(figsize=(5, 3.2))
        ax.plot(t, e - e[0], "k-", lw=1)
        ax.plot(t, np.polyval(np.polyfit(t, e, 1), t) - e[0], "r--", label=f"drift {slope:.3g} kJ/mol/ps")
        ax.set_xlabel("t (ps)")
        ax.set_ylabel("E_total - E_total(0) (kJ/mol)")
        ax.set_title(f"QM water (HF/6-31G) in {n_atoms // 3 - 1} TIP3P waters, NVE, 0.5 fs")
        ax.legend(fontsize=8)
        figures = save(fig, outdir, "qmmm_nve_water")
    return Outcome(metric="|energy drift| per atom (kJ/mol/ps/atom)", value=drift, reference=0.0, tolerance=0.01,
                   details={"atoms": n_atoms, "steps": n_steps, "timestep_ps": dt, "duration_ps": float(t[-1]),
                            "drift_kJ_per_mol_per_ps": slope, "rms_fluctuation_kJ_per_mol": float(np.std(e)),
                            "embedded_charges": model and setup.coupling.last.get("n_charges"),
                            "mean_scf_cycles": model.total_scf_cycles / max(model.scf_runs, 1)},
                   figures=figures)


CASES = [
    Case("qmmm_degenerate_energy", 5, "Degenerate limit: flexible TIP3P as 'QM' and MM reproduces the "
         "pure-MM energy and forces (electrostatic and subtractive schemes).", qmmm_degenerate_energy,
         engines=("openmm",)),
    Case("qmmm_degenerate_dimer_oo", 5, "Degenerate limit: the minimised QM/MM water dimer has the pure-MM "
         "O-O distance (0.01 A).", qmmm_degenerate_dimer_oo, engines=("openmm",)),
    Case("qmmm_fd_forces", 5, "QM/MM (HF/6-31G methyl + link atom in TIP3P waters, switched cutoff, "
         "RC boundary): analytic forces vs finite differences.", qmmm_fd_forces, engines=("pyscf",)),
    Case("qmmm_nve_water", 6, "NVE QM/MM dynamics of a QM water (PySCF HF/6-31G) in periodic TIP3P water "
         "through OpenMM: energy drift per atom.", qmmm_nve_water, engines=("openmm", "pyscf")),
    Case("qmmm_net_force", 5, "QM/MM forces of an isolated system sum to zero.", qmmm_net_force,
         engines=("pyscf",)),
]
