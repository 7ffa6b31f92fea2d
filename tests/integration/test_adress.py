"""AdResS on OpenMM (bridge_adapters.openmm.adress) against the NumPy formulas, the thermodynamic force
table, H-AdResS energy conservation, and the weight refresh of force interpolation."""
import numpy as np
import pytest

from bridge.adress import ThermodynamicForce, count_crossings, lennard_jones, reference_forces, wca
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
