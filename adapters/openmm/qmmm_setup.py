"""Put a QM region into an OpenMM system in one call.

:func:`embed_qm_region` reads what the coupling needs from the OpenMM ``System`` and
``Topology`` (charges, elements, bonds and bond orders, charge groups), prepares the MM
system for the chosen scheme, builds the engine-agnostic :class:`bridge.qmmm.QMMMCoupling`
around the QM model, and adds it to the system once as an ``openmm.PythonForce``.  From then
on OpenMM's integrators, minimiser and reporters see the full QM/MM energy and forces, computed
at every force evaluation (never a step late).

- ``scheme="electrostatic"``: the MM system has the QM charges removed and QM–QM terms
  excluded (:func:`~bridge_adapters.openmm.qmmm.electrostatic_embedding`); the QM model sees
  the MM charges.
- ``scheme="subtractive"``: the MM system is unchanged apart from QM–QM constraints (the QM
  region is flexible); the coupling adds E_QM(region + links) - E_MM(region + links), the last
  term from :func:`~bridge_adapters.openmm.qmmm.subsystem_mm_system`.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from bridge.errors import SetupError
from bridge.qmmm import QMMMCoupling

from . import qmmm as _q

__all__ = ["QMMMSetup", "embed_qm_region"]


@dataclass
class QMMMSetup:
    """What :func:`embed_qm_region` made: the new ``system``, the ``coupling``, the force index
    and force group of the QM/MM ``PythonForce`` (read its energy with
    ``getState(getEnergy=True, groups={group})``)."""

    system: Any
    coupling: QMMMCoupling
    force_index: int
    group: int


def _remove_qm_constraints(system: Any, qm: np.ndarray) -> int:
    in_qm = np.zeros(system.getNumParticles(), bool)
    in_qm[qm] = True
    removed = 0
    for c in reversed(range(system.getNumConstraints())):
        i, j, _ = system.getConstraintParameters(c)
        if in_qm[i] and in_qm[j]:
            system.removeConstraint(c)
            removed += 1
    return removed


def embed_qm_region(system: Any, topology: Any, qm_atoms: Sequence[int], qm_model: Any, *,
                    scheme: str = "electrostatic", cutoff: Any = None, switch_width: Any = None,
                    boundary: str = "rc", allow_polar_cut: bool = False, link_ratio: float | None = None,
                    group: int | None = None) -> QMMMSetup:
    """Return a new system with the QM/MM force in it (the input ``system`` is not changed).

    Args:
      system, topology: the OpenMM system and its topology (elements, bonds, residues).
      qm_atoms: ``(k,)`` atom indices of the QM region (see
        :func:`~bridge_adapters.openmm.qmmm.select_atoms`).
      qm_model: an EnergyModel for the QM atoms (in increasing index order) followed by one
        hydrogen per cut bond (in the order of ``setup.coupling.links``), e.g.
        ``PySCFModel(symbols + ["H"] * n_links, ...)``; electrostatic embedding needs
        ``charge_forces`` (and ``charge_potential`` with a cutoff).
      cutoff, switch_width: nm; required for a periodic system (electrostatic scheme).
      boundary, allow_polar_cut, link_ratio: see :class:`bridge.qmmm.QMMMCoupling`.
      group: force group of the QM/MM force (default: the first unused one).
    """
    qm = np.sort(np.asarray(qm_atoms, dtype=np.int64))       # the QM model's atom order
    n = system.getNumParticles()
    if topology is None or topology.getNumAtoms() != n:
        raise SetupError("the topology does not match the system",
                         fix="pass the Topology the System was created from")
    atoms = list(topology.atoms())
    elements = [a.element.symbol if a.element is not None else "X" for a in atoms]
    bonds, orders = [], {}
    for b in topology.bonds():
        i, j = sorted((b.atom1.index, b.atom2.index))
        bonds.append((i, j))
        if getattr(b, "order", None):
            orders[(i, j)] = float(b.order)
    molecules = [np.array([a.index for a in r.atoms()], np.int64) for r in topology.residues()
                 if not np.any(np.isin([a.index for a in r.atoms()], qm))]
    periodic = system.usesPeriodicBoundaryConditions()
    if periodic and cutoff is None and scheme == "electrostatic":
        raise SetupError("a periodic system needs a QM/MM electrostatic cutoff",
                         fix="pass cutoff= (nm), e.g. 0.8, and switch_width=, e.g. 0.1")
    charges = _q.mm_charges(system)
    if scheme == "electrostatic":
        new = _q.electrostatic_embedding(system, qm).system
        mm_region = None
    elif scheme == "subtractive":
        new = copy.deepcopy(system)
        _remove_qm_constraints(new, qm)
        mm_region = None  # set below, once the link hosts are known
    else:
        raise SetupError(f"unknown QM/MM scheme '{scheme}'", fix="use 'electrostatic' or 'subtractive'")
    probe = QMMMCoupling(qm_model, qm, n, scheme="electrostatic", charges=charges, elements=elements,
                         bonds=bonds, bond_orders=orders or None, boundary=boundary,
                         allow_polar_cut=allow_polar_cut, link_ratio=link_ratio)
    if scheme == "subtractive":
        hosts = [lk.mm_host for lk in probe.links]
        qm_hosts = [lk.qm_host for lk in probe.links]
        sub = _q.subsystem_mm_system(system, qm, link_hosts=qm_hosts if hosts else None)
        mm_region = _q.SubsystemEnergy(sub)
    coupling = QMMMCoupling(qm_model, qm, n, scheme=scheme, charges=charges, elements=elements, bonds=bonds,
                            bond_orders=orders or None, molecules=molecules if cutoff is not None else None,
                            boundary=boundary, cutoff=cutoff, switch_width=switch_width,
                            mm_region_model=mm_region, link_ratio=link_ratio, allow_polar_cut=allow_polar_cut)
    group = _q.unused_force_group(new) if group is None else group
    if periodic:
        def compute(x: np.ndarray, box: np.ndarray) -> tuple[float, np.ndarray]:
            if np.any(box[np.triu_indices(3, 1)]) or np.any(box[np.tril_indices(3, -1)]):
                raise SetupError("QM/MM supports orthorhombic boxes", fix="use a rectangular box")
            return coupling.compute(x, np.diag(box))
    else:
        def compute(x: np.ndarray) -> tuple[float, np.ndarray]:
            return coupling.compute(x)
    index = _q.attach_python_force(new, compute, periodic=periodic, group=group, name="msbridge QM/MM")
    return QMMMSetup(new, coupling, index, group)
