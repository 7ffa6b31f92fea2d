"""Validation cases of the atomistic–continuum handshake (:mod:`bridge.handshake`): 1-D chain, 2-D patch test.

The crystal: a Lennard-Jones argon chain (sigma = 0.3405 nm, epsilon = 0.99774 kJ/mol, 39.948
amu) with first and second neighbour bonds, at its zero-stress spacing ``a``; atoms on
[0, 260 a], the weight ``alpha`` falls from 1 to 0 (cos^2) over the last 20 a; the DOLFINx
interval mesh (element size h = 5 a) starts 2.5 a inside the region of weight 1 (the buffer,
one cutoff of 2 a plus a half spacing, so the nodes do not sit on atoms: a non-matching mesh).

- ``handshake_patch_test``: homogeneous deformations of the whole coupled model (atomwise
  constraints; surface atoms and the outer nodes fixed).  1-D: F = 1, 1.01, 0.98 on a matching
  (nodes on atoms) and a non-matching mesh.  2-D: the void plate of
  :mod:`~bridge_validation.handshake_plate` (side 32 a) with F = 1, a stretch and a general F,
  on the graded lattice-site mesh and on a DOLFINx crossed grid with a staircase hole (h = 3 a,
  not matching the triangular lattice).  Metric: the largest ghost force on a free degree of
  freedom over the largest bond force.  Tolerance 1e-10: the sums hold ~100 bond forces, so
  round-off is ~1e-13 of them; 1e-10 still rejects the textbook ``continuum="blended"`` energy
  (4e-3 to 2e-2, in the details) by seven orders.  Details also give the L2-constraint ghost
  force (the fine-scale part, not zero by construction, see :mod:`bridge.handshake`).
- ``handshake_gradient``: the analytic gradient of the coupled energy (atoms from OpenMM,
  Reference platform) against central differences (step 1e-6 nm) at a random perturbed state.
  Metric: max |error| over the largest gradient entry; tolerance 1e-6 (the difference
  error ~ h^2 phi''' ~ 1e-9 of the gradient, plus the energy round-off 1e-13/1e-6 = 1e-7).
- ``handshake_wave``: DESIGN.md §6 -- a Gaussian pulse (A = 0.015 a, width sigma_p = 30 a)
  and a ripple packet (wavelength sigma_p / 4 = 7.5 a < 2 h: the mesh cannot carry it) sent
  right-moving (lattice dispersion) from the atoms into the continuum with L2 constraints, the
  atoms taking 2 OpenMM steps per continuum step.  Checks: the total energy without damping
  is conserved to 1e-4 of the pulse energy; with the fine-scale damping (2 / ps) the ripple
  energy left in the atomistic region after the pulse has passed is at most 10 % and the smooth
  pulse's at most 1 %.  Metric: the worst of the three ratios value / limit (passes at <= 1).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bridge import handshake as H
from bridge.lattice import PairPotential
from bridge.validation import Case, Outcome
from bridge.zones import CosSquaredSwitch

from ._figures import pyplot, save
from .handshake_plate import CASES as PLATE_CASES

SIGMA, EPSILON, MASS = 0.3405, 0.99774, 39.948       # nm, kJ/mol, amu (argon)
SHELLS = 2
N_ATOMS, OVERLAP, H_ELEM, BUFFER = 260, 20, 5, 2.5     # in spacings a
DAMPING = 2.0                                          # 1/ps, peak fine-scale damping rate
SUBSTEPS = 2


def chain_setup(constraint: str = "l2", *, offset: float = BUFFER, n_atoms: int = N_ATOMS,
                nodes: int = 140, with_dolfinx: bool = True) -> dict[str, Any]:
    """The 1-D coupled chain: potential, spacing, weight, lattice, mesh and :class:`Handshake`."""
    fam = H.lattice_families("chain", SHELLS)
    pot = PairPotential.lennard_jones(SIGMA, EPSILON, 10 * SIGMA)
    a = H.equilibrium_spacing(pot, fam, 2 ** (1 / 6) * SIGMA)
    switch = CosSquaredSwitch(OVERLAP * a)
    x1 = (n_atoms - OVERLAP) * a

    def weight(P):
        return switch(np.asarray(P)[:, 0] - x1)

    X = H.lattice_sites("chain", a, [0.0], [n_atoms * a])
    lat = H.BondedLattice.build(X, fam, a)
    lat = lat.subset(weight(X) > 0)
    x0, x_end = x1 - offset * a, x1 - offset * a + (nodes - 1) * H_ELEM * a
    V = None
    if with_dolfinx:
        from bridge_adapters.dolfinx.handshake import interval, p1_mesh

        mesh, V = p1_mesh(interval(x0, x_end, nodes - 1))
    else:
        pts = np.linspace(x0, x_end, nodes)
        mesh = H.P1Mesh(pts, np.stack([np.arange(nodes - 1), np.arange(1, nodes)], 1))
    hs = H.Handshake(lat, pot, mesh, weight, constraint=constraint)
    far = int(np.argmax(mesh.nodes[:, 0]))
    return {"pot": pot, "a": a, "weight": weight, "lattice": lat, "mesh": mesh, "V": V, "hs": hs,
            "far_node": far, "surface_atoms": np.flatnonzero(~lat.complete() & ~hs.tied)}


def _patch_2d(matching: bool) -> dict[str, Any]:
    """A 2-D coupled plate for the patch test: lattice-vertex mesh (matching) or a crossed grid."""
    from .handshake_plate import R_HOLE, R_VOID, plate_setup

    if matching:
        s = plate_setup(32, "atomwise", full=False)
        return {"hs": s["hs"], "pot": s["pot"], "weight": s["weight"], "fixed_nodes": s["outer_nodes"]}
    from bridge_adapters.dolfinx.handshake import p1_mesh, plate_with_hole

    base = plate_setup(32, full=False, coupled=False)
    a, pot, weight = base["a"], base["pot"], base["weight"]
    L = 30 * a
    mesh, _ = p1_mesh(plate_with_hole((-L, -L), (L, L), (20, 20), (0.0, 0.0), R_HOLE * a))
    X = H.lattice_sites("triangular", a, [-L, -L], [L, L])
    r = np.linalg.norm(X, axis=1) / a
    lat = H.BondedLattice.build(X, H.lattice_families("triangular", SHELLS), a)
    lat = lat.subset((weight(X) > 0) & (r > R_VOID))
    hs = H.Handshake(lat, pot, mesh, weight, constraint="atomwise")
    bn = mesh.boundary_nodes()
    return {"hs": hs, "pot": pot, "weight": weight, "fixed_nodes": bn[np.abs(mesh.nodes[bn]).max(1) > 0.9 * L]}


def handshake_patch_test(quick: bool, outdir: Path | None) -> Outcome:
    """1-D chain and 2-D void plate, matching and non-matching meshes (module docstring)."""
    worst, details = 0.0, {}
    for label, offset in (("chain_matching", 2.0), ("chain_non_matching", BUFFER)):
        for mode in ("atomwise", "l2"):
            s = chain_setup(mode, offset=offset, n_atoms=100, nodes=60)
            hs = s["hs"]
            vals = [hs.ghost_forces(np.array([[f]]), s["surface_atoms"], [s["far_node"]])["relative"]
                    for f in (1.0, 1.01, 0.98)]
            details[f"{label}_{mode}"] = vals
            if mode == "atomwise":
                worst = max(worst, max(vals))
                raw = H.Handshake(s["lattice"], s["pot"], s["mesh"], s["weight"], constraint=mode,
                                  continuum="blended")
                details[f"{label}_blended"] = raw.ghost_forces(
                    np.array([[1.01]]), s["surface_atoms"], [s["far_node"]])["relative"]
    strains = (np.eye(2), np.array([[1.01, 0.0], [0.0, 1.0]]), np.array([[0.99, 0.015], [0.0, 1.01]]))
    for label, matching in (("plate_lattice_mesh", True), ("plate_crossed_grid", False)):
        s = _patch_2d(matching)
        hs = s["hs"]
        surface = np.flatnonzero(~hs.lattice.complete() & ~hs.tied)      # the void's surface atoms
        vals = [hs.ghost_forces(F, surface, s["fixed_nodes"])["relative"] for F in strains]
        details[f"{label}_atomwise"] = vals
        worst = max(worst, max(vals))
        for mode in ("l2", "blended"):
            other = H.Handshake(hs.lattice, s["pot"], hs.mesh, s["weight"],
                                constraint="l2" if mode == "l2" else "atomwise",
                                continuum="blended" if mode == "blended" else "bond_density")
            details[f"{label}_{mode}"] = other.ghost_forces(strains[2], surface, s["fixed_nodes"])["relative"]
    return Outcome(metric="max ghost force on free dofs / max bond force (atomwise; 1-D and 2-D, 3 strains each)",
                   value=worst, reference=0.0, tolerance=1e-10, details=details)


def handshake_gradient(quick: bool, outdir: Path | None) -> Outcome:
    from bridge_adapters.openmm.lattice import handshake_engine

    s = chain_setup("l2", n_atoms=100, nodes=60)
    hs = s["hs"]
    eng = handshake_engine(hs, SIGMA, EPSILON, MASS, 0.005)
    rng = np.random.default_rng(7)
    x = hs.lattice.positions + 0.02 * s["a"] * rng.standard_normal(hs.lattice.positions.shape)
    u = 0.02 * s["a"] * rng.standard_normal(s["mesh"].nodes.shape)
    E, ga, gc = hs.energy_gradient(x, u, eng.energy_forces)
    h = 1e-6
    probes = 8 if quick else 40

    def central(xx, uu, arr, k):
        """Central difference of the coupled energy along component 0 of row ``k`` of ``arr``."""
        plus, minus = arr.copy(), arr.copy()
        plus[k, 0] += h
        minus[k, 0] -= h
        args = ((plus, uu), (minus, uu)) if arr is xx else ((xx, plus), (xx, minus))
        return (hs.energy_gradient(*args[0], eng.energy_forces)[0]
                - hs.energy_gradient(*args[1], eng.energy_forces)[0]) / (2 * h)

    err = max([abs(central(x, u, x, i) - ga[i, 0]) for i in rng.choice(len(x), probes, replace=False)]
              + [abs(central(x, u, u, k) - gc[k, 0]) for k in rng.choice(len(u), probes, replace=False)])
    scale = float(max(np.abs(ga).max(), np.abs(gc).max()))
    return Outcome(metric="max |analytic - central difference| / max |gradient| (OpenMM atoms + continuum)",
                   value=err / scale, reference=0.0, tolerance=1e-6,
                   details={"probes": 2 * probes, "gradient_scale_kJ_mol_nm": scale, "platform": eng.platform})


def wave_run(pulse: str, damping: float, *, substeps: int = SUBSTEPS, engine: str = "openmm",
             records: int = 60) -> dict[str, Any]:
    """One wave-packet run: ``pulse`` "smooth" or "ripple"; ``damping`` peak rate in 1/ps."""
    s = chain_setup("l2")
    hs, a, pot = s["hs"], s["a"], s["pot"]
    k_long = sum(pot.d2phi(j * a) * j * j for j in range(1, SHELLS + 1))
    c = a * np.sqrt(k_long / MASS)                                     # long-wave speed, nm/ps
    w_max = np.sqrt(2 / MASS * sum(pot.d2phi(j * a) * (1 - np.cos(np.pi * j)) for j in range(1, SHELLS + 1)))
    dt = 0.05 / w_max
    eta = damping * (1 - hs.alpha) ** 2
    if engine == "openmm":
        from bridge_adapters.openmm.lattice import handshake_engine

        eng = handshake_engine(hs, SIGMA, EPSILON, MASS, dt, eta=eta)
    else:
        eng = H.NumpyLatticeEngine(hs, MASS * np.maximum(hs.alpha, 0.02), dt, eta)
    dyn = H.HandshakeDynamics(hs, eng, MASS, substeps=substeps, fixed_nodes=[s["far_node"]])
    width, x0, amp = 30 * a, 130 * a, 0.015 * a
    Xa = hs.lattice.positions[:, 0]
    u = amp * np.exp(-((Xa - x0) / width) ** 2)
    if pulse == "ripple":
        u = u * np.cos(2 * np.pi * (Xa - x0) / (width / 4))
    v = H.right_moving_velocities(u, a, MASS, pot, SHELLS)
    dyn.set_initial(hs.lattice.positions + u[:, None], v[:, None])
    t_end = ((N_ATOMS - x0 / a) * a + 3.5 * width) / c
    steps = int(np.ceil(t_end / dyn.Dt))
    rec = dyn.run(steps, every=max(1, steps // records))
    E0 = rec.total[0]
    return {"record": rec, "E0": E0, "drift": float(np.max(np.abs(np.array(rec.total) - E0)) / E0),
            "reflected": rec.atomistic[-1] / E0, "transmitted": rec.continuum[-1] / E0,
            "damped": rec.damped[-1] / E0, "steps": steps, "dt_ps": dt, "dyn": dyn, "setup": s,
            "platform": getattr(eng, "platform", "numpy")}


def handshake_wave(quick: bool, outdir: Path | None) -> Outcome:
    runs = {(p, d): wave_run(p, d) for p in ("smooth", "ripple") for d in (0.0, DAMPING)}
    drift = max(runs[("smooth", 0.0)]["drift"], runs[("ripple", 0.0)]["drift"])
    refl_r = runs[("ripple", DAMPING)]["reflected"]
    refl_s = runs[("smooth", DAMPING)]["reflected"]
    ratios = {"energy_drift_undamped/1e-4": drift / 1e-4, "ripple_reflection_damped/0.10": refl_r / 0.10,
              "smooth_reflection_damped/0.01": refl_s / 0.01}
    details = dict(ratios)
    for (p, d), r in runs.items():
        key = f"{p}_damping_{d:g}"
        details[key] = {"energy_drift": r["drift"], "reflected": r["reflected"], "transmitted": r["transmitted"],
                        "damped": r["damped"], "steps": r["steps"], "dt_ps": r["dt_ps"]}
    details["platform"] = runs[("smooth", 0.0)]["platform"]
    details["substeps"] = SUBSTEPS
    figures = []
    if outdir is not None:
        figures = wave_figure(runs, outdir)
    return Outcome(metric="worst of energy drift / 1e-4, ripple reflection / 0.10, smooth reflection / 0.01",
                   value=max(ratios.values()), reference=0.0, tolerance=1.0, details=details, figures=figures)


def wave_figure(runs: dict, outdir: Path) -> list[str]:
    """Energy in each region over time, without and with damping, for both pulses."""
    plt = pyplot()
    pulses = [p for p in ("smooth", "ripple") if (p, 0.0) in runs]
    fig, axes = plt.subplots(2, len(pulses), figsize=(4.5 * len(pulses), 6), sharex="col", sharey=True,
                             squeeze=False)
    for col, pulse in enumerate(pulses):
        for row, d in enumerate((0.0, DAMPING)):
            r = runs[(pulse, d)]
            rec, E0 = r["record"], r["E0"]
            ax = axes[row, col]
            t = np.array(rec.time)
            ax.plot(t, np.array(rec.atomistic) / E0, label="atomistic")
            ax.plot(t, np.array(rec.handshake) / E0, label="handshake")
            ax.plot(t, np.array(rec.continuum) / E0, label="continuum")
            if d > 0:
                ax.plot(t, np.array(rec.damped) / E0, "--", label="removed by damping")
            ax.plot(t, (np.array(rec.total) + (np.array(rec.damped) if d > 0 else 0)) / E0, "k:", label="ledger total")
            ax.set_title(f"{pulse} pulse, damping {d:g}/ps: reflected {r['reflected']:.2%}", fontsize=9)
            if row == 1:
                ax.set_xlabel("time (ps)")
            if col == 0:
                ax.set_ylabel("energy / pulse energy")
    axes[0, 0].legend(fontsize=7)
    return save(fig, outdir, "handshake_wave")


CASES = [
    Case("handshake_patch_test", 2, "Atomistic–continuum handshake (1-D LJ chain and 2-D void plate, DOLFINx "
         "meshes): affine patch test, ghost force at round-off on matching and non-matching meshes.",
         handshake_patch_test,
         engines=("dolfinx",)),
    Case("handshake_gradient", 2, "Handshake coupled energy (OpenMM atoms + continuum): analytic gradient vs "
         "central differences.", handshake_gradient, engines=("openmm", "dolfinx")),
    Case("handshake_wave", 3, "Wave packet from an OpenMM LJ chain into a DOLFINx continuum (h = 5 a): energy "
         "conserved undamped; ripple and smooth reflections with fine-scale damping.", handshake_wave,
         engines=("openmm", "dolfinx")),
] + PLATE_CASES
