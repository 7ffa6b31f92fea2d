"""Homogenization benchmarks (``msbridge bench homogenization``).

- ``rve_factor_once``: the n unit load cases of a hexagonal fiber RVE with the matrix assembled
  and factored once (:class:`LinearRVE`) against re-assembling and re-factoring for every load
  case (what ``LinearProblem.solve()`` per case would do).  Ratio = factor-once / re-assemble.
- ``micro_solves_per_second``: nonlinear RVE micro solves (Newton + consistent tangent) per
  second, cold (zero initial guess) and warm (the point's last state).
- ``fe2_adaptivity``: an FE² cantilever with nonlinear micro models, with and without reusing
  the result of points whose strain moved less than 1e-4; ratio = time with reuse / without,
  details give the micro solves saved and the displacement error it costs.
- ``fe2_two_ranks``: the same FE² run under ``mpiexec -n 1`` and ``-n 2``; ratio = two-rank
  time / one-rank time, parallel efficiency = t1 / (2 t2).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bridge.bench import Benchmark, BenchResult, interleave

MATRIX, FIBER = (3.0, 0.35), (70.0, 0.22)


def _fiber_rve(h: float):
    from bridge.homogenization import plane_strain_isotropic
    from bridge_adapters.dolfinx.cells import inclusion_cell
    from bridge_adapters.dolfinx.rve import LinearRVE

    cell = inclusion_cell(0.5, h=h)
    mats = {"matrix": plane_strain_isotropic(*MATRIX), "fiber": plane_strain_isotropic(*FIBER)}
    return cell, mats, lambda: LinearRVE(cell.mesh, mats, cell_tags=cell.cells, lower=cell.lower, upper=cell.upper)


def _nonlinear(h: float):
    from bridge_adapters.dolfinx.cells import inclusion_cell
    from bridge_adapters.dolfinx.micro import NonlinearElasticRVE

    cell = inclusion_cell(0.3, h=h)
    return NonlinearElasticRVE(cell.mesh, {"matrix": (5.0, 1.0, 400.0), "fiber": (50.0, 20.0, 0.0)},
                               cell_tags=cell.cells, lower=cell.lower, upper=cell.upper)


def _cantilever(rve, n, reuse):
    from mpi4py import MPI

    from bridge_adapters.dolfinx import evaluate, rectangle_mesh, tag_boundaries
    from bridge_adapters.dolfinx.fe2 import FE2Problem
    from bridge_adapters.dolfinx.micro import NonlinearRVEModel

    mesh = rectangle_mesh(n, (0.0, 0.0), (4.0, 1.0), comm=MPI.COMM_WORLD)
    bd = tag_boundaries(mesh, {"left": lambda x: np.isclose(x[0], 0.0), "right": lambda x: np.isclose(x[0], 4.0)})
    p = FE2Problem(mesh, lambda gid: NonlinearRVEModel(rve), boundaries=bd,
                   dirichlet={"left": (0.0, 0.0), "right": {1: -0.2}}, reuse_tolerance=reuse)
    t0 = time.perf_counter()
    res = p.solve(load_steps=3, show_progress=False)
    seconds = time.perf_counter() - t0
    tip = evaluate(p.u, np.array([[4.0, 0.5], [2.0, 0.5]]))
    res.imbalance = p.farm.stats.imbalance
    return seconds, res, tip


def homogenization(quick: bool = False, repeats: int | None = None) -> list[BenchResult]:
    from bridge_adapters.dolfinx import require

    require()                  # orders MPI before DOLFINx (dolfinx_solver wheel)
    import dolfinx
    import scipy.sparse as sp
    import scipy.sparse.linalg as spla

    repeats = repeats or (2 if quick else 3)
    results = []

    # -- factor once vs re-assemble per load case ------------------------------------------------
    h = 0.05 if quick else 0.025
    cell, mats, make = _fiber_rve(h)
    rve = make()
    rve.effective("periodic")
    pc = rve.constraint

    def factor_once():
        rve._factors.clear()
        rve.effective("periodic")

    def reassemble_each_case():
        for j in range(3):
            K = dolfinx.fem.assemble_matrix(rve._a)
            K.scatter_reverse()
            Kr = pc.reduce_matrix(sp.csr_matrix(K.to_scipy()))
            keep = rve._factors["periodic"].keep
            lu = spla.splu(Kr[keep][:, keep].tocsc())
            rve._G.value[:] = np.eye(3)[j]
            b = rve._vector(rve._L_affine)
            x = np.zeros(keep.size)
            x[keep] = lu.solve(pc.restrict(b)[keep])
            rve._w.x.array[:] = pc.prolong(x)
            rve._averages(boundary=False)

    t = interleave(reassemble_each_case, factor_once, repeats)
    results.append(BenchResult(
        name="rve_factor_once", ratio=t.ratio, ratio_name="factor-once / re-assemble-per-case time",
        baseline_seconds=t.baseline_median, coupled_seconds=t.coupled_median,
        size={"cells": rve.mesh.topology.index_map(2).size_local, "dofs": rve.K.shape[0], "load_cases": 3},
        details={"speedup": 1.0 / t.ratio}, timings={"baseline": t.baseline, "coupled": t.coupled}))

    # -- micro solves per second ---------------------------------------------------------------
    from bridge_adapters.dolfinx.micro import NonlinearRVEModel

    problem = _nonlinear(0.12 if quick else 0.06)
    E = np.array([0.02, -0.005, 0.01])
    n_solves = 5 if quick else 20
    warm_model = NonlinearRVEModel(problem)
    warm_model.solve({"strain": E})

    def cold():
        for i in range(n_solves):
            NonlinearRVEModel(problem).solve({"strain": E * (1 + 1e-3 * i)})

    def warm():
        for i in range(n_solves):
            warm_model.solve({"strain": E * (1 + 1e-3 * i)})

    t = interleave(cold, warm, repeats)
    results.append(BenchResult(
        name="micro_solves_per_second", ratio=t.ratio, ratio_name="warm / cold start time",
        baseline_seconds=t.baseline_median, coupled_seconds=t.coupled_median,
        size={"rve_dofs": problem.constraint.n_full, "solves": n_solves},
        details={"cold_per_second": n_solves / t.baseline_median, "warm_per_second": n_solves / t.coupled_median},
        timings={"baseline": t.baseline, "coupled": t.coupled}))

    # -- adaptivity ------------------------------------------------------------------------------
    problem = _nonlinear(0.12)
    n = (8, 2) if quick else (16, 4)
    t_full, r_full, u_full = _cantilever(problem, n, None)
    t_reuse, r_reuse, u_reuse = _cantilever(problem, n, 1e-4)
    err = float(np.max(np.abs(u_reuse - u_full)) / np.max(np.abs(u_full)))
    results.append(BenchResult(
        name="fe2_adaptivity", ratio=t_reuse / t_full, ratio_name="time with reuse / without",
        baseline_seconds=t_full, coupled_seconds=t_reuse,
        size={"macro_cells": 2 * n[0] * n[1], "load_steps": 3, "reuse_tolerance": 1e-4},
        details={"micro_solves_without": r_full.micro_solves, "micro_solves_with": r_reuse.micro_solves,
                 "reused": r_reuse.micro_reused, "relative_displacement_error": err,
                 "newton_iterations_without": r_full.iterations, "newton_iterations_with": r_reuse.iterations}))

    # -- two ranks -------------------------------------------------------------------------------
    times = {}
    with tempfile.TemporaryDirectory() as tmp:
        for ranks in (1, 2):
            out = Path(tmp) / f"r{ranks}.json"
            mpiexec = Path(sys.executable).parent / "mpiexec"
            cmd = [str(mpiexec) if mpiexec.exists() else "mpiexec", "-n", str(ranks), sys.executable, "-m",
                   "bridge_benchmarks.homogenization", "--nx", str(n[0]), "--ny", str(n[1]), "--json", str(out)]
            env = dict(os.environ, OMP_NUM_THREADS="1", MSBRIDGE_PROGRESS="0")
            subprocess.run(cmd, check=True, capture_output=True, env=env, timeout=900)
            times[ranks] = json.loads(out.read_text())
    t1, t2 = times[1]["seconds"], times[2]["seconds"]
    results.append(BenchResult(
        name="fe2_two_ranks", ratio=t2 / t1, ratio_name="2-rank / 1-rank FE² time",
        baseline_seconds=t1, coupled_seconds=t2,
        size={"macro_cells": 2 * n[0] * n[1], "micro_solves": times[1]["solves"]},
        details={"parallel_efficiency": t1 / (2.0 * t2), "imbalance_two_ranks": times[2]["imbalance"],
                 "migrations_two_ranks": times[2]["migrations"]}))
    return results


def _child(argv=None) -> None:
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--nx", type=int, required=True)
    parser.add_argument("--ny", type=int, required=True)
    parser.add_argument("--json", type=Path, required=True)
    args = parser.parse_args(argv)
    import dolfinx_solver  # noqa: F401
    from mpi4py import MPI

    problem = _nonlinear(0.12)
    MPI.COMM_WORLD.Barrier()
    seconds, res, _ = _cantilever(problem, (args.nx, args.ny), None)
    seconds = MPI.COMM_WORLD.allreduce(seconds, op=MPI.MAX)
    if MPI.COMM_WORLD.rank == 0:
        from bridge.fileio import write_json
        write_json(args.json, {"seconds": seconds, "solves": res.micro_solves, "migrations": res.migrations,
                               "imbalance": res.imbalance})


BENCHMARKS = [
    Benchmark("homogenization",
              "RVE factor-once speed-up, nonlinear micro solves per second, FE² adaptivity saving and "
              "error, FE² on two MPI ranks.", homogenization, engines=("dolfinx",)),
]

if __name__ == "__main__":
    _child()
