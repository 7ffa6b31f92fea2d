"""A plate with a central void under tension: an atomistic core in a DOLFINx continuum, against full atomistics.

A triangular Lennard-Jones argon crystal (first and second neighbour bonds), a hexagonal plate
with a void of radius 3 spacings at its centre, stretched 2 % along x by the affine displacement
of its edge.  The coupled model keeps atoms only within 18 spacings of the void (weight 1 out to
12, cos^2 blend to 0 at 18) and meshes the rest with triangles whose vertices are lattice sites
(graded from 2 to 32 spacings); atoms are tied to the mesh atomwise; both models are relaxed by
Newton's method.

Output (``--out``): ``handshake_plate.png`` (the model with the handshake zone, the void's
displacement field, and a cut along y = 0 against the fully atomistic plate), ``continuum.xdmf``
(displacement and continuum weight, ParaView) and ``atoms.vtk`` (atom displacement and weight).
Asserted: the atoms agree with the fully atomistic plate within 1 % of the largest displacement.

Run:  python examples/handshake_plate_2d.py [--quick] [--out DIR]     (--quick: side 48 a, not 96 a)
"""
from __future__ import annotations

import argparse
from pathlib import Path

from bridge_adapters.dolfinx import require

require()

from bridge_adapters.dolfinx.handshake import write_atoms_vtk, write_displacement  # noqa: E402
from bridge_validation.handshake_plate import PLATE_N, plate_figure, plate_run  # noqa: E402


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a plate of side 48 spacings instead of 96")
    parser.add_argument("--out", type=Path, default=Path("handshake_plate_2d"))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    run = plate_run(PLATE_N // 2 if args.quick else PLATE_N)
    m, s = run["summary"], run["setup"]
    print(f"atomistic plate: {m['atomistic_dofs']} dofs, {m['atomistic_seconds']:.2f} s; coupled: "
          f"{m['coupled_dofs']} dofs ({m['dof_ratio']:.1f}x fewer), {m['coupled_seconds']:.2f} s")
    print(f"max error {m['max_error_nm']:.3g} nm = {m['error_over_max_displacement']:.3%} of the largest displacement, "
          f"{m['error_over_void_displacement']:.2%} of the void's own displacement")
    plate_figure(run, args.out)
    hs, c = s["hs"], run["coupled"]
    write_displacement(args.out / "continuum.xdmf", s["V"], c["u"], 1 - s["weight"](s["mesh"].nodes))
    write_atoms_vtk(args.out / "atoms.vtk", c["x"], c["x"] - hs.lattice.positions, hs.alpha)
    assert m["error_over_max_displacement"] < 0.01, m
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
