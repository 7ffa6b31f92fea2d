"""An FCC Lennard-Jones crystal in OpenMM as an atomistic RVE (:class:`bridge.crystal_rve.CrystalRVE`).

:func:`fcc_lj_crystal_rve` builds the perfect crystal at the equilibrium lattice constant of the
truncated potential (:func:`bridge.lattice.equilibrium_lattice_constant`, so the zero-strain
stress vanishes at 0 K), in a periodic orthorhombic box of ``reps`` conventional cells, and wraps
it in an :class:`OpenMMEngine`: a Verlet integrator at zero temperature (only energies are
used), a ``LangevinMiddleIntegrator`` at ``temperature`` otherwise.  The default platform is
``Reference`` (double precision), which the finite-difference stress and tangent need: single
or mixed precision energies carry a round-off of ~1e-7 relative, which the second differences
would amplify to the size of the elastic constants.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from bridge import lattice
from bridge.crystal_rve import CrystalRVE
from bridge.errors import SetupError

from . import OpenMMEngine, lennard_jones_system

__all__ = ["fcc_lj_crystal_rve"]

#: room left between twice the cutoff and the smallest box edge when ``reps`` is chosen
#: automatically, so that strains of up to ~10 % keep every box height above twice the cutoff.
_REPS_HEADROOM = 1.1


def fcc_lj_crystal_rve(sigma: float = 0.3405, epsilon: float = 0.99774, cutoff: float | None = None,
                       reps: tuple[int, int, int] | None = None, mass: float = 39.948,
                       temperature: float = 0.0, platform: str | None = "Reference", dim: int = 2, *,
                       timestep: float = 0.002, friction: float = 1.0, seed: int = 1,
                       **kw: Any) -> CrystalRVE:
    """A :class:`CrystalRVE` of an FCC Lennard-Jones crystal in OpenMM (argon by default).

    Parameters
    ----------
    sigma : nm; epsilon : kJ/mol; mass : amu (argon: 0.3405, 0.99774, 39.948).
    cutoff : nm, truncation of the potential (not shifted); default ``2.55 * sigma``, between
        the 5th and 6th neighbour shells.  Must be 1 % or more away from any shell.
    reps : conventional cells along x, y, z; default: the smallest cube whose half edge exceeds
        the cutoff by 10 % (``(4, 4, 4)``, 256 atoms, for the default cutoff).
    temperature : K; 0 for the Cauchy–Born response, > 0 for Langevin MD sampling.
    platform : OpenMM platform (``"Reference"`` by default, see the module docstring).
    dim : 2 (plane strain) or 3.
    timestep : ps; friction : 1/ps (Langevin); seed : integrator and initial-velocity seed.
    kw : further :class:`CrystalRVE` options (``h``, ``n_samples``, ``sample_interval``,
        ``equilibration``, ``virial_step``, ``relax``).

    The result's ``info`` holds ``lattice_constant`` (nm), ``potential`` (a
    :class:`bridge.lattice.PairPotential`, for lattice-sum references), ``reps`` and ``atoms``.
    """
    cutoff = 2.55 * sigma if cutoff is None else float(cutoff)
    pot = lattice.PairPotential.lennard_jones(sigma, epsilon, cutoff)
    a = lattice.equilibrium_lattice_constant(pot, 1.55 * sigma)
    if reps is None:
        n = max(1, int(np.ceil(2 * _REPS_HEADROOM * cutoff / a)))
        reps = (n, n, n)
    reps = tuple(int(r) for r in reps)
    if len(reps) != 3 or min(reps) < 1:
        raise SetupError(f"reps must be three positive integers, got {reps}", fix="pass e.g. reps=(4, 4, 4)")
    if 2 * cutoff >= a * min(reps):
        need = int(np.floor(2 * cutoff / a)) + 1
        raise SetupError(f"cutoff {cutoff:.4g} nm is not below half the smallest box edge "
                         f"({0.5 * a * min(reps):.4g} nm, reps={reps})",
                         fix=f"use at least {need} cells along each axis, or leave reps=None")
    temperature = float(temperature)
    pos, box = lattice.fcc(a, reps)
    system = lennard_jones_system(len(pos), sigma, epsilon, mass, box=box, cutoff=cutoff)
    engine = OpenMMEngine(system, pos, platform=platform, timestep=timestep, friction=friction, seed=seed,
                          temperature=temperature if temperature > 0 else None)
    rve = CrystalRVE(engine, dim=dim, temperature=temperature, cutoff=cutoff, seed=seed, **kw)
    rve.info = {"lattice_constant": a, "potential": pot, "reps": reps, "atoms": len(pos),
                "platform": engine.platform}
    return rve
