"""Momentum handed from the bridge to OpenMM, balanced to round-off, with a restart in the middle.

A literate example of the coupling core's pieces working on a real engine:

- an OpenMM Lennard-Jones argon cluster (NVE, Reference platform);
- a :class:`bridge.scheduler.Scheduler` of coupling windows of ``W = n_sub * dt``;
- every window the bridge computes a force on a subset of atoms (a pull that varies in time)
  and hands it to OpenMM as held external forces (``ExternalForce.set_forces``);
- a :class:`bridge.ledger.Ledger` records the impulse sent (``F * W``) and the change of the
  cluster's total momentum.

Newton's third law makes the internal forces cancel, so the momentum the atoms gain in a window
is exactly the impulse handed over: with OpenMM's leapfrog Verlet ``p(t + W) - p(t) = F W`` in
exact arithmetic.  The ledger must close to round-off: the total momentum is a sum of ~100
atomic momenta of magnitude ~10 amu nm/ps that nearly cancel, so its round-off is
~1e-16 * sum_i |p_i| per operation, accumulated over the steps of a window; the check allows
1e-12 * sum_i |p_i| (about 1e-9 amu nm/ps here, against impulses of order 1).  Halfway, the run is
checkpointed with :func:`bridge.checkpoint.save_run`, continued, then restored and continued
again: the two continuations must be bit-identical.

Run:  python examples/momentum_ledger.py [--quick] [--out DIR]
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from bridge import checkpoint, lattice
from bridge.ledger import Ledger
from bridge.scheduler import Participant, Scheduler
from bridge_adapters.openmm import OpenMMEngine, lennard_jones_system

SIGMA, EPS, MASS = 0.3405, 0.99774, 39.948   # argon: nm, kJ/mol, amu
DT = 0.002                                    # ps


def build(seed: int = 1) -> OpenMMEngine:
    pos, _ = lattice.fcc(1.56 * SIGMA, (3, 3, 3))
    system = lennard_jones_system(len(pos), SIGMA, EPS, MASS, cutoff=1.0, switch_distance=0.85)
    eng = OpenMMEngine(system, pos, timestep=DT, platform="Reference")
    eng.set_velocities_to_temperature(30.0, seed=seed)
    return eng


def total_momentum(eng: OpenMMEngine) -> np.ndarray:
    """(3,) amu nm/ps."""
    return eng.masses @ eng.get_velocities()


def run(n_windows: int, n_sub: int, outdir: Path | None) -> dict:
    eng = build()
    subset = np.arange(10)
    pull = eng.add_external_force(subset)
    ledger = Ledger()
    window = n_sub * DT
    history = {"t": [], "p": [], "impulse": []}
    p_start = total_momentum(eng)

    def exchange(k: int, t: float) -> None:
        x = eng.get_positions()[subset]
        f = np.zeros((len(subset), 3))
        f[:, 0] = 5.0 * np.sin(2 * np.pi * t / (20 * window))      # kJ/(mol nm), a slow oscillating pull
        pull.set_forces(f, reference=x)
        history["p_before"] = total_momentum(eng)
        history["f"] = f.sum(axis=0)

    def after(k: int, t: float) -> None:
        dp = total_momentum(eng) - history["p_before"]
        impulse = history["f"] * window                              # amu nm/ps
        ledger.transfer(k, "bridge->md", "momentum_x", sent=impulse[0], received=dp[0])
        history["t"].append(t)
        history["p"].append(total_momentum(eng) - p_start)
        history["impulse"].append(impulse)

    sched = Scheduler(window, [Participant("md", lambda dt: eng.step(round(dt / DT)), substeps=n_sub)],
                      exchange=exchange, after=after)
    half = n_windows // 2
    sched.run(half)
    with tempfile.TemporaryDirectory() as tmp:
        ck = checkpoint.save_run(Path(tmp) / "half.h5", engines={"md": eng}, scheduler=sched, ledger=ledger)
        sched.run(n_windows - half)
        x_first = eng.get_positions()
        restored = checkpoint.restore_run(ck, engines={"md": eng}, scheduler=sched)
    ledger_after = ledger
    ledger = restored["ledger"]
    history = {k: v[:half] if isinstance(v, list) else v for k, v in history.items()}
    sched.run(n_windows - half)
    x_second = eng.get_positions()

    p_abs = float(np.sum(np.abs(eng.masses[:, None] * eng.get_velocities())))
    ledger.check(rtol=0.0, atol=1e-12 * p_abs)
    result = {
        "windows": n_windows,
        "max_interface_imbalance": ledger.interface_imbalance("momentum_x"),
        "largest_impulse": ledger.scale("momentum_x"),
        "sum_abs_atomic_momenta": p_abs,
        "restart_bit_identical": bool(np.array_equal(x_first, x_second)),
        "ledgers_identical": ledger.to_json() == ledger_after.to_json(),
    }
    if outdir is not None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        t = np.array(history["t"])
        p = np.array(history["p"])[:, 0]
        cum = np.cumsum(np.array(history["impulse"])[:, 0])
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(8, 3.2))
        a1.plot(t, p, "k-", label="cluster momentum change")
        a1.plot(t, cum, "r--", label="impulse handed over")
        a1.set_xlabel("t (ps)")
        a1.set_ylabel("p_x (amu nm/ps)")
        a1.legend(fontsize=8)
        imb = [abs(tr.imbalance) for tr in ledger.transfers]
        a2.semilogy(range(len(imb)), np.maximum(imb, 1e-300), "o", ms=3)
        a2.set_xlabel("window")
        a2.set_ylabel("|sent - received|")
        a2.set_title("momentum ledger")
        outdir.mkdir(parents=True, exist_ok=True)
        fig.tight_layout()
        fig.savefig(outdir / "momentum_ledger.png", dpi=110)
        plt.close(fig)
    return result


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a short run for CI")
    ap.add_argument("--out", type=Path, default=None, help="folder for the figure")
    args = ap.parse_args(argv)
    res = run(n_windows=10 if args.quick else 100, n_sub=10, outdir=args.out)
    for k, v in res.items():
        print(f"{k}: {v}")
    assert res["max_interface_imbalance"] < 1e-12 * res["sum_abs_atomic_momenta"], "momentum ledger does not close"
    assert res["restart_bit_identical"], "restart did not reproduce the trajectory"
    assert res["ledgers_identical"], "restart did not reproduce the ledger"
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
