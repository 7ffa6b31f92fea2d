"""Validation cases of the engine-agnostic core.

``qss_reaction_diffusion`` (level 3): a fast/slow reaction–diffusion system -- Michaelis–Menten
kinetics with a diffusing substrate, in Murray's dimensionless form on x in [0, 1] with
no-flux ends:

    ds/dt     = D s_xx - s + (s + K - lam) c          (slow: substrate)
    eps dc/dt = s - (s + K) c                         (fast: enzyme–substrate complex)

The quasi-steady-state elimination (:class:`bridge.scheduler.QuasiSteadyState`, Newton on the
fast residual) gives the reduced system ds/dt = D s_xx - lam s / (s + K).  Tikhonov's theorem
says the reduced solution differs from the full stiff one by O(eps) outside the initial layer.
The case solves the full system (stiff BDF, rtol 1e-10) at two values of eps and the reduced
one once, and checks the observed order of the QSS error in eps: the known answer is 1.
Tolerance 0.05: the O(eps^2) term shifts the observed order by ~eps/ln(10) (< 0.005 here),
the time-integration error (< 1e-8) is below 1e-3 of the smaller QSS error.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.sparse as sp
from scipy.integrate import solve_ivp

from bridge.scheduler import QuasiSteadyState
from bridge.validation import Case, Outcome

from ._figures import pyplot, save

D, K, LAM, T_END = 0.05, 1.0, 0.5, 1.0
RTOL, ATOL = 1e-10, 1e-12


def _laplacian(n: int) -> sp.csr_matrix:
    """Second-order finite differences on n nodes of [0, 1], no-flux (mirror) ends."""
    h = 1.0 / (n - 1)
    main = -2.0 * np.ones(n)
    up = np.ones(n - 1)
    lo = np.ones(n - 1)
    up[0] = 2.0
    lo[-1] = 2.0
    return sp.diags([lo, main, up], [-1, 0, 1], format="csr") / h ** 2


def _full(eps: float, s0: np.ndarray, c0: np.ndarray, L: sp.csr_matrix) -> np.ndarray:
    n = len(s0)

    def rhs(t, y):
        s, c = y[:n], y[n:]
        return np.concatenate([D * (L @ s) - s + (s + K - LAM) * c, (s - (s + K) * c) / eps])

    def jac(t, y):
        s, c = y[:n], y[n:]
        return sp.bmat([[D * L + sp.diags(-1 + c), sp.diags(s + K - LAM)],
                        [sp.diags((1 - c) / eps), sp.diags(-(s + K) / eps)]], format="csc")

    sol = solve_ivp(rhs, (0.0, T_END), np.concatenate([s0, c0]), method="BDF", jac=jac,
                    rtol=RTOL, atol=ATOL)
    if not sol.success:
        raise RuntimeError(f"full stiff solve failed: {sol.message}")
    return sol.y[:n, -1]


def _reduced(s0: np.ndarray, L: sp.csr_matrix) -> tuple[np.ndarray, int]:
    qss = QuasiSteadyState(g=lambda s, c: s - (s + K) * c, dg_dy=lambda s, c: -(s + K))
    rhs = qss.reduced(lambda s, c: D * (L @ s) - s + (s + K - LAM) * c, y_guess=np.zeros_like(s0))
    sol = solve_ivp(rhs, (0.0, T_END), s0, method="BDF", jac=lambda t, s: D * L - sp.diags(LAM * K / (s + K) ** 2),
                    rtol=RTOL, atol=ATOL)
    if not sol.success:
        raise RuntimeError(f"reduced solve failed: {sol.message}")
    return sol.y[:, -1], qss.newton_iterations


def qss_reaction_diffusion(quick: bool, outdir: Path | None) -> Outcome:
    n = 41 if quick else 101
    epsilons = (1e-2, 1e-3) if quick else (1e-3, 1e-4)
    x = np.linspace(0.0, 1.0, n)
    L = _laplacian(n)
    s0 = 1.0 + 0.5 * np.cos(np.pi * x)
    c0 = np.zeros(n)                       # off the slow manifold: an initial layer forms
    s_red, newton = _reduced(s0, L)
    fulls = {eps: _full(eps, s0, c0, L) for eps in epsilons}
    errors = {eps: float(np.max(np.abs(fulls[eps] - s_red))) for eps in epsilons}
    e1, e2 = epsilons
    order = float(np.log(errors[e1] / errors[e2]) / np.log(e1 / e2))

    figures = []
    if outdir is not None:
        plt = pyplot()
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(8, 3.2))
        a1.plot(x, s0, "k:", label="s(x, 0)")
        a1.plot(x, s_red, "k-", label="QSS reduced")
        for eps in epsilons:
            a1.plot(x, fulls[eps], "--", label=f"full, eps = {eps:g}")
        a1.set_xlabel("x")
        a1.set_ylabel(f"s(x, t = {T_END:g})")
        a1.legend(fontsize=7)
        es = np.array(epsilons)
        a2.loglog(es, [errors[e] for e in epsilons], "o-", label="max |s_full - s_QSS|")
        a2.loglog(es, errors[e1] * es / e1, "k:", label="slope 1")
        a2.set_xlabel("eps")
        a2.legend(fontsize=7)
        figures = save(fig, outdir, "qss_reaction_diffusion")

    return Outcome(metric="order of the QSS error in eps", value=order, reference=1.0, tolerance=0.05,
                   details={"nodes": n, "epsilons": list(epsilons),
                            "errors": [errors[e] for e in epsilons], "newton_iterations": newton},
                   figures=figures)


CASES = [
    Case("qss_reaction_diffusion", 3,
         "Fast/slow Michaelis–Menten reaction–diffusion: quasi-steady-state elimination against "
         "the full stiff solution; the error must fall as O(eps).", qss_reaction_diffusion),
]
