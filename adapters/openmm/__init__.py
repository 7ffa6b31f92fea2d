"""OpenMM as a particle engine of the bridge.

:class:`OpenMMEngine` wraps an OpenMM ``System`` (or builds one from ASE ``Atoms`` with a
Lennard-Jones force field) in a ``Context`` on the fastest platform that works, and speaks the
:class:`bridge.protocols.ParticleEngine` protocol in OpenMM's own units (nm, ps, kJ/mol, amu).

External forces on a subset of atoms (:meth:`OpenMMEngine.add_external_force`) are held
constant between coupling exchanges and enter the energy as ``-sum_i f_i . (x_i - x_i^ref)``
(``x^ref``: the positions when the forces were set), so the integrators, the minimiser and the
reporters all see a consistent energy.  Two implementations, chosen by ``mode``:

``"python"`` (default where OpenMM >= 8.5)
    an ``openmm.PythonForce`` restricted to the subset with ``setParticles``: OpenMM calls back
    into NumPy at each force evaluation; changing the held forces is a NumPy assignment.
``"parameters"`` (the fallback, and the choice for OpenMM < 8.5 or for XML serialisation)
    a ``CustomExternalForce`` with per-particle parameters ``fx, fy, fz, x0, y0, z0``; new
    forces are pushed with ``updateParametersInContext`` (an O(subset) loop once per exchange)
    and the force runs on the device with no Python in the step.  In a periodic (orthorhombic)
    box the displacement ``x - x0`` is taken as a minimum image, because GPU platforms give
    custom forces wrapped coordinates; the box lengths are refreshed at every ``set_forces``.

State: :meth:`OpenMMEngine.get_state` returns OpenMM's exact binary checkpoint
(``Context.createCheckpoint``: positions, velocities, time, integrator RNG; bit-exact restart on
the same platform and OpenMM build) *and* the portable XML ``State``, plus the held external
forces.  :meth:`OpenMMEngine.set_state` restores from the checkpoint when the platform matches
and from XML otherwise (then the continuation is statistically, not bitwise, the same).
"""
from __future__ import annotations

import contextlib
import copy
import sys
from typing import Any, Mapping, Sequence

import numpy as np

from bridge import units
from bridge.errors import CalculationError, EngineNotAvailable, SetupError
from bridge.log import get_logger

_log = get_logger("openmm")

try:
    import openmm
    import openmm.unit as u
except ImportError as _exc:  # pragma: no cover - exercised only without the extra
    openmm = None
    _IMPORT_ERROR = str(_exc)
else:
    _IMPORT_ERROR = None

__all__ = ["OpenMMEngine", "ExternalForce", "select_platform", "lennard_jones_system",
           "PLATFORM_ORDER", "platforms", "version"]

#: Preference order when the user names no platform.
PLATFORM_ORDER = ("CUDA", "OpenCL", "CPU", "Reference")


def _require() -> None:
    if openmm is None:
        raise EngineNotAvailable("openmm", "openmm", reason=_IMPORT_ERROR)


def version() -> str:
    _require()
    return openmm.__version__


def platforms() -> list[str]:
    """Names of the OpenMM platforms this build registered (not all may run here)."""
    _require()
    return [openmm.Platform.getPlatform(i).getName() for i in range(openmm.Platform.getNumPlatforms())]


def _md(q: Any) -> np.ndarray:
    return np.asarray(q.value_in_unit_system(u.md_unit_system), dtype=float)


def select_platform(system: "openmm.System", integrator: "openmm.Integrator",
                    platform: str | None = None,
                    properties: Mapping[str, str] | None = None) -> "openmm.Context":
    """Create a ``Context`` on ``platform``, or on the first of :data:`PLATFORM_ORDER` that works.

    A platform is tried by creating the context (a registered CUDA platform on a machine without
    a GPU fails only then).  Each attempt binds its own copy of ``integrator`` (a failed context
    leaves its integrator bound), so the integrator that runs is ``context.getIntegrator()``.
    A named platform that fails raises :class:`SetupError` with OpenMM's reason; with no name,
    the skipped platforms are logged (``msbridge -v``) and kept in ``context.msbridge_skipped``.
    """
    _require()
    names = platforms()
    if platform is not None:
        if platform not in names:
            raise SetupError(f"OpenMM platform '{platform}' is not registered (have: {', '.join(names)})",
                             fix="choose one of those, or pass platform=None to pick the fastest")
        order = [platform]
    else:
        order = [p for p in PLATFORM_ORDER if p in names]
    skipped: dict[str, str] = {}
    for name in order:
        plat = openmm.Platform.getPlatformByName(name)
        props = dict(properties or {}) if platform is not None else {}
        attempt = copy.deepcopy(integrator)
        try:
            ctx = openmm.Context(system, attempt, plat, props)
        except openmm.OpenMMException as exc:
            skipped[name] = str(exc).strip()
            if platform is not None:
                raise SetupError(f"OpenMM platform '{name}' failed to start: {exc}",
                                 fix="check the platform properties and drivers, or let the bridge choose") from exc
            _log.info("OpenMM platform %s skipped: %s", name, skipped[name])
            continue
        ctx.msbridge_skipped = skipped
        ctx.msbridge_integrator = attempt
        return ctx
    raise SetupError(f"no OpenMM platform could start: {skipped}", fix="reinstall openmm")


def lennard_jones_system(n: int, sigma: float | np.ndarray, epsilon: float | np.ndarray,
                         mass: float | np.ndarray, *, box: np.ndarray | None = None,
                         cutoff: float | None = None, switch_distance: float | None = None,
                         dispersion_correction: bool = False,
                         charges: np.ndarray | None = None) -> "openmm.System":
    """A ``System`` of ``n`` Lennard-Jones particles (nm, kJ/mol, amu).

    ``box``: ``(3, 3)`` nm, rows are box vectors in OpenMM's reduced (lower-triangular) form, or
    None for a non-periodic system.  With a box the nonbonded method is ``CutoffPeriodic``
    (cutoff < half the smallest box height); without, ``CutoffNonPeriodic`` or ``NoCutoff`` if
    ``cutoff`` is None.  The potential is truncated, not shifted, unless ``switch_distance`` is
    given; no long-range dispersion correction unless asked for.
    """
    _require()
    sig = np.broadcast_to(np.asarray(sigma, float), (n,))
    eps = np.broadcast_to(np.asarray(epsilon, float), (n,))
    m = np.broadcast_to(np.asarray(mass, float), (n,))
    q = np.zeros(n) if charges is None else np.asarray(charges, float)
    if np.any(sig <= 0) or np.any(eps < 0) or np.any(m <= 0):
        raise SetupError("Lennard-Jones parameters need sigma > 0, epsilon >= 0, mass > 0",
                         fix="give sigma in nm, epsilon in kJ/mol, mass in amu")
    system = openmm.System()
    for mi in m:
        system.addParticle(float(mi))
    nb = openmm.NonbondedForce()
    for i in range(n):
        nb.addParticle(float(q[i]), float(sig[i]), float(eps[i]))
    if box is not None:
        box = np.asarray(box, float)
        _check_reduced_box(box)
        system.setDefaultPeriodicBoxVectors(*(openmm.Vec3(*row) for row in box))
        if cutoff is None:
            raise SetupError("a periodic Lennard-Jones system needs a cutoff", fix="pass cutoff in nm")
        half = 0.5 * min(box[0, 0], box[1, 1], box[2, 2])
        if cutoff > half:
            raise SetupError(f"cutoff {cutoff} nm exceeds half the box height {half:.4g} nm",
                             fix="use a larger box or a shorter cutoff")
        nb.setNonbondedMethod(openmm.NonbondedForce.CutoffPeriodic)
    elif cutoff is not None:
        nb.setNonbondedMethod(openmm.NonbondedForce.CutoffNonPeriodic)
    else:
        nb.setNonbondedMethod(openmm.NonbondedForce.NoCutoff)
    if cutoff is not None:
        nb.setCutoffDistance(float(cutoff))
        nb.setReactionFieldDielectric(1.0)
    if switch_distance is not None:
        nb.setUseSwitchingFunction(True)
        nb.setSwitchingDistance(float(switch_distance))
    nb.setUseDispersionCorrection(bool(dispersion_correction))
    system.addForce(nb)
    return system


def _python_force_errors() -> Any:
    """Inside engine calls: an error raised in a QM/MM ``PythonForce`` callback comes out as
    itself (e.g. PySCF's :class:`CalculationError`), not as a bare ``OpenMMException``."""
    mod = sys.modules.get(f"{__name__}.qmmm")
    return mod.python_force_errors() if mod is not None else contextlib.nullcontext()


def check_system(system: Any) -> int:
    """The number of particles of ``system``; a clear error if it is not a usable ``openmm.System``."""
    _require()
    if not isinstance(system, openmm.System):
        raise SetupError(f"system must be an openmm.System, got {type(system).__name__}",
                         fix="build one with openmm.app.ForceField.createSystem or lennard_jones_system")
    n = system.getNumParticles()
    if n == 0:
        raise SetupError("the OpenMM system has no particles", fix="add particles before using it")
    return n


def _check_reduced_box(box: np.ndarray) -> None:
    if box.shape != (3, 3) or not np.all(np.isfinite(box)):
        raise SetupError(f"box must be a finite (3, 3) array of box vectors, got shape {box.shape}",
                         fix="pass the three box vectors as rows, in nm")
    a, b, c = box
    ok = (a[1] == a[2] == b[2] == 0 and a[0] > 0 and b[1] > 0 and c[2] > 0
          and abs(b[0]) <= 0.5 * a[0] + 1e-12 and abs(c[0]) <= 0.5 * a[0] + 1e-12
          and abs(c[1]) <= 0.5 * b[1] + 1e-12)
    if not ok:
        raise SetupError("box vectors are not in OpenMM's reduced form (lower triangular, "
                         "|b_x| <= a_x/2, |c_x| <= a_x/2, |c_y| <= b_y/2)",
                         fix="reduce the cell first, e.g. ase.geometry.minkowski_reduce / Cell.standard_form")


class ExternalForce:
    """Forces held on a subset of particles until replaced (see the module docstring).

    Attributes: ``indices`` ``(k,)`` int; ``forces`` ``(k, 3)`` kJ/(mol nm); ``reference``
    ``(k, 3)`` nm; ``mode`` ``"python"`` or ``"parameters"``.
    """

    def __init__(self, engine: "OpenMMEngine", indices: np.ndarray, mode: str, force: Any, slot: int):
        self._engine = engine
        self.indices = indices
        self._index_list = [int(i) for i in indices]
        self.mode = mode
        self._force = force
        self.slot = slot
        self.forces = np.zeros((len(indices), 3))
        self.reference = np.zeros((len(indices), 3))

    # Called by OpenMM at each force evaluation (python mode): positions of the subset only.
    def _compute(self, state: "openmm.State") -> tuple[float, np.ndarray]:
        x = state.getPositions(asNumpy=True).value_in_unit(u.nanometer)
        energy = -float(np.sum(self.forces * (x - self.reference)))
        return energy, self.forces

    def set_forces(self, forces: np.ndarray, reference: np.ndarray | None = None) -> None:
        """Hold ``forces`` ``(k, 3)`` kJ/(mol nm) from now on.

        ``reference``: ``(k, 3)`` nm, the positions at which the held forces' energy is zero;
        by default the current positions of the subset (one extra ``getState``; pass them when
        you already have them).  NaN or infinite forces are refused before reaching OpenMM.
        """
        f = units.finite_array(forces, (len(self.indices), 3), name="external forces")
        if reference is None:
            reference = self._engine.get_positions()[self.indices]
        ref = units.finite_array(reference, (len(self.indices), 3), name="reference positions")
        self.forces = np.ascontiguousarray(f)
        self.reference = np.ascontiguousarray(ref)
        if self.mode == "parameters":
            frc = self._force
            rows = np.hstack([self.forces, self.reference]).tolist()   # plain floats: fast SWIG calls
            for k, (i, row) in enumerate(zip(self._index_list, rows)):
                frc.setParticleParameters(k, i, row)
            frc.updateParametersInContext(self._engine.context)
            if frc.getNumGlobalParameters():
                for name, length in zip([frc.getGlobalParameterName(i) for i in range(3)],
                                        np.diag(self._engine.get_box())):
                    self._engine.context.setParameter(name, float(length))

    def energy(self, positions: np.ndarray) -> float:
        """Energy (kJ/mol) of the held forces at full-system ``positions`` ``(n, 3)`` nm."""
        return -float(np.sum(self.forces * (positions[self.indices] - self.reference)))


class OpenMMEngine:
    """An OpenMM ``System`` in a ``Context``, as a :class:`bridge.protocols.ParticleEngine`.

    Parameters
    ----------
    system : openmm.System
    positions : (n, 3) nm, array or Quantity
    topology : openmm.app.Topology, optional (kept for writers and selections)
    integrator : openmm.Integrator, optional. Default: ``VerletIntegrator(timestep)`` (NVE), or
        ``LangevinMiddleIntegrator(temperature, friction, timestep)`` when ``temperature`` is given.
    timestep : ps (default 0.002); temperature : K; friction : 1/ps (default 1.0)
    platform : "CUDA", "OpenCL", "CPU" or "Reference"; None picks the first that works in
        :data:`PLATFORM_ORDER`.  platform_properties : dict passed to OpenMM (named platform only).
    velocities : (n, 3) nm/ps, optional; box : (3, 3) nm rows, optional (else the system default).
    seed : random seed of the Langevin integrator (0 lets OpenMM choose).
    """

    def __init__(self, system: "openmm.System", positions: Any, *, topology: Any = None,
                 integrator: "openmm.Integrator | None" = None, timestep: Any = 0.002,
                 temperature: Any = None, friction: Any = 1.0, platform: str | None = None,
                 platform_properties: Mapping[str, str] | None = None, velocities: Any = None,
                 box: Any = None, seed: int = 0):
        n = check_system(system)
        pos = units.finite_array(positions, (n, 3), name="positions")
        dt = units.to_internal(timestep, name="timestep")
        if dt <= 0:
            raise SetupError(f"timestep must be positive, got {dt} ps", fix="pass e.g. timestep=0.002 (ps)")
        if integrator is None:
            if temperature is None:
                integrator = openmm.VerletIntegrator(dt)
            else:
                T = units.to_internal(temperature, name="temperature")
                gamma = units.to_internal(friction, name="friction")
                integrator = openmm.LangevinMiddleIntegrator(T, gamma, dt)
                integrator.setRandomNumberSeed(int(seed))
        self.system = system
        self.topology = topology
        self._externals: list[ExternalForce] = []
        self.context = select_platform(system, integrator, platform, platform_properties)
        #: the integrator bound to the context (a copy of the one passed in)
        self.integrator = self.context.msbridge_integrator
        self.platform = self.context.getPlatform().getName()
        if box is not None:
            b = units.finite_array(box, (3, 3), name="box")
            _check_reduced_box(b)
            self.context.setPeriodicBoxVectors(*(openmm.Vec3(*row) for row in b))
        self._masses = np.array([system.getParticleMass(i).value_in_unit(u.dalton) for i in range(n)])
        self.context.setPositions(pos)
        if velocities is not None:
            self.set_velocities(velocities)

    # -- construction from ASE --------------------------------------------------------
    @classmethod
    def from_atoms(cls, atoms: Any, *, lennard_jones: Mapping[str, tuple[float, float]],
                   cutoff: float | None = None, switch_distance: float | None = None,
                   dispersion_correction: bool = False, **kwargs: Any) -> "OpenMMEngine":
        """An engine for ASE ``Atoms`` with a Lennard-Jones force field.

        ``lennard_jones``: ``{symbol: (sigma nm, epsilon kJ/mol)}`` for every element present.
        Masses and initial charges come from the Atoms; a fully periodic cell (which must already
        be in reduced, lower-triangular form -- ``atoms.cell.standard_form()`` gives one) becomes
        the periodic box.  Other keyword arguments go to the constructor.
        """
        _require()
        symbols = atoms.get_chemical_symbols()
        missing = sorted(set(symbols) - set(lennard_jones))
        if missing:
            raise SetupError(f"no Lennard-Jones parameters for element(s) {missing}",
                             fix="add them to lennard_jones={symbol: (sigma_nm, epsilon_kJ_per_mol)}")
        sig = np.array([lennard_jones[s][0] for s in symbols], float)
        eps = np.array([lennard_jones[s][1] for s in symbols], float)
        pbc = np.asarray(atoms.pbc)
        if pbc.any() and not pbc.all():
            raise SetupError("OpenMM needs periodicity in all three directions or none",
                             fix="set atoms.pbc = True or False")
        box = np.asarray(atoms.cell.array) * units.ANGSTROM if pbc.all() else None
        system = lennard_jones_system(len(atoms), sig, eps, atoms.get_masses(), box=box, cutoff=cutoff,
                                      switch_distance=switch_distance,
                                      dispersion_correction=dispersion_correction,
                                      charges=atoms.get_initial_charges())
        pos = atoms.get_positions() * units.ANGSTROM
        vel = atoms.get_velocities()
        if vel is not None and np.any(vel):
            import ase.units as au
            # ASE velocity unit: angstrom per ASE time unit; au.fs ASE time units make one fs.
            kwargs.setdefault("velocities", vel * au.fs * 100.0)
        return cls(system, pos, **kwargs)

    # -- the ParticleEngine protocol --------------------------------------------------
    @property
    def n_particles(self) -> int:
        return len(self._masses)

    @property
    def masses(self) -> np.ndarray:
        """(n,) amu (a copy)."""
        return self._masses.copy()

    @property
    def time(self) -> float:
        """Simulation time (ps)."""
        return float(self.context.getTime().value_in_unit(u.picosecond))

    @property
    def timestep(self) -> float:
        return float(self.integrator.getStepSize().value_in_unit(u.picosecond))

    def get_positions(self) -> np.ndarray:
        """(n, 3) nm, not wrapped into the box."""
        return _md(self.context.getState(getPositions=True).getPositions(asNumpy=True))

    def set_positions(self, positions: Any) -> None:
        self.context.setPositions(units.finite_array(positions, (self.n_particles, 3), name="positions"))

    def get_velocities(self) -> np.ndarray:
        """(n, 3) nm/ps."""
        return _md(self.context.getState(getVelocities=True).getVelocities(asNumpy=True))

    def set_velocities(self, velocities: Any) -> None:
        self.context.setVelocities(units.finite_array(velocities, (self.n_particles, 3), name="velocities"))

    def set_velocities_to_temperature(self, temperature: Any, seed: int = 1) -> None:
        self.context.setVelocitiesToTemperature(units.to_internal(temperature, name="temperature"), int(seed))

    def get_box(self) -> np.ndarray:
        """(3, 3) nm, rows are the periodic box vectors."""
        return _md(self.context.getState().getPeriodicBoxVectors(asNumpy=True))

    def set_box(self, box: Any) -> None:
        b = units.finite_array(box, (3, 3), name="box")
        _check_reduced_box(b)
        self.context.setPeriodicBoxVectors(*(openmm.Vec3(*row) for row in b))

    def get_forces(self) -> np.ndarray:
        """(n, 3) kJ/(mol nm), including held external forces."""
        with _python_force_errors():
            f = _md(self.context.getState(getForces=True).getForces(asNumpy=True))
        self._check_finite(f, "forces")
        return f

    def get_potential_energy(self) -> float:
        """kJ/mol, including the energy of held external forces."""
        with _python_force_errors():
            e = self.context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(u.kilojoule_per_mole)
        self._check_finite(np.array(e), "potential energy")
        return float(e)

    def get_kinetic_energy(self) -> float:
        """kJ/mol (as OpenMM's integrator reports it)."""
        with _python_force_errors():
            state = self.context.getState(getEnergy=True)
        return float(state.getKineticEnergy().value_in_unit(u.kilojoule_per_mole))

    def step(self, n: int) -> None:
        """Advance ``n`` integrator steps."""
        n = int(n)
        if n < 0:
            raise SetupError(f"cannot step a negative number of steps ({n})", fix="pass n >= 0")
        if n:
            with _python_force_errors():
                self.integrator.step(n)

    def minimize(self, tolerance: float = 10.0, max_iterations: int = 0) -> float:
        """Local energy minimisation (OpenMM L-BFGS); returns the final energy (kJ/mol)."""
        with _python_force_errors():
            openmm.LocalEnergyMinimizer.minimize(self.context, tolerance, int(max_iterations))
        return self.get_potential_energy()

    def _check_finite(self, arr: np.ndarray, what: str) -> None:
        if not np.all(np.isfinite(arr)):
            raise CalculationError(f"OpenMM produced non-finite {what} at t = {self.time:g} ps",
                                   reason="the system blew up (time step too large, overlapping atoms?)",
                                   fix="minimise first, or reduce the time step")

    # -- external forces --------------------------------------------------------------
    def add_external_force(self, indices: Sequence[int], mode: str | None = None) -> ExternalForce:
        """Hold external forces on the particles ``indices`` (see the module docstring).

        Adding a force changes the ``System``, so the context is reinitialised (positions,
        velocities, time and box are kept); do it once at set-up, then call
        ``handle.set_forces`` every exchange.
        """
        idx = np.asarray(indices, dtype=np.int64).ravel()
        if idx.size == 0 or idx.min() < 0 or idx.max() >= self.n_particles or len(np.unique(idx)) != idx.size:
            raise SetupError(f"external-force indices must be unique and in [0, {self.n_particles})",
                             fix="pass the particle indices of the coupled subset, each once")
        if mode is None:
            mode = "python" if hasattr(openmm, "PythonForce") else "parameters"
        if mode not in ("python", "parameters"):
            raise SetupError(f"unknown external-force mode '{mode}'", fix="use 'python' or 'parameters'")
        if mode == "python" and not hasattr(openmm, "PythonForce"):
            raise SetupError(f"OpenMM {openmm.__version__} has no PythonForce (needs >= 8.5)",
                             fix="use mode='parameters' or upgrade openmm")
        if mode == "python":
            handle = ExternalForce(self, idx, mode, None, len(self._externals))
            force = openmm.PythonForce(handle._compute)
            force.setParticles([int(i) for i in idx])
        else:
            slot = len(self._externals)
            if self.system.usesPeriodicBoundaryConditions():
                box = self.get_box()
                if np.any(box[np.triu_indices(3, 1)]) or np.any(box[np.tril_indices(3, -1)]):
                    raise SetupError("mode='parameters' supports orthorhombic periodic boxes only",
                                     fix="use mode='python' for a triclinic box")
                # GPU platforms hand CustomExternalForce wrapped coordinates: minimum image
                L = [f"msb_L{c}{slot}" for c in "xyz"]
                expr = ("-(fx*dx + fy*dy + fz*dz); "
                        + "; ".join(f"d{c} = ({c}-{c}0) - {l}*floor(({c}-{c}0)/{l} + 0.5)" for c, l in zip("xyz", L)))
                force = openmm.CustomExternalForce(expr)
                for name, length in zip(L, np.diag(box)):
                    force.addGlobalParameter(name, float(length))
            else:
                force = openmm.CustomExternalForce("-(fx*(x-x0) + fy*(y-y0) + fz*(z-z0))")
            for name in ("fx", "fy", "fz", "x0", "y0", "z0"):
                force.addPerParticleParameter(name)
            for i in idx:
                force.addParticle(int(i), (0.0,) * 6)
            handle = ExternalForce(self, idx, mode, force, len(self._externals))
        force.setName(f"msbridge external force {handle.slot}")
        self.system.addForce(force)
        self.context.reinitialize(preserveState=True)
        self._externals.append(handle)
        return handle

    # -- state ------------------------------------------------------------------------
    def get_state(self) -> dict[str, Any]:
        """Exact checkpoint + portable XML + held external forces (a flat dict for checkpoints)."""
        xml = openmm.XmlSerializer.serialize(
            self.context.getState(getPositions=True, getVelocities=True, getParameters=True,
                                  getIntegratorParameters=True))
        out: dict[str, Any] = {"checkpoint": bytes(self.context.createCheckpoint()),
                               "state_xml": xml, "platform": self.platform,
                               "openmm_version": openmm.__version__, "time": self.time}
        for h in self._externals:
            out[f"external{h.slot}_forces"] = h.forces.copy()
            out[f"external{h.slot}_reference"] = h.reference.copy()
        return out

    def set_state(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`get_state` output: bit-exact on the same platform and OpenMM build."""
        exact = state.get("platform") == self.platform and state.get("openmm_version") == openmm.__version__
        if exact and "checkpoint" in state:
            self.context.loadCheckpoint(bytes(state["checkpoint"]))
        elif "state_xml" in state:
            self.context.setState(openmm.XmlSerializer.deserialize(str(state["state_xml"])))
        else:
            raise SetupError("state has neither an OpenMM checkpoint nor an XML state",
                             fix="pass the dict returned by OpenMMEngine.get_state()")
        for h in self._externals:
            key = f"external{h.slot}_forces"
            if key in state:
                h.set_forces(np.asarray(state[key]), np.asarray(state[f"external{h.slot}_reference"]))


def describe() -> dict:
    """What ``msbridge info`` shows: version, registered platforms, and which of them start."""
    _require()
    usable = []
    for name in platforms():
        plat = openmm.Platform.getPlatformByName(name)
        sysm = openmm.System()
        sysm.addParticle(1.0)
        try:
            openmm.Context(sysm, openmm.VerletIntegrator(0.001), plat)
            usable.append(name)
        except openmm.OpenMMException:
            pass
    chosen = next((p for p in PLATFORM_ORDER if p in usable), None)
    return {"version": openmm.__version__, "platforms": ", ".join(platforms()),
            "usable": ", ".join(usable), "default platform": chosen,
            "PythonForce": hasattr(openmm, "PythonForce")}


def __getattr__(name: str) -> Any:
    """QM/MM helpers (:mod:`.qmmm`), imported on first use: ``from bridge_adapters.openmm import
    select_atoms`` works like ``from bridge_adapters.openmm.qmmm import select_atoms``."""
    if not name.startswith("_") and name != "qmmm":
        import importlib
        qmmm = importlib.import_module(".qmmm", __name__)
        if name in qmmm.__all__:
            return getattr(qmmm, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
