"""Atomistic–continuum handshake: a bonded crystal region blended into a P1 Cauchy–Born continuum.

The coupled energy (bridging-domain / Arlequin family, blended bond by bond)

    Pi(x, u) = sum_b alpha_b phi(|x_j - x_i|)                 atoms
             + sum_e sum_f kappa_ef phi(|F_e R_f|)             continuum (Cauchy–Born)

    kappa_ef = sum_{b in family f} (1 - alpha_b) |b & e| / |b|

- ``x`` (n, d) nm: atom positions; bond ``b = (i, j)`` has reference vector ``R_b = X_j - X_i``
  of lattice family ``R_f`` and weight ``alpha_b = alpha((X_i + X_j) / 2)`` in [0, 1] (0 for
  bonds of the infinite lattice that are not between two atoms).
- ``u`` (nodes, d) nm: P1 displacement of the continuum mesh, ``F_e = I + grad u`` on cell ``e``.
- ``kappa_ef``: the continuum's share of the lattice bonds, each bond counted by the fraction of
  its length that lies in the cell (the bond density).  Where no atom is, this is the number of
  bonds of family f per cell, and ``sum_f kappa_ef phi(|F R_f|)`` the cell's Cauchy–Born energy
  (exactly ``|e| / Omega`` bonds per family in 1-D and for cells whose vertices are lattice
  sites, Shapeev's bond-density lemma; within one lattice line per cell otherwise).  Every bond
  is shared between the two descriptions with weights ``alpha_b`` and ``1 - alpha_b`` that sum
  to one.

Why this passes the patch test.  For P1 fields the continuum part of a bond is ``phi(|F_e R|)``
integrated along the bond, whose derivative is the bond force times the difference of the nodal
shape functions at its two ends.  Under a homogeneous ``F`` every bond of a family carries the
same force, so the forces on any degree of freedom telescope over the lattice lines and cancel
-- for any mesh and any weights -- provided every atom with a bond of continuum weight > 0 is
tied to the mesh and those bonds lie wholly in the mesh (both checked here).  No correction
weights are needed.  ``continuum="blended"`` gives the textbook energy blending ``(1 -
alpha(x_e)) |e| W_CB(F_e)`` for comparison; it has ghost forces.

Constraints (Lagrange multipliers) tie the tied atoms (those inside the mesh) to the continuum:

- ``"atomwise"``: ``x_I - X_I = u^h(X_I)`` for every tied atom -- exact at the atoms (at the nodes
  of a mesh that matches the lattice).  Every fine-scale motion in the overlap is locked, so waves
  the mesh cannot carry reflect there; the affine patch test holds to round-off on any mesh.
- ``"l2"``: ``sum_I N_J(X_I) (x_I - X_I - u^h(X_I)) = 0`` for every node ``J`` whose support is
  at least half covered by tied atoms -- the L2 projection of the atoms' displacement onto those
  nodes equals ``u`` (nodes at the ragged edge of the atoms, touching a corner of them, stay free,
  so the projection is never singular).  Only
  the coarse scale is tied, the fine scale moves freely in the overlap (and can be damped there,
  see :class:`HandshakeDynamics`), at the price of a small fine-scale ghost force where the bond
  weights vary (reported by :meth:`Handshake.ghost_forces`).

Requirements (checked, :class:`~bridge.errors.SetupError` otherwise): every bond with weight
below one has both atoms inside the mesh and lies wholly in it, so the mesh must reach at least
one cutoff into the region where ``alpha = 1`` (the buffer) and its hole must stay inside that
region; lattice sites without atoms (a void, the crystal's surface) stay one cutoff away from
the mesh; in ``"l2"`` mode the projection onto the covered nodes is well conditioned (elements
of two or more spacings).

Units: nm, kJ/mol, amu, ps.  Bonds are fixed at the reference lattice (no bond breaking), as in
the quasicontinuum benchmarks; the continuum uses exactly the same bond families, so atoms and
continuum agree for every uniform strain.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from scipy.optimize import brentq, minimize
from scipy.spatial import cKDTree

from .errors import CalculationError, SetupError
from .lattice import PairPotential

_log = logging.getLogger(__name__)

__all__ = [
    "lattice_families", "equilibrium_spacing", "lattice_sites", "hexagon_sites", "lattice_mesh",
    "BondedLattice", "P1Mesh", "relax_lattice",
    "Handshake", "NumpyLatticeEngine", "HandshakeDynamics", "right_moving_velocities",
]

CONSTRAINTS = ("atomwise", "l2")


# -- lattices ------------------------------------------------------------------------------
def lattice_families(kind: str, shells: int) -> np.ndarray:
    """Half set of lattice vectors (one of each ``+-R``) of the first ``shells`` neighbour shells.

    ``kind``: ``"chain"`` (1-D), ``"triangular"`` or ``"square"`` (2-D); vectors in units of the
    nearest-neighbour spacing, shape ``(families, d)``.
    """
    basis = {"chain": np.array([[1.0]]),
             "triangular": np.array([[1.0, 0.0], [0.5, np.sqrt(3.0) / 2]]),
             "square": np.eye(2)}
    if kind not in basis:
        raise SetupError(f"unknown lattice kind {kind!r}", fix="use 'chain', 'triangular' or 'square'")
    if int(shells) < 1:
        raise SetupError(f"shells must be >= 1, got {shells}", fix="pass shells=1 (nearest neighbours) or more")
    B = basis[kind]
    d = B.shape[0]
    n = int(shells) + 2
    rng = np.arange(-n, n + 1)
    ij = np.stack(np.meshgrid(*([rng] * d), indexing="ij"), -1).reshape(-1, d)
    R = ij @ B
    r = np.round(np.linalg.norm(R, axis=1), 9)
    radii = np.unique(r[r > 0])[: int(shells)]
    keep = (r > 0) & (r <= radii[-1] + 1e-9)
    R = R[keep]
    # canonical half: first nonzero component positive
    first = np.array([row[np.flatnonzero(np.abs(row) > 1e-9)[0]] for row in R])
    return R[first > 0]


def equilibrium_spacing(pot: PairPotential, families: np.ndarray, guess: float) -> float:
    """Nearest-neighbour spacing (nm) at zero stress of the bonded lattice ``families`` (units of a)."""
    rho = np.linalg.norm(families, axis=1)

    def stress(a):
        return float(np.sum(rho * pot.dphi(a * rho)))

    try:
        return float(brentq(stress, 0.8 * guess, 1.2 * guess, xtol=1e-15 * guess, rtol=4 * np.finfo(float).eps))
    except ValueError as exc:
        raise SetupError(f"no zero-stress spacing within 20 % of {guess} nm", fix="pass a closer guess") from exc


def lattice_sites(kind: str, a: float, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """Sites ``(n, d)`` nm of the lattice of spacing ``a`` (origin at 0) inside the box [lower, upper]."""
    lower, upper = np.atleast_1d(np.asarray(lower, float)), np.atleast_1d(np.asarray(upper, float))
    if kind == "chain":
        i = np.arange(np.ceil(lower[0] / a - 1e-9), np.floor(upper[0] / a + 1e-9) + 1)
        return (i * a)[:, None]
    if kind == "square":
        B = np.eye(2) * a
    elif kind == "triangular":
        B = np.array([[1.0, 0.0], [0.5, np.sqrt(3.0) / 2]]) * a
    else:
        raise SetupError(f"unknown lattice kind {kind!r}", fix="use 'chain', 'triangular' or 'square'")
    span = np.max(np.abs(np.concatenate([lower, upper]))) / (a * 0.5) + 2
    rng = np.arange(-np.ceil(span), np.ceil(span) + 1)
    ij = np.stack(np.meshgrid(rng, rng, indexing="ij"), -1).reshape(-1, 2)
    X = ij @ B
    tol = 1e-9 * a
    inside = np.all((X >= lower - tol) & (X <= upper + tol), axis=1)
    X = X[inside]
    return X[np.lexsort(X.T[::-1])]


def hexagon_sites(a: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Sites of a triangular lattice filling the hexagon of side ``n`` spacings centred on a site.

    Returns ``X`` (m, 2) nm and the integer lattice coordinates ``ij`` (m, 2) with
    ``X = i a1 + j a2``, ``a1 = a (1, 0)``, ``a2 = a (1/2, sqrt(3)/2)``; the edges run along
    lattice rows, so every sub-lattice of step ``k`` dividing ``n`` has sites on the corners and edges.
    """
    if int(n) < 1 or not (np.isfinite(a) and a > 0):
        raise SetupError(f"need a > 0 and n >= 1, got a = {a}, n = {n}", fix="pass the spacing (nm) and the side")
    r = np.arange(-int(n), int(n) + 1)
    ij = np.stack(np.meshgrid(r, r, indexing="ij"), -1).reshape(-1, 2)
    ij = ij[np.abs(ij[:, 0] + ij[:, 1]) <= int(n)]
    B = np.array([[1.0, 0.0], [0.5, np.sqrt(3.0) / 2]]) * a
    return ij @ B, ij


def lattice_mesh(X: np.ndarray, ij: np.ndarray, step: Callable[[np.ndarray], np.ndarray],
                 hole: Callable[[np.ndarray], np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A graded triangle mesh whose vertices are lattice sites (quasicontinuum representative atoms).

    ``X`` (m, 2) nm and ``ij`` (m, 2) int: the sites (:func:`hexagon_sites`); ``step(X) -> (m,)``:
    the wanted element size in spacings, rounded down to a power of two ``k``; a site is a vertex
    when both lattice coordinates are multiples of its ``k`` (nested sub-lattices, so the grading
    needs no transition elements).  ``hole(points) -> bool``: cells whose centroid is in the hole
    are dropped (the atomistic core).  Returns ``nodes`` (nn, 2) nm and ``cells`` (ne, 3): the
    Delaunay triangulation of the vertices, degenerate cells removed.
    """
    from scipy.spatial import Delaunay

    X, ij = np.asarray(X, float), np.asarray(ij, np.int64)
    k = np.asarray(step(X), float)
    if not np.all(np.isfinite(k)) or k.min() < 1:
        raise SetupError("step must return finite element sizes >= 1 spacing", fix="return values >= 1")
    k = 2 ** np.floor(np.log2(k)).astype(np.int64)
    vert = np.all(ij % k[:, None] == 0, axis=1)
    P = X[vert]
    tri = Delaunay(P).simplices
    v = P[tri]
    area = 0.5 * np.abs((v[:, 1, 0] - v[:, 0, 0]) * (v[:, 2, 1] - v[:, 0, 1])
                        - (v[:, 1, 1] - v[:, 0, 1]) * (v[:, 2, 0] - v[:, 0, 0]))
    a2 = np.min(np.linalg.norm(X[1:] - X[0], axis=1)) ** 2
    keep = area > 1e-6 * a2
    if hole is not None:
        keep &= ~np.asarray(hole(v.mean(1)), bool)
    tri = tri[keep]
    used = np.unique(tri)
    new = -np.ones(len(P), np.int64)
    new[used] = np.arange(used.size)
    return P[used], new[tri]


@dataclass
class BondedLattice:
    """A crystal with a fixed bond list: reference sites, bonds and their lattice families.

    positions : (n, d) nm reference sites; bonds : (nb, 2) int, oriented so that
    ``X_j - X_i = a * families[family[b]]``; family : (nb,) int; families : (nf, d) in units of a;
    a : nm nearest-neighbour spacing.
    """

    positions: np.ndarray
    bonds: np.ndarray
    family: np.ndarray
    families: np.ndarray
    a: float

    @classmethod
    def build(cls, positions: np.ndarray, families: np.ndarray, a: float) -> "BondedLattice":
        """Bonds of every family between the given sites (a site missing its partner loses that bond)."""
        X = np.asarray(positions, float)
        if X.ndim != 2 or X.shape[1] != families.shape[1] or not np.all(np.isfinite(X)):
            raise SetupError(f"positions must be finite (n, {families.shape[1]}) nm, got shape {X.shape}",
                             fix="pass reference lattice sites from lattice_sites()")
        tree = cKDTree(X)
        bonds, fam = [], []
        for f, R in enumerate(families):
            d, j = tree.query(X + a * R, distance_upper_bound=1e-6 * a)
            ok = np.isfinite(d)
            i = np.flatnonzero(ok)
            bonds.append(np.stack([i, j[ok]], 1))
            fam.append(np.full(i.size, f))
        return cls(X, np.concatenate(bonds).astype(np.int64), np.concatenate(fam), np.asarray(families, float),
                   float(a))

    @property
    def dim(self) -> int:
        return self.positions.shape[1]

    def subset(self, keep: np.ndarray) -> "BondedLattice":
        """The lattice restricted to the sites where ``keep`` is True (bonds to removed sites dropped)."""
        keep = np.asarray(keep, bool)
        new = -np.ones(len(keep), np.int64)
        new[keep] = np.arange(int(keep.sum()))
        ok = keep[self.bonds[:, 0]] & keep[self.bonds[:, 1]]
        return BondedLattice(self.positions[keep], new[self.bonds[ok]], self.family[ok], self.families, self.a)

    def energy_forces(self, x: np.ndarray, pot: PairPotential, weights: np.ndarray) -> tuple[float, np.ndarray]:
        """``sum_b w_b phi(|x_j - x_i|)`` (kJ/mol) and forces ``(n, d)`` kJ/(mol nm), in NumPy."""
        i, j = self.bonds[:, 0], self.bonds[:, 1]
        y = x[j] - x[i]
        r = np.linalg.norm(y, axis=1)
        t = (weights * pot.dphi(r) / r)[:, None] * y
        f = np.zeros_like(x)
        np.add.at(f, i, t)
        np.subtract.at(f, j, t)
        return float(np.sum(weights * pot.phi(r))), f

    def complete(self) -> np.ndarray:
        """(n,) bool: the site has every bond of every family in both directions."""
        count = np.bincount(self.bonds.ravel(), minlength=len(self.positions))
        return count == 2 * len(self.families)


# -- P1 meshes -----------------------------------------------------------------------------
class P1Mesh:
    """A simplex mesh (intervals in 1-D, triangles in 2-D) carrying a P1 vector field.

    nodes : (nn, d) nm; cells : (ne, d + 1) node indices.  DOLFINx meshes come in through
    :func:`bridge_adapters.dolfinx.handshake.p1_mesh` (the P1 dof layout of a function space).
    """

    def __init__(self, nodes: np.ndarray, cells: np.ndarray):
        self.nodes = np.asarray(nodes, float)
        if self.nodes.ndim == 1:
            self.nodes = self.nodes[:, None]
        self.cells = np.asarray(cells, np.int64)
        d = self.nodes.shape[1]
        if self.cells.ndim != 2 or self.cells.shape[1] != d + 1:
            raise SetupError(f"cells must be (ne, {d + 1}) for {d}-D nodes, got {self.cells.shape}",
                             fix="pass intervals in 1-D, triangles in 2-D")
        if not np.all(np.isfinite(self.nodes)) or self.cells.min() < 0 or self.cells.max() >= len(self.nodes):
            raise SetupError("mesh nodes must be finite and cells must index existing nodes",
                             fix="build the mesh with DOLFINx or check the connectivity")
        p = self.nodes[self.cells]                        # (ne, d+1, d)
        T = np.transpose(p[:, 1:] - p[:, :1], (0, 2, 1))   # (ne, d, d) columns = edges
        det = np.linalg.det(T)
        if np.any(np.abs(det) < 1e-14 * np.max(np.abs(det))):
            raise SetupError("the mesh has degenerate cells", fix="remesh without zero-size cells")
        self.Tinv = np.linalg.inv(T)                       # rows = gradients of lambda_1..d
        g = np.concatenate([-self.Tinv.sum(1, keepdims=True), self.Tinv], 1)
        self.grads = g                                     # (ne, d+1, d)
        self.volume = np.abs(det) / (1.0 if d == 1 else 2.0)
        self.centroids = p.mean(1)
        self._tree = cKDTree(self.centroids)
        self.h = float(np.max(np.linalg.norm(p[:, 1:] - p[:, :1], axis=2)))

    @property
    def dim(self) -> int:
        return self.nodes.shape[1]

    def locate(self, points: np.ndarray, k: int = 24) -> tuple[np.ndarray, np.ndarray]:
        """Cell (``-1`` outside) and barycentric coordinates ``(m, d+1)`` of each point."""
        pts = np.asarray(points, float).reshape(-1, self.dim)
        cell = -np.ones(len(pts), np.int64)
        bary = np.zeros((len(pts), self.dim + 1))
        k = min(k, len(self.cells))
        _, cand = self._tree.query(pts, k=k)
        cand = cand.reshape(len(pts), k)
        tol = 1e-10
        for c in range(k):
            todo = cell < 0
            if not todo.any():
                break
            e = cand[todo, c]
            lam = np.einsum("mij,mj->mi", self.Tinv[e], pts[todo] - self.nodes[self.cells[e, 0]])
            lam = np.concatenate([1 - lam.sum(1, keepdims=True), lam], 1)
            ok = np.all(lam >= -tol, axis=1)
            idx = np.flatnonzero(todo)[ok]
            cell[idx] = e[ok]
            bary[idx] = lam[ok]
        return cell, bary

    def interpolation(self, points: np.ndarray) -> sp.csr_matrix:
        """Sparse ``(m, nn)`` matrix N with ``u^h(points) = N @ u``; every point must be inside."""
        cell, bary = self.locate(points)
        if np.any(cell < 0):
            bad = np.asarray(points).reshape(-1, self.dim)[cell < 0][0]
            raise SetupError(f"{int(np.sum(cell < 0))} point(s) lie outside the mesh, e.g. {bad}",
                             fix="extend the mesh over every atom that is to be tied to it")
        m = len(cell)
        rows = np.repeat(np.arange(m), self.dim + 1)
        return sp.csr_matrix((bary.ravel(), (rows, self.cells[cell].ravel())), shape=(m, len(self.nodes)))

    def boundary_nodes(self) -> np.ndarray:
        """Indices of the nodes on the mesh boundary (facets used by one cell)."""
        d = self.dim
        if d == 1:
            count = np.bincount(self.cells.ravel(), minlength=len(self.nodes))
            return np.flatnonzero(count == 1)
        edges = np.sort(np.concatenate([self.cells[:, [0, 1]], self.cells[:, [1, 2]], self.cells[:, [0, 2]]]), 1)
        uniq, cnt = np.unique(edges, axis=0, return_counts=True)
        return np.unique(uniq[cnt == 1].ravel())

    def lumped_mass(self, density: np.ndarray) -> np.ndarray:
        """Row-sum lumped P1 mass (nn,) for a per-cell density ``(ne,)`` (mass per area/length)."""
        m = np.zeros(len(self.nodes))
        np.add.at(m, self.cells.ravel(), np.repeat(density * self.volume / (self.dim + 1), self.dim + 1))
        return m


# -- bond density: how much of each lattice bond lies in each cell --------------------------
def _lattice_basis(families: np.ndarray, a: float) -> np.ndarray:
    """(d, d) rows: a primitive basis of the lattice spanned by the bond families (nm)."""
    d = families.shape[1]
    R = families[np.argsort(np.linalg.norm(families, axis=1), kind="stable")] * a
    if d == 1:
        return R[:1]
    for k in range(1, len(R)):
        if abs(np.linalg.det(np.stack([R[0], R[k]]))) > 1e-9 * a * a:
            return np.stack([R[0], R[k]])
    raise SetupError("bond families do not span the plane", fix="use shells >= 1 of a 2-D lattice")


def _primitive_length(R: np.ndarray, basis: np.ndarray) -> float:
    """Length (nm) of the shortest lattice vector parallel to ``R`` (``R`` itself unless R = k R')."""
    coef = np.linalg.solve(basis.T, R)
    k = int(np.gcd.reduce(np.abs(np.rint(coef)).astype(np.int64)))
    return float(np.linalg.norm(R)) / max(k, 1)


def _family_chords(mesh: "P1Mesh", R: np.ndarray, prim: float, omega: float, origin: np.ndarray,
                   tol: float) -> np.ndarray:
    """(ne,) number of bonds of family ``R`` per cell, counted by length, for the infinite lattice.

    The bonds of one family tile the lattice lines parallel to ``R`` (spacing ``omega / prim``
    apart, each point covered ``|R| / prim`` times), so the count is the summed chord length of
    the cell along those lines over ``prim``.  A line lying on an edge counts half in each of the
    two cells, the same rule as :func:`_segment_cells`.
    In 1-D, and for triangles whose vertices are lattice sites (Shapeev's bond-density lemma),
    this is exactly ``|e| / omega``: the Cauchy–Born weight.
    """
    if mesh.dim == 1:
        return mesh.volume / prim
    rh = R / np.linalg.norm(R)
    nh = np.array([-rh[1], rh[0]])
    s = np.sort(mesh.nodes[mesh.cells] @ nh, axis=1)
    s1, s2, s3 = s[:, 0], s[:, 1], s[:, 2]
    gap, s0 = omega / prim, float(origin @ nh)
    lo = np.ceil((s1 - s0 - tol) / gap).astype(np.int64)
    hi = np.floor((s3 - s0 + tol) / gap).astype(np.int64)
    count = np.maximum(hi - lo + 1, 0)
    e = np.repeat(np.arange(len(s)), count)
    m = lo[e] + np.arange(e.size) - np.repeat(np.cumsum(count) - count, count)
    sv = s0 + m * gap
    top = 2 * mesh.volume[e] / (s3[e] - s1[e])
    rise = np.clip((sv - s1[e]) / np.maximum(s2[e] - s1[e], tol), 0.0, 1.0)
    fall = np.clip((s3[e] - sv) / np.maximum(s3[e] - s2[e], tol), 0.0, 1.0)
    chord = top * np.where(sv >= s2[e], fall, rise)
    # a line through the lowest or highest vertex: a vertex (chord 0) or an edge (shared, half)
    at_edge = np.abs(sv - s1[e]) <= tol
    chord = np.where(at_edge, np.where(s2[e] - s1[e] <= tol, 0.5 * top, 0.0), chord)
    at_edge = np.abs(sv - s3[e]) <= tol
    chord = np.where(at_edge, np.where(s3[e] - s2[e] <= tol, 0.5 * top, 0.0), chord)
    return np.bincount(e, chord, minlength=len(s)) / prim


def _segment_cells(mesh: "P1Mesh", P: np.ndarray, Q: np.ndarray,
                   tol: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fractions of the segments ``P -> Q`` (m, d) inside each cell.

    Returns ``(segment, cell, fraction)`` for every pair with a positive fraction; a segment
    lying on an edge counts half in each of the two cells.
    """
    L = np.linalg.norm(Q - P, axis=1)
    rho = np.linalg.norm(mesh.nodes[mesh.cells] - mesh.centroids[:, None], axis=2).max(1)
    tree = cKDTree(0.5 * (P + Q))
    near = tree.query_ball_point(mesh.centroids, rho + 0.5 * L.max() + tol)
    cnt = np.fromiter((len(n) for n in near), np.int64, len(near))
    cell = np.repeat(np.arange(len(near)), cnt)
    seg = np.fromiter((i for n in near for i in n), np.int64, int(cnt.sum()))
    if seg.size == 0:
        return seg, cell, np.zeros(0)
    p, q = P[seg], Q[seg]
    V = mesh.nodes[mesh.cells[cell]]
    if mesh.dim == 1:
        a0, a1 = np.minimum(p, q)[:, 0], np.maximum(p, q)[:, 0]
        b0, b1 = V.min(1)[:, 0], V.max(1)[:, 0]
        frac = np.clip(np.minimum(a1, b1) - np.maximum(a0, b0), 0.0, None) / L[seg]
    else:
        lo, hi, share = np.zeros(seg.size), np.ones(seg.size), np.ones(seg.size)
        area = ((V[:, 1, 0] - V[:, 0, 0]) * (V[:, 2, 1] - V[:, 0, 1])
                - (V[:, 1, 1] - V[:, 0, 1]) * (V[:, 2, 0] - V[:, 0, 0]))
        sign = np.sign(area)
        for k0, k1 in ((0, 1), (1, 2), (2, 0)):
            edge = V[:, k1] - V[:, k0]
            m = sign[:, None] * np.stack([-edge[:, 1], edge[:, 0]], 1)
            m /= np.linalg.norm(m, axis=1)[:, None]                       # inward unit normal
            g0 = np.einsum("ij,ij->i", p - V[:, k0], m)
            gr = np.einsum("ij,ij->i", q - p, m)
            par = np.abs(gr) <= tol
            on = par & (np.abs(g0) <= tol)
            share = np.where(on, 0.5, share)
            hi = np.where(par & ~on & (g0 < 0), -1.0, hi)
            tc = -g0 / np.where(par, 1.0, gr)
            lo = np.where(~par & (gr > 0), np.maximum(lo, tc), lo)
            hi = np.where(~par & (gr < 0), np.minimum(hi, tc), hi)
        frac = share * np.clip(hi - lo, 0.0, None)
    ok = frac > 0
    return seg[ok], cell[ok], frac[ok]


# -- the coupled model ---------------------------------------------------------------------
def _weights(weight: Any, X: np.ndarray) -> np.ndarray:
    if hasattr(weight, "weights"):
        pad = np.zeros((len(X), 3))
        pad[:, : X.shape[1]] = X
        w = weight.weights(pad)
    elif callable(weight):
        w = weight(X)
    else:
        raise SetupError("weight must be a zone (bridge.zones) or a callable of (n, d) positions",
                         fix="pass e.g. bridge.zones.Slab(...) or lambda X: ...")
    w = np.asarray(w, float).reshape(len(X))
    if not np.all(np.isfinite(w)) or w.min() < 0 or w.max() > 1:
        raise SetupError("blending weights must be finite and in [0, 1]",
                         fix="use a weight function that goes from 1 (atoms) to 0 (continuum)")
    return w


class Handshake:
    """The coupled atomistic–continuum energy, its constraints and its patch-test ghost forces.

    Parameters
    ----------
    lattice : :class:`BondedLattice`, the atoms (pure atomistic region and overlap; every site
        must have a positive weight).
    potential : :class:`bridge.lattice.PairPotential` (the same for bonds and Cauchy–Born).
    mesh : :class:`P1Mesh` over the continuum and the overlap (a hole where only atoms live).
    weight : a zone of :mod:`bridge.zones` or a callable ``(n, d) -> (n,)``; 1 in the atomistic
        region, 0 in the continuum.
    constraint : ``"atomwise"`` or ``"l2"`` (module docstring for the trade-off).
    continuum : ``"bond_density"`` (default: each bond's continuum weight is ``1 - alpha_b``,
        patch-test exact) or ``"blended"`` (the textbook energy blending ``(1 - alpha(x_e))
        |e| W_CB`` with the weight at the cell centroid: ghost forces, kept for comparison).
    """

    def __init__(self, lattice: BondedLattice, potential: PairPotential, mesh: P1Mesh, weight: Any, *,
                 constraint: str = "l2", continuum: str = "bond_density"):
        if constraint not in CONSTRAINTS:
            raise SetupError(f"unknown constraint {constraint!r}", fix=f"use one of {CONSTRAINTS}")
        if continuum not in ("bond_density", "blended"):
            raise SetupError(f"unknown continuum weighting {continuum!r}",
                             fix="use 'bond_density' (patch-test exact) or 'blended'")
        if lattice.dim != mesh.dim:
            raise SetupError(f"lattice is {lattice.dim}-D but the mesh is {mesh.dim}-D",
                             fix="pass a mesh of the same dimension as the lattice")
        self.lattice, self.pot, self.mesh, self.constraint = lattice, potential, mesh, constraint
        X, d = lattice.positions, lattice.dim
        self.dim = d
        self._weight_fn = lambda P: _weights(weight, np.asarray(P, float))
        self.alpha = _weights(weight, X)
        if np.any(self.alpha <= 0):
            raise SetupError(f"{int(np.sum(self.alpha <= 0))} atom(s) have weight 0",
                             fix="drop them: lattice.subset(weights > 0) -- atoms of weight 0 are continuum")
        b = lattice.bonds
        mid = 0.5 * (X[b[:, 0]] + X[b[:, 1]])
        self.alpha_bond = _weights(weight, mid)
        R = lattice.families * lattice.a
        self.R = R
        self.families = R.shape[0]
        basis = _lattice_basis(lattice.families, lattice.a)
        #: nm^d reference volume (area, length) per atom
        self.omega = float(abs(np.linalg.det(basis)))
        cell, _ = mesh.locate(X)
        #: (n,) the cell holding each atom, -1 outside the mesh
        self.atom_cell = cell
        self.tied = cell >= 0
        self.tied_index = np.flatnonzero(self.tied)
        self.free_index = np.flatnonzero(~self.tied)
        cutoff = lattice.a * np.linalg.norm(lattice.families, axis=1).max()
        partial = self.alpha_bond < 1.0
        loose = partial & ~(self.tied[b[:, 0]] & self.tied[b[:, 1]])
        if loose.any():
            x0 = X[b[loose][0, 0]]
            raise SetupError(f"{int(loose.sum())} bond(s) with weight < 1 have an atom outside the mesh, e.g. at {x0}",
                             fix=f"extend the mesh into the region where the weight is 1 by at least one cutoff "
                                 f"({cutoff:.4g} nm)")
        self.N = mesh.interpolation(X[self.tied_index])          # (nT, nn)
        #: (ne, nf) continuum weight of family f in cell e (number of bonds, counted by length)
        self.kappa = self._continuum_weights(continuum, cutoff)
        self.continuum = continuum
        #: (ne, nf, d+1) R_f . grad N_k: the stretch of family f per unit nodal displacement
        self._RG = np.einsum("fj,ekj->efk", self.R, mesh.grads)
        self.overlap_nodes = np.unique(self.N.indices)
        if constraint == "l2":
            # project onto the nodes whose support is at least half covered by tied atoms; the
            # nodes at the ragged edge of the atoms (a corner of a cell) stay free
            cover = np.asarray(self.N.sum(0)).ravel()
            full = mesh.lumped_mass(np.ones(len(mesh.cells))) / self.omega
            self.overlap_nodes = np.flatnonzero(cover >= 0.5 * full)
            self._NtN = (self.N.T @ self.N).tocsr()
            O = self.overlap_nodes
            block = self._NtN[O][:, O].tocsc()
            try:
                self._NtN_OO = spla.splu(block)
            except RuntimeError as exc:
                raise SetupError("the L2 projection onto the overlap nodes is singular: a node has too few "
                                 "atoms in its support", fix="use larger elements in the overlap (h >= 2 "
                                 "spacings) or constraint='atomwise'") from exc
            cond = np.linalg.cond(block.toarray()) if len(O) < 2000 else 0.0
            if cond > 1e12:
                raise SetupError(f"the L2 projection onto the overlap nodes is ill-conditioned (cond {cond:.2g})",
                                 fix="use larger elements in the overlap or constraint='atomwise'")

    def _continuum_weights(self, continuum: str, cutoff: float) -> np.ndarray:
        """kappa (ne, nf): ``sum_b (1 - alpha_b) |b & e| / |b|`` over the bonds of the infinite lattice.

        The full count of each family comes from :func:`_family_chords`; the atoms' share
        ``alpha_b`` of every atom bond is taken off the cells it crosses.  Checks that each bond
        with a continuum share lies wholly in the mesh and that its atoms are tied (else the
        patch test would fail there).
        """
        lat, m = self.lattice, self.mesh
        X, b, a = lat.positions, lat.bonds, lat.a
        if continuum == "blended":
            alpha_e = self._weight_fn(m.centroids)
            return np.repeat(((1 - alpha_e) * m.volume / self.omega)[:, None], self.families, 1)
        tol = 1e-9 * a
        basis = _lattice_basis(lat.families, a)
        kappa = np.stack([_family_chords(m, R, _primitive_length(R, basis), self.omega, X[0], tol)
                          for R in self.R], 1)
        # the atoms' share of their bonds
        seg, cell, frac = _segment_cells(m, X[b[:, 0]], X[b[:, 1]], tol)
        np.add.at(kappa, (cell, lat.family[seg]), -self.alpha_bond[seg] * frac)
        inside = np.bincount(seg, frac, minlength=len(b))
        cut = (self.alpha_bond < 1.0) & (np.abs(inside - 1.0) > 1e-9)
        if cut.any():
            x0 = X[b[cut][0, 0]]
            raise SetupError(f"{int(cut.sum())} bond(s) with weight < 1 leave the mesh or run along its boundary "
                             f"(its hole around the atoms, or its outer edge), e.g. at {x0}",
                             fix=f"keep the weight at 1 within one cutoff ({cutoff:.4g} nm) of the mesh's inner "
                                 "boundary, and atoms of weight < 1 at least one cutoff inside its outer edge")
        # bonds to lattice sites that hold no atom: wholly continuum, so they must not touch a free atom
        n, nf = len(X), self.families
        have = np.zeros((n, nf, 2), bool)
        have[b[:, 0], lat.family, 0] = True
        have[b[:, 1], lat.family, 1] = True
        i, f, side = np.nonzero(~have)
        if i.size:
            sgn = np.where(side == 0, 1.0, -1.0)[:, None]
            P, Q = X[i], X[i] + sgn * self.R[f]
            vs, vc, vf = _segment_cells(m, P, Q, tol)
            part = np.bincount(vs, vf, minlength=i.size)
            bad = (part > 1e-9) & (~self.tied[i] | (part < 1 - 1e-9))
            if bad.any():
                x0 = X[i[bad][0]]
                raise SetupError(f"{int(bad.sum())} missing bond(s) of untied or edge atoms reach into the mesh, "
                                 f"e.g. at {x0}",
                                 fix=f"keep lattice sites without atoms (voids, surfaces) at least one cutoff "
                                     f"({cutoff:.4g} nm) away from the mesh, or extend the atoms there")
        if kappa.min() < -1e-9:
            raise SetupError("the atoms' share of the bonds exceeds the lattice count in some cells",
                             fix="pass the atoms as sites of one lattice (lattice_sites) with their families")
        return np.maximum(kappa, 0.0)

    # -- energies ------------------------------------------------------------------------
    def atom_energy_forces(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        """NumPy evaluation of the weighted bond energy of the atoms (the engine computes the same)."""
        return self.lattice.energy_forces(x, self.pot, self.alpha_bond)

    def continuum_energy_gradient(self, u: np.ndarray) -> tuple[float, np.ndarray]:
        """Continuum energy (kJ/mol) and its gradient ``(nn, d)`` kJ/(mol nm) for displacements ``u``."""
        m = self.mesh
        u = np.asarray(u, float).reshape(len(m.nodes), self.dim)
        y, r = self._element_bonds(u)
        E = float(np.sum(self.kappa * self.pot.phi(r)))
        t = (self.kappa * self.pot.dphi(r) / r)[..., None] * y            # (ne, nf, d)
        ge = np.einsum("efi,efk->eki", t, self._RG)
        g = np.zeros_like(u)
        np.add.at(g, m.cells.ravel(), ge.reshape(-1, self.dim))
        return E, g

    def cell_energies(self, u: np.ndarray) -> np.ndarray:
        """(ne,) continuum energy of each cell (kJ/mol) relative to the reference lattice."""
        _, r = self._element_bonds(np.asarray(u, float).reshape(self.mesh.nodes.shape))
        return np.sum(self.kappa * (self.pot.phi(r) - self.pot.phi(np.linalg.norm(self.R, axis=1))), 1)

    def _element_bonds(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Deformed family vectors ``F_e R_f`` (ne, nf, d) nm and their lengths (ne, nf)."""
        F = np.eye(self.dim)[None] + np.einsum("eki,ekj->eij", u[self.mesh.cells], self.mesh.grads)
        y = np.einsum("eij,fj->efi", F, self.R)
        return y, np.linalg.norm(y, axis=2)

    def energy_gradient(self, x: np.ndarray, u: np.ndarray,
                        atoms: Callable[[np.ndarray], tuple[float, np.ndarray]] | None = None
                        ) -> tuple[float, np.ndarray, np.ndarray]:
        """Coupled energy and gradients ``(n, d)`` (atoms) and ``(nn, d)`` (nodes).

        ``atoms(x) -> (energy, forces)`` is the atomistic engine; default: the NumPy evaluation.
        """
        Ea, fa = (atoms or self.atom_energy_forces)(x)
        Ec, gc = self.continuum_energy_gradient(u)
        return Ea + Ec, -fa, gc

    @property
    def dofs(self) -> int:
        """Number of coordinates of the coupled model (atoms and nodes, before the constraints)."""
        return (len(self.lattice.positions) + len(self.mesh.nodes)) * self.dim

    # -- constraints ---------------------------------------------------------------------
    def constraint_matrix(self) -> sp.csr_matrix:
        """G (rows, n + nn) acting on one Cartesian component of ``[x - X; u]``; G q = 0."""
        n, nn, nT = len(self.lattice.positions), len(self.mesh.nodes), len(self.tied_index)
        sel = sp.csr_matrix((np.ones(nT), (np.arange(nT), self.tied_index)), shape=(nT, n))
        if self.constraint == "atomwise":
            return sp.hstack([sel, -self.N]).tocsr()
        O = self.overlap_nodes
        Nt = self.N.T.tocsr()[O]
        return sp.hstack([Nt @ sel, -self._NtN[O]]).tocsr()

    def ghost_forces(self, F: np.ndarray, fixed_atoms: np.ndarray = (), fixed_nodes: np.ndarray = (),
                     atoms: Callable | None = None) -> dict[str, Any]:
        """Residual forces on the free degrees of freedom under the homogeneous deformation ``F``.

        Every atom and node is put at ``F X``; the gradient is projected on the directions that
        the constraints and the fixed atoms / nodes leave free (least-squares multipliers).
        Returns ``max`` (kJ/mol/nm), ``relative`` (over the largest bond force of that state),
        ``atoms`` (n, d) and ``nodes`` (nn, d) residuals.
        """
        F = np.asarray(F, float).reshape(self.dim, self.dim)
        X = self.lattice.positions
        x = X @ F.T
        u = self.mesh.nodes @ (F - np.eye(self.dim)).T
        _, ga, gc = self.energy_gradient(x, u, atoms)
        fa = np.zeros(len(X), bool)
        fa[np.asarray(fixed_atoms, np.int64)] = True
        fn = np.zeros(len(self.mesh.nodes), bool)
        fn[np.asarray(fixed_nodes, np.int64)] = True
        free = np.concatenate([~fa, ~fn])
        G = self.constraint_matrix()[:, free]
        G = G[np.asarray(abs(G).sum(1)).ravel() > 0]
        g = np.concatenate([ga, gc])[free]                      # (free, d)
        # residual g + G^T lam, minimised over lam: project each component
        if G.shape[0]:
            GGt = (G @ G.T).tocsc()
            lam = spla.splu(GGt).solve(np.asarray(G @ g))
            r = g - G.T @ lam
        else:
            r = g
        full = np.zeros((len(free), self.dim))
        full[free] = r
        ra, rc = full[: len(X)], full[len(X):]
        r_b = np.linalg.norm((X[self.lattice.bonds[:, 1]] - X[self.lattice.bonds[:, 0]]) @ F.T, axis=1)
        scale = float(np.max(np.abs(self.pot.dphi(r_b))))
        mx = float(np.max(np.abs(r))) if r.size else 0.0
        return {"max": mx, "relative": mx / scale if scale > 0 else mx, "atoms": ra, "nodes": rc,
                "bond_force_scale": scale}

    # -- statics -------------------------------------------------------------------------
    def reduced(self, fixed_atoms: np.ndarray = (), fixed_nodes: np.ndarray = ()) -> "_Reduced":
        """The linear map from independent coordinates to ``(x - X, u)`` that satisfies the constraints."""
        return _Reduced(self, np.asarray(fixed_atoms, np.int64), np.asarray(fixed_nodes, np.int64))

    def continuum_hessian(self, u: np.ndarray) -> sp.csr_matrix:
        """Hessian ``(nn d, nn d)`` of the continuum energy, rows ``node * d + component``."""
        m, d = self.mesh, self.dim
        y, r = self._element_bonds(np.asarray(u, float).reshape(m.nodes.shape))
        K = _pair_stiffness(y, r, self.kappa, self.pot)                          # (ne, nf, d, d)
        blocks = np.einsum("efk,efl,efij->ekilj", self._RG, self._RG, K)         # (ne, k, i, l, j)
        dof = (m.cells[:, :, None] * d + np.arange(d)).reshape(len(m.cells), -1)  # (ne, (d+1) d)
        nloc = dof.shape[1]
        rows = np.repeat(dof, nloc, axis=1).ravel()
        cols = np.tile(dof, (1, nloc)).ravel()
        n = len(m.nodes) * d
        return sp.csr_matrix((blocks.reshape(len(m.cells), -1).ravel(), (rows, cols)), shape=(n, n))

    def hessian(self, x: np.ndarray, u: np.ndarray) -> sp.csr_matrix:
        """Hessian of the coupled energy over ``[x; u]`` flattened (rows ``site * d + component``)."""
        Ha = _lattice_hessian(self.lattice, self.pot, np.asarray(x, float), self.alpha_bond)
        return sp.block_diag([Ha, self.continuum_hessian(u)]).tocsr()

    def minimize(self, x0: np.ndarray, u0: np.ndarray, *, fixed_atoms: np.ndarray = (),
                 fixed_nodes: np.ndarray = (), atoms: Callable | None = None, gtol: float | None = None,
                 max_iterations: int | None = None, method: str = "newton") -> dict[str, Any]:
        """Minimise the coupled energy over the free coordinates, constraints held exactly.

        ``x0`` (n, d) and ``u0`` (nn, d) give the fixed atoms' and nodes' prescribed values and the
        start (projected onto the constraints first).  ``method``: ``"newton"`` (sparse Hessian,
        the constraints through a KKT system, backtracking line search: a few iterations) or
        ``"lbfgs"`` (no Hessian; many more iterations).  ``gtol``: stop when the largest reduced
        gradient is below ``gtol`` times the largest bond force of the reference lattice
        (kJ/mol/nm); default 1e-9 for Newton (it converges quadratically, so this costs one step
        more than 1e-6 and removes the error a soft mode would leave), 1e-6 for L-BFGS (which
        stalls at round-off below that).  Returns ``x``, ``u``, ``energy``, ``iterations``, ``gradient`` (max reduced
        gradient), ``evaluations``.
        """
        if method not in ("newton", "lbfgs"):
            raise SetupError(f"unknown method {method!r}", fix="use 'newton' or 'lbfgs'")
        if gtol is None:
            gtol = 1e-9 if method == "newton" else 1e-6
        red = self.reduced(fixed_atoms, fixed_nodes)
        X = self.lattice.positions
        x0 = np.asarray(x0, float).reshape(X.shape)
        u0 = np.asarray(u0, float).reshape(self.mesh.nodes.shape)
        if not (np.all(np.isfinite(x0)) and np.all(np.isfinite(u0))):
            raise SetupError("start positions or displacements contain NaN or inf",
                             fix="pass finite x0 (n, d) and u0 (nn, d) in nm")
        base_a, base_c = red.base(x0 - X, u0)
        y0 = red.initial(x0 - X, u0)
        scale = float(np.max(np.abs(self.pot.dphi(self.lattice.a * np.linalg.norm(self.lattice.families, axis=1)))))
        count = [0]
        if method == "newton":
            da, uc = red.expand(y0, base_a, base_c)
            d, n = self.dim, len(X)
            free = np.concatenate([~red.fa, ~red.fn]).repeat(d)

            def energy_gradient(q):
                q = q.reshape(-1, d)
                E, ga, gc = self.energy_gradient(X + q[:n], q[n:], atoms)
                count[0] += 1
                return E, np.concatenate([ga, gc]).ravel()

            def measure(q, g):
                g = g.reshape(-1, d)
                return float(np.max(np.abs(red.adjoint(g[:n], g[n:])), initial=0.0))

            G = sp.kron(self.constraint_matrix(), sp.eye(d)).tocsr()
            q, iters, E = _newton(energy_gradient, lambda q: self.hessian(X + q.reshape(-1, d)[:n],
                                                                          q.reshape(-1, d)[n:]),
                                  np.concatenate([da, uc]).ravel(), free, G, measure, gtol * scale,
                                  max_iterations or 50, max_step=0.25 * self.lattice.a,
                                  fix="or use method='lbfgs'")
            q = q.reshape(-1, d)
            da, uc = q[:n], q[n:]
            message = "newton"
        else:
            E_start = self.energy_gradient(x0, u0, atoms)[0]

            def fun(y):
                da, uc = red.expand(y, base_a, base_c)
                E, ga, gc = self.energy_gradient(X + da, uc, atoms)
                count[0] += 1
                return (E - E_start) / scale, red.adjoint(ga, gc) / scale

            res = minimize(fun, y0, jac=True, method="L-BFGS-B",
                           options={"maxiter": int(max_iterations or 20000), "gtol": gtol, "ftol": 0.0,
                                    "maxcor": 30})
            da, uc = red.expand(res.x, base_a, base_c)
            iters, message = int(res.nit), str(res.message)
        E, ga, gc = self.energy_gradient(X + da, uc, atoms)
        gmax = float(np.max(np.abs(red.adjoint(ga, gc)), initial=0.0))
        if not np.isfinite(E) or gmax > 10 * gtol * scale:
            raise CalculationError(f"coupled minimisation did not converge (max reduced gradient {gmax:.3g} "
                                   f"kJ/mol/nm after {iters} iterations)", reason=message,
                                   state={"x": X + da, "u": uc},
                                   fix="raise max_iterations or gtol, or start closer (e.g. from an affine guess)")
        return {"x": X + da, "u": uc, "energy": E, "iterations": iters, "gradient": gmax,
                "evaluations": count[0]}


def _pair_stiffness(y: np.ndarray, r: np.ndarray, w: np.ndarray, pot: PairPotential) -> np.ndarray:
    """``w [phi'' yy/r^2 + phi'/r (I - yy/r^2)]`` for bond vectors ``y`` (..., d): (..., d, d)."""
    yh = y / r[..., None]
    P = yh[..., :, None] * yh[..., None, :]
    eye = np.eye(y.shape[-1])
    return (w * pot.d2phi(r))[..., None, None] * P + (w * pot.dphi(r) / r)[..., None, None] * (eye - P)


def _lattice_hessian(lattice: BondedLattice, pot: PairPotential, x: np.ndarray, weights: np.ndarray) -> sp.csr_matrix:
    """Hessian ``(n d, n d)`` of ``sum_b w_b phi(|x_j - x_i|)``."""
    b, d = lattice.bonds, lattice.dim
    y = x[b[:, 1]] - x[b[:, 0]]
    K = _pair_stiffness(y, np.linalg.norm(y, axis=1), np.asarray(weights, float), pot)    # (nb, d, d)
    i = (b[:, 0, None] * d + np.arange(d))                  # (nb, d)
    j = (b[:, 1, None] * d + np.arange(d))
    rows, cols, vals = [], [], []
    for p, q, sgn in ((i, i, 1.0), (j, j, 1.0), (i, j, -1.0), (j, i, -1.0)):
        rows.append(np.repeat(p, d, axis=1).ravel())
        cols.append(np.tile(q, (1, d)).ravel())
        vals.append(sgn * K.ravel())
    n = len(x) * d
    return sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))


def _newton(energy_gradient: Callable, hessian: Callable, q: np.ndarray, free: np.ndarray,
            G: sp.csr_matrix | None, measure: Callable, tol: float, max_iterations: int, *,
            max_step: float, fix: str) -> tuple[np.ndarray, int, float]:
    """Newton's method for ``min E(q)`` subject to ``G q = G q0`` with the ``~free`` entries held.

    Each step solves the KKT system ``[H G^T; G 0] [dq; lam] = [-g; 0]`` on the free entries
    (SuperLU), shortens it to at most ``max_step`` (nm) on any coordinate, then backtracks until
    the energy decreases (Armijo) or, at round-off, the gradient does.  Where the Newton step is
    not a descent direction, or its line search fails, it takes the steepest descent direction
    projected onto the constraints instead (scaled to ``max_step``).  ``measure(q, g)``: the
    convergence measure compared with ``tol``; ``fix``: the advice the errors give.
    """
    E, g = energy_gradient(q)
    f = np.flatnonzero(free)
    Gf, GGt = None, None
    if G is not None and G.shape[0]:
        Gf = G[:, f]
        Gf = Gf[np.asarray(abs(Gf).sum(1)).ravel() > 0]
        GGt = spla.splu((Gf @ Gf.T).tocsc()) if Gf.shape[0] else None

    def descent(v):
        """``-v`` projected onto the null space of the constraints (steepest feasible descent)."""
        if GGt is None:
            return -v
        return -(v - Gf.T @ GGt.solve(np.asarray(Gf @ v)))

    def search(step, q, E, g, gm):
        """Backtracking along ``step`` (capped at max_step); None if it is no descent direction or fails."""
        big = float(np.max(np.abs(step), initial=0.0))
        if big > max_step:
            step = step * (max_step / big)
        slope = float(g[f] @ step)
        if not slope < 0:
            return None
        t = 1.0
        for _ in range(30):
            trial = q.copy()
            trial[f] += t * step
            E_new, g_new = energy_gradient(trial)
            if np.isfinite(E_new) and (E_new - E <= 1e-4 * t * slope
                                       or (abs(E_new - E) <= 1e-12 * abs(E) and measure(trial, g_new) < gm)):
                return trial, E_new, g_new
            t *= 0.5
        return None

    for it in range(int(max_iterations)):
        gm = measure(q, g)
        if gm <= tol:
            return q, it, E
        H = hessian(q)[f][:, f]
        if Gf is not None and Gf.shape[0]:
            K = sp.bmat([[H, Gf.T], [Gf, None]]).tocsc()
            rhs = np.concatenate([-g[f], np.zeros(Gf.shape[0])])
        else:
            K, rhs = H.tocsc(), -g[f]
        try:
            step = spla.splu(K).solve(rhs)[: f.size]
        except RuntimeError as exc:
            raise CalculationError("the Newton system is singular", reason=str(exc),
                                   fix="fix enough atoms or nodes to remove rigid motions; " + fix) from exc

        found = search(step, q, E, g, gm)
        if found is None:             # not a descent direction, or no decrease along it
            sd = descent(g[f])
            found = search(sd * (max_step / max(float(np.max(np.abs(sd), initial=0.0)), 1e-300)), q, E, g, gm)
        if found is None and gm <= 10 * tol:
            return q, it, E               # round-off: no step can lower the energy any more
        if found is None:
            raise CalculationError("the Newton line search found no decrease", reason=f"gradient {gm:.3g}",
                                   fix="start closer to the minimum; " + fix)
        trial, E_new, g_new = found
        q, E, g = trial, E_new, g_new
    if measure(q, g) <= tol:
        return q, int(max_iterations), E
    raise CalculationError(f"Newton did not converge in {max_iterations} iterations (gradient {measure(q, g):.3g})",
                           reason="too many iterations",
                           fix="raise max_iterations or start from an affine guess; " + fix)


def relax_lattice(lattice: BondedLattice, pot: PairPotential, x0: np.ndarray, fixed: np.ndarray, *,
                  weights: np.ndarray | None = None, gtol: float = 1e-9, max_iterations: int = 50
                  ) -> dict[str, Any]:
    """Fully atomistic statics: minimise ``sum_b w_b phi`` over the atoms not ``fixed`` (Newton).

    ``x0`` (n, d) nm: start and the fixed atoms' positions; ``fixed``: indices or (n,) bool.
    Returns ``x``, ``energy``, ``iterations``, ``gradient`` (max force on a free atom, kJ/mol/nm).
    """
    x0 = np.asarray(x0, float).reshape(lattice.positions.shape)
    if not np.all(np.isfinite(x0)):
        raise SetupError("start positions contain NaN or inf", fix="pass finite positions (n, d) in nm")
    w = np.ones(len(lattice.bonds)) if weights is None else np.asarray(weights, float)
    fx = np.zeros(len(x0), bool)
    fx[np.asarray(fixed).astype(np.int64) if np.asarray(fixed).dtype != bool else np.flatnonzero(fixed)] = True
    if not fx.any():
        raise SetupError("no atom is fixed: the energy has rigid-body null modes", fix="fix the boundary atoms")
    d = lattice.dim
    scale = float(np.max(np.abs(pot.dphi(lattice.a * np.linalg.norm(lattice.families, axis=1)))))

    def energy_gradient(q):
        E, f = lattice.energy_forces(q.reshape(-1, d), pot, w)
        return E, -f.ravel()

    free = np.repeat(~fx, d)
    q, iters, E = _newton(energy_gradient, lambda q: _lattice_hessian(lattice, pot, q.reshape(-1, d), w),
                          x0.ravel().copy(), free, None, lambda q, g: float(np.max(np.abs(g[free]), initial=0.0)),
                          gtol * scale, max_iterations, max_step=0.25 * lattice.a,
                          fix="or start from positions nearer the minimum (the affine map of the load)")
    g = energy_gradient(q)[1]
    return {"x": q.reshape(-1, d), "energy": E, "iterations": iters,
            "gradient": float(np.max(np.abs(g[free]), initial=0.0))}


class _Reduced:
    """Independent coordinates y of a constrained handshake, ``(x - X, u) = expand(y)``."""

    def __init__(self, hs: Handshake, fixed_atoms: np.ndarray, fixed_nodes: np.ndarray):
        self.hs = hs
        n, nn = len(hs.lattice.positions), len(hs.mesh.nodes)
        self.fa = np.zeros(n, bool)
        self.fa[fixed_atoms] = True
        self.fn = np.zeros(nn, bool)
        self.fn[fixed_nodes] = True
        if hs.constraint == "atomwise":
            if np.any(self.fa[hs.tied_index]):
                raise SetupError("fixed atoms must not be tied to the mesh in atomwise mode",
                                 fix="fix the nodes around them instead")
            self.var_a = np.flatnonzero(~self.fa & ~hs.tied)
            self.var_c = np.flatnonzero(~self.fn)
        else:
            O = np.zeros(nn, bool)
            O[hs.overlap_nodes] = True
            if np.any(self.fn & O):
                raise SetupError("fixed nodes must not carry tied atoms in l2 mode",
                                 fix="fix nodes away from the overlap")
            self.var_a = np.flatnonzero(~self.fa)
            self.var_c = np.flatnonzero(~self.fn & ~O)
            self.O = hs.overlap_nodes
            self.NtN_rest = hs._NtN[self.O]
            self.Nt = hs.N.T.tocsr()[self.O]

    def initial(self, da: np.ndarray, u: np.ndarray) -> np.ndarray:
        return np.concatenate([da[self.var_a].ravel(), u[self.var_c].ravel()])

    def base(self, da: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return da.copy(), u.copy()

    def expand(self, y: np.ndarray, base_a: np.ndarray, base_c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        hs, d = self.hs, self.hs.dim
        da, u = base_a.copy(), base_c.copy()
        na = self.var_a.size * d
        da[self.var_a] = y[:na].reshape(-1, d)
        u[self.var_c] = y[na:].reshape(-1, d)
        if hs.constraint == "atomwise":
            da[hs.tied_index] = hs.N @ u
        else:
            u[self.O] = 0.0
            rhs = self.Nt @ da[hs.tied_index] - self.NtN_rest @ u
            u[self.O] = hs._NtN_OO.solve(np.asarray(rhs))
        return da, u

    def adjoint(self, ga: np.ndarray, gc: np.ndarray) -> np.ndarray:
        hs = self.hs
        ga, gc = ga.copy(), gc.copy()
        if hs.constraint == "atomwise":
            gc += hs.N.T @ ga[hs.tied_index]
        else:
            z = hs._NtN_OO.solve(np.asarray(gc[self.O]), trans="T")
            ga[hs.tied_index] += self.Nt.T @ z
            gc -= self.NtN_rest.T @ z
            gc[self.O] = 0.0
        return np.concatenate([ga[self.var_a].ravel(), gc[self.var_c].ravel()])


# -- dynamics ------------------------------------------------------------------------------
class NumpyLatticeEngine:
    """The weighted bonded lattice integrated in NumPy: the independent twin of the OpenMM engine.

    Velocity Verlet with an exact exponential damping of the fine scale, ``v <- v_ref +
    (v - v_ref) exp(-eta dt)`` after each step, ``eta`` (n,) 1/ps, ``v_ref`` (n, d) nm/ps.
    """

    def __init__(self, hs: Handshake, masses: np.ndarray, timestep: float, eta: np.ndarray | None = None):
        self.hs, self.m, self.dt = hs, np.asarray(masses, float), float(timestep)
        n = len(hs.lattice.positions)
        self.x = hs.lattice.positions.copy()
        self.v = np.zeros_like(self.x)
        self.eta = np.zeros(n) if eta is None else np.asarray(eta, float)
        self.vref = np.zeros_like(self.x)
        self._ef = hs.atom_energy_forces(self.x)

    def energy_forces(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        return self.hs.atom_energy_forces(x)

    def set_positions(self, x):
        self.x = np.array(x, float)
        self._ef = self.hs.atom_energy_forces(self.x)

    def set_velocities(self, v):
        self.v = np.array(v, float)

    def set_reference_velocities(self, vref):
        self.vref = np.array(vref, float)

    def state(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        return self.x.copy(), self.v.copy(), self._ef[1].copy(), self._ef[0]

    def substep(self, n: int) -> None:
        decay = np.exp(-self.eta * self.dt)[:, None]
        for _ in range(int(n)):
            self.v += 0.5 * self.dt * self._ef[1] / self.m[:, None]
            self.x += self.dt * self.v
            self._ef = self.hs.atom_energy_forces(self.x)
            self.v += 0.5 * self.dt * self._ef[1] / self.m[:, None]
            self.v = self.vref + (self.v - self.vref) * decay


@dataclass
class DynamicsRecord:
    """Time series of a coupled run: time (ps) and energies (kJ/mol) by region and in total."""

    time: list = field(default_factory=list)
    #: ``damped``: energy removed since the run started (the damping layer's work, plus the
    #: integrator's O(dt^2) energy error, which is below 1e-4 of the pulse energy undamped)
    total: list = field(default_factory=list)
    atomistic: list = field(default_factory=list)
    handshake: list = field(default_factory=list)
    continuum: list = field(default_factory=list)
    damped: list = field(default_factory=list)


class HandshakeDynamics:
    """Multi-rate explicit dynamics of a :class:`Handshake` with the constraints held at each sync.

    The atoms take ``substeps`` velocity-Verlet steps of ``dt`` in their engine while the
    continuum takes one step of ``substeps * dt``; at the synchronisation the positions and
    velocities are projected, mass-weighted, onto the constraints, ``q <- q - M^-1 G^T
    (G M^-1 G^T)^-1 G q`` (RATTLE for these linear constraints; with ``substeps = 1`` the scheme
    is exactly RATTLE, symplectic, with energy errors O(dt^2) and no drift).  The last half
    kick is redone with the forces at the projected positions.

    Masses: atom ``I`` carries ``max(alpha_I, mass_floor) m`` and the continuum the lumped mass of
    density ``max(1 - alpha_e, mass_floor) m / Omega`` (``alpha_e`` at the cell centroid), so
    the two sum to one across the overlap; the floor keeps the buffer cells (weight 1) and the
    outermost atoms (weight -> 0) at a finite frequency.

    Damping (``damping`` 1/ps, default 0 = off): a perfectly-matched-layer-like absorber on the
    fine scale of the overlap atoms, ``eta_I = damping (1 - alpha_I)^2`` (zero where the atoms
    are fully atomistic, largest at the continuum edge), acting on ``v_I - u^h_t(X_I)`` only, so
    the coarse motion the continuum carries on is untouched.  With ``"atomwise"`` constraints the
    fine scale is zero and damping has no effect.

    ``engine`` must provide ``substep(n)``, ``state() -> (x, v, forces, energy)``,
    ``set_positions``, ``set_velocities``, ``set_reference_velocities`` and ``energy_forces``
    (:class:`NumpyLatticeEngine`, or the OpenMM engine of
    :func:`bridge_adapters.openmm.lattice.handshake_engine`).
    """

    def __init__(self, hs: Handshake, engine: Any, mass: float, *, substeps: int = 1, mass_floor: float = 0.02,
                 fixed_nodes: np.ndarray = ()):
        if int(substeps) < 1:
            raise SetupError(f"substeps must be >= 1, got {substeps}", fix="pass substeps=1 or more")
        self.hs, self.engine, self.n = hs, engine, int(substeps)
        self.dt = float(engine.dt)
        self.Dt = self.dt * self.n
        d = hs.dim
        rho = mass / hs.omega
        alpha_e = _weights_at(hs, hs.mesh.centroids)
        self.Mc = hs.mesh.lumped_mass(rho * np.maximum(1 - alpha_e, mass_floor))
        self.ma = np.asarray(engine.m, float)
        self.fixed = np.zeros(len(hs.mesh.nodes), bool)
        self.fixed[np.asarray(fixed_nodes, np.int64)] = True
        G = hs.constraint_matrix()
        nA = len(hs.lattice.positions)
        self.G = G
        Minv = np.concatenate([1 / self.ma, np.where(self.fixed, 0.0, 1 / self.Mc)])
        self.Minv = Minv
        A = (G @ sp.diags(Minv) @ G.T).tocsc()
        self._A = spla.splu(A)
        self.nA = nA
        self.u = np.zeros((len(hs.mesh.nodes), d))
        self.vc = np.zeros_like(self.u)
        self._va = self.engine.state()[1]
        self.time = 0.0
        self._start_energy: float | None = None
        _, self.gc = hs.continuum_energy_gradient(self.u)
        X = hs.lattice.positions
        self._E0 = hs.atom_energy_forces(X)[0] + hs.continuum_energy_gradient(np.zeros_like(self.u))[0]

    # q = [x - X; u] per component
    def _project(self, qa: np.ndarray, qc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        q = np.concatenate([qa, qc])
        lam = self._A.solve(np.asarray(self.G @ q))
        dq = self.Minv[:, None] * (self.G.T @ lam)
        return qa - dq[: self.nA], qc - dq[self.nA:]

    def set_initial(self, x: np.ndarray, v: np.ndarray, u: np.ndarray | None = None,
                    vc: np.ndarray | None = None) -> None:
        """Initial atom positions/velocities (and continuum fields); projected onto the constraints."""
        X = self.hs.lattice.positions
        u = np.zeros_like(self.u) if u is None else np.asarray(u, float)
        vc = np.zeros_like(self.u) if vc is None else np.asarray(vc, float)
        for arr, name in ((x, "x"), (v, "v"), (u, "u"), (vc, "vc")):
            if not np.all(np.isfinite(arr)):
                raise SetupError(f"initial {name} contains NaN or inf", fix="pass finite arrays (nm, nm/ps)")
        da, self.u = self._project(np.asarray(x, float) - X, u)
        va, self.vc = self._project(np.asarray(v, float), vc)
        self.u[self.fixed] = 0.0
        self.vc[self.fixed] = 0.0
        self.engine.set_positions(X + da)
        self.engine.set_velocities(va)
        self._va = va
        _, self.gc = self.hs.continuum_energy_gradient(self.u)

    def step(self) -> None:
        """One continuum step (``substeps`` atom steps) and the synchronisation."""
        hs, dt, Dt = self.hs, self.dt, self.Dt
        X = hs.lattice.positions
        vref = self._va.copy()              # the atoms' velocities, as set at the last sync
        vref[hs.tied_index] = hs.N @ self.vc
        self.engine.set_reference_velocities(vref)
        self.engine.substep(self.n)
        Mc = np.where(self.fixed, np.inf, self.Mc)[:, None]
        self.vc -= 0.5 * Dt * self.gc / Mc
        self.u += Dt * self.vc
        _, gc_old = hs.continuum_energy_gradient(self.u)
        self.vc -= 0.5 * Dt * gc_old / Mc
        x, v, fa_old, _ = self.engine.state()
        da, u = self._project(x - X, self.u)
        self.engine.set_positions(X + da)
        _, _, fa_new, _ = self.engine.state()
        _, gc_new = hs.continuum_energy_gradient(u)
        v = v + 0.5 * dt * (fa_new - fa_old) / self.ma[:, None]
        vc = self.vc - 0.5 * Dt * (gc_new - gc_old) / Mc
        va, vc = self._project(v, vc)
        self.engine.set_velocities(va)
        self._va = va
        self.u, self.vc, self.gc = u, vc, gc_new
        self.time += Dt

    def energy_parts(self) -> dict[str, float]:
        """Energies (kJ/mol, relative to the reference crystal) by region and in total.

        ``atomistic``: atoms outside the mesh; ``handshake``: tied atoms, cells holding tied atoms
        and nodes carrying them; ``continuum``: the rest.  Bond energies are split half to each atom.
        """
        hs = self.hs
        X = hs.lattice.positions
        x, v, _, _ = self.engine.state()
        b = hs.lattice.bonds
        r = np.linalg.norm(x[b[:, 1]] - x[b[:, 0]], axis=1)
        r0 = np.linalg.norm(X[b[:, 1]] - X[b[:, 0]], axis=1)
        eb = hs.alpha_bond * (hs.pot.phi(r) - hs.pot.phi(r0))
        ea = 0.5 * self.ma * np.sum(v * v, 1)
        np.add.at(ea, b[:, 0], 0.5 * eb)
        np.add.at(ea, b[:, 1], 0.5 * eb)
        m = hs.mesh
        ee = hs.cell_energies(self.u)
        en = 0.5 * np.where(self.fixed, 0.0, self.Mc) * np.sum(self.vc ** 2, 1)
        hs_cells = np.zeros(len(m.cells), bool)
        hs_cells[hs.atom_cell[hs.tied_index]] = True
        hs_nodes = np.zeros(len(m.nodes), bool)
        hs_nodes[hs.overlap_nodes] = True
        atomistic = float(np.sum(ea[~hs.tied]))
        handshake = float(np.sum(ea[hs.tied]) + np.sum(ee[hs_cells]) + np.sum(en[hs_nodes]))
        continuum = float(np.sum(ee[~hs_cells]) + np.sum(en[~hs_nodes]))
        return {"atomistic": atomistic, "handshake": handshake, "continuum": continuum,
                "total": atomistic + handshake + continuum}

    def run(self, steps: int, every: int = 1, record: DynamicsRecord | None = None,
            progress: bool = False) -> DynamicsRecord:
        """``steps`` continuum steps, recording the energies every ``every`` steps."""
        from .log import progress as bar

        rec = record or DynamicsRecord()
        if self._start_energy is None:
            self._start_energy = self.energy_parts()["total"]
        for k in bar(range(int(steps)), desc="handshake dynamics", enable=progress):
            if k % every == 0:
                self._record(rec)
            self.step()
            if not np.all(np.isfinite(self.u)):
                raise CalculationError(f"the continuum field became non-finite at t = {self.time:.4g} ps",
                                       reason="explicit continuum step unstable",
                                       fix="reduce the atom time step or the number of substeps per continuum step")
        self._record(rec)
        return rec

    def _record(self, rec: DynamicsRecord) -> None:
        e = self.energy_parts()
        rec.time.append(self.time)
        rec.total.append(e["total"])
        rec.atomistic.append(e["atomistic"])
        rec.handshake.append(e["handshake"])
        rec.continuum.append(e["continuum"])
        rec.damped.append(self._start_energy - e["total"])


def _weights_at(hs: Handshake, points: np.ndarray) -> np.ndarray:
    """The blending weight at continuum points (cell centroids)."""
    return hs._weight_fn(points)


def right_moving_velocities(u: np.ndarray, a: float, mass: float, pot: PairPotential, shells: int) -> np.ndarray:
    """Velocities (n,) nm/ps that make the chain displacement ``u`` (n,) nm a right-moving wave.

    Linear lattice dispersion of a chain with ``shells`` neighbour springs ``phi''(s a)``:
    ``omega(k)^2 = (2/m) sum_s phi''(s a) (1 - cos(k s a))``, and ``v_k = -i omega(k) sign(k) u_k``.
    ``u`` must vanish (to round-off) at both ends of the chain.
    """
    n = len(u)
    k = 2 * np.pi * np.fft.fftfreq(n, d=a)
    w2 = sum(pot.d2phi(s * a) * (1 - np.cos(k * s * a)) for s in range(1, shells + 1)) * 2 / mass
    w = np.sqrt(np.maximum(w2, 0.0))
    return np.real(np.fft.ifft(-1j * w * np.sign(k) * np.fft.fft(u)))
