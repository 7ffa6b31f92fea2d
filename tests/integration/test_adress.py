"""AdResS on OpenMM (bridge_adapters.openmm.adress) against the NumPy formulas, the thermodynamic force
table, H-AdResS energy conservation, and the weight refresh of force interpolation."""
import numpy as np
import pytest

from bridge.adress import RadialThermodynamicForce, ThermodynamicForce, count_crossings, lennard_jones, reference_forces, wca
from bridge.errors import SetupError
from bridge.zones import Slab, Sphere

pytest.importorskip("openmm")
from bridge_adapters.openmm.adress import AdResSLiquid  # noqa: E402
from bridge_validation.adress_cases import _scattered  # noqa: E402

BOX = np.array([12.0, 8.0, 8.0])
AT, CG = lennard_jones(1.0, 1.0, 2.5), wca(1.0, 1.0)


CG_LONG = wca(1.8, 1.0)                      # reaches 2.0: coarse pairs in every region


def _hybrid_cg_pairs(x, zone, cg):
    """Pairs within the coarse potential's range with 0 < w_i w_j < 1 (the interpolation at work)."""
    w = zone.weights(x)
    i, j = np.triu_indices(len(x), 1)
    d = x[i] - x[j]
    r = np.linalg.norm(d - BOX * np.round(d / BOX), axis=1)
    lam = w[i] * w[j]
    return int(np.sum((r < cg.cutoff) & (lam < 1) & ((w[i] > 0) & (w[i] < 1) | (w[j] > 0) & (w[j] < 1))))


@pytest.mark.parametrize("scheme", ["force", "hamiltonian"])
@pytest.mark.parametrize("zone", [Slab(0, 6.0, 1.5, 2.0, period=12.0), Sphere([6.0, 4.0, 4.0], 2.0, 1.5, box=BOX)])
def test_engine_forces_equal_the_formulas(scheme, zone):
    x = _scattered(60, BOX, seed=5, min_dist=0.9)
    assert _hybrid_cg_pairs(x, zone, CG_LONG) >= 5
    F_ref, E_ref = reference_forces(x, np.ones(60), np.arange(60), zone, AT, CG_LONG, scheme=scheme, box=BOX)
    liq = AdResSLiquid(x, BOX, zone, AT, CG_LONG, scheme=scheme, platform="Reference")
    assert np.abs(liq.forces() - F_ref).max() <= 1e-10 * np.abs(F_ref).max()
    if E_ref is not None:
        assert liq.potential_energy() == pytest.approx(E_ref, rel=1e-10, abs=1e-10)


def test_force_interpolation_weights_follow_the_particles():
    zone = Slab(0, 6.0, 1.5, 2.0, period=12.0)
    x = _scattered(30, BOX, seed=2)
    liq = AdResSLiquid(x, BOX, zone, AT, CG, scheme="force", kT=1.0, update_every=3, platform="Reference")
    x0 = liq.positions()
    liq.step(7)                                  # refreshes after steps 3, 6 and 7
    xn = liq.positions()
    assert not np.allclose(zone.weights(xn), zone.weights(x0))            # the weights did change
    F_ref, _ = reference_forces(xn, np.ones(30), np.arange(30), zone, AT, CG, scheme="force", box=BOX)
    assert np.abs(liq.forces() - F_ref).max() <= 1e-9 * np.abs(F_ref).max()


def test_thermodynamic_force_table_acts_on_the_particles():
    zone = Slab(0, 6.0, 1.5, 2.0, period=12.0)
    tf = ThermodynamicForce(zone, 240, 1.0, 0.5, overlap=0.5)
    tf.force = tf.taper * np.sign(tf.grid - 6.0) * 2.0            # outward, antisymmetric, smooth
    for x0 in (1.0, 3.7, 4.2, 7.9, 8.4, 10.6):                     # one particle alone: no pair force
        p = np.array([x0, 4.0, 4.0])
        liq = AdResSLiquid(p[None, :], BOX, zone, AT, CG, scheme="force", platform="Reference")
        liq.set_thermodynamic_force(tf)
        fx = liq.forces()[0, 0]
        expect = np.interp(p[0], tf.grid, tf.force)
        assert fx == pytest.approx(expect, abs=0.02 * 2.0)       # spline of U on a 0.05 grid
        assert abs(liq.forces()[0, 1]) < 1e-12


def test_a_new_table_replaces_the_old_and_keeps_the_velocities():
    zone = Slab(0, 6.0, 1.5, 2.0, period=12.0)
    tf = ThermodynamicForce(zone, 240, 1.0, 0.5, overlap=0.5)
    tf.force = tf.taper * np.sign(tf.grid - 6.0) * 2.0
    liq = AdResSLiquid(np.array([[3.7, 4.0, 4.0]]), BOX, zone, AT, CG, scheme="force", platform="Reference")
    liq.set_thermodynamic_force(tf)
    first = liq.forces()[0, 0]
    v = liq.context.getState(getVelocities=True).getVelocities(asNumpy=True)._value.copy()
    tf.force = -3.0 * tf.force
    liq.set_thermodynamic_force(tf)
    assert liq.forces()[0, 0] == pytest.approx(-3.0 * first, rel=1e-6)
    assert np.array_equal(liq.context.getState(getVelocities=True).getVelocities(asNumpy=True)._value, v)
    other = ThermodynamicForce(Slab(0, 5.0, 1.5, 2.0, period=12.0), 240, 1.0, 0.5)
    with pytest.raises(SetupError, match="another zone"):
        liq.set_thermodynamic_force(other)


def test_radial_thermodynamic_force_acts_along_the_radius_across_the_box_edge():
    from scipy.interpolate import CubicSpline

    box = np.array([10.0, 10.0, 10.0])
    zone = Sphere([1.0, 5.0, 9.5], 2.0, 1.5, box=box)               # the sphere wraps around the box
    tf = RadialThermodynamicForce(zone, 80, 1.0, 0.5, overlap=0.5)
    tf.force = 1.5 * tf.taper * np.sin(tf.grid)                     # any smooth radial profile
    edges, U = tf.edge_potential()
    dU = CubicSpline(edges, U, bc_type="natural").derivative()      # OpenMM's Continuous1DFunction
    rng = np.random.default_rng(3)
    for _ in range(6):
        d = rng.normal(size=3)
        d *= rng.uniform(1.0, 4.5) / np.linalg.norm(d)
        p = np.mod(zone.centre + d, box)
        for scheme in ("force", "hamiltonian"):
            liq = AdResSLiquid(p[None, :], box, zone, AT, CG, scheme=scheme, platform="Reference")
            f0 = liq.forces()[0]                                      # the drift force of H-AdResS, if any
            liq.set_thermodynamic_force(tf)
            r = np.linalg.norm(d)
            expect = -dU(r) * d / r
            assert np.allclose(liq.forces()[0] - f0, expect, atol=1e-9 * max(1.0, np.abs(expect).max()))
    # beyond r_max (half the box) the table is zero: a centre in the box's far corner feels nothing
    far = np.mod(zone.centre + np.array([4.0, 4.0, 4.0]), box)          # 6.9 nm away > r_max = 5
    liq = AdResSLiquid(far[None, :], box, zone, AT, CG, scheme="force", platform="Reference")
    liq.set_thermodynamic_force(tf)
    assert np.abs(liq.forces()[0]).max() == 0.0 and liq.potential_energy() == 0.0
    with pytest.raises(SetupError, match="another zone"):
        liq.set_thermodynamic_force(RadialThermodynamicForce(Sphere([1.0, 5.0, 9.0], 2.0, 1.5, box=box), 80, 1.0, 0.5))
    with pytest.raises(SetupError, match="another zone"):
        liq.set_thermodynamic_force(RadialThermodynamicForce(Sphere([1.0, 5.0, 9.5], 2.0, 1.5), 80, 1.0, 0.5))
    with pytest.raises(SetupError, match="another zone"):
        liq.set_thermodynamic_force(ThermodynamicForce(Slab(0, 1.0, 2.0, 1.5, period=10.0), 80, 1.0, 0.5))


def test_hamiltonian_adress_conserves_energy():
    zone = Slab(0, 6.0, 1.5, 2.0, period=12.0)
    x = _scattered(60, BOX, seed=4, min_dist=1.0)
    liq = AdResSLiquid(x, BOX, zone, AT, CG, scheme="hamiltonian", kT=0.5, gamma=0.0, dt=0.002, platform="CPU")
    import openmm.unit as u

    def total():
        st = liq.context.getState(getEnergy=True)
        return (st.getPotentialEnergy() + st.getKineticEnergy()).value_in_unit(u.kilojoule_per_mole)

    liq.step(200)
    e0 = total()
    before = liq.zone.region(liq.positions())
    liq.step(2000)
    moved = count_crossings(before, liq.zone.region(liq.positions()))
    assert abs(total() - e0) < 2e-3 * 60 * 0.5            # 2e-3 kT per particle over 2000 steps
    assert moved["changed"] > 0                              # particles crossed the hybrid layer meanwhile


def test_bad_setups_are_refused():
    zone = Slab(0, 6.0, 1.5, 2.0, period=12.0)
    with pytest.raises(SetupError, match="scheme"):
        AdResSLiquid(np.zeros((1, 3)), BOX, zone, AT, CG, scheme="both")
    with pytest.raises(SetupError, match="twice the cutoff"):
        AdResSLiquid(np.zeros((1, 3)), np.array([4.0, 8.0, 8.0]), zone, AT, CG)
    with pytest.raises(SetupError, match="period"):
        AdResSLiquid(np.zeros((1, 3)), BOX, Slab(0, 6.0, 1.5, 2.0), AT, CG)
    with pytest.raises(SetupError, match="sphere's box"):
        AdResSLiquid(np.zeros((1, 3)), BOX, Sphere([6.0, 4.0, 4.0], 2.0, 1.5), AT, CG)


# -- molecules of several atoms ------------------------------------------------------------------------
from bridge.adress import capped, tabulated  # noqa: E402
from bridge_adapters.openmm.adress import AdResSMolecules, MolecularLiquid  # noqa: E402
from bridge_validation.adress_cases import tetrahedral_liquid  # noqa: E402

TET_AT = capped(lennard_jones(1.0, 1.0, 2.0), 0.8)
_r = np.linspace(0.0, 3.0, 61)
TET_CG = tabulated(_r, 3.0 * np.exp(-(_r / 1.2) ** 2) - 3.0 * np.exp(-(3.0 / 1.2) ** 2), "vcg")   # soft, reaches 3


def scattered_tetrahedra(n=30, seed=1):
    """``n`` tetrahedra (edge 0.97) at random places and orientations, centres >= 1.9 apart, atom
    masses 1, 2, 1, 3 (the centre of mass is not the centroid)."""
    rng = np.random.default_rng(seed)
    tet = np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]], float) * 0.97 / (2 * np.sqrt(2))
    centres = []
    while len(centres) < n:
        p = rng.random(3) * BOX
        if all(np.linalg.norm((p - q) - BOX * np.round((p - q) / BOX)) > 1.9 for q in centres):
            centres.append(p)
    x = np.concatenate([c + tet @ np.linalg.qr(rng.normal(size=(3, 3)))[0].T for c in centres])
    _, _, _, bonded = tetrahedral_liquid(BOX, n / BOX.prod())
    return x, np.tile([1.0, 2.0, 1.0, 3.0], n), np.repeat(np.arange(n), 4), bonded


@pytest.mark.parametrize("site_pairs_only", [True, False])
@pytest.mark.parametrize("zone", [Slab(0, 6.0, 1.5, 2.0, period=12.0), Sphere([6.0, 4.0, 4.0], 2.0, 1.5, box=BOX)])
def test_molecular_force_interpolation_equals_the_formulas(zone, site_pairs_only, monkeypatch):
    """Both ways of looping over the coarse pairs: the sites' interaction group, and every
    particle's neighbour list with the atoms switched off by their flag."""
    import bridge_adapters.openmm.adress as mod

    assert mod._site_pairs_only("Reference", 30, 150, BOX, 3.0)          # what the chooser picks here
    monkeypatch.setattr(mod, "_site_pairs_only", lambda *a: site_pairs_only)
    x, m, mol, bonded = scattered_tetrahedra()
    liq = AdResSMolecules(x, m, mol, BOX, zone, TET_AT, TET_CG, bonded=bonded, platform="Reference")
    assert (liq._coarse.getNumInteractionGroups() == 1) == site_pairs_only
    c = liq.centres()
    from bridge.adress import centres_of_mass
    assert np.allclose(c, np.mod(centres_of_mass(x, m, mol, BOX), BOX), atol=1e-12)     # the sites are the centres
    w = zone.weights(c)
    assert np.sum((w > 0) & (w < 1)) >= 5                                              # molecules in the hybrid layer
    F_ref, _ = reference_forces(x, m, mol, zone, TET_AT, TET_CG, scheme="force", box=BOX)
    assert np.abs(liq.forces({0, 2}) - F_ref).max() <= 1e-10 * np.abs(F_ref).max()
    # the bonded forces act within the molecules only: each molecule's total is zero
    Fb = liq.forces({1})
    assert np.abs(np.add.reduceat(Fb, np.arange(0, len(x), 4))).max() < 1e-9 * np.abs(Fb).max()
    # the fully atomistic liquid is the same pair potential without weights
    full = MolecularLiquid(x, m, mol, BOX, TET_AT, bonded=bonded, platform="Reference")
    everywhere = Sphere([6.0, 4.0, 4.0], 30.0, 1.0)                                      # w = 1 for every molecule
    F_at, _ = reference_forces(x, m, mol, everywhere, TET_AT, TET_CG, scheme="force", box=BOX)
    assert np.abs(full.forces({0}) - F_at).max() <= 1e-10 * np.abs(F_at).max()


def test_molecular_weights_follow_the_centres_and_the_thermodynamic_force_acts_on_them():
    zone = Slab(0, 6.0, 1.5, 2.0, period=12.0)
    x, m, mol, bonded = scattered_tetrahedra(20, seed=3)
    liq = AdResSMolecules(x, m, mol, BOX, zone, TET_AT, TET_CG, bonded=bonded, update_every=3, kT=1.0,
                          platform="Reference")
    c0 = liq.centres()
    liq.step(40)
    assert not np.allclose(zone.weights(liq.centres()), zone.weights(c0))
    F_ref, _ = reference_forces(liq.positions(), m, mol, zone, TET_AT, TET_CG, scheme="force", box=BOX)
    liq.refresh_weights()
    assert np.abs(liq.forces({0, 2}) - F_ref).max() <= 1e-9 * np.abs(F_ref).max()
    # one molecule alone: the thermodynamic force at its centre, shared among its atoms by mass
    tf = ThermodynamicForce(zone, 240, 1.0, 0.5, overlap=0.5)
    tf.force = tf.taper * np.sign(tf.grid - 6.0) * 2.0
    one = AdResSMolecules(x[:4] - x[:4].mean(0) + [3.7, 4.0, 4.0], m[:4], mol[:4], BOX, zone, TET_AT, TET_CG,
                          bonded=tetrahedral_liquid(BOX, 1 / BOX.prod())[3], platform="Reference")
    one.set_thermodynamic_force(tf)
    f = one.forces({0})
    cx = one.centres()[0, 0]
    assert f[:, 0].sum() == pytest.approx(np.interp(cx, tf.grid, tf.force), abs=0.04)
    assert np.allclose(f[:, 0] / f[:, 0].sum(), m[:4] / m[:4].sum(), atol=1e-9)
    assert np.abs(f[:, 1:]).max() < 1e-9


def test_the_coarse_loop_is_chosen_by_platform_and_size():
    import bridge_adapters.openmm.adress as mod

    box = np.array([24.0, 8.0, 8.0])
    # the 269-molecule tetrahedral liquid on the CPU: 36 000 site pairs against ~39 000 neighbours
    assert mod._site_pairs_only("CPU", 269, 1345, box, 2.5)
    assert not mod._site_pairs_only("CUDA", 269, 1345, box, 2.5)          # GPUs keep the neighbour list
    assert not mod._site_pairs_only(None, 269, 1345, box, 2.5)
    # twice the box and the molecules (the benchmark's 538): the site pairs grow as n^2, the
    # neighbours as n, and the neighbour list wins (measured 3.6 against 4.0 ms per step)
    assert not mod._site_pairs_only("CPU", 2 * 269, 2 * 1345, box * [2, 1, 1], 2.5)


def test_molecules_split_by_the_box_are_made_whole_and_positions_round_trip():
    zone = Slab(0, 6.0, 1.5, 2.0, period=12.0)
    x, m, mol, bonded = scattered_tetrahedra(30)
    wrapped = np.mod(x, BOX)                                       # atoms wrapped one by one: molecules split
    assert np.any(np.ptp(wrapped.reshape(-1, 4, 3), axis=1) > 2.0)
    liq = AdResSMolecules(wrapped, m, mol, BOX, zone, TET_AT, TET_CG, bonded=bonded, platform="Reference")
    from bridge.adress import centres_of_mass
    assert np.allclose(liq.centres(), np.mod(centres_of_mass(x, m, mol, BOX), BOX), atol=1e-12)
    assert np.isfinite(liq.potential_energy())
    again = AdResSMolecules(liq.positions(), m, mol, BOX, zone, TET_AT, TET_CG, bonded=bonded, platform="Reference")
    assert np.allclose(again.forces(), liq.forces(), atol=1e-9)
    assert np.all((liq.positions().reshape(-1, 4, 3).mean(1) >= -1.0) & (liq.positions().reshape(-1, 4, 3).mean(1) < BOX + 1.0))


def test_overlapping_coarse_atoms_stay_finite_in_single_precision():
    zone = Slab(0, 6.0, 1.5, 2.0, period=12.0)
    x, m, mol, bonded = scattered_tetrahedra(8)
    c = x[4:8].mean(0)
    x[4:8] += np.array([1.0, 4.0, 4.0]) - c                        # molecule 1 deep in the coarse region ...
    x[0:4] += x[4] + 1e-4 - x[0]                                   # ... and molecule 0's first atom on its first atom
    liq = AdResSMolecules(x, m, mol, BOX, zone, wca(1.0, 1.0), lennard_jones(1.5, 1.0, 2.5), bonded=bonded,
                          platform="CPU")
    assert np.all(np.isfinite(liq.forces({0, 2})))


def test_two_tables_with_one_name_are_refused():
    zone = Slab(0, 6.0, 1.5, 2.0, period=12.0)
    other = tabulated(_r, 2.0 * np.exp(-(_r / 0.9) ** 2) - 2.0 * np.exp(-(3.0 / 0.9) ** 2), "vcg")
    with pytest.raises(SetupError, match="both named"):
        AdResSLiquid(np.array([[1.0, 1.0, 1.0]]), BOX, zone, other, TET_CG)


def test_molecular_bad_setups_are_refused():
    zone = Slab(0, 6.0, 1.5, 2.0, period=12.0)
    x, m, mol, bonded = scattered_tetrahedra(4)
    with pytest.raises(SetupError, match="force interpolation only"):
        AdResSMolecules(x, m, mol, BOX, zone, TET_AT, TET_CG, scheme="hamiltonian")
    with pytest.raises(SetupError, match="DPDIntegrator"):
        AdResSMolecules(x, m, mol, BOX, zone, TET_AT, TET_CG, thermostat="dpd")
    flat = x.copy()
    flat[2] = flat[0] + 2.0 * (flat[1] - flat[0])                      # first three atoms on a line
    with pytest.raises(SetupError, match="collinear"):
        AdResSMolecules(flat, m, mol, BOX, zone, TET_AT, TET_CG)
    with pytest.raises(SetupError, match="consecutively"):
        AdResSMolecules(x, m, mol + 1, BOX, zone, TET_AT, TET_CG)
    import openmm
    with pytest.raises(SetupError, match="nonbonded"):
        MolecularLiquid(x, m, mol, BOX, TET_AT, bonded=[openmm.NonbondedForce()])
    full = MolecularLiquid(x, m, mol, BOX, TET_AT, bonded=bonded, platform="Reference")
    assert full.describe()["molecules"] == 4
    with pytest.raises(SetupError, match="no adaptive-resolution zone"):
        full.refresh_weights()


def test_dpd_thermostat_keeps_momentum_and_temperature():
    zone = Slab(0, 6.0, 1.5, 2.0, period=12.0)
    from bridge_validation.adress_cases import lattice_fill
    x = lattice_fill(400, BOX, np.array([12, 8, 8]))
    liq = AdResSLiquid(x, BOX, zone, AT, CG, thermostat="dpd", gamma=2.0, kT=1.0, update_every=5)
    import openmm
    openmm.LocalEnergyMinimizer.minimize(liq.context, 10.0, 100)
    liq.context.setVelocitiesToTemperature(1.0 / 0.00831446261815324, 5)

    def velocities():
        return liq.context.getState(getVelocities=True).getVelocities(asNumpy=True)._value

    p0 = velocities().sum(0)
    liq.step(1000)
    kin = []
    for _ in range(20):
        liq.step(50)
        v = velocities()
        kin.append(np.mean(v ** 2))                     # mass 1: <v_a^2> = kT
    assert np.allclose(velocities().sum(0), p0, atol=1e-3)     # pairwise friction and noise: momentum kept
    assert np.mean(kin) == pytest.approx(1.0, abs=0.05)        # kT within 5 % (1200 dof, 20 samples)
