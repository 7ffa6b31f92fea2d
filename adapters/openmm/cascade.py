"""Displacement cascades in OpenMM: a primary knock-on atom in an EAM crystal, run to the end of cool-down.

:class:`Cascade` builds a periodic BCC crystal with the EAM of a setfl table
(:func:`bridge_adapters.openmm.eam.eam_force`), draws Maxwell–Boltzmann velocities at twice
``temperature`` (on a perfect lattice equipartition halves it), gives one atom near the centre
the PKA energy along a high-index direction, and integrates with a ``CustomIntegrator``:

- velocity Verlet for every atom, plus an exact Ornstein–Uhlenbeck (Langevin) step on the atoms
  of the border layer only (per-degree-of-freedom friction ``gamma``: zero inside, ``gamma`` in
  the layer), which drains the cascade's heat the way the surrounding crystal would;
- a variable time step: every ``check`` steps the fastest atom sets ``dt = min(dt_max,
  dx_max / v_max)`` (``dx_max`` = 0.005 nm by default), so the ballistic phase takes steps of
  tens of attoseconds (85 as for a 1 keV iron PKA) and the cool-down ``dt_max``.  The exchange
  with Python is one velocity array per ``check`` steps, vectorised.

There is no electronic stopping: the PKA energy is the damage energy (what NRT and arc-dpa take).
The border layer is a fixed thickness at the box faces; in small boxes it is a large share of
the atoms (``CascadeResult.thermostatted``), so use boxes several times the cascade's size.
On a GPU platform, ask for mixed precision (``platform="CUDA"`` with OpenMM's defaults is single).

Cool-down is detected from the two signals of the issue: every ``probe`` ps the Wigner–Seitz
defect count (:func:`bridge.defects.wigner_seitz`) is taken and the interior's excess kinetic
energy measured; the run ends when the Frenkel-pair count has not changed over ``settle`` ps and
the interior temperature is within ``dT`` of the target, or at ``t_max``.  Units: nm, ps, K,
eV for the PKA energy.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bridge.defects import bcc_sites, wigner_seitz, wrap
from bridge.eam import SetflTables
from bridge.errors import CalculationError, SetupError
from bridge.units import EV, KB

from . import select_platform
from .eam import eam_force

__all__ = ["Cascade", "CascadeResult"]



@dataclass
class CascadeResult:
    """A finished cascade: final positions (n, 3) nm, the reference sites, the Wigner–Seitz defects
    (``vacancies`` (k, 3), ``interstitials`` (k, 3) nm), ``frenkel_pairs``, the defects at the
    peak of the cascade (``peak_*``), and time series (ps, Frenkel pairs, interior K, step ps)."""

    positions: np.ndarray
    sites: np.ndarray
    box: np.ndarray
    vacancies: np.ndarray
    interstitials: np.ndarray
    frenkel_pairs: int
    pka_energy: float
    time: list = field(default_factory=list)
    defects: list = field(default_factory=list)
    temperature: list = field(default_factory=list)
    dt: list = field(default_factory=list)
    max_defects: int = 0
    thermostatted: float = 0.0
    peak_vacancies: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    peak_interstitials: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    peak_time: float = 0.0
    settled: bool = False
    steps: int = 0


class Cascade:
    """One PKA cascade in a periodic BCC crystal of ``cells``^3 unit cells (class docstring).

    Parameters: ``tables`` (setfl, :func:`bridge.eam.read_setfl`), ``lattice_constant`` nm,
    ``cells``, ``temperature`` K, ``pka_energy`` eV, ``direction`` (3,) (default [1 3 5], away
    from channels), ``border`` nm (thermostatted layer at the box faces), ``gamma`` 1/ps,
    ``dt_max`` ps, ``dx_max`` nm, ``seed``, ``platform``.
    """

    def __init__(self, tables: SetflTables, lattice_constant: float, cells: int, *, temperature: float = 100.0,
                 pka_energy: float = 1000.0, direction=(1.0, 3.0, 5.0), border: float = 0.3, gamma: float = 2.0,
                 dt_max: float = 0.002, dx_max: float = 0.005, seed: int = 0, platform: str | None = None):
        import openmm

        if int(cells) < 6 or not lattice_constant > 0:
            raise SetupError(f"need at least 6 cells and a > 0 nm, got cells = {cells}, a = {lattice_constant}",
                             fix="use a box several times the cascade size, e.g. cells=14 for 1 keV in Fe")
        if not (pka_energy > 0 and temperature > 0 and gamma >= 0 and dt_max > 0 and dx_max > 0 and border >= 0):
            raise SetupError("pka_energy, temperature, dt_max and dx_max must be positive, gamma and border >= 0",
                             fix="e.g. pka_energy=1000 eV, temperature=100 K, dt_max=0.002 ps")
        a = float(lattice_constant)
        self.sites = bcc_sites(a, (int(cells),) * 3) + 0.25 * a        # no atom on the box faces
        self.box = np.full(3, int(cells) * a)
        n = len(self.sites)
        if np.any(self.box < 2 * tables.cutoff / 10 + 2 * border):
            raise SetupError("the box is too small for the cutoff and the border layer",
                             fix="use more cells or a thinner border")
        self.mass = float(tables.mass)
        self.T, self.n, self.dt_max, self.dx_max = float(temperature), n, float(dt_max), float(dx_max)
        self.rng = np.random.default_rng(seed)
        system = openmm.System()
        for _ in range(n):
            system.addParticle(self.mass)
        L = self.box
        system.setDefaultPeriodicBoxVectors(openmm.Vec3(L[0], 0, 0), openmm.Vec3(0, L[1], 0), openmm.Vec3(0, 0, L[2]))
        gb = eam_force(tables)
        for _ in range(n):
            gb.addParticle([])
        system.addForce(gb)
        integ = openmm.CustomIntegrator(self.dt_max)
        integ.addGlobalVariable("kT", KB * self.T)
        integ.addPerDofVariable("gamma", 0.0)
        integ.addUpdateContextState()
        integ.addComputePerDof("v", "v + 0.5*dt*f/m")
        integ.addComputePerDof("x", "x + dt*v")
        integ.addComputePerDof("v", "v + 0.5*dt*f/m")
        integ.addComputePerDof("v", "v*exp(-gamma*dt) + sqrt(kT/m*(1 - exp(-2*gamma*dt)))*gaussian")
        self.context = select_platform(system, integ, platform, None)
        self.integrator = self.context.msbridge_integrator
        self.platform = self.context.getPlatform().getName()
        d = np.minimum(self.sites, L - self.sites).min(1)
        self.border = d < border
        g = np.where(self.border, float(gamma), 0.0)
        self.integrator.setPerDofVariableByName("gamma", [openmm.Vec3(x, x, x) for x in g])
        self.context.setPositions(self.sites)
        v = self.rng.standard_normal((n, 3)) * np.sqrt(2.0 * KB * self.T / self.mass)     # 2T: equipartition
        v -= v.mean(0)
        # the PKA: the atom nearest the centre, along ``direction``
        u = np.asarray(direction, float)
        u /= np.linalg.norm(u)
        self.pka = int(np.argmin(np.linalg.norm(self.sites - 0.5 * L, axis=1)))
        speed = np.sqrt(2.0 * pka_energy * EV / self.mass)                 # nm/ps
        v[self.pka] = speed * u
        others = np.arange(n) != self.pka
        v[others] -= v.sum(0) / (n - 1)          # zero total momentum: no drift under the Wigner–Seitz grid
        self.context.setVelocities(v)
        self.pka_energy = float(pka_energy)

    def _state(self):
        st = self.context.getState(getPositions=True, getVelocities=True)
        return (np.asarray(st.getPositions(asNumpy=True)._value, float),
                np.asarray(st.getVelocities(asNumpy=True)._value, float))

    def _velocities(self):
        return np.asarray(self.context.getState(getVelocities=True).getVelocities(asNumpy=True)._value, float)

    def run(self, *, t_max: float = 10.0, probe: float = 0.25, settle: float = 1.0, dT: float = 50.0,
            check: int = 10, progress: bool = False) -> CascadeResult:
        """Integrate to the end of cool-down (class docstring) or ``t_max`` ps."""
        from bridge.log import progress_enabled

        show = progress_enabled(progress)
        t, next_probe, steps = 0.0, probe, 0
        res = CascadeResult(self.sites, self.sites, self.box, np.zeros((0, 3)), np.zeros((0, 3)), 0, self.pka_energy)
        inner = ~self.border
        res.thermostatted = float(self.border.mean())
        while t < t_max:
            v = self._velocities()
            if not np.all(np.isfinite(v)):
                raise CalculationError(f"the cascade blew up at t = {t:.4g} ps", reason="non-finite velocities",
                                       fix="lower dx_max or dt_max")
            vmax = float(np.sqrt((v * v).sum(1).max()))
            dt = min(self.dt_max, self.dx_max / max(vmax, 1e-12))
            self.integrator.setStepSize(dt)
            self.integrator.step(check)
            steps += check
            t += check * dt
            if t >= next_probe:
                next_probe += probe
                x, v = self._state()
                ws = wigner_seitz(self.sites, x, self.box)
                T_in = self.mass * float((v[inner] ** 2).sum()) / (3 * KB * inner.sum())
                res.time.append(t)
                res.defects.append(len(ws.vacancies))
                res.temperature.append(T_in)
                res.dt.append(dt)
                if len(ws.vacancies) > res.max_defects:
                    res.max_defects, res.peak_time = len(ws.vacancies), t
                    res.peak_vacancies = self.sites[ws.vacancies]
                    res.peak_interstitials = wrap(x[ws.interstitials], self.box)
                if show:
                    print(f"  t = {t:6.3f} ps  Frenkel pairs {len(ws.vacancies):4d}  T_inside {T_in:7.1f} K  dt {dt:.2e} ps")
                k = int(round(settle / probe)) + 1
                if (len(res.defects) >= k and len(set(res.defects[-k:])) == 1 and abs(T_in - self.T) < dT):
                    res.settled = True
                    break
        x, _ = self._state()
        ws = wigner_seitz(self.sites, x, self.box)
        res.positions = x
        res.vacancies = self.sites[ws.vacancies]
        res.interstitials = wrap(x[ws.interstitials], self.box)
        res.frenkel_pairs = len(ws.vacancies)
        res.steps = steps
        return res
