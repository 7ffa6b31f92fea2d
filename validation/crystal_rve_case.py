"""Validation case of the atomistic RVE micro model (:class:`bridge.crystal_rve.CrystalRVE`).

``atomistic_rve_cauchy_born`` (level 2): the RVE built by
:func:`bridge_adapters.openmm.crystal.fcc_lj_crystal_rve` -- an FCC Lennard-Jones argon crystal
in OpenMM (sigma = 0.3405 nm, epsilon = 0.99774 kJ/mol, truncated at 2.55 sigma, 256 atoms,
Reference platform), the same crystal as ``fcc_lj_elastic_constants`` -- answers a macro strain
with the second Piola–Kirchhoff stress and tangent of the Cauchy–Born lattice sums
(:func:`bridge.crystal_rve.cauchy_born_response`, exact for a Bravais lattice).

Metric: the largest relative error of the nonzero entries of the 3-D 6x6 Voigt tangent at zero
strain against ``bridge.lattice.cauchy_born_tensor``.  Tolerance 1e-6: the finite-difference
error budget of :mod:`bridge.crystal_rve` (Richardson-extrapolated central differences of
engine energies, step h = 1e-3) puts the error at 2.5e-8 of C11 -- the round-off of the energy
sums (~1e-13 relative) amplified by 1/h^2 -- so the tolerance is 40x that floor, and still far
below any physical error (a neighbour shell on the wrong side of the cutoff shifts the
constants by > 1e-2).  Details: the plane-strain 3x3 tangent, the residual stress at zero
strain, the stress at 1 % uniaxial strain against the lattice-sum dW/dE, and (full run only)
the error budget itself, the tangent error for h from 2.5e-4 to 8e-3.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from bridge import lattice, units
from bridge.crystal_rve import CrystalRVE, cauchy_born_response, voigt_stiffness
from bridge.validation import Case, Outcome

from ._figures import pyplot, save

SIGMA, EPSILON, MASS = 0.3405, 0.99774, 39.948   # nm, kJ/mol, amu (argon)
CUTOFF = 2.55 * SIGMA
TOLERANCE = 1e-6


def _relative_error(C: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    """Largest relative error over the nonzero entries of ``ref``, largest |error| / C11 over its zeros."""
    nonzero = np.abs(ref) > 1e-9 * np.abs(ref).max()
    rel = float(np.max(np.abs(C - ref)[nonzero] / np.abs(ref[nonzero])))
    zero = float(np.max(np.abs(C - ref)[~nonzero], initial=0.0) / ref[0, 0])
    return rel, zero


def atomistic_rve_cauchy_born(quick: bool, outdir: Path | None) -> Outcome:
    from bridge_adapters.openmm.crystal import fcc_lj_crystal_rve

    rve3 = fcc_lj_crystal_rve(SIGMA, EPSILON, CUTOFF, mass=MASS, dim=3)
    rve3.initialize()
    pot, a = rve3.info["potential"], rve3.info["lattice_constant"]
    g = units.PRESSURE_GPA

    out3 = rve3.solve({"strain": np.zeros(6)}, 0.0)
    C3_ref = voigt_stiffness(lattice.cauchy_born_tensor(pot, a), 3) * g
    rel3, zero3 = _relative_error(out3["tangent"], C3_ref)

    # plane strain on the same engine
    rve2 = CrystalRVE(rve3.engine, dim=2, cutoff=CUTOFF)
    rve2.initialize()
    out2 = rve2.solve({"strain": np.zeros(3)}, 0.0)
    C2_ref = voigt_stiffness(lattice.cauchy_born_tensor(pot, a), 2) * g
    rel2, _ = _relative_error(out2["tangent"], C2_ref)

    # stress at 1 % uniaxial strain against the lattice-sum dW/dE
    e1 = np.array([0.01, 0.0, 0.0, 0.0, 0.0, 0.0])
    s1 = rve3.solve({"strain": e1}, 0.0)["stress"]
    s1_ref = cauchy_born_response(pot, a, e1)["stress"]
    stress_err = float(np.max(np.abs(s1 - s1_ref)) / C3_ref[0, 0])

    details = {
        "lattice_constant_nm": a, "atoms": rve3.info["atoms"], "platform": rve3.info["platform"],
        "fd_step_h": rve3.h,
        "C11_GPa": float(out3["tangent"][0, 0]), "C12_GPa": float(out3["tangent"][0, 1]),
        "C44_GPa": float(out3["tangent"][3, 3]), "C11_reference_GPa": float(C3_ref[0, 0]),
        "C12_reference_GPa": float(C3_ref[0, 1]), "C44_reference_GPa": float(C3_ref[3, 3]),
        "zero_entries_max_error_over_C11": zero3,
        "plane_strain_tangent_max_relative_error": rel2,
        "residual_stress_max_GPa": float(np.max(np.abs(out3["stress"]))),
        "stress_at_1pct_uniaxial_GPa": s1.tolist(),
        "stress_at_1pct_uniaxial_reference_GPa": s1_ref.tolist(),
        "stress_at_1pct_uniaxial_max_error_over_C11": stress_err,
    }
    if not quick:                       # the error budget of the finite differences, re-measured
        budget = {}
        for h in (2.5e-4, 5e-4, 1e-3, 2e-3, 4e-3, 8e-3):
            probe = CrystalRVE(rve3.engine, dim=3, h=h, cutoff=CUTOFF)
            probe.initialize()
            budget[f"{h:g}"] = float(np.max(np.abs(probe.solve({"strain": np.zeros(6)}, 0.0)["tangent"] - C3_ref))
                                     / C3_ref[0, 0])
        details["fd_budget_tangent_error_over_C11"] = budget

    figures = []
    if outdir is not None:
        strains = np.linspace(-0.03, 0.03, 7 if quick else 13)
        curve = np.linspace(strains[0], strains[-1], 121)
        eng = np.array([rve2.solve({"strain": [s, 0.0, 0.0]}, 0.0)["stress"] for s in strains])
        ref = np.array([cauchy_born_response(pot, a, [s, 0.0, 0.0], dim=2)["stress"] for s in curve])
        plt = pyplot()
        fig, ax = plt.subplots(figsize=(5, 3.4))
        ax.plot(curve, ref[:, 0], "-", color="C0", label="$S_{11}$ lattice sum")
        ax.plot(curve, ref[:, 1], "-", color="C1", label="$S_{22}$ lattice sum")
        ax.plot(strains, eng[:, 0], "o", color="C0", mfc="none", label="$S_{11}$ OpenMM RVE")
        ax.plot(strains, eng[:, 1], "s", color="C1", mfc="none", label="$S_{22}$ OpenMM RVE")
        ax.set_xlabel("uniaxial Green–Lagrange strain $E_{11}$")
        ax.set_ylabel("2nd Piola–Kirchhoff stress (GPa)")
        ax.set_title(f"FCC LJ argon RVE, {rve3.info['atoms']} atoms, plane strain")
        ax.legend(fontsize=8)
        figures = save(fig, outdir, "atomistic_rve_cauchy_born")

    return Outcome(metric="max relative error of the nonzero 6x6 tangent entries at zero strain",
                   value=rel3, reference=0.0, tolerance=TOLERANCE, details=details, figures=figures)


CASES = [
    Case("atomistic_rve_cauchy_born", 2,
         "Atomistic RVE micro model (FCC LJ argon in OpenMM) -> Voigt stress and tangent equal to the "
         "Cauchy–Born lattice sums.", atomistic_rve_cauchy_born, engines=("openmm",)),
]
