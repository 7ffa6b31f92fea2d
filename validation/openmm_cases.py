"""Validation cases that use OpenMM.

``fcc_lj_elastic_constants`` (level 1): C11, C12, C44 of an FCC Lennard-Jones crystal (argon
parameters, sigma = 0.3405 nm, epsilon = 0.99774 kJ/mol, truncated at 2.55 sigma, between the
5th and 6th neighbour shells) measured in OpenMM by uniform strain, against the Cauchy–Born
lattice sums of :mod:`bridge.lattice`.

Measurement: for each strain path F(s) (x-stretch -> C11; x,y-stretch -> 2 C11 + 2 C12; simple
shear x += s y -> C44) the energy second derivative at s = 0, per volume, by central
differences with Richardson extrapolation from steps h and 2h (truncation error O(h^4)).
At the equilibrium lattice constant of the truncated potential the stress vanishes, so these
derivatives are exactly the Green–Lagrange elastic constants.  OpenMM's Reference platform
(double precision) is used.  The error budget, measured: the energy sums carry a relative
round-off of ~1e-13, which the second difference amplifies by E / (h^2 V C): 1.6e-7 at
h = 5e-4, 5e-8 at h = 1e-3, 4e-8 at h = 2e-3 where the O(h^4) truncation starts (6e-7 at
h = 4e-3).  With h = 2e-3 the tolerance is 1e-6: 25x the noise floor, and far below any
physical error (a cutoff on the wrong side of a shell or a missing neighbour shifts the
constants by > 1e-2).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from bridge import lattice, units
from bridge.validation import Case, Outcome

from ._figures import pyplot, save

SIGMA, EPSILON, MASS = 0.3405, 0.99774, 39.948   # nm, kJ/mol, amu (argon)
CUTOFF = 2.55 * SIGMA


def _strain_energies(engine, pos0: np.ndarray, box0: np.ndarray, F_of_s, steps) -> np.ndarray:
    out = []
    for s in steps:
        F = F_of_s(s)
        engine.set_box(box0 @ F.T)
        engine.set_positions(pos0 @ F.T)
        out.append(engine.get_potential_energy())
    return np.array(out)


def fcc_lj_elastic_constants(quick: bool, outdir: Path | None) -> Outcome:
    from bridge_adapters.openmm import OpenMMEngine, lennard_jones_system

    pot = lattice.PairPotential.lennard_jones(SIGMA, EPSILON, CUTOFF)
    a = lattice.equilibrium_lattice_constant(pot, 1.55 * SIGMA)
    ref = lattice.cubic_constants(lattice.cauchy_born_tensor(pot, a))
    reps = (4, 4, 4)
    pos, box = lattice.fcc(a, reps)
    system = lennard_jones_system(len(pos), SIGMA, EPSILON, MASS, box=box, cutoff=CUTOFF)
    engine = OpenMMEngine(system, pos, platform="Reference")
    volume = float(np.linalg.det(box))
    h = 2e-3
    steps = np.array([-2 * h, -h, 0.0, h, 2 * h])

    def second_derivative(E):
        d1 = (E[3] + E[1] - 2 * E[2]) / h ** 2
        d2 = (E[4] + E[0] - 2 * E[2]) / (2 * h) ** 2
        return (4 * d1 - d2) / 3 / volume

    paths = {
        "C11": lambda s: np.diag([1 + s, 1.0, 1.0]),
        "C11+C12": lambda s: np.diag([1 + s, 1 + s, 1.0]),
        "C44": lambda s: np.array([[1.0, s, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]),
    }
    curv = {k: second_derivative(_strain_energies(engine, pos, box, F, steps)) for k, F in paths.items()}
    meas = {"C11": curv["C11"], "C12": 0.5 * curv["C11+C12"] - curv["C11"], "C44": curv["C44"]}
    rel = {k: abs(meas[k] - ref[k]) / abs(ref[k]) for k in ref}

    # residual stress at the reference: the first derivative along the x-stretch path
    E = _strain_energies(engine, pos, box, paths["C11"], steps)
    sxx = (8 * (E[3] - E[1]) - (E[4] - E[0])) / (12 * h) / volume     # fourth-order central difference

    figures = []
    if outdir is not None:
        plt = pyplot()
        fig, ax = plt.subplots(figsize=(5, 3.2))
        names = list(ref)
        x = np.arange(len(names))
        ax.bar(x - 0.18, [ref[k] * units.PRESSURE_GPA for k in names], 0.36, label="Cauchy–Born lattice sum")
        ax.bar(x + 0.18, [meas[k] * units.PRESSURE_GPA for k in names], 0.36, label="OpenMM, uniform strain")
        ax.set_xticks(x, names)
        ax.set_ylabel("GPa")
        ax.set_title(f"FCC LJ argon, a = {a:.5f} nm, {len(pos)} atoms")
        ax.legend(fontsize=8)
        figures = save(fig, outdir, "fcc_lj_elastic_constants")

    return Outcome(
        metric="max relative error of C11, C12, C44",
        value=max(rel.values()), reference=0.0, tolerance=1e-6,
        details={"lattice_constant_nm": a, "atoms": len(pos), "platform": engine.platform,
                 **{f"{k}_GPa": meas[k] * units.PRESSURE_GPA for k in meas},
                 **{f"{k}_reference_GPa": ref[k] * units.PRESSURE_GPA for k in ref},
                 "residual_stress_xx_GPa": sxx * units.PRESSURE_GPA},
        figures=figures)


CASES = [
    Case("fcc_lj_elastic_constants", 1,
         "Uniform strain of an FCC Lennard-Jones crystal in OpenMM -> C11, C12, C44 against the "
         "Cauchy–Born lattice sums.", fcc_lj_elastic_constants, engines=("openmm",)),
]
