"""Scheduler (coupling windows, sub-cycling, checkpointed state) and quasi-steady-state elimination."""
import math

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.integrate import solve_ivp

from bridge.errors import CalculationError, SetupError, UsageError
from bridge.scheduler import Participant, QuasiSteadyState, Scheduler


class FakeModel:
    """Counts its steps, keeps its own clock, and carries a state that depends on every step."""

    def __init__(self, name, log=None):
        self.name, self.log = name, log
        self.calls, self.t, self.u = 0, 0.0, 1.0

    def advance(self, dt):
        self.calls += 1
        self.t += dt
        self.u = self.u * (1.0 - 0.3 * dt) + 0.1 * math.sin(self.t)  # history-dependent
        if self.log is not None:
            self.log.append(("advance", self.name))

    def get_state(self):
        return {"calls": self.calls, "t": self.t, "u": self.u}

    def set_state(self, state):
        self.calls, self.t, self.u = state["calls"], state["t"], state["u"]


def make_run(t0=0.0, window=0.25, log=None):
    fast, slow = FakeModel("fast", log), FakeModel("slow", log)
    fast.t = slow.t = t0
    hooks = {"exchange": [], "after": []}

    def exchange(k, t):
        # at the start of window k every model stands at t_k
        hooks["exchange"].append((k, t, fast.t, slow.t))
        if log is not None:
            log.append(("exchange", k))

    def after(k, t):
        hooks["after"].append((k, t, fast.t, slow.t))
        if log is not None:
            log.append(("after", k))

    sched = Scheduler(window, [Participant("fast", fast.advance, substeps=7), Participant("slow", slow.advance)],
                      exchange=exchange, after=after, t0=t0)
    return sched, fast, slow, hooks


def test_multi_rate_substeps_and_clocks():
    sched, fast, slow, hooks = make_run(t0=1.5, window=0.1)
    sched.run(4, show_progress=False)
    assert fast.calls == 4 * 7 and slow.calls == 4
    assert sched.k == 4 and sched.time == pytest.approx(1.5 + 0.4, rel=1e-15)
    # each participant's clock equals the scheduler time after every window (sums of W/n: round-off only)
    for k, t, tf, ts in hooks["after"]:
        assert t == pytest.approx(1.5 + 0.1 * (k + 1), rel=1e-14)
        assert tf == pytest.approx(t, rel=1e-14) and ts == pytest.approx(t, rel=1e-14)
    assert [h[0] for h in hooks["exchange"]] == [0, 1, 2, 3]
    assert [h[0] for h in hooks["after"]] == [0, 1, 2, 3]
    for k, t, tf, ts in hooks["exchange"]:
        assert t == pytest.approx(1.5 + 0.1 * k, rel=1e-14)
        assert tf == pytest.approx(t, rel=1e-14) and ts == pytest.approx(t, rel=1e-14)


def test_hook_order_within_a_window():
    log = []
    sched, *_ = make_run(log=log)
    sched.run(2, show_progress=False)
    one = [("exchange", 0)] + [("advance", "fast")] * 7 + [("advance", "slow"), ("after", 0)]
    assert log == one + [(e if e[0] == "advance" else (e[0], 1)) for e in one]


def test_zero_windows_and_no_hooks():
    model = FakeModel("m")
    sched = Scheduler(1.0, [Participant("m", model.advance, 3)])
    sched.run(0)
    assert model.calls == 0 and sched.time == 0.0
    sched.run(2, show_progress=False)
    assert model.calls == 6 and model.t == pytest.approx(2.0, rel=1e-15)


def test_state_round_trip_continues_identically():
    ref, rfast, rslow, rhooks = make_run(t0=0.5)
    ref.run(5, show_progress=False)

    first, ffast, fslow, fhooks = make_run(t0=0.5)
    first.run(2, show_progress=False)
    saved = {"sched": first.get_state(), "fast": ffast.get_state(), "slow": fslow.get_state()}

    second, sfast, sslow, shooks = make_run(t0=99.0)  # a fresh run, set from the saved state
    second.set_state(saved["sched"])
    sfast.set_state(saved["fast"])
    sslow.set_state(saved["slow"])
    assert second.k == 2 and second.time == first.time
    second.run(3, show_progress=False)
    assert second.time == ref.time
    assert (sfast.u, sslow.u, sfast.calls) == (rfast.u, rslow.u, rfast.calls)  # bit-identical
    assert fhooks["after"] + shooks["after"] == rhooks["after"]
    assert fhooks["exchange"] + shooks["exchange"] == rhooks["exchange"]


def test_set_state_refuses_another_window():
    sched, *_ = make_run(window=0.25)
    with pytest.raises(SetupError, match="differs") as exc:
        sched.set_state({"window_index": 1, "t0": 0.0, "window": 0.5})
    assert exc.value.fix


@pytest.mark.parametrize("window", [0.0, -1.0, math.nan, math.inf])
def test_bad_window(window):
    with pytest.raises(SetupError, match="positive time"):
        Scheduler(window, [Participant("a", lambda dt: None)])


def test_bad_participants():
    with pytest.raises(SetupError, match="substeps >= 1"):
        Participant("a", lambda dt: None, substeps=0)
    with pytest.raises(SetupError, match="unique"):
        Scheduler(1.0, [Participant("a", lambda dt: None), Participant("a", lambda dt: None)])
    with pytest.raises(SetupError, match="at least one participant"):
        Scheduler(1.0, [])
    sched = Scheduler(1.0, [Participant("a", lambda dt: None)])
    with pytest.raises(SetupError, match="n_windows"):
        sched.run(-1)


# --- quasi-steady state ----------------------------------------------------------------------

def test_qss_diagonal_jacobian():
    # g = y^2 - x, root y* = sqrt(x) from a positive guess
    qss = QuasiSteadyState(lambda x, y: y * y - x, lambda x, y: 2 * y)
    x = np.array([1.0, 4.0, 9.0, 2.0])
    y = qss.solve(x, y_guess=np.ones(4))
    np.testing.assert_allclose(y, np.sqrt(x), rtol=1e-14)
    assert np.max(np.abs(y * y - x)) < 1e-13
    # warm start: the next call needs no guess, and from the exact root one Newton step suffices
    n0 = qss.newton_iterations
    np.testing.assert_allclose(qss.solve(x), np.sqrt(x), rtol=1e-15)
    assert qss.newton_iterations - n0 <= 2
    # the returned array is a copy: changing it does not change the warm start
    y[:] = -1.0
    np.testing.assert_allclose(qss.solve(x * 1.01), np.sqrt(x * 1.01), rtol=1e-14)


def coupled_problem(m=6, seed=0):
    """g(y) = A y + y^3 - b with b built from a chosen root y*; Jacobian A + diag(3 y^2)."""
    rng = np.random.default_rng(seed)
    A = np.diag(np.full(m, 4.0)) + np.diag(np.full(m - 1, -1.0), 1) + np.diag(np.full(m - 1, -1.0), -1)
    y_star = rng.uniform(0.5, 1.5, m)
    b = A @ y_star + y_star ** 3
    return A, y_star, b


def test_qss_dense_jacobian():
    A, y_star, b = coupled_problem()
    qss = QuasiSteadyState(lambda x, y: A @ y + y ** 3 - x, lambda x, y: A + np.diag(3 * y * y))
    np.testing.assert_allclose(qss.solve(b, y_guess=np.zeros(len(b))), y_star, rtol=1e-13)


def test_qss_sparse_jacobian():
    A, y_star, b = coupled_problem(m=50, seed=1)
    As = sp.csr_matrix(A)
    qss = QuasiSteadyState(lambda x, y: As @ y + y ** 3 - x, lambda x, y: As + sp.diags(3 * y * y))
    np.testing.assert_allclose(qss.solve(b, y_guess=np.zeros(50)), y_star, rtol=1e-13)


def test_qss_first_call_without_guess_is_a_usage_error():
    qss = QuasiSteadyState(lambda x, y: y - x, lambda x, y: np.ones_like(y))
    with pytest.raises(UsageError, match="initial guess") as exc:
        qss.solve(np.ones(2))
    assert "y_guess" in exc.value.fix


def test_qss_non_convergence_is_a_calculation_error():
    # y^3 - 8 from y = 100: Newton needs ~15 steps, so 3 are not enough
    qss = QuasiSteadyState(lambda x, y: y ** 3 - 8.0, lambda x, y: 3 * y * y, max_iter=3)
    with pytest.raises(CalculationError, match="did not converge") as exc:
        qss.solve(None, y_guess=np.array([100.0]))
    assert "3 iterations" in exc.value.reason
    assert exc.value.state["y"][0] > 2.0  # still on the way down from 100
    assert qss.y is None  # no half-converged warm start kept
    # a zero Jacobian gives inf: reported, not passed on
    bad = QuasiSteadyState(lambda x, y: y - 1.0, lambda x, y: np.zeros_like(y))
    with np.errstate(divide="ignore"), pytest.raises(CalculationError, match="non-finite"):
        bad.solve(None, y_guess=np.array([0.0]))


def test_qss_reduced_dynamics_against_the_analytic_solution():
    # dx/dt = -y, 0 = g = y^2 - x  =>  dx/dt = -sqrt(x)  =>  sqrt(x(t)) = sqrt(x0) - t/2
    qss = QuasiSteadyState(lambda x, y: y * y - x, lambda x, y: 2 * y, tol=1e-14)
    rhs = qss.reduced(lambda x, y: -y, y_guess=np.array([2.0]))
    assert rhs(0.0, np.array([4.0]))[0] == pytest.approx(-2.0, rel=1e-14)
    sol = solve_ivp(rhs, (0.0, 2.0), [4.0], rtol=1e-10, atol=1e-12, t_eval=[0.5, 1.0, 2.0])
    np.testing.assert_allclose(sol.y[0], (2.0 - sol.t / 2) ** 2, rtol=1e-8)
