"""A wave packet leaving an OpenMM Lennard-Jones chain through a handshake into a DOLFINx continuum.

The set-up of DESIGN.md §6 (Xiao–Belytschko's bridging-domain test): an argon chain with first
and second neighbour bonds, 260 spacings long, whose last 20 spacings blend (cos^2 weight) into a
Cauchy–Born continuum of the same potential meshed with elements of 5 spacings.  The atoms are
tied to the mesh in the L2 sense (only their coarse motion is constrained) and take two OpenMM
steps per continuum step.

Two pulses are sent right-moving (the lattice's own dispersion sets their velocities):

- a smooth Gaussian (width 30 a, amplitude 0.015 a) -- the mesh carries it, it crosses over;
- a ripple packet of wavelength 7.5 a -- shorter than two elements, the mesh cannot carry it:
  without damping it reflects back into the atoms; with the fine-scale damping of the overlap
  (2 / ps at the continuum edge, acting on the atoms' motion relative to the continuum only)
  it is absorbed there.

The figure shows the energy in the atomistic region, the handshake and the continuum over time;
the dotted line is the ledger (total plus what the damping removed), flat to 1e-4.  The final
state is written for ParaView: ``continuum.xdmf`` (displacement and continuum weight) and
``atoms.vtk`` (displacement and weight).  Asserted: energy conserved to 1e-4 undamped, ripple
reflection <= 10 % and smooth reflection <= 1 % damped.

Run:  python examples/handshake_wave_1d.py [--quick] [--out DIR]
"""
from __future__ import annotations

import argparse
from pathlib import Path


from bridge_adapters.dolfinx import require

require()

from bridge_adapters.dolfinx.handshake import write_atoms_vtk, write_displacement  # noqa: E402
from bridge_validation.handshake_cases import DAMPING, wave_figure, wave_run  # noqa: E402


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the ripple packet only (the harder case)")
    parser.add_argument("--out", type=Path, default=Path("handshake_wave_1d"))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    pulses = ("ripple",) if args.quick else ("smooth", "ripple")
    runs = {(p, d): wave_run(p, d) for p in pulses for d in (0.0, DAMPING)}
    for (p, d), r in runs.items():
        ledger = f"energy drift {r['drift']:.2e}" if d == 0 else f"removed by damping {r['damped']:.4f}"
        print(f"{p:6s} damping {d:3g}/ps: reflected {r['reflected']:.4f}  transmitted {r['transmitted']:.4f}  "
              f"{ledger}  ({r['steps']} continuum steps)")
    wave_figure(runs, args.out)

    # the damped ripple run's final state, for ParaView
    r = runs[("ripple", DAMPING)]
    dyn, s = r["dyn"], r["setup"]
    x, _, _, _ = dyn.engine.state()
    write_displacement(args.out / "continuum.xdmf", s["V"], dyn.u, 1 - s["weight"](s["mesh"].nodes))
    write_atoms_vtk(args.out / "atoms.vtk", x, x - s["hs"].lattice.positions, s["hs"].alpha)

    for p in pulses:
        assert runs[(p, 0.0)]["drift"] < 1e-4, f"{p}: energy not conserved ({runs[(p, 0.0)]['drift']:.2e})"
    assert runs[("ripple", DAMPING)]["reflected"] < 0.10
    assert runs[("ripple", 0.0)]["reflected"] > 0.5          # undamped, the mesh reflects the ripple
    if not args.quick:
        assert runs[("smooth", DAMPING)]["reflected"] < 0.01
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
