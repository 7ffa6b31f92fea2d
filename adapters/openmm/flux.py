r"""A Lennard-Jones fluid slab in OpenMM for particle–continuum flux coupling (:mod:`bridge.flux`).

:class:`LJSlab` holds ``N`` Lennard-Jones particles in ``[0, h]`` along ``z`` (periodic in ``x``
and ``y``) between two purely repulsive 9-3 walls -- the boundary force that keeps the particles
in -- and drives them through coupling windows:

- OpenMM steps the particles with its ``VerletIntegrator`` in chunks of ``chunk`` steps; nothing
  per-atom runs in Python inside a step;
- after every chunk one ``getState`` reads positions and velocities (vectorised NumPy from here):
  the per-cell ``x`` velocities are sampled, the constrained cells get the continuum velocity
  interpolated in time across the window (:func:`bridge.flux.constrain_cells`: the
  Nie–Chen–E–Robbins constraint, applied every ``chunk`` steps; ``chunk = 1`` is the original
  every-step form), and an exact Ornstein–Uhlenbeck step on the ``y`` velocities only
  (friction ``gamma_y``) holds the temperature without touching the flow (``x``) or the
  gradient (``z``) directions, as in Nie et al.; one ``setVelocities`` writes them back.

The box is periodic in ``z`` too, with a vacuum gap wider than the cutoff above the slab, so no
particle interacts across it.  Walls: ``E(d) = eps_w [2/15 (sigma/d)^9 - (sigma/d)^3] - E(d_c)``
for ``d < d_c = (2/5)^{1/6} sigma`` from each wall (the integrated Lennard-Jones wall, cut at its
minimum); it diverges at the wall, so no particle leaves (``escaped`` counts any that would).

Units: OpenMM's (nm, ps, amu, kJ/mol).  In Lennard-Jones reduced units with ``sigma = 1`` nm,
``epsilon = 1`` kJ/mol and ``m = 1`` amu, one ``tau`` is one ps and ``kT`` is in kJ/mol.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from bridge.averaging import block_average
from bridge.errors import CalculationError, SetupError
from bridge.flux import SlabLayout, ThermalWindowData, WindowData, constrain_cells

from . import _require, select_platform

__all__ = ["LJSlab", "LJSolidBar", "fcc_bar", "slab_particles"]

_require()
import openmm  # noqa: E402
from openmm import unit  # noqa: E402

_DC = (2.0 / 5.0) ** (1.0 / 6.0)          # wall cut, in sigma


def slab_particles(density: float, area: float, height: float, sigma: float = 1.0) -> int:
    """Particles that give ``density`` in the slab's interior: the repulsive walls keep centres about
    ``sigma / 2`` away, so the accessible height is ``height - sigma``."""
    return int(round(density * area * (height - sigma)))


def _grid(n: int, lx: float, ly: float, h: float, sigma: float) -> np.ndarray:
    """``n`` points on a near-cubic grid filling ``[0, lx) x [0, ly) x [sigma/2, h - sigma/2]``."""
    a = (lx * ly * (h - sigma) / n) ** (1.0 / 3.0)
    nx, ny = max(1, int(lx // a)), max(1, int(ly // a))
    nz = int(math.ceil(n / (nx * ny)))
    dz = (h - sigma) / nz
    if min(lx / nx, ly / ny, dz) < 0.8 * sigma:
        raise SetupError(f"{n} particles do not fit in the slab at a spacing of 0.8 sigma",
                         fix="lower the density or enlarge the slab")
    g = np.stack(np.meshgrid(np.arange(nx), np.arange(ny), np.arange(nz), indexing="ij"), -1).reshape(-1, 3)
    g = g[np.lexsort((g[:, 1], g[:, 0], g[:, 2]))][:n]        # fill layer by layer
    return np.column_stack([(g[:, 0] + 0.5) * lx / nx, (g[:, 1] + 0.5) * ly / ny,
                            sigma / 2 + (g[:, 2] + 0.5) * dz])


def _check_positive(**values: float) -> None:
    for name, val in values.items():
        if not (math.isfinite(val) and val > 0):
            raise SetupError(f"{name} must be positive and finite, got {val}", fix=f"pass a positive {name}")


class _Slab:
    """OpenMM context of ``n`` Lennard-Jones particles periodic in ``x``, ``y`` with repulsive 9-3
    walls at local heights ``wall_lo`` and ``wall_hi`` (nm) and a vacuum gap above the upper one."""

    def __init__(self, layout: SlabLayout, lateral, positions: np.ndarray, *, kT: float, sigma: float,
                 epsilon: float, mass: float, cutoff: float, wall_epsilon: float, wall_lo: float, wall_hi: float,
                 dt: float, chunk: int, platform: str, seed: int, switch: float | None = None):
        lx, ly = (float(v) for v in lateral)
        _check_positive(kT=kT, sigma=sigma, epsilon=epsilon, mass=mass, cutoff=cutoff, dt=dt, Lx=lx, Ly=ly)
        if min(lx, ly) < 2 * cutoff:
            raise SetupError(f"cross-section {lx} x {ly} is narrower than twice the cutoff {cutoff}",
                             fix="make Lx and Ly at least 2 * cutoff (minimum image)")
        if int(chunk) < 1:
            raise SetupError(f"chunk must be >= 1 step, got {chunk}", fix="pass e.g. chunk=10")
        self.layout = layout
        self.lateral = (lx, ly)
        self.area = lx * ly
        self.kT, self.mass_value, self.dt, self.chunk = float(kT), float(mass), float(dt), int(chunk)
        self.n = len(positions)
        self._rng = np.random.default_rng(seed)

        system = openmm.System()
        self._shift = -float(wall_lo)                        # local z -> box z (walls from 0)
        h = float(wall_hi - wall_lo)
        lz = h + cutoff + 2.0 * sigma
        system.setDefaultPeriodicBoxVectors(openmm.Vec3(lx, 0, 0), openmm.Vec3(0, ly, 0), openmm.Vec3(0, 0, lz))
        nb = openmm.NonbondedForce()
        nb.setNonbondedMethod(openmm.NonbondedForce.CutoffPeriodic)
        nb.setCutoffDistance(cutoff)
        nb.setUseDispersionCorrection(False)
        if switch is None:
            nb.setUseSwitchingFunction(False)
        else:
            nb.setUseSwitchingFunction(True)
            nb.setSwitchingDistance(switch)
        e_c = 2.0 / 15.0 * _DC ** -9 - _DC ** -3
        wall = openmm.CustomExternalForce(
            "ew*(step(dc-dlo)*(2/15*(s/dlo)^9-(s/dlo)^3-ec) + step(dc-dhi)*(2/15*(s/dhi)^9-(s/dhi)^3-ec));"
            "dlo=max(z, 1e-6); dhi=max(h-z, 1e-6)")
        for name, val in (("ew", wall_epsilon), ("dc", _DC * sigma), ("s", sigma), ("ec", e_c), ("h", h)):
            wall.addGlobalParameter(name, val)
        for i in range(self.n):
            system.addParticle(mass)
            nb.addParticle(0.0, sigma, epsilon)
            wall.addParticle(i, [])
        system.addForce(nb)
        system.addForce(wall)
        self.system = system
        self.integrator = openmm.VerletIntegrator(dt)
        self.context = select_platform(system, self.integrator, platform)
        self.integrator = self.context.getIntegrator()              # the copy bound to the context
        self.platform = self.context.getPlatform().getName()
        self.context.setPositions(np.asarray(positions) + np.array([0.0, 0.0, self._shift]))
        self._masses = np.full(self.n, float(mass))
        self.steps = 0

    # -- state access ------------------------------------------------------------------------
    def _read(self) -> tuple[np.ndarray, np.ndarray]:
        st = self.context.getState(getPositions=True, getVelocities=True)
        x = st.getPositions(asNumpy=True).value_in_unit(unit.nanometer) - np.array([0.0, 0.0, self._shift])
        v = st.getVelocities(asNumpy=True).value_in_unit(unit.nanometer / unit.picosecond)
        return np.asarray(x), np.array(v)

    def positions(self) -> np.ndarray:
        """``(n, 3)`` positions (nm) in the channel frame (``z`` shifted by the slab's ``z0``)."""
        x, _ = self._read()
        return x + np.array([0.0, 0.0, self.layout.z0])

    def velocities(self) -> np.ndarray:
        """``(n, 3)`` velocities (nm/ps)."""
        return self._read()[1]

    def _chunks(self, n_steps: int) -> int:
        """Chunks in a window of ``n_steps``; the window must hold whole chunks."""
        if n_steps % self.chunk:
            raise SetupError(f"{n_steps} steps per window is not a multiple of chunk={self.chunk}",
                             fix="make the MD steps per window a multiple of the chunk")
        return n_steps // self.chunk

    def _ou(self, v: np.ndarray, axes, steps: int, gamma: float) -> None:
        c = math.exp(-gamma * steps * self.dt)
        noise = math.sqrt((1.0 - c * c) * self.kT / self.mass_value)
        for a in axes:
            v[:, a] = c * v[:, a] + noise * self._rng.standard_normal(self.n)

    def equilibrate(self, time: float, gamma: float = 1.0) -> float:
        """Run ``time`` (ps) with the Ornstein–Uhlenbeck thermostat (friction ``gamma``, 1/ps) on all
        three components and the total momentum removed at the end; returns the final kinetic
        ``kT`` (kJ/mol)."""
        n_chunks = max(1, int(round(time / (self.chunk * self.dt))))
        for _ in range(n_chunks):
            self.integrator.step(self.chunk)
            _, v = self._read()
            self._ou(v, (0, 1, 2), self.chunk, gamma)
            self.context.setVelocities(v)
        _, v = self._read()
        v -= v.mean(axis=0)
        self.context.setVelocities(v)
        self._p = float(self.mass_value * v[:, 0].sum())
        self.steps += n_chunks * self.chunk
        return float(self.mass_value * (v ** 2).sum() / (3 * self.n))


class LJSlab(_Slab):
    """A Lennard-Jones fluid slab between repulsive walls, driven window by window (a :class:`bridge.flux.SlabMD`).

    Parameters
    ----------
    layout : SlabLayout
        The slab's place in the channel (``z0``, ``height``) and its coupling cells; the walls
        stand at the slab's ends.
    lateral : (Lx, Ly)
        Periodic cross-section (nm); ``area = Lx * Ly``.
    density, kT : interior number density (nm^-3) and thermal energy (kJ/mol).
    sigma, epsilon, mass, cutoff : Lennard-Jones parameters (nm, kJ/mol, amu, nm); forces are cut
        at ``cutoff`` without smoothing, no long-range correction.
    dt : time step (ps); ``chunk``: steps between exchanges with Python (constraint, thermostat,
        sampling); ``gamma_y``: friction of the ``y`` thermostat (1/ps).
    platform : OpenMM platform name (``"CPU"`` by default; ``"CUDA"`` where there is a GPU).
    seed : seeds the velocities and the thermostat noise.
    """

    def __init__(self, layout: SlabLayout, lateral=(10.0, 10.0), *, density: float = 0.813, kT: float = 1.1,
                 sigma: float = 1.0, epsilon: float = 1.0, mass: float = 1.0, cutoff: float = 2.2,
                 wall_epsilon: float = 1.0, dt: float = 0.005, chunk: int = 20, gamma_y: float = 1.0,
                 platform: str = "CPU", seed: int = 1):
        _check_positive(density=density, gamma_y=gamma_y)
        lx, ly = (float(v) for v in lateral)
        h = layout.height
        n = slab_particles(density, lx * ly, h, sigma)
        super().__init__(layout, (lx, ly), _grid(n, lx, ly, h, sigma), kT=kT, sigma=sigma, epsilon=epsilon,
                         mass=mass, cutoff=cutoff, wall_epsilon=wall_epsilon, wall_lo=0.0, wall_hi=h, dt=dt,
                         chunk=chunk, platform=platform, seed=seed)
        self.gamma_y = float(gamma_y)
        openmm.LocalEnergyMinimizer.minimize(self.context, 10.0, 500)
        v = self._rng.normal(size=(self.n, 3)) * math.sqrt(self.kT / mass)
        v -= v.mean(axis=0)
        self.context.setVelocities(v)
        self._p = float(mass * v[:, 0].sum())
        self.noise: dict[str, float] | None = None

    def calibrate(self, time: float, window: float) -> dict[str, float]:
        """Measure the noise of the sample cells' velocities in the fluid at rest.

        Runs ``time`` (ps) in windows of ``window`` with the constrained cells held at zero and
        pools the sample cells: ``sigma`` (spread of one sample), ``g`` (statistical
        inefficiency: samples per independent sample, by blocking the whole series),
        ``correlation_time = g * chunk * dt`` and ``particles`` per cell; kept in ``noise``.
        From then on the error bar of a window average is ``sigma sqrt(g / n_samples)`` -- the
        hydrodynamic modes of the slab decorrelate over several tau, longer than blocks within
        one window can see.  ``window_spread`` is the measured spread of the window averages, the
        check of that prediction.
        """
        from bridge.flux import series_noise

        n_steps = self.chunk * max(1, int(round(window / (self.chunk * self.dt))))
        n_windows = max(2, int(round(time / (n_steps * self.dt))))
        zero = np.zeros(len(self.layout.constrained))
        saved, self.noise = self.noise, None
        try:
            data = [self.run_window(n_steps, zero, zero) for _ in range(n_windows)]
        finally:
            self.noise = saved
        s = self.layout.sampled
        sigma, g = series_noise([np.concatenate([d.series[:, s] for d in data])])
        means = np.array([d.mean[s] for d in data])
        self.noise = {"sigma": sigma, "g": g, "correlation_time": g * self.chunk * self.dt,
                      "particles": float(np.mean([d.count[s] for d in data])),
                      "samples_per_window": n_steps // self.chunk,
                      "predicted_window_error": sigma * math.sqrt(g * self.chunk / n_steps),
                      "window_spread": float(np.sqrt(np.mean(np.var(means, axis=0, ddof=1))))}
        return dict(self.noise)

    def run_window(self, n_steps: int, targets0, targets1) -> WindowData:
        """Run one coupling window of ``n_steps`` (a multiple of ``chunk``).

        ``targets0``, ``targets1``: ``(k,)`` continuum velocities of the constrained cells
        (``layout.constrained``) at the start and the end of the window, interpolated linearly in
        between.  Returns the window's :class:`~bridge.flux.WindowData`.
        """
        n_chunks = self._chunks(n_steps)
        lay = self.layout
        cells = lay.constrained
        t0 = np.asarray(targets0, float)
        t1 = np.asarray(targets1, float)
        if t0.shape != cells.shape or t1.shape != cells.shape or not (np.all(np.isfinite(t0)) and np.all(np.isfinite(t1))):
            raise CalculationError(f"constrained-cell targets must be {len(cells)} finite values each, got {t0} -> {t1}",
                                   fix="check the continuum values handed to the MD")
        nc = lay.n_cells
        series = np.full((n_chunks, nc), np.nan)
        counts = np.zeros(nc)
        impulse = np.zeros(len(cells))
        ke_yz = 0.0
        m = self._masses
        for j in range(n_chunks):
            self.integrator.step(self.chunk)
            x, v = self._read()
            if not np.all(np.isfinite(v)):
                raise CalculationError("MD velocities became non-finite",
                                       fix="lower dt or check for overlapping particles at the start")
            cell = lay.cell_of(lay.z0 + x[:, 2])
            inside = cell >= 0
            msum = np.bincount(cell[inside], weights=m[inside], minlength=nc)
            psum = np.bincount(cell[inside], weights=(m * v[:, 0])[inside], minlength=nc)
            with np.errstate(invalid="ignore", divide="ignore"):
                series[j] = np.where(msum > 0, psum / msum, np.nan)
            counts += np.bincount(cell[inside], minlength=nc)
            ke_yz += float((m[:, None] * v[:, 1:] ** 2).sum())
            s = (j + 1) / n_chunks
            dv, imp = constrain_cells(cell, v[:, 0], m, cells, (1 - s) * t0 + s * t1)
            v[:, 0] += dv
            impulse += imp
            self._ou(v, (1,), self.chunk, self.gamma_y)
            self.context.setVelocities(v)
        self.steps += n_steps
        escaped = int(np.count_nonzero((x[:, 2] < 0) | (x[:, 2] > lay.height)))
        p_end = float((m * v[:, 0]).sum())
        dp, self._p = p_end - self._p, p_end
        mean = np.nanmean(series, axis=0)
        err = np.full(nc, np.nan)
        if self.noise is not None:
            err[:] = self.noise["sigma"] * math.sqrt(self.noise["g"] / n_chunks)
        else:
            for c in range(nc):
                col = series[:, c]
                if np.all(np.isfinite(col)):
                    err[c] = block_average(col)[1] if col.size >= 16 else col.std(ddof=1) / math.sqrt(col.size)
        return WindowData(mean=mean, error=err, count=counts / n_chunks, impulse=impulse, momentum_change=dp,
                          escaped=escaped, temperature=ke_yz / (2 * self.n * n_chunks), series=series)

    def describe(self) -> dict[str, Any]:
        return {"particles": self.n, "platform": self.platform, "area": self.area, "height": self.layout.height,
                "chunk": self.chunk, "dt": self.dt}


def fcc_bar(a: float, lateral_cells: int, length_cells: int) -> np.ndarray:
    """FCC sites (nm) of ``lateral_cells^2 x length_cells`` cubic cells of side ``a``, offset by
    ``a/4`` so that the (001) planes sit at ``(j + 1/2) a / 2`` and cell boundaries at multiples of
    ``a`` fall between planes."""
    basis = np.array([[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
    n = (lateral_cells, lateral_cells, length_cells)
    g = np.stack(np.meshgrid(*(np.arange(k) for k in n), indexing="ij"), -1).reshape(-1, 1, 3)
    return ((g + basis[None]).reshape(-1, 3) + 0.25) * a


class LJSolidBar(_Slab):
    """A Lennard-Jones FCC solid bar along ``z`` for thermal coupling (:class:`bridge.flux.HeatCoupling`).

    ``lateral_cells^2 x length_cells`` FCC cells of side ``a = (4 / density)^(1/3)``, periodic in
    ``x`` and ``y``, free (001) surfaces at both ends with a repulsive wall one ``sigma`` beyond
    each (so that a sublimating atom cannot wander off; ``escaped`` counts atoms beyond the
    walls, none while the walls hold; an adatom between a surface and its wall belongs to no cell).  The coupling cells (``layout``) are ``cell_depth`` FCC cells thick; the first and last
    are the flux cells (``layout.constrained``), the others interior (``layout.sampled``).  The bar
    runs NVE (``VerletIntegrator``); the only energy it receives is what :meth:`run_window` puts
    into the flux cells.  The pair force is switched smoothly to zero between ``switch`` and
    ``cutoff`` (OpenMM's switching function): a plain cut makes the total energy jump by ~1 kJ/mol
    per 1000 steps as pairs cross the cutoff, a switched one ~0.05.
    """

    def __init__(self, z0: float, lateral_cells: int = 5, length_cells: int = 12, *, cell_depth: int = 2,
                 density: float = 1.0, kT: float = 0.3, sigma: float = 1.0, epsilon: float = 1.0,
                 mass: float = 1.0, cutoff: float = 2.5, switch: float | None = 2.2, dt: float = 0.005,
                 chunk: int = 20, platform: str = "CPU", seed: int = 1):
        _check_positive(density=density)
        if int(cell_depth) < 1 or int(lateral_cells) < 1:
            raise SetupError(f"cell_depth {cell_depth} and lateral_cells {lateral_cells} must be >= 1",
                             fix="e.g. LJSolidBar(z0, lateral_cells=5, length_cells=12, cell_depth=2)")
        if length_cells % cell_depth or length_cells // cell_depth < 4:
            raise SetupError(f"{length_cells} FCC cells do not split into >= 4 coupling cells of {cell_depth}",
                             fix="make length_cells a multiple of cell_depth, at least 4 coupling cells")
        a = (4.0 / density) ** (1.0 / 3.0)
        self.a = a
        h = length_cells * a
        layout = SlabLayout(z0=float(z0), height=h, n_cells=length_cells // cell_depth, buffer=0, constrain=1,
                            gap=0)
        L = lateral_cells * a
        super().__init__(layout, (L, L), fcc_bar(a, lateral_cells, length_cells), kT=kT, sigma=sigma,
                         epsilon=epsilon, mass=mass, cutoff=cutoff, wall_epsilon=epsilon, wall_lo=-sigma,
                         wall_hi=h + sigma, dt=dt, chunk=chunk, platform=platform, seed=seed, switch=switch)
        v = self._rng.normal(size=(self.n, 3)) * math.sqrt(2.0 * self.kT / mass)   # equipartition halves it
        v -= v.mean(axis=0)
        self.context.setVelocities(v)
        self._E = self.total_energy()

    def total_energy(self) -> float:
        """Kinetic + potential energy (kJ/mol) of the bar now, from the engine."""
        st = self.context.getState(getEnergy=True)
        return float(st.getKineticEnergy().value_in_unit(unit.kilojoule_per_mole)
                     + st.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole))

    def _cell_temperatures(self, x: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        lay = self.layout
        nc = lay.n_cells
        cell = lay.cell_of(lay.z0 + x[:, 2])
        inside = cell >= 0
        ci, m = cell[inside], self._masses[inside]
        msum = np.bincount(ci, weights=m, minlength=nc)
        count = np.bincount(ci, minlength=nc)
        ke = np.bincount(ci, weights=0.5 * m * (v[inside] ** 2).sum(axis=1), minlength=nc)
        p2 = sum(np.bincount(ci, weights=m * v[inside, k], minlength=nc) ** 2 for k in range(3))
        with np.errstate(invalid="ignore", divide="ignore"):
            T = np.where(count > 1, 2.0 * (ke - 0.5 * p2 / np.where(msum > 0, msum, 1.0)) / (3 * count - 3), np.nan)
        return T, count, cell

    def cell_temperatures(self) -> np.ndarray:
        """``(n_cells,)`` kinetic temperature (kJ/mol) per coupling cell now."""
        x, v = self._read()
        return self._cell_temperatures(x, v)[0]

    def set_cell_temperatures(self, T: np.ndarray) -> None:
        """Scale each cell's velocities (about its centre of mass) to the temperatures ``T`` ``(n_cells,)``."""
        x, v = self._read()
        now, _, cell = self._cell_temperatures(x, v)
        T = np.asarray(T, float)
        if T.shape != now.shape or not np.all(T > 0):
            raise SetupError(f"need {now.size} positive cell temperatures, got {T}", fix="pass one kT per cell")
        if not np.all(np.isfinite(now) & (now > 0)):
            raise SetupError(f"a cell holds too few atoms for a temperature: {now}",
                             fix="use coupling cells of many atoms")
        for c in range(len(T)):
            sel = cell == c
            vc = np.average(v[sel], axis=0, weights=self._masses[sel])
            v[sel] = vc + math.sqrt(T[c] / now[c]) * (v[sel] - vc)
        self.context.setVelocities(v)
        self._E = self.total_energy()

    def equilibrate(self, time: float, gamma: float = 1.0) -> float:
        kT = super().equilibrate(time, gamma)
        self._E = self.total_energy()
        return kT

    def run_window(self, n_steps: int, heat) -> ThermalWindowData:
        """Run ``n_steps`` (a multiple of ``chunk``), putting ``heat`` ``(2,)`` (kJ/mol; negative:
        taken out) into the two flux cells in equal parts after every chunk."""
        from bridge.flux import add_energy

        n_chunks = self._chunks(n_steps)
        heat = np.asarray(heat, float)
        lay = self.layout
        cells = lay.constrained
        nc = lay.n_cells
        series = np.full((n_chunks, nc), np.nan)
        counts = np.zeros(nc)
        applied = np.zeros(len(cells))
        for j in range(n_chunks):
            self.integrator.step(self.chunk)
            x, v = self._read()
            if not np.all(np.isfinite(v)):
                raise CalculationError("MD velocities became non-finite", fix="lower dt")
            T, count, cell = self._cell_temperatures(x, v)
            series[j] = T
            counts += count
            v, got = add_energy(cell, v, self._masses, cells, heat / n_chunks)
            applied += got
            self.context.setVelocities(v)
        self.steps += n_steps
        escaped = int(np.count_nonzero((x[:, 2] < -self._shift) | (x[:, 2] > lay.height + self._shift)))
        E = self.total_energy()
        dE, self._E = E - self._E, E
        err = np.array([block_average(series[:, c])[1] if n_chunks >= 16 and np.all(np.isfinite(series[:, c]))
                        else np.nan for c in range(nc)])
        return ThermalWindowData(mean=np.nanmean(series, axis=0), error=err, count=counts / n_chunks,
                                 applied=applied, energy_change=dE, escaped=escaped, series=series)
