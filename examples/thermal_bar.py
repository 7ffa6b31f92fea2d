"""Heat through an OpenMM Lennard-Jones crystal between two DOLFINx heat-equation pieces.

A bar along z: continuum [0, 11.6] sigma held at kT = 0.36 at z = 0, an FCC Lennard-Jones crystal
(1200 atoms, 5 x 5 x 12 cells, free (001) ends) from 10 to 29 sigma, continuum [27.5, 39] sigma
held at 0.24 at its far end.  The continuum pieces (rho c = 3 k_B rho, k = 10) take the
temperature of the crystal's end cells as boundary values; the heat that crosses those
boundaries in a window goes into (or out of) the atoms of the end cells exactly, by rescaling
their velocities about the cells' centre of mass (HEX): a thermostat driven by the continuum's
flux.  The steady state has linear continuum profiles whose slope times k equals the heat the
crystal passes, and a linear (Fourier) profile inside the crystal whose slope gives its
conductivity.

With ``--pulse`` the outer ends are insulated instead and a Gaussian heat pulse starts in the
left piece; it crosses the crystal into the right piece while the total energy stays put.

Output (``--out``): ``heat_bar_steady.png`` (temperature profiles, heat per window) or
``heat_pulse.png`` (profiles, the pulse's energy in each model), ``thermal_bar.json`` (the case's numbers) and ``bar.xyz`` (the crystal
with the time-averaged temperature of each atom's cell, extended XYZ for OVITO / ASE).
Asserted: the case's checks (``heat_bar_steady`` / ``heat_pulse`` of ``msbridge validate``).

Run:  python examples/thermal_bar.py [--quick] [--pulse] [--out DIR]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from bridge.fileio import atomic_write_text, write_json
from bridge_validation import flux_cases


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="150 tau instead of 250-300 tau")
    parser.add_argument("--pulse", action="store_true", help="an isolated bar with a heat pulse")
    parser.add_argument("--out", type=Path, default=Path("thermal_bar"))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    run = flux_cases.run_heat_pulse if args.pulse else flux_cases.run_heat_bar_steady
    outcome, c = run(args.quick, args.out)
    for k, v in outcome.details.items():
        if k != "ledger" and not isinstance(v, list):
            print(f"{k}: {v:.6g}" if isinstance(v, float) else f"{k}: {v}")
    print(outcome.details["ledger"])
    # the crystal for a viewer: positions (sigma), wrapped into the periodic cross-section, and the
    # time-averaged temperature of each atom's coupling cell
    x = c.md.positions()
    x[:, :2] %= np.array(c.md.lateral)
    lay = c.md.layout
    T_cell = np.mean([r["mean"] for r in c.history[len(c.history) // 2:]], axis=0)
    cell = lay.cell_of(x[:, 2])
    T_atom = np.where(cell >= 0, T_cell[np.clip(cell, 0, None)], np.nan)
    L = c.md.lateral
    lines = [str(len(x)), f'Lattice="{L[0]} 0 0 0 {L[1]} 0 0 0 {c.length}" Properties=species:S:1:pos:R:3:kT:R:1 '
             'pbc="T T F" units="sigma, kT in epsilon"']
    lines += [f"Ar {p[0]:.5f} {p[1]:.5f} {p[2]:.5f} {t:.5f}" for p, t in zip(x, T_atom)]
    atomic_write_text(args.out / "bar.xyz", "\n".join(lines) + "\n")
    write_json(args.out / "thermal_bar.json", {"case": "heat_pulse" if args.pulse else "heat_bar_steady",
                                               "value": outcome.value, "details": outcome.details,
                                               "figures": outcome.figures})
    print(f"figure: {', '.join(outcome.figures)}")
    assert outcome.value <= outcome.tolerance, outcome.details


if __name__ == "__main__":
    main()
