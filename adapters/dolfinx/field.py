r"""A linear heat-conduction field engine on DOLFINx (the bridge's :class:`FieldEngine`).

Physics (strong form, on a mesh :math:`\Omega` with named boundaries)

.. math::

    \rho c\,\partial_t u = \nabla\cdot(k\nabla u) + f \quad\text{in }\Omega,\qquad
    u = g \text{ on } \Gamma_D,\qquad k\nabla u\cdot n = q \text{ on } \Gamma_N,

with ``u`` the temperature (``field_units``, K by default), ``k`` the conductivity
(W m^-1 K^-1), ``rho*c`` the volumetric heat capacity (J m^-3 K^-1), ``f`` a heat source
(W m^-3) and ``q`` the heat flux *into* the domain (W m^-2; ``n`` is the outward normal).  Every
boundary that is not Dirichlet is a Neumann boundary, insulated (``q = 0``) until
:meth:`DolfinxField.set_neumann` says otherwise.  Lengths are in the mesh's unit; on 1-D and 2-D
meshes energies and flows are per unit cross-section (m^2) or per unit depth (m).

Discretization: Lagrange elements of degree ``degree`` and the theta scheme (backward Euler for
``theta = 1``, Crank--Nicolson for ``theta = 1/2``), with the boundary data held constant over a
step:

.. math::

    (M + \theta\,\Delta t\,K)\,u^{n+1} = (M - (1-\theta)\,\Delta t\,K)\,u^n + \Delta t\,F,

``M`` the consistent mass matrix of ``rho*c``, ``K`` the stiffness matrix of ``k`` and ``F`` the
load of ``f`` and ``q``.  The forms are compiled once, when the field is built; boundary values,
sources and the time step are DOLFINx ``Constant``/``Function`` objects updated in place.  The
matrix is assembled and LU-factored once (PETSc ``KSP`` ``preonly`` + ``LU``, MUMPS when
available, ``ksp_error_if_not_converged``) and reused for every step; it is re-assembled and
re-factored only when the time step changes or a boundary switches between Dirichlet and Neumann
(``stats`` counts both).

Energy bookkeeping is exact to round-off: :meth:`DolfinxField.total_energy` is
:math:`\mathbf 1^T M u = \int\rho c\,u\,dx`, and the heat flow through a Dirichlet boundary is
the *reaction* of the unconstrained system, :math:`r = A_\text{full}u^{n+1} - b_\text{full}` summed
over that boundary's degrees of freedom, so that over every step

.. math::

    E^{n+1} - E^n = \Delta t\,\Big(\sum_{\Gamma} Q_\Gamma + P_f\Big)

with :math:`Q_\Gamma` = :meth:`DolfinxField.boundary_flux` and :math:`P_f` =
:meth:`DolfinxField.source_power` (because :math:`\mathbf 1^T K = 0`).
"""
from __future__ import annotations

import itertools
import math
import numbers
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from bridge.errors import CalculationError, SetupError, UsageError

from ._backend import require

require()

from mpi4py import MPI  # noqa: E402
from petsc4py import PETSc  # noqa: E402

import dolfinx  # noqa: E402
import dolfinx.fem  # noqa: E402
import dolfinx.fem.petsc  # noqa: E402
import dolfinx.io  # noqa: E402
import ufl  # noqa: E402
import ufl.algorithms  # noqa: E402

from .points import evaluate as _evaluate  # noqa: E402
from .mesh import NamedTags, tag_boundaries  # noqa: E402

__all__ = ["DolfinxField", "lu_options"]

_prefix_counter = itertools.count()


def lu_options(comm) -> dict[str, Any]:
    """PETSc options of a direct solve: ``preonly`` + ``lu`` with MUMPS when PETSc has it.

    Without MUMPS: PETSc's own LU in serial, SuperLU_dist in parallel; :class:`SetupError` when
    neither fits.
    """
    opts: dict[str, Any] = {"ksp_type": "preonly", "pc_type": "lu", "ksp_error_if_not_converged": True}
    if PETSc.Sys.hasExternalPackage("mumps"):
        opts["pc_factor_mat_solver_type"] = "mumps"
    elif comm.size > 1:
        if not PETSc.Sys.hasExternalPackage("superlu_dist"):
            raise SetupError("this PETSc has no parallel direct solver (MUMPS or SuperLU_dist)",
                             fix="install a PETSc with MUMPS (the 'dolfinx' extra has one), or pass "
                                 "petsc_options for an iterative solver")
        opts["pc_factor_mat_solver_type"] = "superlu_dist"
    return opts


def configure_ksp(ksp: PETSc.KSP, prefix: str, options: Mapping[str, Any]) -> None:
    """Give ``ksp`` the options prefix ``prefix`` and set ``options`` on it, leaving no entry
    behind in PETSc's global options database."""
    ksp.setOptionsPrefix(prefix)
    opts = PETSc.Options()
    opts.prefixPush(prefix)
    for key, value in options.items():
        opts[key] = value
    ksp.setFromOptions()
    for key in options:
        del opts[key]
    opts.prefixPop()


def _enum_name(enum, value: int) -> str:
    for name in dir(enum):
        if not name.startswith("_") and getattr(enum, name) == value:
            return name
    return str(value)


def _failure(ksp: PETSc.KSP, exc: PETSc.Error | None) -> str:
    """PETSc's account of a failed factorization or solve."""
    reason = ksp.getConvergedReason()
    parts = [f"KSP reason {_enum_name(PETSc.KSP.ConvergedReason, reason)} ({reason})"]
    pc_reason = ksp.getPC().getFailedReason()
    if pc_reason:
        parts.append(f"PC failed reason {_enum_name(PETSc.PC.FailedReason, pc_reason)}")
    if exc is not None:
        parts.append(f"PETSc error code {exc.ierr}")
    return ", ".join(parts)


def _owned_size(V: dolfinx.fem.FunctionSpace) -> int:
    return V.dofmap.index_map.size_local * V.dofmap.index_map_bs


class _System:
    """One linear system ``a(u, v) = L(v)``: matrices with and without Dirichlet rows, a KSP.

    ``A`` carries the Dirichlet rows (identity) and is factored; ``A_full`` is the same form
    without constraints and gives the reaction ``A_full u - b_full``.
    """

    def __init__(self, a, L, V, prefix: str, petsc_options: Mapping[str, Any], stats: dict):
        self.a = dolfinx.fem.form(a)
        self.L = dolfinx.fem.form(L)
        stats["form_compilations"] += 2
        self.stats = stats
        self.A = dolfinx.fem.petsc.create_matrix(self.a)
        self.A_full = dolfinx.fem.petsc.create_matrix(self.a)
        self.b = dolfinx.fem.petsc.create_vector(V)
        self.b_full = dolfinx.fem.petsc.create_vector(V)
        self.r = dolfinx.fem.petsc.create_vector(V)
        self.ksp = PETSc.KSP().create(V.mesh.comm)
        self.ksp.setOperators(self.A)
        self.A.setOptionsPrefix(f"{prefix}A_")
        configure_ksp(self.ksp, prefix, petsc_options)
        self.ready = False

    def assemble(self, bcs) -> None:
        """Assemble both matrices and factor ``A`` (counted in ``stats``)."""
        self.A.zeroEntries()
        dolfinx.fem.petsc.assemble_matrix(self.A, self.a, bcs=bcs)
        self.A.assemble()
        self.A_full.zeroEntries()
        dolfinx.fem.petsc.assemble_matrix(self.A_full, self.a)
        self.A_full.assemble()
        self.stats["matrix_assemblies"] += 1
        try:
            self.ksp.setUp()
        except PETSc.Error as exc:
            raise CalculationError("factorization of the DOLFINx system matrix failed",
                                   reason=_failure(self.ksp, exc),
                                   fix="check that every connected part of the mesh has a Dirichlet "
                                       "boundary (steady) and that k, rho*c are positive") from exc
        self.stats["factorizations"] += 1
        self.ready = True

    def solve(self, bcs, u: dolfinx.fem.Function) -> None:
        """Assemble the right-hand side, solve into ``u`` and keep ``b_full`` for the reaction."""
        with self.b_full.localForm() as loc:
            loc.set(0.0)
        dolfinx.fem.petsc.assemble_vector(self.b_full, self.L)
        self.b_full.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
        with self.b.localForm() as loc:
            loc.set(0.0)
        dolfinx.fem.petsc.apply_lifting(self.b, [self.a], bcs=[bcs])
        self.b.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
        self.b.axpy(1.0, self.b_full)
        dolfinx.fem.petsc.set_bc(self.b, bcs)
        x = u.x.petsc_vec
        try:
            self.ksp.solve(self.b, x)
        except PETSc.Error as exc:
            raise CalculationError("DOLFINx linear solve failed", reason=_failure(self.ksp, exc),
                                   fix="check the data (NaN in boundary values?) or the PETSc "
                                       "options") from exc
        if self.ksp.getConvergedReason() < 0:
            raise CalculationError("DOLFINx linear solve did not converge",
                                   reason=_failure(self.ksp, None),
                                   fix="raise ksp_max_it, use a stronger preconditioner, or drop "
                                       "petsc_options for the direct solver")
        u.x.scatter_forward()
        self.stats["solves"] += 1
        n = _owned_size(u.function_space)
        bad = int(not np.all(np.isfinite(u.x.array[:n])))
        if u.function_space.mesh.comm.allreduce(bad, op=MPI.MAX):
            raise CalculationError("DOLFINx solve produced NaN or infinity",
                                   reason="non-finite entries in the solution vector",
                                   fix="check the boundary values, the source and the material data")

    def reaction(self, u: dolfinx.fem.Function) -> np.ndarray:
        """Owned entries of ``A_full u - b_full`` (energy per step, or power when steady)."""
        self.A_full.mult(u.x.petsc_vec, self.r)
        self.r.axpy(-1.0, self.b_full)
        return self.r.array_r.copy()


class DolfinxField:
    """Linear heat conduction on a DOLFINx mesh with named boundaries (a :class:`FieldEngine`).

    Parameters
    ----------
    mesh : dolfinx.mesh.Mesh
        1-D, 2-D or 3-D mesh, possibly distributed over ``mesh.comm``.
    boundaries : NamedTags or mapping ``{name: locator}``
        Named exterior boundaries (see :func:`tag_boundaries`).
    dirichlet, neumann : mapping ``{boundary: value}``
        Initial boundary data; values as in :meth:`set_dirichlet` / :meth:`set_neumann`.
        Boundaries in neither are insulated Neumann boundaries.
    conductivity : float, DG0 ``Function``, ``Constant`` or UFL expression
        ``k`` in W m^-1 K^-1 (field unit per length unit); piecewise values via
        :func:`cell_function`.
    heat_capacity : same kinds
        Volumetric heat capacity ``rho*c`` in J m^-3 K^-1.
    source : float, ``Function``, ``Constant`` or UFL expression
        Heat source ``f`` in W m^-3; a float becomes a ``Constant`` updated by :meth:`set_source`.
    initial : float, callable ``x (3, n) -> (n,)`` or ``Function``
        Initial temperature.
    degree : int
        Lagrange degree.
    theta : float in (0, 1]
        Time-stepping parameter (1: backward Euler, 0.5: Crank--Nicolson).
    petsc_options : mapping, optional
        Replaces the default direct-solver options (:func:`lu_options`); add
        ``"ksp_error_if_not_converged": True`` to iterative settings.
    field_units : str
        Unit of ``u`` (recorded, not converted).

    Attributes
    ----------
    u : dolfinx.fem.Function -- the current temperature.
    time : float -- model time (s).
    stats : dict -- counts of ``form_compilations``, ``matrix_assemblies`` (the constrained
        matrix and its unconstrained copy together), ``factorizations`` and ``solves``.
    """

    def __init__(self, mesh: dolfinx.mesh.Mesh, boundaries: NamedTags | Mapping[str, Callable], *,
                 dirichlet: Mapping[str, Any] | None = None, neumann: Mapping[str, Any] | None = None,
                 conductivity: Any = 1.0, heat_capacity: Any = 1.0, source: Any = 0.0,
                 initial: Any = 0.0, degree: int = 1, theta: float = 1.0,
                 petsc_options: Mapping[str, Any] | None = None, field_units: str = "K",
                 name: str = "u"):
        if not isinstance(boundaries, NamedTags):
            boundaries = tag_boundaries(mesh, boundaries)
        if boundaries.mesh is not mesh:
            raise SetupError("the boundary tags belong to another mesh",
                             fix="tag the boundaries of the mesh passed to DolfinxField")
        if boundaries.dim != mesh.topology.dim - 1:
            raise SetupError("boundaries must be facet tags", fix="use tag_boundaries(mesh, {...})")
        if not 0.0 < float(theta) <= 1.0:
            raise SetupError(f"theta must lie in (0, 1], got {theta}",
                             fix="use 1 (backward Euler) or 0.5 (Crank-Nicolson)")
        if int(degree) < 1:
            raise SetupError(f"degree must be >= 1, got {degree}",
                             fix="pass degree=1 (linear) or 2 (quadratic Lagrange elements)")
        both = sorted(set(dirichlet or {}) & set(neumann or {}))
        if both:
            raise SetupError(f"boundaries {both} are given both Dirichlet and Neumann data",
                             fix="give each boundary one kind of condition")
        self.mesh = mesh
        self.comm = mesh.comm
        self.boundaries = boundaries
        self.field_units = field_units
        self.theta = float(theta)
        self.time = 0.0
        self.stats = {"form_compilations": 0, "matrix_assemblies": 0, "factorizations": 0, "solves": 0}
        self._petsc_options = dict(lu_options(self.comm) if petsc_options is None else petsc_options)
        self._prefix = f"bridge_dolfinx_{next(_prefix_counter)}_"

        V = self.V = dolfinx.fem.functionspace(mesh, ("Lagrange", int(degree)))
        self._n_owned = _owned_size(V)
        self.u = dolfinx.fem.Function(V, name=name)
        self._u_n = dolfinx.fem.Function(V, name=f"{name}_previous")
        self._k = self._coefficient(conductivity, "conductivity")
        self._rho_c = self._coefficient(heat_capacity, "heat_capacity")
        self._source_is_zero = isinstance(source, numbers.Real) and float(source) == 0.0
        self._f = self._coefficient(source, "source")
        self._dt = dolfinx.fem.Constant(mesh, PETSc.ScalarType(0.0))
        self._dt_assembled: float | None = None

        fdim = mesh.topology.dim - 1
        mesh.topology.create_connectivity(fdim, mesh.topology.dim)
        self._kind: dict[str, str] = {}
        self._g: dict[str, dolfinx.fem.Function] = {}
        self._q: dict[str, dolfinx.fem.Function] = {}
        self._dofs: dict[str, np.ndarray] = {}
        for bname in boundaries.names:
            self._kind[bname] = "neumann"
            self._g[bname] = dolfinx.fem.Function(V, name=f"g_{bname}")
            self._q[bname] = dolfinx.fem.Function(V, name=f"q_{bname}")
            self._dofs[bname] = dolfinx.fem.locate_dofs_topological(V, fdim, boundaries.entities(bname))
        self._dof_coords: np.ndarray | None = None
        self._dirichlet_order: list[str] = []
        self._bcs: list = []
        self._bc_owned: dict[str, np.ndarray] = {}

        self._set_initial(initial)
        self._build_forms()
        for bname, value in (dirichlet or {}).items():
            self.set_dirichlet(bname, value)
        for bname, value in (neumann or {}).items():
            self.set_neumann(bname, value)

        self._last: str | None = None
        self._fluxes: dict[str, float] = {}
        self._source_power = 0.0
        self._writers: dict[str, Any] = {}

    # -- construction helpers ---------------------------------------------------------------
    def _coefficient(self, value, what: str):
        if isinstance(value, numbers.Real):
            if not math.isfinite(float(value)):
                raise SetupError(f"{what} is {value}",
                                 fix=f"pass a finite number for {what}")
            return dolfinx.fem.Constant(self.mesh, PETSc.ScalarType(float(value)))
        if isinstance(value, (dolfinx.fem.Function, dolfinx.fem.Constant, ufl.core.expr.Expr)):
            if getattr(value, "ufl_shape", ()) != ():
                raise SetupError(f"{what} must be scalar, got shape {value.ufl_shape}",
                                 fix=f"pass a scalar Function/Constant/expression for {what} "
                                     "(the model is isotropic heat conduction)")
            return value
        raise SetupError(f"{what} must be a float, a dolfinx Function/Constant or a UFL expression, "
                         f"got {type(value).__name__}",
                         fix="for piecewise values use cell_function(mesh, ...)")

    def _set_initial(self, initial) -> None:
        if isinstance(initial, numbers.Real):
            self.u.x.array[:] = float(initial)
        elif isinstance(initial, dolfinx.fem.Function) or callable(initial):
            self.u.interpolate(initial)
        else:
            raise SetupError(f"initial must be a float, a callable x -> values or a Function, "
                             f"got {type(initial).__name__}",
                             fix="pass e.g. initial=293.15 or initial=lambda x: 300 + 0 * x[0]")
        self.u.x.scatter_forward()
        self._u_n.x.array[:] = self.u.x.array

    def _build_forms(self) -> None:
        V, mesh = self.V, self.mesh
        u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
        th, dt, k, rho_c = self.theta, self._dt, self._k, self._rho_c
        # The mass, source and boundary-flux terms carry their quadrature degree explicitly (the
        # one UFL would estimate), so that UFL does not merge them with the stiffness integrand
        # and the same rules serve total_energy(), source_power() and boundary_flux(): energy
        # balances then hold to round-off for non-polynomial rho*c, f and k too.
        degree = ufl.algorithms.estimate_total_polynomial_degree
        dx = ufl.Measure("dx", domain=mesh)
        self._dx_mass = dx(metadata={"quadrature_degree": degree(rho_c * u * v)})
        self._dx_source = dx(metadata={"quadrature_degree": degree(self._f * v)})
        q_degree = max(degree(q * v) for q in self._q.values())
        self._ds = self.boundaries.measure("ds")(metadata={"quadrature_degree": q_degree})
        ds = self._ds
        a = rho_c * u * v * self._dx_mass + th * dt * k * ufl.inner(ufl.grad(u), ufl.grad(v)) * dx
        L = rho_c * self._u_n * v * self._dx_mass + dt * self._f * v * self._dx_source
        if th < 1.0:
            L -= (1.0 - th) * dt * k * ufl.inner(ufl.grad(self._u_n), ufl.grad(v)) * dx
        for bname in self.boundaries.names:
            L += dt * self._q[bname] * v * ds(self.boundaries.id(bname))
        self._transient = _System(a, L, V, f"{self._prefix}t_", self._petsc_options, self.stats)
        self._steady: _System | None = None

        self._mass_form = dolfinx.fem.form(rho_c * u * v * self._dx_mass)
        n_boundaries = len(self.boundaries.names)
        self._select = dolfinx.fem.Constant(mesh, np.zeros(n_boundaries, dtype=PETSc.ScalarType))
        flux = sum(self._select[i] * self._q[b] * ds(self.boundaries.id(b))
                   for i, b in enumerate(self.boundaries.names))
        self._neumann_flux_form = dolfinx.fem.form(flux)
        self.stats["form_compilations"] += 2
        self._source_form = None
        self._compute_energy_weights()

    def _compute_energy_weights(self) -> None:
        # Row sums of the consistent mass matrix: total_energy() = 1^T M u.
        M = dolfinx.fem.petsc.assemble_matrix(self._mass_form)
        M.assemble()
        ones = M.createVecRight()
        ones.set(1.0)
        weights = M.createVecLeft()
        M.multTranspose(ones, weights)
        self._energy_weights = weights.array_r.copy()
        for obj in (M, ones, weights):
            obj.destroy()

    def reassemble(self) -> None:
        """Re-assemble and re-factor at the next solve, after changing ``k`` or ``rho*c`` in place.

        Material coefficients passed as ``Function``/``Constant`` may be edited by the caller; the
        matrices (and the energy weights of :meth:`total_energy`) only follow after this call.
        """
        self._compute_energy_weights()
        self._transient.ready = False
        if self._steady is not None:
            self._steady.ready = False

    def _steady_system(self) -> _System:
        if self._steady is None:
            V = self.V
            u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
            dx = ufl.Measure("dx", domain=self.mesh)
            a = self._k * ufl.inner(ufl.grad(u), ufl.grad(v)) * dx
            L = self._f * v * self._dx_source
            for bname in self.boundaries.names:
                L += self._q[bname] * v * self._ds(self.boundaries.id(bname))
            self._steady = _System(a, L, V, f"{self._prefix}s_", self._petsc_options, self.stats)
        return self._steady

    # -- boundary data ----------------------------------------------------------------------
    def _check_boundary(self, boundary: str) -> None:
        self.boundaries.id(boundary)

    def _owned_dofs(self, boundary: str) -> np.ndarray:
        dofs = self._dofs[boundary]
        return dofs[dofs < self._n_owned]

    def boundary_coordinates(self, boundary: str) -> np.ndarray:
        """``(n_b, gdim)``: coordinates of the degrees of freedom on ``boundary`` owned by this rank.

        This is the order of the entries of an array passed to :meth:`set_dirichlet` or
        :meth:`set_neumann` (each rank passes the values at its own boundary dofs).
        """
        self._check_boundary(boundary)
        gdim = self.mesh.geometry.dim
        return self.V.tabulate_dof_coordinates()[self._owned_dofs(boundary), :gdim].copy()

    def _assign(self, target: dolfinx.fem.Function, boundary: str, value, what: str) -> None:
        dofs = self._dofs[boundary]
        if isinstance(value, numbers.Real):
            if not math.isfinite(float(value)):
                raise SetupError(f"{what} value on '{boundary}' is {value}",
                                 fix="find where the NaN entered the coupling")
            target.x.array[dofs] = float(value)
            return
        if isinstance(value, dolfinx.fem.Function):
            target.interpolate(value)
        elif callable(value):
            # Lagrange dofs are point values, and the trace on the boundary facets depends only on
            # the dofs there: evaluate at those dofs' coordinates, not over the whole mesh.
            if self._dof_coords is None:
                self._dof_coords = self.V.tabulate_dof_coordinates()
            vals = np.asarray(value(self._dof_coords[dofs].T), dtype=np.float64).reshape(-1)
            if vals.shape != dofs.shape:
                raise SetupError(f"{what} callable for '{boundary}' returned {vals.size} values for "
                                 f"{dofs.size} points", fix="return one value per column of x (3, n)")
            target.x.array[dofs] = vals
        else:
            arr = np.asarray(value, dtype=np.float64).reshape(-1)
            owned = self._owned_dofs(boundary)
            bad_shape = int(arr.shape != owned.shape)
            if self.comm.allreduce(bad_shape, op=MPI.MAX):
                raise SetupError(f"{what} array for '{boundary}' has {arr.size} entries on rank "
                                 f"{self.comm.rank}, the boundary has {owned.size} owned dofs there",
                                 fix="pass one value per row of boundary_coordinates(boundary)")
            target.x.array[owned] = arr
        target.x.scatter_forward()
        bad = int(not np.all(np.isfinite(target.x.array[dofs])))
        if self.comm.allreduce(bad, op=MPI.MAX):
            raise SetupError(f"{what} values on '{boundary}' contain NaN or infinity",
                             fix="find where the NaN entered the coupling")

    def set_dirichlet(self, boundary: str, value: Any) -> None:
        """Impose ``u = value`` on ``boundary`` (field unit) from the next solve on.

        ``value``: a float; a callable ``x (3, n) -> (n,)``; a ``Function`` on the same mesh; or an
        array ``(n_b,)`` of values at this rank's owned boundary dofs in the order of
        :meth:`boundary_coordinates`.  Updating the value of a Dirichlet boundary costs no
        assembly; turning a Neumann boundary into a Dirichlet one re-assembles and re-factors the
        matrix once.  A degree of freedom on two Dirichlet boundaries belongs to the one made
        Dirichlet first (its value and its reaction).
        """
        self._check_boundary(boundary)
        self._assign(self._g[boundary], boundary, value, "Dirichlet")
        if self._kind[boundary] != "dirichlet":
            self._kind[boundary] = "dirichlet"
            self._q[boundary].x.array[:] = 0.0
            self._dirichlet_order.append(boundary)
            self._rebuild_bcs()

    def set_neumann(self, boundary: str, value: Any) -> None:
        """Impose the heat flux ``k grad(u).n = value`` *into* the domain on ``boundary`` (W m^-2).

        ``value`` kinds as in :meth:`set_dirichlet`.  A flux is held constant over a time step.
        Turning a Dirichlet boundary into a Neumann one re-assembles and re-factors once.
        """
        self._check_boundary(boundary)
        self._assign(self._q[boundary], boundary, value, "Neumann")
        if self._kind[boundary] != "neumann":
            self._kind[boundary] = "neumann"
            self._dirichlet_order.remove(boundary)
            self._rebuild_bcs()

    def set_source(self, value: float) -> None:
        """Set a spatially uniform heat source (W m^-3); only for a source given as a float."""
        if not isinstance(self._f, dolfinx.fem.Constant) or not isinstance(value, numbers.Real):
            raise SetupError("set_source takes a float, and only when the source was given as a float",
                             fix="update your own source Function in place instead")
        if not math.isfinite(float(value)):
            raise SetupError(f"source is {value}", fix="pass a finite source in W m^-3")
        self._f.value = float(value)
        self._source_is_zero = float(value) == 0.0

    def boundary_kind(self, boundary: str) -> str:
        """``"dirichlet"`` or ``"neumann"``."""
        self._check_boundary(boundary)
        return self._kind[boundary]

    def _rebuild_bcs(self) -> None:
        claimed = np.zeros(self.u.x.array.size, dtype=bool)
        self._bcs, self._bc_owned = [], {}
        for bname in self._dirichlet_order:
            dofs = self._dofs[bname]
            dofs = dofs[~claimed[dofs]]
            claimed[dofs] = True
            self._bcs.append(dolfinx.fem.dirichletbc(self._g[bname], dofs.astype(np.int32)))
            self._bc_owned[bname] = dofs[dofs < self._n_owned]
        self._transient.ready = False
        if self._steady is not None:
            self._steady.ready = False

    # -- solving ----------------------------------------------------------------------------
    def advance(self, dt: float) -> None:
        """Advance the field by one step of ``dt`` (s) with the current boundary data.

        The matrix depends on ``dt``: a step with a different ``dt`` than the previous one
        re-assembles and re-factors it (``stats["factorizations"]``), steps with the same ``dt``
        reuse the factorization.
        """
        dt = float(dt)
        if not (math.isfinite(dt) and dt > 0.0):
            raise SetupError(f"dt must be positive and finite, got {dt}",
                             fix="pass the time step in s, e.g. advance(1e-3)")
        system = self._transient
        if self._dt_assembled != dt:
            self._dt.value = dt
            self._dt_assembled = dt
            system.ready = False
        if not system.ready:
            system.assemble(self._bcs)
        self._u_n.x.array[:] = self.u.x.array
        system.solve(self._bcs, self.u)
        self.time += dt
        self._snapshot(system, 1.0 / dt, "transient")

    def solve_steady(self) -> None:
        """Solve ``-div(k grad u) = f`` with the current boundary data (time unchanged).

        Needs at least one Dirichlet boundary.  The steady forms are compiled on the first call,
        the matrix assembled and factored once.
        """
        if not self._dirichlet_order:
            raise SetupError("a steady heat problem needs at least one Dirichlet boundary",
                             fix="call set_dirichlet(boundary, value) first")
        system = self._steady_system()
        if not system.ready:
            system.assemble(self._bcs)
        system.solve(self._bcs, self.u)
        self._u_n.x.array[:] = self.u.x.array
        self._snapshot(system, 1.0, "steady")

    def _snapshot(self, system: _System, scale: float, kind: str) -> None:
        fluxes = {}
        r = system.reaction(self.u)
        for bname in self.boundaries.names:
            if self._kind[bname] == "dirichlet":
                local = math.fsum(r[self._bc_owned[bname]]) * scale
            else:
                self._select.value[:] = 0.0
                self._select.value[self.boundaries.names.index(bname)] = 1.0
                local = dolfinx.fem.assemble_scalar(self._neumann_flux_form)
            fluxes[bname] = float(self.comm.allreduce(local, op=MPI.SUM))
        self._select.value[:] = 0.0
        self._fluxes = fluxes
        self._source_power = 0.0 if self._source_is_zero else self._compute_source_power()
        self._last = kind

    def _compute_source_power(self) -> float:
        if self._source_form is None:
            v = ufl.TestFunction(self.V)
            self._source_form = dolfinx.fem.form(self._f * v * self._dx_source)
            self.stats["form_compilations"] += 1
        vec = dolfinx.fem.petsc.assemble_vector(self._source_form)
        vec.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
        total = vec.sum()
        vec.destroy()
        return float(total)

    # -- outputs ----------------------------------------------------------------------------
    def boundary_flux(self, boundary: str) -> float:
        """Heat flow *into* the domain through ``boundary`` over the last solve (W; per unit
        cross-section or depth on 1-D/2-D meshes).

        Dirichlet boundary: the reaction of the unconstrained system summed over the boundary's
        dofs (divided by ``dt`` after a step: the step-average flow consistent with the theta
        scheme).  Neumann boundary: the integral of the applied flux.  The same on every rank.
        """
        self._check_boundary(boundary)
        if self._last is None:
            raise UsageError("no boundary flux before the first solve",
                             fix="call advance(dt) or solve_steady() first")
        return self._fluxes[boundary]

    def source_power(self) -> float:
        """Heat produced by the source over the last solve (W), consistent with the load vector."""
        if self._last is None:
            raise UsageError("no source power before the first solve",
                             fix="call advance(dt) or solve_steady() first")
        return self._source_power

    def total_energy(self) -> float:
        """Stored heat ``integral of rho*c*u dx`` (J, relative to u = 0), as ``1^T M u``.

        Uses the mass matrix of the time discretization, so that energy changes equal the
        boundary flows of :meth:`boundary_flux` to round-off.  The same on every rank.
        """
        local = float(np.dot(self._energy_weights, self.u.x.array[: self._n_owned]))
        return float(self.comm.allreduce(local, op=MPI.SUM))

    def evaluate(self, points, field: str | None = None, *, outside: str = "raise") -> np.ndarray:
        """Temperature at ``points (m, gdim)`` -> ``(m,)``, identical on every rank (collective).

        See :func:`bridge_adapters.dolfinx.evaluate` for the MPI conventions and ``outside``.
        """
        if field not in (None, self.u.name):
            raise SetupError(f"unknown field '{field}' (known: {self.u.name})",
                             fix=f"pass field=None or field='{self.u.name}'")
        return _evaluate(self.u, points, outside=outside)

    # -- state ------------------------------------------------------------------------------
    def get_state(self) -> dict[str, np.ndarray]:
        """Checkpoint: owned dof values of ``u`` (``"u"``, ``(n_owned,)``), ``"time"`` (``()``),
        and the boundary data (``"dirichlet/<name>"``, ``"neumann/<name>"``).

        Arrays are copies of this rank's owned entries: a state restores on the same mesh and
        the same number of ranks.  Boundary kinds are not part of the state.
        """
        n = self._n_owned
        state = {"u": self.u.x.array[:n].copy(), "time": np.array(self.time, dtype=np.float64)}
        for bname in self.boundaries.names:
            state[f"dirichlet/{bname}"] = self._g[bname].x.array[:n].copy()
            state[f"neumann/{bname}"] = self._q[bname].x.array[:n].copy()
        return state

    def set_state(self, state: Mapping[str, Any]) -> None:
        """Restore a :meth:`get_state` checkpoint exactly (values, time, boundary data).

        Boundary flows belong to a solve: after a restore they are available again after the
        next :meth:`advance` or :meth:`solve_steady`.
        """
        n = self._n_owned
        if "u" not in state or "time" not in state:
            raise SetupError("state lacks 'u' or 'time'", fix="pass a dict from get_state()")
        u = np.asarray(state["u"], dtype=np.float64)
        bad = int(u.shape != (n,))
        if self.comm.allreduce(bad, op=MPI.MAX):
            raise SetupError(f"state 'u' has shape {u.shape} on rank {self.comm.rank}, expected ({n},)",
                             fix="restore on the same mesh and the same number of MPI ranks")
        targets = [(self.u, u)]
        for key, value in state.items():
            if key in ("u", "time"):
                continue
            kind, _, bname = key.partition("/")
            if kind not in ("dirichlet", "neumann") or bname not in self._g:
                raise SetupError(f"unknown state entry '{key}'", fix="pass a dict from get_state()")
            arr = np.asarray(value, dtype=np.float64)
            if arr.shape != (n,):
                raise SetupError(f"state '{key}' has shape {arr.shape}, expected ({n},)",
                                 fix="restore on the same mesh and the same number of MPI ranks")
            targets.append(((self._g if kind == "dirichlet" else self._q)[bname], arr))
        for fn, arr in targets:
            fn.x.array[:n] = arr
            fn.x.scatter_forward()
        self._u_n.x.array[:] = self.u.x.array
        self.time = float(np.asarray(state["time"]))
        self._last = None

    # -- files ------------------------------------------------------------------------------
    def _output_function(self) -> dolfinx.fem.Function:
        cmap_degree = self.mesh.geometry.cmaps[0].degree
        if self.V.ufl_element().embedded_superdegree == cmap_degree:
            return self.u
        if "xdmf_out" not in self._writers:
            W = dolfinx.fem.functionspace(self.mesh, ("Lagrange", cmap_degree))
            self._writers["xdmf_out"] = dolfinx.fem.Function(W, name=self.u.name)
        out = self._writers["xdmf_out"]
        out.interpolate(self.u)
        return out

    def write_xdmf(self, path: str | Path) -> Path:
        """Append ``u`` at the current time to the XDMF/HDF5 time series ``path`` (ParaView).

        The first call for a path writes the mesh and the boundary tags (grid ``"boundaries"``
        unless the tags carry a name of their own), overwriting the file;
        later calls add a time step.  Fields of degree > 1 are interpolated onto the mesh's
        coordinate degree (use :meth:`write_vtx` for the native degree).  Collective.
        """
        path = Path(path)
        key = self._new_writer_key("xdmf", path)
        if key not in self._writers:
            xdmf = dolfinx.io.XDMFFile(self.comm, str(path), "w")
            xdmf.write_mesh(self.mesh)
            if self.boundaries.tags.name == "mesh_tags":
                self.boundaries.tags.name = "boundaries"
            xdmf.write_meshtags(self.boundaries.tags, self.mesh.geometry)
            self._writers[key] = xdmf
        self._writers[key].write_function(self._output_function(), self.time)
        return path

    def _new_writer_key(self, kind: str, path: Path) -> str:
        """The writer key of ``path``; for a new one, its folder exists on every rank on return."""
        key = f"{kind}:{path.resolve()}"
        if key not in self._writers:
            if self.comm.rank == 0:
                path.parent.mkdir(parents=True, exist_ok=True)
            self.comm.Barrier()
        return key

    def write_vtx(self, path: str | Path) -> Path:
        """Append ``u`` at the current time to the ADIOS2 VTX series ``path`` (a ``.bp`` folder).

        Native element degree; open the folder in ParaView (ADIOS2VTXReader).  Collective.
        """
        if not dolfinx.common.has_adios2:
            raise SetupError("this DOLFINx build has no ADIOS2, so no VTX output",
                             fix="use write_xdmf(path)")
        path = Path(path)
        key = self._new_writer_key("vtx", path)
        if key not in self._writers:
            self._writers[key] = dolfinx.io.VTXWriter(self.comm, str(path), [self.u])
        self._writers[key].write(self.time)
        return path

    def close(self) -> None:
        """Close the output files (collective); the field stays usable."""
        for key in list(self._writers):
            if key.startswith(("xdmf:", "vtx:")):
                self._writers.pop(key).close()

    def __enter__(self) -> "DolfinxField":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        kinds = ", ".join(f"{b}={k}" for b, k in self._kind.items())
        return (f"DolfinxField(P{self.V.ufl_element().embedded_superdegree}, "
                f"{self.V.dofmap.index_map.size_global} dofs, t={self.time:g}, {kinds})")
