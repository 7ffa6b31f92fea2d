"""ASE adapter: any ASE calculator as a bridge particle engine or energy model.

:class:`ASEEngine` steps an ``ase.Atoms`` with an ASE MD integrator and speaks
:class:`bridge.protocols.ParticleEngine`; :class:`ASEModel` evaluates a calculator as a
:class:`bridge.protocols.EnergyModel`.  Both convert between ASE units (eV, Å, amu, ASE time)
and bridge units (kJ/mol, nm, amu, ps) at their edge.  ASE is imported only when one is built,
so this module imports without it; a missing ASE raises
:class:`bridge.errors.EngineNotAvailable` naming the ``ase`` extra.
"""
from .engine import ASEEngine, ASEModel, ExternalForce, ase_units

__all__ = ["ASEEngine", "ASEModel", "ExternalForce", "ase_units"]


def describe() -> dict:
    """What ``msbridge info`` shows."""
    import ase

    return {"version": ase.__version__}
