"""PySCF adapter: a quantum-chemistry region as an :class:`bridge.protocols.EnergyModel`.

:class:`PySCFModel` runs a Hartree-Fock or Kohn-Sham calculation on a set of QM atoms,
optionally embedded in the electrostatic potential of MM point charges (``pyscf.qmmm``),
and returns energy and forces in the bridge's internal units (kJ/mol, nm).  PySCF is
imported only when a model is built, so this module imports without it; a missing
PySCF raises :class:`bridge.errors.EngineNotAvailable` naming the ``pyscf`` extra.

The model also returns the QM electrostatic potential at the MM charges
(``charge_potential``, dE/dq), supports Gaussian-smeared MM charges (``charge_width``),
retries a non-converging SCF (level shift, damping, second-order; ``recovery``) and can
extrapolate the density along an MD trajectory (``guess="extrapolate"``).

The functional core (``build_mol``, ``make_scf``, ``run_scf``, ``run_scf_with_recovery``,
``gradients``, ``charge_potential``, ``extrapolate_density``) works in PySCF's atomic units;
the class converts at its edge.
"""
from .model import (PySCFModel, build_mol, charge_potential, extrapolate_density, gradients,
                    make_scf, run_scf, run_scf_with_recovery)

__all__ = ["PySCFModel", "build_mol", "make_scf", "run_scf", "run_scf_with_recovery",
           "gradients", "charge_potential", "extrapolate_density"]


def describe() -> dict:
    """What ``msbridge info`` shows."""
    import pyscf

    return {"version": pyscf.__version__}
