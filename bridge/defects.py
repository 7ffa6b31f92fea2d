"""Point defects from atomistic snapshots, and the damage references they are judged against.

- :func:`bcc_sites` -- the perfect BCC lattice of a box of unit cells.
- :func:`wigner_seitz` -- Wigner–Seitz occupancy: every atom belongs to its nearest reference
  site (a nearest-neighbour query on a periodic KD-tree, which is exactly the Wigner–Seitz cell
  test), so a site with no atom is a vacancy and every atom beyond the first on a site is an
  interstitial.  The number of vacancies minus interstitials is the number of sites minus the
  number of atoms, exactly.
- :func:`defect_clusters` -- clusters of like defects by connectivity (a cutoff, periodic).
- :func:`kmc_objects` -- the hand-off: one KMC object per cluster, at its periodic centroid,
  with signed size (+n vacancies, -n interstitials).
- :class:`CascadeLibrary` -- cascades reused with random cubic symmetry operations (MMonCa style).
- :func:`nrt_dpa`, :func:`arc_dpa` -- the Norgett–Robinson–Torrens and athermal-recombination-
  corrected (Nordlund et al. 2018) numbers of Frenkel pairs for a damage energy.

Units: nm, eV.  ``box``: (3,) orthorhombic lengths, the box spanning [0, L); ``periodic``
per axis (a non-periodic axis is not wrapped).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from .errors import SetupError

__all__ = ["wrap", "bcc_sites", "wigner_seitz", "WignerSeitz", "defect_clusters", "kmc_objects", "nrt_dpa", "arc_dpa",
           "cubic_symmetry", "Cascade", "CascadeLibrary"]


def bcc_sites(a: float, cells) -> np.ndarray:
    """(2 nx ny nz, 3) nm sites of a BCC lattice of constant ``a`` filling ``cells`` (3,) unit cells."""
    n = np.asarray(cells, int).reshape(3)
    if not (a > 0 and np.all(n >= 1)):
        raise SetupError(f"need a > 0 and at least one cell per axis, got a = {a}, cells = {n}",
                         fix="pass the lattice constant in nm and (nx, ny, nz)")
    g = np.stack(np.meshgrid(*[np.arange(k) for k in n], indexing="ij"), -1).reshape(-1, 3).astype(float)
    return np.concatenate([g, g + 0.5]) * a


def wrap(x, box, periodic=(True, True, True)) -> np.ndarray:
    """A copy of ``x`` (..., 3) with the periodic axes wrapped into [0, L) -- strictly: a tiny
    negative coordinate, which ``x - L floor(x / L)`` turns into exactly ``L`` in floating point,
    goes to 0 (KD-trees with ``boxsize`` and OpenMM's cell lists refuse or mis-handle ``L``)."""
    L = np.asarray(box, float).reshape(3)
    per = np.asarray(periodic, bool).reshape(3)
    x = np.array(x, float)
    w = x[..., per] - L[per] * np.floor(x[..., per] / L[per])
    x[..., per] = np.where(w >= L[per], 0.0, w)
    return x


def _box(box, periodic, *arrays):
    L = np.asarray(box, float).reshape(3)
    per = np.asarray(periodic, bool).reshape(3)
    if not (np.all(np.isfinite(L)) and np.all(L > 0)):
        raise SetupError(f"box lengths must be positive nm, got {L}", fix="pass (Lx, Ly, Lz) in nm")
    out = []
    for A in arrays:
        A = np.asarray(A, float).reshape(-1, 3)
        if not np.all(np.isfinite(A)):
            raise SetupError("positions contain NaN or inf", fix="pass finite positions in nm")
        out.append(wrap(A, L, per))
    return L, per, out


def _tree(points, L, per):
    if per.all():
        return cKDTree(points, boxsize=L)
    if per.any():
        raise SetupError("mixed periodic and non-periodic axes are not supported by the Wigner–Seitz analysis",
                         fix="pass periodic=(True, True, True) or (False, False, False)")
    return cKDTree(points)


@dataclass
class WignerSeitz:
    """Result of :func:`wigner_seitz`: ``occupancy`` (m,) atoms per site, ``site`` (n,) site of each
    atom, ``vacancies`` (k,) empty site indices, ``interstitials`` (l,) indices of the surplus atoms
    (on each multiply occupied site, every atom but the one nearest the site)."""

    occupancy: np.ndarray
    site: np.ndarray
    vacancies: np.ndarray
    interstitials: np.ndarray


def wigner_seitz(reference, positions, box, periodic=(True, True, True)) -> WignerSeitz:
    """Wigner–Seitz analysis of ``positions`` (n, 3) nm against the perfect sites ``reference`` (m, 3) nm."""
    L, per, (R, X) = _box(box, periodic, reference, positions)
    if len(R) == 0:
        raise SetupError("no reference sites", fix="pass the perfect lattice, e.g. bcc_sites(a, cells)")
    dist, site = _tree(R, L, per).query(X)
    occ = np.bincount(site, minlength=len(R))
    # surplus atoms: sort atoms by (site, distance); all but the first of each site
    order = np.lexsort((dist, site))
    first = np.ones(len(order), bool)
    first[1:] = site[order][1:] != site[order][:-1]
    return WignerSeitz(occ, site, np.flatnonzero(occ == 0), np.sort(order[~first]))


def defect_clusters(points, box, cutoff: float, periodic=(True, True, True)) -> np.ndarray:
    """(k,) cluster label of each point: points within ``cutoff`` nm are connected.

    For BCC defects take a cutoff between the second- and third-neighbour distances (``a`` and
    ``a sqrt(2)``), e.g. ``1.1 a``: not exactly ``a``, where rounding decides.
    """
    L, per, (P,) = _box(box, periodic, points)
    if not cutoff > 0:
        raise SetupError(f"cutoff must be positive, got {cutoff}", fix="e.g. the second-neighbour distance")
    if len(P) == 0:
        return np.zeros(0, np.int64)
    pairs = _tree(P, L, per).query_pairs(cutoff, output_type="ndarray")
    g = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(len(P), len(P)))
    return connected_components(g, directed=False)[1].astype(np.int64)


def _centroid(P, L, per, cutoff):
    """Centroid of one connected cluster, unwrapped along its bonds (it may span more than L / 2)."""
    from scipy.sparse.csgraph import breadth_first_order

    if len(P) == 1:
        return P[0].copy()
    pairs = _tree(P, L, per).query_pairs(cutoff, output_type="ndarray")
    g = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(len(P), len(P)))
    order, pred = breadth_first_order(g, 0, directed=False)
    U = P.copy()
    for i in order[1:]:
        d = P[i] - P[pred[i]]
        d[per] -= L[per] * np.round(d[per] / L[per])
        U[i] = U[pred[i]] + d
    return wrap(U.mean(0), L, per)


def kmc_objects(vacancies, interstitials, box, cutoff: float, periodic=(True, True, True)
                ) -> tuple[np.ndarray, np.ndarray]:
    """The MD -> KMC hand-off: ``(positions (k, 3) nm, sizes (k,))``, one object per cluster.

    Vacancies (k_v, 3) and interstitials (k_i, 3) nm are clustered separately (``cutoff``); a
    cluster of n vacancies becomes size +n, of n interstitials -n, at the cluster's centroid.
    The total of the sizes is ``k_v - k_i`` exactly.
    """
    out_p, out_s = [], []
    for pts, sign in ((vacancies, 1), (interstitials, -1)):
        L, per, (P,) = _box(box, periodic, pts)
        if len(P) == 0:
            continue
        lab = defect_clusters(P, L, cutoff, per)
        for c in range(lab.max() + 1):
            members = P[lab == c]
            out_p.append(_centroid(members, L, per, cutoff))
            out_s.append(sign * len(members))
    if not out_p:
        return np.zeros((0, 3)), np.zeros(0, np.int64)
    return np.array(out_p), np.array(out_s, np.int64)


def nrt_dpa(damage_energy: float, displacement_energy: float = 40.0) -> float:
    """NRT Frenkel pairs: 0 below E_d, 1 up to 2 E_d / 0.8, then 0.8 T_d / (2 E_d)."""
    T, Ed = float(damage_energy), float(displacement_energy)
    if not (T >= 0 and Ed > 0):
        raise SetupError("damage energy must be >= 0 eV and E_d > 0 eV", fix="pass eV, e.g. nrt_dpa(1e4, 40)")
    if T < Ed:
        return 0.0
    if T < 2 * Ed / 0.8:
        return 1.0
    return 0.8 * T / (2 * Ed)


def arc_dpa(damage_energy: float, displacement_energy: float = 40.0, b: float = -0.568, c: float = 0.286) -> float:
    """arc-dpa Frenkel pairs: NRT times ``xi = (1 - c) / (2 E_d / 0.8)^b T_d^b + c`` (Fe defaults)."""
    T, Ed = float(damage_energy), float(displacement_energy)
    n = nrt_dpa(T, Ed)
    if T < 2 * Ed / 0.8:
        return n
    return n * ((1 - c) / (2 * Ed / 0.8) ** b * T ** b + c)


def cubic_symmetry() -> np.ndarray:
    """(48, 3, 3) the point-group operations of a cubic crystal (signed permutation matrices)."""
    from itertools import permutations, product

    ops = []
    for perm in permutations(range(3)):
        for signs in product((1, -1), repeat=3):
            M = np.zeros((3, 3))
            for row, (col, sg) in enumerate(zip(perm, signs)):
                M[row, col] = sg
            ops.append(M)
    return np.array(ops)


@dataclass
class Cascade:
    """One cascade's surviving defects: ``positions`` (k, 3) nm relative to its centre, signed
    ``sizes`` (k,), and the ``damage_energy`` (eV) that made it (for the NRT dose)."""

    positions: np.ndarray
    sizes: np.ndarray
    damage_energy: float


class CascadeLibrary:
    """Cascades to be reused MMonCa style: each draw is one of them, turned by a random cubic
    symmetry operation (the crystal's, so the defects stay on a consistent lattice).

    ``displacement_energy`` (eV) sets each cascade's NRT count, which the dose (dpa) counts.
    """

    def __init__(self, cascades, displacement_energy: float = 40.0):
        self.cascades = list(cascades)
        if not self.cascades:
            raise SetupError("the cascade library is empty", fix="add at least one Cascade")
        for c in self.cascades:
            P, n = np.asarray(c.positions, float).reshape(-1, 3), np.asarray(c.sizes).reshape(-1)
            if (len(P) != len(n) or not np.all(np.isfinite(P)) or not np.issubdtype(n.dtype, np.integer)
                    or np.any(n == 0) or int(n.sum()) != 0 or not c.damage_energy > 0):
                raise SetupError("each cascade needs finite positions, one nonzero integer size each, as many "
                                 "vacancies as interstitials and a positive damage energy",
                                 fix="build cascades from a Wigner–Seitz hand-off of a closed box")
        self.nrt = np.array([nrt_dpa(c.damage_energy, displacement_energy) for c in self.cascades])
        if not np.all(self.nrt > 0):
            raise SetupError("a cascade's damage energy is below the displacement energy",
                             fix="use damage energies above E_d (40 eV for Fe)")
        self._ops = cubic_symmetry()

    def draw(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, float]:
        """(positions (k, 3) nm about the origin, sizes (k,), NRT displacements) of a random cascade."""
        i = int(rng.integers(len(self.cascades)))
        c = self.cascades[i]
        op = self._ops[int(rng.integers(len(self._ops)))]
        return np.asarray(c.positions, float) @ op.T, np.asarray(c.sizes, np.int64).copy(), float(self.nrt[i])

    @property
    def mean_nrt(self) -> float:
        return float(self.nrt.mean())
