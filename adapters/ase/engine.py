r"""Any ASE calculator as a bridge particle engine (:class:`ASEEngine`) or energy model
(:class:`ASEModel`).

Units.  ASE works in eV, Å, amu and its own time unit
:math:`\mathrm{Å}\sqrt{\mathrm{amu}/\mathrm{eV}}`
(``ase.units.fs`` of them make one femtosecond).  The bridge works in kJ/mol, nm, amu, ps.
The conversions, all applied here at the edge, are

=========== ========================== =================================================
quantity    bridge unit                one ASE unit in bridge units
=========== ========================== =================================================
length      nm                         :data:`bridge.units.ANGSTROM` (0.1)
energy      kJ/mol                     :data:`bridge.units.EV`
force       kJ/(mol nm)                ``EV / ANGSTROM``
time        ps                         ``FS / ase.units.fs``
velocity    nm/ps                      ``ANGSTROM / (FS / ase.units.fs)``
=========== ========================== =================================================

External forces.  :meth:`ASEEngine.add_external_force` returns a handle (the same API as
the OpenMM adapter's ``ExternalForce``) whose forces :math:`f_i` (kJ/(mol nm)) are added to the
calculator's forces and whose work enters the potential energy as
:math:`-\sum_i f_i \cdot (x_i - x_i^\mathrm{ref})`, with :math:`x^\mathrm{ref}` the
``reference`` passed to ``set_forces`` (default: the positions when the forces were set).
Energy is conserved while the forces are held; setting new forces resets the reference (the
potential energy then jumps by the old term, which the coupling method books as work).
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from bridge.errors import CalculationError, EngineNotAvailable, SetupError
from bridge.options import check_options, check_properties
from bridge.units import ANGSTROM, EV, FS, finite_array, to_internal

__all__ = ["ASEEngine", "ASEModel", "ExternalForce", "ase_units"]


def _ase():
    """Import what the adapter needs from ASE, or raise :class:`EngineNotAvailable`."""
    try:
        import ase
        import ase.units
        from ase.calculators.calculator import CalculatorError
        from ase.md.verlet import VelocityVerlet

        from ._calculator import ExternalForceCalculator
    except ImportError as exc:
        raise EngineNotAvailable("ase", "ase", reason=str(exc)) from exc
    return ase, ase.units, VelocityVerlet, CalculatorError, ExternalForceCalculator


def ase_units() -> dict[str, float]:
    """One ASE unit of each quantity, in bridge units (see the module docstring).

    Returns:
      ``{"length": nm, "energy": kJ/mol, "force": kJ/(mol nm), "time": ps,
      "velocity": nm/ps}`` per Å, eV, eV/Å, ASE time unit and Å per ASE time unit.
    """
    units = _ase()[1]
    time = FS / units.fs
    return {"length": ANGSTROM, "energy": EV, "force": EV / ANGSTROM, "time": time,
            "velocity": ANGSTROM / time}


def _restore(internal: Any, native: Any, factor: np.ndarray | float, name: str,
             shape: tuple[int | None, ...]) -> np.ndarray:
    """Native-unit array for ``set_state``: the exact native copy when the internal one is
    its unmodified conversion, otherwise the internal one converted back."""
    arr = finite_array(internal, shape, name=name)
    if native is not None:
        nat = np.asarray(native, dtype=float)
        if nat.shape == arr.shape and np.array_equal(nat * factor, arr):
            return nat.copy()
    return arr / factor


def _check_atoms(atoms: Any) -> None:
    """Refuse NaN/inf positions, momenta or cell, or non-positive masses, in an ``ase.Atoms``."""
    n = len(atoms)
    finite_array(atoms.get_positions(), (n, 3), name="atoms.positions")
    finite_array(atoms.cell[:], (3, 3), name="atoms.cell")
    if atoms.has("momenta"):
        finite_array(atoms.get_momenta(), (n, 3), name="atoms momenta")
    masses = np.asarray(atoms.get_masses(), dtype=float)
    if not np.all(np.isfinite(masses) & (masses > 0)):
        bad = np.flatnonzero(~(np.isfinite(masses) & (masses > 0))).tolist()
        raise SetupError(f"atoms masses must be positive and finite; atoms {bad} are not",
                         fix="fix them with atoms.set_masses(...) (or leave ASE's defaults)")


@contextmanager
def _engine_call(calculator_error: type[Exception], what: str) -> Iterator[None]:
    """Turn an ASE calculator failure into :class:`CalculationError`."""
    try:
        yield
    except calculator_error as exc:
        raise CalculationError(f"ASE calculator failed during {what}",
                               reason=f"{type(exc).__name__}: {exc}",
                               fix="check the geometry (overlapping or far-flung atoms) and "
                                   "that the calculator supports these elements") from exc


class ExternalForce:
    """External forces held on a subset of an :class:`ASEEngine`'s atoms until replaced.

    The same API as the OpenMM adapter's ``ExternalForce``: :meth:`set_forces` with an
    optional ``reference``, :meth:`energy` of full-system positions; plus :meth:`remove`.

    Attributes:
      indices: ``(k,)`` int, the atoms the forces act on.
      forces: ``(k, 3)`` kJ/(mol nm), the forces held now (a copy; zero at first).
      reference: ``(k, 3)`` nm, the positions at which the held forces' energy is zero (a copy;
        the positions of the subset when the handle was made, until :meth:`set_forces`).
    """

    def __init__(self, engine: "ASEEngine", indices: np.ndarray):
        self._engine = engine
        self.indices = indices
        native = engine._atoms.positions[indices].copy()
        self._forces = np.zeros((len(indices), 3))
        self._reference = native * engine._units["length"]
        # what the calculator wrapper reads, in ASE units: indices, forces eV/Å, reference Å
        self._term = [indices, np.zeros((len(indices), 3)), native]
        self._active = True

    def set_forces(self, forces: Any, reference: Any = None) -> None:
        """Hold ``forces`` ``(k, 3)`` kJ/(mol nm) on :attr:`indices` from now on.

        ``reference``: ``(k, 3)`` nm, the positions at which the held forces' energy is zero;
        by default the current positions of the subset.  The potential energy gains
        ``-sum f . (x - reference)``.  NaN or infinite entries are refused before reaching ASE.
        """
        if not self._active:
            raise SetupError("this external force was removed",
                             fix="call engine.add_external_force(indices) for a new handle")
        u = self._engine._units
        k = len(self.indices)
        f = finite_array(forces, (k, 3), name="external forces")
        if reference is None:
            native = self._engine._atoms.positions[self.indices].copy()
            ref = native * u["length"]
        else:
            ref = finite_array(reference, (k, 3), name="reference positions").copy()
            native = ref / u["length"]
        self._forces = f.copy()
        self._reference = ref
        self._term[1] = f / u["force"]
        self._term[2] = native
        self._engine._wrapper.reset()

    @property
    def forces(self) -> np.ndarray:
        """``(k, 3)`` kJ/(mol nm), the forces held now (a copy)."""
        return self._forces.copy()

    @property
    def reference(self) -> np.ndarray:
        """``(k, 3)`` nm, the positions at which the held forces' energy is zero (a copy)."""
        return self._reference.copy()

    def energy(self, positions: Any) -> float:
        """Energy (kJ/mol) of the held forces at full-system ``positions`` ``(n, 3)`` nm:
        ``-sum f . (positions[indices] - reference)``."""
        x = finite_array(positions, (self._engine.n_particles, 3), name="positions")
        return -float(np.sum(self._forces * (x[self.indices] - self._reference)))

    def remove(self) -> None:
        """Stop applying these forces (their energy term goes with them)."""
        if self._active:
            self._engine._remove_handle(self)
            self._active = False


class ASEEngine:
    """An ASE ``Atoms`` with a calculator, stepped by an ASE MD integrator, in bridge units.

    Implements :class:`bridge.protocols.ParticleEngine`.

    Args:
      atoms: the ``ase.Atoms`` to simulate (copied; the caller's object is never changed).
        Momenta, if set, are the initial velocities; otherwise they start at zero.
      calculator: an ASE calculator; default ``atoms.calc``.
      timestep: MD time step, ps (float or ``openmm.unit`` Quantity); default 0.001 (1 fs).
      integrator: a callable ``(atoms, timestep_ase) -> ase.md.MolecularDynamics``, e.g.
        ``functools.partial(Langevin, temperature_K=300, friction=...)``; default
        ``ase.md.verlet.VelocityVerlet``.  The time step is passed in ASE time units.

    Any other keyword is a :class:`SetupError`, and so are NaN or infinite positions,
    momenta or cell in ``atoms`` (refused before anything reaches ASE).

    Checkpoints: :meth:`get_state` holds positions, velocities, cell and time in bridge units
    (portable) plus the ASE-unit arrays they came from, so :meth:`set_state` of an unmodified
    state restores the engine bit for bit.  A stochastic integrator's random stream is not
    part of the state.
    """

    def __init__(self, atoms: Any, calculator: Any = None, timestep: Any = 0.001, *,
                 integrator: Callable[..., Any] | None = None, **unknown: Any):
        ase, units, VelocityVerlet, CalculatorError, Wrapper = _ase()
        check_options(unknown, ("calculator", "timestep", "integrator"), "ASEEngine")
        if not isinstance(atoms, ase.Atoms):
            raise SetupError(f"atoms must be an ase.Atoms, got {type(atoms).__name__}",
                             fix="build one with ase.Atoms(...) or ase.io.read(...)")
        if len(atoms) == 0:
            raise SetupError("atoms is empty", fix="pass an ase.Atoms with at least one atom")
        _check_atoms(atoms)
        calc = calculator if calculator is not None else atoms.calc
        if calc is None:
            raise SetupError("no ASE calculator given",
                             fix="pass calculator=..., or attach one as atoms.calc")
        dt = to_internal(timestep, name="timestep")
        if not np.ndim(dt) == 0 or not dt > 0:
            raise SetupError(f"timestep must be a positive number of ps, got {timestep!r}",
                             fix="pass e.g. timestep=0.001 (1 fs) or an openmm.unit Quantity")
        self._units = ase_units()
        self._calculator_error = CalculatorError
        self._atoms = atoms.copy()
        self._wrapper = Wrapper(calc)
        self._atoms.calc = self._wrapper
        self._dt = float(dt)
        self._time_origin = 0.0
        self._steps = 0
        self._handles: list[ExternalForce] = []
        factory = integrator if integrator is not None else VelocityVerlet
        self._dyn = factory(self._atoms, self._dt / self._units["time"])
        if not self._atoms.has("momenta"):
            self._atoms.set_momenta(np.zeros((len(self._atoms), 3)))

    # -- protocol -------------------------------------------------------------------------

    @property
    def n_particles(self) -> int:
        return len(self._atoms)

    @property
    def masses(self) -> np.ndarray:
        """``(n,)`` amu."""
        return np.array(self._atoms.get_masses(), dtype=float)

    @property
    def time(self) -> float:
        """ps since the start (or since the time restored by :meth:`set_state`)."""
        return self._time_origin + self._steps * self._dt

    @property
    def timestep(self) -> float:
        """ps."""
        return self._dt

    @property
    def calculator(self) -> Any:
        """The wrapped ASE calculator."""
        return self._wrapper.base

    @property
    def integrator(self) -> Any:
        """The ASE MD integrator object."""
        return self._dyn

    def get_positions(self) -> np.ndarray:
        """``(n, 3)`` nm."""
        return self._atoms.get_positions() * self._units["length"]

    def set_positions(self, positions: Any) -> None:
        """``positions``: ``(n, 3)`` nm (constraints of the Atoms are applied)."""
        x = finite_array(positions, (self.n_particles, 3), name="positions")
        self._atoms.set_positions(x / self._units["length"])

    def get_velocities(self) -> np.ndarray:
        """``(n, 3)`` nm/ps."""
        return self._atoms.get_velocities() * self._units["velocity"]

    def set_velocities(self, velocities: Any) -> None:
        """``velocities``: ``(n, 3)`` nm/ps."""
        v = finite_array(velocities, (self.n_particles, 3), name="velocities")
        self._atoms.set_velocities(v / self._units["velocity"])

    def get_forces(self) -> np.ndarray:
        """``(n, 3)`` kJ/(mol nm): the calculator's forces plus the external forces."""
        with _engine_call(self._calculator_error, "get_forces"):
            f = np.array(self._atoms.get_forces(), dtype=float)
        self._check_finite(f, "forces")
        return f * self._units["force"]

    def get_potential_energy(self) -> float:
        """kJ/mol: the calculator's energy plus ``-sum f . (x - x_ref)`` of external forces."""
        with _engine_call(self._calculator_error, "get_potential_energy"):
            e = float(self._atoms.get_potential_energy())
        self._check_finite(e, "potential energy")
        return e * self._units["energy"]

    def get_kinetic_energy(self) -> float:
        """kJ/mol, ``sum m v^2 / 2`` in bridge units."""
        v = self.get_velocities()
        return 0.5 * float(np.sum(self.masses[:, None] * v * v))

    def step(self, n: int = 1) -> None:
        """Advance ``n`` time steps with the integrator."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise SetupError(f"step(n) needs a non-negative integer, got {n!r}",
                             fix="pass the number of time steps as an int, e.g. step(10)")
        if n == 0:
            return
        with _engine_call(self._calculator_error, "step"):
            self._dyn.run(int(n))
        self._steps += int(n)
        self._check_finite(self._atoms.positions, "positions after step")
        self._check_finite(self._atoms.get_momenta(), "momenta after step")

    def add_external_force(self, indices: Sequence[int]) -> ExternalForce:
        """Hold external forces on atoms ``indices``; returns a handle with ``set_forces``.

        The forces start at zero.  Handles may overlap; their forces add.
        """
        idx = np.asarray(indices)
        if idx.ndim != 1 or (idx.size and not np.issubdtype(idx.dtype, np.integer)):
            raise SetupError(f"indices must be a 1-D sequence of integers, got {indices!r}",
                             fix="pass atom indices such as [0, 4, 7]")
        idx = idx.astype(np.intp)
        if idx.size and (idx.min() < 0 or idx.max() >= self.n_particles):
            raise SetupError(f"indices out of range 0..{self.n_particles - 1}: "
                             f"{idx[(idx < 0) | (idx >= self.n_particles)].tolist()}",
                             fix=f"use 0-based indices below n_particles ({self.n_particles})")
        if len(np.unique(idx)) != len(idx):
            values, counts = np.unique(idx, return_counts=True)
            raise SetupError(f"indices contain duplicates: {values[counts > 1].tolist()}",
                             fix="list each atom once (add a second handle to stack forces)")
        handle = ExternalForce(self, idx)
        self._handles.append(handle)
        self._wrapper.terms.append(handle._term)
        self._wrapper.reset()
        return handle

    def _remove_handle(self, handle: ExternalForce) -> None:
        k = self._handles.index(handle)
        del self._handles[k]
        del self._wrapper.terms[k]
        self._wrapper.reset()

    def get_state(self) -> dict[str, Any]:
        """A checkpoint as a flat dict of numpy arrays.

        Keys: ``positions`` ``(n, 3)`` nm, ``velocities`` ``(n, 3)`` nm/ps, ``cell``
        ``(3, 3)`` nm, ``time`` ``()`` ps; ``native_positions`` Å, ``native_momenta``
        amu Å per ASE time unit, ``native_cell`` Å; per external-force handle ``k``:
        ``external_{k}_forces`` kJ/(mol nm), ``external_{k}_reference`` nm and
        ``external_{k}_native_reference`` Å.
        """
        u = self._units
        pos = np.array(self._atoms.get_positions(), dtype=float)
        mom = np.array(self._atoms.get_momenta(), dtype=float)
        cell = np.array(self._atoms.cell[:], dtype=float)
        state: dict[str, Any] = {
            "positions": pos * u["length"],
            "velocities": mom * self._momentum_factor(),
            "cell": cell * u["length"],
            "time": np.array(self.time),
            "native_positions": pos,
            "native_momenta": mom,
            "native_cell": cell,
        }
        for k, h in enumerate(self._handles):
            state[f"external_{k}_forces"] = h._forces.copy()
            state[f"external_{k}_reference"] = h._reference.copy()
            state[f"external_{k}_native_reference"] = h._term[2].copy()
        return state

    def set_state(self, state: Mapping[str, Any]) -> None:
        """Restore a :meth:`get_state` checkpoint (see there for the keys).

        The ``native_*`` arrays are used when the bridge-unit arrays are their unmodified
        conversions (an exact restore); otherwise the bridge-unit arrays are converted.
        External-force entries need the same handles (number and sizes) to exist.
        """
        u = self._units
        n = self.n_particles
        for key in ("positions", "velocities", "time"):
            if key not in state:
                raise SetupError(f"state has no '{key}'", fix="pass a dict from get_state()")
        n_ext = sum(1 for k in state if k.startswith("external_") and k.endswith("_forces"))
        if n_ext != len(self._handles):
            raise SetupError(f"state holds {n_ext} external forces, "
                             f"the engine {len(self._handles)}",
                             fix="create the same external-force handles before set_state")
        pos = _restore(state["positions"], state.get("native_positions"), u["length"],
                       "state positions", (n, 3))
        mom = _restore(state["velocities"], state.get("native_momenta"), self._momentum_factor(),
                       "state velocities", (n, 3))
        cell = None
        if "cell" in state:
            cell = _restore(state["cell"], state.get("native_cell"), u["length"],
                            "state cell", (3, 3))
        ext = []
        for k, h in enumerate(self._handles):
            if f"external_{k}_reference" not in state:
                raise SetupError(f"state has 'external_{k}_forces' but no 'external_{k}_reference'",
                                 fix="pass a dict from get_state()")
            f = finite_array(state[f"external_{k}_forces"], (len(h.indices), 3),
                             name=f"state external_{k}_forces")
            ref = finite_array(state[f"external_{k}_reference"], (len(h.indices), 3),
                               name=f"state external_{k}_reference").copy()
            native = _restore(ref, state.get(f"external_{k}_native_reference"), u["length"],
                              f"state external_{k}_reference", (len(h.indices), 3))
            ext.append((f, ref, native))
        time = float(to_internal(state["time"], name="state time"))
        if cell is not None:
            self._atoms.set_cell(cell, scale_atoms=False)
        self._atoms.set_positions(pos, apply_constraint=False)
        self._atoms.set_momenta(mom, apply_constraint=False)
        for h, (f, ref, native) in zip(self._handles, ext):
            h._forces = f.copy()
            h._reference = ref
            h._term[1] = f / u["force"]
            h._term[2] = native
        self._time_origin = time
        self._steps = 0
        self._wrapper.reset()

    # -- ASE in and out -------------------------------------------------------------------

    def to_atoms(self) -> Any:
        """A copy of the current ``ase.Atoms`` (positions, momenta, cell; no calculator)."""
        atoms = self._atoms.copy()
        atoms.calc = None
        return atoms

    def model(self) -> "ASEModel":
        """An :class:`ASEModel` with this engine's calculator and a copy of its atoms."""
        return ASEModel(self._wrapper.base, self.to_atoms())

    def _momentum_factor(self) -> np.ndarray:
        """``(n, 1)``: nm/ps of velocity per ASE momentum unit, atom by atom."""
        return self._units["velocity"] / self._atoms.get_masses()[:, None]

    def _check_finite(self, value: Any, what: str) -> None:
        if not np.all(np.isfinite(value)):
            raise CalculationError(f"ASE engine produced non-finite {what}",
                                   reason="the calculator or integrator diverged",
                                   fix="reduce the time step or check the starting geometry")

    def __repr__(self) -> str:
        return (f"ASEEngine({self._atoms.get_chemical_formula()}, "
                f"{type(self._wrapper.base).__name__}, dt={self._dt:g} ps)")


class ASEModel:
    """An ASE calculator as a bridge energy model (:class:`bridge.protocols.EnergyModel`).

    Args:
      calc: an ASE calculator.
      atoms: ``ase.Atoms`` giving the elements, cell and periodicity (copied).

    ``compute(positions)`` takes ``(n, 3)`` nm and returns ``energy`` (kJ/mol) and
    ``forces`` ``(n, 3)`` kJ/(mol nm); results are cached on the positions and returned
    as copies.
    """

    implemented_properties: tuple[str, ...] = ("energy", "forces")

    def __init__(self, calc: Any, atoms: Any):
        ase, _, _, CalculatorError, _ = _ase()
        if not isinstance(atoms, ase.Atoms):
            raise SetupError(f"atoms must be an ase.Atoms, got {type(atoms).__name__}",
                             fix="build one with ase.Atoms(...) or ase.io.read(...)")
        if calc is None:
            raise SetupError("no ASE calculator given",
                             fix="pass an ASE calculator instance, e.g. ASEModel(EMT(), atoms)")
        self._units = ase_units()
        self._calculator_error = CalculatorError
        self._atoms = atoms.copy()
        self._atoms.calc = calc
        self.calc = calc
        self.results: dict[str, Any] = {}
        self._key: np.ndarray | None = None

    @property
    def n_atoms(self) -> int:
        return len(self._atoms)

    def compute(self, positions: Any, properties: Sequence[str] = ("energy", "forces"),
                **inputs: Any) -> dict[str, Any]:
        """Energy and forces at ``positions`` ``(n, 3)`` nm.

        Returns:
          the requested entries of ``energy`` float kJ/mol and ``forces`` ``(n, 3)``
          kJ/(mol nm), as copies.
        """
        if inputs:
            raise SetupError(f"ASEModel takes no inputs {sorted(inputs)}",
                             fix="pass only positions and properties")
        properties = check_properties(properties, self.implemented_properties, "ASEModel")
        x = finite_array(positions, (self.n_atoms, 3), name="positions")
        if self._key is None or not np.array_equal(self._key, x):
            self.results = {}
            self._key = x.copy()
            self._atoms.set_positions(x / self._units["length"], apply_constraint=False)
        u = self._units
        with _engine_call(self._calculator_error, "compute"):
            if "energy" in properties and "energy" not in self.results:
                self.results["energy"] = float(self._atoms.get_potential_energy()) * u["energy"]
            if "forces" in properties and "forces" not in self.results:
                self.results["forces"] = (np.array(self._atoms.get_forces(apply_constraint=False),
                                                   dtype=float) * u["force"])
        for p in properties:
            if not np.all(np.isfinite(self.results[p])):
                self.results.pop(p)
                raise CalculationError(f"ASE calculator returned non-finite {p}",
                                       fix="check the positions (overlapping atoms?) and the "
                                           "calculator's own output and settings")
        return {p: (np.array(self.results[p], copy=True) if isinstance(self.results[p], np.ndarray)
                    else self.results[p]) for p in properties}
