"""The DOLFINx adapter under ``mpiexec -n 2`` agrees with the serial run.

A script runs on two ranks (every mesh distributed over both): point evaluation with common and
rank-own points, a steady manufactured problem with its boundary fluxes, and the split heat
validation case.  Rank 0 prints one JSON line; the test compares it with the same computations
done serially in this process.  Agreement is required to 1e-10: both runs solve the same
discrete problems with direct solvers, so they differ only by round-off (~1e-15 here).
"""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

pytestmark = pytest.mark.mpi

SCRIPT = textwrap.dedent(
    """
    import json

    import numpy as np
    from mpi4py import MPI

    from bridge.errors import SetupError
    from bridge_adapters.dolfinx import DolfinxField, PeriodicConstraint, evaluate, rectangle_mesh
    from bridge_validation.dolfinx_cases import run_split_heat

    import dolfinx.fem

    comm = MPI.COMM_WORLD

    def quadratic(x):
        return 1.0 + x[0] ** 2 + 2.0 * x[1] + 0.5 * x[0] * x[1]

    mesh = rectangle_mesh((7, 5))
    u = dolfinx.fem.Function(dolfinx.fem.functionspace(mesh, ("Lagrange", 2)))
    u.interpolate(quadratic)
    common_pts = np.random.default_rng(11).random((64, 2))
    common = evaluate(u, common_pts)
    own_pts = np.random.default_rng(100 + comm.rank).random((10 + 3 * comm.rank, 2))
    own = evaluate(u, own_pts)
    own_error = float(np.max(np.abs(own - quadratic(own_pts.T))))
    try:
        evaluate(u, np.array([[0.5, 0.5], [2.0, 0.0]]))
        outside = "no error"
    except SetupError as exc:
        outside = str(exc)

    try:
        PeriodicConstraint(u.function_space)
        periodic = "no error"
    except SetupError as exc:
        periodic = str(exc)

    sides = {"left": lambda x: np.isclose(x[0], 0.0), "right": lambda x: np.isclose(x[0], 1.0),
             "bottom": lambda x: np.isclose(x[1], 0.0), "top": lambda x: np.isclose(x[1], 1.0)}
    field = DolfinxField(mesh, sides, degree=2, source=-2.0,
                         dirichlet={"left": quadratic, "right": quadratic},
                         neumann={"top": lambda x: 2.0 + 0.5 * x[0],
                                  "bottom": lambda x: -(2.0 + 0.5 * x[0])})
    field.solve_steady()
    fluxes = {b: field.boundary_flux(b) for b in sides}
    steady_error = float(np.max(np.abs(field.evaluate(common_pts) - quadratic(common_pts.T))))

    split = run_split_heat(20, 10, 0.02)
    split["ledger"].check(rtol=1e-10)
    mine = {
        "common": common.tolist(),
        "own_error": own_error,
        "outside": outside,
        "periodic": periodic,
        "fluxes": fluxes,
        "steady_error": steady_error,
        "split_u": split["u_split"].tolist(),
        "split_error": split["error"],
        "interface_imbalance": split["ledger"].interface_imbalance("energy"),
        "global_imbalance": split["ledger"].global_imbalance("energy"),
        "iterations": split["iterations"].tolist(),
        "owned_cells": int(mesh.topology.index_map(2).size_local),
    }
    everyone = comm.gather(mine)
    if comm.rank == 0:
        print("RESULT " + json.dumps({"ranks": everyone}))
    """
)


def _quadratic(x):
    return 1.0 + x[0] ** 2 + 2.0 * x[1] + 0.5 * x[0] * x[1]


def test_two_ranks_agree_with_serial(tmp_path, mpiexec):
    script = tmp_path / "dolfinx_two_ranks.py"
    script.write_text(SCRIPT)
    proc = subprocess.run([str(mpiexec), "-n", "2", sys.executable, str(script)],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert len(lines) == 1, proc.stdout[-4000:]
    ranks = json.loads(lines[0][len("RESULT "):])["ranks"]
    assert len(ranks) == 2
    r0, r1 = ranks

    # Both ranks really hold part of the mesh, and return bitwise identical evaluations.
    assert r0["owned_cells"] > 0 and r1["owned_cells"] > 0
    assert r0["owned_cells"] + r1["owned_cells"] == 7 * 5 * 2
    assert r0["common"] == r1["common"]
    assert r0["split_u"] == r1["split_u"]
    assert r0["fluxes"] == r1["fluxes"]
    for r in ranks:
        assert r["own_error"] < 1e-12
        assert r["steady_error"] < 1e-12
        assert "1 of 2 point(s) lie outside the mesh" in r["outside"]
        assert "run RVEs on one rank each" in r["periodic"]
        assert r["split_error"] < 1e-9
        assert r["interface_imbalance"] < 1e-14
        assert r["global_imbalance"] < 1e-13

    # The same computations serially, in this process.
    from mpi4py import MPI

    from bridge_adapters.dolfinx import DolfinxField, evaluate, rectangle_mesh
    from bridge_validation.dolfinx_cases import run_split_heat

    import dolfinx.fem

    mesh = rectangle_mesh((7, 5), comm=MPI.COMM_SELF)
    u = dolfinx.fem.Function(dolfinx.fem.functionspace(mesh, ("Lagrange", 2)))
    u.interpolate(_quadratic)
    pts = np.random.default_rng(11).random((64, 2))
    np.testing.assert_allclose(r0["common"], evaluate(u, pts), rtol=0, atol=1e-12)
    np.testing.assert_allclose(r0["common"], _quadratic(pts.T), rtol=0, atol=1e-12)

    sides = {"left": lambda x: np.isclose(x[0], 0.0), "right": lambda x: np.isclose(x[0], 1.0),
             "bottom": lambda x: np.isclose(x[1], 0.0), "top": lambda x: np.isclose(x[1], 1.0)}
    field = DolfinxField(mesh, sides, degree=2, source=-2.0,
                         dirichlet={"left": _quadratic, "right": _quadratic},
                         neumann={"top": lambda x: 2.0 + 0.5 * x[0],
                                  "bottom": lambda x: -(2.0 + 0.5 * x[0])})
    field.solve_steady()
    for b in sides:
        assert r0["fluxes"][b] == pytest.approx(field.boundary_flux(b), abs=1e-10)

    serial = run_split_heat(20, 10, 0.02, comm=MPI.COMM_SELF)
    np.testing.assert_allclose(r0["split_u"], serial["u_split"], rtol=0, atol=1e-10)
    assert r0["iterations"] == serial["iterations"].tolist()
