"""OpenMM side of QM/MM (adapters/openmm/qmmm.py) against the real engine, Reference platform.

The central check is the degenerate limit: TIP3P used as the "QM" model (``MMRegionModel``) in
the embedded force field (``electrostatic_embedding_system``) gives back the pure force field,
energy and forces to round-off.
"""
import math

import numpy as np
import openmm
import openmm.app as app
import openmm.unit as u
import pytest
import scipy.constants as sc

from bridge.errors import CalculationError, SetupError
from bridge.protocols import EnergyModel
from bridge_adapters.openmm import qmmm
from bridge_adapters.openmm.qmmm import (LINK_ATOM_MASS, MMRegionModel, SubsystemEnergy, attach_python_force,
                                         coulomb_constant, electrostatic_embedding,
                                         electrostatic_embedding_system, force_table, mm_charges,
                                         python_force_errors, select_atoms, subsystem_mm_system,
                                         unused_force_group)

REF = openmm.Platform.getPlatformByName("Reference")
FF = app.ForceField("amber14/tip3p.xml")


# -- builders ---------------------------------------------------------------------------------------

def water_topology(n, box=None):
    top = app.Topology()
    if box is not None:
        top.setPeriodicBoxVectors(np.diag([box] * 3) * u.nanometer)
    chain = top.addChain()
    for _ in range(n):
        res = top.addResidue("HOH", chain)
        o = top.addAtom("O", app.element.oxygen, res)
        h1 = top.addAtom("H1", app.element.hydrogen, res)
        h2 = top.addAtom("H2", app.element.hydrogen, res)
        top.addBond(o, h1)
        top.addBond(o, h2)
    return top


def _rotation(rng):
    q = rng.standard_normal(4)
    a, b, c, d = q / np.linalg.norm(q)
    return np.array([[a*a + b*b - c*c - d*d, 2*(b*c - a*d), 2*(b*d + a*c)],
                     [2*(b*c + a*d), a*a - b*b + c*c - d*d, 2*(c*d - a*b)],
                     [2*(b*d - a*c), 2*(c*d + a*b), a*a - b*b - c*c + d*d]])


def water_cluster(n, seed=0):
    """``(3n, 3)`` nm: n distorted waters, O–O about 0.28-0.32 nm, no close contacts."""
    rng = np.random.default_rng(seed)
    theta = np.deg2rad(104.52)
    mono = np.array([[0, 0, 0], [0.09572, 0, 0], [0.09572 * np.cos(theta), 0.09572 * np.sin(theta), 0]])
    oxygens = [np.zeros(3)]
    while len(oxygens) < n:
        cand = oxygens[rng.integers(len(oxygens))] + 0.3 * _unit(rng.standard_normal(3))
        if min(np.linalg.norm(cand - o) for o in oxygens) > 0.27:
            oxygens.append(cand)
    out = []
    for o in oxygens:
        while True:
            w = o + (mono + 0.003 * rng.standard_normal((3, 3))) @ _rotation(rng).T
            if not out or np.min(np.linalg.norm(np.vstack(out)[:, None] - w[None], axis=-1)) > 0.14:
                out.append(w)
                break
    return np.vstack(out)


def _unit(v):
    return v / np.linalg.norm(v)


def flexible_water_system(n):
    return FF.createSystem(water_topology(n), nonbondedMethod=app.NoCutoff, rigidWater=False, constraints=None)


def energy_forces(system, x, groups=-1):
    ctx = openmm.Context(system, openmm.VerletIntegrator(1e-3), REF)
    ctx.setPositions(x)
    st = ctx.getState(getEnergy=True, getForces=True, groups=groups)
    return (st.getPotentialEnergy().value_in_unit(u.kilojoule_per_mole),
            st.getForces(asNumpy=True).value_in_unit(u.kilojoule_per_mole / u.nanometer))


def assert_roundoff(e, e_ref, f, f_ref, rtol=1e-10):
    assert abs(e - e_ref) <= rtol * max(1.0, abs(e_ref)), (e, e_ref)
    assert np.max(np.abs(f - f_ref)) <= rtol * max(1.0, np.max(np.abs(f_ref))), np.max(np.abs(f - f_ref))


# -- the Coulomb constant ---------------------------------------------------------------------------

def test_coulomb_constant_is_openmms_codata_2018_value():
    ke = coulomb_constant()
    eps0_2018 = 8.8541878128e-12
    codata2018 = 1.0 / (4 * math.pi * 1e-6 * eps0_2018 / (sc.e**2 * sc.N_A))
    assert ke == pytest.approx(codata2018, rel=1e-15)
    assert ke == pytest.approx(138.93545764438198, rel=1e-15)
    # scipy's (CODATA 2022) value differs below the 1e-8 identity tolerance, but does differ
    scipy_ke = sc.e**2 / (4 * math.pi * sc.epsilon_0) * sc.N_A / 1000 * 1e9
    assert 0 < abs(scipy_ke - ke) / ke < 1e-8


# -- the degenerate limit ---------------------------------------------------------------------------

@pytest.mark.parametrize("n_water, qm_waters, region", [
    (2, [0], "forcefield"), (2, [1], "subsystem"),
    (5, [2], "forcefield"), (5, [0, 3], "subsystem"), (5, [4], "subsystem"),
])
def test_embedding_plus_mm_region_reproduces_pure_mm(n_water, qm_waters, region):
    x = water_cluster(n_water, seed=n_water)
    system = flexible_water_system(n_water)
    e_ref, f_ref = energy_forces(system, x)
    qm = np.concatenate([np.arange(3 * w, 3 * w + 3) for w in qm_waters])
    mm = np.setdiff1d(np.arange(3 * n_water), qm)

    emb = electrostatic_embedding(system, qm)
    assert np.array_equal(emb.qm_atoms, qm) and np.array_equal(emb.charges, mm_charges(system))
    e_mm, f_mm = energy_forces(emb.system, x)
    if region == "forcefield":
        model = MMRegionModel(flexible_water_system(len(qm_waters)))
    else:
        model = MMRegionModel(subsystem_mm_system(system, qm))
    assert isinstance(model, EnergyModel)
    res = model.compute(x[qm], ("energy", "forces", "charge_forces", "charge_potential"),
                        charges=emb.charges[mm], charge_positions=x[mm])
    f = f_mm.copy()
    f[qm] += res["forces"]
    f[mm] += res["charge_forces"]
    assert_roundoff(e_mm + res["energy"], e_ref, f, f_ref)
    # the embedded system alone is not the full one: the QM-MM Coulomb energy is really gone
    assert abs(e_mm + res["energy"] - e_mm) > 1.0


def test_embedded_mm_energy_is_the_full_energy_minus_qm_terms():
    """For the dimer: E_full = E_emb + E_MM(QM water alone) + Coulomb(QM, MM) by hand."""
    x = water_cluster(2, seed=7)
    system = flexible_water_system(2)
    q = mm_charges(system)
    e_ref, _ = energy_forces(system, x)
    e_emb, _ = energy_forces(electrostatic_embedding_system(system, [0, 1, 2]), x)
    e_qm, _ = energy_forces(flexible_water_system(1), x[:3])
    r = np.linalg.norm(x[:3, None] - x[None, 3:], axis=-1)
    coul = coulomb_constant() * np.sum(q[:3, None] * q[None, 3:] / r)
    assert e_emb + e_qm + coul == pytest.approx(e_ref, rel=1e-12)


# -- a toy molecule with every supported force type ---------------------------------------------------

N_TOY = 6


def toy_system(n_mol, *, external=True, seed=3):
    """n_mol chains of 6 atoms with every bonded force type, NonbondedForce and CustomNonbondedForce."""
    rng = np.random.default_rng(seed)
    n = n_mol * N_TOY
    s = openmm.System()
    for _ in range(n):
        s.addParticle(12.0)
    hb, ha = openmm.HarmonicBondForce(), openmm.HarmonicAngleForce()
    pt, rb = openmm.PeriodicTorsionForce(), openmm.RBTorsionForce()
    cmap = openmm.CMAPTorsionForce()
    cmap.addMap(6, list(rng.standard_normal(36)))
    cb = openmm.CustomBondForce("kb*(r-r0)^2*scale")
    cb.addGlobalParameter("scale", 1.5)
    cb.addPerBondParameter("kb")
    cb.addPerBondParameter("r0")
    ca = openmm.CustomAngleForce("ka*(theta-t0)^2")
    ca.addPerAngleParameter("ka")
    ca.addPerAngleParameter("t0")
    ct = openmm.CustomTorsionForce("kt*(1+cos(2*theta))")
    ct.addPerTorsionParameter("kt")
    cc = openmm.CustomCompoundBondForce(3, "kc*distance(p1,p3)^2 + 0.1*angle(p1,p2,p3)")
    cc.addPerBondParameter("kc")
    cg = openmm.CustomCentroidBondForce(2, "kg*distance(g1,g2)^2")
    cg.addPerBondParameter("kg")
    nb = openmm.NonbondedForce()
    nb.setNonbondedMethod(openmm.NonbondedForce.NoCutoff)
    cn = openmm.CustomNonbondedForce("4*e*((s/r)^12-(s/r)^6); s=0.5*(s1+s2); e=sqrt(e1*e2)")
    cn.addPerParticleParameter("s")
    cn.addPerParticleParameter("e")
    ext = openmm.CustomExternalForce("kx*(x^2+y^2+z^2)")
    ext.addPerParticleParameter("kx")
    # one parameter set per molecule, repeated: molecule m alone is toy_system(1)
    charge = 0.3 * rng.standard_normal(N_TOY)
    lj = np.column_stack([0.3 + 0.02 * rng.random(N_TOY), 0.4 + 0.1 * rng.random(N_TOY)])
    custom_lj = np.column_stack([0.25 + 0.02 * rng.random(N_TOY), 0.2 + 0.1 * rng.random(N_TOY)])
    rb_c = rng.standard_normal((N_TOY - 3, 6))
    bonds = []
    for m in range(n_mol):
        a = m * N_TOY
        for i in range(N_TOY):
            nb.addParticle(charge[i], *lj[i])
            cn.addParticle(list(custom_lj[i]))
        for i in range(N_TOY - 1):
            bonds.append((a + i, a + i + 1))
            hb.addBond(a + i, a + i + 1, 0.15, 2e5)
            cb.addBond(a + i, a + i + 1, [1e4, 0.15])
        for i in range(N_TOY - 2):
            ha.addAngle(a + i, a + i + 1, a + i + 2, 1.9, 300.0)
            ca.addAngle(a + i, a + i + 1, a + i + 2, [50.0, 2.0])
            cc.addBond([a + i, a + i + 1, a + i + 2], [30.0])
        for i in range(N_TOY - 3):
            pt.addTorsion(a + i, a + i + 1, a + i + 2, a + i + 3, 3, 0.2, 2.0)
            rb.addTorsion(a + i, a + i + 1, a + i + 2, a + i + 3, *rb_c[i])
            ct.addTorsion(a + i, a + i + 1, a + i + 2, a + i + 3, [1.5])
        for i in range(N_TOY - 4):
            cmap.addTorsion(0, *(a + i + k for k in range(4)), *(a + i + 1 + k for k in range(4)))
        g = [cg.addGroup([a + 0, a + 1]), cg.addGroup([a + 1, a + 2], [1.0, 2.0]), cg.addGroup([a + 4, a + 5])]
        cg.addBond([g[0], g[1]], [20.0])            # all in atoms 0..2
        cg.addBond([g[0], g[2]], [10.0])            # spans the whole chain
        ext.addParticle(a + 1, [5.0])
    nb.createExceptionsFromBonds(bonds, 0.8333, 0.5)
    for k in range(nb.getNumExceptions()):
        i, j, *_ = nb.getExceptionParameters(k)
        cn.addExclusion(i, j)
    forces = [hb, ha, pt, rb, cmap, cb, ca, ct, cc, cg, nb, cn, openmm.CMMotionRemover()]
    if external:
        forces.append(ext)
    for group, f in enumerate(forces):
        f.setForceGroup(group % 4)
        s.addForce(f)
    return s


def toy_positions(n_mol, seed=11):
    rng = np.random.default_rng(seed)
    chain = np.cumsum(0.15 * np.array([_unit(v) for v in rng.standard_normal((N_TOY, 3)) + [1, 0, 0]]), axis=0)
    return np.vstack([chain + [0, 0.5 * m, 0.1 * m] + 0.01 * rng.standard_normal((N_TOY, 3))
                      for m in range(n_mol)])


def test_subsystem_of_one_molecule_equals_that_molecule_alone():
    x = toy_positions(2)
    sub = subsystem_mm_system(toy_system(2), np.arange(6, 12))
    assert not sub.usesPeriodicBoundaryConditions() and sub.getNumConstraints() == 0
    e, f = energy_forces(sub, x[6:])
    e_ref, f_ref = energy_forces(toy_system(1, external=False), x[6:])
    assert_roundoff(e, e_ref, f, f_ref, rtol=1e-12)
    # any order: particle r of the subsystem is atoms[r]
    order = np.array([9, 6, 11, 7, 10, 8])
    e2, f2 = energy_forces(subsystem_mm_system(toy_system(2), order), x[order])
    assert_roundoff(e2, e_ref, f2, f_ref[order - 6], rtol=1e-12)


def test_subsystem_link_atoms_are_hydrogens_that_interact_with_nothing():
    x = toy_positions(2)
    system = toy_system(2)
    region = [0, 1, 2]
    e0, f0 = energy_forces(subsystem_mm_system(system, region), x[region])
    sub = subsystem_mm_system(system, region, link_hosts=[2, 0])
    assert sub.getNumParticles() == 5
    assert sub.getParticleMass(3).value_in_unit(u.dalton) == LINK_ATOM_MASS
    links = np.array([x[2] + 0.6 * (x[3] - x[2]), x[0] + [0.0, 0.0, 0.1]])
    model = SubsystemEnergy(sub)
    assert isinstance(model, EnergyModel)
    out = model.compute(np.vstack([x[region], links]))
    assert out["energy"] == pytest.approx(e0, rel=1e-12)
    assert np.allclose(out["forces"][:3], f0, rtol=1e-12, atol=1e-9) and not np.any(out["forces"][3:])
    # a link atom right on top of a real atom is still harmless
    out2 = model.compute(np.vstack([x[region], x[[2, 0]]]))
    assert out2["energy"] == pytest.approx(e0, rel=1e-12)
    with pytest.raises(SetupError, match="link hosts"):
        subsystem_mm_system(system, region, link_hosts=[3])


def test_subsystem_of_water_equals_openmm_of_those_waters_alone():
    x = water_cluster(5, seed=1)
    system = flexible_water_system(5)
    atoms = np.r_[9:12, 3:6]                      # waters 3 and 1, in that order
    e, f = energy_forces(subsystem_mm_system(system, atoms), x[atoms])
    e_ref, f_ref = energy_forces(flexible_water_system(2), x[atoms])
    assert_roundoff(e, e_ref, f, f_ref, rtol=1e-12)
    # from a rigid, periodic parent: flexible, non-periodic, with no bond energy (rigid water has none)
    rigid = FF.createSystem(water_topology(5, box=2.0), nonbondedMethod=app.CutoffPeriodic, nonbondedCutoff=0.9)
    sub = subsystem_mm_system(rigid, atoms)
    assert sub.getNumConstraints() == 0 and not sub.usesPeriodicBoundaryConditions()


def test_embedding_of_every_force_type_removes_exactly_the_qm_terms():
    """E_full - E_emb - E_sub(QM) = the QM-MM Coulomb energy (exceptions included), forces too."""
    x = toy_positions(2)
    system = toy_system(2)
    qm = np.array([0, 1, 2])
    emb = electrostatic_embedding(system, qm)
    e_full, f_full = energy_forces(system, x)
    e_emb, f_emb = energy_forces(emb.system, x)
    e_sub, f_sub = energy_forces(subsystem_mm_system(system, qm), x[qm])

    nb = next(f for f in system.getForces() if isinstance(f, openmm.NonbondedForce))
    q = mm_charges(system)
    special = {}
    for k in range(nb.getNumExceptions()):
        i, j, qq, _, _ = nb.getExceptionParameters(k)
        special[(min(i, j), max(i, j))] = qq.value_in_unit(u.elementary_charge**2)
    ke = coulomb_constant()
    e_coul, f_coul = 0.0, np.zeros_like(x)
    for i in qm:
        for j in np.setdiff1d(np.arange(len(x)), qm):
            qq = special.get((min(i, j), max(i, j)), q[i] * q[j])
            d = x[i] - x[j]
            r = np.linalg.norm(d)
            e_coul += ke * qq / r
            f_coul[i] += ke * qq * d / r**3
            f_coul[j] -= ke * qq * d / r**3
    f = f_emb + f_coul
    f[qm] += f_sub
    assert_roundoff(e_emb + e_sub + e_coul, e_full, f, f_full, rtol=1e-11)

    # what was removed: the terms entirely inside atoms 0..2 of each bonded force
    removed = {label.split("(")[1].split(" ")[0]: k for label, k in emb.removed_terms.items()}
    assert removed == {"HarmonicBondForce": 2, "HarmonicAngleForce": 1, "PeriodicTorsionForce": 0,
                       "RBTorsionForce": 0, "CMAPTorsionForce": 0, "CustomBondForce": 2,
                       "CustomAngleForce": 1, "CustomTorsionForce": 0, "CustomCompoundBondForce": 1,
                       "CustomCentroidBondForce": 1}
    # QM-QM pairs 0-1, 1-2 (1-2 exclusions), 0-2 (1-3) already excluded: nothing to add
    assert all(v == 0 for v in emb.added_exclusions.values())
    # force order, names and groups preserved
    assert [(r["type"], r["name"], r["group"]) for r in force_table(emb.system)] == \
        [(r["type"], r["name"], r["group"]) for r in force_table(system)]
    assert list(emb.groups.values()) == [r["group"] for r in force_table(system)]


def test_embedding_nonbonded_details():
    system = flexible_water_system(3)
    nb0 = next(f for f in system.getForces() if isinstance(f, openmm.NonbondedForce))
    # an extra QM-MM exception and a QM-QM one that must be overwritten
    nb0.addException(0, 3, 0.1, 0.3, 0.5)
    nb0.addException(2, 5, 0.2, 0.3, 0.5)                 # QM (3..5) - QM after relabelling below
    emb = electrostatic_embedding(system, [3, 4, 5, 2])
    nb = next(f for f in emb.system.getForces() if isinstance(f, openmm.NonbondedForce))
    for i in (2, 3, 4, 5):
        qi, sig, eps = nb.getParticleParameters(i)
        _, sig0, eps0 = nb0.getParticleParameters(i)
        assert qi._value == 0 and sig == sig0 and eps == eps0
    exceptions = {}
    for k in range(nb.getNumExceptions()):
        i, j, qq, sig, eps = nb.getExceptionParameters(k)
        exceptions[(min(i, j), max(i, j))] = (qq._value, sig._value, eps._value)
    assert exceptions[(0, 3)] == (0.0, 0.3, 0.5)             # QM-MM: LJ kept, Coulomb gone
    for pair in [(2, 3), (2, 4), (2, 5), (3, 4), (3, 5), (4, 5)]:
        assert exceptions[pair][0] == 0 and exceptions[pair][2] == 0
    assert sum(emb.added_exclusions.values()) == 2          # 2-3, 2-4 new; 2-5 existed; 3-4, 3-5, 4-5 existed
    assert np.array_equal(emb.charges, mm_charges(system))
    assert np.all(mm_charges(emb.system)[[2, 3, 4, 5]] == 0)


def test_charge_offsets_are_embedded_and_cut_out_too():
    """Alchemical-style parameter offsets: QM charge offsets zeroed, subsystem keeps its own."""
    x = water_cluster(2, seed=4)

    def with_offsets():
        system = flexible_water_system(2)
        nb = next(f for f in system.getForces() if isinstance(f, openmm.NonbondedForce))
        nb.addGlobalParameter("lam", 1.0)
        nb.addParticleParameterOffset("lam", 0, 0.1, 0.0, 0.0)
        nb.addParticleParameterOffset("lam", 3, -0.1, 0.0, 0.0)
        k = nb.addException(0, 3, 0.0, 0.3, 0.0)
        nb.addExceptionParameterOffset("lam", k, 0.05, 0.0, 0.2)
        return system

    system = with_offsets()
    q0 = mm_charges(flexible_water_system(2))
    assert np.allclose(mm_charges(system) - q0, [0.1, 0, 0, -0.1, 0, 0])
    emb = electrostatic_embedding_system(system, [0, 1, 2])
    assert np.allclose(mm_charges(emb), np.r_[0, 0, 0, q0[3:] + [-0.1, 0, 0]])
    nb = next(f for f in emb.getForces() if isinstance(f, openmm.NonbondedForce))
    offsets = [nb.getExceptionParameterOffset(k) for k in range(nb.getNumExceptionParameterOffsets())]
    assert [(o[0], o[2], o[4]) for o in offsets] == [("lam", 0.0, 0.2)]   # Coulomb off, LJ kept
    # E_full = E_emb + E_sub(QM) + Coulomb(QM, MM) with the offset charges (pair 0-3: offset product)
    e_full, _ = energy_forces(system, x)
    e_emb, _ = energy_forces(emb, x)
    e_sub, _ = energy_forces(subsystem_mm_system(system, [0, 1, 2]), x[:3])
    q = mm_charges(system)
    r = np.linalg.norm(x[:3, None] - x[None, 3:], axis=-1)
    qq = q[:3, None] * q[None, 3:]
    qq[0, 0] = 0.05
    assert e_emb + e_sub + coulomb_constant() * np.sum(qq / r) == pytest.approx(e_full, rel=1e-12)
    # the subsystem's own offset follows the global parameter
    sub = subsystem_mm_system(system, [0, 1, 2])
    ctx = openmm.Context(sub, openmm.VerletIntegrator(1e-3), REF)
    ctx.setPositions(x[:3])
    ctx.setParameter("lam", 0.0)
    e_lam0 = ctx.getState(getEnergy=True).getPotentialEnergy().value_in_unit(u.kilojoule_per_mole)
    assert e_lam0 == pytest.approx(energy_forces(flexible_water_system(1), x[:3])[0], rel=1e-12)


def test_rigid_water_box_qm_waters_become_flexible_mm_waters_stay_rigid():
    modeller = app.Modeller(app.Topology(), [])
    modeller.addSolvent(FF, model="tip3p", boxSize=openmm.Vec3(1.4, 1.4, 1.4) * u.nanometer)
    top = modeller.topology
    x = np.array(modeller.positions.value_in_unit(u.nanometer))
    box = np.array(top.getPeriodicBoxVectors().value_in_unit(u.nanometer))
    system = FF.createSystem(top, nonbondedMethod=app.PME, nonbondedCutoff=0.6 * u.nanometer, rigidWater=True)
    qm = select_atoms(top, within=0.25, point=x[0], positions=x, box=box)
    assert len(qm) % 3 == 0 and len(qm) >= 3 and 0 in qm
    emb = electrostatic_embedding(system, qm)
    assert emb.removed_constraints == len(qm)                # three per water (SETTLE)
    assert emb.system.getNumConstraints() == system.getNumConstraints() - len(qm)
    in_qm = np.isin(np.arange(system.getNumParticles()), qm)
    for c in range(emb.system.getNumConstraints()):
        i, j, _ = emb.system.getConstraintParameters(c)
        assert not (in_qm[i] or in_qm[j])
    ctx = openmm.Context(emb.system, openmm.VerletIntegrator(1e-3), REF)
    ctx.setPositions(x)
    e = ctx.getState(getEnergy=True).getPotentialEnergy().value_in_unit(u.kilojoule_per_mole)
    assert np.isfinite(e)
    assert emb.system.usesPeriodicBoundaryConditions()


# -- selection ---------------------------------------------------------------------------------------

def test_select_atoms_by_index_residue_and_distance():
    top = water_topology(5)
    x = water_cluster(5, seed=2)
    assert np.array_equal(select_atoms(top, indices=[5, 3, 4, 4]), [3, 4, 5])
    assert np.array_equal(select_atoms(top, residues=1), [3, 4, 5])
    assert np.array_equal(select_atoms(top, residues="HOH"), np.arange(15))
    assert np.array_equal(select_atoms(top, residues=["HOH", 0]), np.arange(15))
    # AND of criteria
    assert np.array_equal(select_atoms(top, residues=[0, 2], indices=[0, 1, 7, 12]), [0, 1, 7])
    # within: one H of water 1 inside -> the whole water with whole_residues
    p = x[4] + [0.01, 0, 0]
    assert np.array_equal(select_atoms(top, within=0.02, point=p, positions=x), [3, 4, 5])
    assert np.array_equal(select_atoms(top, within=0.02, point=p, positions=x, whole_residues=False), [4])
    assert np.array_equal(select_atoms(top, within=0.02 * u.nanometer, point=p, positions=x * u.nanometer,
                                       whole_residues=False), [4])
    # minimum image
    box = np.diag([3.0, 3.0, 3.0])
    shifted = p + [3.0, 0, -3.0]
    assert np.array_equal(select_atoms(top, within=0.02, point=shifted, positions=x, box=box), [3, 4, 5])
    with pytest.raises(SetupError, match="empty"):
        select_atoms(top, within=0.02, point=shifted, positions=x)


@pytest.mark.parametrize("kwargs, match", [
    ({}, "at least one criterion"),
    ({"indices": [0, 99]}, "out of range"),
    ({"indices": [0.5]}, "integer"),
    ({"indices": np.ones(15, bool)}, "boolean mask"),
    ({"residues": "WAT"}, "no residue named 'WAT'"),
    ({"residues": 7}, "residue index 7"),
    ({"residues": [1.5]}, "names"),
    ({"within": 0.3}, "needs point"),
    ({"within": -0.3, "point": [0, 0, 0], "positions": np.zeros((15, 3))}, "positive"),
    ({"within": 0.3, "point": [np.nan, 0, 0], "positions": np.zeros((15, 3))}, "NaN"),
    ({"residues": 0, "indices": [3]}, "empty"),
])
def test_select_atoms_refuses_bad_or_empty_selections(kwargs, match):
    with pytest.raises(SetupError, match=match) as info:
        select_atoms(water_topology(5), **kwargs)
    assert info.value.fix


# -- set-up errors ---------------------------------------------------------------------------------------

def test_unsupported_forces_and_inputs_are_refused_by_name():
    system = flexible_water_system(2)
    gb = openmm.GBSAOBCForce()
    for _ in range(6):
        gb.addParticle(0.0, 0.15, 1.0)
    system.addForce(gb)
    with pytest.raises(SetupError, match=r"GBSAOBCForce.*not supported") as info:
        electrostatic_embedding_system(system, [0, 1, 2])
    assert "removeForce(4)" in info.value.fix
    with pytest.raises(SetupError, match="GBSAOBCForce"):
        subsystem_mm_system(system, [0, 1, 2])

    system = flexible_water_system(2)
    attach_python_force(system, lambda x: (0.0, np.zeros((6, 3))))
    with pytest.raises(SetupError, match="PythonForce"):
        electrostatic_embedding_system(system, [0, 1, 2])
    assert subsystem_mm_system(system, [0, 1, 2]).getNumForces() == 3      # dropped there

    system = flexible_water_system(2)
    cn = openmm.CustomNonbondedForce("charge1*charge2/r")
    cn.addPerParticleParameter("charge")
    for _ in range(6):
        cn.addParticle([0.1])
    system.addForce(cn)
    with pytest.raises(SetupError, match="charge-like"):
        electrostatic_embedding_system(system, [0, 1, 2])

    with pytest.raises(SetupError, match="duplicates"):
        electrostatic_embedding_system(flexible_water_system(2), [0, 0, 1])
    with pytest.raises(SetupError, match="out of range"):
        subsystem_mm_system(flexible_water_system(2), [0, 6])
    with pytest.raises(SetupError, match="openmm.System"):
        electrostatic_embedding_system("system.xml", [0])


def test_virtual_sites_across_the_boundary_are_refused_and_copied_otherwise():
    system = flexible_water_system(2)
    m1 = system.addParticle(0.0)
    system.setVirtualSite(m1, openmm.ThreeParticleAverageSite(0, 1, 2, 0.8, 0.1, 0.1))
    m2 = system.addParticle(0.0)
    system.setVirtualSite(m2, openmm.OutOfPlaneSite(3, 4, 5, 0.1, 0.1, 0.5))
    for f in system.getForces():
        if isinstance(f, openmm.NonbondedForce):
            f.addParticle(0.0, 1.0, 0.0)
            f.addParticle(0.0, 1.0, 0.0)
    with pytest.raises(SetupError, match="virtual site 6"):
        electrostatic_embedding_system(system, [0, 1, 2])
    emb = electrostatic_embedding_system(system, [0, 1, 2, 6])
    assert emb.isVirtualSite(6) and emb.isVirtualSite(7)
    sub = subsystem_mm_system(system, [3, 4, 5, 7])
    vs = sub.getVirtualSite(3)
    assert [vs.getParticle(k) for k in range(3)] == [0, 1, 2] and vs.getWeightCross() == 0.5
    with pytest.raises(SetupError, match="outside"):
        subsystem_mm_system(system, [3, 4, 7])


def test_mm_region_model_refuses_bad_inputs():
    with pytest.raises(SetupError, match="constraints"):
        MMRegionModel(FF.createSystem(water_topology(1), nonbondedMethod=app.NoCutoff))
    periodic = FF.createSystem(water_topology(1, box=2.0), nonbondedMethod=app.CutoffPeriodic, rigidWater=False,
                               constraints=None, nonbondedCutoff=0.5)
    with pytest.raises(SetupError, match="periodic"):
        MMRegionModel(periodic)
    model = MMRegionModel(flexible_water_system(1))
    x = water_cluster(2)
    with pytest.raises(SetupError, match="'energi'"):
        model.compute(x[:3], ("energi",))
    with pytest.raises(SetupError, match="NaN"):
        model.compute(np.full((3, 3), np.nan))
    with pytest.raises(SetupError, match="shape"):
        model.compute(x)
    with pytest.raises(SetupError, match="go together"):
        model.compute(x[:3], charges=[0.1])
    with pytest.raises(SetupError, match="NaN"):
        model.compute(x[:3], charges=[np.nan], charge_positions=x[3:4])
    with pytest.raises(SetupError, match="sits on"):
        model.compute(x[:3], charges=[0.1], charge_positions=x[1:2])
    with pytest.raises(SetupError, match="shape"):
        MMRegionModel(flexible_water_system(1), charges=[0.1, 0.2])


# -- MMRegionModel: finite differences, cache -------------------------------------------------------------

def test_mm_region_model_derivatives_match_finite_differences():
    x = water_cluster(4, seed=5)
    system = flexible_water_system(4)
    q = mm_charges(system)
    model = MMRegionModel(flexible_water_system(1))
    xq, qJ, rJ = x[:3], q[3:], x[3:]
    res = model.compute(xq, ("energy", "forces", "charge_forces", "charge_potential"), charges=qJ,
                        charge_positions=rJ)
    energy = lambda a, b, c: model.compute(a, ("energy",), charges=b, charge_positions=c)["energy"]
    h = 1e-5
    for i in range(3):
        for c in range(3):
            xp, xm = xq.copy(), xq.copy()
            xp[i, c] += h
            xm[i, c] -= h
            fd = -(energy(xp, qJ, rJ) - energy(xm, qJ, rJ)) / (2 * h)
            assert fd == pytest.approx(res["forces"][i, c], rel=1e-6, abs=1e-4)
    for j in range(len(qJ)):
        for c in range(3):
            rp, rm = rJ.copy(), rJ.copy()
            rp[j, c] += h
            rm[j, c] -= h
            fd = -(energy(xq, qJ, rp) - energy(xq, qJ, rm)) / (2 * h)
            assert fd == pytest.approx(res["charge_forces"][j, c], rel=1e-6, abs=1e-4)
        qp, qm_ = qJ.copy(), qJ.copy()
        qp[j] += 1e-4
        qm_[j] -= 1e-4
        fd = (energy(xq, qp, rJ) - energy(xq, qm_, rJ)) / 2e-4
        assert fd == pytest.approx(res["charge_potential"][j], rel=1e-8)
    # isolated region + charges: no net force (translation invariance)
    total = res["forces"].sum(axis=0) + res["charge_forces"].sum(axis=0)
    assert np.max(np.abs(total)) < 1e-9 * np.max(np.abs(res["forces"]))


def test_mm_region_model_caches_and_returns_copies():
    model = MMRegionModel(flexible_water_system(1))
    x = water_cluster(1)
    a = model.compute(x)
    a["forces"][:] = 0.0
    b = model.compute(x)
    assert np.any(b["forces"]) and b["energy"] == a["energy"]
    no_charges = model.compute(x, ("energy", "charge_forces", "charge_potential"))
    assert no_charges["charge_forces"].shape == (0, 3) and no_charges["charge_potential"].shape == (0,)
    assert no_charges["energy"] == pytest.approx(energy_forces(flexible_water_system(1), x)[0], rel=1e-14)


# -- Python forces in the OpenMM step -------------------------------------------------------------------------

K_SPRING = 500.0


def spring(x):
    """A harmonic spring of rest length 0.2 nm between the two particles given."""
    d = x[1] - x[0]
    r = np.linalg.norm(d)
    e = 0.5 * K_SPRING * (r - 0.2) ** 2
    f1 = -K_SPRING * (r - 0.2) * d / r
    return e, np.array([-f1, f1])


def three_particles():
    s = openmm.System()
    for m in (10.0, 12.0, 14.0):
        s.addParticle(m)
    x = np.array([[0.0, 0.0, 0.0], [0.23, 0.02, 0.0], [0.0, 0.5, 0.1]])
    return s, x


def test_python_force_energy_and_forces_appear_in_getstate_and_its_group():
    s, x = three_particles()
    assert unused_force_group(s) == 0
    s.addForce(openmm.CMMotionRemover())
    group = unused_force_group(s) + 1                       # 1: away from the default group 0
    index = attach_python_force(s, spring, particles=[2, 1], group=group)
    assert index == 1 and s.getForce(index).getForceGroup() == group
    assert force_table(s)[index]["name"] == "msbridge QM/MM"
    e, f = energy_forces(s, x)
    e_ref, f_pair = spring(x[[2, 1]])
    assert e == pytest.approx(e_ref, rel=1e-14)
    assert np.allclose(f[[2, 1]], f_pair, rtol=1e-14) and not np.any(f[0])
    e_g, _ = energy_forces(s, x, groups={group})
    e_0, _ = energy_forces(s, x, groups={0})
    assert e_g == pytest.approx(e_ref, rel=1e-14) and e_0 == 0.0


def test_python_force_is_never_a_step_late():
    """Verlet with the spring as a PythonForce follows the same spring as a HarmonicBondForce."""
    s_py, x = three_particles()
    attach_python_force(s_py, spring, particles=[0, 1])
    s_ref, _ = three_particles()
    bond = openmm.HarmonicBondForce()
    bond.addBond(0, 1, 0.2, K_SPRING)
    s_ref.addForce(bond)
    traj = []
    for s in (s_py, s_ref):
        ctx = openmm.Context(s, openmm.VerletIntegrator(0.001), REF)
        ctx.setPositions(x)
        ctx.setVelocities(np.array([[0.3, -0.2, 0.1], [-0.1, 0.4, 0.0], [0.0, 0.0, 0.0]]))
        ctx.getIntegrator().step(200)
        st = ctx.getState(getPositions=True, getEnergy=True)
        traj.append((st.getPositions(asNumpy=True).value_in_unit(u.nanometer),
                     st.getPotentialEnergy().value_in_unit(u.kilojoule_per_mole)
                     + st.getKineticEnergy().value_in_unit(u.kilojoule_per_mole)))
    assert np.allclose(traj[0][0], traj[1][0], rtol=0, atol=1e-12)
    assert traj[0][1] == pytest.approx(traj[1][1], rel=1e-12)


@pytest.mark.parametrize("platform", ["Reference", "CPU"])
def test_python_force_errors_surface_with_their_type(platform):
    s, x = three_particles()

    def failing(x):
        raise CalculationError("PySCF calculation failed", reason="SCF not converged in 3 cycles",
                               state={"cycles": 3}, fix="raise max_cycle")

    attach_python_force(s, failing, particles=[0, 1])
    ctx = openmm.Context(s, openmm.VerletIntegrator(1e-3), openmm.Platform.getPlatformByName(platform))
    ctx.setPositions(x)
    # bare OpenMM: an OpenMMException whose message names the original type and message
    with pytest.raises(openmm.OpenMMException, match="CalculationError: PySCF calculation failed: SCF not conv"):
        ctx.getState(getEnergy=True)
    # inside python_force_errors: the original exception, data included
    with pytest.raises(CalculationError, match="SCF not converged") as info:
        with python_force_errors():
            ctx.getIntegrator().step(1)
    assert info.value.state == {"cycles": 3} and info.value.reason.startswith("SCF")
    assert isinstance(info.value.__context__, openmm.OpenMMException)
    # other OpenMM errors pass through untouched
    with pytest.raises(openmm.OpenMMException, match="Called setPositions"):
        with python_force_errors():
            ctx.setPositions(x[:2])


def test_python_force_checks_what_the_callback_returns():
    s, x = three_particles()
    attach_python_force(s, lambda x: (1.0, np.zeros((3, 3))), particles=[0, 1])
    ctx = openmm.Context(s, openmm.VerletIntegrator(1e-3), REF)
    ctx.setPositions(x)
    with pytest.raises(SetupError, match=r"shape \(3, 3\), expected \(2, 3\)"):
        with python_force_errors():
            ctx.getState(getForces=True)
    s, x = three_particles()
    attach_python_force(s, lambda x: (np.nan, np.zeros((3, 3))))
    ctx = openmm.Context(s, openmm.VerletIntegrator(1e-3), REF)
    ctx.setPositions(x)
    with pytest.raises(CalculationError, match="non-finite"):
        with python_force_errors():
            ctx.getState(getEnergy=True)
    with pytest.raises(SetupError, match="group"):
        attach_python_force(s, spring, group=32)
    with pytest.raises(SetupError, match="callable"):
        attach_python_force(s, "spring")
    with pytest.raises(SetupError, match="out of range"):
        attach_python_force(s, spring, particles=[0, 3])


def test_periodic_python_force_receives_the_box():
    s, x = three_particles()
    s.setDefaultPeriodicBoxVectors(openmm.Vec3(2, 0, 0), openmm.Vec3(0, 2.5, 0), openmm.Vec3(0, 0, 3))
    seen = []

    def compute(x, box):
        seen.append(box.copy())
        return 0.0, np.zeros((len(x), 3))

    attach_python_force(s, compute, periodic=True)
    assert s.usesPeriodicBoundaryConditions()
    energy_forces(s, x)
    assert np.allclose(seen[-1], np.diag([2.0, 2.5, 3.0]))


def test_pyscf_calculation_error_is_not_swallowed():
    pytest.importorskip("pyscf")
    from bridge_adapters.pyscf import PySCFModel

    x = water_cluster(1)
    model = PySCFModel(["O", "H", "H"], x, basis="sto-3g", max_cycle=1)
    s = openmm.System()
    for m in (16.0, 1.0, 1.0):
        s.addParticle(m)

    def qm(xq):
        out = model.compute(xq)
        return out["energy"], out["forces"]

    attach_python_force(s, qm)
    ctx = openmm.Context(s, openmm.VerletIntegrator(5e-4), REF)
    ctx.setPositions(x)
    with pytest.raises(CalculationError, match="not converged") as info:
        with python_force_errors():
            ctx.getIntegrator().step(1)
    assert info.value.state["max_cycle"] == 1


def test_lazy_reexport_from_the_adapter_package():
    import bridge_adapters.openmm as adapter

    assert adapter.select_atoms is select_atoms and adapter.MMRegionModel is MMRegionModel
    with pytest.raises(AttributeError):
        adapter.no_such_name
    assert set(qmmm.__all__) <= set(dir(qmmm))
