r"""Periodic constraints for representative volume elements (RVEs), without dolfinx_mpc.

On a box-shaped cell :math:`[l, h]` the periodic space is the range of a prolongation matrix
``P`` (full dofs <- reduced dofs): a dof on an upper face :math:`x_d = h_d` copies the dof at the
same position on the lower face :math:`x_d = l_d`; edges and corners, which lie on several upper
faces, wrap in all those directions at once and so copy the lower corner.  The periodic problem

.. math::  P^T A P\,\hat x = P^T b,\qquad x = P\hat x

is assembled with SciPy (``P^T A P`` of the matrix from :func:`dolfinx.fem.assemble_matrix`,
converted with ``MatrixCSR.to_scipy``) and factored once with ``scipy.sparse.linalg.splu``
(SuperLU); every further right-hand side costs one triangular solve.

Serial only: the reduction needs every master dof on the rank of its slaves.  Run each RVE on one
rank and farm many RVEs over MPI (``mpi4py.futures`` or a split communicator).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from scipy.spatial import cKDTree

from bridge.errors import CalculationError, SetupError

from ._backend import require

require()

import dolfinx  # noqa: E402
import dolfinx.fem  # noqa: E402
import dolfinx.la  # noqa: E402

__all__ = ["PeriodicConstraint", "PeriodicSolver"]


class PeriodicConstraint:
    """Prolongation ``P`` ``(n_full, n_reduced)`` of a periodic Lagrange space on a box cell.

    Parameters
    ----------
    V : dolfinx.fem.FunctionSpace
        Lagrange space (scalar or blocked vector) on a mesh on one MPI rank.
    directions : sequence of int, optional
        Periodic axes (default: all ``gdim`` axes).
    lower, upper : array ``(gdim,)``, optional
        Box corners (default: the bounding box of the mesh).
    tol : float, optional
        Coordinate matching tolerance (length unit); default ``1e-8`` times the largest extent.

    Attributes
    ----------
    P : scipy.sparse.csr_matrix ``(n_full, n_reduced)`` of 0/1 entries.
    master : ``(n_nodes,) int64`` -- for every node, the node whose value it copies.
    """

    def __init__(self, V: dolfinx.fem.FunctionSpace, *, directions: Sequence[int] | None = None,
                 lower: Sequence[float] | None = None, upper: Sequence[float] | None = None,
                 tol: float | None = None):
        mesh = V.mesh
        if mesh.comm.size > 1:
            raise SetupError(f"periodic constraints run on one MPI rank; this mesh spans {mesh.comm.size}",
                             fix="run RVEs on one rank each (mesh comm=MPI.COMM_SELF); farm them over MPI")
        gdim = mesh.geometry.dim
        xg = mesh.geometry.x[:, :gdim]
        lo = xg.min(axis=0) if lower is None else np.asarray(lower, dtype=np.float64)
        hi = xg.max(axis=0) if upper is None else np.asarray(upper, dtype=np.float64)
        if lo.shape != (gdim,) or hi.shape != (gdim,) or not np.all(hi > lo):
            raise SetupError(f"box corners must have shape ({gdim},) with lower < upper, "
                             f"got lower={lo.tolist()}, upper={hi.tolist()}",
                             fix=f"pass lower= and upper= with {gdim} coordinates each (or leave "
                                 "them None to use the mesh's bounding box)")
        dirs = list(range(gdim)) if directions is None else [int(d) for d in directions]
        if not dirs or any(d < 0 or d >= gdim for d in dirs) or len(set(dirs)) != len(dirs):
            raise SetupError(f"periodic directions must be distinct axes in 0..{gdim - 1}, got {directions}",
                             fix=f"pass e.g. directions={list(range(gdim))} (or None for all axes)")
        tol = 1e-8 * float(np.max(hi - lo)) if tol is None else float(tol)

        x = V.tabulate_dof_coordinates()[:, :gdim]
        n_nodes = x.shape[0]
        bs = V.dofmap.index_map_bs
        wrapped = x.copy()
        slave = np.zeros(n_nodes, dtype=bool)
        for d in dirs:
            on_upper = np.abs(x[:, d] - hi[d]) <= tol
            wrapped[on_upper, d] = lo[d]
            slave |= on_upper
        masters = np.flatnonzero(~slave)
        master = np.arange(n_nodes, dtype=np.int64)
        if slave.any():
            tree = cKDTree(x[masters])
            dist, idx = tree.query(wrapped[slave], distance_upper_bound=tol * 10)
            lost = np.flatnonzero(~np.isfinite(dist) | (dist > tol))
            if lost.size:
                first = x[np.flatnonzero(slave)[lost[0]]]
                raise SetupError(f"mesh is not periodic: {lost.size} node(s) on the upper faces have no "
                                 f"partner on the lower faces, e.g. the node at {first.tolist()}",
                                 fix="build a mesh whose nodes match on opposite faces (structured "
                                     "meshes do), or raise tol")
            master[slave] = masters[idx]
        reduced_index = np.full(n_nodes, -1, dtype=np.int64)
        reduced_index[masters] = np.arange(masters.size)
        node_to_reduced = reduced_index[master]

        rows = (np.arange(n_nodes)[:, None] * bs + np.arange(bs)).reshape(-1)
        cols = (node_to_reduced[:, None] * bs + np.arange(bs)).reshape(-1)
        self.P = sp.csr_matrix((np.ones(rows.size), (rows, cols)), shape=(n_nodes * bs, masters.size * bs))
        self.V = V
        self.bs = bs
        self.master = master
        self.lower, self.upper, self.directions, self.tol = lo, hi, dirs, tol
        self._node_to_reduced = node_to_reduced

    @property
    def n_full(self) -> int:
        return self.P.shape[0]

    @property
    def n_reduced(self) -> int:
        return self.P.shape[1]

    def reduced_dofs_of_node(self, node: int) -> np.ndarray:
        """Reduced dof indices ``(bs,)`` of a node (after periodic identification)."""
        return self._node_to_reduced[int(node)] * self.bs + np.arange(self.bs)

    def reduce_matrix(self, A) -> sp.csr_matrix:
        """``P^T A P`` for a SciPy sparse matrix ``A`` ``(n_full, n_full)``."""
        return (self.P.T @ sp.csr_matrix(A) @ self.P).tocsr()

    def restrict(self, b: np.ndarray) -> np.ndarray:
        """``P^T b``: ``(n_full,)`` -> ``(n_reduced,)`` (sums slave entries onto masters)."""
        return self.P.T @ np.asarray(b)

    def prolong(self, x: np.ndarray) -> np.ndarray:
        """``P x``: ``(n_reduced,)`` -> ``(n_full,)`` (copies master values to slaves)."""
        return self.P @ np.asarray(x)

    def factorize(self, A, pinned: Sequence[int] = ()) -> "PeriodicSolver":
        """Reduce ``A`` and factor it once; ``pinned`` reduced dofs are held at zero.

        ``A``: ``dolfinx.la.MatrixCSR`` or SciPy sparse ``(n_full, n_full)``.
        """
        if isinstance(A, dolfinx.la.MatrixCSR):
            A.scatter_reverse()
            A = A.to_scipy()
        return PeriodicSolver(self, self.reduce_matrix(A), pinned)


class PeriodicSolver:
    """``x = P (P^T A P)^{-1} P^T b`` with some reduced dofs pinned to zero; factored once."""

    def __init__(self, constraint: PeriodicConstraint, A_reduced: sp.csr_matrix, pinned: Sequence[int]):
        self.constraint = constraint
        n = A_reduced.shape[0]
        keep = np.ones(n, dtype=bool)
        keep[np.asarray(pinned, dtype=np.int64)] = False
        self.keep = keep
        K = A_reduced[keep][:, keep].tocsc()
        try:
            self.lu = spla.splu(K)
        except RuntimeError as exc:
            raise CalculationError("LU factorization of the periodic system failed", reason=str(exc),
                                   fix="pin enough dofs to remove the rigid translations") from exc
        self.n_factorizations = 1
        self.n_solves = 0

    def solve(self, b: np.ndarray) -> np.ndarray:
        """Solve for a full right-hand side ``b`` ``(n_full,)``; returns the full ``x`` ``(n_full,)``."""
        rhs = self.constraint.restrict(b)[self.keep]
        xr = np.zeros(self.keep.size)
        xr[self.keep] = self.lu.solve(rhs)
        if not np.all(np.isfinite(xr)):
            raise CalculationError("periodic solve produced NaN or infinity",
                                   reason="singular or ill-conditioned reduced matrix",
                                   fix="check the material data and the pinned dofs")
        self.n_solves += 1
        return self.constraint.prolong(xr)
