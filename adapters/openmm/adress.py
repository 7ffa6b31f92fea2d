r"""Adaptive resolution on OpenMM (:mod:`bridge.adress`): one-bead molecules
(:class:`AdResSLiquid`, both schemes) and molecules of several atoms (:class:`AdResSMolecules`,
force interpolation, centres of mass as virtual sites; :class:`MolecularLiquid` is the same
molecules fully atomistic, the reference).

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
  refreshed from the positions every ``update_every`` steps (one ``getState``, NumPy, and an
  ``updateParametersInContext`` per force whose weights changed; ``update_every = 1`` is exact
  every step).  OpenMM has no bulk
  setter for per-particle parameters, so the refresh writes them one ``setParticleParameters``
  call each (~0.6 us per particle on this CPU, between steps), and only for the molecules whose
  weight changed (those in the pure regions keep 0 or 1);

The thermodynamic force (:class:`bridge.adress.ThermodynamicForce` for a slab,
:class:`bridge.adress.RadialThermodynamicForce` for a sphere) is a one-particle
``CustomCompoundBondForce`` per particle on a ``Continuous1DFunction`` of the slab coordinate
(periodic) or of the minimum-image distance from the sphere's centre (on the device; the table
changes once per iteration); for molecules it acts on the centre sites.  A ``LangevinMiddleIntegrator`` thermostats (required for force interpolation,
which does not conserve energy), or OpenMM's ``DPDIntegrator`` (``thermostat="dpd"``, one-bead
liquids and fully atomistic molecules: OpenMM 8.6's DPD turns massless virtual sites into NaN).

Units: OpenMM's (nm, kJ/mol, amu, ps).
"""
from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np

from bridge.adress import (PairPotential, RadialThermodynamicForce, ThermodynamicForce, centres_of_mass,
                           molecule_ids, unwrap_molecules)
from bridge.errors import SetupError
from bridge.zones import Slab, Sphere, Zone

from . import _require, select_platform

__all__ = ["AdResSLiquid", "AdResSMolecules", "MolecularLiquid", "zone_weight_expression"]

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


def _thermostat(kind: str, kT: float, gamma: float, dt: float, cutoff: float) -> "openmm.Integrator":
    if kind == "langevin":
        return openmm.LangevinMiddleIntegrator(kT / KB, float(gamma), dt)
    if kind == "dpd":
        return openmm.DPDIntegrator(kT / KB, float(gamma), float(cutoff), dt)
    raise SetupError(f"thermostat must be 'langevin' or 'dpd', got {kind!r}",
                     fix="pass thermostat='langevin' (per particle) or 'dpd' (pairwise, conserves momentum)")


def _check_box(zone: Zone, box: np.ndarray) -> None:
    if isinstance(zone, Slab) and (zone.period is None or not np.isclose(zone.period, box[zone.axis])):
        raise SetupError(f"the slab's period {zone.period} is not the box length {box[zone.axis]} along its axis",
                         fix="build the zone with period=box[axis]")
    if isinstance(zone, Sphere) and (zone.box is None or not np.allclose(zone.box, box)):
        raise SetupError(f"the sphere's box {zone.box} is not the liquid's box {box}",
                         fix="build the zone with box=<the same box lengths>")


def _periodic_system(box: np.ndarray) -> "openmm.System":
    system = openmm.System()
    system.setDefaultPeriodicBoxVectors(*(openmm.Vec3(*(box[k] * (np.arange(3) == k))) for k in range(3)))
    return system


def _add_tables(force, *potentials: PairPotential) -> None:
    added: dict[str, tuple] = {}
    for p in potentials:
        if p.table is not None:
            name, lo, hi, values = p.table
            if name in added:
                if added[name] != p.table:
                    raise SetupError(f"two different tabulated potentials are both named {name!r}",
                                     fix="give each its own name: tabulated(r, V, name='vat') / name='vcg'")
                continue
            added[name] = p.table
            force.addTabulatedFunction(name, openmm.Continuous1DFunction(list(values), lo, hi))


class _Runner:
    """What the liquids here share: state access, stepping with the weight refresh (force
    interpolation), the thermodynamic force.  A subclass sets ``context``, ``integrator``,
    ``system``, ``box``, ``zone`` (None: no adaptive resolution), ``scheme``, ``update_every``,
    ``n``, ``_centres`` (the particle indices of the molecules' centres: the weights and the
    thermodynamic force belong to them) and implements ``_write_weights``."""

    zone: Zone | None = None
    scheme = "none"
    update_every = 1
    _thermo = None
    _written = None          # the weights last written to the context (force interpolation)
    steps = 0

    def _start(self, system, integrator, platform: str | None, x: np.ndarray, seed: int) -> None:
        self.system = system
        integrator.setRandomNumberSeed(int(seed))
        self.context = select_platform(system, integrator, platform)
        self.integrator = self.context.getIntegrator()              # the copy bound to the context
        self.platform = self.context.getPlatform().getName()
        self.context.setPositions(x)
        self.context.computeVirtualSites()
        self.context.setVelocitiesToTemperature(self.kT / KB, int(seed))
        self.steps = 0

    # -- state -----------------------------------------------------------------------------------
    def _all_positions(self) -> np.ndarray:
        x = self.context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer)
        return np.asarray(x)

    def positions(self) -> np.ndarray:
        """``(n, 3)`` positions (nm) of the atoms (one-bead liquids: the beads), wrapped into the box."""
        return np.mod(self._all_positions()[:self.n], self.box)

    def centres(self) -> np.ndarray:
        """``(n_molecules, 3)`` centres of mass (nm), wrapped into the box."""
        return np.mod(self._all_positions()[self._centres], self.box)

    def forces(self) -> np.ndarray:
        """``(n, 3)`` forces (kJ/mol/nm) on the atoms (forces on centre sites already passed on to them)."""
        st = self.context.getState(getForces=True)
        return np.asarray(st.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer))[:self.n]

    def potential_energy(self) -> float:
        """kJ/mol.  H-AdResS: the Hamiltonian's potential energy; force interpolation has none -- the
        value is that of the pair expression with the weights held, not a conserved quantity."""
        st = self.context.getState(getEnergy=True)
        return float(st.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole))

    def refresh_weights(self, centres: np.ndarray | None = None) -> np.ndarray:
        """Set the per-particle weights from the centres' positions (force interpolation); returns
        the molecules' weights ``(n_molecules,)``."""
        if self.zone is None:
            raise SetupError("this liquid has no adaptive-resolution zone", fix="use AdResSMolecules (or AdResSLiquid)")
        c = self.centres() if centres is None else centres
        w = self.zone.weights(c)
        self.weights_now = w
        if self.scheme == "force":
            # only the molecules whose weight changed since the last write: those in the pure
            # regions keep 0 or 1, and each setParticleParameters is a Python call
            changed = (np.flatnonzero(w != self._written) if self._written is not None
                       else np.arange(len(w)))
            if len(changed):
                self._write_weights(w, changed)
            self._written = w.copy()
        return w

    def _write_weights(self, w: np.ndarray, changed: np.ndarray) -> None:  # pragma: no cover - overridden
        """Write the weights ``w`` of the molecules ``changed`` (indices) into the context."""
        raise NotImplementedError

    def step(self, n: int) -> None:
        """Advance ``n`` steps (weights refreshed every ``update_every`` steps for force interpolation)."""
        n = int(n)
        if self.scheme != "force":
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
    def set_thermodynamic_force(self, tf: ThermodynamicForce | RadialThermodynamicForce) -> None:
        """Apply ``tf`` from now on, acting on the molecules' centres: a slab's periodic table along its
        axis (:class:`~bridge.adress.ThermodynamicForce`) or a sphere's radial table
        (:class:`~bridge.adress.RadialThermodynamicForce`)."""
        z, t = self.zone, tf.zone
        if z is None:
            raise SetupError("this liquid has no adaptive-resolution zone", fix="use AdResSMolecules (or AdResSLiquid)")
        if isinstance(tf, RadialThermodynamicForce):
            same = isinstance(z, Sphere) and t.box is not None and np.allclose(
                [*t.centre, t.radius, t.hybrid_width, *t.box], [*z.centre, z.radius, z.hybrid_width, *z.box])
        else:
            same = isinstance(z, Slab) and t.axis == z.axis and np.allclose(
                [t.centre, t.half_width, t.hybrid_width, t.period], [z.centre, z.half_width, z.hybrid_width, z.period])
        if not same:
            raise SetupError("the thermodynamic force was made for another zone than the liquid's",
                             fix="build (or iterate) it with ThermodynamicForce(liquid.zone, ...) for a slab, "
                                 "RadialThermodynamicForce(liquid.zone, ...) for a sphere")
        _, U = tf.edge_potential()
        if isinstance(tf, RadialThermodynamicForce):
            # U(r) of the minimum-image distance from the centre; zero from r_max on (U(r_max) = 0
            # and a Continuous1DFunction is 0 beyond its range, so a later table of another r_max
            # needs no new expression).  The 1e-12 nm^2 keeps the derivative of sqrt finite for a
            # centre exactly on the sphere's centre, where the table is flat (|r| changes by at most
            # 1e-6 nm there)
            hi = float(tf.r_max)
            parts = []
            for k, a in enumerate("xyz"):
                c, L = float(z.centre[k]), float(self.box[k])
                parts.append(f"d{a} = {a}1 - {c!r} - {L!r}*floor(({a}1 - {c!r})/{L!r} + 0.5)")
            expr = "uth(r); r = sqrt(dx*dx + dy*dy + dz*dz + 1e-12); " + "; ".join(parts)
            table = (U.tolist(), 0.0, hi)
        else:
            # the slab coordinate wrapped into [0, L) on a periodic table (first value == last)
            hi = float(self.box[t.axis])
            axis = "xyz"[t.axis]
            expr = f"uth({axis}1 - {hi!r}*floor({axis}1/{hi!r}))"
            table = (U.tolist(), 0.0, hi, True)
        if self._thermo is None:
            # a one-particle CustomCompoundBondForce per centre: like a CustomExternalForce, but it
            # takes tabulated functions; on a centre site OpenMM passes the force on to the atoms
            # by their mass fractions
            f = openmm.CustomCompoundBondForce(1, expr)
            f.addTabulatedFunction("uth", openmm.Continuous1DFunction(*table))
            for i in self._centres.tolist():
                f.addBond([i], [])
            self.system.addForce(f)
            self._thermo = f
        else:
            self._thermo.getTabulatedFunction(0).setFunctionParameters(*table[:3])
        self.context.reinitialize(preserveState=True)    # keeps positions, velocities and the RNG state
        if self.scheme == "force":
            self.refresh_weights()

    def describe(self) -> dict[str, Any]:
        return {"particles": self.n, "molecules": len(getattr(self, "molecules", self._centres)), "scheme": self.scheme,
                "platform": self.platform, "update_every": self.update_every}


class AdResSLiquid(_Runner):
    """A one-bead-per-molecule liquid with adaptive resolution in OpenMM.

    Parameters
    ----------
    positions : ``(n, 3)`` nm; box : ``(3,)`` orthorhombic box lengths (nm).
    zone : Slab (periodic along its axis) or Sphere (``box`` given) -- the atomistic region.
    at, cg : :class:`bridge.adress.PairPotential` of the atomistic and coarse models.
    scheme : ``"force"`` or ``"hamiltonian"``.
    mass : amu; kT : kJ/mol; gamma : friction (1/ps); dt : ps.
    thermostat : ``"langevin"`` or ``"dpd"`` (OpenMM's ``DPDIntegrator``: pairwise friction within
        the larger cutoff, momentum conserved).
    update_every : steps between weight refreshes (``scheme="force"`` only).
    platform : OpenMM platform name.
    """

    def __init__(self, positions: np.ndarray, box, zone: Zone, at: PairPotential, cg: PairPotential, *,
                 scheme: str = "force", mass: float = 1.0, kT: float = 1.0, gamma: float = 1.0, dt: float = 0.005,
                 thermostat: str = "langevin", update_every: int = 1, platform: str = "CPU", seed: int = 1):
        if scheme not in ("force", "hamiltonian"):
            raise SetupError(f"scheme must be 'force' or 'hamiltonian', got {scheme!r}",
                             fix="pass scheme='force' (FI-AdResS) or 'hamiltonian' (H-AdResS)")
        rc = max(at.cutoff, cg.cutoff)
        x, box = _checked(positions, box, rc)
        self.update_every = _check_update_every(update_every)
        _check_box(zone, box)
        self.zone, self.box, self.scheme = zone, box, scheme
        self.n, self.mass, self.kT, self.dt = len(x), float(mass), float(kT), float(dt)
        self._centres = np.arange(self.n)
        system = _periodic_system(box)
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
        _add_tables(f, at, cg)
        f.setCutoffDistance(rc)
        system.addForce(f)
        self._pair = f
        self._start(system, _thermostat(thermostat, self.kT, gamma, self.dt, rc), platform, x, seed)

    def _write_weights(self, w: np.ndarray, changed: np.ndarray) -> None:
        f = self._pair
        for i, wi in zip(changed.tolist(), w[changed].tolist()):
            f.setParticleParameters(i, [wi])
        f.updateParametersInContext(self.context)


def _checked(positions, box, rc: float) -> tuple[np.ndarray, np.ndarray]:
    """``(positions (n, 3), box (3,))`` as float arrays, checked: finite positions, a box of at
    least twice the cutoff ``rc``."""
    x = np.asarray(positions, float)
    box = np.asarray(box, float).reshape(3)
    if x.ndim != 2 or x.shape[1] != 3 or not np.all(np.isfinite(x)):
        raise SetupError("positions must be a finite (n, 3) array", fix="pass positions in nm")
    if np.any(box < 2 * rc):
        raise SetupError(f"box {box} is shorter than twice the cutoff {rc}", fix="enlarge the box")
    return x, box


def _check_update_every(update_every) -> int:
    if int(update_every) < 1:
        raise SetupError(f"update_every must be >= 1, got {update_every}", fix="pass e.g. update_every=1")
    return int(update_every)


class MolecularLiquid(_Runner):
    """A liquid of molecules in OpenMM: ``at`` between atoms of different molecules, ``bonded``
    forces within them; optionally (``zone`` and ``cg`` given) with adaptive resolution by force
    interpolation -- :class:`AdResSMolecules`.  Alone, it is the fully atomistic reference.

    Parameters
    ----------
    positions : ``(n, 3)`` nm, the atoms; masses : ``(n,)`` amu; molecule : ``(n,)`` ids 0..n_mol-1.
    box : ``(3,)`` nm.  at : :class:`bridge.adress.PairPotential` between atoms of different molecules.
    bonded : OpenMM forces on atom indices acting within the molecules (bonds, angles...), added as
        given; every atom pair within a molecule is excluded from the pair forces.
    kT : kJ/mol; gamma : friction (1/ps); dt : ps; thermostat : ``"langevin"`` or ``"dpd"``.
    """

    def __init__(self, positions: np.ndarray, masses, molecule, box, at: PairPotential, *, bonded=(),
                 kT: float = 1.0, gamma: float = 1.0, dt: float = 0.005, thermostat: str = "langevin",
                 platform: str = "CPU", seed: int = 1, _cg: PairPotential | None = None, _zone: Zone | None = None,
                 _update_every: int = 1):
        rc = max(at.cutoff, _cg.cutoff if _cg is not None else 0.0)
        x, box = _checked(positions, box, rc)
        m = np.asarray(masses, float)
        if m.shape != (len(x),) or not np.all(m > 0):
            raise SetupError("masses must be (n,) positive values", fix="pass one mass (amu) per atom")
        self.molecule = molecule_ids(molecule, len(x))
        order = np.argsort(self.molecule, kind="stable")           # each molecule's atoms, first atom first
        self.molecules = np.split(order, np.cumsum(np.bincount(self.molecule))[:-1])
        for f in bonded:
            if isinstance(f, (openmm.NonbondedForce, openmm.CustomNonbondedForce)):
                raise SetupError("bonded forces must not be nonbonded forces (they would bypass the resolution)",
                                 fix="pass intermolecular interactions as `at` (and `cg`), bonds and angles as `bonded`")
        if _zone is not None and thermostat == "dpd":
            raise SetupError("OpenMM's DPDIntegrator turns the massless centre-of-mass sites into NaN",
                             fix="use thermostat='langevin' for molecules of several atoms (DPD works for "
                                 "one-bead liquids and fully atomistic MolecularLiquid)")
        self.box, self.kT, self.dt, self.n, self.masses = box, float(kT), float(dt), len(x), m
        system = _periodic_system(box)
        for mi in m.tolist():
            system.addParticle(mi)
        adaptive = _zone is not None
        # select(), not a product: a factor of 0 times an overflowing potential is NaN in single
        # precision (atoms of two coarse molecules may overlap; pass a capped `at` so that they stay
        # finite when they reach the hybrid layer)
        expr = f"select(a1*a2*w1*w2, w1*w2*({at.expression}), 0)" if adaptive else at.expression
        pair = openmm.CustomNonbondedForce(expr)
        if adaptive:
            pair.addPerParticleParameter("w")
            pair.addPerParticleParameter("a")
        for _ in range(self.n):
            pair.addParticle([1.0, 1.0] if adaptive else [])
        _add_tables(pair, at)
        pair.setNonbondedMethod(openmm.CustomNonbondedForce.CutoffPeriodic)
        pair.setCutoffDistance(at.cutoff)
        x = unwrap_molecules(x, self.molecule, box)      # OpenMM's bonds and sites do not use the minimum image
        exclusions = [(int(a), int(b)) for idx in self.molecules for k, a in enumerate(idx) for b in idx[k + 1:]]
        self._pair, self._coarse = pair, None
        if adaptive:
            # each molecule's centre of mass as a massless virtual site after the atoms
            self._centres = np.arange(self.n, self.n + len(self.molecules))
            for k, idx in enumerate(self.molecules):
                site = system.addParticle(0.0)
                system.setVirtualSite(site, _centre_site(idx, m[idx], x[idx], k))
                pair.addParticle([0.0, 0.0])                       # a site has no atomistic interactions
                exclusions += [(int(a), site) for a in idx]
            coarse = openmm.CustomNonbondedForce(f"select(c1*c2*(1 - w1*w2), (1 - w1*w2)*({_cg.expression}), 0)")
            coarse.addPerParticleParameter("w")
            coarse.addPerParticleParameter("c")
            for _ in range(self.n):
                coarse.addParticle([0.0, 0.0])                     # atoms have no coarse interactions
            for _ in self.molecules:
                coarse.addParticle([0.0, 1.0])
            _add_tables(coarse, _cg)
            coarse.setNonbondedMethod(openmm.CustomNonbondedForce.CutoffPeriodic)
            coarse.setCutoffDistance(_cg.cutoff)
            coarse.setForceGroup(2)            # GPU platforms want one cutoff per force group
            if _site_pairs_only(platform, len(self.molecules), len(x) + len(self.molecules), box, _cg.cutoff):
                sites = self._centres.tolist()
                coarse.addInteractionGroup(sites, sites)
            self._coarse = coarse
        else:
            self._centres = np.array([], int)
        for a, b in exclusions:                                   # OpenMM wants the same exclusions everywhere
            pair.addExclusion(a, b)
            if self._coarse is not None:
                self._coarse.addExclusion(a, b)
        system.addForce(pair)
        if self._coarse is not None:
            system.addForce(self._coarse)
        for k, f in enumerate(bonded):
            f = copy.deepcopy(f)
            f.setForceGroup(1)                                     # bonded forces apart: forces(groups=...)
            system.addForce(f)
        if adaptive:
            self.zone, self.scheme, self.update_every = _zone, "force", int(_update_every)
            c = np.mod(centres_of_mass(x, m, self.molecule), box)
            self.weights_now = _zone.weights(c)
        x_all = x if not adaptive else np.vstack([x, np.zeros((len(self.molecules), 3))])
        self._start(system, _thermostat(thermostat, self.kT, gamma, self.dt, rc), platform, x_all, seed)
        if adaptive:
            self.refresh_weights()

    def _raw_centres(self, x: np.ndarray) -> np.ndarray:
        if len(self._centres):
            return x[self._centres]
        return centres_of_mass(x[:self.n], self.masses, self.molecule)     # OpenMM keeps molecules whole

    def centres(self) -> np.ndarray:
        """``(n_molecules, 3)`` centres of mass (nm), wrapped into the box."""
        return np.mod(self._raw_centres(self._all_positions()), self.box)

    def positions(self) -> np.ndarray:
        """``(n, 3)`` atom positions (nm) with each molecule whole and its centre in the box (what
        a viewer draws, and what a new liquid can start from)."""
        x = self._all_positions()
        c = self._raw_centres(x)
        shift = self.box * np.floor(c / self.box)
        return x[:self.n] - shift[self.molecule]

    def forces(self, groups: set[int] | None = None) -> np.ndarray:
        """``(n, 3)`` forces (kJ/mol/nm) on the atoms; force groups: 0 the atomistic pairs and the
        thermodynamic force, 1 the bonded forces, 2 the coarse pairs (``{0, 2}``: the AdResS
        intermolecular forces)."""
        st = self.context.getState(getForces=True, groups=groups if groups is not None else -1)
        return np.asarray(st.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer))[:self.n]

    def _write_weights(self, w: np.ndarray, changed: np.ndarray) -> None:
        at, cg, n = self._pair, self._coarse, self.n
        for k in changed.tolist():
            wk = float(w[k])
            for a in self.molecules[k].tolist():
                at.setParticleParameters(a, [wk, 1.0])
            cg.setParticleParameters(n + k, [wk, 1.0])
        at.updateParametersInContext(self.context)
        cg.updateParametersInContext(self.context)


class AdResSMolecules(MolecularLiquid):
    """Molecules of several atoms with adaptive resolution by force interpolation in OpenMM.

    Each molecule's centre of mass is a massless virtual site (OpenMM computes it from the atoms
    every step and passes forces on it back to them by mass fraction -- exactly how AdResS shares
    a coarse force among a molecule's atoms).  Two ``CustomNonbondedForce``s carry
    ``w_a w_b V_AT`` between atoms of different molecules and ``(1 - w_a w_b) V_CG`` between the
    sites, a per-particle flag switching the other kind of particle off in each; on the CPU and
    Reference platforms the coarse force also loops over the site pairs only (an interaction
    group) where that is cheaper than the neighbour list of all particles -- these platforms
    evaluate a group's pairs without a neighbour list, so it pays only for a few hundred
    molecules (:func:`_site_pairs_only`; the coarse force 3x faster on the 269-molecule
    tetrahedral liquid, the neighbour list faster from about 500).  With the
    weights held constant between refreshes the forces are exactly
    ``w_a w_b F_AT + (1 - w_a w_b) F_CG``.  The weights are those of the sites' positions,
    refreshed every ``update_every`` steps (for each molecule whose weight changed, one
    ``setParticleParameters`` call per atom and one for its site, between steps).
    Intramolecular ``bonded`` forces act everywhere, as in AdResS.

    H-AdResS needs each atom's energy weighted by its molecule's weight, computed on the device;
    OpenMM's custom forces cannot give an atom the value of another particle, so molecules of
    several atoms use force interpolation only.

    Parameters as :class:`MolecularLiquid`, plus ``zone`` (the atomistic region), ``cg`` (the
    pair potential between centres of mass, analytic or :func:`bridge.adress.tabulated`) and
    ``update_every``.
    """

    def __init__(self, positions: np.ndarray, masses, molecule, box, zone: Zone, at: PairPotential,
                 cg: PairPotential, *, bonded=(), update_every: int = 1, **kwargs):
        update_every = _check_update_every(update_every)
        box = np.asarray(box, float).reshape(3)
        _check_box(zone, box)
        if kwargs.pop("scheme", "force") != "force":
            raise SetupError("molecules of several atoms use force interpolation only (H-AdResS needs each atom "
                             "weighted by its molecule's weight on the device, which OpenMM cannot express)",
                             fix="pass scheme='force', or use AdResSLiquid for one-bead molecules")
        super().__init__(positions, masses, molecule, box, at, bonded=bonded, _cg=cg, _zone=zone,
                         _update_every=update_every, **kwargs)


def _site_pairs_only(platform: str | None, n_sites: int, n_particles: int, box: np.ndarray, rc: float) -> bool:
    """Whether the coarse force should loop over the site pairs only (an interaction group) rather
    than over the neighbour list of every particle (atoms carry a flag that switches them off).
    OpenMM's CPU and Reference platforms evaluate an interaction group over all its pairs without a
    neighbour list: it pays while the site pairs are fewer than the pairs within the cutoff among
    all particles (measured, OpenMM 8.6 CPU, tetrahedral liquid, 2.5 sigma coarse cutoff: 269
    molecules, 36 000 site pairs against 38 000 neighbour pairs, coarse force 0.77 ms against
    2.27 ms; 538 molecules, 144 000 against 77 000, the whole step 4.0 ms against 3.6 ms).  GPU
    platforms, and an unnamed platform, keep the neighbour list."""
    if platform not in ("CPU", "Reference"):
        return False
    neighbours = 0.5 * n_particles * (n_particles / float(np.prod(box))) * 4.0 / 3.0 * np.pi * rc ** 3
    return 0.5 * n_sites * (n_sites - 1) <= neighbours


def _centre_site(idx: np.ndarray, m: np.ndarray, x: np.ndarray, k: int):
    """The centre of mass of atoms ``idx`` as an OpenMM virtual site."""
    w = (m / m.sum()).tolist()
    ids = [int(i) for i in idx]
    if len(ids) == 1:
        raise SetupError(f"molecule {k} has one atom", fix="use AdResSLiquid for one-bead molecules")
    if len(ids) == 2:
        return openmm.TwoParticleAverageSite(ids[0], ids[1], w[0], w[1])
    if len(ids) == 3:
        return openmm.ThreeParticleAverageSite(ids[0], ids[1], ids[2], w[0], w[1], w[2])
    # four or more: a local-coordinates site at the weighted origin; its frame (needed by OpenMM
    # even at zero offset) comes from the first three atoms, which must not be collinear
    a, b = x[1] - x[0], x[2] - x[0]
    if np.linalg.norm(np.cross(a, b)) < 1e-3 * np.linalg.norm(a) * np.linalg.norm(b):
        raise SetupError(f"molecule {k}: its first three atoms are collinear, so OpenMM cannot place its centre",
                         fix="order each molecule's atoms so that the first three are not on one line")
    xw = [-1.0, 1.0] + [0.0] * (len(ids) - 2)
    yw = [-1.0, 0.0, 1.0] + [0.0] * (len(ids) - 3)
    return openmm.LocalCoordinatesSite(ids, w, xw, yw, openmm.Vec3(0.0, 0.0, 0.0))
