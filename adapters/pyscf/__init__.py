"""PySCF adapter: a quantum-chemistry region as an :class:`bridge.protocols.EnergyModel`.

:class:`PySCFModel` runs a Hartree-Fock or Kohn-Sham calculation on a set of QM atoms,
optionally embedded in the electrostatic potential of MM point charges (``pyscf.qmmm``),
and returns energy and forces in the bridge's internal units (kJ/mol, nm).  PySCF is
imported only when a model is built, so this module imports without it; a missing
PySCF raises :class:`bridge.errors.EngineNotAvailable` naming the ``pyscf`` extra.

The functional core (``build_mol``, ``make_scf``, ``run_scf``, ``gradients``) works in
PySCF's atomic units; the class converts at its edge.
"""
from .model import PySCFModel, build_mol, gradients, make_scf, run_scf

__all__ = ["PySCFModel", "build_mol", "make_scf", "run_scf", "gradients"]


def describe() -> dict:
    """What ``msbridge info`` shows."""
    import pyscf

    return {"version": pyscf.__version__}
