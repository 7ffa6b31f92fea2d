"""Units: one internal system for particle data, and every conversion in one place.

The internal system is OpenMM's: length nm, time ps, energy kJ/mol, mass amu (g/mol),
charge e, temperature K.  Derived: force kJ/(mol nm), velocity nm/ps, pressure and
stiffness kJ/(mol nm^3).  Constants come from CODATA through :mod:`scipy.constants`.

Public functions of the bridge accept either a plain float in the documented unit or an
``openmm.unit.Quantity``.  A Quantity is recognised by duck typing: the core never imports
OpenMM; it reads the unit system from ``openmm.unit`` only if the caller already loaded it
(which they did, or they could not have built the Quantity).
"""
from __future__ import annotations

import sys
from typing import Any

import numpy as np
from scipy import constants as _c

from .errors import SetupError

# --- constants in internal units -------------------------------------------------------
AVOGADRO = _c.N_A                                   # 1/mol
KB = _c.k * _c.N_A / 1000.0                         # kJ/(mol K)
HARTREE = _c.physical_constants["Hartree energy"][0] * _c.N_A / 1000.0   # kJ/mol
BOHR = _c.physical_constants["Bohr radius"][0] * 1e9                      # nm
EV = _c.eV * _c.N_A / 1000.0                        # kJ/mol
KCAL = _c.calorie * 1.0                             # kJ/mol per kcal/mol
ANGSTROM = 0.1                                      # nm
FS = 1e-3                                           # ps
#: 1 kJ/(mol nm^3) in Pa
PRESSURE_PA = 1000.0 / _c.N_A / 1e-27
#: 1 kJ/(mol nm^3) in GPa
PRESSURE_GPA = PRESSURE_PA / 1e9
#: hartree/bohr in kJ/(mol nm)
HARTREE_PER_BOHR = HARTREE / BOHR

#: Factors that take a value in the named unit to the internal unit of its dimension.
_TO_INTERNAL: dict[str, float] = {
    # length
    "nm": 1.0, "nanometer": 1.0, "angstrom": ANGSTROM, "A": ANGSTROM, "bohr": BOHR,
    "m": 1e9, "um": 1e3, "pm": 1e-3,
    # time
    "ps": 1.0, "picosecond": 1.0, "fs": FS, "femtosecond": FS, "ns": 1e3, "s": 1e12,
    # energy
    "kJ/mol": 1.0, "kcal/mol": KCAL, "eV": EV, "hartree": HARTREE, "Eh": HARTREE,
    "J/mol": 1e-3,
    # force
    "kJ/mol/nm": 1.0, "kJ/(mol nm)": 1.0, "eV/A": EV / ANGSTROM, "eV/angstrom": EV / ANGSTROM,
    "hartree/bohr": HARTREE_PER_BOHR, "kcal/mol/A": KCAL / ANGSTROM,
    # mass, charge, temperature
    "amu": 1.0, "dalton": 1.0, "g/mol": 1.0, "e": 1.0, "K": 1.0, "kelvin": 1.0,
    # pressure / stiffness
    "kJ/mol/nm^3": 1.0, "Pa": 1.0 / PRESSURE_PA, "GPa": 1.0 / PRESSURE_GPA,
    "bar": 1e5 / PRESSURE_PA,
}


def factor(unit: str) -> float:
    """Factor taking a value in ``unit`` to the internal unit of the same dimension."""
    try:
        return _TO_INTERNAL[unit]
    except KeyError:
        raise SetupError(f"unknown unit '{unit}'",
                         fix=f"use one of: {', '.join(sorted(_TO_INTERNAL))}") from None


_DIMENSION: dict[str, str] = {}
for _dim, _names in {
    "length": ("nm", "nanometer", "angstrom", "A", "bohr", "m", "um", "pm"),
    "time": ("ps", "picosecond", "fs", "femtosecond", "ns", "s"),
    "energy": ("kJ/mol", "kcal/mol", "eV", "hartree", "Eh", "J/mol"),
    "force": ("kJ/mol/nm", "kJ/(mol nm)", "eV/A", "eV/angstrom", "hartree/bohr", "kcal/mol/A"),
    "mass": ("amu", "dalton", "g/mol"), "charge": ("e",), "temperature": ("K", "kelvin"),
    "pressure": ("kJ/mol/nm^3", "Pa", "GPa", "bar"),
}.items():
    _DIMENSION.update(dict.fromkeys(_names, _dim))


def dimension(unit: str) -> str:
    """The dimension (``"length"``, ``"energy"``, ...) of a named unit."""
    factor(unit)
    return _DIMENSION[unit]


def convert(value: Any, from_unit: str, to_unit: str) -> Any:
    """Convert ``value`` (float or array) between two named units of one dimension."""
    if dimension(from_unit) != dimension(to_unit):
        raise SetupError(f"cannot convert {from_unit} ({dimension(from_unit)}) to {to_unit} ({dimension(to_unit)})",
                         fix="convert between units of the same dimension")
    return np.asarray(value) * (factor(from_unit) / factor(to_unit)) if np.ndim(value) else \
        float(value) * factor(from_unit) / factor(to_unit)


def is_quantity(value: Any) -> bool:
    """True for an ``openmm.unit.Quantity`` (duck typed; OpenMM is not imported)."""
    return hasattr(value, "value_in_unit_system") and hasattr(value, "unit")


def to_internal(value: Any, unit: str | None = None, *, name: str = "value") -> Any:
    """Return ``value`` as a float or float array in internal units.

    ``value`` is an ``openmm.unit.Quantity`` (converted through OpenMM's md unit system, which
    is the internal one) or a number/array already in ``unit`` (default: internal unit).
    NaN or infinite entries are refused with a :class:`SetupError` naming ``name``.
    """
    if is_quantity(value):
        omm_unit = sys.modules.get("openmm.unit") or sys.modules.get("simtk.unit")
        if omm_unit is None:  # pragma: no cover - a Quantity cannot exist without its module
            raise SetupError(f"{name}: cannot read the unit of {value!r}",
                             fix="pass a float in the documented internal unit")
        out = value.value_in_unit_system(omm_unit.md_unit_system)
    else:
        out = value
        if unit is not None:
            out = np.asarray(out, dtype=float) * factor(unit)
    arr = np.asarray(out, dtype=float)
    if not np.all(np.isfinite(arr)):
        raise SetupError(f"{name} contains NaN or infinite entries",
                         fix=f"check how {name} was computed before passing it on")
    return float(arr) if arr.ndim == 0 else arr


def finite_array(value: Any, shape: tuple[int | None, ...] | None = None, *, name: str,
                 unit: str | None = None) -> np.ndarray:
    """``to_internal`` for arrays, also checking the shape (``None`` matches any size)."""
    arr = np.atleast_1d(np.asarray(to_internal(value, unit, name=name), dtype=float))
    if shape is not None:
        ok = arr.ndim == len(shape) and all(s is None or s == n for s, n in zip(shape, arr.shape))
        if not ok:
            want = "(" + ", ".join("n" if s is None else str(s) for s in shape) + ")"
            raise SetupError(f"{name} has shape {arr.shape}, expected {want}",
                             fix=f"pass {name} as an array of shape {want}")
    return arr
