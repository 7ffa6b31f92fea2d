"""Validation cases of the DOLFINx adapter (``msbridge validate``).

``laminate_homogenization`` (level 2)
    A two-phase plane-strain laminate on a periodic unit cell whose mesh follows the interface.
    The exact fluctuation is piecewise linear, so P1 elements reproduce it and the FE effective
    stiffness must equal the closed form of :func:`bridge.homogenization.laminate_stiffness` to
    solver round-off.

``split_heat_conduction`` (level 4)
    1-D transient conduction on [0, 1] with k = 1 on [0, 0.5] and k = 0.2 on [0.5, 1], split at
    x = 0.5 into two DOLFINx fields coupled Dirichlet--Neumann with Aitken relaxation, against the
    single-domain field with the same nodes and time step.  At convergence the coupled interface
    equations are the monolithic interface row split in two, so the two solutions agree to the
    interface tolerance; the energy ledger closes to round-off.  Runs serially and under
    ``mpiexec -n 2`` (each subdomain distributed over all ranks) with the same answer.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from bridge.errors import CalculationError
from bridge.homogenization import (laminate_stiffness, plane_strain_isotropic, reuss_bound,
                                   voigt_bound)
from bridge.ledger import Ledger
from bridge.validation import Case, Outcome

__all__ = ["CASES", "run_laminate", "run_split_heat"]


def _is_root() -> bool:
    """Rank 0 of MPI.COMM_WORLD writes the figures."""
    from mpi4py import MPI

    return MPI.COMM_WORLD.rank == 0


# -- laminate ----------------------------------------------------------------------------------

#: Phases: stiff (E = 10, nu = 0.3) and soft (E = 1, nu = 0.45), layers normal to x.
LAMINATE_PHASES = {"stiff": (10.0, 0.30), "soft": (1.0, 0.45)}
LAMINATE_FRACTION = 0.4


def run_laminate(n: tuple[int, int] = (10, 4), diagonal: str = "right",
                 fraction: float = LAMINATE_FRACTION) -> dict:
    """FE homogenization of the laminate on a unit cell with ``n`` cells; layer interface at
    ``x = fraction`` (must be a mesh line).  Returns the FE and closed-form tensors and checks."""
    from bridge_adapters.dolfinx import homogenize_elasticity, rectangle_mesh, tag_cells
    from mpi4py import MPI

    if abs(fraction * n[0] - round(fraction * n[0])) > 1e-12:
        raise ValueError(f"x = {fraction} is not a mesh line of {n[0]} columns")
    C = {name: plane_strain_isotropic(E, nu) for name, (E, nu) in LAMINATE_PHASES.items()}
    eps = 1e-9 / n[0]
    mesh = rectangle_mesh(n, diagonal=diagonal, comm=MPI.COMM_SELF)
    phases = tag_cells(mesh, {"stiff": lambda x: x[0] <= fraction + eps,
                              "soft": lambda x: x[0] >= fraction - eps})
    result = homogenize_elasticity(mesh, C, cell_tags=phases, keep_fluctuations=True)
    fractions = [fraction, 1.0 - fraction]
    C_list = [C["stiff"], C["soft"]]
    exact = laminate_stiffness(fractions, C_list)
    return {"result": result, "exact": exact, "fractions": fractions, "C_list": C_list,
            "voigt": voigt_bound(fractions, C_list), "reuss": reuss_bound(fractions, C_list),
            "mesh": mesh, "n": n}


def _min_eig(M: np.ndarray) -> float:
    return float(np.min(np.linalg.eigvalsh(0.5 * (M + M.T))))


def _laminate_case(quick: bool, outdir: Path | None) -> Outcome:
    n, diagonal = ((10, 4), "right") if quick else ((40, 40), "crossed")
    run = run_laminate(n, diagonal)
    res, exact = run["result"], run["exact"]
    # The P1 space contains the exact piecewise-linear fluctuation, so only the solve's round-off
    # remains: relative error ~ cond(K) * eps_machine with cond(K) ~ contrast * (L/h)^2 <= 2e4
    # here, i.e. <= 5e-12.  1e-10 keeps a factor 20 above that.
    error = float(np.max(np.abs(res.stiffness - exact)) / np.max(np.abs(exact)))
    details = {
        "hill_mandel_residual_max": float(np.max(res.hill_mandel)),
        "hill_mandel_residual": res.hill_mandel.tolist(),
        "symmetry_error": res.symmetry_error,
        "mean_strain_error": float(np.max(np.abs(res.mean_strain - np.eye(3)))),
        "voigt_minus_fe_min_eig": _min_eig(run["voigt"] - res.stiffness),
        "fe_minus_reuss_min_eig": _min_eig(res.stiffness - run["reuss"]),
        "C_fe": res.stiffness.tolist(),
        "C_exact": exact.tolist(),
        "mesh_cells": list(n),
        "mesh_size_h": 1.0 / n[0],
        "n_cells": res.n_cells,
        "dofs_full": res.n_dofs,
        "dofs_periodic": res.n_reduced,
        "assemblies_factorizations_solves": [res.stats["matrix_assemblies"],
                                             res.stats["factorizations"], res.stats["solves"]],
    }
    figures = []
    if outdir is not None and _is_root():
        figures.append(str(_laminate_figure(run, Path(outdir))))
    return Outcome(metric="max |C_fe - C_exact| / max |C_exact|", value=error, reference=0.0,
                   tolerance=1e-10, details=details, figures=figures)


def _laminate_figure(run: dict, outdir: Path) -> Path:
    from matplotlib.figure import Figure

    from bridge_adapters.dolfinx import evaluate

    res, exact = run["result"], run["exact"]
    fig = Figure(figsize=(10, 4), layout="constrained")
    ax0, ax1 = fig.subplots(1, 2)
    labels = ["C11", "C12", "C22", "C66"]
    idx = [(0, 0), (0, 1), (1, 1), (2, 2)]
    pos = np.arange(len(labels))
    for k, (name, M) in enumerate([("Reuss", run["reuss"]), ("closed form", exact),
                                   ("FE (P1)", res.stiffness), ("Voigt", run["voigt"])]):
        ax0.bar(pos + (k - 1.5) * 0.2, [M[i] for i in idx], width=0.2, label=name)
    ax0.set_xticks(pos, labels)
    ax0.set_ylabel("effective stiffness (units of E)")
    ax0.set_title("laminate, f = %.1f, E ratio 10" % run["fractions"][0])
    ax0.legend(fontsize=8)
    # Fluctuation w_x along y = 0.5 for E = e_11 against the exact piecewise-linear profile.
    x = np.linspace(0.0, 1.0, 201)
    pts = np.column_stack([x, np.full_like(x, 0.5)])
    w = evaluate(res.fluctuations[0], pts)[:, 0]
    f = run["fractions"][0]
    C11 = [run["C_list"][0][0, 0], run["C_list"][1][0, 0]]
    slope = [exact[0, 0] / C11[0] - 1.0, exact[0, 0] / C11[1] - 1.0]
    w_exact = np.where(x <= f, slope[0] * x, slope[0] * f + slope[1] * (x - f))
    w_exact += w[0] - w_exact[0]
    ax1.plot(x, w_exact, "k-", label="exact")
    ax1.plot(x[::10], w[::10], "o", label="FE")
    ax1.axvline(f, color="0.7", lw=0.8)
    ax1.set_xlabel("x")
    ax1.set_ylabel("fluctuation $w_x$ at y = 0.5, E = e$_{11}$")
    ax1.legend(fontsize=8)
    outdir.mkdir(parents=True, exist_ok=True)
    path = outdir / "laminate_homogenization.png"
    fig.savefig(path, dpi=120)
    return path


# -- split heat conduction ---------------------------------------------------------------------

K_LEFT, K_RIGHT, X_INTERFACE = 1.0, 0.2, 0.5


def _conductivity(x: np.ndarray) -> np.ndarray:
    return np.where(x[0] < X_INTERFACE, K_LEFT, K_RIGHT)


def _at(c: float):
    """Locator of the point x = c."""
    return lambda x: np.isclose(x[0], c)


def run_split_heat(n_cells: int = 20, n_steps: int = 10, dt: float = 0.02, *, comm=None,
                   tol: float = 1e-13, max_iter: int = 30, snapshots: int = 4) -> dict:
    """Dirichlet--Neumann split of the 1-D conduction problem against the single domain.

    ``n_cells``: cells of the whole domain (even, so x = 0.5 is a node); ``dt`` in s;
    ``tol``: interface fixed-point tolerance on ``|theta_left - theta_right|`` (K).
    Collective over ``comm`` (default ``MPI.COMM_WORLD``); the returned numbers are the same
    on every rank.
    """
    from bridge_adapters.dolfinx import DolfinxField, cell_function, interval_mesh
    from mpi4py import MPI

    comm = MPI.COMM_WORLD if comm is None else comm
    if n_cells % 2:
        raise ValueError("n_cells must be even so that the interface is a node")
    half = n_cells // 2

    whole_mesh = interval_mesh(n_cells, (0.0, 1.0), comm=comm)
    single = DolfinxField(whole_mesh, {"x=0": _at(0.0), "x=1": _at(1.0)},
                          dirichlet={"x=0": 1.0, "x=1": 0.0},
                          conductivity=cell_function(whole_mesh, _conductivity), heat_capacity=1.0)
    left = DolfinxField(interval_mesh(half, (0.0, X_INTERFACE), comm=comm),
                        {"x=0": _at(0.0), "interface": _at(X_INTERFACE)},
                        dirichlet={"x=0": 1.0}, neumann={"interface": 0.0},
                        conductivity=K_LEFT, heat_capacity=1.0)
    right = DolfinxField(interval_mesh(half, (X_INTERFACE, 1.0), comm=comm),
                         {"interface": _at(X_INTERFACE), "x=1": _at(1.0)},
                         dirichlet={"interface": 0.0, "x=1": 0.0},
                         conductivity=K_RIGHT, heat_capacity=1.0)

    x_nodes = np.linspace(0.0, 1.0, n_cells + 1)
    x_left, x_right = x_nodes[: half + 1], x_nodes[half:]
    iface = np.array([[X_INTERFACE]])
    ledger, single_ledger = Ledger(), Ledger()
    theta = float(left.evaluate(iface)[0])
    times, fluxes, iterations, omegas = [], [], [], []
    snap_steps = set(np.linspace(1, n_steps, snapshots).round().astype(int).tolist())
    profiles = []
    worst_residual = 0.0

    for step in range(1, n_steps + 1):
        e_single = single.total_energy()
        single.advance(dt)
        single_ledger.store(step, "single", "energy", single.total_energy() - e_single)
        for b in ("x=0", "x=1"):
            single_ledger.inflow(step, b, "energy", single.boundary_flux(b) * dt)

        check_left, check_right = left.get_state(), right.get_state()
        e_left, e_right = left.total_energy(), right.total_energy()
        omega, r_prev, converged = 0.5, None, False
        for it in range(1, max_iter + 1):
            if it > 1:
                left.set_state(check_left)
                right.set_state(check_right)
            right.set_dirichlet("interface", theta)
            right.advance(dt)
            flux_right = right.boundary_flux("interface")
            left.set_neumann("interface", -flux_right)
            left.advance(dt)
            r = float(left.evaluate(iface)[0]) - theta
            if abs(r) < tol:
                converged = True
                break
            if r_prev is not None and r != r_prev:
                omega = -omega * r_prev / (r - r_prev)
            theta += omega * r
            r_prev = r
        if not converged:
            raise CalculationError(f"Dirichlet-Neumann iteration did not converge in step {step}",
                                   reason=f"interface residual {abs(r):.3e} after {max_iter} iterations",
                                   fix="raise max_iter or loosen tol")
        worst_residual = max(worst_residual, abs(r))
        iterations.append(it)
        omegas.append(omega)
        # what crossed the interface, measured on each side from its own energy change minus its
        # outer-boundary inflow (not from the flux value handed over, which would balance trivially)
        d_left, d_right = left.total_energy() - e_left, right.total_energy() - e_right
        q0, q1 = left.boundary_flux("x=0") * dt, right.boundary_flux("x=1") * dt
        ledger.transfer(step, "interface", "energy", sent=-(d_left - q0), received=d_right - q1)
        ledger.store(step, "left", "energy", d_left)
        ledger.store(step, "right", "energy", d_right)
        ledger.inflow(step, "x=0", "energy", q0)
        ledger.inflow(step, "x=1", "energy", q1)
        times.append(step * dt)
        fluxes.append(flux_right)
        if step in snap_steps:
            profiles.append((step * dt, single.evaluate(x_nodes),
                             np.concatenate([left.evaluate(x_left), right.evaluate(x_right)[1:]])))

    u_single = single.evaluate(x_nodes)
    u_left, u_right = left.evaluate(x_left), right.evaluate(x_right)
    error = float(max(np.max(np.abs(u_left - u_single[: half + 1])),
                      np.max(np.abs(u_right - u_single[half:]))))
    return {
        "error": error, "x": x_nodes, "u_single": u_single,
        "u_split": np.concatenate([u_left, u_right[1:]]),
        "interface_jump": float(abs(u_left[-1] - u_right[0])),
        "ledger": ledger, "single_ledger": single_ledger,
        "times": np.array(times), "interface_flux": np.array(fluxes),
        "iterations": np.array(iterations), "omega": np.array(omegas),
        "worst_interface_residual": worst_residual, "profiles": profiles,
        "stats": {"left": dict(left.stats), "right": dict(right.stats), "single": dict(single.stats)},
        "n_cells": n_cells, "n_steps": n_steps, "dt": dt, "ranks": comm.size,
    }


def _split_heat_case(quick: bool, outdir: Path | None) -> Outcome:
    n_cells, n_steps, dt = (20, 10, 0.02) if quick else (80, 100, 0.005)
    t0 = time.perf_counter()
    run = run_split_heat(n_cells, n_steps, dt)
    ledger = run["ledger"]
    # Energy moves between the two fields only through the ledger's interface entries, and every
    # entry is an assembled sum, so both balances are exact up to summation round-off.
    # ledger.check raises ConservationError, which fails the case.
    ledger.check(rtol=1e-10)
    run["single_ledger"].check(rtol=1e-10)
    interface = ledger.interface_imbalance("energy")
    global_ = ledger.global_imbalance("energy")
    scale = ledger.scale("energy")
    details = {
        "interface_imbalance": interface,
        "global_imbalance": global_,
        "single_domain_global_imbalance": run["single_ledger"].global_imbalance("energy"),
        "ledger_scale": scale,
        "interface_jump_final": run["interface_jump"],
        "worst_interface_residual": run["worst_interface_residual"],
        "iterations_mean": float(np.mean(run["iterations"])),
        "iterations_max": int(np.max(run["iterations"])),
        "final_interface_flux": float(run["interface_flux"][-1]),
        "n_cells": n_cells, "n_steps": n_steps, "dt": dt, "ranks": run["ranks"],
        "factorizations_left_right_single": [run["stats"][k]["factorizations"]
                                             for k in ("left", "right", "single")],
        "solves_left_right": [run["stats"]["left"]["solves"], run["stats"]["right"]["solves"]],
        "seconds_coupled_run": time.perf_counter() - t0,
    }
    figures = []
    if outdir is not None and _is_root():
        figures.append(str(_split_heat_figure(run, Path(outdir))))
    # The coupled solution equals the monolithic one up to the interface residual (< 1e-13 per
    # step) carried through a contractive backward-Euler step, plus LU round-off
    # (~cond * eps ~ 1e-12): n_steps * 1e-13 + 1e-12 <= 2e-11.  1e-9 keeps a factor 50 above.
    return Outcome(metric="max nodal |u_split - u_single| at t_end", value=run["error"],
                   reference=0.0, tolerance=1e-9, details=details, figures=figures)


def _split_heat_figure(run: dict, outdir: Path) -> Path:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4), layout="constrained")
    ax0, ax1 = fig.subplots(1, 2)
    for k, (t, u_single, u_split) in enumerate(run["profiles"]):
        color = f"C{k}"
        ax0.plot(run["x"], u_single, "-", color=color, label=f"single, t = {t:.3g}")
        ax0.plot(run["x"], u_split, "o", ms=3, color=color, mfc="none",
                 label="split" if k == 0 else None)
    ax0.axvline(X_INTERFACE, color="0.7", lw=0.8)
    ax0.set_xlabel("x")
    ax0.set_ylabel("u")
    ax0.set_title(f"k = {K_LEFT} | {K_RIGHT}, error {run['error']:.1e}")
    ax0.legend(fontsize=7)
    ax1.plot(run["times"], run["interface_flux"], "k.-", label="interface flux (into right)")
    ax1.set_xlabel("t")
    ax1.set_ylabel("heat flow")
    ax2 = ax1.twinx()
    ax2.step(run["times"], run["iterations"], "C3", where="mid", label="DN iterations")
    ax2.set_ylabel("DN iterations per step (incl. the converged one)", color="C3")
    ax2.set_ylim(0, int(np.max(run["iterations"])) + 1)
    ax1.legend(fontsize=7, loc="lower right")
    outdir.mkdir(parents=True, exist_ok=True)
    path = outdir / "split_heat_conduction.png"
    fig.savefig(path, dpi=120)
    return path


CASES = [
    Case(name="laminate_homogenization", level=2,
         description="Periodic P1 RVE of a two-phase plane-strain laminate (E ratio 10, f = 0.4) "
                     "against the closed-form laminate stiffness; Hill-Mandel residual reported.",
         func=_laminate_case, engines=("dolfinx",)),
    Case(name="split_heat_conduction", level=4,
         description="1-D transient conduction (k = 1 | 0.2) split at x = 0.5 into two DOLFINx fields "
                     "coupled Dirichlet-Neumann with Aitken relaxation, against the single-domain "
                     "field; energy ledger balanced to round-off.",
         func=_split_heat_case, engines=("dolfinx",)),
]
