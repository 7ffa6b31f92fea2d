"""Hand-off from a damaged BCC iron crystal to object KMC, then isochronal annealing.

The atomistic snapshot is a BCC Fe crystal in which random atoms were knocked to random places
(the stand-in for the end of a cascade's cool-down).  Wigner–Seitz analysis against the perfect
lattice finds the vacancies and interstitials, like defects up to the second-neighbour
distance are clustered, and only those objects go to the KMC (vacancy 0.67 eV, interstitial
0.34 eV, di-interstitial 0.42 eV).  The KMC then anneals them isochronally (300 s per step) from
60 K to 400 K: interstitials recover in stage I, vacancies in stage III, at the temperatures
their migration energies predict (dotted lines).

Output (``--out``): ``kmc_annealing.png`` (defects at the hand-off and after annealing; recovery
curves with the predicted stages) and ``anneal.json`` (the curve).  Asserted: V - I balance exact
throughout, both stages within 10 % of the prediction.

Run:  python examples/kmc_annealing.py [--quick] [--out DIR]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from bridge.defects import kmc_objects
from bridge.fileio import write_json
from bridge_adapters.kmc import ObjectKMC
from bridge_validation._figures import pyplot, save
from bridge_validation.kmc_cases import A_FE, E_I, E_V, damaged_crystal, predicted_stage, stage_temperature


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller crystal and 10 K steps")
    parser.add_argument("--out", type=Path, default=Path("kmc_annealing"))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    cells, displaced, step = (32, 300, 10.0) if args.quick else (60, 2000, 5.0)
    d = damaged_crystal(cells, displaced, seed=21)
    P, S = kmc_objects(d["vacancies"], d["interstitials"], d["box"], cutoff=1.1 * A_FE)
    print(f"{len(d['sites'])} sites: {len(d['vacancies'])} vacancies and {len(d['interstitials'])} interstitials "
          f"-> {len(S)} KMC objects (largest cluster {np.abs(S).max()})")
    k = ObjectKMC(d["box"], P, S, seed=5)
    start = k.counts()
    P0, S0 = k.objects()
    temps = np.arange(60.0, 400.0 + 0.5 * step, step)
    rec = k.anneal([(T, 300.0) for T in temps], progress=True)
    P1, S1 = k.objects()
    k.balance()

    box = float(d["box"][0])
    T_I_pred = predicted_stage(E_I, 300.0, start["vacancies"] / box ** 3)
    remaining = rec["vacancies"][np.searchsorted(temps, 1.5 * T_I_pred)]
    T_V_pred = predicted_stage(E_V, 300.0, remaining / box ** 3)
    T_I = stage_temperature(temps, rec["interstitials"], 0.5 * T_I_pred, 1.5 * T_I_pred)
    T_V = stage_temperature(temps, rec["vacancies"], 1.5 * T_I_pred, temps[-1])
    print(f"stage I: {T_I:.0f} K (predicted {T_I_pred:.0f} K); stage III: {T_V:.0f} K (predicted {T_V_pred:.0f} K); "
          f"{int(rec['events'][-1])} events")

    plt = pyplot()
    fig = plt.figure(figsize=(14, 4.2))
    for j, (PP, SS, title) in enumerate(((P0, S0, "at the hand-off (close pairs recombined)"), (P1, S1, "after annealing to 400 K"))):
        ax = fig.add_subplot(1, 3, j + 1, projection="3d")
        for sign, color, label in ((1, "tab:blue", "vacancy clusters"), (-1, "tab:red", "interstitial clusters")):
            m = np.sign(SS) == sign
            ax.scatter(*PP[m].T, s=6 + 6 * np.abs(SS[m]), c=color, label=label, depthshade=False)
        ax.set_title(f"{title}: {len(SS)} objects", fontsize=9)
        ax.set_xlabel("x (nm)")
        ax.legend(fontsize=7, loc="upper left")
    ax = fig.add_subplot(1, 3, 3)
    n0 = start["vacancies"]
    ax.plot(temps, rec["vacancies"] / n0, "o-", ms=3, label="Frenkel pairs left (V = I: closed box)")
    ax.plot(temps, rec["objects"] / rec["objects"][0], "s-", ms=3, label="objects (clusters count once)")
    for T_pred, name in ((T_I_pred, "I"), (T_V_pred, "III")):
        ax.axvline(T_pred, color="k", ls=":", lw=0.8)
        ax.text(T_pred, 1.02, f"stage {name}", fontsize=7, ha="center")
    ax.set_xlabel("annealing temperature (K), 300 s per step")
    ax.set_ylabel("fraction of the value at the hand-off")
    ax.legend(fontsize=8)
    save(fig, args.out, "kmc_annealing")
    write_json(args.out / "anneal.json", {k2: np.asarray(v).tolist() for k2, v in rec.items()})

    assert abs(T_I - T_I_pred) <= 0.10 * T_I_pred, (T_I, T_I_pred)
    assert abs(T_V - T_V_pred) <= 0.10 * T_V_pred, (T_V, T_V_pred)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
