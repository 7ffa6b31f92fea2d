"""Import guard for the DOLFINx stack.

The ``dolfinx-solver-real`` wheel ships DOLFINx together with its own PETSc and must be imported
(``import dolfinx_solver``) before ``dolfinx`` so that ``mpi4py.MPI`` loads first.  Conda-forge
and the official Docker images have no ``dolfinx_solver``; there ``dolfinx`` is imported directly.

Every module of this adapter calls :func:`require` at import time, so a missing engine surfaces as
:class:`bridge.errors.EngineNotAvailable` naming the pip extra ``dolfinx`` -- when the adapter is
used, not when ``bridge_adapters.dolfinx`` itself is imported.
"""
from __future__ import annotations

import importlib

from bridge.errors import EngineNotAvailable

__all__ = ["require", "available"]

_checked = False


def require() -> None:
    """Import ``h5py``, ``dolfinx_solver`` (when installed), ``dolfinx`` and ``petsc4py``, in that order.

    Raises :class:`EngineNotAvailable` (an ``ImportError``) naming the pip extra ``dolfinx``.
    """
    global _checked
    if _checked:
        return
    # h5py's own HDF5 must be loaded before the wheel's: with numba installed (the kmc extra),
    # DOLFINx imports numba while it loads, and h5py imported after that fails ("Not a datatype")
    importlib.import_module("h5py")
    try:
        importlib.import_module("dolfinx_solver")
    except ModuleNotFoundError as exc:
        if exc.name != "dolfinx_solver":
            raise EngineNotAvailable("dolfinx", "dolfinx", reason=str(exc)) from exc
    except ImportError as exc:
        raise EngineNotAvailable("dolfinx", "dolfinx", reason=str(exc)) from exc
    try:
        importlib.import_module("dolfinx")
        importlib.import_module("dolfinx.fem.petsc")
        importlib.import_module("petsc4py.PETSc")
    except ImportError as exc:
        raise EngineNotAvailable("dolfinx", "dolfinx", reason=str(exc)) from exc
    _checked = True


def available() -> bool:
    """True when the DOLFINx stack imports (never raises)."""
    try:
        require()
    except EngineNotAvailable:
        return False
    return True
