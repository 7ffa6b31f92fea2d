r"""FE²: a DOLFINx plane-strain macro problem whose material law is a micro model per point.

At every quadrature point of the macro mesh a micro model (:mod:`bridge_adapters.dolfinx.micro`,
:class:`bridge.crystal_rve.CrystalRVE`, or any object with the Micro Manager contract) turns the
macro strain into a stress and a consistent tangent.  The macro problem

.. math:: R(u; v) = \int_\Omega \sigma(\varepsilon(u)) \cdot \varepsilon(v)\,dx
          - \sum_b \int_{\Gamma_b} t_b \cdot v\,ds = 0,\qquad
          J(u; \delta u, v) = \int_\Omega C_t\,\varepsilon(\delta u) \cdot \varepsilon(v)\,dx

is solved by Newton's method, loads applied in ``load_steps`` equal increments.  Each Newton
iteration evaluates :math:`\varepsilon(u)` at the quadrature points (one
:class:`dolfinx.fem.Expression`), hands all points to a :class:`bridge.farm.MicroFarm` (which
spreads them over the MPI ranks of the macro mesh, balanced by measured cost, with optional
reuse of unchanged points), writes stress and tangent into quadrature-element functions,
assembles, and solves with PETSc LU (MUMPS).  Convergence: the residual norm on the free dofs
:math:`\le` ``rtol`` times the first residual of the load step.  Voigt notation with engineering
shear, ``(11, 22, 12)``; units are those of the micro models' stress.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from bridge.errors import CalculationError, SetupError
from bridge.farm import MicroFarm, tangent_extrapolation
from bridge.log import progress

from ._backend import require

require()

import basix.ufl  # noqa: E402
import dolfinx  # noqa: E402
import dolfinx.fem  # noqa: E402
import dolfinx.fem.petsc  # noqa: E402
import ufl  # noqa: E402
from mpi4py import MPI  # noqa: E402
from petsc4py import PETSc  # noqa: E402

from .field import configure_ksp, lu_options  # noqa: E402
from .mesh import NamedTags  # noqa: E402
from .rve import voigt_strain  # noqa: E402

__all__ = ["FE2Problem", "FE2Result"]


@dataclass
class FE2Result:
    """What a solve did: Newton iterations per load step, residual histories, the farm's
    counters (micro solves, reuses, migrations) and wall time."""

    iterations: list[int] = field(default_factory=list)
    residuals: list[list[float]] = field(default_factory=list)
    micro_solves: int = 0
    micro_reused: int = 0
    migrations: int = 0
    seconds: float = 0.0


class FE2Problem:
    """Plane-strain FE² on a DOLFINx mesh (MPI-parallel).

    Parameters
    ----------
    mesh : dolfinx.mesh.Mesh
        2-D macro mesh (any communicator).
    micro : callable ``(global_id) -> MicroModel`` or :class:`MicroFarm`
        A factory is wrapped into a farm over ``mesh.comm`` with ``balance`` and
        ``reuse_tolerance``; a farm must have been built for :attr:`n_local_points` points.
    boundaries : NamedTags
        Tagged boundary facets (:func:`tag_boundaries`).
    dirichlet : mapping ``{boundary: (ux, uy)}`` or ``{boundary: {component: value}}``
        Prescribed displacements at full load (length unit).
    traction : mapping ``{boundary: (tx, ty)}``, optional
        Tractions at full load (stress unit).
    degree, quadrature_degree : int
        Lagrange degree of ``u``; degree of the quadrature rule (points per cell = micro models).
    rtol : float
        Newton tolerance.
    """

    def __init__(self, mesh: dolfinx.mesh.Mesh, micro: Callable[[int], Any] | MicroFarm, *,
                 boundaries: NamedTags, dirichlet: Mapping[str, Any],
                 traction: Mapping[str, Sequence[float]] | None = None, degree: int = 1,
                 quadrature_degree: int = 1, rtol: float = 1e-9, max_iterations: int = 20,
                 balance: bool = True, reuse_tolerance: float | None = None):
        if mesh.geometry.dim != 2 or mesh.topology.dim != 2:
            raise SetupError("FE2Problem is plane strain: it needs a 2-D mesh",
                             fix="pass a rectangle mesh or a 2-D gmsh mesh")
        if not dirichlet:
            raise SetupError("no Dirichlet boundary given: the macro problem has rigid modes",
                             fix="pass dirichlet={'left': (0.0, 0.0), ...}")
        self.mesh, self.comm = mesh, mesh.comm
        self.V = dolfinx.fem.functionspace(mesh, ("Lagrange", int(degree), (2,)))
        self.u = dolfinx.fem.Function(self.V, name="u")
        q = int(quadrature_degree)
        cell = mesh.topology.cell_name()
        self.Qs = dolfinx.fem.functionspace(mesh, basix.ufl.quadrature_element(cell, value_shape=(3,), degree=q))
        self.Qt = dolfinx.fem.functionspace(mesh, basix.ufl.quadrature_element(cell, value_shape=(3, 3), degree=q))
        self.stress = dolfinx.fem.Function(self.Qs, name="stress")
        self.tangent = dolfinx.fem.Function(self.Qt, name="tangent")
        points = self.Qs.element.interpolation_points
        self.n_qp = points.shape[0]
        self.cells = np.arange(mesh.topology.index_map(2).size_local, dtype=np.int32)
        self._strain_expr = dolfinx.fem.Expression(voigt_strain(self.u, 2), points)
        self._x_expr = dolfinx.fem.Expression(ufl.SpatialCoordinate(mesh), points)
        self._qdofs = self.Qs.dofmap.list[self.cells].reshape(-1)
        self.n_local_points = self.cells.size * self.n_qp

        dx = ufl.Measure("dx", domain=mesh, metadata={"quadrature_degree": q, "quadrature_scheme": "default"})
        ds = boundaries.measure("ds")
        v, du = ufl.TestFunction(self.V), ufl.TrialFunction(self.V)
        R = ufl.inner(self.stress, voigt_strain(v, 2)) * dx
        self._traction = {}
        for name, value in (traction or {}).items():
            t0 = np.asarray(value, dtype=np.float64).reshape(-1)
            if t0.shape != (2,) or not np.all(np.isfinite(t0)):
                raise SetupError(f"traction on '{name}' must be 2 finite components, got {value!r}",
                                 fix="pass traction={'right': (tx, ty)} in the stress unit")
            c = dolfinx.fem.Constant(mesh, np.zeros(2))
            self._traction[name] = (c, t0)
            R = R - ufl.inner(c, v) * ds(boundaries.id(name))
        self._R = dolfinx.fem.form(R)
        self._J = dolfinx.fem.form(ufl.inner(ufl.dot(self.tangent, voigt_strain(du, 2)), voigt_strain(v, 2)) * dx)
        self._bcs, self._bc_values = self._dirichlet(boundaries, dirichlet)

        self.A = dolfinx.fem.petsc.create_matrix(self._J)
        self.b = dolfinx.fem.petsc.create_vector(self.V)
        self.du = dolfinx.fem.Function(self.V)
        self.ksp = PETSc.KSP().create(self.comm)
        self.ksp.setOperators(self.A)
        configure_ksp(self.ksp, f"msbridge_fe2_{id(self)}_", lu_options(self.comm))

        if isinstance(micro, MicroFarm):
            if micro.n_local != self.n_local_points:
                raise SetupError(f"the farm has {micro.n_local} local points, the macro mesh "
                                 f"{self.n_local_points}",
                                 fix="build MicroFarm(factory, problem.n_local_points, comm=mesh.comm) "
                                     "or pass the factory itself")
            self.farm = micro
        elif callable(micro):
            self.farm = MicroFarm(micro, self.n_local_points, comm=self.comm, balance=balance,
                                  reuse_tolerance=reuse_tolerance, extrapolate=tangent_extrapolation)
        else:
            raise SetupError("micro must be a factory global_id -> micro model, or a MicroFarm",
                             fix="pass e.g. lambda gid: NonlinearRVEModel(shared_rve)")
        self.rtol, self.max_iterations = float(rtol), int(max_iterations)
        self.outputs: dict[str, np.ndarray] = {}

    def _dirichlet(self, boundaries: NamedTags, dirichlet: Mapping[str, Any]):
        bcs, values = [], []
        fdim = 1
        for name, spec in dirichlet.items():
            facets = boundaries.entities(name)
            comps = dict(enumerate(spec)) if not isinstance(spec, Mapping) else dict(spec)
            if not comps or any(int(k) not in (0, 1) for k in comps):
                raise SetupError(f"Dirichlet data of '{name}' must give components 0 and/or 1, got {spec!r}",
                                 fix="pass (ux, uy) or {0: ux} / {1: uy}")
            for comp, value in comps.items():
                value = float(value)
                if not np.isfinite(value):
                    raise SetupError(f"Dirichlet value of '{name}' component {comp} is not finite",
                                     fix="pass finite displacements")
                sub = self.V.sub(int(comp))
                dofs = dolfinx.fem.locate_dofs_topological(sub, fdim, facets)
                c = dolfinx.fem.Constant(self.mesh, PETSc.ScalarType(0.0))
                bcs.append(dolfinx.fem.dirichletbc(c, dofs, sub))
                values.append((c, value))
        return bcs, values

    # -- one Newton evaluation --------------------------------------------------------------
    def point_strains(self) -> np.ndarray:
        """Macro strain ``(n_local_points, 3)`` at this rank's quadrature points (cell-major)."""
        return self._strain_expr.eval(self.mesh, self.cells).reshape(-1, 3)

    def point_coordinates(self) -> np.ndarray:
        """Coordinates ``(n_local_points, 2)`` of this rank's quadrature points."""
        return self._x_expr.eval(self.mesh, self.cells).reshape(-1, 2)

    def _update_micro(self) -> None:
        out = self.farm.solve({"strain": self.point_strains()})
        for key in ("stress", "tangent"):
            if key not in out:
                raise CalculationError(f"micro models returned no '{key}'",
                                       reason=f"keys: {sorted(out)}",
                                       fix="micro models must return 'stress' (3,) and 'tangent' (3, 3)")
        self.stress.x.array.reshape(-1, 3)[self._qdofs] = out["stress"].reshape(-1, 3)
        self.tangent.x.array.reshape(-1, 9)[self._qdofs] = out["tangent"].reshape(-1, 9)
        self.stress.x.scatter_forward()
        self.tangent.x.scatter_forward()
        self.outputs = out

    def _residual(self) -> float:
        with self.b.localForm() as loc:
            loc.set(0.0)
        dolfinx.fem.petsc.assemble_vector(self.b, self._R)
        dolfinx.fem.petsc.apply_lifting(self.b, [self._J], bcs=[self._bcs], x0=[self.u.x.petsc_vec], alpha=-1.0)
        self.b.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
        dolfinx.fem.petsc.set_bc(self.b, self._bcs, self.u.x.petsc_vec, -1.0)
        return float(self.b.norm())

    def _newton_step(self) -> None:
        self.A.zeroEntries()
        dolfinx.fem.petsc.assemble_matrix(self.A, self._J, bcs=self._bcs)
        self.A.assemble()
        try:
            self.ksp.solve(self.b, self.du.x.petsc_vec)
        except PETSc.Error as exc:
            raise CalculationError("macro linear solve failed", reason=str(exc),
                                   fix="check the Dirichlet data and the micro tangents") from exc
        self.du.x.scatter_forward()
        self.u.x.array[:] -= self.du.x.array
        self.u.x.scatter_forward()

    def solve(self, load_steps: int = 1, *, show_progress: bool = True) -> FE2Result:
        """Apply the loads in ``load_steps`` increments; Newton to ``rtol`` in each.  Collective."""
        if int(load_steps) < 1:
            raise SetupError(f"load_steps must be >= 1, got {load_steps}", fix="pass load_steps=1 or more")
        result = FE2Result()
        t0 = time.perf_counter()
        steps = range(1, int(load_steps) + 1)
        bar = progress(steps, desc="FE² load steps",
                       enable=None if show_progress and self.comm.rank == 0 else False)
        for step in bar:
            factor = step / int(load_steps)
            for c, value in self._bc_values:
                c.value = factor * value
            for c, t0v in self._traction.values():
                c.value[:] = factor * t0v
            history = []
            for it in range(self.max_iterations + 1):
                self._update_micro()
                norm = self._residual()
                history.append(norm)
                if not np.isfinite(norm):
                    raise CalculationError("macro residual is NaN or infinite",
                                           reason=f"load step {step}, iteration {it}",
                                           fix="check the micro models' stress output")
                if it > 0 and norm <= self.rtol * history[0] or norm == 0.0:
                    break
                if it == self.max_iterations:
                    raise CalculationError(f"macro Newton did not converge in {self.max_iterations} "
                                           f"iterations at load step {step}",
                                           reason=f"residual history {history}",
                                           state={"load_step": step, "residuals": history},
                                           fix="use more load steps or check the micro tangents")
                self._newton_step()
            result.iterations.append(len(history) - 1)
            result.residuals.append(history)
        result.micro_solves = self.farm.stats.solves
        result.micro_reused = self.farm.stats.reused
        result.migrations = self.farm.stats.migrations
        result.seconds = time.perf_counter() - t0
        return result

    def cell_stress(self) -> dolfinx.fem.Function:
        """The macro stress averaged over each cell's quadrature points, as a DG0 ``(3,)``
        function (for XDMF/VTX output)."""
        W = dolfinx.fem.functionspace(self.mesh, ("DG", 0, (3,)))
        f = dolfinx.fem.Function(W, name="stress")
        vals = self.stress.x.array.reshape(-1, 3)[self._qdofs].reshape(self.cells.size, self.n_qp, 3).mean(axis=1)
        f.x.array.reshape(-1, 3)[W.dofmap.list[self.cells, 0]] = vals
        f.x.scatter_forward()
        return f

    def max_hill_mandel(self) -> float:
        """Largest Hill--Mandel residual the micro models reported in the last evaluation (all
        ranks; NaN when they report none)."""
        hm = self.outputs.get("hill_mandel")
        local = float(np.max(hm)) if hm is not None and np.size(hm) else -1.0
        value = self.comm.allreduce(local, op=MPI.MAX)
        return value if value >= 0.0 else float("nan")
