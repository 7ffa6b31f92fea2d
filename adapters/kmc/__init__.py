"""KMC engine: object kinetic Monte Carlo of point defects and clusters, compiled with numba.

:class:`ObjectKMC` is the long-time engine of the MD -> KMC hand-off: it takes the defects that
survive a cascade (:func:`bridge.defects.kmc_objects`) and evolves them by migration,
recombination, clustering and absorption at free surfaces and internal sinks (dislocation
lines, spheres), at a temperature or along an isochronal-annealing schedule.  numba is imported here only; a missing numba raises
:class:`bridge.errors.EngineNotAvailable` naming the ``kmc`` extra.
"""
from .okmc import BOLTZMANN_EV, FE_BCC, MigrationTable, ObjectKMC, Sinks

__all__ = ["ObjectKMC", "MigrationTable", "Sinks", "BOLTZMANN_EV", "FE_BCC"]


def describe() -> dict:
    """What ``msbridge info`` shows."""
    import numba

    return {"version": numba.__version__}
