r"""Solutes for QM/MM validation: OPLS-AA ethane, alone or solvated in rigid TIP3P water.

Force field.  Ethane in OPLS-AA (Jorgensen, Maxwell & Tirado-Rives, J. Am. Chem. Soc. 118,
11225 (1996); atom types ``opls_135`` CT and ``opls_140`` HC), in OpenMM's conventions:

.. math::

    E = \sum_\mathrm{bonds} \tfrac12 k_b (r - r_0)^2
      + \sum_\mathrm{angles} \tfrac12 k_\theta (\theta - \theta_0)^2
      + \sum_\mathrm{HC-CT-CT-HC} \tfrac{V_3}{2} \big(1 + \cos 3\phi\big)
      + \sum_{i<j} f_{ij} \Big[ \frac{k_e q_i q_j}{r_{ij}}
        + 4 \varepsilon_{ij} \Big( \frac{\sigma_{ij}^{12}}{r_{ij}^{12}} - \frac{\sigma_{ij}^6}{r_{ij}^6} \Big) \Big],

with :math:`\sigma_{ij} = \sqrt{\sigma_i \sigma_j}`, :math:`\varepsilon_{ij} = \sqrt{\varepsilon_i
\varepsilon_j}` (OPLS geometric mixing, for every pair: ethane–ethane 1-4, ethane–water and
water–water), :math:`f_{ij} = 0` for 1-2 and 1-3 pairs, 1/2 for 1-4 pairs, 1 otherwise.

=========  ==========  ===========  ================
atom       q (e)       sigma (nm)   epsilon (kJ/mol)
=========  ==========  ===========  ================
C (CT)     -0.18       0.350        0.276144 (0.066 kcal/mol)
H (HC)     +0.06       0.250        0.12552  (0.030 kcal/mol)
=========  ==========  ===========  ================

Bonds (OpenMM's :math:`k_b` is twice OPLS's :math:`K_r`): CT-CT r0 0.1529 nm, k 224262.4
kJ/mol/nm^2 (268 kcal/mol/A^2); CT-HC r0 0.1090 nm, k 284512.0 (340).  Angles (k twice OPLS's
K_theta): HC-CT-HC 107.8 deg, k 276.144 kJ/mol/rad^2 (33.0 kcal/mol/rad^2); CT-CT-HC 110.7
deg, k 313.8 (37.5).  Torsion HC-CT-CT-HC: OPLS's Fourier series
:math:`\tfrac{V_1}{2}(1 + \cos\phi) + \tfrac{V_2}{2}(1 - \cos 2\phi) + \tfrac{V_3}{2}(1 + \cos 3\phi)`
with only V3 = 0.300 kcal/mol = 1.2552 kJ/mol, i.e. a ``PeriodicTorsionForce`` term n = 3,
k = V3/2 = 0.6276 kJ/mol, phase 0: zero in the staggered conformation, 9 V3 = 11.30 kJ/mol
(2.7 kcal/mol) eclipsed.  The three equilibrium angles are not mutually consistent (a methyl
with C-C-H = 110.7 deg has H-C-H = 108.2 deg), so no geometry zeroes every angle term.

Implementation.  Charges and all Coulomb terms (PME in water) are in one ``NonbondedForce``
whose particles have zero epsilon; the 1-4 pairs are its exceptions (charge product and
epsilon halved, geometric sigma).  The Lennard-Jones interactions between non-excluded pairs
are a ``CustomNonbondedForce`` with geometric mixing -- exact OPLS mixing for ethane–water
pairs, identical to the usual Lorentz-Berthelot for water–water (one LJ site per water).
Water is TIP3P from OpenMM's ``amber14/tip3p.xml`` (q_O = -0.834 e, sigma_O = 0.315075 nm,
epsilon_O = 0.635968 kJ/mol, hydrogens without LJ), rigid (SETTLE); ethane is flexible.

Force groups: 1 bonds, 2 angles, 3 torsions, 4 Coulomb (``NonbondedForce``), 5 Lennard-Jones
(``CustomNonbondedForce``); no ``CMMotionRemover``.  Units: nm, kJ/mol, e, amu.
"""
from __future__ import annotations

import numpy as np

from bridge.errors import SetupError

__all__ = ["OPLS_ETHANE", "ETHANE_ATOMS", "ethane_positions", "ethane_in_vacuum", "ethane_in_water",
           "FORCE_GROUPS"]

#: OPLS-AA ethane parameters (OpenMM units; see the module docstring for the sources).
OPLS_ETHANE = {
    "atoms": {"CT": {"charge": -0.18, "sigma": 0.350, "epsilon": 0.276144},
              "HC": {"charge": 0.06, "sigma": 0.250, "epsilon": 0.12552}},
    "bonds": {("CT", "CT"): (0.1529, 224262.4), ("CT", "HC"): (0.1090, 284512.0)},
    "angles": {("HC", "CT", "HC"): (107.8, 276.144), ("CT", "CT", "HC"): (110.7, 313.8)},
    "torsion_v3": 1.2552,                         # kJ/mol, HC-CT-CT-HC
    "scale14": (0.5, 0.5),                        # (Coulomb, Lennard-Jones)
}

#: (name, element symbol, OPLS type) of the ethane atoms, in topology order.
ETHANE_ATOMS = (("C1", "C", "CT"), ("H11", "H", "HC"), ("H12", "H", "HC"), ("H13", "H", "HC"),
                ("C2", "C", "CT"), ("H21", "H", "HC"), ("H22", "H", "HC"), ("H23", "H", "HC"))
_ETHANE_BONDS = ((0, 1), (0, 2), (0, 3), (0, 4), (4, 5), (4, 6), (4, 7))

#: Force groups of the systems built here.
FORCE_GROUPS = {"bonds": 1, "angles": 2, "torsions": 3, "coulomb": 4, "lennard_jones": 5}

_CUTOFF, _SWITCH = 0.9, 0.75                      # nm
_CLEARANCE = 0.25                                 # nm, water atoms this close to ethane are removed


def ethane_positions(centre=(0.0, 0.0, 0.0), staggered: bool = True) -> np.ndarray:
    """``(8, 3)`` nm: ethane at the OPLS bond lengths and C-C-H angle (110.7 deg), C-C along x,
    the C-C midpoint at ``centre``; staggered (torsion energy zero) or eclipsed."""
    (rcc, _), (rch, _) = OPLS_ETHANE["bonds"][("CT", "CT")], OPLS_ETHANE["bonds"][("CT", "HC")]
    theta = np.deg2rad(OPLS_ETHANE["angles"][("CT", "CT", "HC")][0])
    x = np.zeros((8, 3))
    x[4, 0] = rcc
    shift = 60.0 if staggered else 0.0
    for k in range(3):
        p1, p2 = np.deg2rad(120.0 * k), np.deg2rad(120.0 * k + shift)
        # C1's hydrogens point away from C2 (angle theta to the C1->C2 axis), and vice versa
        x[1 + k] = rch * np.array([np.cos(theta), np.sin(theta) * np.cos(p1), np.sin(theta) * np.sin(p1)])
        x[5 + k] = x[4] + rch * np.array([-np.cos(theta), np.sin(theta) * np.cos(p2), np.sin(theta) * np.sin(p2)])
    return x - x[[0, 4]].mean(axis=0) + np.asarray(centre, float)


def _add_ethane(topology, chain) -> list:
    import openmm.app as app

    res = topology.addResidue("ETH", chain)
    atoms = [topology.addAtom(name, app.Element.getBySymbol(sym), res) for name, sym, _ in ETHANE_ATOMS]
    for i, j in _ETHANE_BONDS:
        topology.addBond(atoms[i], atoms[j])
    return atoms


def _ethane_terms():
    """Bonds, angles and torsions of ethane as atom-index tuples with parameters."""
    types = [t for _, _, t in ETHANE_ATOMS]
    nb: dict[int, set[int]] = {i: set() for i in range(8)}
    for i, j in _ETHANE_BONDS:
        nb[i].add(j)
        nb[j].add(i)
    bonds = [(i, j, *OPLS_ETHANE["bonds"][tuple(sorted((types[i], types[j])))]) for i, j in _ETHANE_BONDS]
    angles = []
    for c in range(8):
        for a in sorted(nb[c]):
            for b in sorted(nb[c]):
                if a < b:
                    key = (types[a], types[c], types[b])
                    key = key if key in OPLS_ETHANE["angles"] else key[::-1]
                    th0, k = OPLS_ETHANE["angles"][key]
                    angles.append((a, c, b, np.deg2rad(th0), k))
    torsions = [(a, 0, 4, d) for a in sorted(nb[0] - {4}) for d in sorted(nb[4] - {0})]
    pairs14 = [(a, d) for a, _, _, d in torsions]
    return bonds, angles, torsions, pairs14


def _lj_force(cutoff: float | None):
    import openmm

    lj = openmm.CustomNonbondedForce("4*epsilon*((sigma/r)^12 - (sigma/r)^6); "
                                     "sigma = sqrt(sigma1*sigma2); epsilon = sqrt(epsilon1*epsilon2)")
    lj.addPerParticleParameter("sigma")
    lj.addPerParticleParameter("epsilon")
    lj.setName("Lennard-Jones (geometric mixing)")
    if cutoff is None:
        lj.setNonbondedMethod(openmm.CustomNonbondedForce.NoCutoff)
    else:
        lj.setNonbondedMethod(openmm.CustomNonbondedForce.CutoffPeriodic)
        lj.setCutoffDistance(cutoff)
        lj.setUseSwitchingFunction(True)
        lj.setSwitchingDistance(_SWITCH)
        lj.setUseLongRangeCorrection(True)
    lj.setForceGroup(FORCE_GROUPS["lennard_jones"])
    return lj


def _ethane_forces(system, nonbonded, lj) -> None:
    """Add ethane (particles 0..7 of ``system``, already added) to the forces."""
    import openmm

    bonds, angles, torsions, pairs14 = _ethane_terms()
    hb = openmm.HarmonicBondForce()
    for i, j, r0, k in bonds:
        hb.addBond(i, j, r0, k)
    ha = openmm.HarmonicAngleForce()
    for a, c, b, th0, k in angles:
        ha.addAngle(a, c, b, th0, k)
    pt = openmm.PeriodicTorsionForce()
    for a, b, c, d in torsions:
        pt.addTorsion(a, b, c, d, 3, 0.0, 0.5 * OPLS_ETHANE["torsion_v3"])
    for f, name, group in ((hb, "OPLS bonds", "bonds"), (ha, "OPLS angles", "angles"),
                           (pt, "OPLS torsions", "torsions")):
        f.setName(name)
        f.setForceGroup(FORCE_GROUPS[group])
        f.setUsesPeriodicBoundaryConditions(False)
        system.addForce(f)
    params = [OPLS_ETHANE["atoms"][t] for _, _, t in ETHANE_ATOMS]
    for p in params:
        nonbonded.addParticle(p["charge"], 1.0, 0.0)       # LJ lives in the CustomNonbondedForce
        lj.addParticle([p["sigma"], p["epsilon"]])
    c14, lj14 = OPLS_ETHANE["scale14"]
    excluded = {tuple(sorted(b)) for b in _ETHANE_BONDS} | {(min(a, b), max(a, b)) for a, _, b, _, _ in angles}
    for i, j in sorted(excluded):
        nonbonded.addException(i, j, 0.0, 1.0, 0.0)
        lj.addExclusion(i, j)
    for i, j in pairs14:
        pi, pj = params[i], params[j]
        nonbonded.addException(i, j, c14 * pi["charge"] * pj["charge"], np.sqrt(pi["sigma"] * pj["sigma"]),
                               lj14 * np.sqrt(pi["epsilon"] * pj["epsilon"]))
        lj.addExclusion(i, j)


def ethane_in_vacuum(staggered: bool = True):
    """``(topology, positions (8, 3) nm, system)`` of one OPLS-AA ethane, no cutoff, not periodic.

    Force groups as :data:`FORCE_GROUPS`.
    """
    import openmm
    import openmm.app as app

    top = app.Topology()
    _add_ethane(top, top.addChain())
    system = openmm.System()
    for atom in top.atoms():
        system.addParticle(atom.element.mass)
    nonbonded = openmm.NonbondedForce()
    nonbonded.setNonbondedMethod(openmm.NonbondedForce.NoCutoff)
    nonbonded.setForceGroup(FORCE_GROUPS["coulomb"])
    lj = _lj_force(None)
    _ethane_forces(system, nonbonded, lj)
    system.addForce(nonbonded)
    system.addForce(lj)
    return top, ethane_positions(staggered=staggered), system


def ethane_in_water(edge_nm: float = 2.0, ewald_tolerance: float = 1e-5):
    """One OPLS-AA ethane in a cubic box of rigid TIP3P water (see the module docstring).

    Args:
      edge_nm: box edge, nm (at least 2 * 0.9 nm, the cutoff, so that minimum image holds).
      ewald_tolerance: PME error tolerance of the ``NonbondedForce``.

    Returns:
      ``(topology, positions, system)``: an ``openmm.app.Topology`` with ethane first as
      residue ``ETH`` (atoms C1, H11, H12, H13, C2, H21, H22, H23, elements and the seven
      bonds) and then the waters (residues ``HOH``, atoms O, H1, H2, O-H bonds), its periodic
      box set; ``positions`` ``(n, 3)`` float, nm, ethane (staggered, OPLS equilibrium bond
      lengths) at the box centre; the ``openmm.System``: PME Coulomb (0.9 nm cutoff,
      ``ewald_tolerance``), Lennard-Jones with geometric mixing switched from 0.75 to 0.9 nm with
      the long-range correction, rigid water (O-H and H-H constraints: SETTLE), flexible ethane,
      no ``CMMotionRemover``.

    Waters come from ``openmm.app.Modeller.addSolvent`` (TIP3P, box of ``edge_nm``); every water
    with any atom within 0.25 nm (minimum image) of an ethane atom is removed.
    """
    import openmm
    import openmm.app as app
    import openmm.unit as u

    edge = float(edge_nm)
    if not np.isfinite(edge) or edge < 2 * _CUTOFF:
        raise SetupError(f"the box edge must be at least twice the 0.9 nm cutoff, got {edge_nm!r} nm",
                         fix="pass edge_nm >= 1.8, e.g. 2.0")
    tol = float(ewald_tolerance)
    if not (np.isfinite(tol) and 0 < tol < 1):
        raise SetupError(f"ewald_tolerance must be in (0, 1), got {ewald_tolerance!r}",
                         fix="pass e.g. 1e-5")

    ff = app.ForceField("amber14/tip3p.xml")
    modeller = app.Modeller(app.Topology(), [])
    modeller.addSolvent(ff, model="tip3p", boxSize=openmm.Vec3(edge, edge, edge) * u.nanometer)
    xw = np.asarray(modeller.positions.value_in_unit(u.nanometer))
    waters = [[a.index for a in r.atoms()] for r in modeller.topology.residues()]
    for w in waters:                              # molecules whole, oxygens wrapped into [0, edge)
        xw[w] -= edge * np.floor(xw[w[0]] / edge)
    xe = ethane_positions(centre=np.full(3, 0.5 * edge))
    keep = []
    for w in waters:
        d = xw[w][:, None, :] - xe[None, :, :]
        d -= edge * np.round(d / edge)
        if np.linalg.norm(d, axis=-1).min() >= _CLEARANCE:
            keep.append(w)

    # water parameters from the force field (a water-only system; the same settings)
    wtop = app.Topology()
    wchain = wtop.addChain()
    for _ in keep:
        res = wtop.addResidue("HOH", wchain)
        o = wtop.addAtom("O", app.element.oxygen, res)
        wtop.addBond(o, wtop.addAtom("H1", app.element.hydrogen, res))
        wtop.addBond(o, wtop.addAtom("H2", app.element.hydrogen, res))
    wtop.setPeriodicBoxVectors(modeller.topology.getPeriodicBoxVectors())
    wsys = ff.createSystem(wtop, nonbondedMethod=app.PME, nonbondedCutoff=_CUTOFF * u.nanometer,
                           constraints=app.HBonds, rigidWater=True, switchDistance=_SWITCH * u.nanometer,
                           ewaldErrorTolerance=tol)
    wnb = next(f for f in wsys.getForces() if isinstance(f, openmm.NonbondedForce))

    top = app.Topology()
    _add_ethane(top, top.addChain())
    chain = top.addChain()
    for wres in wtop.residues():
        res = top.addResidue("HOH", chain)
        o = top.addAtom("O", app.element.oxygen, res)
        top.addBond(o, top.addAtom("H1", app.element.hydrogen, res))
        top.addBond(o, top.addAtom("H2", app.element.hydrogen, res))
    top.setPeriodicBoxVectors(modeller.topology.getPeriodicBoxVectors())
    x = np.vstack([xe] + [xw[w] for w in keep])

    system = openmm.System()
    system.setDefaultPeriodicBoxVectors(*wsys.getDefaultPeriodicBoxVectors())
    for atom in list(top.atoms())[:8]:
        system.addParticle(atom.element.mass)
    for i in range(wsys.getNumParticles()):
        system.addParticle(wsys.getParticleMass(i))
    for c in range(wsys.getNumConstraints()):
        i, j, d = wsys.getConstraintParameters(c)
        system.addConstraint(i + 8, j + 8, d)

    nonbonded = openmm.NonbondedForce()
    nonbonded.setNonbondedMethod(openmm.NonbondedForce.PME)
    nonbonded.setCutoffDistance(_CUTOFF)
    nonbonded.setEwaldErrorTolerance(tol)
    nonbonded.setUseDispersionCorrection(False)          # no LJ here: it is in the custom force
    nonbonded.setName("Coulomb (PME)")
    nonbonded.setForceGroup(FORCE_GROUPS["coulomb"])
    lj = _lj_force(_CUTOFF)
    _ethane_forces(system, nonbonded, lj)
    for i in range(wnb.getNumParticles()):
        q, sig, eps = wnb.getParticleParameters(i)
        nonbonded.addParticle(q, 1.0, 0.0)
        lj.addParticle([sig.value_in_unit(u.nanometer), eps.value_in_unit(u.kilojoule_per_mole)])
    for e in range(wnb.getNumExceptions()):
        i, j, qq, sig, eps = wnb.getExceptionParameters(e)
        if qq.value_in_unit(u.elementary_charge**2) != 0.0 or eps.value_in_unit(u.kilojoule_per_mole) != 0.0:
            raise SetupError("the water model has a non-excluded intramolecular exception",
                             fix="use a three-site rigid water model (amber14/tip3p.xml)")
        nonbonded.addException(i + 8, j + 8, 0.0, 1.0, 0.0)
        lj.addExclusion(i + 8, j + 8)
    system.addForce(nonbonded)
    system.addForce(lj)
    return top, x, system
