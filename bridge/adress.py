r"""Adaptive resolution (AdResS): the engine-independent core.

Molecules change resolution with the position of their centre of mass ``R_alpha``: atomistic
(AT) where the weight ``w = 1``, coarse-grained (CG, one bead per molecule) where ``w = 0``, and
blended in the hybrid layer, ``w = cos^2(pi (d - d_AT) / (2 d_HY))`` of the distance ``d`` from
the atomistic core (:mod:`bridge.zones`: :class:`~bridge.zones.Slab` and
:class:`~bridge.zones.Sphere`).

Two couplings (Praprotnik, Delle Site, Kremer; Potestio, Fritsch, Español, Delgado-Buscalioni,
Kremer, Everaers, Donadio):

- **force interpolation** (``scheme="force"``):
  ``F_alpha_beta = w_alpha w_beta F^AT_alpha_beta + (1 - w_alpha w_beta) F^CG_alpha_beta``; the
  atomistic pair force between molecules is the sum of their atoms' pair forces, the CG force acts
  between centres of mass and is shared among a molecule's atoms by mass fraction.  Newton's third
  law holds, there is no energy (a thermostat is required);
- **Hamiltonian interpolation** (``scheme="hamiltonian"``, H-AdResS):
  ``H = K + sum_alpha [w_alpha V^AT_alpha + (1 - w_alpha) V^CG_alpha]`` with
  ``V^X_alpha = 1/2 sum_{beta != alpha} V^X(alpha, beta)``; its forces carry the drift term
  ``-(V^AT_alpha - V^CG_alpha) grad w_alpha``, which the thermodynamic force (or a free-energy
  correction) compensates on average.

:func:`reference_forces` evaluates both by brute force in NumPy (minimum image, every pair): the
independent reference the engine implementations are checked against.

The **thermodynamic force** (:class:`ThermodynamicForce`) flattens the density across the hybrid
layer: ``F_th <- F_th - p grad(rho_smooth)`` with ``p = 1 / (rho0^2 kappa_T)`` (times a damping
factor), the density smoothed before differentiating, the update tapered to zero a little beyond
the hybrid layer's edges; each :meth:`ThermodynamicForce.update` returns ``max |rho / rho0 - 1|``
for the caller's stopping rule; the force and its potential are tabulated along the slab axis,
saved to and loaded from ``.npz``.

Units are the caller's, used consistently (the OpenMM adapter uses nm, kJ/mol, amu, ps).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .errors import SetupError
from .zones import Slab, Zone

__all__ = ["PairPotential", "lennard_jones", "wca", "centres_of_mass", "reference_forces",
           "ThermodynamicForce", "count_crossings"]


@dataclass(frozen=True)
class PairPotential:
    """A radial pair potential ``V(r)`` and its force magnitude ``F(r) = -dV/dr``, zero beyond ``cutoff``.

    ``expression``: the same potential as an OpenMM expression in ``r`` (for the engine side).
    """

    energy: Callable[[np.ndarray], np.ndarray]
    force: Callable[[np.ndarray], np.ndarray]
    cutoff: float
    expression: str


def lennard_jones(sigma: float = 1.0, epsilon: float = 1.0, cutoff: float = 2.5) -> PairPotential:
    """Lennard-Jones cut at ``cutoff`` and shifted to zero there."""
    if not (sigma > 0 and epsilon > 0 and cutoff > sigma):
        raise SetupError(f"Lennard-Jones needs sigma, epsilon > 0 and cutoff > sigma (got {sigma}, {epsilon}, {cutoff})",
                         fix="e.g. lennard_jones(1.0, 1.0, 2.5)")
    s, e, rc = float(sigma), float(epsilon), float(cutoff)
    shift = 4 * e * ((s / rc) ** 12 - (s / rc) ** 6)

    def energy(r):
        r = np.asarray(r, float)
        return np.where(r < rc, 4 * e * ((s / r) ** 12 - (s / r) ** 6) - shift, 0.0)

    def force(r):
        r = np.asarray(r, float)
        return np.where(r < rc, 24 * e * (2 * (s / r) ** 12 - (s / r) ** 6) / r, 0.0)

    expr = f"step({rc!r}-r)*(4*{e!r}*(({s!r}/r)^12-({s!r}/r)^6)-({shift!r}))"
    return PairPotential(energy, force, rc, expr)


def wca(sigma: float = 1.0, epsilon: float = 1.0) -> PairPotential:
    """Weeks–Chandler–Andersen: Lennard-Jones cut at its minimum ``2^(1/6) sigma``, shifted up by ``epsilon``."""
    if not (sigma > 0 and epsilon > 0):
        raise SetupError(f"WCA needs sigma, epsilon > 0 (got {sigma}, {epsilon})", fix="e.g. wca(1.0, 1.0)")
    s, e = float(sigma), float(epsilon)
    rc = 2.0 ** (1.0 / 6.0) * s

    def energy(r):
        r = np.asarray(r, float)
        return np.where(r < rc, 4 * e * ((s / r) ** 12 - (s / r) ** 6) + e, 0.0)

    def force(r):
        r = np.asarray(r, float)
        return np.where(r < rc, 24 * e * (2 * (s / r) ** 12 - (s / r) ** 6) / r, 0.0)

    expr = f"step({rc!r}-r)*(4*{e!r}*(({s!r}/r)^12-({s!r}/r)^6)+{e!r})"
    return PairPotential(energy, force, rc, expr)


def _minimum_image(d: np.ndarray, box: np.ndarray | None) -> np.ndarray:
    return d if box is None else d - box * np.round(d / box)


def centres_of_mass(x: np.ndarray, masses: np.ndarray, molecule: np.ndarray,
                    box: np.ndarray | None = None) -> np.ndarray:
    """``(n_mol, 3)`` centres of mass; each molecule is unwrapped about its first atom (minimum image),
    so a molecule split by the periodic boundary is whole.  ``molecule``: ``(n,)`` ids 0..n_mol-1."""
    x = np.asarray(x, float)
    mol = np.asarray(molecule, np.int64)
    n_mol = int(mol.max()) + 1
    if mol.min() < 0 or np.any(np.bincount(mol, minlength=n_mol) == 0):
        raise SetupError("molecule ids must run 0 .. n_mol - 1 with every id used",
                         fix="number the molecules consecutively from 0")
    first = np.full(n_mol, -1)
    first[mol[::-1]] = np.arange(len(mol))[::-1]
    rel = _minimum_image(x - x[first[mol]], box)
    m = np.asarray(masses, float)
    M = np.bincount(mol, weights=m, minlength=n_mol)
    com = np.stack([np.bincount(mol, weights=m * rel[:, k], minlength=n_mol) for k in range(3)], 1) / M[:, None]
    return com + x[first]


def reference_forces(x: np.ndarray, masses: np.ndarray, molecule: np.ndarray, zone: Zone,
                     at: PairPotential, cg: PairPotential, *, scheme: str = "force",
                     box: np.ndarray | None = None) -> tuple[np.ndarray, float | None]:
    """AdResS forces ``(n, 3)`` on every atom by brute force over all pairs (a reference for tests).

    ``x`` ``(n, 3)``; ``masses`` ``(n,)``; ``molecule`` ``(n,)`` molecule ids; ``zone`` gives the
    weights of the centres of mass; ``at`` acts between atoms of different molecules, ``cg``
    between centres of mass.  Returns ``(forces, energy)``; ``energy`` is the H-AdResS potential
    energy for ``scheme="hamiltonian"`` and None for force interpolation (which has none).
    """
    if scheme not in ("force", "hamiltonian"):
        raise SetupError(f"scheme must be 'force' or 'hamiltonian', got {scheme!r}",
                         fix="pass scheme='force' (FI-AdResS) or 'hamiltonian' (H-AdResS)")
    x = np.asarray(x, float)
    m = np.asarray(masses, float)
    mol = np.asarray(molecule, np.int64)
    box = None if box is None else np.asarray(box, float)
    R = centres_of_mass(x, m, mol, box)
    n_mol = len(R)
    M = np.bincount(mol, weights=m, minlength=n_mol)
    w = zone.weights(R)
    gw = zone.gradient(R)
    F = np.zeros_like(x)
    # atomistic pairs between different molecules
    i, j = np.triu_indices(len(x), 1)
    keep = mol[i] != mol[j]
    i, j = i[keep], j[keep]
    d = _minimum_image(x[i] - x[j], box)
    r = np.linalg.norm(d, axis=1)
    fa = at.force(r)[:, None] * d / r[:, None]               # force on i from j
    va = at.energy(r)
    a, b = mol[i], mol[j]
    # centre-of-mass pairs
    A, B = np.triu_indices(n_mol, 1)
    D = _minimum_image(R[A] - R[B], box)
    Rr = np.linalg.norm(D, axis=1)
    fc = cg.force(Rr)[:, None] * D / Rr[:, None]
    vc = cg.energy(Rr)
    share = m / M[mol]                                          # an atom's share of its molecule's force
    if scheme == "force":
        lam = (w[a] * w[b])[:, None]
        np.add.at(F, i, lam * fa)
        np.add.at(F, j, -lam * fa)
        fcom = np.zeros((n_mol, 3))
        lam_c = (1.0 - w[A] * w[B])[:, None]
        np.add.at(fcom, A, lam_c * fc)
        np.add.at(fcom, B, -lam_c * fc)
        return F + share[:, None] * fcom[mol], None
    # H-AdResS: pair weights (w_a + w_b)/2 and the drift term from grad w
    lam = (0.5 * (w[a] + w[b]))[:, None]
    np.add.at(F, i, lam * fa)
    np.add.at(F, j, -lam * fa)
    lam_c = (1.0 - 0.5 * (w[A] + w[B]))[:, None]
    fcom = np.zeros((n_mol, 3))
    np.add.at(fcom, A, lam_c * fc)
    np.add.at(fcom, B, -lam_c * fc)
    v_at = 0.5 * (np.bincount(a, weights=va, minlength=n_mol) + np.bincount(b, weights=va, minlength=n_mol))
    v_cg = 0.5 * (np.bincount(A, weights=vc, minlength=n_mol) + np.bincount(B, weights=vc, minlength=n_mol))
    fcom -= (v_at - v_cg)[:, None] * gw
    energy = float(np.sum(w * v_at + (1.0 - w) * v_cg))
    return F + share[:, None] * fcom[mol], energy


def count_crossings(before: np.ndarray, after: np.ndarray) -> dict[str, int]:
    """Molecules that changed region between two labellings (0 core, 1 hybrid, 2 coarse; see
    :meth:`bridge.zones.Zone.region`): ``{"into_core", "out_of_core", "into_coarse",
    "out_of_coarse", "changed"}``."""
    b, a = np.asarray(before), np.asarray(after)
    if b.shape != a.shape:
        raise SetupError(f"region labels of different shapes {b.shape} and {a.shape}",
                         fix="label the same molecules both times")
    return {"into_core": int(np.sum((b != 0) & (a == 0))), "out_of_core": int(np.sum((b == 0) & (a != 0))),
            "into_coarse": int(np.sum((b != 2) & (a == 2))), "out_of_coarse": int(np.sum((b == 2) & (a != 2))),
            "changed": int(np.sum(a != b))}


class ThermodynamicForce:
    """The thermodynamic force of a slab zone, tabulated along the slab axis over one period.

    Parameters
    ----------
    zone : Slab
        The atomistic slab with its hybrid layers (periodic: ``zone.period`` is the box length).
    bins : int
        Table points over the period (the density profile uses the same bins).
    prefactor : float
        ``1 / (rho0^2 kappa_T)`` (energy x volume), times a damping factor below 1 if the
        iteration overshoots.
    smoothing : float
        Width (length) of the Gaussian that smooths the density before differentiating.
    overlap : float
        How far (length) the force reaches beyond the hybrid layer on either side: the density
        dips and peaks where the models meet, at the layer's edges, and a force that vanished there
        could not remove them.  The update is tapered by ``sin^2`` to zero at the widened edges.

    ``force`` ``(bins,)`` is the force along the axis at the bin centres ``grid``; ``potential``
    the matching potential (zero in the coarse region), whose negative derivative it is.
    """

    def __init__(self, zone: Slab, bins: int, prefactor: float, smoothing: float, overlap: float = 0.0):
        if not isinstance(zone, Slab) or zone.period is None:
            raise SetupError("the thermodynamic force is tabulated for a periodic slab zone",
                             fix="use bridge.zones.Slab(axis, centre, half_width, hybrid_width, period=L)")
        if int(bins) < 16 or not prefactor > 0 or not smoothing > 0 or not 0 <= overlap <= zone.half_width:
            raise SetupError(f"need bins >= 16, prefactor > 0, smoothing > 0, 0 <= overlap <= half_width "
                             f"(got {bins}, {prefactor}, {smoothing}, {overlap})",
                             fix="e.g. ThermodynamicForce(zone, bins=200, prefactor=1.0, smoothing=0.5, overlap=1.0)")
        self.zone, self.bins = zone, int(bins)
        self.prefactor, self.smoothing, self.overlap = float(prefactor), float(smoothing), float(overlap)
        L = zone.period
        self.dx = L / self.bins
        self.grid = (np.arange(self.bins) + 0.5) * self.dx
        pts = np.zeros((self.bins, 3))
        pts[:, zone.axis] = self.grid
        d, _ = zone.distance(pts)
        self._far = int(np.argmax(d))               # the grid point farthest from the core: U = 0 there
        width = zone.hybrid_width + 2 * self.overlap
        s = np.clip((d + self.overlap) / width, 0.0, 1.0)
        # sin^2 over the hybrid layer widened by the overlap: zero at (and beyond) its edges
        self.taper = np.where((s > 0) & (s < 1), np.sin(np.pi * s) ** 2, 0.0)     # exactly 0 outside
        self.force = np.zeros(self.bins)
        self.iterations = 0

    def profile(self, coordinates: np.ndarray) -> np.ndarray:
        """``(bins,)`` number of centres per bin for coordinates along the axis (any shape), wrapped."""
        c = np.mod(np.asarray(coordinates, float).ravel(), self.zone.period)
        return np.bincount(np.minimum((c / self.dx).astype(np.int64), self.bins - 1), minlength=self.bins).astype(float)

    def smoothed(self, density: np.ndarray) -> np.ndarray:
        from scipy.ndimage import gaussian_filter1d

        return gaussian_filter1d(np.asarray(density, float), self.smoothing / self.dx, mode="wrap")

    def update(self, density: np.ndarray, rho0: float) -> float:
        """One iteration with the measured ``density`` ``(bins,)`` (number per volume) and the target
        ``rho0``; returns the deviation ``max |rho / rho0 - 1|`` measured before the update."""
        rho = np.asarray(density, float)
        if rho.shape != (self.bins,) or not np.all(np.isfinite(rho)) or not rho0 > 0:
            raise SetupError(f"density profile must be {self.bins} finite values and rho0 > 0",
                             fix="sample the profile with ThermodynamicForce.profile over the same bins")
        sm = self.smoothed(rho)
        grad = (np.roll(sm, -1) - np.roll(sm, 1)) / (2 * self.dx)           # periodic central difference
        # keep the correction antisymmetric about the slab centre (both hybrid layers alike)
        corr = -self.prefactor * grad * self.taper
        corr = 0.5 * (corr - self._mirror(corr))
        corr -= corr.mean() * (self.taper > 0) * self.bins / max(int(np.count_nonzero(self.taper)), 1)
        self.force = self.force + corr
        self.iterations += 1
        return float(np.max(np.abs(rho / rho0 - 1.0)))

    def _mirror(self, f: np.ndarray) -> np.ndarray:
        """``f`` reflected about the slab centre: ``f(2 c - x)``, periodic linear interpolation (exact
        when the centre sits on a grid point or halfway between two)."""
        L = self.zone.period
        return np.interp(np.mod(2 * self.zone.centre - self.grid, L), self.grid, f, period=L)

    @property
    def potential(self) -> np.ndarray:
        """``(bins,)`` ``U(x) = -int F dx`` at the grid points (trapezoid rule, so that the slope
        between two points is minus the mean of their forces, with no half-bin shift), zero at the
        grid point farthest from the core."""
        U = -np.cumsum(0.5 * (self.force + np.roll(self.force, 1))) * self.dx
        return U - U[self._far]

    def edge_potential(self) -> tuple[np.ndarray, np.ndarray]:
        """``(edges (bins + 1,), U (bins + 1,))``: the potential at the bin edges ``0, dx, ..., L``, with
        ``U[k+1] - U[k] = -force[k] dx`` (each bin's force is the slope across that bin) and
        ``U[0] = U[-1]`` (the force integrates to zero over the period); what an engine splines."""
        edges = np.arange(self.bins + 1) * self.dx
        U = np.concatenate([[0.0], -np.cumsum(self.force) * self.dx])
        U -= np.interp(self.grid[self._far], edges, U)
        U[-1] = U[0]
        return edges, U

    def save(self, path: str | Path) -> Path:
        """Write the table and its settings to ``path`` (``.npz``), atomically."""
        import io

        from .fileio import atomic_write_bytes

        buf = io.BytesIO()
        z = self.zone
        np.savez(buf, grid=self.grid, force=self.force, potential=self.potential, bins=self.bins,
                 prefactor=self.prefactor, smoothing=self.smoothing, overlap=self.overlap, iterations=self.iterations,
                 zone=np.array([z.axis, z.centre, z.half_width, z.hybrid_width, z.period]))
        return atomic_write_bytes(path, buf.getvalue())

    @classmethod
    def load(cls, path: str | Path) -> "ThermodynamicForce":
        with np.load(path) as f:
            axis, centre, half, hybrid, period = f["zone"]
            tf = cls(Slab(int(axis), centre, half, hybrid, period=period), int(f["bins"]), float(f["prefactor"]),
                     float(f["smoothing"]), float(f["overlap"]))
            tf.force = np.array(f["force"])
            tf.iterations = int(f["iterations"])
        return tf
