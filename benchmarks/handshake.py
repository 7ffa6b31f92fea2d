"""Handshake benchmark (``msbridge bench handshake``): coupled vs fully atomistic void plate.

``plate_n{side}``: the 2-D plate of :mod:`bridge_validation.handshake_plate` (void of 3 a, atoms
within 18 a, graded lattice-site mesh, 2 % tension) relaxed by Newton's method, coupled and fully
atomistic, timed interleaved in the same process at two plate sizes.  Ratio = coupled /
atomistic wall time, setup included for both (the coupled run builds its atoms, the graded mesh and
the handshake's bond-density weights; the atomistic run builds the whole plate's bonds); details
give the dof ratio and the error against the fully atomistic plate, so the table shows how the
saving grows with the plate while the error stays put.
"""
from __future__ import annotations

from bridge.bench import Benchmark, BenchResult, interleave


def handshake(quick: bool = False, repeats: int | None = None) -> list[BenchResult]:
    from bridge_validation.handshake_plate import compare, plate_setup, solve_coupled, solve_full

    results = []
    for n in ((48, 96) if quick else (64, 128)):
        out = {}

        def coupled():
            s = plate_setup(n, full=False, with_dolfinx=False)
            out["coupled_setup"], out["coupled"] = s, solve_coupled(s)

        def atomistic():
            s = plate_setup(n, full=True, coupled=False)
            out["full_setup"], out["full"] = s, solve_full(s)

        t = interleave(atomistic, coupled, repeats or (1 if quick else 2), warmup=0)
        m = compare({**out["coupled_setup"], **out["full_setup"]}, out["coupled"], out["full"])
        results.append(BenchResult(
            name=f"plate_n{n}", ratio=t.ratio, ratio_name="coupled / fully atomistic wall time",
            baseline_seconds=t.baseline_median, coupled_seconds=t.coupled_median,
            size={"side_spacings": n, "atomistic_dofs": m["atomistic_dofs"], "coupled_dofs": m["coupled_dofs"]},
            details={"dof_ratio": m["dof_ratio"], "speedup": 1.0 / t.ratio,
                     "error_over_max_displacement": m["error_over_max_displacement"],
                     "error_over_void_displacement": m["error_over_void_displacement"]},
            timings={"baseline": t.baseline, "coupled": t.coupled}))
    return results


BENCHMARKS = [
    Benchmark("handshake", "Coupled vs fully atomistic void plate (2-D handshake, Newton statics) at two sizes: "
              "wall-time ratio, dof ratio and error.", handshake),
]
