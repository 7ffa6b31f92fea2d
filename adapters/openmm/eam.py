"""Embedded-atom potentials in OpenMM: a ``CustomGBForce`` on tabulated functions.

:func:`eam_force` turns a setfl table (:func:`bridge.eam.read_setfl`) into one
``CustomGBForce``: a computed per-atom value ``rho = sum_j f(r_ij)`` (``ParticlePair``), the
energy terms ``F(rho)`` (``SingleParticle``) and ``phi(r_ij)`` (``ParticlePair``, once per
pair), each function a ``Continuous1DFunction`` spline on the file's grid (the embedding
continued linearly above the table's largest density, as LAMMPS does).  So the potential
runs wherever OpenMM does (CPU, CUDA, OpenCL), and ASE's EAM calculator, reading the same file,
is an independent check (``tests/integration/test_eam.py``).  Units: the tables are eV and Å;
OpenMM gets kJ/mol and nm.

:class:`OpenMMEAM` is a small driver (energy, forces, minimisation) for statics on top of it.

OpenMM 8.6's Reference platform computes this force wrongly when an atom's wrapped coordinate
lands exactly on the upper box face (a coordinate of -1e-27 wraps to L in floating point), which
OpenMM's own minimiser produces from a lattice with atoms on the faces; start statics from a
lattice shifted off the faces (e.g. by a quarter of a lattice constant).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from bridge.defects import wrap
from bridge.eam import SetflTables
from bridge.errors import SetupError
from bridge.units import EV

from . import select_platform

__all__ = ["eam_force", "OpenMMEAM"]


def eam_force(tables: SetflTables, periodic: bool = True) -> Any:
    """The ``CustomGBForce`` of the EAM in ``tables`` (cutoff from the file)."""
    import openmm

    cut = tables.cutoff / 10.0
    gb = openmm.CustomGBForce()
    r_nm = tables.r / 10.0
    gb.addTabulatedFunction("dens", openmm.Continuous1DFunction(tables.density.tolist(), 0.0, float(r_nm[-1])))
    # the pair table starts at the first grid point (phi(0) is infinite); below it (5e-5 nm) the
    # spline is zero, as OpenMM's tabulated functions are outside their range
    gb.addTabulatedFunction("pair", openmm.Continuous1DFunction((tables.phi[1:] * EV).tolist(), float(r_nm[1]),
                                                                 float(r_nm[-1])))
    rho_top = float(tables.rho[-1])
    gb.addTabulatedFunction("emb", openmm.Continuous1DFunction((tables.embed * EV).tolist(), 0.0, rho_top))
    slope = float((tables.embed[-1] - tables.embed[-2]) / (tables.rho[-1] - tables.rho[-2]) * EV)
    gb.addComputedValue("rho", "dens(r)", openmm.CustomGBForce.ParticlePair)
    # beyond the table the embedding continues linearly (an empty range would give zero energy)
    gb.addEnergyTerm(f"emb(min(rho, {rho_top!r})) + {slope!r}*max(rho - {rho_top!r}, 0)",
                     openmm.CustomGBForce.SingleParticle)
    gb.addEnergyTerm("pair(r)", openmm.CustomGBForce.ParticlePair)
    gb.setNonbondedMethod(openmm.CustomGBForce.CutoffPeriodic if periodic else openmm.CustomGBForce.CutoffNonPeriodic)
    gb.setCutoffDistance(cut)
    return gb


class OpenMMEAM:
    """``n`` atoms of one element with an EAM in an OpenMM context (orthorhombic periodic ``box`` nm).

    ``platform``: an OpenMM platform name or None (the fastest that works).
    """

    def __init__(self, tables: SetflTables, n: int, box, *, platform: str | None = "Reference",
                 timestep: float = 0.001):
        import openmm

        L = np.asarray(box, float).reshape(3)
        if not (np.all(np.isfinite(L)) and np.all(L > 2 * tables.cutoff / 10.0)):
            raise SetupError(f"box {L} nm must exceed twice the cutoff ({2 * tables.cutoff / 10} nm)",
                             fix="use a larger periodic box")
        system = openmm.System()
        for _ in range(int(n)):
            system.addParticle(float(tables.mass))
        system.setDefaultPeriodicBoxVectors(openmm.Vec3(L[0], 0, 0), openmm.Vec3(0, L[1], 0), openmm.Vec3(0, 0, L[2]))
        gb = eam_force(tables)
        for _ in range(int(n)):
            gb.addParticle([])
        system.addForce(gb)
        self.system, self.box, self.n = system, L, int(n)
        self.context = select_platform(system, openmm.VerletIntegrator(timestep), platform, None)
        self.platform = self.context.getPlatform().getName()

    def set_box(self, box) -> None:
        """Change the orthorhombic periodic box (nm), e.g. to scan the lattice constant."""
        L = np.asarray(box, float).reshape(3)
        if not np.all(L > 0):
            raise SetupError(f"box lengths must be positive nm, got {L}", fix="pass (Lx, Ly, Lz) in nm")
        self.context.setPeriodicBoxVectors([L[0], 0, 0], [0, L[1], 0], [0, 0, L[2]])
        self.box = L

    def energy_forces(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        """Energy (kJ/mol) and forces (n, 3) kJ/(mol nm) at positions ``x`` (n, 3) nm."""
        x = np.asarray(x, float).reshape(self.n, 3)
        if not np.all(np.isfinite(x)):
            raise SetupError("positions contain NaN or inf", fix="pass finite positions in nm")
        self.context.setPositions(wrap(x, self.box))     # never exactly on the upper face (module docstring)
        st = self.context.getState(getEnergy=True, getForces=True)
        return (st.getPotentialEnergy()._value,
                np.asarray(st.getForces(asNumpy=True)._value, float))

    def minimize(self, x: np.ndarray, tolerance: float = 1e-3, max_iterations: int = 0) -> tuple[float, np.ndarray]:
        """OpenMM's L-BFGS from ``x`` (nm); ``tolerance`` kJ/mol/nm.  Returns (energy, positions).

        Start from positions off the box faces (module docstring).
        """
        import openmm

        self.context.setPositions(np.asarray(x, float).reshape(self.n, 3))
        openmm.LocalEnergyMinimizer.minimize(self.context, tolerance, max_iterations)
        st = self.context.getState(getEnergy=True, getPositions=True)
        return st.getPotentialEnergy()._value, np.asarray(st.getPositions(asNumpy=True)._value, float)
