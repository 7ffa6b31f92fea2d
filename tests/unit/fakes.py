"""Fakes shared by the core unit tests (no engine is imported)."""
import sys
import types

import numpy as np
import pytest


class FakeMdUnitSystem:
    pass


class FakeQuantity:
    """Mimics openmm.unit.Quantity: 2.0 angstrom, converted only through md_unit_system."""

    def __init__(self, value_in_angstrom):
        self.v = np.asarray(value_in_angstrom, dtype=float)
        self.unit = "angstrom"
        self.systems = []

    def value_in_unit_system(self, system):
        self.systems.append(system)
        return self.v * 0.1


@pytest.fixture
def fake_openmm_unit(monkeypatch):
    mod = types.ModuleType("openmm.unit")
    mod.md_unit_system = FakeMdUnitSystem()
    monkeypatch.setitem(sys.modules, "openmm.unit", mod)
    return mod
