"""A displacement cascade in EAM iron (OpenMM), its surviving defects, and their annealing in KMC.

A primary knock-on atom in a periodic BCC Fe crystal at 100 K (Ackland 2004 / Mendelev EAM with the
Biersack–Ziegler wall, as OpenMM custom forces; a thermostatted border layer; a variable time
step for the ballistic phase) is run to the end of its cool-down.  Wigner–Seitz analysis gives
the defects at the cascade's peak and the few that survive; only the survivors are clustered and
handed to the object KMC, which anneals them isochronally (300 s per 10 K step).

Output (``--out``): ``cascade_kmc.png`` (defects at the peak and after cool-down; Frenkel pairs and
interior temperature over time with NRT and arc-dpa; the KMC annealing curve), ``Fe.eam.alloy``
(the table OpenMM used).  Asserted: the survivors are at most the peak count and at most NRT,
and the V - I balance holds through the KMC.

Run:  python examples/cascade_kmc.py [--quick] [--out DIR]     (--quick: 300 eV in 8^3 cells)
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from bridge.defects import arc_dpa, kmc_objects, nrt_dpa
from bridge.eam import mendelev_fe, read_setfl, write_setfl
from bridge_adapters.kmc import ObjectKMC
from bridge_adapters.openmm.cascade import Cascade
from bridge_validation._figures import pyplot, save


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="300 eV in 8^3 cells instead of 1 keV in 14^3")
    parser.add_argument("--out", type=Path, default=Path("cascade_kmc"))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    f = mendelev_fe()
    tables = read_setfl(write_setfl(args.out / "Fe.eam.alloy", f))
    a = f.lattice_constant / 10.0
    energy, cells = (300.0, 8) if args.quick else (1000.0, 14)
    cascade = Cascade(tables, a, cells, pka_energy=energy, temperature=100.0, seed=3)
    print(f"{cascade.n} atoms on {cascade.platform}; PKA {energy:g} eV")
    res = cascade.run(t_max=4.0 if args.quick else 10.0, progress=not args.quick)
    nrt, arc = nrt_dpa(energy), arc_dpa(energy)
    print(f"peak {res.max_defects} Frenkel pairs at {res.peak_time:.2f} ps; {res.frenkel_pairs} survive "
          f"(NRT {nrt:.1f}, arc-dpa {arc:.1f}); settled: {res.settled}")

    P, S = kmc_objects(res.vacancies, res.interstitials, res.box, cutoff=1.1 * a)
    kmc = ObjectKMC(res.box, P, S, seed=1)
    temps = np.arange(60.0, 400.0 + 1.0, 10.0)
    rec = kmc.anneal([(T, 300.0) for T in temps])
    kmc.balance()

    plt = pyplot()
    fig = plt.figure(figsize=(15, 4.2))
    for j, (V, I, title) in enumerate(((res.peak_vacancies, res.peak_interstitials, f"peak, {res.peak_time:.2f} ps"),
                                       (res.vacancies, res.interstitials, "after cool-down"))):
        ax = fig.add_subplot(1, 3, j + 1, projection="3d")
        ax.scatter(*V.T, c="tab:blue", s=12, label=f"{len(V)} vacancies", depthshade=False)
        ax.scatter(*I.T, c="tab:red", s=12, label=f"{len(I)} interstitials", depthshade=False)
        ax.set_xlim(0, res.box[0])
        ax.set_ylim(0, res.box[1])
        ax.set_zlim(0, res.box[2])
        ax.set_title(f"{energy:g} eV cascade: {title}", fontsize=9)
        ax.legend(fontsize=7)
    ax = fig.add_subplot(1, 3, 3)
    ax.plot(res.time, res.defects, "o-", ms=3, label="Frenkel pairs (Wigner–Seitz)")
    ax.axhline(nrt, color="k", ls="--", lw=0.8, label="NRT")
    ax.axhline(arc, color="k", ls=":", lw=0.8, label="arc-dpa")
    ax.set_xlabel("time (ps)")
    ax.set_ylabel("Frenkel pairs")
    ax2 = ax.twinx()
    ax2.plot(res.time, res.temperature, color="tab:orange", lw=1, label="interior T")
    ax2.set_ylabel("interior temperature (K)")
    inset = ax.inset_axes([0.55, 0.45, 0.42, 0.35])
    inset.plot(temps, rec["vacancies"], "s-", ms=2)
    inset.set_xlabel("KMC anneal T (K)", fontsize=6)
    inset.set_ylabel("pairs left", fontsize=6)
    inset.tick_params(labelsize=6)
    ax.legend(fontsize=7, loc="upper left")
    save(fig, args.out, "cascade_kmc")

    assert res.frenkel_pairs <= res.max_defects and res.frenkel_pairs <= nrt + 1e-9, (res.frenkel_pairs, nrt)
    print(f"KMC: {int(rec['vacancies'][-1])} Frenkel pairs left after annealing to 400 K; wrote {args.out}")


if __name__ == "__main__":
    main()
