r"""A farm of micro models (FE²/HMM) spread over MPI ranks, balanced by measured cost.

Each macro integration point has one micro model with the preCICE Micro Manager contract
(:class:`bridge.protocols.MicroModel`: ``initialize()``, ``solve(macro_data, dt) -> dict``,
``get_state()``, ``set_state(state)``).  The macro problem owns the points of its own cells;
:class:`MicroFarm` decides which rank *solves* each point:

1. the owner of a point sends its macro data to the point's worker (``alltoall``);
2. the worker solves and times each micro model;
3. results travel back to the owners.

Initially every point is solved by its owner.  With ``balance=True``, after each call the
measured costs (seconds per point) are gathered, a longest-processing-time-first assignment
is computed, and the points that change worker migrate with ``get_state()``/``set_state()``
(the new worker builds the model with ``factory(global_id)`` and ``initialize()`` first).  The
assignment depends only on the gathered costs, so all ranks compute the same one.

**Adaptivity.**  With ``reuse_tolerance = tol`` a point whose input ``macro_data[key]`` moved by
``|x - x_last|_inf <= tol`` since its last solve is not solved again; its result is
``extrapolate(last_input, last_output, new_input)`` (default: the last output unchanged).  For
FE² the extrapolation is the tangent's first-order update, so the stress error of a reused
point is second order, :math:`O(|\partial C/\partial E|\,tol^2)`; the farm counts solves and
reuses so the saving can be stated next to the error it costs.

**Failures.**  A micro model that raises is never replaced silently: every rank raises a
:class:`~bridge.errors.CalculationError` naming the first failed point (lowest global id), its
macro inputs and the micro model's message.

Without MPI (``comm`` None or one rank) the farm is a plain loop with the same bookkeeping.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np

from .errors import CalculationError, SetupError

__all__ = ["MicroFarm", "FarmStats", "lpt_assignment", "tangent_extrapolation"]


def lpt_assignment(costs: np.ndarray, n_workers: int) -> np.ndarray:
    """Longest-processing-time-first: worker ``(n,)`` for tasks of ``costs`` ``(n,)`` seconds.

    Tasks in decreasing cost (ties by index) each go to the least-loaded worker (ties: fewer
    tasks, then lower rank),
    which is deterministic, so every rank computes the same assignment.
    """
    costs = np.asarray(costs, dtype=np.float64)
    order = np.lexsort((np.arange(costs.size), -costs))
    load = np.zeros(n_workers)
    count = np.zeros(n_workers, dtype=np.int64)
    out = np.empty(costs.size, dtype=np.int64)
    for i in order:
        w = min(range(n_workers), key=lambda r: (load[r], count[r], r))
        out[i] = w
        load[w] += costs[i]
        count[w] += 1
    return out


def tangent_extrapolation(last_input: Mapping[str, np.ndarray], last_output: Mapping[str, Any],
                          new_input: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """First-order reuse for FE²: ``stress + tangent @ (strain - strain_last)``, tangent kept."""
    out = dict(last_output)
    dE = np.asarray(new_input["strain"]) - np.asarray(last_input["strain"])
    out["stress"] = np.asarray(last_output["stress"]) + np.asarray(last_output["tangent"]) @ dE
    return out


@dataclass
class FarmStats:
    """Counters of a farm: calls, micro solves and reuses (all ranks), migrations, and the
    measured solve time per rank (seconds) of the last call."""

    calls: int = 0
    solves: int = 0
    reused: int = 0
    migrations: int = 0
    last_rank_seconds: list[float] = field(default_factory=list)

    @property
    def imbalance(self) -> float:
        """max / mean of the per-rank solve time of the last call (1 = perfectly balanced)."""
        t = np.asarray(self.last_rank_seconds)
        return float(t.max() / t.mean()) if t.size and t.mean() > 0 else 1.0


class MicroFarm:
    """Micro models for the ``n_local`` macro points of this rank, solved across ranks.

    Parameters
    ----------
    factory : callable ``(global_id: int) -> MicroModel``
        Builds the micro model of one point (called on the rank that solves it).
    n_local : int
        Points owned by this rank (global ids ``offset .. offset + n_local - 1`` in rank order).
    comm : mpi4py communicator, optional
        Ranks to spread the solves over (default: none, serial).
    balance : bool
        Re-assign points by measured cost after each call (migrating their state).
    balance_tolerance : float
        Re-assign only when the slowest rank's measured time exceeds the mean by more than this
        fraction and the new plan cuts it by more than this fraction (no churn on timing noise).
    reuse_tolerance : float, optional
        Adaptivity: reuse a point's last result when ``|x - x_last|_inf <= reuse_tolerance`` for
        the input ``reuse_key``.
    extrapolate : callable, optional
        ``(last_input, last_output, new_input) -> output`` for reused points (default: the last
        output); :func:`tangent_extrapolation` for FE².
    """

    def __init__(self, factory: Callable[[int], Any], n_local: int, *, comm=None, balance: bool = True,
                 balance_tolerance: float = 0.1, reuse_tolerance: float | None = None, reuse_key: str = "strain",
                 extrapolate: Callable[..., dict] | None = None):
        if not callable(factory):
            raise SetupError("factory must be callable: global_id -> micro model",
                             fix="pass e.g. lambda gid: MyMicroModel(gid)")
        if int(n_local) < 0:
            raise SetupError(f"n_local must be >= 0, got {n_local}", fix="pass the number of local points")
        if reuse_tolerance is not None and not (np.isfinite(reuse_tolerance) and reuse_tolerance >= 0):
            raise SetupError(f"reuse_tolerance must be a finite number >= 0, got {reuse_tolerance}",
                             fix="pass None (no adaptivity) or a tolerance in the units of the input")
        self.factory = factory
        self.comm = comm if comm is not None and comm.size > 1 else None
        self.size = 1 if self.comm is None else self.comm.size
        self.rank = 0 if self.comm is None else self.comm.rank
        self.n_local = int(n_local)
        counts = [self.n_local] if self.comm is None else self.comm.allgather(self.n_local)
        self.offset = int(sum(counts[:self.rank]))
        self.n_global = int(sum(counts))
        self.owner = np.repeat(np.arange(self.size), counts)
        self.worker = self.owner.copy()
        self.balance = bool(balance)
        self.balance_tolerance = float(balance_tolerance)
        self.reuse_tolerance = reuse_tolerance
        self.reuse_key = reuse_key
        self.extrapolate = extrapolate
        self.models: dict[int, Any] = {}
        self.costs = np.zeros(self.n_global)
        self._last_in: dict[int, dict] = {}
        self._last_out: dict[int, dict] = {}
        self.stats = FarmStats()

    @property
    def global_ids(self) -> np.ndarray:
        """Global ids ``(n_local,)`` of this rank's points."""
        return np.arange(self.offset, self.offset + self.n_local)

    def _model(self, gid: int):
        model = self.models.get(gid)
        if model is None:
            model = self.factory(gid)
            init = getattr(model, "initialize", None)
            if callable(init):
                init()
            self.models[gid] = model
        return model

    def _split_inputs(self, inputs: Mapping[str, Any]) -> list[dict[str, np.ndarray]]:
        arrays = {}
        for key, value in inputs.items():
            arr = np.asarray(value, dtype=np.float64)
            if arr.shape[:1] != (self.n_local,):
                raise SetupError(f"input {key!r} has shape {arr.shape}; its first axis must be the "
                                 f"{self.n_local} local points",
                                 fix="stack the macro data of this rank's points along axis 0")
            if not np.all(np.isfinite(arr)):
                bad = int(np.flatnonzero(~np.all(np.isfinite(arr.reshape(self.n_local, -1)), axis=1))[0])
                raise SetupError(f"input {key!r} of point {self.offset + bad} is NaN or infinite",
                                 fix="check the macro solution before handing it to the micro models")
            arrays[key] = arr
        return [{k: v[i].copy() for k, v in arrays.items()} for i in range(self.n_local)]

    def solve(self, inputs: Mapping[str, Any], dt: float = 0.0) -> dict[str, np.ndarray]:
        """Solve (or reuse) every local point; returns each output key stacked ``(n_local, ...)``.

        Collective over ``comm``.
        """
        items = self._split_inputs(inputs)
        results: list[dict | None] = [None] * self.n_local
        todo = []
        for i, data in enumerate(items):
            gid = self.offset + i
            last = self._last_in.get(gid)
            if self.reuse_tolerance is not None and last is not None and self.reuse_key in data:
                moved = float(np.max(np.abs(data[self.reuse_key] - last[self.reuse_key])))
                if moved <= self.reuse_tolerance:
                    prev = self._last_out[gid]
                    results[i] = self.extrapolate(last, prev, data) if self.extrapolate else dict(prev)
                    continue
            todo.append((gid, data))
        n_reused = self.n_local - len(todo)

        outbox: list[list] = [[] for _ in range(self.size)]
        for gid, data in todo:
            outbox[int(self.worker[gid])].append((gid, data))
        inbox = outbox if self.comm is None else self.comm.alltoall(outbox)

        done: list[list] = [[] for _ in range(self.size)]
        failures = []
        spent = 0.0
        for src, work in enumerate(inbox):
            for gid, data in work:
                t0 = time.perf_counter()
                message = None
                try:
                    out = self._model(gid).solve(data, dt)
                except Exception as exc:  # reported on every rank below, never replaced
                    out, message = None, f"{type(exc).__name__}: {exc}"
                if message is None and not isinstance(out, Mapping):
                    out, message = None, f"solve returned {type(out).__name__}, not a dict"
                if message is not None:
                    failures.append((gid, {k: np.asarray(v).tolist() for k, v in data.items()}, message))
                cost = time.perf_counter() - t0
                spent += cost
                self.costs[gid] = cost
                done[src].append((gid, out))
        back = done if self.comm is None else self.comm.alltoall(done)

        all_failures = failures if self.comm is None else \
            [f for part in self.comm.allgather(failures) for f in part]
        if all_failures:
            gid, data, message = min(all_failures, key=lambda f: f[0])
            raise CalculationError(f"micro model of point {gid} failed ({len(all_failures)} failure(s) "
                                   f"in this call)", reason=message,
                                   state={"point": gid, "macro_data": data, "failed_points":
                                          sorted(f[0] for f in all_failures)},
                                   fix="inspect the macro data of that point; reduce the load "
                                       "step or make the micro solver more robust")
        for part in back:
            for gid, out in part:
                i = gid - self.offset
                results[i] = out
                self._last_in[gid] = items[i]
                self._last_out[gid] = out

        counts = np.array([len(todo), n_reused], dtype=np.int64)
        if self.comm is not None:
            counts = self.comm.allreduce(counts)
            self.stats.last_rank_seconds = list(self.comm.allgather(spent))
        else:
            self.stats.last_rank_seconds = [spent]
        self.stats.calls += 1
        self.stats.solves += int(counts[0])
        self.stats.reused += int(counts[1])
        if self.comm is not None and self.balance:
            self._rebalance()
        keys = results[0].keys() if results else []
        return {k: np.stack([np.asarray(r[k]) for r in results]) for k in keys}

    def _rebalance(self) -> None:
        costs = np.zeros(self.n_global)
        mine = np.array(sorted(self.models), dtype=np.int64)
        local = np.zeros(self.n_global)
        local[mine] = self.costs[mine]
        self.comm.Allreduce(local, costs)
        if not np.any(costs > 0):
            return
        self.costs = costs
        current = np.bincount(self.worker, weights=costs, minlength=self.size)
        target = lpt_assignment(costs, self.size)
        planned = np.bincount(target, weights=costs, minlength=self.size)
        # Hysteresis: move nothing while the measured imbalance is within the tolerance, or
        # when the new plan would not cut the slowest rank's time by more than it.
        if current.max() <= (1.0 + self.balance_tolerance) * current.mean() or \
                planned.max() >= current.max() / (1.0 + self.balance_tolerance):
            return
        moving = np.flatnonzero(target != self.worker)
        outbox: list[list] = [[] for _ in range(self.size)]
        for gid in moving:
            if int(self.worker[gid]) == self.rank and gid in self.models:
                model = self.models.pop(int(gid))
                outbox[int(target[gid])].append((int(gid), model.get_state()))
        for part in self.comm.alltoall(outbox):
            for gid, state in part:
                self._model(gid).set_state(state)
        self.stats.migrations += int(moving.size)
        self.worker = target

    def get_state(self) -> dict[str, Any]:
        """States of the micro models solved on this rank: ``{global_id: state}``."""
        return {gid: m.get_state() for gid, m in self.models.items()}
