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
saved to and loaded from ``.npz``.  :class:`RadialThermodynamicForce` does the same for a
spherical zone, tabulated in the distance from the sphere's centre and acting radially.

Units are the caller's, used consistently (the OpenMM adapter uses nm, kJ/mol, amu, ps).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .errors import SetupError
from .zones import Slab, Sphere, Zone

__all__ = ["PairPotential", "lennard_jones", "wca", "capped", "tabulated", "molecule_ids", "unwrap_molecules",
           "centres_of_mass", "reference_forces",
           "ThermodynamicForce", "RadialThermodynamicForce", "count_crossings", "radial_distribution", "ibi_initial", "ibi_update"]


@dataclass(frozen=True)
class PairPotential:
    """A radial pair potential ``V(r)`` and its force magnitude ``F(r) = -dV/dr``, zero beyond ``cutoff``.

    ``expression``: the same potential as an OpenMM expression in ``r`` (for the engine side).
    ``table``: for a tabulated potential, ``(name, r_min, r_max, values)`` -- the function
    ``name`` the expression calls, a natural cubic spline through ``values`` on equally spaced
    points from ``r_min`` to ``r_max`` (OpenMM's ``Continuous1DFunction``); None for an analytic one.
    """

    energy: Callable[[np.ndarray], np.ndarray]
    force: Callable[[np.ndarray], np.ndarray]
    cutoff: float
    expression: str
    table: tuple[str, float, float, tuple[float, ...]] | None = None


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


def capped(potential: PairPotential, r_cap: float) -> PairPotential:
    """``potential`` continued below ``r_cap`` by its tangent: ``V(r_cap) + F(r_cap) (r_cap - r)``,
    a constant force ``F(r_cap)``.

    In force interpolation the atoms of two coarse molecules do not see each other and may
    overlap; when such a pair enters the hybrid layer its atomistic force, even weighted by a
    small ``w_a w_b``, would be unbounded.  Capped at a distance the atomistic liquid never
    reaches (WCA at 0.8 sigma is 45 epsilon: Boltzmann factor 1e-20 at kT = epsilon), the
    atomistic model is unchanged where it acts fully and finite where the molecules meet."""
    rc = float(r_cap)
    if not 0 < rc < potential.cutoff:
        raise SetupError(f"r_cap must lie between 0 and the cutoff {potential.cutoff}, got {r_cap}",
                         fix="cap below the closest distance the atomistic liquid reaches, e.g. 0.8 sigma for WCA")
    Vc, Fc = float(potential.energy(np.array(rc))), float(potential.force(np.array(rc)))

    def energy(r):
        r = np.asarray(r, float)
        return np.where(r < rc, Vc + Fc * (rc - r), potential.energy(np.maximum(r, rc)))

    def force(r):
        r = np.asarray(r, float)
        return np.where(r < rc, Fc, potential.force(np.maximum(r, rc)))

    expr = f"select(step({rc!r} - r), {Vc!r} + {Fc!r}*({rc!r} - r), {potential.expression})"
    return PairPotential(energy, force, potential.cutoff, expr, potential.table)


def tabulated(r: np.ndarray, V: np.ndarray, name: str = "vtab") -> PairPotential:
    """A pair potential tabulated at equally spaced ``r`` ``(k,)`` from 0 to the cutoff ``r[-1]``,
    ``V`` ``(k,)`` (energy), interpolated by a natural cubic spline -- the same spline OpenMM's
    ``Continuous1DFunction`` builds, so the NumPy and engine evaluations agree to round-off.
    ``V`` should reach 0 at the cutoff (it is cut there) and be steep at small ``r``
    (:func:`ibi_initial` and :func:`ibi_update` extrapolate the core that way)."""
    from scipy.interpolate import CubicSpline

    r, V = np.asarray(r, float), np.asarray(V, float)
    if r.ndim != 1 or r.shape != V.shape or len(r) < 8 or not np.all(np.isfinite(V)) or abs(r[0]) > 1e-12 \
            or not np.allclose(np.diff(r), r[1] - r[0]) or not r[1] > r[0]:
        raise SetupError("a tabulated potential needs >= 8 finite values on equally spaced r from 0 to the cutoff",
                         fix="tabulate V on np.linspace(0, cutoff, k)")
    if not name.isidentifier():
        raise SetupError(f"table name {name!r} is not an identifier", fix="use e.g. name='vcg'")
    if abs(V[-1]) > 1e-9 * max(1.0, float(np.abs(V).max())):
        raise SetupError(f"the tabulated potential is {V[-1]} at its cutoff, so the energy would jump there",
                         fix="shift it: V - V[-1] (and taper it if its force is not zero there)")
    spline = CubicSpline(r, V, bc_type="natural")
    rc = float(r[-1])

    def energy(x):
        x = np.asarray(x, float)
        return np.where(x < rc, spline(np.minimum(x, rc)), 0.0)

    def force(x):
        x = np.asarray(x, float)
        return np.where(x < rc, -spline(np.minimum(x, rc), 1), 0.0)

    return PairPotential(energy, force, rc, f"step({rc!r}-r)*{name}(r)", (name, 0.0, rc, tuple(V.tolist())))


def _minimum_image(d: np.ndarray, box: np.ndarray | None) -> np.ndarray:
    return d if box is None else d - box * np.round(d / box)


def molecule_ids(molecule: np.ndarray, n: int | None = None) -> np.ndarray:
    """``molecule`` as ``(n,)`` int64 ids, checked to run 0 .. n_mol - 1 with every id used."""
    mol = np.asarray(molecule)
    if mol.ndim != 1 or (n is not None and len(mol) != n) or len(mol) == 0 or not np.issubdtype(mol.dtype, np.integer):
        raise SetupError(f"molecule must be ({n if n is not None else 'n'},) integer ids, got shape {mol.shape}",
                         fix="pass one molecule id per atom")
    mol = mol.astype(np.int64)
    if mol.min() < 0 or np.any(np.bincount(mol) == 0):
        raise SetupError("molecule ids must run 0 .. n_mol - 1 with every id used",
                         fix="number the molecules consecutively from 0")
    return mol


def unwrap_molecules(x: np.ndarray, molecule: np.ndarray, box: np.ndarray | None) -> np.ndarray:
    """``(n, 3)`` positions with each molecule unwrapped about its first atom (minimum image), so
    that a molecule split by the periodic boundary is whole; ``box`` None: ``x`` unchanged."""
    x = np.asarray(x, float)
    mol = molecule_ids(molecule, len(x))
    first = np.full(int(mol.max()) + 1, -1)
    first[mol[::-1]] = np.arange(len(mol))[::-1]
    return x[first[mol]] + _minimum_image(x - x[first[mol]], box)


def centres_of_mass(x: np.ndarray, masses: np.ndarray, molecule: np.ndarray,
                    box: np.ndarray | None = None) -> np.ndarray:
    """``(n_mol, 3)`` centres of mass; each molecule is unwrapped about its first atom (minimum image),
    so a molecule split by the periodic boundary is whole.  ``molecule``: ``(n,)`` ids 0..n_mol-1."""
    xw = unwrap_molecules(x, molecule, None if box is None else np.asarray(box, float))
    mol = molecule_ids(molecule)
    m = np.asarray(masses, float)
    M = np.bincount(mol, weights=m)
    return np.stack([np.bincount(mol, weights=m * xw[:, k]) for k in range(3)], 1) / M[:, None]


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


def _taper(d: np.ndarray, hybrid_width: float, overlap: float) -> np.ndarray:
    """``sin^2`` over the hybrid layer widened by ``overlap`` on both sides, at distances ``d`` from the
    core: zero at (and beyond) the widened edges, exactly."""
    s = np.clip((np.asarray(d, float) + overlap) / (hybrid_width + 2 * overlap), 0.0, 1.0)
    return np.where((s > 0) & (s < 1), np.sin(np.pi * s) ** 2, 0.0)


def _check_tf_settings(bins: int, prefactor: float, smoothing: float, overlap: float, max_overlap: float,
                       example: str) -> None:
    if int(bins) < 16 or not prefactor > 0 or not smoothing > 0 or not 0 <= overlap <= max_overlap:
        raise SetupError(f"need bins >= 16, prefactor > 0, smoothing > 0, 0 <= overlap <= {max_overlap:g} "
                         f"(got {bins}, {prefactor}, {smoothing}, {overlap})", fix=f"e.g. {example}")


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
            raise SetupError("ThermodynamicForce is tabulated for a periodic slab zone",
                             fix="use bridge.zones.Slab(axis, centre, half_width, hybrid_width, period=L), or "
                                 "RadialThermodynamicForce for a sphere")
        _check_tf_settings(bins, prefactor, smoothing, overlap, zone.half_width,
                           "ThermodynamicForce(zone, bins=200, prefactor=1.0, smoothing=0.5, overlap=1.0)")
        self.zone, self.bins = zone, int(bins)
        self.prefactor, self.smoothing, self.overlap = float(prefactor), float(smoothing), float(overlap)
        L = zone.period
        self.dx = L / self.bins
        self.grid = (np.arange(self.bins) + 0.5) * self.dx
        pts = np.zeros((self.bins, 3))
        pts[:, zone.axis] = self.grid
        d, _ = zone.distance(pts)
        self._far = int(np.argmax(d))               # the grid point farthest from the core: U = 0 there
        self.taper = _taper(d, zone.hybrid_width, self.overlap)
        self.force = np.zeros(self.bins)
        self.iterations = 0

    def profile(self, coordinates: np.ndarray) -> np.ndarray:
        """``(bins,)`` number of centres per bin for coordinates along the axis (any shape), wrapped."""
        c = np.mod(np.asarray(coordinates, float).ravel(), self.zone.period)
        return np.bincount(np.minimum((c / self.dx).astype(np.int64), self.bins - 1), minlength=self.bins).astype(float)

    def density(self, x: np.ndarray, box: np.ndarray) -> np.ndarray:
        """``(bins,)`` number density (per volume) of the points ``x`` ``(n, 3)`` in one frame of the
        orthorhombic ``box`` ``(3,)``: counts over the bin volume ``dx`` times the cross-section."""
        area = float(np.prod(np.delete(np.asarray(box, float), self.zone.axis)))
        return self.profile(np.asarray(x, float)[:, self.zone.axis]) / (area * self.dx)

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
            if "zone" not in f:
                kind = "a spherical zone's thermodynamic force" if "radius" in f else "no slab thermodynamic force"
                raise SetupError(f"{path} holds {kind}", fix="load a sphere's table with RadialThermodynamicForce.load; "
                                                         "a slab's is written by ThermodynamicForce.save")
            axis, centre, half, hybrid, period = f["zone"]
            tf = cls(Slab(int(axis), centre, half, hybrid, period=period), int(f["bins"]), float(f["prefactor"]),
                     float(f["smoothing"]), float(f["overlap"]))
            tf.force = np.array(f["force"])
            tf.iterations = int(f["iterations"])
        return tf


class RadialThermodynamicForce:
    """The thermodynamic force of a spherical zone, tabulated in the distance ``r`` from its centre.

    Parameters
    ----------
    zone : Sphere
        The atomistic sphere with its hybrid shell.
    bins : int
        Table points over ``[0, r_max]`` (the radial density profile uses the same shells).
    prefactor : float
        ``1 / (rho0^2 kappa_T)`` (energy x volume), times a damping factor below 1 if the
        iteration overshoots.
    smoothing : float
        Width (length) of the Gaussian that smooths the radial density before differentiating.
    overlap : float
        How far (length) the force reaches beyond the hybrid shell, inwards and outwards (as for
        the slab); the update is tapered by ``sin^2`` to zero at the widened edges.
    r_max : float, optional
        Outer end of the table and the profile.  Default: half the shortest side of the zone's box
        (the largest sphere whose shells the minimum image does not cut), or without a box
        ``radius + hybrid_width + overlap + 3 smoothing``.  At least ``radius + hybrid_width +
        overlap``, at most half the shortest box side.

    ``force`` ``(bins,)`` is the radial force (outwards positive) at the shell centres ``grid``;
    ``potential`` the matching potential, zero at ``r_max`` and beyond (the coarse region).
    The update is ``F_th <- F_th - p d(rho_smooth)/dr`` on the spherically averaged density; the
    smoothing weights each shell by its volume and reflects the profile at ``r = 0`` (it is even
    in ``r``).
    """

    def __init__(self, zone: Sphere, bins: int, prefactor: float, smoothing: float, overlap: float = 0.0,
                 r_max: float | None = None):
        if not isinstance(zone, Sphere):
            raise SetupError("RadialThermodynamicForce is tabulated for a spherical zone",
                             fix="use bridge.zones.Sphere(centre, radius, hybrid_width, box=L), or "
                                 "ThermodynamicForce for a slab")
        _check_tf_settings(bins, prefactor, smoothing, overlap, zone.radius,
                           "RadialThermodynamicForce(zone, bins=64, prefactor=1.0, smoothing=0.5, overlap=1.0)")
        reach = zone.radius + zone.hybrid_width + overlap
        half = None if zone.box is None else 0.5 * float(zone.box.min())
        if r_max is None:
            r_max = half if half is not None else reach + 3 * smoothing
        r_max = float(r_max)
        if not r_max >= reach or (half is not None and r_max > half * (1 + 1e-12)):
            raise SetupError(f"r_max = {r_max:g} must lie between radius + hybrid_width + overlap = {reach:g} and "
                             f"half the shortest box side ({half})",
                             fix="pass an r_max in that range (or none), or shrink the overlap or the sphere, "
                                 "or enlarge the box")
        self.zone, self.bins, self.r_max = zone, int(bins), r_max
        self.prefactor, self.smoothing, self.overlap = float(prefactor), float(smoothing), float(overlap)
        self.dr = r_max / self.bins
        self.edges = np.arange(self.bins + 1) * self.dr
        self.grid = self.edges[:-1] + 0.5 * self.dr
        #: ``(bins,)`` shell volumes
        self.volumes = 4.0 * np.pi / 3.0 * np.diff(self.edges ** 3)
        self.taper = _taper(self.grid - zone.radius, zone.hybrid_width, self.overlap)
        self.force = np.zeros(self.bins)
        self.iterations = 0

    def radii(self, x: np.ndarray) -> np.ndarray:
        """``(n,)`` distances of the points ``x`` ``(n, 3)`` from the zone's centre (minimum image)."""
        d, _ = self.zone.distance(np.asarray(x, float).reshape(-1, 3))
        return d + self.zone.radius

    def profile(self, r: np.ndarray) -> np.ndarray:
        """``(bins,)`` number of points per shell for distances ``r``; those beyond ``r_max`` are left out."""
        r = np.asarray(r, float).ravel()
        k = (r[r < self.r_max] / self.dr).astype(np.int64)
        return np.bincount(np.minimum(k, self.bins - 1), minlength=self.bins).astype(float)

    def density(self, x: np.ndarray, box: np.ndarray | None = None) -> np.ndarray:
        """``(bins,)`` number density (per volume) of the points ``x`` ``(n, 3)`` in one frame, shell
        by shell (``box`` is the zone's and only accepted for symmetry with the slab)."""
        return self.profile(self.radii(x)) / self.volumes

    def smoothed(self, density: np.ndarray) -> np.ndarray:
        """The density smoothed over ``smoothing`` with each shell weighted by its volume (counts and
        volumes smoothed apart, then divided): the innermost shells, a few molecules in a tiny
        volume, would otherwise carry their large relative noise out to where the force acts."""
        from scipy.ndimage import gaussian_filter1d

        w = self.smoothing / self.dr
        counts = gaussian_filter1d(np.asarray(density, float) * self.volumes, w, mode="reflect")
        return counts / gaussian_filter1d(self.volumes, w, mode="reflect")

    def update(self, density: np.ndarray, rho0: float) -> float:
        """One iteration with the measured radial ``density`` ``(bins,)`` (number per volume) and the
        target ``rho0``; returns ``max |rho / rho0 - 1|`` before the update over the shells from the
        inner edge of the taper outwards (the inner shells are too small to judge one iteration by)."""
        rho = np.asarray(density, float)
        if rho.shape != (self.bins,) or not np.all(np.isfinite(rho)) or not rho0 > 0:
            raise SetupError(f"density profile must be {self.bins} finite values and rho0 > 0",
                             fix="sample the profile with RadialThermodynamicForce.density over the same shells")
        grad = np.gradient(self.smoothed(rho), self.dr)
        self.force = self.force - self.prefactor * grad * self.taper
        self.iterations += 1
        judged = self.grid >= self.zone.radius - self.overlap
        return float(np.max(np.abs(rho[judged] / rho0 - 1.0)))

    @property
    def potential(self) -> np.ndarray:
        """``(bins,)`` ``U(r) = int_r^r_max F dr'`` at the shell centres (zero at ``r_max``)."""
        return np.interp(self.grid, *self.edge_potential())

    def edge_potential(self) -> tuple[np.ndarray, np.ndarray]:
        """``(edges (bins + 1,), U (bins + 1,))``: the potential at the shell edges ``0, dr, ..., r_max``,
        with ``U[k] - U[k+1] = force[k] dr`` and ``U[-1] = 0``; what an engine splines."""
        U = np.concatenate([np.cumsum((self.force * self.dr)[::-1])[::-1], [0.0]])
        return self.edges.copy(), U

    def save(self, path: str | Path) -> Path:
        """Write the table and its settings to ``path`` (``.npz``), atomically."""
        import io

        from .fileio import atomic_write_bytes

        z = self.zone
        buf = io.BytesIO()
        np.savez(buf, grid=self.grid, force=self.force, potential=self.potential, bins=self.bins, r_max=self.r_max,
                 prefactor=self.prefactor, smoothing=self.smoothing, overlap=self.overlap, iterations=self.iterations,
                 centre=z.centre, radius=z.radius, hybrid=z.hybrid_width,
                 box=np.full(3, np.nan) if z.box is None else z.box)
        return atomic_write_bytes(path, buf.getvalue())

    @classmethod
    def load(cls, path: str | Path) -> "RadialThermodynamicForce":
        with np.load(path) as f:
            if "radius" not in f:
                raise SetupError(f"{path} holds a slab's thermodynamic force", fix="load it with ThermodynamicForce.load")
            box = None if np.isnan(f["box"]).any() else f["box"]
            tf = cls(Sphere(f["centre"], float(f["radius"]), float(f["hybrid"]), box=box), int(f["bins"]),
                     float(f["prefactor"]), float(f["smoothing"]), float(f["overlap"]), r_max=float(f["r_max"]))
            tf.force = np.array(f["force"])
            tf.iterations = int(f["iterations"])
        return tf


def radial_distribution(points: np.ndarray, box: np.ndarray, r_max: float, bins: int, *,
                        reference: np.ndarray | None = None,
                        group: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Radial distribution function of one configuration in a periodic orthorhombic box.

    ``points`` ``(n, 3)``; ``box`` ``(3,)``; ``r_max`` below half the shortest box length.
    ``reference`` ``(n,)`` bool: only pairs with a reference point count, once per reference end
    (the g(r) seen from the reference points, e.g. the molecules in the atomistic core);
    ``group`` ``(n,)`` ids: pairs within a group (the atoms of one molecule) do not count.
    Neighbour search by SciPy's periodic KD-tree.  Returns ``(r (bins,), g (bins,))`` at the bin
    centres, normalised by the partner density ``(n - <group size>) / V`` so that ``g -> 1`` far off.
    """
    from scipy.spatial import cKDTree

    x = np.asarray(points, float)
    L = np.asarray(box, float).reshape(3)
    n = len(x)
    if x.ndim != 2 or x.shape[1] != 3 or not np.all(np.isfinite(x)):
        raise SetupError("points must be a finite (n, 3) array", fix="pass positions in the box's units")
    if not 0 < r_max < 0.5 * L.min() or int(bins) < 1:
        raise SetupError(f"r_max {r_max} must lie between 0 and half the shortest box length {0.5 * L.min()}, bins >= 1",
                         fix="choose a smaller r_max or a larger box")
    ref = np.ones(n, bool) if reference is None else np.asarray(reference, bool)
    if ref.shape != (n,):
        raise SetupError(f"reference must be ({n},) booleans", fix="mark each point True or False")
    x = np.mod(x, L)
    x[x >= L] = 0.0                                     # np.mod can return L itself
    idx = np.flatnonzero(ref)
    # ordered pairs (reference point, any other point) within r_max, periodic distances
    pairs = cKDTree(x[idx], boxsize=L).sparse_distance_matrix(cKDTree(x, boxsize=L), float(r_max),
                                                              output_type="ndarray")
    i, j, r = idx[pairs["i"]], pairs["j"], pairs["v"]
    keep = i != j
    same = 1.0
    if group is not None:
        grp = np.asarray(group)
        keep &= grp[i] != grp[j]
        inv = np.unique(grp, return_inverse=True)[1]
        same = float(np.mean(np.bincount(inv)[inv][idx]))        # group size seen from the references
    edges = np.linspace(0.0, float(r_max), int(bins) + 1)
    counts = np.histogram(r[keep], edges)[0]
    rho = (n - same) / float(L.prod())
    shell = 4.0 / 3.0 * np.pi * np.diff(edges ** 3)
    g = counts / (max(len(idx), 1) * rho * shell)
    return 0.5 * (edges[1:] + edges[:-1]), g


def _ibi_taper(grid: np.ndarray, cutoff: float) -> np.ndarray:
    """cos^2 over the last 10 % of the range: 1 inside, 0 at the cutoff."""
    width = 0.1 * cutoff
    s = np.clip((grid - (cutoff - width)) / width, 0.0, 1.0)
    return np.cos(0.5 * np.pi * s) ** 2


def _ibi_table(grid: np.ndarray, V: np.ndarray, r0: float, kT: float, name: str) -> PairPotential:
    """Finish an IBI table on ``grid`` (0..cutoff, ``V`` already zero at the cutoff): below ``r0``
    (where the liquid never goes) a straight repulsive wall continuing the potential with a
    slope of at least ``50 kT / r0``."""
    k0 = int(np.searchsorted(grid, r0))
    k0 = min(max(k0, 1), len(grid) - 2)
    slope = max(-(V[k0 + 1] - V[k0]) / (grid[k0 + 1] - grid[k0]), 50.0 * kT / max(grid[k0], 1e-12))
    V = V.copy()
    V[:k0] = V[k0] + slope * (grid[k0] - grid[:k0])
    return tabulated(grid, V, name)


def _ibi_check(r: np.ndarray, g: np.ndarray, gt: np.ndarray, cutoff: float) -> None:
    if r.ndim != 1 or len(r) < 4 or g.shape != r.shape or gt.shape != r.shape or not np.all(np.isfinite(g)) \
            or not np.all(np.isfinite(gt)) or not np.allclose(np.diff(r), r[1] - r[0]):
        raise SetupError("r, g and g_target must be finite arrays of one shape on >= 4 equally spaced bin centres",
                         fix="pass the bin centres and the g(r) that radial_distribution returns")
    dr = float(r[1] - r[0])
    if r[-1] + 0.5 * dr < cutoff - 1e-9 or abs(2 * cutoff / dr - round(2 * cutoff / dr)) > 1e-6:
        raise SetupError(f"the bins (width {dr}) must reach the cutoff {cutoff}, and the cutoff must be a multiple "
                         "of half the bin width", fix="bin g(r) on widths that divide the cutoff")


def _ibi_grid(r: np.ndarray, cutoff: float) -> np.ndarray:
    """The table grid from 0 to the cutoff at half the bins' spacing: it passes through every bin
    centre, so the spline reproduces the inverted values there."""
    dr = float(r[1] - r[0])
    return np.linspace(0.0, float(cutoff), int(round(2 * cutoff / dr)) + 1)


def ibi_initial(r: np.ndarray, g_target: np.ndarray, kT: float, cutoff: float, *, floor: float = 0.02,
                name: str = "vcg") -> PairPotential:
    """The potential of mean force ``-kT ln g_target(r)``: the usual start of iterative Boltzmann
    inversion.  ``r`` ``(k,)`` equally spaced bin centres reaching the ``cutoff``, ``g_target`` ``(k,)``;
    where ``g_target < floor`` (the core) the potential is a steep straight wall; over the last
    10 % of the range it is tapered by cos^2 to zero at the cutoff."""
    r, gt = np.asarray(r, float), np.asarray(g_target, float)
    _ibi_check(r, gt, gt, cutoff)
    ok = gt > floor
    if not np.any(ok):
        raise SetupError("the target g(r) must exceed the floor somewhere and reach the cutoff",
                         fix="sample the target RDF out to the cutoff")
    grid = _ibi_grid(r, cutoff)
    pmf = np.interp(grid, r[ok], -kT * np.log(gt[ok]))
    return _ibi_table(grid, (pmf - pmf[-1]) * _ibi_taper(grid, cutoff), float(r[ok][0]), kT, name)


def ibi_update(potential: PairPotential, r: np.ndarray, g: np.ndarray, g_target: np.ndarray, kT: float, *,
               damping: float = 1.0, floor: float = 0.02) -> PairPotential:
    """One iterative-Boltzmann-inversion step, ``V <- V + damping kT ln(g / g_target)``, on the
    potential's own table (``r``, ``g``, ``g_target`` as in :func:`ibi_initial`; the logarithm of
    the ratio smoothed over three bins).  Returns the new tabulated potential; the deviation to
    watch is ``max |g - g_target|``."""
    r, g, gt = (np.asarray(a, float) for a in (r, g, g_target))
    if potential.table is None or not (0 < damping <= 1):
        raise SetupError("ibi_update needs a tabulated potential (from ibi_initial) and 0 < damping <= 1",
                         fix="start with ibi_initial(r, g_target, kT, cutoff)")
    name, _, cutoff, _ = potential.table
    _ibi_check(r, g, gt, cutoff)
    ok = gt > floor                   # where the target has pairs; a model with too few there is pushed in
    if not np.any(ok):
        raise SetupError("the target g(r) never exceeds the floor", fix="sample the target RDF out to the cutoff")
    grid = _ibi_grid(r, cutoff)
    ratio = np.log(np.maximum(g, floor) / np.maximum(gt, floor))
    k0 = int(np.argmax(ok))
    sm = ratio.copy()                 # three-bin running mean over the target's range only
    sm[k0 + 1:-1] = (ratio[k0:-2] + ratio[k0 + 1:-1] + ratio[k0 + 2:]) / 3
    ratio = sm
    dV = damping * kT * np.interp(grid, r[ok], ratio[ok])
    V = potential.energy(grid) + (dV - dV[-1]) * _ibi_taper(grid, cutoff)
    V[-1] = 0.0
    return _ibi_table(grid, V, float(r[ok][0]), kT, name)
