"""DOLFINx adapter: continuum fields, point probes under MPI, periodic RVE homogenization.

Public API (imported lazily; without DOLFINx every name raises
:class:`bridge.errors.EngineNotAvailable` naming the pip extra ``dolfinx``):

- meshes: :func:`interval_mesh`, :func:`rectangle_mesh`, :func:`box_mesh`,
  :func:`tag_boundaries`, :func:`tag_cells`, :class:`NamedTags`, :func:`cell_function`;
- :func:`evaluate` -- point values of a function, identical on every MPI rank;
- :class:`DolfinxField` -- linear heat conduction, the bridge's ``FieldEngine``;
- :class:`PeriodicConstraint` -- periodic prolongation ``P`` for RVEs (serial);
- :func:`homogenize_elasticity` -- effective plane-strain stiffness of a periodic RVE.

No coupling physics lives here; the coupling methods are in :mod:`bridge`.
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "interval_mesh": "mesh",
    "rectangle_mesh": "mesh",
    "box_mesh": "mesh",
    "tag_boundaries": "mesh",
    "tag_cells": "mesh",
    "NamedTags": "mesh",
    "cell_function": "mesh",
    "owned_cells": "mesh",
    "evaluate": "points",
    "PointLocator": "points",
    "DolfinxField": "field",
    "lu_options": "field",
    "PeriodicConstraint": "periodic",
    "PeriodicSolver": "periodic",
    "homogenize_elasticity": "homogenize",
    "HomogenizationResult": "homogenize",
    "require": "_backend",
    "available": "_backend",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


def describe() -> dict[str, Any]:
    """What ``msbridge info`` shows: DOLFINx, PETSc, scalar type, MUMPS."""
    from ._backend import require

    require()
    import dolfinx
    from petsc4py import PETSc

    return {"version": dolfinx.__version__,
            "PETSc": ".".join(str(v) for v in PETSc.Sys.getVersion()),
            "scalar": str(PETSc.ScalarType.__name__),
            "MUMPS": PETSc.Sys.hasExternalPackage("mumps")}
