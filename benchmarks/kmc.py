"""Object KMC throughput (``msbridge bench kmc``).

``kmc_events_n{N}``: events per second of :class:`bridge_adapters.kmc.ObjectKMC` with ``N``
vacancies and interstitials (half each, 1e-3 per nm^3, periodic box) at 600 K, reactions on,
after a warm-up that also compiles the kernel.  Ratio = time per event at ``N`` / time per event
at the smallest ``N`` in the same process: how the cost grows with the number of objects
(grouped selection is O(1) in ``N``; what grows is memory traffic).  Goal (issue): 1e6 events
per second on one core.
"""
from __future__ import annotations

import time

import numpy as np

from bridge.bench import Benchmark, BenchResult


def kmc(quick: bool = False, repeats: int | None = None) -> list[BenchResult]:
    from bridge_adapters.kmc import ObjectKMC

    sizes = (1000, 10000) if quick else (1000, 10000, 100000)
    events = 500_000 if quick else 2_000_000
    rng = np.random.default_rng(0)
    per_event, out = {}, []
    for n in sizes:
        L = np.full(3, (n / 1e-3) ** (1 / 3))
        k = ObjectKMC(L, rng.random((n, 3)) * L, np.where(np.arange(n) % 2 == 0, 1, -1), seed=1)
        k.run(600.0, 1e9, max_events=50_000)                       # warm-up (and compile)
        times = []
        for _ in range(repeats or (1 if quick else 3)):
            t0 = time.perf_counter()
            done = k.run(600.0, 1e9, max_events=events)
            times.append((time.perf_counter() - t0) / max(done, 1))
        per_event[n] = float(np.median(times))
        base = per_event[sizes[0]]
        out.append(BenchResult(
            name=f"kmc_events_n{n}", ratio=per_event[n] / base,
            ratio_name=f"time per event at {n} objects / at {sizes[0]}",
            baseline_seconds=base * events, coupled_seconds=per_event[n] * events,
            size={"objects": n, "events": events, "box_nm": float(L[0])}, goal=None,
            details={"events_per_second": 1.0 / per_event[n], "goal_events_per_second": 1e6,
                     "met_1e6_per_second": bool(1.0 / per_event[n] >= 1e6), "objects_left": k.counts()["objects"]},
            timings={"baseline": [base * events], "coupled": [t * events for t in times]}))
    return out


BENCHMARKS = [
    Benchmark("kmc", "Object KMC events per second and their growth with the number of objects.", kmc,
              engines=("kmc",)),
]
