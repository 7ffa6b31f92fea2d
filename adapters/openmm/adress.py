r"""Adaptive resolution on OpenMM for one-bead molecules (:mod:`bridge.adress`).

:class:`AdResSLiquid` runs a liquid whose particles switch between an atomistic pair potential
(``at``) and a coarse one (``cg``) with the weight of their position in a
:class:`~bridge.zones.Slab` or :class:`~bridge.zones.Sphere`.  The two schemes live on OpenMM's
side differently:

- ``scheme="hamiltonian"`` (H-AdResS) is entirely on the device: a ``CustomGBForce`` computes
  each particle's weight from its position every step (a single-particle computed value, the
  zone's cos^2 written as an expression with the minimum image) and the pair energy
  ``(w1 + w2)/2 (V_AT - V_CG) + V_CG``; OpenMM differentiates through the weights, so the drift
  force ``-(V_AT_i - V_CG_i) grad w_i`` comes with it and energy is conserved.  The CPU platform
  evaluates ``CustomGBForce`` expressions per pair, ~9x the cost of a ``NonbondedForce`` (measured
  on 1536 particles); on a GPU the kernel is compiled;
- ``scheme="force"`` (FI-AdResS) has no energy, so the weight cannot be differentiated: a
  ``CustomNonbondedForce`` holds it as a per-particle parameter, ``w1 w2 (V_AT - V_CG) + V_CG``
  with ``w`` constant gives exactly ``w_i w_j F_AT + (1 - w_i w_j) F_CG``; the weights are
  refreshed from the positions every ``update_every`` steps (one ``getState``, NumPy, one
  ``updateParametersInContext``; ``update_every = 1`` is exact every step).  OpenMM has no bulk
  setter for per-particle parameters, so the refresh writes them one ``setParticleParameters``
  call each (~0.6 us per particle on this CPU, between steps);

The thermodynamic force (:class:`bridge.adress.ThermodynamicForce`) is a one-particle
``CustomCompoundBondForce`` per particle on a periodic ``Continuous1DFunction`` of the slab
coordinate (on the device; the table changes once per iteration).  A ``LangevinMiddleIntegrator``
thermostats (required for force interpolation, which does not conserve energy).

Units: OpenMM's (nm, kJ/mol, amu, ps).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from bridge.adress import PairPotential, ThermodynamicForce
from bridge.errors import SetupError
from bridge.zones import Slab, Sphere, Zone

from . import _require, select_platform

__all__ = ["AdResSLiquid", "zone_weight_expression"]

_require()
import openmm  # noqa: E402
from openmm import unit  # noqa: E402

KB = 0.00831446261815324          # kJ/mol/K


def zone_weight_expression(zone: Zone, box: np.ndarray) -> str:
    """The zone's weight of a particle at ``(x, y, z)`` as an OpenMM expression (minimum image)."""
    h = zone.hybrid_width
    if isinstance(zone, Slab):
        axis = "xyz"[zone.axis]
        L = float(box[zone.axis])
        dist = f"abs(dx) - {zone.half_width!r}; dx = {axis} - {zone.centre!r} - {L!r}*floor(({axis} - {zone.centre!r})/{L!r} + 0.5)"
    elif isinstance(zone, Sphere):
        parts = []
        for k, a in enumerate("xyz"):
            c, L = float(zone.centre[k]), float(box[k])
            parts.append(f"d{a} = {a} - {c!r} - {L!r}*floor(({a} - {c!r})/{L!r} + 0.5)")
        dist = f"sqrt(dx*dx + dy*dy + dz*dz) - {zone.radius!r}; " + "; ".join(parts)
    else:
        raise SetupError(f"no OpenMM expression for a {type(zone).__name__} zone", fix="use a Slab or a Sphere")
    return f"select(step(-d), 1, select(step(d - {h!r}), 0, cos({math.pi!r}*d/(2*{h!r}))^2)); d = {dist}"


class AdResSLiquid:
    """A one-bead-per-molecule liquid with adaptive resolution in OpenMM.

    Parameters
    ----------
    positions : ``(n, 3)`` nm; box : ``(3,)`` orthorhombic box lengths (nm).
    zone : Slab (periodic along its axis) or Sphere (``box`` given) -- the atomistic region.
    at, cg : :class:`bridge.adress.PairPotential` of the atomistic and coarse models.
    scheme : ``"force"`` or ``"hamiltonian"``.
    mass : amu; kT : kJ/mol; gamma : Langevin friction (1/ps); dt : ps.
    update_every : steps between weight refreshes (``scheme="force"`` only).
    platform : OpenMM platform name.
    """

    def __init__(self, positions: np.ndarray, box, zone: Zone, at: PairPotential, cg: PairPotential, *,
                 scheme: str = "force", mass: float = 1.0, kT: float = 1.0, gamma: float = 1.0, dt: float = 0.005,
                 update_every: int = 1, platform: str = "CPU", seed: int = 1):
        if scheme not in ("force", "hamiltonian"):
            raise SetupError(f"scheme must be 'force' or 'hamiltonian', got {scheme!r}",
                             fix="pass scheme='force' (FI-AdResS) or 'hamiltonian' (H-AdResS)")
        x = np.asarray(positions, float)
        box = np.asarray(box, float).reshape(3)
        if x.ndim != 2 or x.shape[1] != 3 or not np.all(np.isfinite(x)):
            raise SetupError("positions must be a finite (n, 3) array", fix="pass positions in nm")
        rc = max(at.cutoff, cg.cutoff)
        if np.any(box < 2 * rc):
            raise SetupError(f"box {box} is shorter than twice the cutoff {rc}", fix="enlarge the box")
        if int(update_every) < 1:
            raise SetupError(f"update_every must be >= 1, got {update_every}", fix="pass e.g. update_every=1")
        if isinstance(zone, Slab) and (zone.period is None or not np.isclose(zone.period, box[zone.axis])):
            raise SetupError(f"the slab's period {zone.period} is not the box length {box[zone.axis]} along its axis",
                             fix="build the zone with period=box[axis]")
        if isinstance(zone, Sphere) and (zone.box is None or not np.allclose(zone.box, box)):
            raise SetupError(f"the sphere's box {zone.box} is not the liquid's box {box}",
                             fix="build the zone with box=<the same box lengths>")
        self.zone, self.box, self.scheme = zone, box, scheme
        self.n, self.mass, self.kT, self.dt = len(x), float(mass), float(kT), float(dt)
        self.update_every = int(update_every)
        system = openmm.System()
        system.setDefaultPeriodicBoxVectors(*(openmm.Vec3(*(box[k] * (np.arange(3) == k))) for k in range(3)))
        for _ in range(self.n):
            system.addParticle(self.mass)
        self.weights_now = zone.weights(x)
        if scheme == "force":
            f = openmm.CustomNonbondedForce(f"w1*w2*(vat - vcg) + vcg; vat = {at.expression}; vcg = {cg.expression}")
            f.addPerParticleParameter("w")
            for wi in self.weights_now.tolist():
                f.addParticle([wi])
            f.setNonbondedMethod(openmm.CustomNonbondedForce.CutoffPeriodic)
        else:
            f = openmm.CustomGBForce()
            f.addComputedValue("unused", "0", openmm.CustomGBForce.ParticlePair)   # the CPU platform wants a pair value first
            f.addComputedValue("w", zone_weight_expression(zone, box), openmm.CustomGBForce.SingleParticle)
            f.addEnergyTerm(f"0.5*(w1 + w2)*(vat - vcg) + vcg; vat = {at.expression}; vcg = {cg.expression}",
                            openmm.CustomGBForce.ParticlePair)
            for _ in range(self.n):
                f.addParticle([])
            f.setNonbondedMethod(openmm.CustomGBForce.CutoffPeriodic)
        f.setCutoffDistance(rc)
        f.setForceGroup(0)
        system.addForce(f)
        self._pair = f
        self._thermo = None
        self.system = system
        self.integrator = openmm.LangevinMiddleIntegrator(self.kT / KB, float(gamma), self.dt)
        self.integrator.setRandomNumberSeed(int(seed))
        self.context = select_platform(system, self.integrator, platform)
        self.integrator = self.context.getIntegrator()              # the copy bound to the context
        self.platform = self.context.getPlatform().getName()
        self.context.setPositions(x)
        self.context.setVelocitiesToTemperature(self.kT / KB, int(seed))
        self.steps = 0

    # -- state -----------------------------------------------------------------------------------
    def positions(self) -> np.ndarray:
        """``(n, 3)`` positions (nm), wrapped into the box."""
        x = self.context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer)
        return np.mod(np.asarray(x), self.box)

    def forces(self) -> np.ndarray:
        """``(n, 3)`` forces (kJ/mol/nm) at the current positions (the pair and thermodynamic forces)."""
        st = self.context.getState(getForces=True)
        return np.asarray(st.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer))

    def potential_energy(self) -> float:
        """kJ/mol.  H-AdResS: the Hamiltonian's potential energy; force interpolation has none -- the
        value is that of the pair expression with the weights held, not a conserved quantity."""
        st = self.context.getState(getEnergy=True)
        return float(st.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole))

    def refresh_weights(self, x: np.ndarray | None = None) -> np.ndarray:
        """Set the per-particle weights from the positions (``scheme="force"``); returns them."""
        x = self.positions() if x is None else x
        w = self.zone.weights(x)
        self.weights_now = w
        if self.scheme == "force":
            f = self._pair
            for i, wi in enumerate(w.tolist()):
                f.setParticleParameters(i, [wi])
            f.updateParametersInContext(self.context)
        return w

    def step(self, n: int) -> None:
        """Advance ``n`` steps (weights refreshed every ``update_every`` steps for force interpolation)."""
        n = int(n)
        if self.scheme == "hamiltonian":
            self.integrator.step(n)
        else:
            done = 0
            while done < n:
                k = min(self.update_every, n - done)
                self.integrator.step(k)
                self.refresh_weights()
                done += k
        self.steps += n

    # -- thermodynamic force ---------------------------------------------------------------------
    def set_thermodynamic_force(self, tf: ThermodynamicForce) -> None:
        """Apply ``tf`` (a periodic table along the slab axis) from now on."""
        z, t = self.zone, tf.zone
        if not isinstance(z, Slab) or t.axis != z.axis or not np.allclose(
                [t.centre, t.half_width, t.hybrid_width, t.period], [z.centre, z.half_width, z.hybrid_width, z.period]):
            raise SetupError("the thermodynamic force was made for another zone than the liquid's",
                             fix="build (or iterate) it with ThermodynamicForce(liquid.zone, ...)")
        L = float(self.box[t.axis])
        _, U = tf.edge_potential()                 # at 0, dx, ..., L (periodic: first == last)
        axis = "xyz"[tf.zone.axis]
        if self._thermo is None:
            # a one-particle CustomCompoundBondForce per particle: like a CustomExternalForce, but it
            # takes tabulated functions
            f = openmm.CustomCompoundBondForce(1, f"uth({axis}1 - {L!r}*floor({axis}1/{L!r}))")
            f.addTabulatedFunction("uth", openmm.Continuous1DFunction(U.tolist(), 0.0, L, True))
            for i in range(self.n):
                f.addBond([i], [])
            self.system.addForce(f)
            self._thermo = f
        else:
            self._thermo.getTabulatedFunction(0).setFunctionParameters(U.tolist(), 0.0, L)
        self.context.reinitialize(preserveState=True)    # keeps positions, velocities and the RNG state
        if self.scheme == "force":
            self.refresh_weights()

    def describe(self) -> dict[str, Any]:
        return {"particles": self.n, "scheme": self.scheme, "platform": self.platform,
                "update_every": self.update_every}
