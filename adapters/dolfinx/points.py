"""Point evaluation of a DOLFINx function under MPI.

``evaluate(u, points)`` returns the same array on every rank.  Each rank searches its *owned*
cells only (a bounding-box tree over owned cells, then
:func:`dolfinx.geometry.compute_colliding_cells`); a point found by several ranks (on a partition
boundary) is taken from the lowest such rank; the values are combined with one ``allreduce``.

Two calling conventions, detected automatically (the call is collective either way):

- every rank passes the *same* points -- the usual case for probes; the result is identical on
  every rank;
- every rank passes *its own* points -- they are gathered, evaluated together, and each rank
  gets back the values at its own points.
"""
from __future__ import annotations

import hashlib
import weakref

import numpy as np

from bridge.errors import SetupError

from ._backend import require

require()

from mpi4py import MPI  # noqa: E402

import dolfinx  # noqa: E402
import dolfinx.fem  # noqa: E402
import dolfinx.geometry  # noqa: E402

from .mesh import owned_cells  # noqa: E402

__all__ = ["evaluate", "PointLocator"]

_locators: "weakref.WeakKeyDictionary[dolfinx.mesh.Mesh, PointLocator]" = weakref.WeakKeyDictionary()


class PointLocator:
    """Finds, for points ``(m, 3)``, the owned cell of this rank that contains each point.

    Built once per mesh (the bounding-box tree over owned cells) and reused; :func:`evaluate`
    keeps one per mesh automatically.
    """

    def __init__(self, mesh: dolfinx.mesh.Mesh):
        self.mesh = mesh
        tdim = mesh.topology.dim
        self.tree = dolfinx.geometry.bb_tree(mesh, tdim, entities=owned_cells(mesh))

    def cells(self, x: np.ndarray) -> np.ndarray:
        """``(m,) int32``: an owned cell containing ``x[i]`` on this rank, or -1."""
        out = np.full(x.shape[0], -1, dtype=np.int32)
        if x.shape[0] == 0:
            return out
        candidates = dolfinx.geometry.compute_collisions_points(self.tree, x)
        colliding = dolfinx.geometry.compute_colliding_cells(self.mesh, candidates, x)
        offsets, links = colliding.offsets, colliding.array
        hit = np.flatnonzero(offsets[1:] > offsets[:-1])
        out[hit] = links[offsets[hit]]
        return out


def _locator(mesh: dolfinx.mesh.Mesh) -> PointLocator:
    loc = _locators.get(mesh)
    if loc is None:
        loc = _locators[mesh] = PointLocator(mesh)
    return loc


def _as_points(points, gdim: int) -> np.ndarray:
    x = np.asarray(points, dtype=np.float64)
    if x.ndim == 1 and gdim == 1:
        x = x.reshape(-1, 1)
    elif x.ndim == 1 and x.size == gdim:
        x = x.reshape(1, gdim)
    if x.ndim != 2 or x.shape[1] not in (gdim, 3):
        raise SetupError(f"points must have shape (m, {gdim}) for a mesh of geometric dimension "
                         f"{gdim}, got {np.shape(points)}",
                         fix=f"pass one row of {gdim} coordinates per point (or {gdim} plus zero "
                             "padding up to 3)")
    if x.shape[1] == 3 and gdim < 3 and np.any(x[:, gdim:] != 0.0):
        raise SetupError(f"points have non-zero coordinates beyond the mesh's {gdim} dimension(s)",
                         fix=f"drop the extra columns or set them to 0 (the mesh lives in {gdim}-D)")
    if not np.all(np.isfinite(x)):
        raise SetupError("points contain NaN or infinity",
                         fix="check how the points were computed before evaluating at them")
    padded = np.zeros((x.shape[0], 3), dtype=np.float64)
    padded[:, : x.shape[1]] = x
    return padded


def _digest(x: np.ndarray) -> bytes:
    return hashlib.blake2b(np.ascontiguousarray(x).tobytes() + str(x.shape).encode(),
                           digest_size=16).digest()


def _evaluate_common(u: dolfinx.fem.Function, x: np.ndarray, outside: str) -> np.ndarray:
    """Evaluate at points ``x (m, 3)`` that are the same on every rank."""
    mesh = u.function_space.mesh
    comm = mesh.comm
    m = x.shape[0]
    value_size = int(np.prod(u.function_space.value_shape)) if u.function_space.value_shape else 1
    cells = _locator(mesh).cells(x)
    rank, size = comm.rank, comm.size
    claim = np.where(cells >= 0, rank, size).astype(np.int32)
    owner = np.empty_like(claim)
    comm.Allreduce(claim, owner, op=MPI.MIN)
    mine = np.flatnonzero(owner == rank)
    values = np.zeros((m, value_size), dtype=np.float64)
    if mine.size:
        values[mine] = np.asarray(u.eval(x[mine], cells[mine])).reshape(mine.size, value_size)
    result = np.empty_like(values)
    comm.Allreduce(values, result, op=MPI.SUM)
    lost = np.flatnonzero(owner == size)
    if lost.size:
        if outside == "raise":
            first = x[lost[0], : mesh.geometry.dim]
            raise SetupError(f"{lost.size} of {m} point(s) lie outside the mesh; the first is "
                             f"{np.array2string(first, precision=17)}",
                             fix="move the points inside the domain, or pass outside='nan'")
        result[lost] = np.nan
    return result


def evaluate(u: dolfinx.fem.Function, points, *, outside: str = "raise") -> np.ndarray:
    """Values of ``u`` at ``points``; collective over the mesh's communicator.

    Parameters
    ----------
    u : dolfinx.fem.Function
        Any function with point-evaluable values (Lagrange, DG, ...); its ghost values must be
        up to date (``u.x.scatter_forward()`` after changing owned values).
    points : array ``(m, gdim)`` (or ``(m, 3)`` with zero padding; ``(m,)`` for 1-D meshes)
        Coordinates in the mesh's length unit.  Either the same on every rank or each rank's own.
    outside : ``"raise"`` (default) or ``"nan"``
        A point in no cell raises :class:`SetupError` naming how many and the first one, or gives
        a row of NaN.

    Returns
    -------
    ``(m,)`` for a scalar function, ``(m, value_size)`` otherwise; float64.  With common points
    the array is bitwise identical on every rank.
    """
    if outside not in ("raise", "nan"):
        raise SetupError(f"outside must be 'raise' or 'nan', got {outside!r}",
                         fix="pass outside='raise' to stop on points off the mesh or 'nan' to get NaN rows")
    mesh = u.function_space.mesh
    comm = mesh.comm
    x = _as_points(points, mesh.geometry.dim)
    scalar = not u.function_space.value_shape
    if comm.size == 1:
        result = _evaluate_common(u, x, outside)
    else:
        digests = comm.allgather(_digest(x))
        if all(d == digests[0] for d in digests):
            result = _evaluate_common(u, x, outside)
        else:
            counts = np.array(comm.allgather(x.shape[0]), dtype=np.int64)
            everything = np.empty((int(counts.sum()), 3), dtype=np.float64)
            comm.Allgatherv(x, [everything, counts * 3])
            start = int(counts[: comm.rank].sum())
            full = _evaluate_common(u, everything, outside)
            result = full[start: start + x.shape[0]]
    return result[:, 0].copy() if scalar else result
