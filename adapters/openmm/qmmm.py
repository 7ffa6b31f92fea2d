r"""The OpenMM side of QM/MM: region selection, ``System`` surgery, and a Python force in the step.

The QM/MM physics (how energies combine, link atoms, boundary charges, switching) lives in
:mod:`bridge.qmmm`; this module only speaks OpenMM.  Units are OpenMM's (nm, kJ/mol, e, amu).

**Electrostatic (additive) embedding** splits the energy as

.. math::

    E = E_\mathrm{MM'}(\text{all}) + E_\mathrm{QM}(\text{QM};\ \{q_J, r_J\}_{J \in \mathrm{MM}}),

where :math:`E_\mathrm{MM'}` is the force field with every QM–QM term and the QM–MM Coulomb
term removed (:func:`electrostatic_embedding_system`): QM charges set to zero, QM–QM pairs
excluded (Coulomb and Lennard-Jones), bonded terms with *all* atoms in the QM region removed,
QM–QM constraints removed.  QM–MM Lennard-Jones and bonded terms that span the boundary stay.

**Subtractive (ONIOM-2) embedding** needs :math:`E_\mathrm{MM}(\text{QM} + \text{links})`:
:func:`subsystem_mm_system` cuts the region out as its own non-periodic ``System`` and
:class:`SubsystemEnergy` evaluates it.

**The degenerate test.**  :class:`MMRegionModel` is an energy model with the QM model's
interface but MM physics: for region atoms :math:`i` (charges :math:`q_i`) and embedding
charges :math:`J`,

.. math::

    E = E_\mathrm{MM}(\text{region}) + k_e \sum_i \sum_J \frac{q_i q_J}{|r_i - r_J|},
    \qquad \phi_J = \frac{\partial E}{\partial q_J} = k_e \sum_i \frac{q_i}{|r_i - r_J|},

with :math:`k_e` OpenMM's own Coulomb constant (:func:`coulomb_constant`), so
``electrostatic_embedding_system`` + ``MMRegionModel`` reproduce the pure force field to
round-off.

**Into the step.**  :func:`attach_python_force` wires a callback ``compute(positions) ->
(energy, forces)`` into the ``System`` as an ``openmm.PythonForce`` (OpenMM >= 8.5).  OpenMM
calls it at *every* force evaluation -- each integrator step, each minimiser iteration, each
``getState(getEnergy=True)`` / ``getForces=True`` -- with the current positions, so the
QM/MM force is never a step late; make ``compute`` cache on its inputs (``PySCFModel`` does) so
that a reporter asking for the energy of a configuration already computed costs nothing.

Python exceptions raised inside a ``PythonForce`` callback reach the caller as
``openmm.OpenMMException`` carrying only the message; run OpenMM calls inside
:func:`python_force_errors` to get the original exception (e.g. PySCF's
:class:`~bridge.errors.CalculationError` with its ``reason`` and ``state``) back.
"""
from __future__ import annotations

import contextlib
import functools
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from bridge import units
from bridge.errors import CalculationError, SetupError
from bridge.options import check_properties

from . import _require, check_system, openmm, select_platform

if openmm is not None:
    import openmm.unit as u

__all__ = ["select_atoms", "electrostatic_embedding", "electrostatic_embedding_system", "Embedding",
           "mm_charges", "force_table", "unused_force_group", "subsystem_mm_system",
           "SubsystemEnergy", "MMRegionModel", "attach_python_force", "python_force_errors",
           "coulomb_constant", "LINK_ATOM_MASS"]

#: Mass of a link atom in :func:`subsystem_mm_system` (hydrogen), amu.
LINK_ATOM_MASS = 1.008

# -- force classification -------------------------------------------------------------------------

#: bonded forces: the XML element holding their terms, and the attribute names of the particles
_BONDED: dict[str, tuple[str, re.Pattern]] = {}
for _name, _container in (("HarmonicBondForce", "Bonds"), ("CustomBondForce", "Bonds"),
                          ("CustomCompoundBondForce", "Bonds"), ("HarmonicAngleForce", "Angles"),
                          ("CustomAngleForce", "Angles"), ("PeriodicTorsionForce", "Torsions"),
                          ("RBTorsionForce", "Torsions"), ("CustomTorsionForce", "Torsions")):
    _BONDED[_name] = (_container, re.compile(r"^p\d+$"))
_BONDED["CMAPTorsionForce"] = ("Torsions", re.compile(r"^[ab]\d+$"))
_CENTROID = "CustomCentroidBondForce"
#: forces with no particle terms: copied as they are (embedding), dropped (subsystem)
_GLOBAL = {"CMMotionRemover", "MonteCarloBarostat", "MonteCarloAnisotropicBarostat",
           "MonteCarloMembraneBarostat", "MonteCarloFlexibleBarostat", "AndersenThermostat"}
#: one-body terms (restraints): kept in the embedded system, dropped from a subsystem
_ONE_BODY = {"CustomExternalForce"}
_CHARGE_LIKE = re.compile(r"^(q|charge|chg|charges)\d*$", re.IGNORECASE)


def _force_type(force: "openmm.Force") -> str:
    return type(force).__name__


def _label(index: int, force: "openmm.Force") -> str:
    return f"force {index} ({_force_type(force)} '{force.getName()}')"


def _serialize_force(force: "openmm.Force", label: str) -> ET.Element:
    try:
        return ET.fromstring(openmm.XmlSerializer.serialize(force))
    except openmm.OpenMMException as exc:
        raise SetupError(f"cannot copy {label}: {exc}",
                         fix="remove it from the system before the QM/MM set-up and add it afterwards") from exc


def _deserialize(el: ET.Element) -> Any:
    return openmm.XmlSerializer.deserialize(ET.tostring(el, encoding="unicode"))


def _atom_array(atoms: Any, n: int, what: str, *, ordered: bool = False) -> np.ndarray:
    """Unique atom indices in ``[0, n)``: sorted, or in the given order with ``ordered``."""
    arr = np.asarray(atoms)
    if arr.dtype == bool:
        raise SetupError(f"{what} must be atom indices, not a boolean mask",
                         fix="pass numpy.flatnonzero(mask)")
    if arr.ndim != 1 or arr.size == 0 or not np.issubdtype(arr.dtype, np.integer):
        raise SetupError(f"{what} must be a non-empty 1-D sequence of integer atom indices, got {atoms!r:.80}",
                         fix="select atoms with select_atoms(...) or pass e.g. [0, 1, 2]")
    arr = arr.astype(np.int64)
    if arr.min() < 0 or arr.max() >= n:
        raise SetupError(f"{what} out of range: indices must be in [0, {n})",
                         fix="pass atom indices of this system")
    if len(np.unique(arr)) != arr.size:
        raise SetupError(f"{what} contain duplicates", fix="pass each atom once")
    return arr.copy() if ordered else np.sort(arr)


# -- region selection -----------------------------------------------------------------------------

def _min_image(d: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Minimum-image displacements ``(m, 3)`` in a reduced (lower-triangular) box, OpenMM style."""
    d = d.copy()
    for k in (2, 1, 0):
        d -= np.round(d[:, k] / box[k, k])[:, None] * box[k]
    return d


def select_atoms(topology: Any, *, indices: Any = None, residues: Any = None, within: Any = None,
                 point: Any = None, positions: Any = None, box: Any = None,
                 whole_residues: bool = True) -> np.ndarray:
    """Atom indices of a region of ``topology``; criteria given together must all hold (AND).

    Args:
      topology: an ``openmm.app.Topology``.
      indices: atom indices (an int or a sequence of ints).
      residues: residue indices (``residue.index``) and/or residue names (``"HOH"``, ``"LIG"``);
        a single int or str, or a sequence mixing both.
      within: distance, nm (float or Quantity): atoms within this distance of ``point``.
      point: ``(3,)`` nm, the centre of the ``within`` sphere.
      positions: ``(n, 3)`` nm (array or Quantity), needed with ``within``.
      box: ``(3, 3)`` nm box vectors (rows, OpenMM's reduced form) for minimum-image distances;
        None for plain distances.
      whole_residues: with ``within``, take every atom of a residue that has any atom inside
        the sphere, so that no molecule is cut by the distance criterion.

    Returns:
      ``(k,)`` int64, sorted, unique.

    Raises:
      SetupError: no criterion, an unknown residue name or index, indices out of range,
        ``within`` without ``point``/``positions``, or an empty selection.
    """
    atoms = list(topology.atoms())
    n = len(atoms)
    if n == 0:
        raise SetupError("the topology has no atoms", fix="pass the topology of the system")
    if indices is None and residues is None and within is None:
        raise SetupError("select_atoms needs at least one criterion",
                         fix="pass indices=, residues= and/or within= with point= and positions=")
    mask = np.ones(n, dtype=bool)
    residue_of = np.array([a.residue.index for a in atoms], dtype=np.int64)
    if indices is not None:
        idx = np.atleast_1d(np.asarray(indices))
        sel = _atom_array(np.unique(idx) if idx.dtype != bool else idx, n, "indices")
        m = np.zeros(n, bool)
        m[sel] = True
        mask &= m
    if residues is not None:
        items = [residues] if isinstance(residues, (str, int, np.integer)) else list(residues)
        if not items:
            raise SetupError("residues is empty", fix="pass residue names (e.g. 'HOH') or indices")
        res_list = list(topology.residues())
        names = {r.name for r in res_list}
        chosen: set[int] = set()
        for item in items:
            if isinstance(item, str):
                if item not in names:
                    raise SetupError(f"no residue named '{item}' in the topology",
                                     fix=f"use one of {', '.join(sorted(names))}")
                chosen.update(r.index for r in res_list if r.name == item)
            elif isinstance(item, (int, np.integer)) and not isinstance(item, (bool, np.bool_)):
                if not 0 <= int(item) < len(res_list):
                    raise SetupError(f"residue index {item} out of range [0, {len(res_list)})",
                                     fix="pass residue.index values of this topology")
                chosen.add(int(item))
            else:
                raise SetupError(f"residues entries must be names (str) or indices (int), got {item!r}",
                                 fix="pass e.g. residues='HOH' or residues=[0, 5]")
        mask &= np.isin(residue_of, sorted(chosen))
    if within is not None:
        r = units.to_internal(within, name="within")
        if not (np.ndim(r) == 0 and r > 0):
            raise SetupError(f"within must be a positive distance in nm, got {within!r}",
                             fix="pass e.g. within=0.5 (nm)")
        if point is None or positions is None:
            raise SetupError("within= needs point= and positions=",
                             fix="pass point=(3,) nm and positions=(n, 3) nm")
        p = units.finite_array(point, (3,), name="point")
        x = units.finite_array(positions, (n, 3), name="positions")
        d = x - p
        if box is not None:
            b = units.finite_array(box, (3, 3), name="box")
            d = _min_image(d, b)
        hit = np.linalg.norm(d, axis=1) <= r
        if whole_residues:
            hit = np.isin(residue_of, np.unique(residue_of[hit]))
        mask &= hit
    out = np.flatnonzero(mask).astype(np.int64)
    if out.size == 0:
        raise SetupError("the selection is empty (no atom meets every criterion given)",
                         fix="check the residue names/indices, the distance and the point (nm)")
    return out


# -- charges and force groups ---------------------------------------------------------------------

def mm_charges(system: "openmm.System") -> np.ndarray:
    """``(n,)`` e: the charge of every particle in the ``NonbondedForce``(s) of ``system``.

    Charge offsets (``addParticleParameterOffset``) are applied at their global parameters'
    default values; with several ``NonbondedForce`` objects the charges add.  A system with no
    ``NonbondedForce`` has zero charges.
    """
    _require()
    n = system.getNumParticles()
    q = np.zeros(n)
    for force in system.getForces():
        if not isinstance(force, openmm.NonbondedForce):
            continue
        for i in range(n):
            q[i] += force.getParticleParameters(i)[0].value_in_unit(u.elementary_charge)
        defaults = {force.getGlobalParameterName(k): force.getGlobalParameterDefaultValue(k)
                    for k in range(force.getNumGlobalParameters())}
        for k in range(force.getNumParticleParameterOffsets()):
            name, i, dq, _, _ = force.getParticleParameterOffset(k)
            q[i] += defaults[name] * dq
    return q


def force_table(system: "openmm.System") -> list[dict[str, Any]]:
    """One row per force: ``index``, ``type`` (class name), ``name``, ``group`` (and for a
    ``NonbondedForce`` the ``reciprocal_group``, -1 meaning "same as group")."""
    _require()
    rows = []
    for i, f in enumerate(system.getForces()):
        row = {"index": i, "type": _force_type(f), "name": f.getName(), "group": f.getForceGroup()}
        if isinstance(f, openmm.NonbondedForce):
            row["reciprocal_group"] = f.getReciprocalSpaceForceGroup()
        rows.append(row)
    return rows


def unused_force_group(system: "openmm.System") -> int:
    """The lowest force group (0..31) no force of ``system`` uses (e.g. for the QM/MM force)."""
    used = set()
    for row in force_table(system):
        used.add(row["group"])
        if row.get("reciprocal_group", -1) >= 0:
            used.add(row["reciprocal_group"])
    for g in range(32):
        if g not in used:
            return g
    raise SetupError("all 32 OpenMM force groups are in use",
                     fix="merge some forces into one group, or pass group= explicitly")


# -- system copies ---------------------------------------------------------------------------------

def _copy_vsite(vs: Any, new: Callable[[int], int], label: str) -> Any:
    """A copy of virtual site ``vs`` with its particles renumbered by ``new``."""
    ps = [new(vs.getParticle(k)) for k in range(vs.getNumParticles())]
    if isinstance(vs, openmm.TwoParticleAverageSite):
        return openmm.TwoParticleAverageSite(*ps, vs.getWeight(0), vs.getWeight(1))
    if isinstance(vs, openmm.ThreeParticleAverageSite):
        return openmm.ThreeParticleAverageSite(*ps, vs.getWeight(0), vs.getWeight(1), vs.getWeight(2))
    if isinstance(vs, openmm.OutOfPlaneSite):
        return openmm.OutOfPlaneSite(*ps, vs.getWeight12(), vs.getWeight13(), vs.getWeightCross())
    if isinstance(vs, openmm.LocalCoordinatesSite):
        return openmm.LocalCoordinatesSite(ps, vs.getOriginWeights(), vs.getXWeights(), vs.getYWeights(),
                                           vs.getLocalPosition())
    raise SetupError(f"{label} is a {type(vs).__name__}, which the QM/MM set-up cannot copy",
                     fix="use two/three-particle-average, out-of-plane or local-coordinates sites")


def _pairs(atoms: np.ndarray) -> Iterator[tuple[int, int]]:
    for a in range(len(atoms)):
        for b in range(a + 1, len(atoms)):
            yield int(atoms[a]), int(atoms[b])


# -- electrostatic embedding -------------------------------------------------------------------------

@dataclass
class Embedding:
    """What :func:`electrostatic_embedding` made.

    Attributes:
      system: the embedded ``openmm.System`` (a new object; the input is untouched).
      qm_atoms: ``(k,)`` sorted QM atom indices.
      charges: ``(n,)`` e, the original MM charges of every particle (:func:`mm_charges`),
        QM atoms included -- the embedding charges are these with the QM entries ignored.
      removed_terms: ``{force label: number of QM-only terms removed}``.
      removed_constraints: number of QM–QM constraints removed.
      added_exclusions: ``{force label: QM–QM pairs newly excluded}``.
      groups: ``{force label: force group}`` of the embedded system (same as the input's).
    """

    system: Any
    qm_atoms: np.ndarray
    charges: np.ndarray
    removed_terms: dict[str, int] = field(default_factory=dict)
    removed_constraints: int = 0
    added_exclusions: dict[str, int] = field(default_factory=dict)
    groups: dict[str, int] = field(default_factory=dict)


def _embed_nonbonded(el: ET.Element, in_qm: np.ndarray, qm: np.ndarray) -> int:
    """Zero QM charges, exclude QM–QM pairs, zero the Coulomb part of QM–MM exceptions."""
    for i, p in enumerate(el.find("Particles")):
        if in_qm[i]:
            p.set("q", "0")
    exceptions = el.find("Exceptions")
    seen: set[tuple[int, int]] = set()
    kind = []                                        # per exception: 0 MM-MM, 1 QM-MM, 2 QM-QM
    for ex in exceptions:
        i, j = int(ex.get("p1")), int(ex.get("p2"))
        k = int(in_qm[i]) + int(in_qm[j])
        kind.append(k)
        if k:
            ex.set("q", "0")
        if k == 2:
            ex.set("eps", "0")
            seen.add((min(i, j), max(i, j)))
    for off in el.find("ParticleOffsets") if el.find("ParticleOffsets") is not None else ():
        if in_qm[int(off.get("particle"))]:
            off.set("q", "0")
    for off in el.find("ExceptionOffsets") if el.find("ExceptionOffsets") is not None else ():
        k = kind[int(off.get("exception"))]
        if k:
            off.set("q", "0")
        if k == 2:
            off.set("eps", "0")
    added = 0
    for i, j in _pairs(qm):
        if (i, j) not in seen:
            ET.SubElement(exceptions, "Exception", {"p1": str(i), "p2": str(j), "q": "0", "sig": "1", "eps": "0"})
            added += 1
    return added


def _embed_custom_nonbonded(el: ET.Element, qm: np.ndarray, label: str) -> int:
    names = [p.get("name") for p in el.find("PerParticleParameters")]
    charge_like = [s for s in names if _CHARGE_LIKE.match(s)]
    if charge_like:
        raise SetupError(f"{label} has a charge-like per-particle parameter {charge_like}: it may compute "
                         "electrostatics, which the embedding cannot split off",
                         fix="keep electrostatics in the NonbondedForce, or remove this force before the set-up")
    exclusions = el.find("Exclusions")
    seen = {(min(int(x.get("p1")), int(x.get("p2"))), max(int(x.get("p1")), int(x.get("p2"))))
            for x in exclusions}
    added = 0
    for i, j in _pairs(qm):
        if (i, j) not in seen:
            ET.SubElement(exclusions, "Exclusion", {"p1": str(i), "p2": str(j)})
            added += 1
    return added


def _centroid_groups(el: ET.Element) -> list[list[int]]:
    return [[int(p.get("p")) for p in g] for g in el.find("Groups")]


def _drop_terms(el: ET.Element, ftype: str, keep: Callable[[list[int]], bool]) -> int:
    """Remove the terms of a bonded force whose particles fail ``keep``; return how many."""
    if ftype == _CENTROID:
        groups = _centroid_groups(el)
        container = el.find("Bonds")
        pattern = re.compile(r"^g\d+$")
        particles = lambda t: [p for k, v in t.attrib.items() if pattern.match(k) for p in groups[int(v)]]
    else:
        name, pattern = _BONDED[ftype]
        container = el.find(name)
        particles = lambda t: [int(v) for k, v in t.attrib.items() if pattern.match(k)]
    drop = [t for t in container if not keep(particles(t))]
    for t in drop:
        container.remove(t)
    return len(drop)


def electrostatic_embedding(system: "openmm.System", qm_atoms: Sequence[int]) -> Embedding:
    """The force field for additive electrostatic embedding of ``qm_atoms`` (see :class:`Embedding`).

    The returned system is a copy of ``system`` in which

    - in every ``NonbondedForce`` the QM atoms' charges are zero (Lennard-Jones parameters
      kept); every QM–QM pair is an exception with zero charge product and zero epsilon
      (existing QM–QM exceptions are overwritten); existing QM–MM exceptions keep their
      Lennard-Jones part and get a zero charge product; charge offsets of QM atoms/pairs are
      zeroed the same way;
    - in every ``CustomNonbondedForce`` (taken to be van der Waals, e.g. CHARMM NBFIX) the
      QM–QM pairs are excluded; one with a charge-like per-particle parameter is refused;
    - bonded terms (harmonic bonds/angles, periodic and RB torsions, CMAP, custom bond, angle,
      torsion, compound and centroid bonds) whose atoms are *all* QM are removed; terms that
      span the boundary are kept;
    - constraints between two QM atoms are removed (rigid-water SETTLE included), so the QM
      region is flexible; constraints across the boundary are kept;
    - one-body ``CustomExternalForce`` terms (restraints) and particle-free forces
      (barostats, thermostats, ``CMMotionRemover``) are kept unchanged.

    Force order, names and force groups are preserved.  Any other force type (GB implicit
    solvent, AMOEBA, Drude, ``PythonForce``, ...) raises :class:`SetupError` naming it.

    Raises:
      SetupError: bad ``qm_atoms``; an unsupported force; a virtual site that straddles the
        boundary.
    """
    n = check_system(system)
    qm = _atom_array(qm_atoms, n, "qm_atoms")
    in_qm = np.zeros(n, bool)
    in_qm[qm] = True
    charges = mm_charges(system)

    new = openmm.System()
    new.setDefaultPeriodicBoxVectors(*system.getDefaultPeriodicBoxVectors())
    for i in range(n):
        new.addParticle(system.getParticleMass(i))
    for i in range(n):
        if system.isVirtualSite(i):
            vs = system.getVirtualSite(i)
            parents = [vs.getParticle(k) for k in range(vs.getNumParticles())]
            if any(in_qm[p] != in_qm[i] for p in parents):
                raise SetupError(f"virtual site {i} and the atoms it is built from {parents} are on "
                                 "different sides of the QM/MM boundary",
                                 fix="put whole molecules in the QM region (select_atoms(..., whole_residues=True))")
            new.setVirtualSite(i, _copy_vsite(vs, int, f"virtual site {i}"))
    removed_constraints = 0
    for c in range(system.getNumConstraints()):
        i, j, d = system.getConstraintParameters(c)
        if in_qm[i] and in_qm[j]:
            removed_constraints += 1
        else:
            new.addConstraint(i, j, d)

    out = Embedding(system=new, qm_atoms=qm, charges=charges, removed_constraints=removed_constraints)
    for index, force in enumerate(system.getForces()):
        ftype, label = _force_type(force), _label(index, force)
        if ftype in _GLOBAL or ftype in _ONE_BODY:
            new.addForce(_deserialize(_serialize_force(force, label)))
        elif ftype == "NonbondedForce":
            el = _serialize_force(force, label)
            out.added_exclusions[label] = _embed_nonbonded(el, in_qm, qm)
            new.addForce(_deserialize(el))
        elif ftype == "CustomNonbondedForce":
            el = _serialize_force(force, label)
            out.added_exclusions[label] = _embed_custom_nonbonded(el, qm, label)
            new.addForce(_deserialize(el))
        elif ftype in _BONDED or ftype == _CENTROID:
            el = _serialize_force(force, label)
            out.removed_terms[label] = _drop_terms(el, ftype, lambda ps: not all(in_qm[p] for p in ps))
            new.addForce(_deserialize(el))
        else:
            raise SetupError(f"{label} is not supported by the QM/MM embedding",
                             fix=f"remove the {ftype} from the system (system.removeForce({index})) before "
                                 "the QM/MM set-up, and add Python forces after it")
        out.groups[label] = force.getForceGroup()
    return out


def electrostatic_embedding_system(system: "openmm.System", qm_atoms: Sequence[int]) -> "openmm.System":
    """The embedded copy of ``system`` (see :func:`electrostatic_embedding`, which also reports
    what was changed and the original charges)."""
    return electrostatic_embedding(system, qm_atoms).system


# -- the MM subsystem (subtractive scheme) -----------------------------------------------------------

def _keep_particles(el: ET.Element, new_of: dict[int, int]) -> tuple[ET.Element, list[ET.Element]]:
    """Rebuild ``el``'s particle list with the kept particles in their new order; return the
    list element and the old particles."""
    particles = el.find("Particles")
    old = list(particles)
    for p in old:
        particles.remove(p)
    for a in sorted(new_of, key=new_of.get):
        particles.append(old[a])
    return particles, old


def _subset_nonbonded(el: ET.Element, new_of: dict[int, int], k: int, n_link: int) -> None:
    particles, _ = _keep_particles(el, new_of)
    for _ in range(n_link):
        ET.SubElement(particles, "Particle", {"q": "0", "sig": "1", "eps": "0"})
    exceptions = el.find("Exceptions")
    ex_new: dict[int, int] = {}
    for e, ex in enumerate(list(exceptions)):
        i, j = int(ex.get("p1")), int(ex.get("p2"))
        if i in new_of and j in new_of:
            ex.set("p1", str(new_of[i]))
            ex.set("p2", str(new_of[j]))
            ex_new[e] = len(ex_new)
        else:
            exceptions.remove(ex)
    for link in range(k, k + n_link):                # link atoms interact with nothing
        for other in range(link):
            ET.SubElement(exceptions, "Exception",
                          {"p1": str(other), "p2": str(link), "q": "0", "sig": "1", "eps": "0"})
    for tag, key, remap in (("ParticleOffsets", "particle", new_of), ("ExceptionOffsets", "exception", ex_new)):
        offsets = el.find(tag)
        for off in list(offsets) if offsets is not None else ():
            old_index = int(off.get(key))
            if old_index in remap:
                off.set(key, str(remap[old_index]))
            else:
                offsets.remove(off)
    el.set("method", "0")                             # NoCutoff
    el.set("dispersionCorrection", "0")
    el.set("useSwitchingFunction", "0")
    el.set("exceptionsUsePeriodic", "0")


def _subset_custom_nonbonded(el: ET.Element, new_of: dict[int, int], k: int, link_hosts: list[int]) -> None:
    particles, old = _keep_particles(el, new_of)
    for host in link_hosts:                           # any parameters: the link atom is excluded below
        particles.append(ET.fromstring(ET.tostring(old[host])))
    exclusions = el.find("Exclusions")
    for x in list(exclusions):
        i, j = int(x.get("p1")), int(x.get("p2"))
        if i in new_of and j in new_of:
            x.set("p1", str(new_of[i]))
            x.set("p2", str(new_of[j]))
        else:
            exclusions.remove(x)
    for link in range(k, k + len(link_hosts)):
        for other in range(link):
            ET.SubElement(exclusions, "Exclusion", {"p1": str(other), "p2": str(link)})
    groups = el.find("InteractionGroups")
    for group in groups if groups is not None else ():
        for s in group:
            for p in list(s):
                i = int(p.get("index"))
                if i in new_of:
                    p.set("index", str(new_of[i]))
                else:
                    s.remove(p)
    el.set("method", "0")                             # NoCutoff
    el.set("useLongRangeCorrection", "0")
    el.set("useSwitchingFunction", "0")


def _subset_bonded(el: ET.Element, ftype: str, new_of: dict[int, int]) -> None:
    inside = lambda ps: all(p in new_of for p in ps)
    if ftype == _CENTROID:
        groups = _centroid_groups(el)
        kept = [g for g, ps in enumerate(groups) if inside(ps)]
        group_new = {g: r for r, g in enumerate(kept)}
        groups_el = el.find("Groups")
        for g, gel in enumerate(list(groups_el)):
            if g in group_new:
                for p in gel:
                    p.set("p", str(new_of[int(p.get("p"))]))
            else:
                groups_el.remove(gel)
        pattern = re.compile(r"^g\d+$")
        container = el.find("Bonds")
        for t in list(container):
            gs = [int(v) for key, v in t.attrib.items() if pattern.match(key)]
            if all(g in group_new for g in gs):
                for key in [key for key in t.attrib if pattern.match(key)]:
                    t.set(key, str(group_new[int(t.get(key))]))
            else:
                container.remove(t)
        return
    name, pattern = _BONDED[ftype]
    container = el.find(name)
    for t in list(container):
        keys = [key for key in t.attrib if pattern.match(key)]
        if inside([int(t.get(key)) for key in keys]):
            for key in keys:
                t.set(key, str(new_of[int(t.get(key))]))
        else:
            container.remove(t)


def subsystem_mm_system(system: "openmm.System", atoms: Sequence[int],
                        link_hosts: Sequence[int] | None = None) -> "openmm.System":
    """``E_MM(region + link atoms)`` of subtractive ONIOM: ``atoms`` cut out as their own System.

    Particle ``r`` of the new system is ``atoms[r]`` (in the order given), followed by one link
    atom per entry of ``link_hosts`` (original indices of QM atoms, each in ``atoms``), in order.

    - Link atoms are hydrogens by mass (:data:`LINK_ATOM_MASS`) that interact with nothing in
      MM: zero charge, zero Lennard-Jones, excluded from every pair, no bonded terms.  This is
      the usual choice -- the link atom's MM terms would cancel between ``E_MM(whole)`` (which
      has no link atom) and ``E_MM(region)`` only if it had none -- and it makes
      ``E_MM(region + links) = E_MM(region)`` whatever the link positions.
    - Bonded terms whose atoms are all in ``atoms`` are kept (renumbered), all others dropped.
    - ``NonbondedForce`` / ``CustomNonbondedForce``: the region's particles and the exceptions
      and exclusions among them; ``NoCutoff``, no dispersion or long-range correction, no
      switch.  In a periodic (PME, cutoff) parent the region's internal electrostatics
      therefore differ from the parent's QM–QM terms by the periodic-image and cutoff
      contributions.
    - Constraints are dropped (the region is flexible); ``CustomExternalForce`` restraints,
      Python forces, barostats, thermostats and ``CMMotionRemover`` are dropped (a restraint
      is not part of what the QM model replaces).  Any other force touching the region raises
      :class:`SetupError`.

    Returns:
      a non-periodic ``openmm.System`` with ``len(atoms) + len(link_hosts)`` particles.
    """
    n = check_system(system)
    sel = _atom_array(atoms, n, "atoms", ordered=True)
    new_of = {int(a): r for r, a in enumerate(sel)}
    k = len(sel)
    hosts = [] if link_hosts is None else [int(h) for h in np.atleast_1d(np.asarray(link_hosts, dtype=np.int64))]
    bad = [h for h in hosts if h not in new_of]
    if bad:
        raise SetupError(f"link hosts {bad} are not among the region's atoms",
                         fix="pass, for each link atom, the index of the QM atom it is bonded to")

    new = openmm.System()
    for a in sel:
        new.addParticle(system.getParticleMass(int(a)))
    for _ in hosts:
        new.addParticle(LINK_ATOM_MASS)

    def renumber(p: int) -> int:
        if p not in new_of:
            raise SetupError(f"a virtual site in the region is built from atom {p}, which is outside it",
                             fix="include whole molecules in the region")
        return new_of[p]

    for a in sel:
        if system.isVirtualSite(int(a)):
            new.setVirtualSite(new_of[int(a)], _copy_vsite(system.getVirtualSite(int(a)), renumber,
                                                            f"virtual site {a}"))
    for index, force in enumerate(system.getForces()):
        ftype, label = _force_type(force), _label(index, force)
        if ftype in _GLOBAL or ftype in _ONE_BODY or ftype == "PythonForce":
            continue
        if ftype not in _BONDED and ftype not in (_CENTROID, "NonbondedForce", "CustomNonbondedForce"):
            raise SetupError(f"{label} is not supported when cutting out an MM subsystem",
                             fix=f"remove the {ftype} (system.removeForce({index})) before the QM/MM set-up")
        el = _serialize_force(force, label)
        if ftype == "NonbondedForce":
            _subset_nonbonded(el, new_of, k, len(hosts))
        elif ftype == "CustomNonbondedForce":
            _subset_custom_nonbonded(el, new_of, k, hosts)
        else:
            _subset_bonded(el, ftype, new_of)
        el.set("usesPeriodic", "0")
        new.addForce(_deserialize(el))
    return new


# -- energy models ---------------------------------------------------------------------------------

class SubsystemEnergy:
    """Energy and forces of a small OpenMM ``System`` (e.g. :func:`subsystem_mm_system`'s), as a
    :class:`bridge.protocols.EnergyModel`.

    Args:
      system: the ``openmm.System`` of ``k`` particles.
      platform: OpenMM platform name (default ``"Reference"``: double precision).

    ``compute(positions (k, 3) nm, properties)`` -> ``{"energy": kJ/mol, "forces": (k, 3)
    kJ/(mol nm)}``; results are cached on the positions and returned as copies.
    """

    implemented_properties: tuple[str, ...] = ("energy", "forces")

    def __init__(self, system: "openmm.System", platform: str | None = "Reference"):
        self.n = check_system(system)
        self.system = system
        self.context = select_platform(system, openmm.VerletIntegrator(1e-3), platform)
        self.results: dict[str, Any] = {}
        self._key: np.ndarray | None = None

    def compute(self, positions: Any, properties: Sequence[str] = ("energy", "forces"),
                **inputs: Any) -> dict[str, Any]:
        props = check_properties(properties, self.implemented_properties, type(self).__name__)
        if inputs:
            raise SetupError(f"{type(self).__name__}.compute takes no {', '.join(map(repr, inputs))}",
                             fix="pass positions and properties only")
        x = units.finite_array(positions, (self.n, 3), name="positions")
        if self._key is None or not np.array_equal(x, self._key):
            self.context.setPositions(x)
            st = self.context.getState(getEnergy=True, getForces=True)
            e = st.getPotentialEnergy().value_in_unit(u.kilojoule_per_mole)
            f = st.getForces(asNumpy=True).value_in_unit(u.kilojoule_per_mole / u.nanometer)
            if not (np.isfinite(e) and np.all(np.isfinite(f))):
                raise CalculationError("OpenMM returned a non-finite subsystem energy or force",
                                       reason=f"energy {e}", fix="check the region's geometry for overlapping atoms")
            self.results = {"energy": float(e), "forces": np.array(f, dtype=float)}
            self._key = x.copy()
        return {p: (self.results[p].copy() if isinstance(self.results[p], np.ndarray) else self.results[p])
                for p in props}


@functools.lru_cache(maxsize=None)
def coulomb_constant() -> float:
    """OpenMM's Coulomb constant ``1/(4 pi eps0)`` in kJ nm/(mol e^2), measured: the energy of
    two unit charges 1 nm apart in a ``NoCutoff`` ``NonbondedForce`` on the Reference platform.

    (OpenMM 8.6 uses CODATA 2018, 138.93545764438198; CODATA 2022 through
    :mod:`scipy.constants` gives 138.935457550..., 7e-10 lower.)
    """
    _require()
    s = openmm.System()
    nb = openmm.NonbondedForce()
    nb.setNonbondedMethod(openmm.NonbondedForce.NoCutoff)
    for _ in range(2):
        s.addParticle(1.0)
        nb.addParticle(1.0, 1.0, 0.0)
    s.addForce(nb)
    ctx = openmm.Context(s, openmm.VerletIntegrator(1e-3), openmm.Platform.getPlatformByName("Reference"))
    ctx.setPositions([openmm.Vec3(0, 0, 0), openmm.Vec3(1, 0, 0)])
    return float(ctx.getState(getEnergy=True).getPotentialEnergy().value_in_unit(u.kilojoule_per_mole))


class MMRegionModel:
    """An MM region with the QM model's interface: the stand-in "QM" of the degenerate test.

    ``E = E_MM(region) + k_e sum_i sum_J q_i q_J / |r_i - r_J|`` (see the module docstring):
    the region's own force field (``NonbondedForce`` with ``NoCutoff``, bonded terms) plus the
    bare Coulomb interaction of its charges with the embedding point charges -- no
    Lennard-Jones between region and charges (the embedded MM system keeps that), and no
    exclusions (bonded QM–MM neighbours are the coupling method's business).

    Args:
      system: a non-periodic ``openmm.System`` of the region's ``k`` atoms, flexible (no
        constraints: a constrained bond has no energy term, so the stand-in would miss it).
        Build one with ``ForceField('amber14/tip3p.xml').createSystem(top, rigidWater=False,
        constraints=None)`` or cut it out with :func:`subsystem_mm_system`.
      charges: ``(k,)`` e, the region's charges for the embedding term; default
        :func:`mm_charges` of ``system``.
      platform: OpenMM platform for ``E_MM(region)`` (default ``"Reference"``).

    ``compute(positions, properties, charges=None, charge_positions=None)``:
      positions ``(k, 3)`` nm; charges ``(m,)`` e and charge_positions ``(m, 3)`` nm, or
      neither.  Returns the requested entries of ``energy`` (kJ/mol), ``forces`` ``(k, 3)``
      and ``charge_forces`` ``(m, 3)`` kJ/(mol nm), ``charge_potential`` ``(m,)`` kJ/(mol e)
      (``dE/dq_J``).  Results are cached on the inputs and returned as copies.
    """

    implemented_properties: tuple[str, ...] = ("energy", "forces", "charge_forces", "charge_potential")

    def __init__(self, system: "openmm.System", *, charges: Any = None, platform: str | None = "Reference"):
        n = check_system(system)
        if system.usesPeriodicBoundaryConditions():
            raise SetupError("the region system is periodic; the stand-in model is an isolated region",
                             fix="build it with nonbondedMethod=NoCutoff, or use subsystem_mm_system(system, atoms)")
        if system.getNumConstraints():
            raise SetupError(f"the region system has {system.getNumConstraints()} constraints: constrained "
                             "bonds carry no energy term, so the stand-in would miss them",
                             fix="build it flexible: createSystem(..., rigidWater=False, constraints=None)")
        self.n = n
        self.charges = (mm_charges(system) if charges is None
                        else units.finite_array(charges, (n,), name="charges").copy())
        self.mm = SubsystemEnergy(system, platform)
        self.ke = coulomb_constant()
        self.results: dict[str, Any] = {}
        self._key: tuple[np.ndarray, ...] | None = None

    def compute(self, positions: Any, properties: Sequence[str] = ("energy", "forces"),
                charges: Any = None, charge_positions: Any = None) -> dict[str, Any]:
        props = check_properties(properties, self.implemented_properties, "MMRegionModel")
        x = units.finite_array(positions, (self.n, 3), name="positions")
        if (charges is None) != (charge_positions is None):
            raise SetupError("charges and charge_positions go together",
                             fix="pass both (m,) charges in e and (m, 3) positions in nm, or neither")
        if charges is None:
            Q, R = np.zeros(0), np.zeros((0, 3))
        else:
            Q = units.finite_array(charges, (None,), name="charges")
            R = units.finite_array(charge_positions, (len(Q), 3), name="charge_positions")
        key = (x, Q, R)
        if self._key is None or not all(a.shape == b.shape and np.array_equal(a, b) for a, b in zip(key, self._key)):
            self._run(x, Q, R)
            self._key = tuple(a.copy() for a in key)
        return {p: (self.results[p].copy() if isinstance(self.results[p], np.ndarray) else self.results[p])
                for p in props}

    def _run(self, x: np.ndarray, Q: np.ndarray, R: np.ndarray) -> None:
        mm = self.mm.compute(x)
        q = self.charges
        d = x[:, None, :] - R[None, :, :]                          # (k, m, 3): r_i - r_J
        r = np.linalg.norm(d, axis=-1)
        if r.size and r.min() < 1e-10:
            i, j = np.unravel_index(np.argmin(r), r.shape)
            raise SetupError(f"embedding charge {j} sits on region atom {i} (distance {r[i, j]:.3g} nm)",
                             fix="exclude MM charges at region atom sites from the embedding")
        qq = self.ke * q[:, None] * Q[None, :]                      # (k, m)
        inv = 1.0 / r if r.size else r
        energy = mm["energy"] + float(np.sum(qq * inv))
        pair = (qq * inv**3)[:, :, None] * d                        # force on i from J
        forces = mm["forces"] + pair.sum(axis=1)
        charge_forces = -pair.sum(axis=0)
        potential = self.ke * (q[:, None] * inv).sum(axis=0) if r.size else np.zeros(len(Q))
        out = {"energy": float(energy), "forces": forces, "charge_forces": charge_forces,
               "charge_potential": np.asarray(potential, dtype=float).reshape(len(Q))}
        if not (np.isfinite(out["energy"]) and all(np.all(np.isfinite(v)) for v in out.values())):
            raise SetupError("MMRegionModel produced NaN or infinite results",
                             fix="check the positions and charges for coincident or far-off sites")
        self.results = out


# -- a Python force in the OpenMM step ----------------------------------------------------------------

#: the last exception raised inside a callback (module-wide: OpenMM's CPU platform may call the
#: callback from a worker thread, so a thread-local slot would miss it)
_LAST_ERROR: list[BaseException | None] = [None]
_MARK = "[msbridge PythonForce]"


class _Callback:
    """The function OpenMM calls: unpacks the State, calls ``compute``, checks what it returns."""

    def __init__(self, compute: Callable[..., Any], k: int, periodic: bool, name: str):
        self.compute = compute
        self.k = k
        self.periodic = periodic
        self.name = name
        self.last_error: BaseException | None = None
        self.calls = 0

    def __call__(self, state: "openmm.State") -> tuple[float, np.ndarray]:
        try:
            self.calls += 1
            x = state.getPositions(asNumpy=True).value_in_unit(u.nanometer)
            if self.periodic:
                box = state.getPeriodicBoxVectors(asNumpy=True).value_in_unit(u.nanometer)
                out = self.compute(np.array(x), np.array(box))
            else:
                out = self.compute(np.array(x))
            try:
                energy, forces = out
                energy = float(energy)
                forces = np.ascontiguousarray(forces, dtype=float)
            except (TypeError, ValueError) as exc:
                raise SetupError(f"the Python force '{self.name}' must return (energy, forces), got {out!r:.80}",
                                 fix="return a float (kJ/mol) and a (k, 3) array (kJ/(mol nm))") from exc
            if forces.shape != (self.k, 3):
                raise SetupError(f"the Python force '{self.name}' returned forces of shape {forces.shape}, "
                                 f"expected ({self.k}, 3)",
                                 fix="return one force per particle the force acts on, in their order")
            if not (np.isfinite(energy) and np.all(np.isfinite(forces))):
                raise CalculationError(f"the Python force '{self.name}' returned a non-finite energy or force",
                                       reason=f"energy {energy}",
                                       fix="check the geometry; the QM calculation may have failed silently")
            return energy, forces
        except Exception as exc:
            self.last_error = exc
            _LAST_ERROR[0] = exc
            # OpenMM keeps only the message; put the type in it too
            raise RuntimeError(f"{_MARK} {type(exc).__name__}: {exc}") from exc


def attach_python_force(system: "openmm.System", compute: Callable[..., Any], particles: Sequence[int] | None = None,
                        periodic: bool = False, group: int | None = None, name: str = "msbridge QM/MM") -> int:
    """Add ``compute`` to ``system`` as an ``openmm.PythonForce``; return the force index.

    Args:
      system: the ``openmm.System`` (changed in place; create or reinitialise the Context after).
      compute: ``compute(positions)`` -- or ``compute(positions, box)`` with ``periodic`` --
        taking ``(k, 3)`` nm positions (numpy, of ``particles`` in that order, else of all
        particles) and ``(3, 3)`` nm box vectors (rows), returning ``(energy kJ/mol, forces
        (k, 3) kJ/(mol nm))``.
      particles: the particles the force acts on (e.g. the QM atoms and the embedded MM
        atoms); None for all.
      periodic: the force uses the periodic box.  OpenMM may then hand over positions wrapped
        into the box particle by particle: ``compute`` must make molecules whole itself
        (``bridge.qmmm.QMMMCoupling`` does, from the box lengths ``np.diag(box)``).
      group: OpenMM force group 0..31 (default: the force's default, 0); e.g.
        :func:`unused_force_group` to read the QM/MM energy separately with
        ``getState(getEnergy=True, groups={group})``.
      name: the force's name.

    OpenMM evaluates the force at every force evaluation (each step, each minimiser iteration,
    each ``getState`` asking for energy or forces) with the current positions: it is never a
    step late, and every integrator, the minimiser and the reporters see the true energy.

    A non-finite energy or force from ``compute`` raises :class:`CalculationError`; a wrong
    return shape :class:`SetupError`.  Any exception inside the callback reaches the caller of
    the OpenMM call as ``openmm.OpenMMException`` whose message names the original type and
    message; inside :func:`python_force_errors` the original exception itself is raised.
    """
    _require()
    n = check_system(system)
    if not hasattr(openmm, "PythonForce"):
        raise SetupError(f"OpenMM {openmm.__version__} has no PythonForce (needs >= 8.5)",
                         fix="pip install 'openmm>=8.5'")
    if not callable(compute):
        raise SetupError(f"compute must be callable, got {type(compute).__name__}",
                         fix="pass a function positions -> (energy, forces)")
    idx = None if particles is None else _atom_array(particles, n, "particles", ordered=True)
    callback = _Callback(compute, n if idx is None else len(idx), bool(periodic), name)
    force = openmm.PythonForce(callback)
    if idx is not None:
        force.setParticles([int(i) for i in idx])
    force.setUsesPeriodicBoundaryConditions(bool(periodic))
    if group is not None:
        if isinstance(group, bool) or not isinstance(group, (int, np.integer)) or not 0 <= int(group) <= 31:
            raise SetupError(f"force group must be an integer 0..31, got {group!r}",
                             fix="pass e.g. group=unused_force_group(system)")
        force.setForceGroup(int(group))
    force.setName(name)
    return system.addForce(force)


@contextlib.contextmanager
def python_force_errors() -> Iterator[None]:
    """Re-raise the original exception of a failing :func:`attach_python_force` callback.

    ``with python_force_errors(): integrator.step(100)`` -- an error inside the callback (a
    PySCF :class:`~bridge.errors.CalculationError`, say) comes out as itself, with OpenMM's
    ``OpenMMException`` as its ``__context__``, instead of as a bare ``OpenMMException``.
    """
    _require()
    _LAST_ERROR[0] = None
    try:
        yield
    except openmm.OpenMMException as exc:
        original, _LAST_ERROR[0] = _LAST_ERROR[0], None
        if original is not None and _MARK in str(exc):
            raise original
        raise
