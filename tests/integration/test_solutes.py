"""OPLS-AA ethane alone and in TIP3P water (validation/solutes.py) against OpenMM and hand sums.

Gas phase: each energy term of the force field equals its formula evaluated in numpy (bonds
zero at the OPLS lengths, angles the small mismatch of the three OPLS equilibrium angles,
torsion zero staggered and 9 V3 eclipsed, the nine halved 1-4 H-H pairs).  Solvated: the
topology the QM/MM set-up reads, geometric Lennard-Jones mixing against an O(n^2) numpy sum,
forces against finite differences, and energy conservation in a short NVE run.
"""
import numpy as np
import openmm
import openmm.unit as u
import pytest

from bridge_validation.solutes import (ETHANE_ATOMS, FORCE_GROUPS, OPLS_ETHANE, ethane_in_vacuum,
                                       ethane_in_water)
from bridge_adapters.openmm import OpenMMEngine
from bridge_adapters.openmm.qmmm import coulomb_constant

REF = openmm.Platform.getPlatformByName("Reference")
BONDS = [(0, 1), (0, 2), (0, 3), (0, 4), (4, 5), (4, 6), (4, 7)]


def _context(system, x, platform=REF):
    ctx = openmm.Context(system, openmm.VerletIntegrator(1e-3), platform)
    ctx.setPositions(x)
    return ctx


def _energy(ctx, group=None):
    kw = {} if group is None else {"groups": {group}}
    return ctx.getState(getEnergy=True, **kw).getPotentialEnergy().value_in_unit(u.kilojoule_per_mole)


def _angle(x, a, c, b):
    u1, u2 = x[a] - x[c], x[b] - x[c]
    return np.arccos(u1 @ u2 / np.linalg.norm(u1) / np.linalg.norm(u2))


def _dihedral(x, a, b, c, d):
    b0, b1, b2 = x[a] - x[b], x[c] - x[b], x[d] - x[c]
    b1 = b1 / np.linalg.norm(b1)
    v, w = b0 - (b0 @ b1) * b1, b2 - (b2 @ b1) * b1
    return np.arctan2(np.cross(b1, v) @ w, v @ w)


@pytest.fixture(scope="module")
def solvated():
    return ethane_in_water(2.0)


# -- gas phase -------------------------------------------------------------------------------------

@pytest.mark.parametrize("staggered", [True, False])
def test_gas_phase_terms_match_the_opls_formulas(staggered):
    top, x, system = ethane_in_vacuum(staggered)
    ctx = _context(system, x)
    types = [t for _, _, t in ETHANE_ATOMS]
    # bonds at the OPLS lengths: zero
    assert _energy(ctx, FORCE_GROUPS["bonds"]) < 1e-20
    for i, j in BONDS:
        r0 = OPLS_ETHANE["bonds"][tuple(sorted((types[i], types[j])))][0]
        assert np.linalg.norm(x[i] - x[j]) == pytest.approx(r0, abs=1e-12)
    # angles: C-C-H at 110.7 deg exactly, H-C-H then 108.2 deg (not the OPLS 107.8): a known residue
    e_angle, hch = 0.0, []
    for c, other_c, hs in ((0, 4, (1, 2, 3)), (4, 0, (5, 6, 7))):
        for a in hs:
            th = _angle(x, a, c, other_c)
            assert np.rad2deg(th) == pytest.approx(110.7, abs=1e-10)
            th0, k = OPLS_ETHANE["angles"][("CT", "CT", "HC")]
            e_angle += 0.5 * k * (th - np.deg2rad(th0)) ** 2
            for b in hs:
                if a < b:
                    th = _angle(x, a, c, b)
                    th0, k = OPLS_ETHANE["angles"][("HC", "CT", "HC")]
                    e_angle += 0.5 * k * (th - np.deg2rad(th0)) ** 2
                    hch.append(np.rad2deg(th))
    t = np.deg2rad(110.7)                         # three-fold symmetric methyl: cos HCH = cos^2 t - sin^2 t / 2
    assert np.allclose(hch, np.rad2deg(np.arccos(np.cos(t) ** 2 - 0.5 * np.sin(t) ** 2)), atol=1e-10)
    assert np.allclose(hch, 108.215, atol=1e-3)
    assert _energy(ctx, FORCE_GROUPS["angles"]) == pytest.approx(e_angle, rel=1e-10)
    assert 0.04 < e_angle < 0.05
    # torsion: V3/2 (1 + cos 3 phi) over the nine H-C-C-H dihedrals
    v3 = OPLS_ETHANE["torsion_v3"]
    e_tor = sum(0.5 * v3 * (1 + np.cos(3 * _dihedral(x, a, 0, 4, d))) for a in (1, 2, 3) for d in (5, 6, 7))
    assert _energy(ctx, FORCE_GROUPS["torsions"]) == pytest.approx(e_tor, rel=1e-10, abs=1e-10)
    assert e_tor == pytest.approx(0.0 if staggered else 9 * v3, abs=1e-10)
    # non-bonded: only the nine 1-4 H-H pairs, Coulomb and LJ both halved; no other LJ
    h = OPLS_ETHANE["atoms"]["HC"]
    e14 = 0.0
    for a in (1, 2, 3):
        for d in (5, 6, 7):
            r = np.linalg.norm(x[a] - x[d])
            sr6 = (h["sigma"] / r) ** 6
            e14 += 0.5 * coulomb_constant() * h["charge"] ** 2 / r + 0.5 * 4 * h["epsilon"] * (sr6 * sr6 - sr6)
    assert _energy(ctx, FORCE_GROUPS["coulomb"]) == pytest.approx(e14, rel=1e-10)
    assert _energy(ctx, FORCE_GROUPS["lennard_jones"]) == 0.0
    assert _energy(ctx) == pytest.approx(e_angle + e_tor + e14, rel=1e-10)


def test_gas_phase_minimum_is_staggered_near_the_opls_geometry():
    _, x, system = ethane_in_vacuum(True)
    ctx = _context(system, x + 0.002 * np.random.default_rng(1).normal(size=x.shape))
    openmm.LocalEnergyMinimizer.minimize(ctx, 1e-6, 0)
    st = ctx.getState(getPositions=True, getForces=True)
    xm = st.getPositions(asNumpy=True).value_in_unit(u.nanometer)
    f = st.getForces(asNumpy=True).value_in_unit(u.kilojoule_per_mole / u.nanometer)
    assert np.abs(f).max() < 1e-2
    assert np.linalg.norm(xm[4] - xm[0]) == pytest.approx(0.1529, abs=1e-3)
    assert _energy(ctx, FORCE_GROUPS["torsions"]) < 1e-3      # staggered
    assert _energy(ctx) < _energy(_context(system, x))


# -- solvated --------------------------------------------------------------------------------------

def test_topology_has_ethane_then_waters(solvated):
    top, x, system = solvated
    residues = list(top.residues())
    assert residues[0].name == "ETH"
    assert [(a.name, a.element.symbol) for a in residues[0].atoms()] == [(n, s) for n, s, _ in ETHANE_ATOMS]
    assert [a.index for a in residues[0].atoms()] == list(range(8))
    assert all(r.name == "HOH" and [a.element.symbol for a in r.atoms()] == ["O", "H", "H"] for r in residues[1:])
    bonds = sorted(tuple(sorted((b.atom1.index, b.atom2.index))) for b in top.bonds())
    n_w = len(residues) - 1
    expected = BONDS + [(8 + 3 * w, 8 + 3 * w + k) for w in range(n_w) for k in (1, 2)]
    assert bonds == sorted(expected)
    assert top.getNumAtoms() == system.getNumParticles() == len(x) == 8 + 3 * n_w
    assert 240 < n_w < 260                          # ~258 in the Modeller box, a few removed for ethane
    box = top.getPeriodicBoxVectors().value_in_unit(u.nanometer)
    assert np.allclose(np.array([list(v) for v in box]), 2.0 * np.eye(3))
    assert np.allclose(x[[0, 4]].mean(axis=0), 1.0)
    # no water atom within 0.25 nm of ethane (minimum image); constraints on water only
    d = x[8:, None, :] - x[None, :8, :]
    d -= 2.0 * np.round(d / 2.0)
    assert np.linalg.norm(d, axis=-1).min() >= 0.25
    assert system.getNumConstraints() == 3 * n_w
    assert all(min(system.getConstraintParameters(c)[:2]) >= 8 for c in range(system.getNumConstraints()))
    assert not any(isinstance(f, openmm.CMMotionRemover) for f in system.getForces())
    masses = [system.getParticleMass(i).value_in_unit(u.dalton) for i in range(8)]
    assert masses == pytest.approx([12.01, 1.008, 1.008, 1.008, 12.01, 1.008, 1.008, 1.008], abs=0.01)


def test_solvated_system_settings(solvated):
    _, _, system = solvated
    nb = next(f for f in system.getForces() if isinstance(f, openmm.NonbondedForce))
    lj = next(f for f in system.getForces() if isinstance(f, openmm.CustomNonbondedForce))
    assert nb.getNonbondedMethod() == openmm.NonbondedForce.PME
    assert nb.getCutoffDistance().value_in_unit(u.nanometer) == pytest.approx(0.9)
    assert nb.getEwaldErrorTolerance() == pytest.approx(1e-5)
    assert lj.getNonbondedMethod() == openmm.CustomNonbondedForce.CutoffPeriodic
    assert lj.getUseSwitchingFunction() and lj.getSwitchingDistance().value_in_unit(u.nanometer) == pytest.approx(0.75)
    q = np.array([nb.getParticleParameters(i)[0].value_in_unit(u.elementary_charge)
                  for i in range(system.getNumParticles())])
    assert q[:8] == pytest.approx([-0.18, 0.06, 0.06, 0.06, -0.18, 0.06, 0.06, 0.06])
    assert q[8:11] == pytest.approx([-0.834, 0.417, 0.417])
    assert abs(q.sum()) < 1e-12
    # every NonbondedForce exception is a CustomNonbondedForce exclusion and vice versa
    ex = {tuple(sorted(nb.getExceptionParameters(e)[:2])) for e in range(nb.getNumExceptions())}
    excl = {tuple(sorted(lj.getExclusionParticles(e))) for e in range(lj.getNumExclusions())}
    assert ex == excl and len(ex) == 28 + 3 * (system.getNumParticles() - 8) // 3


def test_lennard_jones_is_geometric_and_switched(solvated):
    """The CustomNonbondedForce against an O(n^2) numpy sum (long-range correction off)."""
    top, x, system = solvated
    system = openmm.XmlSerializer.deserialize(openmm.XmlSerializer.serialize(system))
    lj = next(f for f in system.getForces() if isinstance(f, openmm.CustomNonbondedForce))
    lj.setUseLongRangeCorrection(False)
    e = _energy(_context(system, x), FORCE_GROUPS["lennard_jones"])
    n = len(x)
    sig = np.array([lj.getParticleParameters(i)[0] for i in range(n)])
    eps = np.array([lj.getParticleParameters(i)[1] for i in range(n)])
    excluded = np.zeros((n, n), bool)
    for k in range(lj.getNumExclusions()):
        i, j = lj.getExclusionParticles(k)
        excluded[i, j] = excluded[j, i] = True
    iu = np.triu_indices(n, 1)
    keep = ~excluded[iu]
    i, j = iu[0][keep], iu[1][keep]
    d = x[i] - x[j]
    d -= 2.0 * np.round(d / 2.0)
    r = np.linalg.norm(d, axis=1)
    s, ep = np.sqrt(sig[i] * sig[j]), np.sqrt(eps[i] * eps[j])
    sr6 = (s / r) ** 6
    t = np.clip((r - 0.75) / 0.15, 0.0, 1.0)
    switch = 1 - 10 * t**3 + 15 * t**4 - 6 * t**5
    ref = np.sum(np.where(r < 0.9, 4 * ep * (sr6 * sr6 - sr6) * switch, 0.0))
    assert e == pytest.approx(ref, rel=1e-9)
    # geometric, not Lorentz-Berthelot, for the ethane C - water O pair
    assert np.sqrt(sig[0] * sig[8]) == pytest.approx(np.sqrt(0.35 * 0.3150752406575124), rel=1e-12)
    assert sig[8] == pytest.approx(0.3150752406575124) and eps[8] == pytest.approx(0.635968)


def test_energy_finite_and_forces_match_finite_differences(solvated):
    _, x, system = solvated
    ctx = _context(system, x)
    st = ctx.getState(getEnergy=True, getForces=True)
    e0 = st.getPotentialEnergy().value_in_unit(u.kilojoule_per_mole)
    f = st.getForces(asNumpy=True).value_in_unit(u.kilojoule_per_mole / u.nanometer)
    assert np.isfinite(e0) and np.all(np.isfinite(f))
    h = 1e-5
    worst = 0.0
    for i in range(8):
        for k in range(3):
            xp, xm = x.copy(), x.copy()
            xp[i, k] += h
            xm[i, k] -= h
            ctx.setPositions(xp)
            ep = _energy(ctx)
            ctx.setPositions(xm)
            em = _energy(ctx)
            worst = max(worst, abs(-(ep - em) / (2 * h) - f[i, k]))
    print("max |F - F_fd| on ethane", worst, "of max |F|", np.abs(f[:8]).max())
    assert worst < 1e-3


def test_short_nve_run_conserves_energy(solvated):
    """Minimise, 100 steps to leave the transient after velocity assignment, then 200 steps of
    0.5 fs Verlet on the CPU platform: measured drift 4e-5 to 1.3e-4 kJ/mol/ps/atom (|slope|
    0.03-0.1 kJ/mol/ps for 764 atoms; the CPU platform's threads make runs differ), peak-to-peak
    0.2 kJ/mol.  Started at the minimum without the 100 steps: 2e-3 and 0.3 kJ/mol (the
    relaxation in the first ~10 fs dominates a 0.1 ps fit)."""
    _, x, system = solvated
    eng = OpenMMEngine(system, x, integrator=openmm.VerletIntegrator(0.0005), platform="CPU")
    eng.minimize(tolerance=10.0, max_iterations=500)
    eng.set_velocities_to_temperature(300.0, seed=5)
    eng.step(100)
    t, e = [], []
    for k in range(21):
        if k:
            eng.step(10)
        t.append(eng.time)
        e.append(eng.get_potential_energy() + eng.get_kinetic_energy())
    t, e = np.array(t) - t[0], np.array(e)
    drift = abs(np.polyfit(t, e, 1)[0]) / eng.n_particles
    print("MM NVE drift per atom", drift, "kJ/mol/ps/atom; ptp", np.ptp(e), "kJ/mol")
    assert np.all(np.isfinite(e))
    assert drift < 1e-3
    assert np.ptp(e) < 0.5
