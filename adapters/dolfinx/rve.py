r"""Linear representative volume elements (RVEs): effective elasticity and conductivity.

One class, :class:`LinearRVE`, covers two physics on a box cell :math:`Y` (2-D or 3-D):

- ``"elasticity"``: displacement ``u``, Voigt strain with engineering shear and stress,
  plane strain ``(e11, e22, g12)`` in 2-D, ``(e11, e22, e33, g23, g13, g12)`` in 3-D, so that
  :math:`\sigma\cdot\varepsilon` is the energy density; stiffness ``C`` ``(n, n)``, ``n = 3``
  or ``6``.
- ``"conduction"``: potential ``theta`` (temperature, concentration), gradient
  :math:`g = \nabla\theta` and flux :math:`j = k\nabla\theta` (sign chosen so that ``j`` plays the
  role of the stress: the physical heat flux is ``-j``); conductivity/diffusivity ``k``
  ``(d, d)``.

With :math:`\langle\cdot\rangle = |Y|^{-1}\int_Y\cdot\,dx` over the box (voids carry zero flux)
and ``G`` the macro strain/gradient, the three classical boundary conditions are

- ``"periodic"``: :math:`u = G x + w`, ``w`` periodic (one node pinned); the exact answer for a
  periodic medium;
- ``"kinematic"`` (affine / uniform gradient): ``w = 0`` on the outer box faces -- an upper
  estimate, :math:`C_\mathrm{kin} \ge C_\mathrm{per}` in the Loewner order;
- ``"traction"`` (uniform traction / uniform flux): :math:`\sigma n = \Sigma n` on the outer faces,
  rigid modes pinned -- a lower estimate, :math:`C_\mathrm{tra} \le C_\mathrm{per}`; the
  effective tensor is the inverse of the compliance whose column ``j`` is the mean strain for
  :math:`\Sigma = e_j`.

The mean strain is ``G`` for periodic and kinematic conditions (the fluctuation averages out
on the box surface); for traction conditions it is the surface integral
:math:`\langle\varepsilon\rangle = |Y|^{-1}\int_{\partial Y}\mathrm{sym}(u\otimes n)\,ds`
(:math:`|Y|^{-1}\int_{\partial Y}\theta n\,ds` for conduction), which needs the whole box
surface in material: a cell whose voids cut its surface is refused for ``"traction"``.

**Assemble and factor once.**  The forms are compiled once, the matrix ``K`` is assembled once,
and each boundary condition's reduced matrix is factored once (SciPy SuperLU) on first use; a
load case then costs one right-hand side, one pair of triangular solves and the averages.  All
``n`` unit load cases of :meth:`LinearRVE.effective` therefore cost one factorization.

**Hill--Mandel.**  Every solve reports
:math:`|\langle\sigma:\varepsilon\rangle - \langle\sigma\rangle:\langle\varepsilon\rangle| /
|\langle\sigma\rangle:\langle\varepsilon\rangle|`, which vanishes (to round-off) for all three
boundary conditions.

RVEs run on one MPI rank (mesh on ``MPI.COMM_SELF``); many RVEs are farmed over ranks by
:class:`bridge.farm.MicroFarm`.  Units: those of ``C``/``k``; lengths cancel.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from bridge.errors import CalculationError, SetupError

from ._backend import require

require()

import dolfinx  # noqa: E402
import dolfinx.fem  # noqa: E402
import ufl  # noqa: E402

from .mesh import NamedTags, cell_function, tag_boundaries  # noqa: E402
from .periodic import PeriodicConstraint  # noqa: E402

__all__ = ["LinearRVE", "HomogenizationResult", "RVESolution", "BOUNDARY_CONDITIONS",
           "voigt_strain", "voigt_to_tensor", "voigt_size"]

BOUNDARY_CONDITIONS = ("periodic", "kinematic", "traction")
_PHYSICS = ("elasticity", "conduction")
# Voigt index pairs (i, j) in the order used throughout.
_PAIRS = {2: [(0, 0), (1, 1), (0, 1)],
          3: [(0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1)]}


def voigt_size(physics: str, dim: int) -> int:
    """Number of Voigt components: 3/6 for elasticity in 2-D/3-D, ``dim`` for conduction."""
    return len(_PAIRS[dim]) if physics == "elasticity" else dim


def voigt_strain(u, dim: int):
    """UFL Voigt strain of a displacement (engineering shear), ``(3,)`` or ``(6,)``."""
    g = ufl.grad(u)
    return ufl.as_vector([g[i, i] if i == j else g[i, j] + g[j, i] for i, j in _PAIRS[dim]])


def voigt_to_tensor(v, dim: int, *, strain: bool):
    """UFL ``(dim, dim)`` symmetric tensor of a Voigt vector (shear halved when ``strain``)."""
    rows = [[None] * dim for _ in range(dim)]
    for k, (i, j) in enumerate(_PAIRS[dim]):
        value = v[k] if (i == j or not strain) else 0.5 * v[k]
        rows[i][j] = value
        rows[j][i] = value
    return ufl.as_matrix(rows)


@dataclass
class RVESolution:
    """One load case of an RVE.

    ``stress``/``strain``: ``(n,)`` box averages (Voigt, or flux/gradient for conduction);
    ``energy``: :math:`\\langle\\sigma:\\varepsilon\\rangle`; ``hill_mandel``: relative residual;
    ``field``: when asked for, the fluctuation ``w`` (periodic, kinematic) or the displacement /
    potential ``u`` (traction) as a ``Function``.
    """

    stress: np.ndarray
    strain: np.ndarray
    energy: float
    hill_mandel: float
    field: Any = None


@dataclass
class HomogenizationResult:
    """Effective tensor of an RVE for one boundary condition, with its checks.

    ``stiffness``: ``(n, n)`` effective stiffness (or conductivity); ``hill_mandel``: ``(n,)``
    relative residual per unit load case; ``mean_strain``: ``(n, n)``, column ``j`` = mean strain
    of load case ``j`` (the identity for periodic and kinematic conditions; the compliance for
    ``"traction"``); ``volume``: box volume; ``n_dofs``/``n_reduced``: full and solved unknowns;
    ``stats``: how often forms were compiled, the matrix assembled and factored, systems solved.
    """

    stiffness: np.ndarray
    hill_mandel: np.ndarray
    mean_strain: np.ndarray
    volume: float
    n_dofs: int
    n_reduced: int
    n_cells: int
    bc: str = "periodic"
    stats: dict[str, int] = field(default_factory=dict)
    fluctuations: list[Any] | None = None

    @property
    def symmetry_error(self) -> float:
        """``max|C - C^T| / max|C|`` (zero up to round-off for a symmetric problem)."""
        C = self.stiffness
        return float(np.max(np.abs(C - C.T)) / np.max(np.abs(C)))


class _Factor:
    """``K[keep][:, keep]`` (optionally through a prolongation ``P``) factored once."""

    def __init__(self, K: sp.csr_matrix, keep: np.ndarray, P: sp.csr_matrix | None = None):
        self.P = P
        Kr = (P.T @ K @ P).tocsr() if P is not None else K
        self.keep = keep
        try:
            self.lu = spla.splu(Kr[keep][:, keep].tocsc())
        except RuntimeError as exc:
            raise CalculationError("LU factorization of the RVE system failed", reason=str(exc),
                                   fix="check that the material tensor is positive definite in "
                                       "every cell and that the mesh is connected") from exc
        self.n_solves = 0

    def solve(self, b: np.ndarray) -> np.ndarray:
        rhs = self.P.T @ b if self.P is not None else b
        x = np.zeros(self.keep.size)
        x[self.keep] = self.lu.solve(rhs[self.keep])
        if not np.all(np.isfinite(x)):
            raise CalculationError("RVE solve produced NaN or infinity",
                                   reason="singular or ill-conditioned system",
                                   fix="check the material data and the mesh")
        self.n_solves += 1
        return self.P @ x if self.P is not None else x


class LinearRVE:
    """A linear RVE on a box cell, assembled once, factored once per boundary condition.

    Parameters
    ----------
    mesh : dolfinx.mesh.Mesh
        2-D or 3-D mesh on one MPI rank filling the box ``[lower, upper]`` (voids may be cut
        out); for ``"periodic"`` its nodes must match on opposite faces.
    material :
        Elasticity: the Voigt stiffness ``(n, n)``; conduction: a scalar ``k`` or ``(d, d)``.
        Given as one value, ``{phase: value}`` with ``cell_tags``, a callable of the cell
        midpoints ``(3, m) -> (m, ...)``, or a DG0 ``Function`` of shape ``(n, n)``.
    physics : ``"elasticity"`` or ``"conduction"``
    cell_tags : NamedTags, optional
        Phases, from :func:`tag_cells` or :func:`inclusion_cell`.
    lower, upper : ``(d,)``, optional
        Box corners (default: the mesh's bounding box).
    degree : int
        Lagrange degree.
    tol : float, optional
        Node matching tolerance of the periodic map.
    """

    def __init__(self, mesh: dolfinx.mesh.Mesh, material: Any, *, physics: str = "elasticity",
                 cell_tags: NamedTags | None = None, lower: Sequence[float] | None = None,
                 upper: Sequence[float] | None = None, degree: int = 1, tol: float | None = None):
        if physics not in _PHYSICS:
            raise SetupError(f"unknown physics {physics!r}", fix=f"pass one of {_PHYSICS}")
        if mesh.comm.size > 1:
            raise SetupError(f"an RVE runs on one MPI rank; this mesh spans {mesh.comm.size}",
                             fix="build the RVE mesh on MPI.COMM_SELF and farm RVEs over ranks "
                                 "with bridge.farm.MicroFarm")
        dim = mesh.geometry.dim
        if dim not in (2, 3) or mesh.topology.dim != dim:
            raise SetupError(f"an RVE needs a 2-D or 3-D mesh of full dimension, got gdim={dim}, "
                             f"tdim={mesh.topology.dim}", fix="pass a rectangle or box mesh")
        self.mesh, self.physics, self.dim = mesh, physics, dim
        self.n = voigt_size(physics, dim)
        xg = mesh.geometry.x[:, :dim]
        self.lower = xg.min(axis=0) if lower is None else np.asarray(lower, dtype=np.float64)
        self.upper = xg.max(axis=0) if upper is None else np.asarray(upper, dtype=np.float64)
        if self.lower.shape != (dim,) or self.upper.shape != (dim,) or not np.all(self.upper > self.lower):
            raise SetupError(f"box corners must be ({dim},) with lower < upper, got "
                             f"{self.lower.tolist()}, {self.upper.tolist()}",
                             fix="pass lower= and upper= of the cell (or None for the mesh's box)")
        self.volume = float(np.prod(self.upper - self.lower))
        self.tol = 1e-8 * float(np.max(self.upper - self.lower)) if tol is None else float(tol)
        self.material = self._material_function(material, cell_tags)

        shape = (dim,) if physics == "elasticity" else ()
        self.V = dolfinx.fem.functionspace(mesh, ("Lagrange", int(degree), shape))
        self.bs = self.V.dofmap.index_map_bs
        lo, hi, tl = self.lower, self.upper, self.tol

        def on_box(x):
            hit = np.zeros(x.shape[1], dtype=bool)
            for d in range(dim):
                hit |= (np.abs(x[d] - lo[d]) <= tl) | (np.abs(x[d] - hi[d]) <= tl)
            return hit

        self.outer = tag_boundaries(mesh, {"box": on_box})
        self._on_box = on_box
        self._compile()
        K = dolfinx.fem.assemble_matrix(self._a)
        K.scatter_reverse()
        self.K = sp.csr_matrix(K.to_scipy())
        self._factors: dict[str, _Factor] = {}
        self._constraint: PeriodicConstraint | None = None
        self.stats = {"form_compilations": 5, "matrix_assemblies": 1, "factorizations": 0, "solves": 0}

    # -- setup -----------------------------------------------------------------------------
    def _material_function(self, material, cell_tags):
        n = self.n
        if isinstance(material, dolfinx.fem.Function):
            if material.ufl_shape != (n, n):
                raise SetupError(f"material Function must have shape ({n}, {n}), got {material.ufl_shape}",
                                 fix=f"build it with cell_function(mesh, values, shape=({n}, {n}))")
            M = material
        else:
            if isinstance(material, Mapping):
                if cell_tags is None:
                    raise SetupError("a mapping of phase materials needs cell_tags",
                                     fix="pass cell_tags=tag_cells(mesh, {phase: locator, ...}) "
                                         "or the cells of inclusion_cell()")
                values = {k: self._as_tensor(v, k) for k, v in material.items()}
            elif callable(material):
                values = material
            else:
                values = self._as_tensor(material, "material")
            if callable(values) and self.physics == "conduction":
                user = values

                def values(mid):
                    out = np.asarray(user(mid), dtype=np.float64)
                    if out.ndim == 1:
                        out = out[:, None, None] * np.eye(n)
                    return out
            M = cell_function(self.mesh, values, tags=cell_tags, name="material", shape=(n, n))
        mats = M.x.array.reshape(-1, n, n)
        scale = np.max(np.abs(mats)) if mats.size else 0.0
        if not np.all(np.isfinite(mats)) or scale == 0.0:
            raise SetupError("material tensor contains NaN/inf or is zero",
                             fix="give every phase a finite, nonzero stiffness or conductivity")
        if np.max(np.abs(mats - mats.transpose(0, 2, 1))) > 1e-12 * scale:
            raise SetupError("material tensor is not symmetric in some cell",
                             fix="pass symmetric matrices (C[i, j] == C[j, i])")
        if np.min(np.linalg.eigvalsh(mats)) <= 0.0:
            raise SetupError("material tensor is not positive definite in some cell",
                             fix="check E > 0 and -1 < nu < 0.5 (elasticity) or k > 0 (conduction) "
                                 "of every phase; cut voids out of the mesh instead of giving "
                                 "them zero stiffness")
        return M

    def _as_tensor(self, value, name) -> np.ndarray:
        n = self.n
        arr = np.asarray(value, dtype=np.float64)
        if self.physics == "conduction" and arr.ndim == 0:
            arr = float(arr) * np.eye(n)
        if arr.shape != (n, n):
            want = f"a ({n}, {n}) Voigt stiffness" if self.physics == "elasticity" else \
                f"a scalar or a ({n}, {n}) conductivity"
            raise SetupError(f"{name}: need {want}, got shape {arr.shape}",
                             fix="for plane strain use bridge.homogenization.plane_strain_isotropic(E, nu); "
                                 "in 3-D bridge.homogenization.isotropic_stiffness(E, nu)")
        return arr

    def _grad(self, u):
        return voigt_strain(u, self.dim) if self.physics == "elasticity" else ufl.grad(u)

    def _compile(self) -> None:
        mesh, dim, n, M = self.mesh, self.dim, self.n, self.material
        x = ufl.SpatialCoordinate(mesh)
        nrm = ufl.FacetNormal(mesh)
        self._G = dolfinx.fem.Constant(mesh, np.zeros(n))       # macro strain / gradient
        self._S = dolfinx.fem.Constant(mesh, np.zeros(n))       # macro stress / flux
        self._affine_on = dolfinx.fem.Constant(mesh, 1.0)
        u_t, v = ufl.TrialFunction(self.V), ufl.TestFunction(self.V)
        self._w = dolfinx.fem.Function(self.V, name="fluctuation")
        dx = ufl.Measure("dx", domain=mesh)
        ds = self.outer.measure("ds")(self.outer.id("box"))
        if self.physics == "elasticity":
            affine = ufl.dot(voigt_to_tensor(self._G, dim, strain=True), x)
            traction = ufl.dot(voigt_to_tensor(self._S, dim, strain=False), nrm)
            load = ufl.inner(traction, v) * ds
        else:
            affine = ufl.dot(self._G, x)
            load = ufl.dot(self._S, nrm) * v * ds
        self._a = dolfinx.fem.form(ufl.inner(ufl.dot(M, self._grad(u_t)), self._grad(v)) * dx)
        self._L_affine = dolfinx.fem.form(-ufl.inner(ufl.dot(M, self._G), self._grad(v)) * dx)
        self._L_load = dolfinx.fem.form(load)
        u = self._affine_on * affine + self._w
        grad_u = self._grad(self._w) + self._affine_on * self._G
        flux = ufl.dot(M, grad_u)
        # One functional for every volume average: select picks a flux component or the energy.
        self._select = dolfinx.fem.Constant(mesh, np.zeros(n + 1))
        quantities = ufl.as_vector([flux[i] for i in range(n)] + [ufl.dot(flux, grad_u)])
        self._avg_volume = dolfinx.fem.form(ufl.dot(self._select, quantities) * dx)
        self._bselect = dolfinx.fem.Constant(mesh, np.zeros(n))
        if self.physics == "elasticity":
            un = ufl.outer(u, nrm)
            parts = [un[i, i] if i == j else un[i, j] + un[j, i] for i, j in _PAIRS[dim]]
        else:
            parts = [u * nrm[i] for i in range(dim)]
        self._avg_boundary = dolfinx.fem.form(ufl.dot(self._bselect, ufl.as_vector(parts)) * ds)

    # -- factorizations ----------------------------------------------------------------------
    @property
    def constraint(self) -> PeriodicConstraint:
        if self._constraint is None:
            self._constraint = PeriodicConstraint(self.V, lower=self.lower, upper=self.upper, tol=self.tol)
        return self._constraint

    def _node_near(self, point: np.ndarray, nodes: np.ndarray | None = None) -> int:
        x = self.V.tabulate_dof_coordinates()[:, :self.dim]
        cand = np.arange(x.shape[0]) if nodes is None else nodes
        return int(cand[np.argmin(np.sum((x[cand] - point) ** 2, axis=1))])

    def _factor(self, bc: str) -> _Factor:
        if bc not in BOUNDARY_CONDITIONS:
            raise SetupError(f"unknown boundary condition {bc!r}", fix=f"use one of {BOUNDARY_CONDITIONS}")
        if bc in self._factors:
            return self._factors[bc]
        bs, nfull = self.bs, self.K.shape[0]
        if bc == "periodic":
            pc = self.constraint
            keep = np.ones(pc.n_reduced, dtype=bool)
            keep[pc.reduced_dofs_of_node(self._node_near(self.lower))] = False
            factor = _Factor(self.K, keep, pc.P)
        elif bc == "kinematic":
            nodes = dolfinx.fem.locate_dofs_topological(self.V, self.dim - 1, self.outer.entities("box"))
            keep = np.ones(nfull, dtype=bool)
            keep[(nodes[:, None] * bs + np.arange(bs)).reshape(-1)] = False
            factor = _Factor(self.K, keep)
        else:
            self._check_full_boundary()
            keep = np.ones(nfull, dtype=bool)
            for node, comps in self._rigid_pins():
                keep[node * bs + np.asarray(comps)] = False
            factor = _Factor(self.K, keep)
        self._factors[bc] = factor
        self.stats["factorizations"] += 1
        return factor

    def _check_full_boundary(self) -> None:
        """Traction conditions need the whole box surface in material (the mean strain is a
        surface integral of ``u``, undefined where a void cuts the surface)."""
        ds = self.outer.measure("ds")(self.outer.id("box"))
        area = float(dolfinx.fem.assemble_scalar(dolfinx.fem.form(1.0 * ds)))
        ext = self.upper - self.lower
        full = 2.0 * sum(self.volume / e for e in ext)
        if area < full * (1.0 - 1e-9):
            raise SetupError(f"voids cut the cell surface ({area / full:.1%} of it is material), so the "
                             "traction estimate has no defined mean strain",
                             fix="use periodic or kinematic conditions, or a cell whose surface lies "
                                 "in material (e.g. inclusion_cell(arrangement='square'))")

    def _rigid_pins(self) -> list[tuple[int, list[int]]]:
        """Nodes and components whose pinning removes the rigid modes (translations, rotations)."""
        lo, hi = self.lower, self.upper
        a = self._node_near(lo)
        if self.physics == "conduction":
            return [(a, [0])]
        x = self.V.tabulate_dof_coordinates()[:, :self.dim]
        ex = lo.copy()
        ex[0] = hi[0]
        b = self._node_near(ex)
        if self.dim == 2:
            return [(a, [0, 1]), (b, [1])]
        ey = lo.copy()
        ey[1] = hi[1]
        c = self._node_near(ey)
        if abs(np.cross(x[b] - x[a], x[c] - x[a])).max() <= 1e-6 * np.max(hi - lo) ** 2:
            raise SetupError("could not find three non-collinear nodes near the box corners",
                             fix="mesh the cell so that nodes exist near its corners")
        return [(a, [0, 1, 2]), (b, [1, 2]), (c, [2])]

    # -- solves --------------------------------------------------------------------------------
    def _vector(self, form) -> np.ndarray:
        b = dolfinx.fem.Function(self.V)
        dolfinx.fem.assemble_vector(b.x.array, form)
        return b.x.array.copy()

    def _averages(self, boundary: bool) -> tuple[np.ndarray, np.ndarray, float]:
        n = self.n
        vol = np.zeros(n + 1)
        for i in range(n + 1):
            self._select.value[:] = np.eye(n + 1)[i]
            vol[i] = dolfinx.fem.assemble_scalar(self._avg_volume) / self.volume
        self._select.value[:] = 0.0
        bnd = np.zeros(n)
        for i in range(n if boundary else 0):
            self._bselect.value[:] = np.eye(n)[i]
            bnd[i] = dolfinx.fem.assemble_scalar(self._avg_boundary) / self.volume
        self._bselect.value[:] = 0.0
        return vol[:n], bnd, float(vol[n])

    def solve(self, load: Sequence[float], bc: str = "periodic", *, keep_field: bool = False) -> RVESolution:
        """Solve one load case.

        ``load``: ``(n,)`` macro strain/gradient for ``"periodic"`` and ``"kinematic"``, macro
        stress/flux for ``"traction"``.  Returns box averages and the Hill--Mandel residual.
        """
        G = np.asarray(load, dtype=np.float64).reshape(-1)
        if G.shape != (self.n,) or not np.all(np.isfinite(G)):
            raise SetupError(f"load must be {self.n} finite Voigt components, got {np.asarray(load).tolist()}",
                             fix=f"pass an array of shape ({self.n},) without NaN/inf")
        factor = self._factor(bc)
        if bc == "traction":
            self._G.value[:] = 0.0
            self._S.value[:] = G
            self._affine_on.value = 0.0
            b = self._vector(self._L_load)
        else:
            self._G.value[:] = G
            self._S.value[:] = 0.0
            self._affine_on.value = 1.0
            b = self._vector(self._L_affine)
        self._w.x.array[:] = factor.solve(b)
        self._w.x.scatter_forward()
        self.stats["solves"] += 1
        stress, strain, energy = self._averages(boundary=(bc == "traction"))
        if bc != "traction":
            strain = G.copy()        # <eps> = G for periodic and kinematic fluctuations
        macro = float(np.dot(stress, strain))
        scale = max(abs(macro), abs(energy), np.finfo(float).tiny)
        hm = abs(energy - macro) / scale
        out = None
        if keep_field:
            out = self._w.copy()
            out.name = "u" if bc == "traction" else "w"
        return RVESolution(stress=stress, strain=strain, energy=energy, hill_mandel=hm, field=out)

    def effective(self, bc: str = "periodic", *, keep_fields: bool = False) -> HomogenizationResult:
        """Effective tensor ``(n, n)`` from the ``n`` unit load cases (one factorization)."""
        n = self.n
        cols = np.zeros((n, n))
        strains = np.zeros((n, n))
        hm = np.zeros(n)
        kept = []
        for j in range(n):
            sol = self.solve(np.eye(n)[j], bc, keep_field=keep_fields)
            cols[:, j] = sol.stress
            strains[:, j] = sol.strain
            hm[j] = sol.hill_mandel
            if keep_fields:
                kept.append(sol.field)
        if bc == "traction":
            try:
                C = np.linalg.inv(strains)
            except np.linalg.LinAlgError as exc:
                raise CalculationError("the traction-estimate compliance is singular",
                                       reason=str(exc), fix="check that the cell is connected") from exc
        else:
            C = cols
        factor = self._factors[bc]
        n_cells = self.mesh.topology.index_map(self.dim).size_local
        return HomogenizationResult(stiffness=C, hill_mandel=hm, mean_strain=strains, volume=self.volume,
                                    n_dofs=self.K.shape[0], n_reduced=int(factor.keep.sum()),
                                    n_cells=n_cells, bc=bc, stats=dict(self.stats),
                                    fluctuations=kept if keep_fields else None)

    def effective_cached(self, bc: str = "periodic") -> np.ndarray:
        """The effective tensor ``(n, n)`` for ``bc``, computed on first use and kept (a copy)."""
        cache = self.__dict__.setdefault("_effective_cache", {})
        if bc not in cache:
            cache[bc] = self.effective(bc).stiffness
        return cache[bc].copy()

    @property
    def porosity(self) -> float:
        """Meshed volume over box volume (1 without voids)."""
        form = dolfinx.fem.form(1.0 * ufl.dx(domain=self.mesh))
        return float(dolfinx.fem.assemble_scalar(form)) / self.volume
