"""Meshes and named tags: interval / rectangle / box meshes and boundaries tagged by name.

Coordinates are in the mesh's length unit (the caller's choice; SI metres unless stated).
A *locator* is a function ``x -> mask`` with ``x`` of shape ``(3, n)`` (always three rows, the
unused ones zero) returning a boolean array of shape ``(n,)``, as in
:func:`dolfinx.mesh.locate_entities_boundary`.  A facet is tagged when the locator holds at all of
its vertices.
"""
from __future__ import annotations

from typing import Callable, Mapping, Sequence

import numpy as np

from bridge.errors import SetupError

from ._backend import require

require()

from mpi4py import MPI  # noqa: E402

import dolfinx  # noqa: E402
import dolfinx.fem  # noqa: E402
import dolfinx.mesh  # noqa: E402
import ufl  # noqa: E402

__all__ = [
    "interval_mesh",
    "rectangle_mesh",
    "box_mesh",
    "NamedTags",
    "tag_boundaries",
    "tag_cells",
    "cell_function",
    "owned_cells",
]

Locator = Callable[[np.ndarray], np.ndarray]

_CELLS_2D = {"triangle": dolfinx.mesh.CellType.triangle,
             "quadrilateral": dolfinx.mesh.CellType.quadrilateral}
_CELLS_3D = {"tetrahedron": dolfinx.mesh.CellType.tetrahedron,
             "hexahedron": dolfinx.mesh.CellType.hexahedron}
_DIAGONALS = {d.name: d for d in (dolfinx.mesh.DiagonalType.left, dolfinx.mesh.DiagonalType.right,
                                  dolfinx.mesh.DiagonalType.crossed,
                                  dolfinx.mesh.DiagonalType.left_right,
                                  dolfinx.mesh.DiagonalType.right_left)}


def _comm(comm):
    return MPI.COMM_WORLD if comm is None else comm


def _counts(n: Sequence[int] | int, dim: int, what: str) -> list[int]:
    counts = [int(n)] * dim if np.isscalar(n) else [int(c) for c in n]
    if len(counts) != dim or any(c < 1 for c in counts):
        raise SetupError(f"{what} needs {dim} positive cell count(s), got {n!r}",
                         fix=f"pass n as one integer >= 1 or {dim} of them")
    return counts


def _corners(lower, upper, dim: int, what: str) -> tuple[np.ndarray, np.ndarray]:
    lo = np.asarray(lower, dtype=np.float64).reshape(-1)
    hi = np.asarray(upper, dtype=np.float64).reshape(-1)
    if lo.shape != (dim,) or hi.shape != (dim,) or not np.all(hi > lo):
        raise SetupError(f"{what} needs lower < upper with {dim} coordinate(s) each, "
                         f"got {lower!r}, {upper!r}",
                         fix=f"pass {dim} lower and {dim} upper corner coordinates, each lower "
                             "strictly below its upper")
    return lo, hi


def interval_mesh(n: int, extent: Sequence[float] = (0.0, 1.0), *, comm=None) -> dolfinx.mesh.Mesh:
    """An interval mesh of ``n`` equal cells on ``[extent[0], extent[1]]`` (length unit).

    ``comm``: MPI communicator the mesh is distributed over (default ``MPI.COMM_WORLD``).
    """
    (n,) = _counts(n, 1, "interval_mesh")
    lo, hi = _corners([extent[0]], [extent[1]], 1, "interval_mesh")
    return dolfinx.mesh.create_interval(_comm(comm), n, [float(lo[0]), float(hi[0])])


def rectangle_mesh(n: Sequence[int] | int, lower: Sequence[float] = (0.0, 0.0),
                   upper: Sequence[float] = (1.0, 1.0), *, cell: str = "triangle",
                   diagonal: str = "right", comm=None) -> dolfinx.mesh.Mesh:
    """A structured mesh of the rectangle ``[lower, upper]`` with ``n = (nx, ny)`` cells per side.

    ``cell``: ``"triangle"`` or ``"quadrilateral"``; ``diagonal``: triangle diagonal
    (``"right"``, ``"left"``, ``"crossed"``, ``"left_right"``, ``"right_left"``).
    """
    counts = _counts(n, 2, "rectangle_mesh")
    lo, hi = _corners(lower, upper, 2, "rectangle_mesh")
    if cell not in _CELLS_2D:
        raise SetupError(f"unknown 2-D cell type '{cell}'", fix=f"use one of {sorted(_CELLS_2D)}")
    if diagonal not in _DIAGONALS:
        raise SetupError(f"unknown diagonal '{diagonal}'", fix=f"use one of {sorted(_DIAGONALS)}")
    return dolfinx.mesh.create_rectangle(_comm(comm), [lo, hi], counts, _CELLS_2D[cell],
                                         diagonal=_DIAGONALS[diagonal])


def box_mesh(n: Sequence[int] | int, lower: Sequence[float] = (0.0, 0.0, 0.0),
             upper: Sequence[float] = (1.0, 1.0, 1.0), *, cell: str = "tetrahedron",
             comm=None) -> dolfinx.mesh.Mesh:
    """A structured mesh of the box ``[lower, upper]`` with ``n = (nx, ny, nz)`` cells per side.

    ``cell``: ``"tetrahedron"`` or ``"hexahedron"``.
    """
    counts = _counts(n, 3, "box_mesh")
    lo, hi = _corners(lower, upper, 3, "box_mesh")
    if cell not in _CELLS_3D:
        raise SetupError(f"unknown 3-D cell type '{cell}'", fix=f"use one of {sorted(_CELLS_3D)}")
    return dolfinx.mesh.create_box(_comm(comm), [lo, hi], counts, _CELLS_3D[cell])


def owned_cells(mesh: dolfinx.mesh.Mesh) -> np.ndarray:
    """Indices ``(n_owned,) int32`` of the cells this rank owns (ghost cells excluded)."""
    tdim = mesh.topology.dim
    return np.arange(mesh.topology.index_map(tdim).size_local, dtype=np.int32)


class NamedTags:
    """Mesh tags of one entity dimension with a name for every tag value.

    ``tags`` is the :class:`dolfinx.mesh.MeshTags`; ``ids`` maps names to tag values.  Unknown
    names raise :class:`SetupError` listing the known ones.
    """

    def __init__(self, mesh: dolfinx.mesh.Mesh, tags: dolfinx.mesh.MeshTags, ids: Mapping[str, int]):
        self.mesh = mesh
        self.tags = tags
        self.ids = dict(ids)
        self.dim = tags.dim

    @property
    def names(self) -> list[str]:
        """Tag names in tagging order."""
        return list(self.ids)

    def id(self, name: str) -> int:
        """The tag value of ``name``."""
        try:
            return self.ids[name]
        except KeyError:
            kind = "boundary" if self.dim == self.mesh.topology.dim - 1 else "region"
            raise SetupError(f"unknown {kind} '{name}' (known tags: {', '.join(self.ids) or 'none'})",
                             fix="use one of the names given when the mesh was tagged") from None

    def entities(self, name: str) -> np.ndarray:
        """Process-local indices ``(n,) int32`` of the entities tagged ``name`` (owned and ghost)."""
        return self.tags.find(self.id(name))

    def measure(self, kind: str | None = None) -> ufl.Measure:
        """The UFL measure (``ds`` for facets, ``dx`` for cells) with these tags as subdomain data."""
        tdim = self.mesh.topology.dim
        kind = kind or ("ds" if self.dim == tdim - 1 else "dx")
        return ufl.Measure(kind, domain=self.mesh, subdomain_data=self.tags)

    def __contains__(self, name: object) -> bool:
        return name in self.ids

    def __repr__(self) -> str:
        return f"NamedTags(dim={self.dim}, ids={self.ids})"


def _tag(mesh: dolfinx.mesh.Mesh, dim: int, locators: Mapping[str, Locator], *,
         boundary: bool, what: str) -> NamedTags:
    if not locators:
        raise SetupError(f"no {what} locators given", fix="pass a dict {name: locator}")
    if dim == mesh.topology.dim - 1:
        mesh.topology.create_connectivity(dim, mesh.topology.dim)
    parts, values, ids = [], [], {}
    n_owned = mesh.topology.index_map(dim).size_local
    for value, (name, locator) in enumerate(locators.items(), start=1):
        if not isinstance(name, str) or not name:
            raise SetupError(f"{what} names must be non-empty strings, got {name!r}",
                             fix="key the locators by names such as 'left', 'inclusion'")
        if not callable(locator):
            raise SetupError(f"the locator of {what} '{name}' is not callable",
                             fix="pass a function x -> bool mask, x of shape (3, n)")
        if boundary:
            found = dolfinx.mesh.locate_entities_boundary(mesh, dim, locator)
        else:
            found = dolfinx.mesh.locate_entities(mesh, dim, locator)
        count = mesh.comm.allreduce(int(np.count_nonzero(found < n_owned)), op=MPI.SUM)
        if count == 0:
            raise SetupError(f"{what} '{name}' matches no entity of the mesh",
                             fix="check the locator: it receives x of shape (3, n), rows x, y, z")
        parts.append(found)
        values.append(np.full(found.size, value, dtype=np.int32))
        ids[name] = value
    entities = np.concatenate(parts)
    tag_values = np.concatenate(values)
    order = np.argsort(entities, kind="stable")
    entities, tag_values = entities[order], tag_values[order]
    dup = np.flatnonzero(entities[1:] == entities[:-1])
    if mesh.comm.allreduce(int(dup.size), op=MPI.SUM):
        names = {v: k for k, v in ids.items()}
        if dup.size:
            pair = sorted({names[tag_values[dup[0]]], names[tag_values[dup[0] + 1]]})
            raise SetupError(f"{what}s {pair} overlap: an entity matches both locators",
                             fix="make the locators disjoint (corners belong to no facet in 2-D/3-D)")
        raise SetupError(f"two {what} locators overlap on another rank",
                         fix="make the locators disjoint")
    tags = dolfinx.mesh.meshtags(mesh, dim, entities.astype(np.int32), tag_values)
    return NamedTags(mesh, tags, ids)


def tag_boundaries(mesh: dolfinx.mesh.Mesh, locators: Mapping[str, Locator]) -> NamedTags:
    """Tag exterior facets by name: ``{"left": lambda x: np.isclose(x[0], 0.0), ...}``.

    Tag values are 1, 2, ... in the order of ``locators``.  Every locator must match at least one
    exterior facet and no facet may match two locators (:class:`SetupError` otherwise).
    Collective over ``mesh.comm``.
    """
    return _tag(mesh, mesh.topology.dim - 1, locators, boundary=True, what="boundary")


def tag_cells(mesh: dolfinx.mesh.Mesh, locators: Mapping[str, Locator]) -> NamedTags:
    """Tag cells by name (a cell is tagged when the locator holds at all its vertices).

    Collective over ``mesh.comm``; rules as :func:`tag_boundaries`.
    """
    return _tag(mesh, mesh.topology.dim, locators, boundary=False, what="region")


def cell_function(mesh: dolfinx.mesh.Mesh, values, *, tags: NamedTags | None = None,
                  name: str = "cellwise", shape: tuple[int, ...] = ()) -> dolfinx.fem.Function:
    """A piecewise-constant (DG0) function, e.g. a conductivity or a stiffness per phase.

    ``values`` is one of

    - a callable ``f(midpoints)`` with ``midpoints`` of shape ``(3, n_cells)`` returning
      ``(n_cells,)`` (scalar) or ``(n_cells, *shape)``;
    - a mapping ``{region name: value}`` together with ``tags`` from :func:`tag_cells`
      (every cell must be tagged);
    - a scalar or an array of shape ``shape`` (the same value everywhere).

    ``shape``: value shape, ``()`` for a scalar, ``(3, 3)`` for a Voigt stiffness.
    """
    element = ("DG", 0, shape) if shape else ("DG", 0)
    V = dolfinx.fem.functionspace(mesh, element)
    f = dolfinx.fem.Function(V, name=name)
    tdim = mesh.topology.dim
    n_cells = mesh.topology.index_map(tdim).size_local + mesh.topology.index_map(tdim).num_ghosts
    size = int(np.prod(shape)) if shape else 1
    cells = np.arange(n_cells, dtype=np.int32)
    # DG0 of any value shape: one block of ``size`` dofs per cell.
    dofs = V.dofmap.list[:, 0]
    array = f.x.array.reshape(-1, size)
    if callable(values):
        mid = dolfinx.mesh.compute_midpoints(mesh, tdim, cells).T
        vals = np.asarray(values(mid), dtype=np.float64).reshape(n_cells, size)
        array[dofs] = vals
    elif isinstance(values, Mapping):
        if tags is None or tags.dim != tdim:
            raise SetupError("a mapping of region values needs the cell tags",
                             fix="pass tags=tag_cells(mesh, {...})")
        done = np.zeros(n_cells, dtype=bool)
        for region, val in values.items():
            cells_r = tags.entities(region)
            array[dofs[cells_r]] = np.broadcast_to(np.asarray(val, dtype=np.float64).reshape(-1), size)
            done[cells_r] = True
        n_owned = mesh.topology.index_map(tdim).size_local
        missing = mesh.comm.allreduce(int(np.count_nonzero(~done[:n_owned])))
        if missing:
            raise SetupError(f"{missing} cell(s) have no value (regions given: {list(values)}, "
                             f"known: {tags.names})", fix="give a value for every tagged region")
    else:
        val = np.asarray(values, dtype=np.float64).reshape(-1)
        if val.size != size:
            raise SetupError(f"value of shape {np.shape(values)} does not match shape {shape}",
                             fix=f"pass one value with {size} entries (shape {shape}), a mapping "
                                 "region -> value, or a callable of the cell midpoints")
        array[:] = val
    f.x.scatter_forward()
    return f
