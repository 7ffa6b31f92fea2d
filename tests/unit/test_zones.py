"""Zones: the cos^2 weight, its derivative and spatial gradient against finite differences."""
import math

import numpy as np
import pytest

from bridge.errors import SetupError
from bridge.zones import CosSquaredSwitch, Slab, Sphere

# Central differences with h = 1e-6 nm on functions of O(1) with derivatives O(1/width) ~ O(10):
# truncation ~ h^2 |w'''| / 6 ~ 1e-12 * 1e3 and round-off ~ eps / h ~ 2e-10, so 1e-7 is safe
# and far below any real error (a wrong factor or sign gives O(1)).
H = 1e-6
FD_TOL = 1e-7


def fd_gradient(zone, x):
    g = np.zeros_like(x)
    for k in range(3):
        e = np.zeros(3)
        e[k] = H
        g[:, k] = (zone.weights(x + e) - zone.weights(x - e)) / (2 * H)
    return g


def test_switch_values():
    width = 0.4
    sw = CosSquaredSwitch(width)
    d = np.array([-1.0, 0.0, 0.1, 0.2, 0.3, 0.4, 2.0])
    expected = [1.0, 1.0, math.cos(math.pi / 8) ** 2, 0.5, math.cos(3 * math.pi / 8) ** 2, 0.0, 0.0]
    np.testing.assert_allclose(sw(d), expected, atol=1e-15)


def test_switch_derivative_against_finite_differences():
    width = 0.3
    sw = CosSquaredSwitch(width)
    d = np.linspace(-0.1, 0.4, 41)
    # the kinks at 0 and width are C1 (derivative 0 there) but central differences straddling
    # them are O(h) off, so keep the sample points 2 h away from them
    d = d[(np.abs(d) > 2 * H) & (np.abs(d - width) > 2 * H)]
    fd = (sw(d + H) - sw(d - H)) / (2 * H)
    np.testing.assert_allclose(sw.derivative(d), fd, atol=FD_TOL)
    # analytic form in the layer
    mid = np.array([0.05, 0.15, 0.25])
    np.testing.assert_allclose(sw.derivative(mid), -(np.pi / (2 * width)) * np.sin(np.pi * mid / width), rtol=1e-14)
    # C1 continuity: derivative vanishes at both edges
    assert sw.derivative(np.array([0.0, width])) == pytest.approx([0.0, 0.0], abs=1e-12)


@pytest.mark.parametrize("width", [0.0, -1.0, math.nan, math.inf])
def test_bad_width_is_a_setup_error_with_a_fix(width):
    with pytest.raises(SetupError) as exc:
        CosSquaredSwitch(width)
    assert exc.value.fix
    with pytest.raises(SetupError):
        Slab(axis=2, centre=0.0, half_width=1.0, hybrid_width=width)
    with pytest.raises(SetupError):
        Sphere([0, 0, 0], 1.0, width)


def test_slab_regions_and_weights():
    slab = Slab(axis=2, centre=5.0, half_width=1.0, hybrid_width=0.5)
    z = np.array([5.0, 5.9, 4.1, 6.25, 3.75, 6.5, 7.0, 0.0])
    x = np.column_stack([np.full_like(z, 123.0), np.full_like(z, -7.0), z])  # x, y do not matter
    w = slab.weights(x)
    np.testing.assert_allclose(w[:3], 1.0)
    np.testing.assert_allclose(w[3:5], 0.5, rtol=1e-14)  # halfway through the layer: cos^2(pi/4)
    assert np.all(w[5:] == 0.0)  # exactly 0 outside: region() and masks rely on it
    assert list(slab.region(x)) == [0, 0, 0, 1, 1, 2, 2, 2]


def test_slab_gradient_against_finite_differences():
    rng = np.random.default_rng(1)
    slab = Slab(axis=1, centre=2.0, half_width=0.7, hybrid_width=0.6)
    x = rng.uniform([-1, 0.0, -1], [1, 4.0, 1], size=(200, 3))
    g = slab.gradient(x)
    np.testing.assert_allclose(g, fd_gradient(slab, x), atol=FD_TOL)
    assert np.all(g[:, [0, 2]] == 0.0)
    assert np.any(np.abs(g[:, 1]) > 0.5)  # the sample does hit the hybrid layer


def test_periodic_slab_uses_the_minimum_image():
    period = 10.0
    slab = Slab(axis=0, centre=0.5, half_width=1.0, hybrid_width=1.0, period=period)
    # x = 9.0 is 1.5 from the centre through the boundary: halfway through the layer
    x = np.array([[9.0, 0, 0], [-1.0, 0, 0], [0.5 + period, 0, 0], [5.5, 0, 0]])
    np.testing.assert_allclose(slab.weights(x), [0.5, 0.5, 1.0, 0.0], atol=1e-14)
    rng = np.random.default_rng(2)
    xs = rng.uniform([-10, -1, -1], [20, 1, 1], size=(300, 3))
    xs = xs[np.abs(((xs[:, 0] - 0.5 + 5) % period) - 5) < 4.9]  # away from the far kink at half a period
    np.testing.assert_allclose(slab.gradient(xs), fd_gradient(slab, xs), atol=FD_TOL)
    # weights are periodic
    np.testing.assert_allclose(slab.weights(xs + [period, 0, 0]), slab.weights(xs), atol=1e-12)


def test_sphere_weights_and_gradient():
    sph = Sphere([1.0, 2.0, 3.0], radius=0.8, hybrid_width=0.4)
    u = np.array([0.6, 0.0, 0.8])  # a unit vector
    x = np.array([[1.0, 2.0, 3.0], *(np.array([1.0, 2.0, 3.0]) + r * u for r in (0.5, 1.0, 1.25, 3.0))])
    np.testing.assert_allclose(sph.weights(x), [1.0, 1.0, 0.5, 0.0, 0.0], atol=1e-14)
    assert list(sph.region(x)) == [0, 0, 1, 2, 2]
    # gradient is radial: -(pi/(2 w)) sin(pi s) u, with s = 0.5 at r = 1.0
    np.testing.assert_allclose(sph.gradient(x)[2], -(np.pi / 0.8) * u, rtol=1e-12)
    np.testing.assert_array_equal(sph.gradient(x[:1]), np.zeros((1, 3)))  # centre: no NaN
    rng = np.random.default_rng(3)
    xs = np.array([1.0, 2.0, 3.0]) + rng.normal(size=(300, 3)) * 0.8
    np.testing.assert_allclose(sph.gradient(xs), fd_gradient(sph, xs), atol=FD_TOL)


def test_periodic_sphere_uses_the_minimum_image():
    box = np.array([4.0, 5.0, 6.0])
    sph = Sphere([0.2, 0.2, 0.2], radius=0.5, hybrid_width=1.0, box=box)
    # (3.9, 0.2, 0.2) is 0.3 away through the x boundary; (3.2, ...) is 1.0 away: halfway
    x = np.array([[3.9, 0.2, 0.2], [3.2, 0.2, 0.2], [0.2, 0.2, 5.2], [2.2, 2.7, 3.2]])
    np.testing.assert_allclose(sph.weights(x), [1.0, 0.5, 0.5, 0.0], atol=1e-14)
    rng = np.random.default_rng(4)
    xs = rng.uniform(-box, 2 * box, size=(400, 3))
    np.testing.assert_allclose(sph.gradient(xs), fd_gradient(sph, xs), atol=FD_TOL)
    assert np.count_nonzero(sph.region(xs) == 1) > 0
    # the gradient points through the boundary: for x = 3.2 the nearest image of the centre is at +x
    assert sph.gradient(x[1:2])[0, 0] > 0


def test_nan_positions_are_refused():
    for zone in (Slab(0, 0.0, 1.0, 0.5), Sphere([0, 0, 0], 1.0, 0.5)):
        with pytest.raises(SetupError, match="positions contains NaN"):
            zone.weights(np.array([[0.0, 0.0, math.nan]]))
        with pytest.raises(SetupError, match="NaN"):
            zone.gradient(np.array([[math.inf, 0.0, 0.0]]))
        with pytest.raises(SetupError, match="shape"):
            zone.weights(np.zeros((4, 2)))


def test_inconsistent_zones_are_refused():
    with pytest.raises(SetupError, match="axis"):
        Slab(axis=3, centre=0.0, half_width=1.0, hybrid_width=0.5)
    with pytest.raises(SetupError, match="half_width"):
        Slab(axis=0, centre=0.0, half_width=-1.0, hybrid_width=0.5)
    with pytest.raises(SetupError, match="exceed the period"):
        Slab(axis=0, centre=0.0, half_width=2.0, hybrid_width=1.0, period=5.0)
    with pytest.raises(SetupError, match="radius"):
        Sphere([0, 0, 0], -0.1, 0.5)
    with pytest.raises(SetupError, match="does not fit"):
        Sphere([0, 0, 0], 1.0, 0.5, box=[10.0, 2.5, 10.0])
    with pytest.raises(SetupError, match="centre"):
        Sphere([0, 0], 1.0, 0.5)


def test_negative_hybrid_width_names_the_parameter():
    for make in (lambda w: Slab(axis=0, centre=0.0, half_width=1.0, hybrid_width=w),
                 lambda w: Sphere([0, 0, 0], 1.0, w)):
        with pytest.raises(SetupError, match=r"hybrid_width must be a positive length, got -1\.0") as exc:
            make(-1.0)
        assert "hybrid_width" in exc.value.fix
        with pytest.raises(SetupError, match="hybrid_width must be a positive length, got 0.0"):
            make(0.0)


@pytest.mark.parametrize("name", ["centre", "half_width", "hybrid_width", "period"])
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_slab_scalars_are_refused_by_name(name, bad):
    kwargs = dict(axis=0, centre=0.0, half_width=1.0, hybrid_width=0.5, period=10.0)
    kwargs[name] = bad
    with pytest.raises(SetupError, match=f"{name} contains NaN or infinite") as exc:
        Slab(**kwargs)
    assert exc.value.fix


@pytest.mark.parametrize("name", ["radius", "hybrid_width"])
def test_non_finite_sphere_scalars_are_refused_by_name(name):
    kwargs = dict(centre=[0.0, 0.0, 0.0], radius=1.0, hybrid_width=0.5)
    kwargs[name] = math.nan
    with pytest.raises(SetupError, match=f"{name} contains NaN"):
        Sphere(**kwargs)
    with pytest.raises(SetupError, match="sphere centre contains NaN"):
        Sphere([0.0, math.nan, 0.0], 1.0, 0.5)


def test_bad_scalars_and_periods_are_refused():
    with pytest.raises(SetupError, match="period must be a positive length, got 0.0") as exc:
        Slab(axis=0, centre=0.0, half_width=0.0, hybrid_width=0.5, period=0.0)
    assert "period=None" in exc.value.fix
    with pytest.raises(SetupError, match="period must be a positive length"):
        Slab(axis=0, centre=0.0, half_width=1.0, hybrid_width=0.5, period=-10.0)
    with pytest.raises(SetupError, match="hybrid_width must be a single length"):
        Slab(axis=0, centre=0.0, half_width=1.0, hybrid_width=[0.5, 0.5])
    with pytest.raises(SetupError, match="axis"):
        Slab(axis=1.0, centre=0.0, half_width=1.0, hybrid_width=0.5)
    with pytest.raises(SetupError, match="box lengths must be positive"):
        Sphere([0, 0, 0], 0.1, 0.1, box=[10.0, 0.0, 10.0])
    with pytest.raises(SetupError, match="width must be a positive length") as exc:
        CosSquaredSwitch(-2.0)
    assert "hybrid_width" not in str(exc.value)


from .fakes import FakeQuantity, fake_openmm_unit  # noqa: E402,F401


def test_quantities_are_accepted(fake_openmm_unit):
    A = FakeQuantity
    slab = Slab(axis=2, centre=A(50.0), half_width=A(10.0), hybrid_width=A(5.0), period=A(200.0))
    plain = Slab(axis=2, centre=5.0, half_width=1.0, hybrid_width=0.5, period=20.0)
    assert (slab.centre, slab.half_width, slab.hybrid_width, slab.period) == pytest.approx(
        (5.0, 1.0, 0.5, 20.0), rel=1e-15)
    assert all(isinstance(v, float) for v in (slab.centre, slab.half_width, slab.period))
    x = np.column_stack([np.zeros(9), np.zeros(9), np.linspace(0.0, 20.0, 9)])
    np.testing.assert_allclose(slab.weights(x), plain.weights(x), rtol=1e-14, atol=1e-15)

    sph = Sphere(A([10.0, 20.0, 30.0]), radius=A(8.0), hybrid_width=A(4.0), box=A([100.0] * 3))
    plain = Sphere([1.0, 2.0, 3.0], radius=0.8, hybrid_width=0.4, box=[10.0] * 3)
    assert sph.radius == pytest.approx(0.8, rel=1e-15) and isinstance(sph.radius, float)
    xs = np.random.default_rng(5).uniform(0.0, 10.0, size=(100, 3))
    np.testing.assert_allclose(sph.weights(xs), plain.weights(xs), rtol=1e-14, atol=1e-15)

    with pytest.raises(SetupError, match="hybrid_width must be a positive length"):
        Sphere([0, 0, 0], A(8.0), A(-4.0))
    with pytest.raises(SetupError, match="radius contains NaN"):
        Sphere([0, 0, 0], A(math.nan), A(4.0))
