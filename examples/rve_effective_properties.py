"""Effective properties of periodic microstructures: fiber composites and porous electrodes.

Part 1 -- a glass/epoxy fiber composite (E = 70/3 GPa, nu = 0.22/0.35) on a hexagonal
periodic cell, for fiber fractions up to 0.7.  For each fraction one ``LinearRVE`` is assembled
and factored once per boundary condition, and the three unit load cases give the periodic
stiffness and its kinematic (upper) and traction (lower) estimates.  The in-plane bulk and
shear moduli are plotted against the Hashin--Shtrikman bounds and Voigt/Reuss.  The script
asserts what must hold: kinematic >= periodic >= traction, all inside Voigt/Reuss, the periodic
moduli inside the HS bounds, and in-plane isotropy to 2e-3.

Part 2 -- the effective diffusivity of an electrolyte-filled porous medium (solid disks cut out
of a square cell, D = 1 in the pores), against porosity eps: D_eff/D = eps/tau defines the
tortuosity tau.  Compared with the Hashin--Shtrikman (Maxwell) upper bound eps/(2 - eps), the
Perrins--McKenzie--McPhedran series for a square array, and the Bruggeman relation eps^2 for
cylinders (eps^1.5 is the spheres' version used in battery models).  Asserted: D_eff within
0.5 % of the square-array series, and below the HS bound up to 0.2 % -- conforming P1 elements
overestimate D_eff by O(h^2) (about 0.1 % at h = a/40), and at low solid fractions the square
array sits within 1e-4 of the bound, so an exact inequality would test the mesh, not the physics.

Run:  python examples/rve_effective_properties.py [--quick] [--out DIR]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from bridge.homogenization import (hashin_shtrikman_conductivity, hashin_shtrikman_plane,
                                   isotropy_error, loewner_min_eig, plane_moduli,
                                   plane_strain_isotropic, reuss_bound, voigt_bound)
from bridge_adapters.dolfinx import require

require()

from bridge_adapters.dolfinx.cells import inclusion_cell  # noqa: E402
from bridge_adapters.dolfinx.rve import LinearRVE  # noqa: E402
from bridge_validation.homogenization_cases import perrins_square_array  # noqa: E402

MATRIX, FIBER = (3.0, 0.35), (70.0, 0.22)


def fiber_composite(fractions, h):
    Cm, Cf = plane_strain_isotropic(*MATRIX), plane_strain_isotropic(*FIBER)
    rows = []
    for f in fractions:
        cell = inclusion_cell(f, h=h)
        rve = LinearRVE(cell.mesh, {"matrix": Cm, "fiber": Cf}, cell_tags=cell.cells,
                        lower=cell.lower, upper=cell.upper)
        f_mesh = 1.0 - _area(cell, "matrix")
        est = {bc: rve.effective(bc).stiffness for bc in ("periodic", "kinematic", "traction")}
        V, R = voigt_bound([1 - f_mesh, f_mesh], [Cm, Cf]), reuss_bound([1 - f_mesh, f_mesh], [Cm, Cf])
        hs = hashin_shtrikman_plane([1 - f_mesh, f_mesh], [plane_moduli(Cm)[0], plane_moduli(Cf)[0]],
                                    [Cm[2, 2], Cf[2, 2]])
        for upper, lower in ((est["kinematic"], est["periodic"]), (est["periodic"], est["traction"]),
                             (V, est["kinematic"]), (est["traction"], R)):
            assert loewner_min_eig(upper, lower) > -1e-10, f"estimate ordering violated at f = {f}"
        k, mu = plane_moduli(est["periodic"])
        assert hs["k_lower"] <= k <= hs["k_upper"] and hs["mu_lower"] <= mu <= hs["mu_upper"], f
        assert isotropy_error(est["periodic"]) < 2e-3, f
        rows.append({"f": f_mesh, **{bc: plane_moduli(C) for bc, C in est.items()},
                     "voigt": plane_moduli(V), "reuss": plane_moduli(R), "hs": hs})
        print(f"f = {f_mesh:.3f}: k = {k:.3f} GPa (HS {hs['k_lower']:.3f}..{hs['k_upper']:.3f}), "
              f"mu = {mu:.3f} GPa (HS {hs['mu_lower']:.3f}..{hs['mu_upper']:.3f})")
    return rows


def _area(cell, phase):
    import dolfinx
    dx = cell.cells.measure("dx")
    return float(dolfinx.fem.assemble_scalar(dolfinx.fem.form(1.0 * dx(cell.cells.id(phase))))) / cell.box_volume


def porous(solid_fractions, h):
    rows = []
    for phi in solid_fractions:
        cell = inclusion_cell(phi, arrangement="square", inclusion="void", h=h)
        rve = LinearRVE(cell.mesh, 1.0, physics="conduction", lower=cell.lower, upper=cell.upper)
        D = rve.effective("periodic").stiffness
        eps = rve.porosity
        d = float(np.mean(np.diag(D)))
        upper = hashin_shtrikman_conductivity([eps, 1 - eps], [1.0, 0.0])[1]
        series = perrins_square_array(1 - eps)
        assert d <= upper * (1.0 + 2e-3), f"D_eff above the HS bound at porosity {eps}"
        assert abs(d - series) <= 5e-3 * series, (d, series)
        rows.append({"eps": eps, "D": d, "tau": eps / d, "hs": upper, "series": series})
        print(f"porosity {eps:.3f}: D_eff/D = {d:.4f}, tortuosity {eps / d:.3f} "
              f"(HS bound {upper:.4f}, square-array series {series:.4f})")
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="three fractions, coarser meshes")
    parser.add_argument("--out", type=Path, default=Path("rve_effective_properties"))
    args = parser.parse_args(argv)
    fractions = [0.2, 0.45, 0.7] if args.quick else list(np.linspace(0.1, 0.7, 7))
    fib = fiber_composite(fractions, h=0.05 if args.quick else 0.025)
    por = porous([0.1, 0.3, 0.5] if args.quick else list(np.linspace(0.05, 0.6, 8)), h=0.025)

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    args.out.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    f = [r["f"] for r in fib]
    for i, (ax, name) in enumerate(zip(axes, ("in-plane bulk modulus k (GPa)", "transverse shear modulus mu (GPa)"))):
        key = ("k", "mu")[i]
        ax.fill_between(f, [r["hs"][f"{key}_lower"] for r in fib], [r["hs"][f"{key}_upper"] for r in fib],
                        color="C3", alpha=0.2, label="Hashin–Shtrikman")
        ax.plot(f, [r["voigt"][i] for r in fib], "k--", lw=1, label="Voigt")
        ax.plot(f, [r["reuss"][i] for r in fib], "k:", lw=1, label="Reuss")
        for bc, style in (("kinematic", "C1^-"), ("periodic", "C2o-"), ("traction", "C0v-")):
            ax.plot(f, [r[bc][i] for r in fib], style, ms=4, label=bc)
        ax.set_xlabel("fiber fraction")
        ax.set_ylabel(name)
        ax.set_yscale("log")
    axes[0].legend(fontsize=7)
    fig.suptitle("glass/epoxy, hexagonal periodic cell")
    fig.tight_layout()
    fig.savefig(args.out / "fiber_composite.png", dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 3.6))
    eps = np.array([r["eps"] for r in por])
    grid = np.linspace(eps.min(), 1.0, 100)
    ax.plot(grid, grid / (2 - grid), "C3-", label="HS upper (Maxwell) ε/(2−ε)")
    ax.plot(grid, grid ** 2, "k:", label="Bruggeman, cylinders ε²")
    ax.plot(grid, grid ** 1.5, "k--", lw=1, label="Bruggeman, spheres ε^1.5")
    ax.plot(eps, [r["series"] for r in por], "C0s", mfc="none", label="square-array series")
    ax.plot(eps, [r["D"] for r in por], "C2o", ms=4, label="periodic RVE (DOLFINx)")
    ax.set_xlabel("porosity ε")
    ax.set_ylabel("D_eff / D")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(args.out / "porous_diffusivity.png", dpi=120)
    plt.close(fig)
    print(f"figures in {args.out}/")


if __name__ == "__main__":
    main()
