"""AdResS on OpenMM (bridge_adapters.openmm.adress) against the NumPy formulas, the thermodynamic force
table, H-AdResS energy conservation, and the weight refresh of force interpolation."""
import numpy as np
import pytest

from bridge.adress import ThermodynamicForce, lennard_jones, reference_forces, wca
from bridge.errors import SetupError
from bridge.zones import Slab, Sphere

pytest.importorskip("openmm")
from bridge_adapters.openmm.adress import AdResSLiquid  # noqa: E402
from bridge_validation.adress_cases import _scattered  # noqa: E402

BOX = np.array([12.0, 8.0, 8.0])
AT, CG = lennard_jones(1.0, 1.0, 2.5), wca(1.0, 1.0)


@pytest.mark.parametrize("scheme", ["force", "hamiltonian"])
@pytest.mark.parametrize("zone", [Slab(0, 6.0, 1.5, 2.0, period=12.0), Sphere([6.0, 4.0, 4.0], 2.0, 1.5, box=BOX)])
def test_engine_forces_equal_the_formulas(scheme, zone):
    x = _scattered(14, BOX, seed=5)
    F_ref, E_ref = reference_forces(x, np.ones(14), np.arange(14), zone, AT, CG, scheme=scheme, box=BOX)
    liq = AdResSLiquid(x, BOX, zone, AT, CG, scheme=scheme, platform="Reference")
    assert np.abs(liq.forces() - F_ref).max() <= 1e-10 * np.abs(F_ref).max()
    if E_ref is not None:
        assert liq.potential_energy() == pytest.approx(E_ref, rel=1e-10, abs=1e-10)


def test_force_interpolation_weights_follow_the_particles():
    zone = Slab(0, 6.0, 1.5, 2.0, period=12.0)
    x = _scattered(30, BOX, seed=2)
    liq = AdResSLiquid(x, BOX, zone, AT, CG, scheme="force", kT=1.0, update_every=3, platform="Reference")
    liq.step(7)                                  # refreshes after steps 3, 6 and 7
    xn = liq.positions()
    assert np.array_equal(liq.weights_now, zone.weights(xn))
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
    liq.step(2000)
    crossed = liq.zone.region(liq.positions())
    assert abs(total() - e0) < 2e-3 * 60 * 0.5 and crossed.min() == 0 and crossed.max() == 2


def test_bad_setups_are_refused():
    zone = Slab(0, 6.0, 1.5, 2.0, period=12.0)
    with pytest.raises(SetupError, match="scheme"):
        AdResSLiquid(np.zeros((1, 3)), BOX, zone, AT, CG, scheme="both")
    with pytest.raises(SetupError, match="twice the cutoff"):
        AdResSLiquid(np.zeros((1, 3)), np.array([4.0, 8.0, 8.0]), zone, AT, CG)
