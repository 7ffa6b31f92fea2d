"""Units: conversions, constants against CODATA, duck-typed OpenMM Quantities, refusal of NaN."""
import math

import numpy as np
import pytest
from scipy import constants as sc

from bridge import units
from bridge.errors import SetupError

# Conversion factors are products of a few floats: a round trip is exact to a few ulps.
RT = 4 * np.finfo(float).eps


@pytest.mark.parametrize("a, b", [("angstrom", "nm"), ("bohr", "A"), ("fs", "ns"), ("eV", "kcal/mol"),
                                  ("hartree", "kJ/mol"), ("hartree/bohr", "eV/A"), ("GPa", "bar"),
                                  ("m", "pm")])
def test_round_trip(a, b):
    x = np.array([1.0, -2.5, 3.75e3])
    back = units.convert(units.convert(x, a, b), b, a)
    np.testing.assert_allclose(back, x, rtol=RT)
    assert units.convert(2.0, a, a) == 2.0


def test_simple_factors_are_the_textbook_ones():
    assert units.convert(1.0, "angstrom", "nm") == pytest.approx(0.1, rel=RT)
    assert units.convert(1.0, "kcal/mol", "kJ/mol") == pytest.approx(4.184, rel=RT)  # thermochemical calorie
    assert units.convert(1.0, "ns", "fs") == pytest.approx(1e6, rel=RT)
    assert units.convert(1.0, "bar", "Pa") == pytest.approx(1e5, rel=RT)
    assert units.convert(1.0, "GPa", "Pa") == pytest.approx(1e9, rel=RT)
    # an array keeps its shape, a scalar stays a Python float
    assert isinstance(units.convert(1.0, "nm", "A"), float)
    assert units.convert(np.ones((2, 3)), "nm", "A").shape == (2, 3)


def test_constants_against_codata_entries():
    na = sc.N_A
    # independent CODATA entries (scipy.constants), not the formulas of the module
    assert units.HARTREE == pytest.approx(sc.physical_constants["hartree-joule relationship"][0] * na / 1e3, rel=1e-12)
    assert units.BOHR == pytest.approx(sc.physical_constants["atomic unit of length"][0] * 1e9, rel=1e-12)
    assert units.HARTREE_PER_BOHR == pytest.approx(
        sc.physical_constants["atomic unit of force"][0] * na / 1e3 * 1e-9, rel=1e-9)
    assert units.KB == pytest.approx(sc.R / 1e3, rel=1e-12)
    assert units.EV == pytest.approx(sc.physical_constants["electron volt-joule relationship"][0] * na / 1e3, rel=1e-12)
    # and against the published values (CODATA 2018 and 2022 agree to < 1e-9 relative)
    assert units.HARTREE == pytest.approx(2625.4996394799, rel=1e-9)
    assert units.BOHR == pytest.approx(0.0529177210903, rel=1e-8)
    assert units.EV == pytest.approx(96.48533212331, rel=1e-9)
    # 1 kJ/(mol nm^3) = 1000 J / (N_A * 1e-27 m^3)
    assert units.PRESSURE_PA == pytest.approx(1e30 / na, rel=1e-12)


def test_unknown_unit_lists_the_known_ones():
    with pytest.raises(SetupError) as exc:
        units.factor("furlong")
    msg = str(exc.value)
    assert "furlong" in msg and "fix" in msg
    for known in ("nm", "hartree", "kJ/mol", "GPa"):
        assert known in exc.value.fix


from .fakes import FakeMdUnitSystem, FakeQuantity, fake_openmm_unit  # noqa: E402,F401


def test_quantity_is_converted_through_the_md_unit_system(fake_openmm_unit):
    q = FakeQuantity(2.0)
    assert units.is_quantity(q) and not units.is_quantity(2.0)
    out = units.to_internal(q)
    assert out == pytest.approx(0.2, rel=RT) and isinstance(out, float)
    assert q.systems == [fake_openmm_unit.md_unit_system]
    arr = units.finite_array(FakeQuantity([[1.0, 2.0, 3.0]]), (None, 3), name="positions")
    np.testing.assert_allclose(arr, [[0.1, 0.2, 0.3]], rtol=RT)


def test_nan_is_refused_with_the_name(fake_openmm_unit):
    with pytest.raises(SetupError, match="forces contains NaN"):
        units.to_internal([1.0, math.nan], name="forces")
    with pytest.raises(SetupError, match="infinite"):
        units.to_internal(math.inf)
    with pytest.raises(SetupError, match="NaN"):
        units.to_internal(FakeQuantity([1.0, math.nan]))


def test_to_internal_with_a_unit():
    assert units.to_internal(3.0, "angstrom") == pytest.approx(0.3, rel=RT)
    np.testing.assert_allclose(units.to_internal([1.0, 2.0], "eV"), [units.EV, 2 * units.EV], rtol=RT)
    assert units.to_internal(5) == 5.0 and isinstance(units.to_internal(5), float)


def test_finite_array_checks_shape():
    assert units.finite_array([[0, 0, 0], [1, 1, 1]], (None, 3), name="x").shape == (2, 3)
    assert units.finite_array(1.0, (1,), name="x").shape == (1,)  # scalars become 1-D
    with pytest.raises(SetupError, match=r"x has shape \(2, 2\), expected \(n, 3\)") as exc:
        units.finite_array(np.zeros((2, 2)), (None, 3), name="x")
    assert exc.value.fix
    with pytest.raises(SetupError, match="expected"):
        units.finite_array(np.zeros(3), (None, 3), name="x")  # wrong ndim
    with pytest.raises(SetupError, match="expected"):
        units.finite_array(np.zeros(4), (3,), name="centre")


def test_every_unit_has_a_dimension_and_mixed_dimensions_are_refused():
    from bridge import units as U

    for name in U._TO_INTERNAL:
        assert U.dimension(name)
    assert U.convert(1.0, "GPa", "bar") == pytest.approx(1e4, rel=1e-12)
    with pytest.raises(SetupError, match="same dimension"):
        U.convert(1.0, "nm", "eV")
