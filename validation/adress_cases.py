"""Validation of adaptive resolution on OpenMM (:mod:`bridge.adress`, issue validations 1, 2 and 3).

Lennard-Jones reduced units on OpenMM's (sigma = 1 nm, epsilon = 1 kJ/mol, m = 1 amu).  The
atomistic model is Lennard-Jones cut and shifted at 2.5 sigma, the coarse one WCA (its repulsive
part): at the same density and temperature the coarse liquid's pressure is several times higher,
so without a correction the atomistic region fills up at the expense of the coarse one.

``adress_forces`` (validation 1): 60 particles at random places (no pair closer than 0.9 sigma) in
a 12 x 8 x 8 box (the coarse model here a WCA of sigma 1.8, so that coarse pairs reach into the
hybrid layer; at least 5 such pairs are required) with an atomistic slab (half-width 1.5, hybrid layer 2) and, separately, an
atomistic sphere (radius 2, hybrid 1.5): OpenMM's forces (Reference platform, double precision)
against the brute-force NumPy evaluation of the formulas (:func:`bridge.adress.reference_forces`)
for force interpolation and H-AdResS, the H-AdResS energy too; a pair deep in the atomistic core
feels exactly Lennard-Jones, a pair deep in the coarse region exactly WCA.  Metric: the worst
relative deviation over 1e-10.

``adress_lj_density`` (validation 2): a 24 x 7 x 7 box of 941 particles (rho0 = 0.8, kT = 1.0,
Langevin friction 1/tau), atomistic slab of half-width 3 in the middle, hybrid layers of 3, force
interpolation with the weights refreshed every 5 steps.  The thermodynamic force is iterated
(prefactor 40 for three iterations, then 20; density smoothed over 0.75 sigma; reaching 1.5
sigma beyond the hybrid layers),
each iteration sampling 20 tau (quick: 15), 8 iterations (quick: 7); a final run of 200 tau
(quick: 100), after 10 tau on the last table, measures the density in 1-sigma bins (statistical
error ~0.3-0.4 % per bin, so the largest of 24 noise-only bins is ~1 %; the dips where the models
meet are narrower than a bin).  Check: max |rho / rho0 - 1| <= 2 % (DESIGN.md section 6: the
ESPResSo++ H-AdResS reference profiles deviate +1.9 % / -4.1 % with their correction); measured
0.8-1.4 % (full run 0.99 %).  The check counts only if the uncorrected profile (measured +16 to +17 % in the core,
-9 to -10 % in the coarse region; ESPResSo++ ~13 %) is off by more than 5 % and particles cross
into both the core and the coarse region during the final run.

``adress_lj_sphere`` (validation 2 around a sphere): the same liquid in a 12-sigma cube (1382
particles) with an atomistic sphere of radius 2.5 sigma at its centre and a hybrid shell of 2
sigma (weights every 5 steps).  :class:`~bridge.adress.RadialThermodynamicForce` in 48 shells
out to 6 sigma (half the box), reaching 1.5 sigma beyond the hybrid shell inwards and outwards,
the density smoothed over 0.75 sigma with each shell weighted by its volume; prefactor 40 for
five iterations, 20 for three, then 10; 10 iterations of 15 tau (full 12 of 20), then 150 tau
(full 300) measuring the density in shells 0-2, 2-3, 3-4, 4-5, 5-6 sigma from the centre (the
innermost merged to 2 sigma so that it holds ~27 particles; blocked errors 0.4-0.5 % there,
0.1-0.3 % beyond).  Check: max |rho / rho0 - 1| <= 2 %, counted only if the uncorrected profile
is off by more than 5 % and particles cross both ways.  Measured (``--quick``, about 90 s on 2
cores): uncorrected +19 to +21 % in the core, +15 % at 2-3 sigma, -1 to -2 % outside; after
0.28-0.64 % in five runs.

``adress_tetrahedral`` (validation 3, *heavy*: about 11 CPU minutes on 2 cores with ``--quick``,
30 in full, run by name): Praprotnik's tetrahedral liquid (:func:`tetrahedral_liquid`; rho0 =
0.175 molecules per sigma^3, kT = 1, Langevin 1/tau, dt = 0.01 tau -- kinetic temperature,
potential energy, bond length and g(r) equal those at 0.005 tau within their noise) in a 24 x 8
x 8 box (269 molecules), atomistic slab of half-width 4, hybrid layers of 3.  (1) A fully
atomistic run (200 tau; full 400) gives the centres' g(r), the g(r) seen from the molecules
within 1.5 sigma of the slab's centre (centres, and atoms of different molecules) and S(0) from
the centres' counts in quarter-box slabs (canonical finite-size correction 1/(1 - 1/4)), hence
the prefactor p = kT / (rho0 S(0)) = 1/(rho0^2 kappa_T).  (2) Iterative Boltzmann inversion (5
iterations; full 8) of the centres' g(r) into a tabulated coarse potential of range 2.5 sigma.
(3) AdResS with force interpolation (WCA capped at 0.85 sigma, weights every 5 steps) from the
atomistic configuration; the thermodynamic force (density smoothed over 0.5 sigma, reaching 1.5
sigma beyond the hybrid layers) first takes four full steps (gain p) of 30 tau each, which remove
the ~17 % uncorrected deviation down to the noise of such a segment; then 8 steps of 125 tau
(full 10 of 300) with gains p/k, k = 1, 2, ... (Robbins-Monro: the table becomes the running
mean of the segments' estimates of the table, and its noise that of all these segments together,
where constant gains would keep copying one segment's noise into it).  (4) A run of 2000 tau (full 5000)
measures the density in 1-sigma bins and the core's g(r) (normalised by the density of the slab
they reach, see :func:`tetra_sampler`).  Checks: max |rho/rho0 - 1| <= 2 %, and for both g(r)
the RMS over the bins of the difference from the fully atomistic run divided by its blocked
error <= 2 (1 for pure noise); counted only if the uncorrected profile is off by more than 5 %
and molecules cross both ways.  Measured (2-core CPU): full size (28 minutes) 1.24 % with a
1-sigma bin error of 0.36 % (uncorrected 14-20 %), g(r) RMS z 1.11 (centres) and 1.08 (atoms);
``--quick`` (10-11 minutes) 2.05 % and 2.39 % in two runs with a bin error of 0.57 %, g(r) RMS z
0.9-1.4: at that sampling the table's noise and the measurement's together put the largest of 24
noise-only bins near 2 %, so the quick run cannot decide the 2 % (it fails about half the time)
-- the full size is the decisive run.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from bridge.adress import RadialThermodynamicForce, ThermodynamicForce, count_crossings, lennard_jones, reference_forces, wca
from bridge.validation import Case, Outcome
from bridge.zones import Slab, Sphere

from ._figures import pyplot, save


def _scattered(n: int, box: np.ndarray, seed: int = 0, min_dist: float = 0.95) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x: list[np.ndarray] = []
    while len(x) < n:
        p = rng.random(3) * box
        if all(np.linalg.norm((p - q) - box * np.round((p - q) / box)) > min_dist for q in x):
            x.append(p)
    return np.array(x)


def adress_forces(quick: bool, outdir: Path | None) -> Outcome:
    from bridge_adapters.openmm.adress import AdResSLiquid

    box = np.array([12.0, 8.0, 8.0])
    # a coarse potential of longer range (WCA of sigma 1.8, reaching 2.0) so that coarse pairs
    # occur in the hybrid layer, where the interpolation acts
    at, cg = lennard_jones(1.0, 1.0, 2.5), wca(1.8, 1.0)
    x = _scattered(60, box, min_dist=0.9)
    m, mol = np.ones(len(x)), np.arange(len(x))
    zones = {"slab": Slab(0, 6.0, 1.5, 2.0, period=12.0), "sphere": Sphere([6.0, 4.0, 4.0], 2.0, 1.5, box=box)}
    ratios, details = {}, {}
    for zname, zone in zones.items():
        for scheme in ("force", "hamiltonian"):
            F_ref, E_ref = reference_forces(x, m, mol, zone, at, cg, scheme=scheme, box=box)
            liq = AdResSLiquid(x, box, zone, at, cg, scheme=scheme, platform="Reference")
            err = float(np.abs(liq.forces() - F_ref).max() / np.abs(F_ref).max())
            if E_ref is not None:
                err = max(err, abs(liq.potential_energy() - E_ref) / max(abs(E_ref), 1.0))
            ratios[f"{zname} {scheme} / 1e-10"] = err / 1e-10
            w = zone.weights(x)
            i, j = np.triu_indices(len(x), 1)
            d = x[i] - x[j]
            r = np.linalg.norm(d - box * np.round(d / box), axis=1)
            hyb = int(np.sum((r < cg.cutoff) & (((w[i] > 0) & (w[i] < 1)) | ((w[j] > 0) & (w[j] < 1)))))
            details[f"{zname} coarse pairs touching the hybrid layer"] = hyb
            if hyb < 5:
                ratios[f"{zname} {scheme} / 1e-10"] = float("inf")      # the test would not test the blend
    # pure regions: a pair deep in the core, a pair deep in the coarse region (slab, both schemes)
    zone = zones["slab"]
    pair_core = np.array([[5.6, 4.0, 4.0], [6.7, 4.3, 4.1]])
    pair_cg = np.array([[0.6, 4.0, 4.0], [11.2, 4.2, 3.9]])          # across the periodic boundary
    for label, pair, pot in (("core", pair_core, at), ("coarse", pair_cg, cg)):
        for scheme in ("force", "hamiltonian"):
            liq = AdResSLiquid(pair, box, zone, at, cg, scheme=scheme, platform="Reference")
            d = pair[0] - pair[1]
            d -= box * np.round(d / box)
            r = np.linalg.norm(d)
            exact = pot.force(np.array(r)) * d / r
            ratios[f"pure {label} {scheme} / 1e-10"] = float(np.abs(liq.forces()[0] - exact).max()
                                                             / np.abs(exact).max()) / 1e-10
    return Outcome(metric="worst relative deviation of OpenMM's AdResS forces (and H-AdResS energy) from the NumPy "
                          "formulas, and of pure-region forces from the pure models, over 1e-10",
                   value=max(ratios.values()), reference=0.0, tolerance=1.0, details={**ratios, **details})


LJ_LIQUID = dict(box=(24.0, 7.0, 7.0), rho0=0.8, kT=1.0, centre=12.0, half_width=3.0, hybrid=3.0,
                 prefactor=40.0, smoothing=0.75, overlap=1.5, bins=96, update_every=5)


def lattice_fill(n: int, box: np.ndarray, cells: np.ndarray, seed: int = 0) -> np.ndarray:
    """``(n, 3)`` centres of ``n`` cells drawn at random from a ``cells`` grid over ``box``: a start
    with no overlaps at any density below one particle per cell."""
    g = np.stack(np.meshgrid(*(np.arange(k) for k in cells), indexing="ij"), -1).reshape(-1, 3)
    g = g[np.random.default_rng(seed).permutation(len(g))[:n]]
    return (g + 0.5) * np.asarray(box, float) / np.asarray(cells)


def lj_liquid(seed: int = 0, scheme: str = "force", platform: str = "CPU"):
    """The validation's liquid, minimised, and its zone."""
    import openmm

    from bridge_adapters.openmm.adress import AdResSLiquid

    p = LJ_LIQUID
    L = np.array(p["box"])
    n = int(round(p["rho0"] * L.prod()))
    x = lattice_fill(n, L, np.array([24, 7, 7]), seed)
    zone = Slab(0, p["centre"], p["half_width"], p["hybrid"], period=L[0])
    liq = AdResSLiquid(x, L, zone, lennard_jones(1.0, 1.0, 2.5), wca(1.0, 1.0), scheme=scheme, kT=p["kT"],
                       update_every=p["update_every"], seed=seed + 1, platform=platform)
    openmm.LocalEnergyMinimizer.minimize(liq.context, 10.0, 200)
    liq.refresh_weights()
    return liq, zone


def sample_density(liq, tf, steps: int, every: int = 20) -> tuple[np.ndarray, np.ndarray, dict]:
    """Density profile (number per volume, ``tf``'s bins: slab bins or spherical shells) over
    ``steps``, the per-sample profiles, and the region crossings counted between samples."""
    frames, cross = [], {"into_core": 0, "out_of_core": 0, "into_coarse": 0, "out_of_coarse": 0, "changed": 0}
    prev = liq.zone.region(liq.positions())
    for _ in range(max(1, steps // every)):
        liq.step(every)
        x = liq.positions()
        frames.append(tf.density(x, liq.box))
        now = liq.zone.region(x)
        for k, v in count_crossings(prev, now).items():
            cross[k] += v
        prev = now
    frames = np.array(frames)
    return frames.mean(axis=0), frames, cross


def coarse_bins(rho: np.ndarray, per: int) -> np.ndarray:
    return rho.reshape(-1, per).mean(axis=1)


def iterate_and_measure(liq, tf, rho0: float, n_iter: int, seg: int, final: int, schedule, coarse):
    """The thermodynamic-force iteration, then the measurement: ``n_iter`` segments of ``seg``
    steps, each recording ``coarse(frames) / rho0 - 1`` (``frames``: per-sample densities in
    ``tf``'s bins) and updating ``tf`` with its prefactor times ``schedule(iteration)``; 10 tau
    on the last table; ``final`` steps sampled.  Returns ``(history, (frames, bins) / rho0 of the
    final run, its blocked errors, crossings)``."""
    from bridge.averaging import block_average

    base, history = tf.prefactor, []
    for it in range(n_iter):
        rho, frames, _ = sample_density(liq, tf, seg)
        history.append(coarse(frames).mean(axis=0) / rho0 - 1.0)
        # full steps while the profile is far off, smaller ones once it is close: the later
        # updates mostly carry the sampling noise of their segment into the table
        tf.prefactor = base * schedule(it)
        tf.update(rho, rho0)
        liq.set_thermodynamic_force(tf)
    liq.step(2000)
    _, frames, cross = sample_density(liq, tf, final)
    fr = coarse(frames) / rho0
    err = np.array([block_average(fr[:, k])[1] for k in range(fr.shape[1])])
    return history, fr, err, cross


def flatness(history, fr: np.ndarray, cross: dict) -> tuple[np.ndarray, float, float, bool]:
    """``(deviation per bin, its largest magnitude, the uncorrected profile's largest, meaningful)``
    from :func:`iterate_and_measure`'s output: the check is only meaningful if the two models
    really differ (uncorrected > 5 %) and particles really cross into both regions."""
    dev = fr.mean(axis=0) - 1.0
    uncorrected = float(np.max(np.abs(history[0])))
    meaningful = uncorrected > 0.05 and cross["into_core"] > 0 and cross["into_coarse"] > 0
    return dev, float(np.max(np.abs(dev))), uncorrected, meaningful


def adress_lj_density(quick: bool, outdir: Path | None) -> Outcome:
    return run_adress_lj_density(quick, outdir)[0]


def run_adress_lj_density(quick: bool, outdir: Path | None):
    """``(Outcome, liquid, thermodynamic force)`` of :func:`adress_lj_density`."""
    p = LJ_LIQUID
    liq, zone = lj_liquid()
    liq.step(1000)                                              # 5 tau to melt the lattice
    tf = ThermodynamicForce(zone, p["bins"], p["prefactor"], p["smoothing"], overlap=p["overlap"])
    per = int(round(1.0 / tf.dx))                               # 1-sigma bins
    n_iter, seg, final = (7, 3000, 20000) if quick else (8, 4000, 40000)
    history, fr, err, cross = iterate_and_measure(
        liq, tf, p["rho0"], n_iter, seg, final, lambda it: 1.0 if it < 3 else 0.5,
        lambda frames: frames.reshape(len(frames), -1, per).mean(axis=2))
    dev, worst, uncorrected, meaningful = flatness(history, fr, cross)
    details = {"max |rho/rho0 - 1| after": worst, "profile after (1-sigma bins)": dev.tolist(), "bin error (RMS)": float(np.sqrt(np.mean(err ** 2))),
               "max |rho/rho0 - 1| without correction": uncorrected,
               "without correction, core": float(history[0][int(p["centre"])]),
               "without correction, min": float(np.min(history[0])),
               "iterations": n_iter, "particles": liq.n, "crossings (final run)": cross,
               "update_every": liq.update_every, "scheme": liq.scheme, "platform": liq.platform}
    figs = []
    if outdir is not None:
        figs = density_figure(tf, history, dev, err, zone, outdir)
        tf.save(Path(outdir) / "adress_thermodynamic_force.npz")
    details["uncorrected deviation > 5 % and crossings in both directions"] = meaningful
    return Outcome(metric="max |rho/rho0 - 1| over 1-sigma bins after the thermodynamic-force iteration (1 if the "
                          "uncorrected profile is within 5 % or nothing crossed)",
                   value=worst if meaningful else 1.0, reference=0.0, tolerance=0.02, details=details,
                   figures=figs), liq, tf


def profile_panel(ax, period: float | None, history, dev, err, title: str, *, x: np.ndarray | None = None,
                  xlabel: str = "x / sigma") -> None:
    """The density before (the first iteration's profile) and after, in percent, with error bars;
    at equal bins over ``period``, or at the bin positions ``x`` (the same for both profiles)."""
    xh = (np.arange(len(history[0])) + 0.5) * period / len(history[0]) if x is None else x
    xc = (np.arange(len(dev)) + 0.5) * period / len(dev) if x is None else x
    ax.plot(xh, 100 * history[0], "o-", ms=3, color="tab:red", label="no correction")
    ax.errorbar(xc, 100 * dev, yerr=100 * err, fmt="o-", ms=3, color="tab:blue", capsize=2,
                label=f"after {len(history)} iterations")
    ax.axhspan(-2, 2, color="0.9", zorder=0, label="+-2 %")
    ax.set(xlabel=xlabel, ylabel="rho / rho0 - 1 (%)", title=title)
    ax.legend(fontsize=7)


def weight_force_panel(ax, grid: np.ndarray, w: np.ndarray, force: np.ndarray, xlabel: str, title: str,
                       label: str = "thermodynamic force") -> None:
    """The weight and (on a second axis) the thermodynamic force along ``grid``."""
    ax.plot(grid, w, color="k", label="weight w")
    ax2 = ax.twinx()
    ax2.plot(grid, force, color="tab:green", label=label)
    ax.set(xlabel=xlabel, ylabel="w", title=title)
    ax2.set_ylabel("F_th / (epsilon / sigma)")
    ax.legend(loc="upper left", fontsize=7)
    ax2.legend(loc="upper right", fontsize=7)


def density_figure(tf, history, dev, err, zone, outdir: Path) -> list[str]:
    plt = pyplot()
    fig, ax = plt.subplots(1, 2, figsize=(11, 4.2))
    profile_panel(ax[0], tf.zone.period, history, dev, err, "density across the resolution change")
    pts = np.zeros((len(tf.grid), 3))
    pts[:, zone.axis] = tf.grid
    weight_force_panel(ax[1], tf.grid, zone.weights(pts), tf.force, "x / sigma", "weight and thermodynamic force")
    return save(fig, outdir, "adress_lj_density")


# -- validation 2 with a spherical atomistic region ------------------------------------------------------
LJ_SPHERE = dict(box=12.0, rho0=0.8, kT=1.0, radius=2.5, hybrid=2.0, prefactor=40.0, smoothing=0.75, overlap=1.5,
                 bins=48, shells=(0.0, 2.0, 3.0, 4.0, 5.0, 6.0), update_every=5)


def lj_sphere_liquid(seed: int = 0, platform: str = "CPU"):
    """The Lennard-Jones liquid of :func:`lj_liquid` in a cubic box with an atomistic sphere in
    its middle; minimised."""
    import openmm

    from bridge_adapters.openmm.adress import AdResSLiquid

    p = LJ_SPHERE
    L = np.full(3, p["box"])
    n = int(round(p["rho0"] * L.prod()))
    x = lattice_fill(n, L, np.full(3, 12), seed)
    zone = Sphere(L / 2, p["radius"], p["hybrid"], box=L)
    liq = AdResSLiquid(x, L, zone, lennard_jones(1.0, 1.0, 2.5), wca(1.0, 1.0), scheme="force", kT=p["kT"],
                       update_every=p["update_every"], seed=seed + 1, platform=platform)
    openmm.LocalEnergyMinimizer.minimize(liq.context, 10.0, 200)
    liq.refresh_weights()
    return liq, zone


def shell_density(tf: RadialThermodynamicForce, frames: np.ndarray, edges) -> np.ndarray:
    """``(frames, shells)`` density in the coarse shells ``edges`` (multiples of ``tf.dr``) from the
    per-frame densities in ``tf``'s fine shells: counts summed, over the coarse shells' volumes."""
    k = np.rint(np.asarray(edges) / tf.dr).astype(int)
    counts = np.atleast_2d(frames) * tf.volumes
    return np.stack([counts[:, a:b].sum(axis=1) / tf.volumes[a:b].sum() for a, b in zip(k[:-1], k[1:])], axis=1)


def adress_lj_sphere(quick: bool, outdir: Path | None) -> Outcome:
    """Validation 2 with a spherical atomistic region: the radial thermodynamic force flattens the
    density around an atomistic sphere (:class:`bridge.adress.RadialThermodynamicForce`)."""
    return run_adress_lj_sphere(quick, outdir)[0]


def run_adress_lj_sphere(quick: bool, outdir: Path | None):
    """``(Outcome, liquid, radial thermodynamic force)`` of :func:`adress_lj_sphere`."""
    p = LJ_SPHERE
    liq, zone = lj_sphere_liquid()
    liq.step(1000)                                              # 5 tau to melt the lattice
    tf = RadialThermodynamicForce(zone, p["bins"], p["prefactor"], p["smoothing"], overlap=p["overlap"])
    n_iter, seg, final = (10, 3000, 30000) if quick else (12, 4000, 60000)
    history, fr, err, cross = iterate_and_measure(
        liq, tf, p["rho0"], n_iter, seg, final, lambda it: 1.0 if it < 5 else 0.5 if it < 8 else 0.25,
        lambda frames: shell_density(tf, frames, p["shells"]))
    dev, worst, uncorrected, meaningful = flatness(history, fr, cross)
    details = {"max |rho/rho0 - 1| after": worst, "shells (sigma)": list(p["shells"]),
               "profile after (shells)": dev.tolist(), "shell errors": err.tolist(),
               "max |rho/rho0 - 1| without correction": uncorrected, "profile without correction": history[0].tolist(),
               "max |rho/rho0 - 1| per iteration": [float(np.max(np.abs(h))) for h in history],
               "iterations": n_iter, "particles": liq.n, "crossings (final run)": cross,
               "update_every": liq.update_every, "scheme": liq.scheme, "platform": liq.platform,
               "uncorrected deviation > 5 % and crossings in both directions": meaningful}
    figs = []
    if outdir is not None:
        figs = sphere_figure(tf, history, dev, err, outdir)
        tf.save(Path(outdir) / "adress_sphere_thermodynamic_force.npz")
    return Outcome(metric="max |rho/rho0 - 1| over spherical shells (0-2, 2-3, ..., 5-6 sigma from the centre) after "
                          "the radial thermodynamic-force iteration (1 if the uncorrected profile is within 5 % or "
                          "nothing crossed)",
                   value=worst if meaningful else 1.0, reference=0.0, tolerance=0.02, details=details,
                   figures=figs), liq, tf


def sphere_figure(tf: RadialThermodynamicForce, history, dev, err, outdir: Path) -> list[str]:
    plt = pyplot()
    e = np.asarray(LJ_SPHERE["shells"])
    fig, ax = plt.subplots(1, 2, figsize=(11, 4.2))
    profile_panel(ax[0], None, history, dev, err, "density around an atomistic sphere", x=0.5 * (e[1:] + e[:-1]),
                  xlabel="r / sigma (distance from the sphere's centre)")
    z = tf.zone
    weight_force_panel(ax[1], tf.grid, z.switch(tf.grid - z.radius), tf.force, "r / sigma",
                       "weight and radial thermodynamic force", label="thermodynamic force (radial)")
    return save(fig, outdir, "adress_lj_sphere")


# -- validation 3: the tetrahedral liquid ------------------------------------------------------------
TETRA = dict(box=(24.0, 8.0, 8.0), rho0=0.175, kT=1.0, gamma=1.0, dt=0.01, bond=0.97, fene_k=30.0, fene_r0=1.5,
             cap=0.85, centre=12.0, half_width=4.0, hybrid=3.0, band=1.5, cg_cutoff=2.5, rdf_max=3.0, rdf_bins=30,
             smoothing=0.5, overlap=1.5, bins=96, update_every=5)
# quick / full: lengths (tau) of the atomistic reference, of each full-gain and each running-mean
# iteration and of the measurement; numbers of IBI, full-gain and running-mean iterations
TETRA_RUNS = {True: dict(reference_tau=200, full_tau=30, mean_tau=125, final_tau=2000, n_ibi=5, n_full=4, n_mean=8),
              False: dict(reference_tau=400, full_tau=30, mean_tau=300, final_tau=5000, n_ibi=8, n_full=4, n_mean=10)}


def tetrahedral_liquid(box=None, rho0: float | None = None, seed: int = 0):
    """Praprotnik, Delle Site and Kremer's tetrahedral liquid (J. Chem. Phys. 123, 224106 (2005);
    Phys. Rev. E 73, 066701 (2006)): four atoms of equal mass per molecule, WCA (sigma = epsilon =
    1) between all atoms, FENE bonds (k = 30, R0 = 1.5) between all atoms of a molecule.  Returns
    ``(positions (4n, 3), masses (4n,), molecule (4n,), bonded forces)``; molecules placed at
    random on a lattice of cells, all in the same orientation (then no two atoms of different
    molecules start closer than the WCA range: the edges point along face diagonals of the cells),
    which the thermostat randomises within a few tau."""
    import openmm

    p = TETRA
    L = np.array(p["box"] if box is None else box, float)
    rho = p["rho0"] if rho0 is None else rho0
    n = int(round(rho * L.prod()))
    cells = np.maximum(1, np.ceil(L / (L.prod() / n) ** (1 / 3))).astype(int)
    while np.prod(cells) < n:
        cells[np.argmax(L / cells)] += 1
    centres = lattice_fill(n, L, cells, seed)
    tet = np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]], float) * p["bond"] / (2 * np.sqrt(2))
    x = (centres[:, None, :] + tet[None]).reshape(-1, 3)
    k, r0 = p["fene_k"], p["fene_r0"]
    bonds = openmm.CustomBondForce(f"-0.5*{k!r}*{r0!r}^2*log(1 - (r/{r0!r})^2)"
                                   f" + step(2^(1/6) - r)*(4*((1/r)^12 - (1/r)^6) + 1)")
    for m in range(n):
        for i in range(4):
            for j in range(i + 1, 4):
                bonds.addBond(4 * m + i, 4 * m + j)
    return x, np.ones(4 * n), np.repeat(np.arange(n), 4), [bonds]


def tetra_sampler(liq, zone, bins: int, steps: int, every: int, rdf_every: int):
    """Run ``steps``; every ``every`` steps the centres' density profile along x (counts in
    ``bins`` bins) and the region crossings, every ``rdf_every`` steps the centre-of-mass g(r) and
    the intermolecular atom g(r) seen from the molecules within ``TETRA["band"]`` of the zone's
    centre (the core's middle, at least ``half_width - band`` from the hybrid layer), and the
    centre-of-mass g(r) of all molecules (the coarse model's target).  The core's g(r) are
    normalised by the density of the slab their shells reach (``|x - centre| < band + rdf_max``,
    each frame), not by the box's: they compare structure, which the density check does not, and
    a core denser or thinner by a percent (within the density tolerance) would otherwise scale
    them by as much, many error bars over a long run.  Returns a dict of arrays."""
    from bridge.adress import radial_distribution

    p = TETRA
    L = liq.box
    dx = L[0] / bins
    out = {"profile": [], "g_com": [], "g_atom": [], "g_all": [], "local": []}
    cross = {"into_core": 0, "out_of_core": 0, "into_coarse": 0, "out_of_coarse": 0, "changed": 0}
    prev = zone.region(liq.centres())
    r = None
    for k in range(max(1, steps // every)):
        liq.step(every)
        c = liq.centres()
        out["profile"].append(np.bincount(np.minimum((c[:, 0] / dx).astype(int), bins - 1), minlength=bins))
        now = zone.region(c)
        for key, v in count_crossings(prev, now).items():
            cross[key] += v
        prev = now
        if ((k + 1) * every) % rdf_every == 0:
            d = np.abs(c[:, 0] - zone.centre)
            d = np.minimum(d, L[0] - d)
            ref = d < p["band"]
            reach = min(p["band"] + p["rdf_max"], 0.5 * L[0])
            local = np.sum(d < reach) / (2 * reach * L[1] * L[2]) / (len(c) / L.prod())
            r, g = radial_distribution(c, L, p["rdf_max"], p["rdf_bins"], reference=ref)
            out["g_com"].append(g / local)
            out["local"].append(local)
            out["g_all"].append(radial_distribution(c, L, p["rdf_max"], p["rdf_bins"])[1])
            if hasattr(liq, "molecule") and len(liq.molecule) > len(c):
                out["g_atom"].append(radial_distribution(liq.positions(), L, p["rdf_max"], p["rdf_bins"],
                                                         reference=ref[liq.molecule], group=liq.molecule)[1] / local)
    res = {k: np.array(v, float) for k, v in out.items()}
    res["r"], res["crossings"], res["dx"] = r, cross, dx
    return res


def _rdf_z(a: np.ndarray, b: np.ndarray, floor: float = 0.05) -> tuple[float, float, np.ndarray, np.ndarray]:
    """Two g(r) series ``(frames, bins)``: RMS over the bins (where the reference exceeds ``floor``)
    of the difference over its blocked error, the largest difference, and the two errors."""
    from bridge.averaging import block_average

    ea = np.array([block_average(a[:, k])[1] for k in range(a.shape[1])])
    eb = np.array([block_average(b[:, k])[1] for k in range(b.shape[1])])
    d = a.mean(0) - b.mean(0)
    use = b.mean(0) > floor
    z = d[use] / np.sqrt(ea[use] ** 2 + eb[use] ** 2)
    return float(np.sqrt(np.mean(z ** 2))), float(np.abs(d[use]).max()), ea, eb


def adress_tetrahedral(quick: bool, outdir: Path | None) -> Outcome:
    return run_adress_tetrahedral(quick, outdir)[0]


def run_adress_tetrahedral(quick: bool, outdir: Path | None):
    """``(Outcome, liquid, thermodynamic force, coarse potential)`` of validation 3 (the module's
    docstring describes it)."""
    import openmm

    from bridge.adress import capped, ibi_initial, ibi_update, radial_distribution, wca
    from bridge.averaging import block_average
    from bridge.log import progress
    from bridge_adapters.openmm.adress import AdResSMolecules, MolecularLiquid

    p, q = TETRA, TETRA_RUNS[bool(quick)]
    L = np.array(p["box"])
    steps = {k[:-4]: int(round(v / p["dt"])) for k, v in q.items() if k.endswith("_tau")}     # tau -> steps
    every, rdf_every = int(round(0.2 / p["dt"])), int(round(1.0 / p["dt"]))     # 0.2 tau, 1 tau
    x, m, mol, bonded = tetrahedral_liquid(L)
    zone = Slab(0, p["centre"], p["half_width"], p["hybrid"], period=L[0])
    kT, rho0, dt = p["kT"], p["rho0"], p["dt"]
    # 1. the fully atomistic reference: structure, and the compressibility for the prefactor
    full = MolecularLiquid(x, m, mol, L, wca(1.0, 1.0), bonded=bonded, kT=kT, gamma=p["gamma"], dt=dt, seed=1)
    openmm.LocalEnergyMinimizer.minimize(full.context, 10.0, 200)
    full.step(int(round(20 / dt)))                               # 20 tau from the aligned lattice
    A = tetra_sampler(full, zone, 24, steps["reference"], every, rdf_every)
    slabs = A["profile"].reshape(len(A["profile"]), 4, -1).sum(2)      # quarter-box slabs
    S0 = float(slabs.var(0).mean() / slabs.mean() / (1 - 0.25))        # canonical finite-size correction
    prefactor = kT / (rho0 * S0)                                         # 1 / (rho0^2 kappa_T)
    # 2. the coarse model: iterative Boltzmann inversion of the centres' g(r)
    r, g_target = A["r"], A["g_all"].mean(0)
    cg = ibi_initial(r, g_target, kT, p["cg_cutoff"])
    beads = full.centres()
    ibi_dev = []
    n_ibi = q["n_ibi"]
    for it in progress(range(n_ibi), desc="IBI", total=n_ibi):
        cgl = MolecularLiquid(beads, np.full(len(beads), 4.0), np.arange(len(beads)), L, cg, kT=kT, dt=dt,
                              seed=10 + it)
        cgl.step(int(round(5 / dt)))
        gs = []
        for _ in range(60):
            cgl.step(rdf_every // 2)
            gs.append(radial_distribution(cgl.centres(), L, p["rdf_max"], p["rdf_bins"])[1])
        g_cg = np.mean(gs, 0)
        inside = r < p["cg_cutoff"]
        ibi_dev.append(float(np.abs(g_cg - g_target)[inside].max()))
        if it < n_ibi - 1:
            cg = ibi_update(cg, r, g_cg, g_target, kT)
    # 3. adaptive resolution from the atomistic configuration; thermodynamic-force iteration
    liq = AdResSMolecules(full.positions(), m, mol, L, zone, capped(wca(1.0, 1.0), p["cap"]), cg, bonded=bonded,
                          kT=kT, gamma=p["gamma"], dt=dt, update_every=p["update_every"], seed=2)
    liq.step(int(round(10 / dt)))
    tf = ThermodynamicForce(zone, p["bins"], prefactor, p["smoothing"], overlap=p["overlap"])
    per = int(round(1.0 / tf.dx))
    area = L[1] * L[2]
    history = []
    # Full linear-response steps remove the large uncorrected deviation; after them each update
    # would mostly copy its segment's sampling noise into the table, so the gains go as 1/k over
    # longer segments: the table becomes the running mean of the segments' estimates of it (the
    # table before a segment plus that segment's correction; Robbins-Monro), its noise that of
    # all these segments together.
    plan = [(steps["full"], 1.0)] * q["n_full"] + [(steps["mean"], 1.0 / k) for k in range(1, q["n_mean"] + 1)]
    for seg, gain in progress(plan, desc="thermodynamic force", total=len(plan)):
        S = tetra_sampler(liq, zone, p["bins"], seg, every, 10 ** 9)
        rho = S["profile"].mean(0) / (area * tf.dx)
        history.append(coarse_bins(rho, per) / rho0 - 1.0)
        tf.prefactor = prefactor * gain
        tf.update(rho, rho0)
        liq.set_thermodynamic_force(tf)
    tf.prefactor = prefactor
    liq.step(int(round(10 / dt)))
    F = tetra_sampler(liq, zone, int(round(L[0])), steps["final"], every, rdf_every)
    frames = F["profile"] / (area * F["dx"]) / rho0
    err = np.array([block_average(frames[:, k])[1] for k in range(frames.shape[1])])
    z_com, d_com, e_com, e_com_ref = _rdf_z(F["g_com"], A["g_com"])
    z_atom, d_atom, e_atom, e_atom_ref = _rdf_z(F["g_atom"], A["g_atom"])
    cross = F["crossings"]
    dev, worst, uncorrected, meaningful = flatness(history, frames, cross)
    value = max(worst / 0.02, z_com / 2.0, z_atom / 2.0) if meaningful else float("inf")
    details = {"max |rho/rho0 - 1| after (1-sigma bins)": worst, "bin error (RMS)": float(np.sqrt(np.mean(err ** 2))),
               "profile after": dev.tolist(), "max |rho/rho0 - 1| without correction": uncorrected,
               "profile without correction": history[0].tolist(),
               "g_com: RMS z of AdResS core - atomistic": z_com, "g_com: max |difference|": d_com,
               "g_atom: RMS z of AdResS core - atomistic": z_atom, "g_atom: max |difference|": d_atom,
               "density of the slab the core's g(r) reach / rho0 (the g(r)'s normalisation)": float(F["local"].mean()),
               "IBI max |g_CG - g_target| per iteration (r < cutoff)": ibi_dev,
               "prefactor kT/(rho0 S(0))": prefactor, "S(0) from quarter-box slabs": S0,
               "molecules": len(liq.molecules), "atoms": liq.n, "box": L.tolist(),
               "iterations": len(plan), "iterations (tau, gain)": [(round(n_ * dt, 6), g_) for n_, g_ in plan],
               "final tau": steps["final"] * dt, "crossings (final run)": cross,
               "uncorrected deviation > 5 % and crossings in both directions": meaningful, "platform": liq.platform}
    figs = []
    if outdir is not None:
        figs = tetra_figures(tf, history, dev, err, zone, r, A, F, g_target, outdir)
        tf.save(Path(outdir) / "adress_tetrahedral_thermodynamic_force.npz")
    return Outcome(metric="max(max |rho/rho0 - 1| over 1-sigma bins / 2 %, RMS z of the core's centre and atom g(r) "
                          "against the fully atomistic run / 2)", value=value, reference=0.0, tolerance=1.0,
                   details=details, figures=figs), liq, tf, cg


def tetra_figures(tf, history, dev, err, zone, r, A, F, g_target, outdir: Path) -> list[str]:
    plt = pyplot()
    fig, ax = plt.subplots(1, 3, figsize=(15, 4.2))
    profile_panel(ax[0], tf.zone.period, history, dev, err, "molecule density across the resolution change")
    pts = np.zeros((len(tf.grid), 3))
    pts[:, zone.axis] = tf.grid
    ax2 = ax[0].twinx()
    ax2.plot(tf.grid, tf.force, color="tab:green", lw=1, label="F_th")
    ax2.plot(tf.grid, zone.weights(pts) * np.abs(tf.force).max(), color="k", lw=0.8, ls=":", label="w (scaled)")
    ax2.legend(loc="lower right", fontsize=7)
    for k, (key, title) in enumerate((("g_com", "centres of mass"), ("g_atom", "atoms of different molecules"))):
        a, b = F[key], A[key]
        ax[k + 1].errorbar(r, b.mean(0), yerr=b.std(0) / np.sqrt(len(b)), color="k", label="fully atomistic")
        ax[k + 1].plot(r, a.mean(0), "o", ms=3, color="tab:blue", label="AdResS, atomistic core")
        if key == "g_com":
            ax[k + 1].plot(r, g_target, color="0.6", lw=0.8, ls="--", label="whole box (IBI target)")
        ax[k + 1].set(xlabel="r / sigma", ylabel="g(r)", title=f"g(r) in the core: {title}")
        ax[k + 1].legend(fontsize=7)
    return save(fig, outdir, "adress_tetrahedral")


CASES = [
    Case("adress_forces", 1, "AdResS on OpenMM: force interpolation and H-AdResS forces (slab and sphere zones) "
         "equal the NumPy formulas to round-off; pure regions feel the pure models.", adress_forces,
         engines=("openmm",)),
    Case("adress_lj_density", 2, "AdResS Lennard-Jones liquid (LJ atomistic, WCA coarse): density flat within 2 % "
         "after the thermodynamic-force iteration.", adress_lj_density, engines=("openmm",)),
    Case("adress_lj_sphere", 2, "AdResS Lennard-Jones liquid around an atomistic sphere: density flat within 2 % "
         "after the radial thermodynamic-force iteration.", adress_lj_sphere, engines=("openmm",)),
    Case("adress_tetrahedral", 3, "AdResS tetrahedral liquid (four-atom molecules, IBI coarse model, force "
         "interpolation): density flat within 2 % and the core's g(r) equal to the fully atomistic run's.",
         adress_tetrahedral, engines=("openmm",), heavy=True),
]
