r"""Periodic unit-cell meshes of fiber composites and porous media, meshed with gmsh.

A cell is a rectangle whose boundary nodes match on opposite sides (gmsh's ``setPeriodic``), so
:class:`~bridge_adapters.dolfinx.periodic.PeriodicConstraint` can tie them.  Circular inclusions
(fibers, or pores cut out of the mesh) sit on a lattice:

- ``"hexagonal"``: cell :math:`[0, a] \times [0, a\sqrt3]` with inclusions at the four corners
  and the centre -- two per cell, nearest-neighbour distance ``a``.  The hexagonal array is
  transversely isotropic, so the effective in-plane stiffness and conductivity are isotropic.
  Radius :math:`r = a\sqrt{f\sqrt3/(2\pi)}` for inclusion area fraction ``f`` (at most
  :math:`\pi/(2\sqrt3) \approx 0.907`, touching).
- ``"square"``: cell :math:`[0, a]^2` with one inclusion at the centre,
  :math:`r = a\sqrt{f/\pi}` (at most :math:`\pi/4`).  Square symmetry: ``C11 = C22`` but
  ``C66 != (C11 - C12)/2`` in general.

Inclusion circles are conforming (curved boundaries resolved by the mesh, no staircase), and
corner inclusions are clipped to the cell.  Lengths are in the unit of ``a``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bridge.errors import EngineNotAvailable, SetupError

from ._backend import require

require()

from mpi4py import MPI  # noqa: E402

import dolfinx  # noqa: E402
import dolfinx.io.gmsh  # noqa: E402

from .mesh import NamedTags  # noqa: E402

__all__ = ["UnitCell", "inclusion_cell"]

_MAX_FRACTION = {"hexagonal": np.pi / (2.0 * np.sqrt(3.0)), "square": np.pi / 4.0}


@dataclass
class UnitCell:
    """A periodic cell mesh and what it was built from.

    ``mesh``: 2-D DOLFINx mesh on ``comm``; ``cells``: :class:`NamedTags` of the phases,
    ``"matrix"`` and (for ``inclusion="phase"``) ``"fiber"``; ``lower``, ``upper``: ``(2,)`` box
    corners; ``radius``: inclusion radius; ``centres``: ``(k, 2)`` inclusion centres (corner
    ones clipped); ``fraction``: nominal inclusion area fraction; ``porosity``: meshed area over
    box area (``1 - fraction`` for pores, 1 for a phase inclusion, up to meshing of the arcs).
    """

    mesh: dolfinx.mesh.Mesh
    cells: NamedTags
    lower: np.ndarray
    upper: np.ndarray
    radius: float
    centres: np.ndarray
    fraction: float
    arrangement: str
    inclusion: str

    @property
    def box_volume(self) -> float:
        return float(np.prod(self.upper - self.lower))

    @property
    def porosity(self) -> float:
        import ufl

        area = dolfinx.fem.assemble_scalar(dolfinx.fem.form(1.0 * ufl.dx(domain=self.mesh)))
        return float(self.mesh.comm.allreduce(area, op=MPI.SUM)) / self.box_volume


def _gmsh():
    try:
        import gmsh
    except ImportError as exc:
        raise EngineNotAvailable("gmsh", "dolfinx", reason=str(exc)) from exc
    return gmsh


def inclusion_cell(fraction: float, *, arrangement: str = "hexagonal", size: float = 1.0,
                   h: float | None = None, inclusion: str = "phase", comm=None) -> UnitCell:
    """Mesh a periodic cell with circular inclusions at area fraction ``fraction``.

    Parameters
    ----------
    fraction : float
        Inclusion area fraction in (0, f_max): 0.907 hexagonal, 0.785 square, less a 2 % gap.
    arrangement : ``"hexagonal"`` or ``"square"``
    size : float
        Lattice spacing ``a`` (length unit of the mesh).
    h : float, optional
        Target element size (default ``a/20``).
    inclusion : ``"phase"`` (a second material, tagged ``"fiber"``) or ``"void"`` (cut out: a
        porous medium; the mesh is the pore/matrix space).
    comm : MPI communicator, default ``MPI.COMM_SELF`` (RVEs run on one rank each).
    """
    if arrangement not in _MAX_FRACTION:
        raise SetupError(f"unknown arrangement {arrangement!r}",
                         fix="pass arrangement='hexagonal' or 'square'")
    if inclusion not in ("phase", "void"):
        raise SetupError(f"unknown inclusion kind {inclusion!r}",
                         fix="pass inclusion='phase' (two materials) or 'void' (pores cut out)")
    f_max = 0.98 * _MAX_FRACTION[arrangement]
    if not (0.0 < float(fraction) < f_max):
        raise SetupError(f"inclusion fraction {fraction} is outside (0, {f_max:.3f}) for a "
                         f"{arrangement} array (above it neighbouring inclusions touch)",
                         fix=f"pass a fraction between 0 and {f_max:.3f}")
    a = float(size)
    if not a > 0.0:
        raise SetupError(f"cell size must be positive, got {size}", fix="pass size > 0")
    h = a / 20.0 if h is None else float(h)
    if not (0.0 < h <= a):
        raise SetupError(f"element size h={h} must lie in (0, size]", fix="pass 0 < h <= size")
    comm = MPI.COMM_SELF if comm is None else comm
    if arrangement == "hexagonal":
        Lx, Ly = a, a * np.sqrt(3.0)
        r = a * np.sqrt(fraction * np.sqrt(3.0) / (2.0 * np.pi))
        centres = np.array([[0, 0], [Lx, 0], [0, Ly], [Lx, Ly], [Lx / 2, Ly / 2]], dtype=float)
    else:
        Lx = Ly = a
        r = a * np.sqrt(fraction / np.pi)
        centres = np.array([[Lx / 2, Ly / 2]])

    gmsh = _gmsh()
    gmsh.initialize(interruptible=False)
    try:
        gmsh.option.setNumber("General.Terminal", 0)
        gmsh.model.add("cell")
        if comm.rank == 0:
            _build(gmsh, Lx, Ly, r, centres, h, inclusion)
        data = dolfinx.io.gmsh.model_to_mesh(gmsh.model, comm, 0, gdim=2)
    finally:
        gmsh.finalize()
    ids = {"matrix": 1} if inclusion == "void" else {"matrix": 1, "fiber": 2}
    cells = NamedTags(data.mesh, data.cell_tags, ids)
    return UnitCell(mesh=data.mesh, cells=cells, lower=np.zeros(2), upper=np.array([Lx, Ly]),
                    radius=float(r), centres=centres, fraction=float(fraction),
                    arrangement=arrangement, inclusion=inclusion)


def _build(gmsh, Lx: float, Ly: float, r: float, centres: np.ndarray, h: float, inclusion: str) -> None:
    occ = gmsh.model.occ
    rect = occ.addRectangle(0.0, 0.0, 0.0, Lx, Ly)
    disks = []
    for cx, cy in centres:
        disk = occ.addDisk(cx, cy, 0.0, r, r)
        clip = occ.addRectangle(0.0, 0.0, 0.0, Lx, Ly)
        out, _ = occ.intersect([(2, disk)], [(2, clip)])
        disks += out
    if inclusion == "void":
        occ.cut([(2, rect)], disks)
    else:
        occ.fragment([(2, rect)], disks)
    occ.synchronize()
    matrix, fibers = [], []
    for _, tag in gmsh.model.getEntities(2):
        box = np.array(gmsh.model.getBoundingBox(2, tag))
        lo, hi = box[:2], box[3:5]
        slack = 1e-6 * max(Lx, Ly)
        inside = bool(np.any(np.all((lo >= centres - r - slack) & (hi <= centres + r + slack), axis=1)))
        (fibers if inside else matrix).append(tag)
    gmsh.model.addPhysicalGroup(2, matrix, 1, name="matrix")
    if inclusion == "phase":
        gmsh.model.addPhysicalGroup(2, fibers, 2, name="fiber")
    eps = 1e-7 * max(Lx, Ly)
    for axis, shift in ((0, Lx), (1, Ly)):
        lo_min = [-eps, -eps, -eps]
        lo_max = [Lx + eps, Ly + eps, eps]
        lo_max[axis] = eps
        lower = gmsh.model.getEntitiesInBoundingBox(*lo_min, *lo_max, dim=1)
        translation = [1, 0, 0, shift if axis == 0 else 0.0,
                       0, 1, 0, shift if axis == 1 else 0.0,
                       0, 0, 1, 0, 0, 0, 0, 1]
        for _, tag in lower:
            b = np.array(gmsh.model.getBoundingBox(1, tag))
            b[axis] += shift
            b[axis + 3] += shift
            match = gmsh.model.getEntitiesInBoundingBox(*(b[:3] - eps), *(b[3:] + eps), dim=1)
            partners = [t for _, t in match if t != tag]
            if len(partners) != 1:
                raise SetupError(f"could not pair boundary curve {tag} of the cell with its periodic image",
                                 fix="use a fraction away from values where an inclusion just "
                                     "touches the cell boundary")
            gmsh.model.mesh.setPeriodic(1, [partners[0]], [tag], translation)
    gmsh.option.setNumber("Mesh.MeshSizeMax", h)
    gmsh.option.setNumber("Mesh.MeshSizeMin", 0.25 * h)
    gmsh.model.mesh.generate(2)
