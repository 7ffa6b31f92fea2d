"""Embedded-atom potentials: analytic functions, a NumPy evaluation, and DYNAMO setfl tables.

``E = sum_{i<j} phi(r_ij) + sum_i F(rho_i)``, ``rho_i = sum_{j != i} f(r_ij)``.

:func:`mendelev_fe` is the iron of Ackland, Mendelev, Srolovitz, Han and Barashev (J. Phys.:
Condens. Matter 16, S2629 (2004)), their refit of Mendelev et al.'s Fe #2 (Phil. Mag. 83, 3977
(2003)) and the iron of many later Fe-X potentials: the Mendelev functional form and density
function, cubic-knot pair function, ``F(rho) = -sqrt(rho) + a2 rho^2 + a4 rho^4``.  It is *not*
the distributed ``Fe_2.eam.fs`` (Mendelev 2003 Fe #2 itself: ``F = -sqrt(rho) + a rho^2`` and
other pair coefficients): both have a0 = 2.8553 Å and an unrelaxed vacancy formation energy of
1.837 eV (to 0.5 meV), but Fe #2's cohesive energy is 4.122 eV, this one's 4.013 eV.  Below 1 Å the universal
(Biersack–Ziegler) screened Coulomb repulsion of two iron nuclei, joined to the pair function
by ``exp(B0 + B1 r + B2 r^2 + B3 r^3)`` between 1 and 2.05 Å -- the short-range repulsion a
cascade needs.  The functions take Å and return eV, as published; :class:`EAM` evaluates
energies and forces in the bridge's units (nm, kJ/mol).

The same functions written as a setfl table (:func:`write_setfl`) feed OpenMM's tabulated
custom forces (:mod:`bridge_adapters.openmm.eam`) and ASE's EAM calculator, so the engines can
be checked against each other and against the analytic evaluation here.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from scipy.spatial import cKDTree

from .defects import wrap
from .errors import SetupError
from .fileio import atomic_write_text
from .units import EV

__all__ = ["EAMFunctions", "mendelev_fe", "EAM", "write_setfl", "read_setfl", "SetflTables"]


@dataclass(frozen=True)
class EAMFunctions:
    """One-element EAM: callables of r (Å) or rho returning eV (and their derivatives)."""

    phi: Callable[[np.ndarray], np.ndarray]
    dphi: Callable[[np.ndarray], np.ndarray]
    density: Callable[[np.ndarray], np.ndarray]
    ddensity: Callable[[np.ndarray], np.ndarray]
    embed: Callable[[np.ndarray], np.ndarray]
    dembed: Callable[[np.ndarray], np.ndarray]
    cutoff: float                  # Å
    element: str
    atomic_number: int
    mass: float                    # amu
    lattice_constant: float        # Å (published)
    lattice: str
    reference: str


def _knots(r, a, k):
    x = np.clip(k - np.asarray(r, float)[..., None], 0.0, None)
    return np.sum(a * x ** 3, -1), np.sum(-3.0 * a * x ** 2, -1)


def mendelev_fe() -> EAMFunctions:
    """Ackland et al. (2004) iron (the refit of Mendelev et al. 2003 Fe #2), with the Biersack–Ziegler
    repulsion below 1 Å."""
    kp = np.array([2.2, 2.3, 2.4, 2.5, 2.6, 2.7, 2.8, 3.0, 3.3, 3.7, 4.2, 4.7, 5.3])
    ap = np.array([-27.444805994228, 15.738054058489, 2.2077118733936, -2.4989799053251, 4.2099676494795,
                   -0.77361294129713, 0.80656414937789, -2.3194358924605, 2.6577406128280, -1.0260416933564,
                   0.35018615891957, -0.058531821042271, -0.0030458824556234])
    kr = np.array([2.4, 3.2, 4.2])
    ar = np.array([11.686859407970, -0.01471074009883, 0.47193527075943])
    B = np.array([7.4122709384068, -0.64180690713367, -2.6043547961722, 0.62625393931230])
    zc = 9734.2365892908                                   # Z^2 e^2 / (4 pi eps0), eV Å, Z = 26
    zb = np.array([28.616724320005, 8.4267310396064, 3.6030244464156, 1.8028536321603])
    zw = np.array([0.1818, 0.5099, 0.2802, 0.02817])
    a2, a4 = -6.7314115586063e-4, 7.6514905604792e-8

    def parts(r):
        r = np.asarray(r, float)
        rs = np.maximum(r, 1e-6)
        e = np.exp(-np.multiply.outer(rs, zb))
        zbl = zc / rs * np.sum(zw * e, -1)
        dzbl = -zbl / rs - zc / rs * np.sum(zw * zb * e, -1)
        poly = B[0] + B[1] * r + B[2] * r ** 2 + B[3] * r ** 3
        mid = np.exp(poly)
        dmid = mid * (B[1] + 2 * B[2] * r + 3 * B[3] * r ** 2)
        kn, dkn = _knots(r, ap, kp)
        lo, hi = r < 1.0, r < 2.05
        return np.where(lo, zbl, np.where(hi, mid, kn)), np.where(lo, dzbl, np.where(hi, dmid, dkn))

    return EAMFunctions(
        phi=lambda r: parts(r)[0], dphi=lambda r: parts(r)[1],
        density=lambda r: _knots(r, ar, kr)[0], ddensity=lambda r: _knots(r, ar, kr)[1],
        embed=lambda p: -np.sqrt(np.maximum(p, 0.0)) + a2 * np.asarray(p) ** 2 + a4 * np.asarray(p) ** 4,
        dembed=lambda p: -0.5 / np.sqrt(np.maximum(p, 1e-300)) + 2 * a2 * np.asarray(p) + 4 * a4 * np.asarray(p) ** 3,
        cutoff=5.3, element="Fe", atomic_number=26, mass=55.845, lattice_constant=2.8553, lattice="bcc",
        reference="G.J. Ackland et al., J. Phys.: Condens. Matter 16, S2629 (2004), Fe (refit of M.I. Mendelev "
                  "et al., Phil. Mag. 83, 3977 (2003), Fe #2); Biersack–Ziegler below 1 Å")


class EAM:
    """NumPy energies and forces of an :class:`EAMFunctions` (bridge units: nm, kJ/mol).

    ``box`` (3,) nm orthorhombic and periodic on every axis, or ``None`` (open boundaries).
    """

    def __init__(self, functions: EAMFunctions, box=None):
        self.f = functions
        self.box = None if box is None else np.asarray(box, float).reshape(3)
        if self.box is not None and not (np.all(np.isfinite(self.box)) and np.all(self.box > 2 * functions.cutoff / 10)):
            raise SetupError(f"box {self.box} nm must exceed twice the cutoff ({2 * functions.cutoff / 10} nm)",
                             fix="use a larger periodic box, or box=None for a cluster")

    def energy_forces(self, x: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        """Energy (kJ/mol), forces (n, 3) kJ/(mol nm) and densities (n,) at positions ``x`` (n, 3) nm."""
        X = np.asarray(x, float).reshape(-1, 3) * 10.0                     # Å
        if not np.all(np.isfinite(X)):
            raise SetupError("positions contain NaN or inf", fix="pass finite positions in nm")
        L = None if self.box is None else self.box * 10.0
        if L is not None:
            X = wrap(X, L)
            tree = cKDTree(X, boxsize=L)
        else:
            tree = cKDTree(X)
        p = tree.query_pairs(self.f.cutoff, output_type="ndarray")
        d = X[p[:, 1]] - X[p[:, 0]]
        if L is not None:
            d -= L * np.round(d / L)
        r = np.linalg.norm(d, axis=1)
        rho = np.zeros(len(X))
        fr = self.f.density(r)
        np.add.at(rho, p[:, 0], fr)
        np.add.at(rho, p[:, 1], fr)
        E = float(np.sum(self.f.phi(r)) + np.sum(self.f.embed(rho)))
        dF = self.f.dembed(rho)
        c = (self.f.dphi(r) + (dF[p[:, 0]] + dF[p[:, 1]]) * self.f.ddensity(r)) / r
        F = np.zeros_like(X)
        np.add.at(F, p[:, 0], c[:, None] * d)
        np.add.at(F, p[:, 1], -c[:, None] * d)
        return E * EV, F * EV * 10.0, rho


def write_setfl(path: str | Path, functions: EAMFunctions, *, nr: int = 10000, nrho: int = 10000,
                rho_max: float | None = None, comment: str = "") -> str:
    """Write the functions as a DYNAMO setfl (``eam/alloy``) file, one element; returns the path.

    Grids: ``r = i dr``, ``dr = cutoff / (nr - 1)``; ``rho = i drho`` up to ``rho_max`` (default:
    the perfect-lattice density plus twice a neighbour's density at r = 0, so that two atoms
    pushed onto each other in a cascade stay inside the table; beyond it engines extrapolate
    linearly).  The pair block holds ``r phi(r)`` (eV Å), as the format wants.  Written atomically.
    """
    f = functions
    if nr < 100 or nrho < 100:
        raise SetupError("setfl grids need at least 100 points", fix="pass nr, nrho >= 100")
    dr = f.cutoff / (nr - 1)
    r = np.arange(nr) * dr
    if rho_max is None:
        a = f.lattice_constant
        nb = np.array([a * np.sqrt(3) / 2] * 8 + [a] * 6 + [a * np.sqrt(2)] * 12 + [a * np.sqrt(11) / 2] * 24)
        rho_max = float(np.sum(f.density(nb[nb < f.cutoff]))) + 2.0 * float(f.density(np.array(0.0)))
    drho = rho_max / (nrho - 1)
    rho = np.arange(nrho) * drho
    rphi = r * f.phi(np.maximum(r, dr))
    rphi[0] = rphi[1]                  # r phi -> Z^2 e^2 / (4 pi eps0) as r -> 0: finite, taken from the next point

    def block(v):
        v = np.asarray(v, float)
        rows = [" ".join(f"{x:.16e}" for x in v[i:i + 5]) for i in range(0, len(v), 5)]
        return "\n".join(rows)

    head = [f"{f.element} EAM: {f.reference}", comment or "written by multiscale-bridge (bridge.eam.write_setfl)",
            "units: eV, Angstrom", f"1 {f.element}", f"{nrho} {drho:.16e} {nr} {dr:.16e} {f.cutoff:.16e}",
            f"{f.atomic_number} {f.mass} {f.lattice_constant} {f.lattice}"]
    text = "\n".join(head + [block(f.embed(rho)), block(f.density(r)), block(rphi)]) + "\n"
    return str(atomic_write_text(path, text))


@dataclass(frozen=True)
class SetflTables:
    """A one-element setfl file read back: grids and tabulated ``F(rho)``, ``f(r)``, ``phi(r)`` (eV, Å)."""

    rho: np.ndarray
    embed: np.ndarray
    r: np.ndarray
    density: np.ndarray
    phi: np.ndarray                # phi(r) = (r phi) / r; phi[0] copied from phi[1]
    cutoff: float
    mass: float


def read_setfl(path: str | Path) -> SetflTables:
    """Read a one-element DYNAMO setfl (``eam/alloy``) file."""
    lines = Path(path).read_text().splitlines()
    try:
        head = lines[4].split()
        nrho, drho, nr, dr, cut = int(head[0]), float(head[1]), int(head[2]), float(head[3]), float(head[4])
        mass = float(lines[5].split()[1])
        vals = np.array(" ".join(lines[6:]).split(), float)
    except (IndexError, ValueError) as exc:
        raise SetupError(f"{path} is not a one-element setfl file", fix="write it with bridge.eam.write_setfl") from exc
    if vals.size != nrho + 2 * nr:
        raise SetupError(f"{path}: expected {nrho + 2 * nr} tabulated values, found {vals.size}",
                         fix="a one-element setfl file holds F(rho), rho(r) and r*phi(r)")
    r = np.arange(nr) * dr
    rphi = vals[nrho + nr:]
    phi = np.empty(nr)
    phi[1:] = rphi[1:] / r[1:]
    phi[0] = phi[1]
    return SetflTables(np.arange(nrho) * drho, vals[:nrho], r, vals[nrho:nrho + nr], phi, cut, mass)
