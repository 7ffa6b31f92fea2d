r"""First-order homogenization of a linear-elastic plane-strain RVE with periodic fluctuations.

Voigt notation with engineering shear throughout: strains :math:`\varepsilon =
(\varepsilon_{11}, \varepsilon_{22}, \gamma_{12} = 2\varepsilon_{12})`, stresses
:math:`\sigma = (\sigma_{11}, \sigma_{22}, \sigma_{12})`, stiffness ``C`` ``(3, 3)`` with
:math:`\sigma = C\varepsilon`, so :math:`\sigma:\varepsilon = \sigma\cdot\varepsilon`.

For a macro strain ``E`` the displacement is :math:`u = E\,x + w` with a periodic fluctuation
``w`` (one node pinned) solving

.. math:: \int_Y \varepsilon(v)\cdot C\,\varepsilon(w)\,dx = -\int_Y \varepsilon(v)\cdot C\,E\,dx
          \quad\forall v \text{ periodic}.

``E`` is a DOLFINx ``Constant`` in the right-hand side: the forms are compiled once, the matrix
assembled and factored once (:class:`PeriodicConstraint`), and the three unit load cases
``E = e_1, e_2, e_3`` cost one right-hand side and one triangular solve each.  Column ``j`` of the
effective stiffness is the volume-averaged stress of load case ``j``,
:math:`C^*_{:,j} = \langle\sigma\rangle = |Y|^{-1}\int_Y C(\varepsilon(w) + E)\,dx`, with ``|Y|``
the volume of the box cell (voids included).  The Hill--Mandel condition
:math:`\langle\sigma:\varepsilon\rangle = \langle\sigma\rangle : E` holds for periodic ``w``;
its relative residual is returned per load case as a check of the solve.

Units: whatever ``C`` is in (e.g. GPa); lengths cancel.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from bridge.errors import SetupError

from ._backend import require

require()

import dolfinx  # noqa: E402
import dolfinx.fem  # noqa: E402
import ufl  # noqa: E402

from .mesh import NamedTags, cell_function  # noqa: E402
from .periodic import PeriodicConstraint  # noqa: E402

__all__ = ["homogenize_elasticity", "HomogenizationResult"]


@dataclass
class HomogenizationResult:
    """Effective plane-strain stiffness of an RVE and the checks that come with it.

    ``stiffness``: ``(3, 3)`` effective Voigt stiffness ``[11, 22, 12]`` (engineering shear).
    ``hill_mandel``: ``(3,)`` relative residual ``|<sigma:eps> - <sigma>:E| / |<sigma>:E|`` per
    unit load case.  ``mean_strain``: ``(3, 3)`` column ``j`` = ``<eps>`` of load case ``j``
    (equals the identity for a periodic fluctuation).  ``volume``: box volume (area).
    ``n_dofs``/``n_reduced``: full and periodic unknowns.  ``fluctuations``: the three ``w``
    functions when asked for.
    """

    stiffness: np.ndarray
    hill_mandel: np.ndarray
    mean_strain: np.ndarray
    volume: float
    n_dofs: int
    n_reduced: int
    n_cells: int
    stats: dict[str, int] = field(default_factory=dict)
    fluctuations: list[Any] | None = None

    @property
    def symmetry_error(self) -> float:
        """``max|C - C^T| / max|C|`` (zero up to round-off for a symmetric problem)."""
        C = self.stiffness
        return float(np.max(np.abs(C - C.T)) / np.max(np.abs(C)))


def _stiffness_function(mesh, stiffness, cell_tags):
    if isinstance(stiffness, dolfinx.fem.Function):
        if stiffness.ufl_shape != (3, 3):
            raise SetupError(f"stiffness Function must have shape (3, 3), got {stiffness.ufl_shape}",
                             fix="build it with cell_function(mesh, values, shape=(3, 3)) "
                                 "holding the Voigt [11, 22, 12] stiffness")
        return stiffness
    if isinstance(stiffness, Mapping) and cell_tags is None:
        raise SetupError("a mapping of phase stiffnesses needs cell_tags",
                         fix="pass cell_tags=tag_cells(mesh, {phase: locator, ...})")
    if not (callable(stiffness) or isinstance(stiffness, Mapping)):
        arr = np.asarray(stiffness, dtype=np.float64)
        if arr.shape != (3, 3):
            raise SetupError(f"stiffness must be (3, 3) Voigt, got shape {arr.shape}",
                             fix="pass the plane-strain Voigt [11, 22, 12] matrix, e.g. "
                                 "bridge.homogenization.plane_strain_isotropic(E, nu)")
    return cell_function(mesh, stiffness, tags=cell_tags, name="C", shape=(3, 3))


def _check_stiffness(C: dolfinx.fem.Function) -> None:
    mats = C.x.array.reshape(-1, 3, 3)
    scale = np.max(np.abs(mats))
    if not np.all(np.isfinite(mats)) or scale == 0.0:
        raise SetupError("stiffness contains NaN/inf or is zero",
                         fix="give every phase a finite, nonzero stiffness (check E and nu)")
    if np.max(np.abs(mats - mats.transpose(0, 2, 1))) > 1e-12 * scale:
        raise SetupError("stiffness is not symmetric in some cell", fix="pass symmetric Voigt matrices")
    if np.min(np.linalg.eigvalsh(mats)) <= 0.0:
        raise SetupError("stiffness is not positive definite in some cell",
                         fix="check E > 0 and -1 < nu < 0.5 of every phase")


def homogenize_elasticity(mesh: dolfinx.mesh.Mesh, stiffness: Any, *,
                          cell_tags: NamedTags | None = None, degree: int = 1,
                          tol: float | None = None,
                          keep_fluctuations: bool = False) -> HomogenizationResult:
    """Effective plane-strain stiffness of the periodic RVE ``mesh`` (a box cell, one MPI rank).

    Parameters
    ----------
    mesh : dolfinx.mesh.Mesh
        2-D mesh of a rectangle whose nodes match on opposite sides, on ``MPI.COMM_SELF`` or a
        one-rank communicator.
    stiffness :
        Voigt ``(3, 3)`` stiffness of the cells: one array for all cells; ``{phase: (3, 3)}``
        with ``cell_tags`` from :func:`tag_cells`; a callable ``C_of_cell(midpoints (3, n)) ->
        (n, 3, 3)``; or a DG0 ``Function`` of shape ``(3, 3)``.
    degree : int
        Lagrange degree of the fluctuation.
    tol : float, optional
        Node matching tolerance of the periodic map (default ``1e-8`` times the cell size).
    keep_fluctuations : bool
        Return the three fluctuation functions ``w`` (for plotting or output).

    Returns
    -------
    HomogenizationResult
    """
    if mesh.geometry.dim != 2 or mesh.topology.dim != 2:
        raise SetupError("homogenize_elasticity is plane strain: it needs a 2-D mesh",
                         fix="pass a rectangle mesh (rectangle_mesh)")
    C = _stiffness_function(mesh, stiffness, cell_tags)
    _check_stiffness(C)
    V = dolfinx.fem.functionspace(mesh, ("Lagrange", int(degree), (2,)))
    constraint = PeriodicConstraint(V, tol=tol)

    def eps(w):
        return ufl.as_vector([w[0].dx(0), w[1].dx(1), w[0].dx(1) + w[1].dx(0)])

    E = dolfinx.fem.Constant(mesh, np.zeros(3))
    w_trial, v = ufl.TrialFunction(V), ufl.TestFunction(V)
    w = dolfinx.fem.Function(V, name="w")
    dx = ufl.Measure("dx", domain=mesh)
    a = dolfinx.fem.form(ufl.inner(ufl.dot(C, eps(w_trial)), eps(v)) * dx)
    L = dolfinx.fem.form(-ufl.inner(ufl.dot(C, E), eps(v)) * dx)
    strain = eps(w) + E
    stress = ufl.dot(C, strain)
    # One functional for every average: select picks sigma (3), eps (3) or sigma.eps (1).
    select = dolfinx.fem.Constant(mesh, np.zeros(7))
    quantities = ufl.as_vector([stress[0], stress[1], stress[2],
                                strain[0], strain[1], strain[2], ufl.dot(stress, strain)])
    average = dolfinx.fem.form(ufl.dot(select, quantities) * dx)

    A = dolfinx.fem.assemble_matrix(a)
    corner = int(np.argmin(np.sum((V.tabulate_dof_coordinates()[:, :2] - constraint.lower) ** 2, axis=1)))
    solver = constraint.factorize(A, pinned=constraint.reduced_dofs_of_node(corner))

    volume = float(np.prod(constraint.upper - constraint.lower))
    C_eff = np.zeros((3, 3))
    mean_strain = np.zeros((3, 3))
    residual = np.zeros(3)
    kept = []
    b = dolfinx.fem.Function(V)
    for j in range(3):
        E.value[:] = np.eye(3)[j]
        b.x.array[:] = 0.0
        dolfinx.fem.assemble_vector(b.x.array, L)
        w.x.array[:] = solver.solve(b.x.array)
        w.x.scatter_forward()
        means = np.zeros(7)
        for i in range(7):
            select.value[:] = np.eye(7)[i]
            means[i] = dolfinx.fem.assemble_scalar(average) / volume
        select.value[:] = 0.0
        C_eff[:, j] = means[0:3]
        mean_strain[:, j] = means[3:6]
        macro_work = float(np.dot(means[0:3], E.value))
        residual[j] = abs(means[6] - macro_work) / abs(macro_work)
        if keep_fluctuations:
            kept.append(w.copy())
    n_cells = mesh.topology.index_map(2).size_local
    return HomogenizationResult(stiffness=C_eff, hill_mandel=residual, mean_strain=mean_strain,
                                volume=volume, n_dofs=constraint.n_full, n_reduced=constraint.n_reduced,
                                n_cells=n_cells,
                                stats={"form_compilations": 3, "matrix_assemblies": 1,
                                       "factorizations": solver.n_factorizations,
                                       "solves": solver.n_solves},
                                fluctuations=kept if keep_fluctuations else None)
