r"""An ASE calculator that adds held external forces to another calculator (ASE units).

For external forces :math:`f_i` (eV/Å) on atoms :math:`i` with reference positions
:math:`x_i^\mathrm{ref}` (Å; where their energy is zero), the calculator returns

.. math::

    E = E_\mathrm{base}(x) - \sum_i f_i \cdot (x_i - x_i^\mathrm{ref}),
    \qquad F_i = F_{\mathrm{base},i} + f_i,

so that :math:`F = -\nabla E` holds exactly and a velocity-Verlet trajectory conserves
:math:`E + K` while the forces are held.  This module imports ASE at import time; the adapter
imports it only after checking that ASE is installed.
"""
from __future__ import annotations

import numpy as np
from ase.calculators.calculator import Calculator, all_changes

__all__ = ["ExternalForceCalculator"]


class ExternalForceCalculator(Calculator):
    """Wraps ``base`` and adds the external-force terms in :attr:`terms`.

    Attributes:
      base: the wrapped ASE calculator.
      terms: list of ``(indices (k,) int, forces (k, 3) eV/Å, reference (k, 3) Å)``; change
        it through the adapter's handles, which call :meth:`reset` afterwards.
    """

    implemented_properties = ["energy", "free_energy", "forces"]

    def __init__(self, base: Calculator):
        super().__init__()
        self.base = base
        self.terms: list[list[np.ndarray]] = []

    def external_energy(self, positions: np.ndarray) -> float:
        """``-sum f . (x - x_ref)`` at ``positions`` ``(n, 3)`` Å, in eV."""
        energy = 0.0
        for idx, f, ref in self.terms:
            energy -= float(np.sum(f * (positions[idx] - ref)))
        return energy

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        atoms = self.atoms if atoms is None else atoms
        energy = float(self.base.get_potential_energy(atoms))
        free = energy
        if "free_energy" in getattr(self.base, "implemented_properties", ()):
            free = float(self.base.get_property("free_energy", atoms))
        forces = np.array(self.base.get_forces(atoms), dtype=float, copy=True)
        positions = atoms.get_positions()
        for idx, f, _ in self.terms:
            np.add.at(forces, idx, f)
        e_ext = self.external_energy(positions)
        self.results = {"energy": energy + e_ext, "free_energy": free + e_ext, "forces": forces}
