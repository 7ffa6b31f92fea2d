"""Couette start-up with an OpenMM Lennard-Jones slab inside a DOLFINx channel (flux matching).

A channel of height 50 sigma; at t = 0 the wall at z = 0 starts moving at U = 0.5 sigma/tau.  The
middle-lower part of the channel (z = 2.5 ... 27.5 sigma) is molecular dynamics: ~1950 Lennard-Jones
particles (rho = 0.813, kT = 1.1, cutoff 2.2 sigma) in OpenMM between two repulsive walls, cut into
ten coupling cells.  The rest is continuum: two DOLFINx pieces solving rho du/dt = eta d2u/dz2
(eta = 2.14).  Every window of 5 tau:

- the continuum predicts its velocity at the MD's constrained cells (second and ninth);
- OpenMM runs 1000 steps; every 20 steps the constrained cells' mean velocity is set to the
  continuum's (interpolated in time: constrained dynamics of Nie, Chen, E and Robbins), a
  y-only Langevin step holds the temperature, and the cells are sampled;
- the window averages of the first and last sample cells become the continuum's inner boundary
  values and the continuum steps again (corrector).

Before the start the coupled model runs at rest to measure the error bar of a window average (the
MD's thermal noise and what the continuum returns of it).  ``--target-error 0.05`` lets the
coupling choose how many independent MD replicas (or, with ``--vary window``, how long a window)
reach a 5 % error of U (the MD's own part of the error).

Output (``--out``): ``couette_startup.png`` (MD cell averages with error bars, the continuum
pieces and the analytic series at several times; the momentum the constraint put into the MD
against what the continuum carries through the slab's outer boundaries, which the constrained
cells stand in for) and
``couette_startup.json`` (every window's averages, errors, continuum profiles and the ledger).
Asserted: RMS deviation from the analytic profile within twice the RMS error bar; MD momentum
ledger closed to 1e-4 per window, continuum ledger to 1e-10, no particle lost.

Run:  python examples/couette_startup.py [--quick] [--target-error F [--vary replicas|window]] [--out DIR]
"""
from __future__ import annotations

import argparse
from pathlib import Path

from bridge.fileio import write_json
from bridge_validation.flux_cases import COUETTE, COUETTE_CALIBRATION, compare, couette_figure, couette_model, ledger_ratios


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="60 tau instead of 200 tau (the validation case's quick run)")
    parser.add_argument("--target-error", type=float, default=None,
                        help="relative error of a window average (fraction of U) to reach with replicas")
    parser.add_argument("--vary", choices=("replicas", "window"), default="replicas",
                        help="what --target-error may change: the number of MD replicas or the window")
    parser.add_argument("--out", type=Path, default=Path("couette_startup"))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    # 60 tau in quick mode, as the validation case (40 tau compared only 6 windows x 4 cells)
    t_end = 60.0 if args.quick else 200.0
    c = couette_model(target_error=args.target_error, vary=args.vary, calibrate=COUETTE_CALIBRATION)
    cal = c.calibration
    print(f"{len(c.replicas)} replica(s) of {c.replicas[0].n} particles; error bar of a window average "
          f"{cal['coupled_error']:.4f} (MD alone {cal['md_error']:.4f}, statistical inefficiency {cal['g']:.1f})")
    if c.plan is not None:
        print(f"plan for {args.target_error:.1%}: {c.plan.replicas} replica(s), window {c.window:g} tau, "
              f"predicted {c.plan.predicted_error:.2%}")
    c.run(int(round(t_end / c.window)))
    cmp_ = compare(c, t_min=10.0)
    led = ledger_ratios(c)
    print(f"RMS deviation from the analytic profile {cmp_['rms_deviation']:.4f}, RMS error bar "
          f"{cmp_['rms_error']:.4f} ({cmp_['windows_compared']} windows x {len(c.layout.sampled)} cells)")
    print(c.ledger.summary())
    couette_figure(c, args.out)
    write_json(args.out / "couette_startup.json", {
        "parameters": COUETTE, "particles": c.replicas[0].n, "replicas": len(c.replicas),
        "calibration": {k: v for k, v in cal.items() if k != "window_means"}, "comparison": cmp_,
        "ledger": c.ledger.to_dict(),
        "windows": [{"t0": r["t0"], "t1": r["t1"], "z": c.layout.centres.tolist(), "u": r["mean"].tolist(),
                     "error": r["error"].tolist(), "continuum_z": r["continuum"][0].tolist(),
                     "continuum_u": r["continuum"][1].tolist()} for r in c.history]})
    assert cmp_["rms_deviation"] <= 2 * cmp_["rms_error"], cmp_
    assert max(led.values()) <= 1.0, led


if __name__ == "__main__":
    main()
