"""QM/MM validation with a covalent QM/MM cut: NVE dynamics of a half-QM ethane in MM water.

``qmmm_nve_link_atom`` (level 6)
    OPLS-AA ethane in a periodic box of rigid TIP3P water (:func:`.solutes.ethane_in_water`,
    PME for MM-MM).  One methyl group (C1, H11, H12, H13) is QM, HF/6-31G in PySCF, capped by
    a link hydrogen on the C1-C2 bond (fixed ratio from covalent radii, its force handed to C1
    and C2 by the chain rule); the other methyl is MM.  Electrostatic embedding with a 0.75 nm
    cutoff and 0.15 nm switch, redistributed-charge boundary scheme (C2's charge moved to the
    midpoints of its bonds to H21, H22, H23).  NVE with 0.5 fs Verlet steps on OpenMM's CPU
    platform, the QM/MM force a ``PythonForce`` in the System.  Metric: the drift of the total
    energy (slope of a linear fit) per atom, against the issue's bound 0.01 kJ/mol/ps/atom;
    0.5 ps (quick: 0.1 ps).  The same protocol run with the MM force field alone (the
    methyl group MM too, same start and velocities) is reported as the baseline.

Protocol: the MM system is minimised (500 L-BFGS iterations at most) and warmed up by 0.2 ps
of Langevin dynamics at 300 K (1 fs, friction 5/ps), all MM and cheap; its positions and
velocities start the QM/MM NVE run, which takes 50 steps (25 fs) to leave the hand-over
transient before the measured run (the QM methyl relaxing into the HF potential: with only 20
steps the 0.1 ps slope came out -0.9 to -1.4 kJ/mol/ps in three runs, with 50 -0.2 and -0.6,
the fit's standard error about 0.4; over 0.5 ps |slope| < 0.06); the total
energy is sampled every 10 steps.  ``drift_fit_stderr`` is the slope's standard error from the
fit residuals (samples taken as independent, so a lower bound).  The MM baseline starts
from the same hand-over state.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from bridge import units
from bridge.validation import Case, Outcome

from ._figures import pyplot, save
from .qmmm_cases import energy_series
from .solutes import ethane_in_water

QM = [0, 1, 2, 3]                                # C1, H11, H12, H13
CUTOFF, SWITCH = 0.75, 0.15                      # nm
DT = 0.0005                                      # ps
EVERY = 10                                       # steps between energy samples
HANDOVER = 50                                    # steps before the measured run (25 fs)
TEMPERATURE, SEED = 300.0, 5                     # K
FRICTION, WARMUP_DT, WARMUP_STEPS = 5.0, 0.001, 200    # 1/ps, ps: 0.2 ps MM Langevin warm-up


def qmmm_nve_link_atom(quick: bool, outdir: Path | None) -> Outcome:
    import openmm

    from bridge.qmmm import link_ratio
    from bridge_adapters.openmm import OpenMMEngine
    from bridge_adapters.openmm.qmmm import python_force_errors
    from bridge_adapters.openmm.qmmm_setup import embed_qm_region
    from bridge_adapters.pyscf import PySCFModel

    top, x, system = ethane_in_water(2.0)
    # MM preparation (cheap): a short minimisation and a Langevin warm-up at 300 K, so that the
    # measured NVE run starts from a thermal state, not from a minimum (which relaxes by a few
    # tenths of a kJ/mol in the first ~10 fs and would bias a short linear fit)
    warm = OpenMMEngine(system, x, temperature=TEMPERATURE, friction=FRICTION, timestep=WARMUP_DT,
                        platform="CPU", seed=SEED)
    warm.minimize(tolerance=10.0, max_iterations=500)
    warm.set_velocities_to_temperature(TEMPERATURE, seed=SEED)
    warm.step(WARMUP_STEPS)
    x, v = warm.get_positions(), warm.get_velocities()

    link = x[0] + link_ratio("C", "C") * (x[4] - x[0])
    model = PySCFModel(["C", "H", "H", "H", "H"], np.vstack([x[QM], link]), method="RHF", basis="6-31g",
                       conv_tol=1e-11, guess="extrapolate", threads=1)
    setup = embed_qm_region(system, top, QM, model, cutoff=CUTOFF, switch_width=SWITCH, boundary="rc")
    n_steps = 200 if quick else 1000
    eng = OpenMMEngine(setup.system, x, integrator=openmm.VerletIntegrator(DT), platform="CPU")
    eng.set_velocities(v)
    with python_force_errors():
        eng.step(HANDOVER)                             # leave the MM -> QM/MM hand-over transient
        t, e = energy_series(eng, n_steps, EVERY)
        cycles = model.total_scf_cycles / max(model.scf_runs, 1)
        kinetic = eng.get_kinetic_energy()

    # the baseline: the same start and velocities, the MM force field alone
    mm = OpenMMEngine(system, x, integrator=openmm.VerletIntegrator(DT), platform="CPU")
    mm.set_velocities(v)
    mm.step(HANDOVER)
    t_mm, e_mm = energy_series(mm, n_steps, EVERY)

    fit, cov = np.polyfit(t, e, 1, cov=True)
    slope = float(fit[0])
    slope_mm = float(np.polyfit(t_mm, e_mm, 1)[0])
    n_atoms = eng.n_particles
    dof = 3 * n_atoms - setup.system.getNumConstraints()
    drift = abs(slope) / n_atoms
    figures = []
    if outdir is not None:
        plt = pyplot()
        fig, ax = plt.subplots(figsize=(5, 3.2))
        ax.plot(t, e - e[0], "k-", lw=1, label="QM/MM")
        ax.plot(t, np.polyval(fit, t) - e[0], "r--", label=f"QM/MM drift {slope:.3g} kJ/mol/ps")
        ax.plot(t_mm, e_mm - e_mm[0], "b-", lw=0.8, alpha=0.6, label=f"MM only (drift {slope_mm:.3g} kJ/mol/ps)")
        ax.set_xlabel("t (ps)")
        ax.set_ylabel("E_total - E_total(0) (kJ/mol)")
        ax.set_title(f"QM methyl (HF/6-31G) + link H, ethane in {(n_atoms - 8) // 3} TIP3P waters, NVE",
                     fontsize=8)
        ax.legend(fontsize=7)
        figures = save(fig, outdir, "qmmm_nve_link_atom")
    return Outcome(metric="|energy drift| per atom (kJ/mol/ps/atom)", value=drift, reference=0.0, tolerance=0.01,
                   details={"atoms": n_atoms, "qm_atoms": QM, "links": len(setup.coupling.links),
                            "link_ratio": setup.coupling.links[0].ratio if setup.coupling.links else None,
                            "boundary_scheme": setup.coupling.boundary, "steps": n_steps, "timestep_ps": DT,
                            "duration_ps": float(t[-1]), "drift_kJ_per_mol_per_ps": slope,
                            "drift_fit_stderr_kJ_per_mol_per_ps": float(np.sqrt(cov[0, 0])),
                            "rms_fluctuation_kJ_per_mol": float(np.std(e)),
                            "mm_only_drift_kJ_per_mol_per_ps": slope_mm,
                            "mm_only_drift_per_atom": abs(slope_mm) / n_atoms,
                            "mm_only_rms_fluctuation_kJ_per_mol": float(np.std(e_mm)),
                            "embedded_charges": setup.coupling.last.get("n_charges"),
                            "mean_scf_cycles": cycles, "temperature_K": 2 * kinetic / (dof * units.KB)},
                   figures=figures)


CASES = [
    Case("qmmm_nve_link_atom", 6, "NVE QM/MM dynamics across a covalent cut: a QM methyl (HF/6-31G, link "
         "hydrogen, RC boundary charges) of an OPLS-AA ethane in periodic TIP3P water through OpenMM: energy "
         "drift per atom.", qmmm_nve_link_atom, engines=("openmm", "pyscf")),
]
