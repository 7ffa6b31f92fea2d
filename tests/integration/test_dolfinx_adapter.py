"""Integration tests of the DOLFINx adapter with the real engine (serial).

Tolerances: every reference below is reproduced exactly by the discrete space (polynomials of
the element degree, piecewise-linear laminate fluctuations), so the only error is floating-point
round-off of the assembly and the LU solve, ~cond * 1e-16 <= 1e-12 on these small meshes.
"""
from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

from bridge.errors import EngineNotAvailable, SetupError, UsageError  # noqa: E402
from bridge.homogenization import laminate_stiffness, plane_strain_isotropic  # noqa: E402
from bridge.ledger import Ledger  # noqa: E402
from bridge.protocols import FieldEngine  # noqa: E402
from bridge_adapters.dolfinx import (DolfinxField, PeriodicConstraint, cell_function,  # noqa: E402
                                     evaluate, homogenize_elasticity, interval_mesh,
                                     rectangle_mesh, tag_boundaries, tag_cells)

import dolfinx  # noqa: E402
import dolfinx.fem  # noqa: E402
import dolfinx.io  # noqa: E402
import ufl  # noqa: E402
from mpi4py import MPI  # noqa: E402
from petsc4py import PETSc  # noqa: E402

SIDES = {
    "left": lambda x: np.isclose(x[0], 0.0),
    "right": lambda x: np.isclose(x[0], 1.0),
    "bottom": lambda x: np.isclose(x[1], 0.0),
    "top": lambda x: np.isclose(x[1], 1.0),
}


def quadratic(x):
    """u = 1 + x^2 + 2y + 0.5 xy (in P2); -lap u = -2; x of shape (3, n)."""
    return 1.0 + x[0] ** 2 + 2.0 * x[1] + 0.5 * x[0] * x[1]


def test_evaluate_reproduces_polynomials_at_random_points():
    rng = np.random.default_rng(7)
    mesh = rectangle_mesh((7, 5), lower=(0.0, 0.0), upper=(1.0, 1.0), comm=MPI.COMM_SELF)
    V2 = dolfinx.fem.functionspace(mesh, ("Lagrange", 2))
    u = dolfinx.fem.Function(V2)
    u.interpolate(quadratic)
    pts = rng.random((200, 2))
    pts[:4] = [[0.0, 0.0], [1.0, 1.0], [0.5, 0.0], [1.0, 0.3]]  # corners and edges are inside
    values = evaluate(u, pts)
    assert values.shape == (200,)
    np.testing.assert_allclose(values, quadratic(pts.T), rtol=0, atol=1e-12)

    W = dolfinx.fem.functionspace(mesh, ("Lagrange", 1, (2,)))
    w = dolfinx.fem.Function(W)
    w.interpolate(lambda x: np.vstack([1.0 + 2.0 * x[0] - x[1], 3.0 * x[1]]))
    wv = evaluate(w, pts)
    assert wv.shape == (200, 2)
    np.testing.assert_allclose(wv, np.column_stack([1 + 2 * pts[:, 0] - pts[:, 1], 3 * pts[:, 1]]),
                               rtol=0, atol=1e-12)

    line = interval_mesh(9, (-1.0, 2.0), comm=MPI.COMM_SELF)
    z = dolfinx.fem.Function(dolfinx.fem.functionspace(line, ("Lagrange", 1)))
    z.interpolate(lambda x: 4.0 - 3.0 * x[0])
    xs = rng.uniform(-1.0, 2.0, 50)
    np.testing.assert_allclose(evaluate(z, xs), 4.0 - 3.0 * xs, rtol=0, atol=1e-12)


def test_evaluate_outside_mesh():
    mesh = rectangle_mesh((4, 4), comm=MPI.COMM_SELF)
    u = dolfinx.fem.Function(dolfinx.fem.functionspace(mesh, ("Lagrange", 1)))
    pts = np.array([[0.5, 0.5], [1.5, 0.5], [0.2, -0.3]])
    with pytest.raises(SetupError, match=r"2 of 3 point\(s\) lie outside the mesh; the first is \[1\.5"):
        evaluate(u, pts)
    out = evaluate(u, pts, outside="nan")
    assert out[0] == 0.0 and np.isnan(out[1]) and np.isnan(out[2])
    with pytest.raises(SetupError, match="shape"):
        evaluate(u, np.zeros((3, 4)))


def test_tagging_errors_name_the_known_tags():
    mesh = rectangle_mesh((4, 4), comm=MPI.COMM_SELF)
    tags = tag_boundaries(mesh, SIDES)
    field = DolfinxField(mesh, tags, dirichlet={"left": 0.0})
    with pytest.raises(SetupError, match="unknown boundary 'outlet' .*known tags: left, right, bottom, top"):
        field.set_dirichlet("outlet", 1.0)
    with pytest.raises(SetupError, match="known tags"):
        field.boundary_flux("inlet")
    with pytest.raises(SetupError, match="matches no entity"):
        tag_boundaries(mesh, {"nowhere": lambda x: np.isclose(x[0], 7.0)})
    with pytest.raises(SetupError, match="overlap"):
        tag_boundaries(mesh, {"a": SIDES["left"], "b": lambda x: x[0] < 0.5})
    with pytest.raises(UsageError, match="advance"):
        field.boundary_flux("left")


def test_field_engine_protocol_and_missing_engine_message():
    mesh = interval_mesh(4, comm=MPI.COMM_SELF)
    field = DolfinxField(mesh, {"a": lambda x: np.isclose(x[0], 0.0)})
    assert isinstance(field, FieldEngine)
    code = ("import sys; sys.modules['dolfinx'] = None; sys.modules['dolfinx_solver'] = None\n"
            "import bridge_adapters.dolfinx as d\n"
            "try:\n    d.DolfinxField\nexcept ImportError as e:\n"
            "    print(type(e).__name__, e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "EngineNotAvailable" in out.stdout and "multiscale-bridge[dolfinx]" in out.stdout, out
    assert issubclass(EngineNotAvailable, ImportError)


def _manufactured_field(degree=2):
    mesh = rectangle_mesh((6, 5), comm=MPI.COMM_SELF)
    field = DolfinxField(mesh, SIDES, degree=degree, source=-2.0,
                         dirichlet={"left": quadratic, "right": quadratic},
                         neumann={"top": lambda x: 2.0 + 0.5 * x[0],        # +du/dy at y = 1
                                  "bottom": lambda x: -(2.0 + 0.5 * x[0])})  # -du/dy at y = 0
    return field


def test_steady_diffusion_matches_manufactured_solution_and_fluxes():
    field = _manufactured_field()
    field.solve_steady()
    pts = np.random.default_rng(3).random((100, 2))
    np.testing.assert_allclose(field.evaluate(pts), quadratic(pts.T), rtol=0, atol=1e-12)
    # Inflow k grad(u).n: left -du/dx = -0.5 y -> -0.25; right 2 + 0.5 y -> 2.25;
    # top 2 + 0.5 x -> 2.25; bottom -2.25; source -2 on unit area.
    expected = {"left": -0.25, "right": 2.25, "top": 2.25, "bottom": -2.25}
    for name, value in expected.items():
        assert field.boundary_flux(name) == pytest.approx(value, abs=1e-11), name
    assert field.source_power() == pytest.approx(-2.0, abs=1e-13)
    total = sum(field.boundary_flux(b) for b in SIDES) + field.source_power()
    assert abs(total) < 1e-12


def test_boundary_updates_reuse_forms_matrix_and_factorization():
    PETSc.Log.begin()
    lu = PETSc.Log.Event("MatLUFactorNum")
    count0 = lu.getPerfInfo()["count"]
    field = _manufactured_field()
    field.solve_steady()
    compiled = field.stats["form_compilations"]
    pts = np.random.default_rng(5).random((50, 2))

    # u + 3 + y: shifted Dirichlet data, fluxes on top/bottom raised by 1.
    target = lambda x: quadratic(x) + 3.0 + x[1]  # noqa: E731
    field.set_dirichlet("left", target)
    field.set_dirichlet("right", target)
    field.set_neumann("top", lambda x: 3.0 + 0.5 * x[0])
    field.set_neumann("bottom", lambda x: -(3.0 + 0.5 * x[0]))
    field.solve_steady()
    np.testing.assert_allclose(field.evaluate(pts), target(pts.T), rtol=0, atol=1e-12)
    assert field.stats["form_compilations"] == compiled
    assert field.stats["matrix_assemblies"] == 1
    assert field.stats["factorizations"] == 1
    assert lu.getPerfInfo()["count"] - count0 == 1

    # Time stepping: one factorization per distinct dt, none for boundary-value updates.
    for k in range(3):
        field.set_dirichlet("left", float(k))
        field.advance(0.01)
    assert field.stats["factorizations"] == 2
    field.advance(0.02)
    assert field.stats["factorizations"] == 3
    assert field.stats["form_compilations"] == compiled
    assert lu.getPerfInfo()["count"] - count0 == 3


def test_state_round_trip_is_exact():
    mesh = rectangle_mesh((5, 5), comm=MPI.COMM_SELF)
    field = DolfinxField(mesh, SIDES, dirichlet={"left": 1.0}, neumann={"top": 0.3},
                         initial=lambda x: np.sin(3 * x[0]) * x[1], theta=0.5)
    for _ in range(3):
        field.advance(0.05)
    state = field.get_state()
    assert state["u"].shape == (field.V.dofmap.index_map.size_local,)
    field.advance(0.05)
    field.set_neumann("top", -1.0)
    field.advance(0.05)
    after = field.get_state()
    field.set_state(state)
    restored = field.get_state()
    assert restored.keys() == state.keys()
    for key in state:
        np.testing.assert_array_equal(restored[key], state[key])
    field.advance(0.05)
    field.set_neumann("top", -1.0)
    field.advance(0.05)
    again = field.get_state()
    for key in after:
        np.testing.assert_array_equal(again[key], after[key])
    with pytest.raises(SetupError, match="same mesh"):
        field.set_state({"u": np.zeros(3), "time": 0.0})


def test_xdmf_and_vtx_time_series(tmp_path):
    mesh = rectangle_mesh((6, 4), comm=MPI.COMM_SELF)
    with DolfinxField(mesh, SIDES, dirichlet={"left": 1.0, "right": 0.0}) as field:
        for _ in range(2):
            field.advance(0.1)
            field.write_xdmf(tmp_path / "heat.xdmf")
            field.write_vtx(tmp_path / "heat.bp")
        u_max = float(field.u.x.array.max())
    xdmf_text = (tmp_path / "heat.xdmf").read_text()
    assert xdmf_text.count("<Time Value=") == 2
    assert (tmp_path / "heat.h5").stat().st_size > 0
    with dolfinx.io.XDMFFile(MPI.COMM_SELF, str(tmp_path / "heat.xdmf"), "r") as xdmf:
        back = xdmf.read_mesh(name="mesh")
        back.topology.create_connectivity(1, 2)
        tags = xdmf.read_meshtags(back, name="boundaries")
    assert back.topology.index_map(2).size_global == 6 * 4 * 2
    assert sorted(set(tags.values.tolist())) == [1, 2, 3, 4]
    import h5py
    with h5py.File(tmp_path / "heat.h5", "r") as h5:
        steps = sorted(h5["Function/u"].keys())
        assert len(steps) == 2
        assert float(np.max(h5["Function/u"][steps[-1]][()])) == pytest.approx(u_max, abs=1e-15)
    bp = tmp_path / "heat.bp"
    assert bp.is_dir() and (bp / "md.0").stat().st_size > 0
    assert any(f.stat().st_size > 0 for f in bp.glob("data.*"))
    assert b'Name="u"' in (bp / "md.0").read_bytes()


def test_time_dependent_fluxes_close_the_energy_ledger():
    """Energy change = dt * (boundary flows + source) per step, to round-off, also for
    non-polynomial rho*c and source (the quadrature rules are shared) and Crank--Nicolson."""
    mesh = rectangle_mesh((8, 6), comm=MPI.COMM_SELF)
    x = ufl.SpatialCoordinate(mesh)
    rho_c = 3.0 + ufl.sin(5.0 * x[0]) * ufl.cos(3.0 * x[1])
    k = cell_function(mesh, lambda x: np.where(x[0] < 0.5, 2.0, 0.5))
    field = DolfinxField(mesh, SIDES, conductivity=k, heat_capacity=rho_c, source=1.5 * ufl.exp(x[0]),
                         theta=0.5, initial=lambda x: x[0] * x[1],
                         dirichlet={"left": lambda x: 1.0 + x[1], "right": 0.0},
                         neumann={"top": 0.7})
    ledger = Ledger()
    dt = 0.02
    for window in range(8):
        e0 = field.total_energy()
        field.set_neumann("bottom", -0.1 * window)
        field.advance(dt)
        ledger.store(window, "field", "energy", field.total_energy() - e0)
        for b in SIDES:
            ledger.inflow(window, b, "energy", field.boundary_flux(b) * dt)
        ledger.inflow(window, "source", "energy", field.source_power() * dt)
    ledger.check(rtol=1e-12)
    assert field.boundary_flux("top") == pytest.approx(0.7, abs=1e-14)
    assert field.boundary_flux("bottom") == pytest.approx(-0.7, abs=1e-14)
    assert field.source_power() == pytest.approx(1.5 * (math.e - 1.0), rel=1e-9)
    assert field.boundary_flux("left") > 0.0 > field.boundary_flux("right")
    # total_energy is the integral of rho*c*u (here against a high-order quadrature).
    energy = dolfinx.fem.form(rho_c * field.u * ufl.dx(domain=mesh, metadata={"quadrature_degree": 10}))
    assert field.total_energy() == pytest.approx(dolfinx.fem.assemble_scalar(energy), rel=1e-12)


@pytest.mark.parametrize("normal, n, diagonal", [(0, (10, 3), "right"), (1, (4, 10), "crossed")])
def test_periodic_laminate_equals_closed_form(normal, n, diagonal):
    CA, CB = plane_strain_isotropic(10.0, 0.3), plane_strain_isotropic(1.0, 0.45)
    mesh = rectangle_mesh(n, diagonal=diagonal, comm=MPI.COMM_SELF)
    phases = tag_cells(mesh, {"A": lambda x: x[normal] <= 0.4 + 1e-12,
                              "B": lambda x: x[normal] >= 0.4 - 1e-12})
    res = homogenize_elasticity(mesh, {"A": CA, "B": CB}, cell_tags=phases)
    exact = laminate_stiffness([0.4, 0.6], [CA, CB], normal=normal)
    assert np.max(np.abs(res.stiffness - exact)) / np.max(np.abs(exact)) < 1e-12
    assert np.max(res.hill_mandel) < 1e-12
    np.testing.assert_allclose(res.mean_strain, np.eye(3), atol=1e-13)
    assert res.stats == {"form_compilations": 5, "matrix_assemblies": 1, "factorizations": 1, "solves": 3}


def test_periodic_constraint_maps_faces_and_corners():
    mesh = rectangle_mesh((3, 2), lower=(0.0, 0.0), upper=(2.0, 1.0), comm=MPI.COMM_SELF)
    V = dolfinx.fem.functionspace(mesh, ("Lagrange", 1))
    pc = PeriodicConstraint(V)
    assert pc.n_full == 12 and pc.n_reduced == 6
    x = V.tabulate_dof_coordinates()[:, :2]
    wrapped = np.where(np.isclose(x, [2.0, 1.0]), 0.0, x)
    np.testing.assert_allclose(x[pc.master], wrapped, atol=1e-15)
    values = pc.prolong(np.arange(pc.n_reduced, dtype=float))
    corners = [np.flatnonzero(np.all(np.isclose(x, c), axis=1))[0] for c in ([0, 0], [2, 0], [0, 1], [2, 1])]
    assert len({values[c] for c in corners}) == 1
    Vv = dolfinx.fem.functionspace(mesh, ("Lagrange", 1, (2,)))
    assert PeriodicConstraint(Vv).P.shape == (24, 12)
    with pytest.raises(SetupError, match="not periodic"):
        PeriodicConstraint(V, upper=(2.0, 1.0), lower=(0.0, 0.1))


def test_validation_cases_quick(tmp_path):
    from bridge.validation import run_case
    from bridge_validation.dolfinx_cases import CASES

    assert [(c.name, c.level) for c in CASES] == [("laminate_homogenization", 2),
                                                   ("split_heat_conduction", 4)]
    for case in CASES:
        result = run_case(case, quick=True, outdir=tmp_path)
        assert result.passed, (result.name, result.value, result.error)
        assert result.figures == [str(tmp_path / f"{case.name}.png")]
        assert (tmp_path / f"{case.name}.png").stat().st_size > 0
    assert math.isfinite(result.details["global_imbalance"])
