"""Coupling windows, sub-cycling, and quasi-steady-state elimination of fast variables.

Each model advances on its own clock; the scheduler owns the coupling windows.  In window ``k``
(``t_k = t0 + k W``) it calls the ``exchange(k, t_k)`` hook (data between models), then lets
every participant take ``substeps`` steps of ``W / substeps`` (multi-rate), then calls
``after(k, t_{k+1})`` (ledgers, averages).  Its own state (window index, time) goes into the
coupled checkpoint.

:class:`QuasiSteadyState` eliminates fast variables: for

    dx/dt = f(x, y),      eps dy/dt = g(x, y),      eps -> 0,

it solves ``g(x, y*(x)) = 0`` by Newton (warm-started from the previous solution) and
gives the reduced slow dynamics ``dx/dt = f(x, y*(x))``.  Tikhonov's theorem: the reduced
solution differs from the full one by O(eps) after an initial layer of width O(eps).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from .errors import CalculationError, SetupError, UsageError
from .log import progress


@dataclass
class Participant:
    """A model in the schedule: ``advance(dt)`` takes one step of ``dt`` on its own clock."""

    name: str
    advance: Callable[[float], Any]
    substeps: int = 1

    def __post_init__(self) -> None:
        if isinstance(self.substeps, bool) or int(self.substeps) != self.substeps or int(self.substeps) < 1:
            raise SetupError(f"participant '{self.name}' needs an integer substeps >= 1, got {self.substeps}",
                             fix="give the number of model steps per coupling window")
        self.substeps = int(self.substeps)


class Scheduler:
    """Run coupling windows of length ``window`` over ``participants``.

    ``exchange(k, t)`` is called at the start of each window and ``after(k, t)`` at its end.
    """

    def __init__(self, window: float, participants: Sequence[Participant], *,
                 exchange: Callable[[int, float], Any] | None = None,
                 after: Callable[[int, float], Any] | None = None, t0: float = 0.0):
        window = float(window)
        if not (math.isfinite(window) and window > 0):
            raise SetupError(f"coupling window must be a positive time, got {window}",
                             fix="pass the window length in the models' time unit")
        names = [p.name for p in participants]
        if len(set(names)) != len(names):
            raise SetupError(f"participant names must be unique, got {names}", fix="rename the duplicates")
        if not participants:
            raise SetupError("a schedule needs at least one participant", fix="pass Participant objects")
        self.window = window
        self.participants = list(participants)
        self.exchange = exchange
        self.after = after
        self.t0 = float(t0)
        self.k = 0

    @property
    def time(self) -> float:
        return self.t0 + self.k * self.window

    def run(self, n_windows: int, *, show_progress: bool | None = None, desc: str = "coupling") -> None:
        """Run ``n_windows`` more windows (a progress bar on a terminal, or when asked)."""
        if int(n_windows) < 0:
            raise SetupError(f"n_windows must be >= 0, got {n_windows}", fix="pass a count of windows")
        for _ in progress(range(int(n_windows)), desc=desc, enable=show_progress):
            t = self.time
            if self.exchange is not None:
                self.exchange(self.k, t)
            for p in self.participants:
                dt = self.window / p.substeps
                for _ in range(p.substeps):
                    p.advance(dt)
            self.k += 1
            if self.after is not None:
                self.after(self.k - 1, self.time)

    def get_state(self) -> dict[str, Any]:
        return {"window_index": self.k, "t0": self.t0, "window": self.window}

    def set_state(self, state: dict[str, Any]) -> None:
        if float(state["window"]) != self.window:
            raise SetupError(f"checkpoint window {state['window']} differs from this schedule's {self.window}",
                             fix="restart with the same coupling window")
        self.k = int(state["window_index"])
        self.t0 = float(state["t0"])


class QuasiSteadyState:
    """Solve ``g(x, y) = 0`` for the fast variables ``y`` given the slow ``x``.

    Parameters
    ----------
    g : callable ``(x, y) -> (m,)`` residual of the fast equations.
    dg_dy : callable ``(x, y) ->`` the Jacobian: an ``(m,)`` array when it is diagonal
        (pointwise kinetics, the common case), or an ``(m, m)`` dense/sparse matrix.
    tol : Newton stops when ``max|dy| <= tol * (1 + max|y|)``.
    """

    def __init__(self, g: Callable, dg_dy: Callable, *, tol: float = 1e-13, max_iter: int = 50):
        self.g, self.dg_dy, self.tol, self.max_iter = g, dg_dy, float(tol), int(max_iter)
        self.y: np.ndarray | None = None
        self.newton_iterations = 0

    def solve(self, x: np.ndarray, y_guess: np.ndarray | None = None) -> np.ndarray:
        """``y*(x)`` ``(m,)``; warm-started from the last solution when no guess is given."""
        if y_guess is None:
            if self.y is None:
                raise UsageError("no initial guess for the fast variables", fix="pass y_guess on the first call")
            y_guess = self.y
        y = np.array(y_guess, dtype=float)
        for it in range(1, self.max_iter + 1):
            r = self.g(x, y)
            J = self.dg_dy(x, y)
            if sp.issparse(J):
                dy = spla.spsolve(J.tocsc(), r)
            elif np.ndim(J) == 1:
                dy = r / J
            else:
                dy = np.linalg.solve(J, r)
            y = y - dy
            self.newton_iterations += 1
            if not np.all(np.isfinite(y)):
                raise CalculationError("quasi-steady-state Newton produced non-finite values",
                                       reason=f"iteration {it}", state={"y": y},
                                       fix="start from a better guess or check dg_dy")
            if np.max(np.abs(dy)) <= self.tol * (1.0 + np.max(np.abs(y))):
                self.y = y
                return y.copy()
        raise CalculationError("quasi-steady-state Newton did not converge",
                               reason=f"{self.max_iter} iterations, last |dy| = {np.max(np.abs(dy)):.3e}",
                               state={"y": y}, fix="raise max_iter or loosen tol")

    def reduced(self, f: Callable, y_guess: np.ndarray) -> Callable[[float, np.ndarray], np.ndarray]:
        """The reduced right-hand side ``(t, x) -> f(x, y*(x))`` for an ODE solver."""
        self.y = np.array(y_guess, dtype=float)

        def rhs(t: float, x: np.ndarray) -> np.ndarray:
            return f(x, self.solve(x))

        return rhs
