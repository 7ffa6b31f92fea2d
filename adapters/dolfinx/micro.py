r"""DOLFINx RVEs as FE²/HMM micro models (the preCICE Micro Manager contract).

Every micro model here answers ``solve({"strain": E}, dt) -> {"stress", "tangent", ...}`` with
plane-strain Voigt vectors (engineering shear): ``E`` ``(3,)`` = (E11, E22, 2E12), ``stress``
``(3,)`` = the box-averaged (S11, S22, S12), ``tangent`` ``(3, 3)`` = d stress / d E, the
*consistent* macro tangent, which keeps the macro Newton quadratic.  The heavy parts (mesh,
compiled forms, periodic map) live in one shared problem object per rank; a micro model per
integration point holds only its state (the last periodic fluctuation, used as the Newton
initial guess).

**Linear** (:class:`RVEMicroModel`): a :class:`~bridge_adapters.dolfinx.rve.LinearRVE`,
factored once; a solve is one right-hand side.  The tangent is the effective stiffness.

**Nonlinear elastic** (:class:`NonlinearElasticRVE` + :class:`NonlinearRVEModel`): each phase
has the small-strain stored energy (a stiffening hyperelastic law, convex for
:math:`\beta \ge 0`)

.. math:: \psi(\varepsilon) = \tfrac{\kappa}{2}(\mathrm{tr}\,\varepsilon)^2
          + \mu\,(e + \tfrac{\beta}{2}e^2),\qquad e = \varepsilon_d:\varepsilon_d,\qquad
          \sigma = \kappa\,\mathrm{tr}\varepsilon\,I + 2\mu(1 + \beta e)\,\varepsilon_d,

(:math:`\varepsilon_d` the 3-D deviator, plane strain :math:`\varepsilon_{i3} = 0`), with
:math:`d\sigma[X] = \kappa\,\mathrm{tr}X\,I + 2\mu(1+\beta e)X_d + 4\mu\beta(\varepsilon_d:X_d)
\varepsilon_d`.  For :math:`\beta = 0` it is linear with :math:`\lambda = \kappa - 2\mu/3`.
The periodic fluctuation ``w`` solves :math:`\int_Y \sigma(E + \varepsilon(w)):\varepsilon(v) = 0`
by Newton (matrix :math:`P^TJP`, SuperLU), to :math:`\|P^TR\| \le` ``rtol`` times the residual of
``w = 0``.  The consistent tangent needs three more solves with the converged Jacobian:
:math:`J\chi_j = -\int d\sigma[E_j]:\varepsilon(v)`, column ``j`` =
:math:`\langle d\sigma[E_j + \varepsilon(\chi_j)]\rangle`.  Every solve reports the Hill--Mandel
residual :math:`|\langle\sigma:\varepsilon\rangle - \langle\sigma\rangle:E| /
|\langle\sigma\rangle:E|`, which for a periodic ``w`` is the Newton residual in disguise.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from bridge.errors import CalculationError, SetupError

from ._backend import require

require()

import dolfinx  # noqa: E402
import dolfinx.fem  # noqa: E402
import ufl  # noqa: E402

from .mesh import NamedTags, cell_function  # noqa: E402
from .periodic import PeriodicConstraint  # noqa: E402
from .rve import LinearRVE  # noqa: E402

__all__ = ["RVEMicroModel", "NonlinearElasticRVE", "NonlinearRVEModel", "check_strain"]


def check_strain(macro_data: Mapping[str, Any], n: int = 3) -> np.ndarray:
    """The ``"strain"`` entry of ``macro_data`` as a finite ``(n,)`` array (SetupError otherwise)."""
    if not isinstance(macro_data, Mapping) or "strain" not in macro_data:
        raise SetupError("macro_data must be a dict with a 'strain' entry",
                         fix=f"pass {{'strain': array of {n} Voigt components}}")
    E = np.asarray(macro_data["strain"], dtype=np.float64).reshape(-1)
    if E.shape != (n,) or not np.all(np.isfinite(E)):
        raise SetupError(f"strain must be {n} finite Voigt components (E11, E22, 2E12), got "
                         f"{np.asarray(macro_data['strain']).tolist()}",
                         fix="pass the plane-strain macro strain with engineering shear")
    return E


class RVEMicroModel:
    """A linear RVE at one integration point: stress by an actual RVE solve, tangent = C_eff.

    ``rve``: a 2-D elasticity :class:`LinearRVE` (shared between points); ``bc``: its boundary
    condition.  Output: ``stress`` ``(3,)``, ``tangent`` ``(3, 3)``, ``hill_mandel``.
    """

    def __init__(self, rve: LinearRVE, bc: str = "periodic"):
        if rve.physics != "elasticity" or rve.dim != 2:
            raise SetupError("RVEMicroModel needs a 2-D elasticity LinearRVE",
                             fix="build LinearRVE(mesh, C, physics='elasticity') on a 2-D cell")
        self.rve, self.bc = rve, bc
        self._last: dict[str, np.ndarray] = {}

    def initialize(self) -> None:
        self.tangent = self.rve.effective_cached(self.bc)

    def solve(self, macro_data: Mapping[str, Any], dt: float = 0.0) -> dict[str, Any]:
        E = check_strain(macro_data)
        if self.bc == "traction":
            sol = self.rve.solve(self.tangent @ E, "traction")
        else:
            sol = self.rve.solve(E, self.bc)
        self._last = {"strain": E, "stress": sol.stress}
        return {"stress": sol.stress, "tangent": self.tangent.copy(), "hill_mandel": sol.hill_mandel}

    def get_state(self) -> dict[str, np.ndarray]:
        return {k: v.copy() for k, v in self._last.items()}

    def set_state(self, state: Mapping[str, Any]) -> None:
        self._last = {k: np.asarray(v, dtype=np.float64).copy() for k, v in state.items()}


class NonlinearElasticRVE:
    """Shared forms of a periodic plane-strain RVE with the stiffening law above (one rank).

    Parameters
    ----------
    mesh : dolfinx.mesh.Mesh
        2-D periodic cell on ``MPI.COMM_SELF``.
    phases : mapping ``{phase: (kappa, mu, beta)}`` or one tuple
        Bulk and shear modulus (stress unit) and the stiffening coefficient (dimensionless,
        >= 0) per phase of ``cell_tags``.
    lower, upper : ``(2,)``, optional
        Box corners (default: the mesh's bounding box).
    rtol : float
        Newton tolerance relative to the residual at ``w = 0``.
    max_iterations : int
    """

    def __init__(self, mesh: dolfinx.mesh.Mesh, phases: Any, *, cell_tags: NamedTags | None = None,
                 lower=None, upper=None, degree: int = 1, rtol: float = 1e-12, max_iterations: int = 25):
        if mesh.comm.size > 1 or mesh.geometry.dim != 2:
            raise SetupError("NonlinearElasticRVE needs a 2-D mesh on one MPI rank",
                             fix="mesh the cell on MPI.COMM_SELF (inclusion_cell does by default)")
        table = phases if isinstance(phases, Mapping) else None
        params = {}
        for i, key in enumerate(("kappa", "mu", "beta")):
            if table is None:
                value = float(np.asarray(phases, dtype=np.float64).reshape(-1)[i])
            else:
                value = {name: float(np.asarray(p, dtype=np.float64).reshape(-1)[i]) for name, p in table.items()}
            params[key] = cell_function(mesh, value, tags=cell_tags, name=key)
        for key, f in params.items():
            arr = f.x.array
            low = 0.0 if key == "beta" else np.finfo(float).tiny
            if not np.all(np.isfinite(arr)) or np.min(arr) < low:
                raise SetupError(f"{key} must be finite and {'>= 0' if key == 'beta' else '> 0'} in every phase",
                                 fix="pass (kappa > 0, mu > 0, beta >= 0) per phase")
        self.mesh = mesh
        self.V = dolfinx.fem.functionspace(mesh, ("Lagrange", int(degree), (2,)))
        self.constraint = PeriodicConstraint(self.V, lower=lower, upper=upper)
        pc = self.constraint
        self.volume = float(np.prod(pc.upper - pc.lower))
        x = self.V.tabulate_dof_coordinates()[:, :2]
        corner = int(np.argmin(np.sum((x - pc.lower) ** 2, axis=1)))
        self.keep = np.ones(pc.n_reduced, dtype=bool)
        self.keep[pc.reduced_dofs_of_node(corner)] = False
        self.rtol, self.max_iterations = float(rtol), int(max_iterations)
        self._compile(params)
        self.stats = {"solves": 0, "newton_iterations": 0, "factorizations": 0}

    def _compile(self, p) -> None:
        mesh, V = self.mesh, self.V
        kappa, mu, beta = p["kappa"], p["mu"], p["beta"]
        I3 = ufl.Identity(3)

        def eps3(u):
            g = ufl.grad(u)
            e12 = 0.5 * (g[0, 1] + g[1, 0])
            return ufl.as_matrix([[g[0, 0], e12, 0.0], [e12, g[1, 1], 0.0], [0.0, 0.0, 0.0]])

        def tensor(c):
            return ufl.as_matrix([[c[0], 0.5 * c[2], 0.0], [0.5 * c[2], c[1], 0.0], [0.0, 0.0, 0.0]])

        def dev(t):
            return t - ufl.tr(t) / 3.0 * I3

        def voigt(s):
            return ufl.as_vector([s[0, 0], s[1, 1], s[0, 1]])

        self.E = dolfinx.fem.Constant(mesh, np.zeros(3))
        self.D = dolfinx.fem.Constant(mesh, np.zeros(3))
        self.w = dolfinx.fem.Function(V, name="w")
        self.chi = dolfinx.fem.Function(V, name="chi")
        v, dw = ufl.TestFunction(V), ufl.TrialFunction(V)
        eps = tensor(self.E) + eps3(self.w)
        ed = dev(eps)
        e = ufl.inner(ed, ed)
        sigma = kappa * ufl.tr(eps) * I3 + 2.0 * mu * (1.0 + beta * e) * ed
        psi = 0.5 * kappa * ufl.tr(eps) ** 2 + mu * (e + 0.5 * beta * e ** 2)

        def dsig(X):
            Xd = dev(X)
            return (kappa * ufl.tr(X) * I3 + 2.0 * mu * (1.0 + beta * e) * Xd
                    + 4.0 * mu * beta * ufl.inner(ed, Xd) * ed)

        sd = dev(sigma)
        self._von_mises = ufl.sqrt(1.5 * ufl.inner(sd, sd))
        dx = ufl.Measure("dx", domain=mesh)
        self._R = dolfinx.fem.form(ufl.inner(sigma, eps3(v)) * dx)
        self._J = dolfinx.fem.form(ufl.inner(dsig(eps3(dw)), eps3(v)) * dx)
        self._L_tan = dolfinx.fem.form(-ufl.inner(dsig(tensor(self.D)), eps3(v)) * dx)
        tan = voigt(dsig(tensor(self.D) + eps3(self.chi)))
        s = voigt(sigma)
        quantities = ufl.as_vector([s[0], s[1], s[2], tan[0], tan[1], tan[2],
                                    ufl.inner(sigma, eps), psi])
        self._select = dolfinx.fem.Constant(mesh, np.zeros(8))
        self._avg = dolfinx.fem.form(ufl.dot(self._select, quantities) * dx)

    def _mean(self, i: int) -> float:
        self._select.value[:] = np.eye(8)[i]
        value = dolfinx.fem.assemble_scalar(self._avg) / self.volume
        self._select.value[:] = 0.0
        return float(value)

    def _residual(self) -> np.ndarray:
        b = dolfinx.fem.Function(self.V)
        dolfinx.fem.assemble_vector(b.x.array, self._R)
        return self.constraint.restrict(b.x.array)

    def _factor(self):
        J = dolfinx.fem.assemble_matrix(self._J)
        J.scatter_reverse()
        Jr = self.constraint.reduce_matrix(sp.csr_matrix(J.to_scipy()))
        self.stats["factorizations"] += 1
        try:
            return spla.splu(Jr[self.keep][:, self.keep].tocsc())
        except RuntimeError as exc:
            raise CalculationError("factorization of the RVE Jacobian failed", reason=str(exc),
                                   fix="check the phase parameters (kappa, mu > 0)") from exc

    def _update(self, lu, rhs_reduced: np.ndarray, target: dolfinx.fem.Function, sign: float) -> None:
        step = np.zeros(self.keep.size)
        step[self.keep] = lu.solve(rhs_reduced[self.keep])
        target.x.array[:] += sign * self.constraint.prolong(step)

    def solve(self, E: np.ndarray, w0: np.ndarray | None = None) -> dict[str, Any]:
        """Newton for the fluctuation at macro strain ``E`` ``(3,)``; returns ``stress`` ``(3,)``,
        ``tangent`` ``(3, 3)``, ``energy_density``, ``hill_mandel``, ``newton_iterations`` and
        the fluctuation ``w`` (dof array)."""
        E = np.asarray(E, dtype=np.float64)
        self.E.value[:] = E
        self.w.x.array[:] = 0.0
        scale = float(np.linalg.norm(self._residual()[self.keep]))
        if w0 is not None:
            self.w.x.array[:] = w0
        history = []
        it = 0
        while True:
            r = self._residual()
            norm = float(np.linalg.norm(r[self.keep]))
            history.append(norm)
            if norm <= self.rtol * scale or norm == 0.0:
                break
            if it >= self.max_iterations or not np.isfinite(norm):
                raise CalculationError(f"RVE Newton did not converge in {it} iterations",
                                       reason=f"residual history {history}",
                                       state={"strain": E.tolist(), "residuals": history},
                                       fix="use smaller macro load steps, or lower beta")
            self._update(self._factor(), r, self.w, -1.0)
            it += 1
        self.stats["newton_iterations"] += it
        self.stats["solves"] += 1
        stress = np.array([self._mean(i) for i in range(3)])
        lu = self._factor()
        tangent = np.zeros((3, 3))
        for j in range(3):
            self.D.value[:] = np.eye(3)[j]
            b = dolfinx.fem.Function(self.V)
            dolfinx.fem.assemble_vector(b.x.array, self._L_tan)
            self.chi.x.array[:] = 0.0
            self._update(lu, self.constraint.restrict(b.x.array), self.chi, 1.0)
            tangent[:, j] = [self._mean(3 + i) for i in range(3)]
        self.D.value[:] = 0.0
        energy = self._mean(6)
        macro = float(stress @ E)
        hm = abs(energy - macro) / max(abs(macro), abs(energy), np.finfo(float).tiny)
        return {"stress": stress, "tangent": tangent, "energy_density": self._mean(7),
                "hill_mandel": hm, "newton_iterations": it, "w": self.w.x.array.copy()}


    def von_mises(self, E: np.ndarray, w: np.ndarray | None = None) -> dolfinx.fem.Function:
        """Von Mises stress (plane strain, sigma_33 included) per cell as a DG0 ``Function``, at
        macro strain ``E`` ``(3,)`` with fluctuation ``w`` (solved when not given)."""
        if w is None:
            w = self.solve(E)["w"]
        self.E.value[:] = np.asarray(E, dtype=np.float64)
        self.w.x.array[:] = w
        W = dolfinx.fem.functionspace(self.mesh, ("DG", 0))
        f = dolfinx.fem.Function(W, name="von_mises")
        f.interpolate(dolfinx.fem.Expression(self._von_mises, W.element.interpolation_points))
        return f


class NonlinearRVEModel:
    """One integration point's micro model over a shared :class:`NonlinearElasticRVE`.

    State: the last converged fluctuation (Newton's initial guess) and strain.  Output:
    ``stress``, ``tangent``, ``energy_density``, ``hill_mandel``, ``newton_iterations``.
    """

    def __init__(self, problem: NonlinearElasticRVE):
        self.problem = problem
        self.w: np.ndarray | None = None
        self.strain = np.zeros(3)

    def initialize(self) -> None:
        self.w = None

    def solve(self, macro_data: Mapping[str, Any], dt: float = 0.0) -> dict[str, Any]:
        E = check_strain(macro_data)
        out = self.problem.solve(E, self.w)
        self.w = out.pop("w")
        self.strain = E
        return out

    def get_state(self) -> dict[str, np.ndarray]:
        state = {"strain": self.strain.copy()}
        if self.w is not None:
            state["w"] = self.w.copy()
        return state

    def set_state(self, state: Mapping[str, Any]) -> None:
        self.strain = np.asarray(state["strain"], dtype=np.float64).copy()
        self.w = np.asarray(state["w"], dtype=np.float64).copy() if "w" in state else None
