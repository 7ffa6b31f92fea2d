"""Unit tests of the AdResS core (bridge.adress): the reference forces, the thermodynamic force, crossings."""
import numpy as np
import pytest

from bridge.adress import (RadialThermodynamicForce, ThermodynamicForce, centres_of_mass, count_crossings,
                           lennard_jones, reference_forces, wca)
from bridge.errors import SetupError
from bridge.zones import Slab, Sphere

BOX = np.array([12.0, 8.0, 8.0])
AT, CG = lennard_jones(1.0, 1.0, 2.5), wca(1.0, 1.2)


def dimers(n=8, seed=0):
    """``n`` rigid-ish dimers (bond 0.5, masses 1 and 3) spread over the box, no atoms closer than 0.45."""
    rng = np.random.default_rng(seed)
    x, mol = [], []
    while len(x) < 2 * n:
        c = rng.random(3) * BOX
        u = rng.normal(size=3)
        pair = [c, c + 0.5 * u / np.linalg.norm(u)]
        ok = all(np.linalg.norm((p - q) - BOX * np.round((p - q) / BOX)) > 0.95 for p in pair for q in x)
        if ok:
            x += pair
            mol += [len(x) // 2 - 1] * 2
    masses = np.tile([1.0, 3.0], n)
    return np.array(x) % BOX, masses, np.array(mol)


@pytest.mark.parametrize("zone", [Slab(0, 6.0, 1.5, 2.0, period=12.0), Sphere([6.0, 4.0, 4.0], 1.5, 2.0, box=BOX)])
def test_hamiltonian_forces_are_minus_the_energy_gradient(zone):
    x, m, mol = dimers()
    F, E = reference_forces(x, m, mol, zone, AT, CG, scheme="hamiltonian", box=BOX)
    w = zone.weights(centres_of_mass(x, m, mol, BOX))
    assert np.any((w > 0) & (w < 1))                       # the drift term is exercised
    h = 1e-6
    for i in range(0, len(x), 3):
        for k in range(3):
            xp, xm = x.copy(), x.copy()
            xp[i, k] += h
            xm[i, k] -= h
            fd = -(reference_forces(xp, m, mol, zone, AT, CG, scheme="hamiltonian", box=BOX)[1]
                   - reference_forces(xm, m, mol, zone, AT, CG, scheme="hamiltonian", box=BOX)[1]) / (2 * h)
            assert F[i, k] == pytest.approx(fd, rel=1e-6, abs=1e-6)


def test_force_interpolation_keeps_newtons_third_law_and_the_pure_limits():
    x, m, mol = dimers()
    zone = Slab(0, 6.0, 1.5, 2.0, period=12.0)
    F, E = reference_forces(x, m, mol, zone, AT, CG, scheme="force", box=BOX)
    assert E is None and np.allclose(F.sum(axis=0), 0.0, atol=1e-11)
    everywhere_at = Slab(0, 6.0, 6.0, 0.5, period=13.0)    # core wider than the box: w = 1 for all
    F_at, _ = reference_forces(x, m, mol, everywhere_at, AT, CG, scheme="force", box=BOX)
    nowhere = Slab(0, 6.0, 0.0, 0.01, period=12.0)          # a core of zero width: w = 0 almost everywhere
    com = centres_of_mass(x, m, mol, BOX)
    assert np.all(everywhere_at.weights(com) == 1.0)
    # all-atomistic: atom pair forces between molecules only
    expect = np.zeros_like(x)
    for i in range(len(x)):
        for j in range(len(x)):
            if mol[i] != mol[j]:
                d = x[i] - x[j] - BOX * np.round((x[i] - x[j]) / BOX)
                r = np.linalg.norm(d)
                expect[i] += AT.force(np.array(r)) * d / r
    assert np.allclose(F_at, expect, atol=1e-12)
    assert np.all(nowhere.weights(com) == 0.0)
    cg_long = wca(2.0, 1.0)                                  # reaches 2.24: centres of mass interact
    F_cg, _ = reference_forces(x, m, mol, nowhere, AT, cg_long, scheme="force", box=BOX)
    fm = np.zeros((mol.max() + 1, 3))
    for a in range(len(com)):
        for b in range(len(com)):
            if a != b:
                d = com[a] - com[b] - BOX * np.round((com[a] - com[b]) / BOX)
                r = np.linalg.norm(d)
                fm[a] += cg_long.force(np.array(r)) * d / r
    M = np.bincount(mol, weights=m)
    assert np.abs(fm).max() > 0                              # some centres are within the WCA range
    assert np.allclose(F_cg, (m / M[mol])[:, None] * fm[mol], atol=1e-12)


def test_centres_of_mass_across_the_boundary():
    x = np.array([[11.9, 1.0, 1.0], [0.1, 1.0, 1.0], [5.0, 5.0, 5.0]])
    com = centres_of_mass(x, np.array([1.0, 1.0, 2.0]), np.array([0, 0, 1]), BOX)
    assert com[0] == pytest.approx([12.0, 1.0, 1.0]) and com[1] == pytest.approx([5.0, 5.0, 5.0])


def test_potentials_are_cut_and_shifted():
    assert AT.energy(np.array(2.5)) == 0.0 and AT.energy(np.array(2.4999)) == pytest.approx(0.0, abs=1e-4)
    rc = 2 ** (1 / 6)
    assert CG.energy(np.array(rc - 1e-9)) == pytest.approx(0.0, abs=1e-7) and CG.force(np.array(rc + 1e-3)) == 0.0
    r = np.linspace(0.9, 2.4, 50)
    h = 1e-6
    assert np.allclose(AT.force(r), -(AT.energy(r + h) - AT.energy(r - h)) / (2 * h), rtol=1e-6)
    with pytest.raises(SetupError):
        lennard_jones(1.0, 1.0, 0.5)


def test_thermodynamic_force_update_is_antisymmetric_tapered_and_its_potential_consistent(tmp_path):
    zone = Slab(0, 12.0, 3.0, 3.0, period=24.0)
    tf = ThermodynamicForce(zone, 96, prefactor=10.0, smoothing=0.75, overlap=1.0)
    x = tf.grid
    rho = 0.8 * (1 + 0.1 * np.tanh((x - 8.0)) * (x < 12) - 0.1 * np.tanh(x - 16.0) * (x >= 12)) + 0.004 * np.sin(x)
    dev = tf.update(rho, 0.8)
    assert dev == pytest.approx(np.max(np.abs(rho / 0.8 - 1)))
    F = tf.force
    assert np.allclose(F, -F[::-1], atol=1e-14)                             # about the centre (12 = 48 dx)
    outside = (np.abs(x - 12.0) < 3.0 - 1.0) | (np.abs(x - 12.0) > 6.0 + 1.0)
    assert np.all(F[outside] == 0.0) and np.abs(F).max() > 0
    assert np.all(F[(x > 5.5) & (x < 8.5)] < 0)             # down the density gradient, out of the dense side
    U = tf.potential
    slope = -(U - np.roll(U, 1)) / tf.dx                                    # between grid points k-1 and k
    assert np.allclose(slope, 0.5 * (F + np.roll(F, 1)), atol=1e-12)
    path = tf.save(tmp_path / "tf.npz")
    back = ThermodynamicForce.load(path)
    assert np.array_equal(back.force, tf.force) and back.overlap == 1.0 and back.iterations == 1
    assert back.zone.half_width == 3.0 and back.zone.period == 24.0
    with pytest.raises(SetupError, match="periodic slab"):
        ThermodynamicForce(Slab(0, 12.0, 3.0, 3.0), 96, 1.0, 0.5)
    with pytest.raises(SetupError):
        tf.update(rho[:-1], 0.8)


def test_radial_thermodynamic_force_update_taper_potential_and_file(tmp_path):
    box = np.array([14.0, 14.0, 14.0])
    zone = Sphere([7.0, 7.0, 7.0], 2.5, 2.0, box=box)
    tf = RadialThermodynamicForce(zone, 56, prefactor=10.0, smoothing=0.5, overlap=1.0)
    assert tf.r_max == 7.0 and tf.dr == 0.125                     # half the box by default
    r = tf.grid
    assert np.allclose(tf.volumes.sum(), 4 / 3 * np.pi * 7.0 ** 3)
    # a dense core falling off across the hybrid shell (centre 3.5): the force pushes outwards there
    rho = 0.8 * (1 + 0.1 * (1 - np.tanh(2 * (r - 3.5))) / 2)
    dev = tf.update(rho, 0.8)
    assert dev == pytest.approx(np.max(np.abs(rho[r >= 1.5] / 0.8 - 1)))
    F = tf.force
    acting = (r > 2.5 - 1.0) & (r < 4.5 + 1.0)
    assert np.all(F[~acting] == 0.0) and np.all(F[(r > 2.5) & (r < 4.5)] > 0)
    # the potential is the integral of the force from r_max inwards: U(r_max) = 0, slope -F
    edges, U = tf.edge_potential()
    assert U[-1] == 0.0 and np.allclose(-np.diff(U) / tf.dr, F, atol=1e-12)
    assert np.allclose(tf.potential, np.interp(r, edges, U))
    # smoothing weights the shells by volume: one molecule in the innermost shell (a density of
    # 1 / 0.008) moves the smoothed density beyond r = 1 by about one molecule in ~16 sigma^3,
    # not (as a plain Gaussian of the shell densities would) by more than rho0 itself
    from scipy.ndimage import gaussian_filter1d

    spike = np.full(56, 0.8)
    spike[0] += 1.0 / tf.volumes[0]
    assert np.allclose(tf.smoothed(np.full(56, 0.8)), 0.8, rtol=1e-12)
    assert abs(tf.smoothed(spike)[r > 1.0] / 0.8 - 1).max() < 0.02
    assert abs(gaussian_filter1d(spike, 4.0, mode="reflect")[r > 1.0] / 0.8 - 1).max() > 1.0
    # density of points: one point per shell volume
    pts = zone.centre + np.array([[0.0, 0.0, 0.06], [3.0, 0.0, 0.0], [0.0, -6.9, 0.0], [6.0, 6.0, 0.0]])
    n = tf.density(pts) * tf.volumes
    assert n.sum() == 3 and n[0] == 1 and n[24] == 1 and n[55] == 1   # (6, 6, 0) lies beyond r_max
    back = RadialThermodynamicForce.load(tf.save(tmp_path / "tf.npz"))
    assert np.array_equal(back.force, F) and back.r_max == 7.0 and np.array_equal(back.zone.centre, zone.centre)
    with pytest.raises(SetupError, match="slab's"):
        RadialThermodynamicForce.load(ThermodynamicForce(Slab(0, 7.0, 2.0, 2.0, period=14.0), 32, 1.0, 0.5)
                                      .save(tmp_path / "slab.npz"))
    with pytest.raises(SetupError, match="spherical zone's"):
        ThermodynamicForce.load(tmp_path / "tf.npz")
    with pytest.raises(SetupError, match="r_max"):
        RadialThermodynamicForce(zone, 56, 1.0, 0.5, overlap=1.0, r_max=5.0)     # inside the acting range
    with pytest.raises(SetupError, match="r_max"):
        RadialThermodynamicForce(zone, 56, 1.0, 0.5, r_max=7.5)                  # shells cut by the box
    with pytest.raises(SetupError, match="spherical zone"):
        RadialThermodynamicForce(Slab(0, 7.0, 2.0, 2.0, period=14.0), 56, 1.0, 0.5)
    with pytest.raises(SetupError, match="finite"):
        tf.update(np.full(56, np.nan), 0.8)


def test_profile_and_crossings():
    zone = Slab(0, 12.0, 3.0, 3.0, period=24.0)
    tf = ThermodynamicForce(zone, 24, 1.0, 0.5)
    assert tf.profile(np.array([-0.5, 0.2, 23.9, 24.0, 12.3])).tolist()[:2] == [2.0, 0.0]
    before = np.array([0, 0, 1, 2, 2, 1])
    after = np.array([0, 1, 0, 2, 1, 2])
    c = count_crossings(before, after)
    assert c == {"into_core": 1, "out_of_core": 1, "into_coarse": 1, "out_of_coarse": 1, "changed": 4}
    with pytest.raises(SetupError):
        count_crossings(before, after[:-1])


# -- tabulated and capped potentials, g(r), iterative Boltzmann inversion -----------------------------
from bridge.adress import capped, ibi_initial, ibi_update, radial_distribution, tabulated  # noqa: E402


def test_tabulated_potential_interpolates_and_its_force_is_minus_the_slope():
    r = np.linspace(0.0, 3.0, 121)
    V = 2.0 * np.exp(-(r / 0.8) ** 2) - 2.0 * np.exp(-(3.0 / 0.8) ** 2)
    pot = tabulated(r, V, "vcg")
    x = np.linspace(0.3, 2.9, 57)
    assert np.allclose(pot.energy(x), 2.0 * np.exp(-(x / 0.8) ** 2) - 2.0 * np.exp(-(3.0 / 0.8) ** 2), atol=2e-5)
    h = 1e-6
    assert np.allclose(pot.force(x), -(pot.energy(x + h) - pot.energy(x - h)) / (2 * h), atol=1e-6)
    assert pot.energy(np.array([3.0, 3.5])).tolist() == [0.0, 0.0] and pot.cutoff == 3.0
    assert pot.table[0] == "vcg" and pot.expression == "step(3.0-r)*vcg(r)"
    with pytest.raises(SetupError, match="equally spaced"):
        tabulated(r[1:], V[1:])
    with pytest.raises(SetupError, match="identifier"):
        tabulated(r, V, "v cg")
    with pytest.raises(SetupError, match="jump"):
        tabulated(r, V + 0.1)


def test_capped_potential_is_the_tangent_below_the_cap():
    base = wca(1.0, 1.0)
    pot = capped(base, 0.8)
    r = np.array([0.05, 0.5, 0.79, 0.8, 0.9, 1.05, 1.2])
    assert np.allclose(pot.energy(r[3:]), base.energy(r[3:])) and np.allclose(pot.force(r[3:]), base.force(r[3:]))
    Fc = float(base.force(np.array(0.8)))
    assert np.allclose(pot.force(r[:3]), Fc)
    assert np.allclose(pot.energy(r[:3]), base.energy(np.array(0.8)) + Fc * (0.8 - r[:3]))
    assert np.isfinite(pot.energy(np.array(1e-9)))
    with pytest.raises(SetupError, match="r_cap"):
        capped(base, 2.0)


def test_radial_distribution_counts_the_neighbour_shells_of_a_lattice():
    a, k = 1.0, 8
    g3 = np.stack(np.meshgrid(*(np.arange(k),) * 3, indexing="ij"), -1).reshape(-1, 3) * a + 0.25
    L = np.full(3, k * a)
    r, g = radial_distribution(g3, L, 1.5, 150)
    dr = r[1] - r[0]
    rho = (len(g3) - 1) / L.prod()
    shells = np.cumsum(g * rho * 4 * np.pi * r ** 2 * dr)         # neighbours within r (thin-shell sum)
    assert shells[r < 0.99][-1] == pytest.approx(0.0)
    assert shells[r < 1.4][-1] == pytest.approx(6.0, rel=1e-2)             # six first neighbours
    assert shells[-1] == pytest.approx(18.0, rel=1e-2)                     # plus twelve at sqrt(2)
    # pairs within a group do not count; reference points only
    grp = np.arange(len(g3)) // 2                                          # neighbours along z paired up
    _, g_grp = radial_distribution(g3, L, 1.5, 150, group=grp)
    rho_grp = (len(g3) - 2) / L.prod()                                     # partners: all but the pair
    shells_grp = np.cumsum(g_grp * rho_grp * 4 * np.pi * r ** 2 * dr)
    assert shells_grp[r < 1.4][-1] == pytest.approx(5.0, rel=1e-2)         # the paired neighbour is left out
    ref = g3[:, 0] < 2.0
    _, g_ref = radial_distribution(g3, L, 1.5, 150, reference=ref)
    assert np.allclose(g_ref, g)                                           # a lattice looks alike from anywhere
    with pytest.raises(SetupError, match="r_max"):
        radial_distribution(g3, L, 5.0, 10)


def test_ibi_is_a_fixed_point_at_the_target_and_converges_in_the_dilute_limit():
    kT, rc = 1.0, 2.5
    r = (np.arange(50) + 0.5) * 0.05
    true = lambda x: 4 * ((1 / x) ** 12 - (1 / x) ** 6) * (x < rc)          # noqa: E731
    taper = np.cos(0.5 * np.pi * np.clip((r - 0.9 * rc) / (0.1 * rc), 0, 1)) ** 2
    V_true = (true(r) - true(np.array(rc - 1e-12))) * taper
    g_of = lambda pot: np.exp(-pot.energy(r) / kT)                         # noqa: E731 - dilute gas: g = exp(-V/kT)
    target = np.exp(-V_true / kT)
    pot = ibi_initial(r, target, kT, rc)
    ok = (target > 0.02) & (r < 0.9 * rc)                                 # outside the core and the taper
    assert np.allclose(g_of(pot)[ok], target[ok], rtol=1e-4)   # exact in the dilute limit (up to the shift to 0 at rc)
    again = ibi_update(pot, r, target, target, kT)
    assert np.allclose(again.table[3], pot.table[3], atol=1e-12)           # nothing to correct: unchanged
    # from a wrong start the update moves towards the target
    wrong = ibi_initial(r, np.exp(-0.5 * V_true / kT), kT, rc)
    err0 = np.abs(g_of(wrong) - target)[ok].max()
    better = ibi_update(wrong, r, g_of(wrong), target, kT, damping=0.5)
    assert np.abs(g_of(better) - target)[ok].max() < 0.7 * err0
    with pytest.raises(SetupError, match="tabulated"):
        ibi_update(wca(), r, target, target, kT)
    with pytest.raises(SetupError, match="one shape"):
        ibi_update(pot, r, target[:-1], target, kT)
    with pytest.raises(SetupError, match="reach the cutoff"):
        ibi_initial(r[:30], target[:30], kT, rc)
