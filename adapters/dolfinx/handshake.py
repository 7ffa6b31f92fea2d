"""DOLFINx meshes and output for the atomistic–continuum handshake (:mod:`bridge.handshake`).

- :func:`p1_mesh` -- the P1 dof layout of a DOLFINx mesh as a :class:`bridge.handshake.P1Mesh`
  (node ``K`` of the handshake is dof ``K`` of the returned scalar P1 space, so a displacement
  ``u`` (nn, d) goes straight into a blocked P1 function);
- :func:`interval` and :func:`plate_with_hole` -- the 1-D continuum and the 2-D plate whose hole
  holds the atomistic core (a sub-mesh of a structured triangle mesh: the cells whose centroid
  lies outside the hole, so the mesh does not match the lattice);
- :func:`triangle_mesh` -- a DOLFINx mesh from given vertices and triangles, e.g. the graded
  mesh on lattice sites of :func:`bridge.handshake.lattice_mesh` (a matching mesh);
- :func:`write_displacement` -- the continuum displacement (and the blending weight) to XDMF;
  :func:`write_atoms_vtk` -- the atoms with displacement and weight as VTK points (ParaView).

Serial: a handshake runs on one rank (the atomistic region is small); meshes are built on
``MPI.COMM_SELF``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bridge.errors import SetupError
from bridge.fileio import atomic_write_text
from bridge.handshake import P1Mesh

from ._backend import require

require()
import dolfinx  # noqa: E402
import dolfinx.fem  # noqa: E402
import dolfinx.io  # noqa: E402
import dolfinx.mesh  # noqa: E402
from mpi4py import MPI  # noqa: E402

__all__ = ["p1_mesh", "interval", "plate_with_hole", "triangle_mesh", "write_displacement", "write_atoms_vtk"]


def p1_mesh(domain: "dolfinx.mesh.Mesh") -> tuple[P1Mesh, Any]:
    """``(P1Mesh, V)``: the handshake mesh on the dofs of the scalar P1 space ``V`` of ``domain``."""
    if domain.comm.size != 1:
        raise SetupError("the handshake runs on one rank", fix="build the mesh on MPI.COMM_SELF")
    V = dolfinx.fem.functionspace(domain, ("Lagrange", 1))
    gdim = domain.geometry.dim
    nodes = V.tabulate_dof_coordinates()[:, :gdim]
    cells = np.asarray(V.dofmap.list, np.int64)
    return P1Mesh(nodes, cells), V


def interval(x0: float, x1: float, n: int) -> "dolfinx.mesh.Mesh":
    """The interval [x0, x1] nm in ``n`` equal cells."""
    if not (np.isfinite(x0) and np.isfinite(x1) and x1 > x0) or int(n) < 1:
        raise SetupError(f"need x0 < x1 and n >= 1, got {x0}, {x1}, {n}", fix="pass the interval ends in nm")
    return dolfinx.mesh.create_interval(MPI.COMM_SELF, int(n), [float(x0), float(x1)])


def plate_with_hole(lower: tuple[float, float], upper: tuple[float, float], cells: tuple[int, int],
                    centre: tuple[float, float], radius: float) -> "dolfinx.mesh.Mesh":
    """Triangles of a structured ``cells`` grid on [lower, upper] (nm) minus the disk ``radius`` at ``centre``.

    The hole's edge is the staircase of cells whose centroid lies within ``radius``; the atoms
    fill it and overlap the cells around it.
    """
    base = dolfinx.mesh.create_rectangle(MPI.COMM_SELF, [np.asarray(lower, float), np.asarray(upper, float)],
                                         [int(c) for c in cells], dolfinx.mesh.CellType.triangle,
                                         diagonal=dolfinx.mesh.DiagonalType.crossed)
    tdim = base.topology.dim
    x = base.geometry.x[:, :2]
    conn = np.asarray(base.geometry.dofmap)
    cent = x[conn].mean(1)
    keep = np.flatnonzero(np.linalg.norm(cent - np.asarray(centre, float), axis=1) > float(radius))
    if keep.size == len(cent):
        raise SetupError("the hole is smaller than one cell", fix="increase radius or refine the grid")
    sub = dolfinx.mesh.create_submesh(base, tdim, keep.astype(np.int32))[0]
    return sub


def triangle_mesh(nodes: np.ndarray, cells: np.ndarray) -> "dolfinx.mesh.Mesh":
    """A serial DOLFINx triangle mesh with vertices ``nodes`` (nn, 2) nm and ``cells`` (ne, 3)."""
    import basix.ufl

    nodes = np.ascontiguousarray(nodes, float)
    cells = np.ascontiguousarray(cells, np.int64)
    if nodes.ndim != 2 or nodes.shape[1] != 2 or cells.ndim != 2 or cells.shape[1] != 3:
        raise SetupError(f"need nodes (nn, 2) and cells (ne, 3), got {nodes.shape} and {cells.shape}",
                         fix="pass the output of bridge.handshake.lattice_mesh")
    if not np.all(np.isfinite(nodes)) or cells.min() < 0 or cells.max() >= len(nodes):
        raise SetupError("mesh nodes must be finite and cells must index existing nodes",
                         fix="check the connectivity")
    element = basix.ufl.element("Lagrange", "triangle", 1, shape=(2,))
    return dolfinx.mesh.create_mesh(MPI.COMM_SELF, cells, element, nodes)


def write_displacement(path: str | Path, V: Any, u: np.ndarray, weight: np.ndarray | None = None) -> str:
    """Write the displacement ``u`` (nn, d) nm (and the weight (nn,), if given) to an XDMF file."""
    domain = V.mesh
    d = domain.geometry.dim
    u = np.asarray(u, float)
    if u.shape != (V.dofmap.index_map.size_local, d) or not np.all(np.isfinite(u)):
        raise SetupError(f"u must be finite with shape ({V.dofmap.index_map.size_local}, {d})",
                         fix="pass the handshake's nodal displacement array")
    W = dolfinx.fem.functionspace(domain, ("Lagrange", 1, (d,)))
    fu = dolfinx.fem.Function(W, name="displacement")
    fu.x.array[: u.size] = u.ravel()
    path = Path(path)
    with dolfinx.io.XDMFFile(MPI.COMM_SELF, str(path), "w") as f:
        f.write_mesh(domain)
        f.write_function(fu)
        if weight is not None:
            fw = dolfinx.fem.Function(V, name="continuum_weight")
            fw.x.array[: len(weight)] = np.asarray(weight, float)
            f.write_function(fw)
    return str(path)


def write_atoms_vtk(path: str | Path, x: np.ndarray, displacement: np.ndarray, weight: np.ndarray) -> str:
    """Atoms as a legacy-VTK point cloud (ParaView) with ``displacement`` and ``weight`` point data."""
    x = np.asarray(x, float)
    n, d = x.shape
    pad = np.zeros((n, 3))
    pad[:, :d] = x
    disp = np.zeros((n, 3))
    disp[:, :d] = displacement
    lines = ["# vtk DataFile Version 3.0", "msbridge handshake atoms", "ASCII", "DATASET POLYDATA",
             f"POINTS {n} double"]
    lines += [f"{a:.10g} {b:.10g} {c:.10g}" for a, b, c in pad]
    lines += [f"VERTICES {n} {2 * n}"] + [f"1 {i}" for i in range(n)]
    lines += [f"POINT_DATA {n}", "VECTORS displacement double"]
    lines += [f"{a:.10g} {b:.10g} {c:.10g}" for a, b, c in disp]
    lines += ["SCALARS weight double 1", "LOOKUP_TABLE default"] + [f"{w:.10g}" for w in weight]
    return str(atomic_write_text(path, "\n".join(lines) + "\n"))
