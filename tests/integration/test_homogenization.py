"""Integration tests of the RVE, micro-model and FE² layers on real DOLFINx."""
import json
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("dolfinx_solver", reason="needs the 'dolfinx' extra")

from mpi4py import MPI  # noqa: E402

from bridge.errors import CalculationError, SetupError  # noqa: E402
from bridge.homogenization import (isotropic_stiffness, laminate_stiffness,  # noqa: E402
                                   plane_strain_isotropic)
from bridge_adapters.dolfinx import box_mesh, rectangle_mesh, tag_boundaries, tag_cells  # noqa: E402
from bridge_adapters.dolfinx.cells import inclusion_cell  # noqa: E402
from bridge_adapters.dolfinx.fe2 import FE2Problem  # noqa: E402
from bridge_adapters.dolfinx.micro import (NonlinearElasticRVE, NonlinearRVEModel,  # noqa: E402
                                           RVEMicroModel)
from bridge_adapters.dolfinx.rve import LinearRVE  # noqa: E402


def _laminate(physics="elasticity"):
    mesh = rectangle_mesh((10, 4), comm=MPI.COMM_SELF)
    tags = tag_cells(mesh, {"A": lambda x: x[0] <= 0.4 + 1e-9, "B": lambda x: x[0] >= 0.4 - 1e-9})
    if physics == "elasticity":
        mats = {"A": plane_strain_isotropic(10, 0.3), "B": plane_strain_isotropic(1, 0.45)}
    else:
        mats = {"A": 5.0, "B": 0.5}
    return LinearRVE(mesh, mats, physics=physics, cell_tags=tags), mats


def test_homogeneous_cell_gives_its_own_tensor_for_every_condition():
    mesh = rectangle_mesh((4, 3), comm=MPI.COMM_SELF)
    C = plane_strain_isotropic(2.0, 0.3)
    rve = LinearRVE(mesh, C)
    for bc in ("periodic", "kinematic", "traction"):
        res = rve.effective(bc)
        np.testing.assert_allclose(res.stiffness, C, atol=1e-12 * C.max())
        assert res.hill_mandel.max() < 1e-12
    # one assembly, one factorization per boundary condition, n solves each
    assert rve.stats == {"form_compilations": 5, "matrix_assemblies": 1, "factorizations": 3, "solves": 9}


def test_laminate_conduction_is_series_and_parallel_exactly():
    rve, k = _laminate("conduction")
    K = rve.effective("periodic").stiffness
    series = 1.0 / (0.4 / k["A"] + 0.6 / k["B"])
    parallel = 0.4 * k["A"] + 0.6 * k["B"]
    np.testing.assert_allclose(K, np.diag([series, parallel]), rtol=1e-12, atol=1e-12)
    # kinematic (uniform gradient) is the parallel/upper side, uniform flux the lower side
    Kk, Kt = rve.effective("kinematic").stiffness, rve.effective("traction").stiffness
    assert np.min(np.linalg.eigvalsh(Kk - K)) > -1e-12 and np.min(np.linalg.eigvalsh(K - Kt)) > -1e-12


def test_3d_laminate_along_each_axis():
    mesh = box_mesh((4, 4, 4), comm=MPI.COMM_SELF)
    CA, CB = isotropic_stiffness(10, 0.3), isotropic_stiffness(1, 0.25)
    for axis in range(3):
        tags = tag_cells(mesh, {"A": lambda x, a=axis: x[a] <= 0.5 + 1e-9,
                                "B": lambda x, a=axis: x[a] >= 0.5 - 1e-9})
        res = LinearRVE(mesh, {"A": CA, "B": CB}, cell_tags=tags).effective()
        exact = laminate_stiffness([0.5, 0.5], [CA, CB], normal=axis)
        np.testing.assert_allclose(res.stiffness, exact, atol=1e-10 * exact.max())


def test_periodic_cell_nodes_match_and_phases_are_tagged():
    cell = inclusion_cell(0.3, h=0.1)
    assert set(cell.cells.names) == {"matrix", "fiber"}
    np.testing.assert_allclose(cell.upper, [1.0, np.sqrt(3.0)])
    rve = LinearRVE(cell.mesh, {"matrix": plane_strain_isotropic(1, 0.3), "fiber": plane_strain_isotropic(5, 0.3)},
                    cell_tags=cell.cells, lower=cell.lower, upper=cell.upper)
    assert rve.constraint.n_reduced < rve.constraint.n_full
    with pytest.raises(SetupError, match="fraction"):
        inclusion_cell(0.95)
    porous = inclusion_cell(0.3, h=0.1, inclusion="void")
    assert 0.69 < porous.porosity < 0.72
    rve = LinearRVE(porous.mesh, 1.0, physics="conduction", lower=porous.lower, upper=porous.upper)
    with pytest.raises(SetupError, match="voids cut the cell surface"):
        rve.effective("traction")


def test_bad_materials_are_refused():
    mesh = rectangle_mesh((2, 2), comm=MPI.COMM_SELF)
    with pytest.raises(SetupError, match="positive definite"):
        LinearRVE(mesh, -plane_strain_isotropic(1, 0.3))
    with pytest.raises(SetupError, match="shape"):
        LinearRVE(mesh, np.eye(2))
    with pytest.raises(SetupError, match="cell_tags"):
        LinearRVE(mesh, {"a": plane_strain_isotropic(1, 0.3)})
    rve = LinearRVE(mesh, plane_strain_isotropic(1, 0.3))
    with pytest.raises(SetupError, match="finite"):
        rve.solve([np.nan, 0.0, 0.0])
    with pytest.raises(SetupError, match="boundary condition"):
        rve.solve([0.0, 0.0, 0.0], bc="dirichlet")


@pytest.fixture(scope="module")
def nonlinear_rve():
    cell = inclusion_cell(0.3, h=0.12)
    return NonlinearElasticRVE(cell.mesh, {"matrix": (5.0, 1.0, 400.0), "fiber": (50.0, 20.0, 0.0)},
                               cell_tags=cell.cells, lower=cell.lower, upper=cell.upper), cell


def test_nonlinear_rve_with_beta_zero_equals_linear_rve(nonlinear_rve):
    _, cell = nonlinear_rve
    lin = NonlinearElasticRVE(cell.mesh, {"matrix": (5.0, 1.0, 0.0), "fiber": (50.0, 20.0, 0.0)},
                              cell_tags=cell.cells, lower=cell.lower, upper=cell.upper)

    def C(k, m):
        lam = k - 2 * m / 3
        return np.array([[lam + 2 * m, lam, 0], [lam, lam + 2 * m, 0], [0, 0, m]])

    ref = LinearRVE(cell.mesh, {"matrix": C(5, 1), "fiber": C(50, 20)}, cell_tags=cell.cells,
                    lower=cell.lower, upper=cell.upper).effective_cached()
    E = np.array([0.01, -0.004, 0.006])
    out = lin.solve(E)
    np.testing.assert_allclose(out["stress"], ref @ E, atol=1e-12 * np.abs(ref).max())
    np.testing.assert_allclose(out["tangent"], ref, atol=1e-11 * np.abs(ref).max())
    assert out["newton_iterations"] == 1


def test_nonlinear_tangent_matches_finite_differences_and_state_round_trips(nonlinear_rve):
    problem, _ = nonlinear_rve
    model = NonlinearRVEModel(problem)
    model.initialize()
    E = np.array([0.02, -0.005, 0.01])
    out = model.solve({"strain": E})
    assert out["hill_mandel"] < 1e-10
    h = 1e-6
    fd = np.column_stack([(problem.solve(E + h * e)["stress"] - problem.solve(E - h * e)["stress"]) / (2 * h)
                          for e in np.eye(3)])
    # central differences: error O(h^2 |d3 psi|) ~ 1e-9 relative here, Newton at 1e-12
    np.testing.assert_allclose(fd, out["tangent"], atol=1e-7 * np.abs(out["tangent"]).max())
    # warm start from the saved state converges in fewer iterations, same answer
    other = NonlinearRVEModel(problem)
    other.set_state(model.get_state())
    again = other.solve({"strain": E * 1.001})
    assert again["newton_iterations"] < out["newton_iterations"]
    with pytest.raises(SetupError, match="strain"):
        model.solve({"strain": [0.1, 0.2]})


def test_nonlinear_newton_failure_carries_its_state(nonlinear_rve):
    problem, _ = nonlinear_rve
    saved = problem.max_iterations
    problem.max_iterations = 1
    try:
        with pytest.raises(CalculationError) as info:
            problem.solve(np.array([0.3, -0.2, 0.2]))
    finally:
        problem.max_iterations = saved
    assert info.value.state["strain"] == [0.3, -0.2, 0.2]


def _beam(comm):
    mesh = rectangle_mesh((8, 2), (0.0, 0.0), (4.0, 1.0), comm=comm)
    bd = tag_boundaries(mesh, {"left": lambda x: np.isclose(x[0], 0.0), "right": lambda x: np.isclose(x[0], 4.0)})
    return mesh, bd


def test_fe2_with_a_homogeneous_linear_rve_reproduces_the_uniform_tension_solution():
    C = plane_strain_isotropic(2.0, 0.25)
    rve = LinearRVE(rectangle_mesh((2, 2), comm=MPI.COMM_SELF), C)
    mesh, bd = _beam(MPI.COMM_SELF)
    bottom = tag_boundaries(mesh, {"left": lambda x: np.isclose(x[0], 0.0),
                                   "right": lambda x: np.isclose(x[0], 4.0),
                                   "bottom": lambda x: np.isclose(x[1], 0.0)})
    problem = FE2Problem(mesh, lambda gid: RVEMicroModel(rve), boundaries=bottom,
                         dirichlet={"left": {0: 0.0}, "bottom": {1: 0.0}}, traction={"right": (0.1, 0.0)})
    res = problem.solve(show_progress=False)
    assert res.iterations == [1]
    # uniaxial stress in plane strain: eps_xx = s (C22) / (C11 C22 - C12^2)
    exx = 0.1 * C[1, 1] / (C[0, 0] * C[1, 1] - C[0, 1] ** 2)
    strains = problem.point_strains()
    np.testing.assert_allclose(strains[:, 0], exx, rtol=1e-10)
    np.testing.assert_allclose(problem.cell_stress().x.array.reshape(-1, 3)[:, 0], 0.1, rtol=1e-10)


def test_fe2_bad_setup_is_refused():
    mesh, bd = _beam(MPI.COMM_SELF)
    with pytest.raises(SetupError, match="Dirichlet"):
        FE2Problem(mesh, lambda gid: None, boundaries=bd, dirichlet={})
    with pytest.raises(SetupError, match="components"):
        FE2Problem(mesh, lambda gid: None, boundaries=bd, dirichlet={"left": {2: 0.0}})
    with pytest.raises(SetupError, match="traction"):
        FE2Problem(mesh, lambda gid: None, boundaries=bd, dirichlet={"left": (0, 0)}, traction={"right": (1.0,)})


def test_fe2_reports_a_failed_micro_solve_with_its_point():
    class Broken:
        def __init__(self, gid):
            self.gid = gid

        def solve(self, data, dt):
            if self.gid == 5:
                raise RuntimeError("micro diverged")
            return {"stress": np.zeros(3), "tangent": np.eye(3)}

    mesh, bd = _beam(MPI.COMM_SELF)
    problem = FE2Problem(mesh, Broken, boundaries=bd, dirichlet={"left": (0, 0)}, traction={"right": (0, 1)})
    with pytest.raises(CalculationError, match="point 5") as info:
        problem.solve(show_progress=False)
    assert "micro diverged" in str(info.value)


MPI_SCRIPT = r"""
import dolfinx_solver, json, sys, numpy as np
from mpi4py import MPI
from bridge_adapters.dolfinx import rectangle_mesh, tag_boundaries, evaluate
from bridge_adapters.dolfinx.cells import inclusion_cell
from bridge_adapters.dolfinx.micro import NonlinearElasticRVE, NonlinearRVEModel
from bridge_adapters.dolfinx.fe2 import FE2Problem
comm = MPI.COMM_WORLD
cell = inclusion_cell(0.3, h=0.15)
rve = NonlinearElasticRVE(cell.mesh, {"matrix": (5.0, 1.0, 400.0), "fiber": (50.0, 20.0, 0.0)},
                          cell_tags=cell.cells, lower=cell.lower, upper=cell.upper)
mesh = rectangle_mesh((6, 2), (0, 0), (3, 1), comm=comm)
bd = tag_boundaries(mesh, {"left": lambda x: np.isclose(x[0], 0), "right": lambda x: np.isclose(x[0], 3)})
p = FE2Problem(mesh, lambda gid: NonlinearRVEModel(rve), boundaries=bd,
               dirichlet={"left": (0, 0), "right": {1: -0.15}}, balance=True)
r = p.solve(load_steps=2, show_progress=False)
pts = np.array([[1.0, 0.5], [2.0, 0.0], [3.0, 1.0]])
u = evaluate(p.u, pts)
hm = p.max_hill_mandel()          # collective
if comm.rank == 0:
    json.dump({"u": u.tolist(), "iterations": r.iterations, "hm": hm,
               "solves": r.micro_solves, "migrations": r.migrations}, open(sys.argv[1], "w"))
"""


def test_fe2_nonlinear_same_answer_on_one_and_two_ranks(tmp_path, mpiexec):
    script = tmp_path / "fe2.py"
    script.write_text(MPI_SCRIPT)
    results = []
    for n in (1, 2):
        out = tmp_path / f"u{n}.json"
        proc = subprocess.run([str(mpiexec), "-n", str(n), sys.executable, str(script), str(out)],
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        results.append(json.loads(out.read_text()))
    one, two = results
    assert one["iterations"] == two["iterations"] and max(one["iterations"]) <= 5
    assert one["solves"] == two["solves"]
    scale = np.max(np.abs(one["u"]))
    # Newton converges to 1e-9 of the first residual; the two runs differ in round-off only
    np.testing.assert_allclose(two["u"], one["u"], atol=1e-9 * scale)
    assert one["hm"] < 1e-10 and two["hm"] < 1e-10
