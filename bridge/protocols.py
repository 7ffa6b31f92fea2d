"""The protocols every engine adapter speaks (structural: any object with these methods fits).

Units are the internal ones of :mod:`bridge.units` (nm, ps, kJ/mol, amu, e, K) for particle
data; continuum fields declare their own unit in ``field_units``.
"""
from __future__ import annotations

from typing import Any, Mapping, Protocol, Sequence, runtime_checkable

import numpy as np

__all__ = ["ParticleEngine", "FieldEngine", "EnergyModel", "MicroModel", "EngineState"]

#: A checkpointable engine state: a flat mapping of names to numpy arrays, bytes, str or float.
EngineState = dict[str, Any]


@runtime_checkable
class ParticleEngine(Protocol):
    """A particle (MD) engine.

    Shapes: ``n`` particles; ``positions``, ``velocities``, ``forces`` are ``(n, 3)`` float arrays
    in nm, nm/ps and kJ/(mol nm); ``masses`` is ``(n,)`` in amu.
    """

    @property
    def n_particles(self) -> int: ...
    @property
    def masses(self) -> np.ndarray: ...
    @property
    def time(self) -> float: ...                       # ps
    def get_positions(self) -> np.ndarray: ...
    def set_positions(self, positions: np.ndarray) -> None: ...
    def get_velocities(self) -> np.ndarray: ...
    def set_velocities(self, velocities: np.ndarray) -> None: ...
    def get_forces(self) -> np.ndarray: ...
    def get_potential_energy(self) -> float: ...       # kJ/mol
    def get_kinetic_energy(self) -> float: ...         # kJ/mol
    def step(self, n: int) -> None: ...
    def add_external_force(self, indices: Sequence[int]) -> "ExternalForceHandle": ...
    def get_state(self) -> EngineState: ...
    def set_state(self, state: Mapping[str, Any]) -> None: ...


@runtime_checkable
class ExternalForceHandle(Protocol):
    """External forces held on a subset of particles until replaced.

    ``set_forces(forces, reference=None)``: ``forces`` ``(len(indices), 3)`` kJ/(mol nm);
    ``reference`` ``(len(indices), 3)`` nm, the positions at which their energy is zero (default:
    the current positions of the subset).  The work they do enters the engine's potential energy
    as ``-sum f . (x - reference)``, so energy stays conserved between exchanges;
    ``energy(positions)`` evaluates that term at full-system positions ``(n, 3)`` nm.
    """

    indices: np.ndarray
    def set_forces(self, forces: np.ndarray, reference: np.ndarray | None = None) -> None: ...
    def energy(self, positions: np.ndarray) -> float: ...   # kJ/mol


@runtime_checkable
class FieldEngine(Protocol):
    """A continuum (field) engine on a mesh.

    ``evaluate(points)``: ``points`` ``(m, gdim)`` in the mesh's length unit; returns
    ``(m,)`` for scalar fields or ``(m, k)`` for vector fields, identical on every MPI rank.
    """

    field_units: str
    def evaluate(self, points: np.ndarray, field: str | None = None) -> np.ndarray: ...
    def set_dirichlet(self, boundary: str, value: Any) -> None: ...
    def set_neumann(self, boundary: str, value: Any) -> None: ...
    def advance(self, dt: float) -> None: ...
    def get_state(self) -> EngineState: ...
    def set_state(self, state: Mapping[str, Any]) -> None: ...


@runtime_checkable
class EnergyModel(Protocol):
    """Energy and forces of a set of atoms (ASE-calculator style).

    ``implemented_properties`` lists what ``compute`` can return (``"energy"``, ``"forces"``,
    ``"charge_forces"``, ...).  Results are cached keyed on the inputs and returned as copies.
    """

    implemented_properties: tuple[str, ...]
    def compute(self, positions: np.ndarray, properties: Sequence[str] = ("energy", "forces"),
                **inputs: Any) -> dict[str, Any]: ...


@runtime_checkable
class MicroModel(Protocol):
    """A micro-simulation behind an FE²/HMM macro model (the preCICE Micro Manager contract)."""

    def initialize(self) -> dict | None: ...
    def solve(self, macro_data: dict, dt: float) -> dict: ...
    def get_state(self) -> Any: ...
    def set_state(self, state: Any) -> None: ...
