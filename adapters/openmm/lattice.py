"""The atomistic side of an atomistic–continuum handshake (:mod:`bridge.handshake`) in OpenMM.

:func:`handshake_engine` turns the weighted bonded lattice of a :class:`bridge.handshake.Handshake`
into an OpenMM ``System``: one ``CustomBondForce`` with the Lennard-Jones bond energy times a
per-bond weight ``alpha_b`` (the bond list is the handshake's, fixed at the reference lattice),
atom masses ``max(alpha_I, mass_floor) m``, and a ``CustomIntegrator``:

    v <- v + dt/2 f/m ;  x <- x + dt v ;  v <- v + dt/2 f/m          (velocity Verlet)
    v <- v_ref + (v - v_ref) exp(-eta dt)                             (fine-scale damping)

with per-degree-of-freedom variables ``v_ref`` (the continuum velocity at the atom, set by the
coupling at each synchronisation) and ``eta`` (1/ps, zero outside the overlap).  So the atoms
take their sub-steps entirely inside OpenMM (on a GPU where one is present); the bridge touches
them once per continuum step.  Lattices are 1-D or 2-D: the atoms sit in the z = 0 plane (and
y = 0 for chains) and, the bond forces having no out-of-plane part, stay there.

The engine checks at construction that OpenMM's energy and forces equal the NumPy evaluation of
the same weighted bonds (:meth:`bridge.handshake.Handshake.atom_energy_forces`) -- a wrong
``sigma``/``epsilon`` or a potential that is not Lennard-Jones is refused.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from bridge.errors import SetupError
from bridge.handshake import Handshake

from . import _md, _python_force_errors, select_platform

__all__ = ["handshake_engine", "OpenMMLatticeEngine"]


class OpenMMLatticeEngine:
    """Weighted bonded lattice in an OpenMM context (the atom engine of :class:`HandshakeDynamics`).

    Attributes: ``m`` (n,) amu, ``dt`` ps, ``eta`` (n,) 1/ps, ``platform``, ``context``.
    Positions and velocities are ``(n, d)`` in nm and nm/ps, forces kJ/(mol nm).
    """

    def __init__(self, hs: Handshake, sigma: float, epsilon: float, mass: float, timestep: float, *,
                 eta: np.ndarray | None = None, mass_floor: float = 0.02, platform: str | None = "Reference"):
        import openmm

        if sigma <= 0 or epsilon <= 0 or mass <= 0 or timestep <= 0:
            raise SetupError("sigma, epsilon, mass and timestep must be positive",
                             fix="pass nm, kJ/mol, amu and ps as positive numbers")
        self.hs, self.d = hs, hs.dim
        n = len(hs.lattice.positions)
        self.m = mass * np.maximum(hs.alpha, float(mass_floor))
        self.dt = float(timestep)
        self.eta = np.zeros(n) if eta is None else np.asarray(eta, float).reshape(n)
        if not np.all(np.isfinite(self.eta)) or self.eta.min() < 0:
            raise SetupError("damping rates eta must be finite and >= 0", fix="pass eta (n,) in 1/ps")
        system = openmm.System()
        for mi in self.m:
            system.addParticle(float(mi))
        bond = openmm.CustomBondForce("w*4*epsilon*((sigma/r)^12-(sigma/r)^6)")
        bond.addGlobalParameter("sigma", float(sigma))
        bond.addGlobalParameter("epsilon", float(epsilon))
        bond.addPerBondParameter("w")
        for (i, j), w in zip(hs.lattice.bonds, hs.alpha_bond):
            bond.addBond(int(i), int(j), [float(w)])
        system.addForce(bond)
        integ = openmm.CustomIntegrator(self.dt)
        integ.addPerDofVariable("vref", 0.0)
        integ.addPerDofVariable("eta", 0.0)
        integ.addUpdateContextState()
        integ.addComputePerDof("v", "v+0.5*dt*f/m")
        integ.addComputePerDof("x", "x+dt*v")
        integ.addComputePerDof("v", "v+0.5*dt*f/m")
        integ.addComputePerDof("v", "vref+(v-vref)*exp(-eta*dt)")
        self.system = system
        self.context = select_platform(system, integ, platform, None)
        self.integrator = self.context.msbridge_integrator
        self.platform = self.context.getPlatform().getName()
        self.integrator.setPerDofVariableByName("eta", [openmm.Vec3(e, e, e) for e in self.eta])
        self.set_positions(hs.lattice.positions)
        self.set_velocities(np.zeros((n, self.d)))
        # the OpenMM expression must be the handshake's potential
        x = hs.lattice.positions * (1 + 0.01 * np.sin(np.arange(n) + 0.5)[:, None])
        E, f = self.energy_forces(x)
        E_ref, f_ref = hs.atom_energy_forces(x)
        tol = 1e-6 if self.platform == "Reference" else 1e-3
        scale = max(np.abs(f_ref).max(), 1e-30)
        if abs(E - E_ref) > tol * max(abs(E_ref), 1.0) or np.abs(f - f_ref).max() > tol * scale:
            raise SetupError(f"OpenMM's Lennard-Jones bonds (sigma={sigma}, epsilon={epsilon}) disagree with the "
                             f"handshake potential (energy {E:.8g} vs {E_ref:.8g} kJ/mol)",
                             fix="pass the sigma and epsilon of the PairPotential the Handshake was built with")
        self.set_positions(hs.lattice.positions)

    def _pad(self, a: np.ndarray) -> np.ndarray:
        a = np.asarray(a, float).reshape(-1, self.d)
        if not np.all(np.isfinite(a)):
            raise SetupError("positions or velocities contain NaN or inf", fix="pass finite arrays")
        out = np.zeros((len(a), 3))
        out[:, : self.d] = a
        return out

    def set_positions(self, x: np.ndarray) -> None:
        self.context.setPositions(self._pad(x))

    def set_velocities(self, v: np.ndarray) -> None:
        self.context.setVelocities(self._pad(v))

    def set_reference_velocities(self, vref: np.ndarray) -> None:
        import openmm

        self.integrator.setPerDofVariableByName("vref", [openmm.Vec3(*row) for row in self._pad(vref)])

    def state(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        """Positions, velocities, forces (n, d) and the bond energy (kJ/mol)."""
        with _python_force_errors():
            s = self.context.getState(getPositions=True, getVelocities=True, getForces=True, getEnergy=True)
        d = self.d
        x = _md(s.getPositions(asNumpy=True))[:, :d]
        v = _md(s.getVelocities(asNumpy=True))[:, :d]
        f = _md(s.getForces(asNumpy=True))[:, :d]
        E = _md(s.getPotentialEnergy())
        return x, v, f, float(E)

    def energy_forces(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        """Energy (kJ/mol) and forces (n, d) at positions ``x`` (the context moves there)."""
        self.set_positions(x)
        with _python_force_errors():
            s = self.context.getState(getForces=True, getEnergy=True)
        return float(_md(s.getPotentialEnergy())), _md(s.getForces(asNumpy=True))[:, : self.d]

    def substep(self, n: int) -> None:
        """``n`` velocity-Verlet steps (with fine-scale damping) inside OpenMM."""
        with _python_force_errors():
            self.integrator.step(int(n))


def handshake_engine(hs: Handshake, sigma: float, epsilon: float, mass: float, timestep: float,
                     **kw: Any) -> OpenMMLatticeEngine:
    """The OpenMM atom engine of ``hs`` (Lennard-Jones ``sigma`` nm, ``epsilon`` kJ/mol, ``mass`` amu).

    Keywords: ``eta`` (n,) 1/ps fine-scale damping, ``mass_floor`` (0.02), ``platform``
    (``"Reference"`` by default: double precision for the energy ledgers).
    """
    return OpenMMLatticeEngine(hs, sigma, epsilon, mass, timestep, **kw)
