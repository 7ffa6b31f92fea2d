"""The atomistic RVE on an OpenMM FCC argon crystal (Reference platform, double precision).

Tolerances come from the finite-difference error budget of :mod:`bridge.crystal_rve`: with the
default step h = 1e-3 the tangent agrees with the lattice sums to 2.5e-8 of C11 and the stress
to 5e-11 of C11; the tests allow 1e-6 and 1e-8 of C11 (40x and 200x the measured floor), far
below any physical error (a missing neighbour shell moves the constants by > 1e-2).
"""
import numpy as np
import pytest

from bridge import lattice, units
from bridge.crystal_rve import CrystalRVE, cauchy_born_response, voigt_stiffness
from bridge.errors import SetupError
from bridge_adapters.openmm.crystal import fcc_lj_crystal_rve

SIGMA = 0.3405


@pytest.fixture(scope="module")
def rve3():
    model = fcc_lj_crystal_rve(dim=3)
    model.initialize()
    return model


def test_builder_makes_the_smallest_crystal_that_fits_the_cutoff(rve3):
    info = rve3.info
    assert info["reps"] == (4, 4, 4) and info["atoms"] == 256 and info["platform"] == "Reference"
    assert isinstance(rve3, CrystalRVE) and rve3.temperature == 0.0
    pot = lattice.PairPotential.lennard_jones(SIGMA, 0.99774, 2.55 * SIGMA)
    assert info["lattice_constant"] == pytest.approx(lattice.equilibrium_lattice_constant(pot, 1.55 * SIGMA),
                                                     rel=1e-12)
    with pytest.raises(SetupError, match="half the smallest box edge"):
        fcc_lj_crystal_rve(reps=(3, 3, 3))


def test_zero_strain_3d_tangent_is_the_cauchy_born_tensor(rve3):
    out = rve3.solve({"strain": np.zeros(6)}, 0.0)
    pot, a = rve3.info["potential"], rve3.info["lattice_constant"]
    C = voigt_stiffness(lattice.cauchy_born_tensor(pot, a), 3) * units.PRESSURE_GPA
    np.testing.assert_allclose(out["tangent"], C, rtol=0, atol=1e-6 * C[0, 0])
    # the residual stress is that of the lattice sums (the bounded minimiser finds the lattice
    # constant to ~7e-9 relative: ~6e-8 GPa), reproduced to the finite-difference floor
    ref = cauchy_born_response(pot, a, np.zeros(6))
    np.testing.assert_allclose(out["stress"], ref["stress"], rtol=0, atol=1e-8 * C[0, 0])
    assert np.max(np.abs(out["stress"])) < 1e-6 * C[0, 0]
    # argon with this cutoff: C11 ~ 4.1 GPa, C12 = C44 ~ 2.3 GPa (Cauchy relation of pair potentials)
    assert 3.5 < out["tangent"][0, 0] < 4.5 and out["tangent"][0, 1] == pytest.approx(out["tangent"][5, 5],
                                                                                       rel=1e-6)


def test_plane_strain_response_at_a_finite_strain_matches_lattice_sums(rve3):
    model = fcc_lj_crystal_rve(dim=2)
    model.initialize()
    e = np.array([0.01, -0.004, 0.006])
    out = model.solve({"strain": e}, 0.0)
    ref = cauchy_born_response(rve3.info["potential"], rve3.info["lattice_constant"], e, dim=2)
    scale = ref["tangent"][0, 0]
    np.testing.assert_allclose(out["tangent"], ref["tangent"], rtol=0, atol=1e-6 * scale)
    np.testing.assert_allclose(out["stress"], ref["stress"], rtol=0, atol=1e-8 * scale)
    assert out["energy_density"] == pytest.approx(ref["energy_density"], rel=1e-9)
    # the engine is back at the reference crystal
    np.testing.assert_array_equal(model.engine.get_box(), model.box0)


def test_finite_temperature_stress_has_an_error_bar_and_the_thermal_sign():
    """At 10 K and the 0 K lattice constant the atoms push outward: a positive thermal pressure,
    i.e. a negative (compressive) diagonal stress.  Quasi-harmonic estimate: P = gamma 3 N k T / V
    with argon's Grüneisen parameter gamma ~ 2.7 gives 0.03 GPa; measured here 0.033 +- 0.0003."""
    model = fcc_lj_crystal_rve(cutoff=2.25 * SIGMA, reps=(3, 3, 3), temperature=10.0, dim=2, n_samples=64,
                               sample_interval=20, equilibration=500, friction=5.0, timestep=0.01)
    assert model.engine.integrator.__class__.__name__ == "LangevinMiddleIntegrator"
    model.initialize()
    out = model.solve({"strain": np.zeros(3)}, 0.0)
    S, err = out["stress"], out["stress_error"]
    assert np.all(err > 0) and np.all(err < 0.005)
    assert np.all(S[:2] < -10 * err[:2]) and np.all((-0.06 < S[:2]) & (S[:2] < -0.015))
    assert abs(S[0] - S[1]) < 5 * np.hypot(err[0], err[1]) + 1e-3      # cubic: S11 = S22
    assert abs(S[2]) < 5 * err[2] + 1e-3                                 # no shear stress
    assert out["kinetic_temperature"] == pytest.approx(10.0, rel=0.15)
    # the tangent is the zero-temperature Cauchy–Born one
    ref = cauchy_born_response(model.info["potential"], model.info["lattice_constant"], np.zeros(3), dim=2)
    np.testing.assert_allclose(out["tangent"], ref["tangent"], atol=1e-6 * ref["tangent"][0, 0])
    # a second solve continues from the last frame: 1 % tension raises S11 by ~ C11 * 0.01
    out2 = model.solve({"strain": np.array([0.01, 0.0, 0.0])}, 0.0)
    rise = out2["stress"][0] - S[0]
    assert rise == pytest.approx(0.01 * ref["tangent"][0, 0], rel=0.25)
    state = model.get_state()
    assert state["md_positions"].shape == (108, 3) and int(state["n_solves"]) == 2


def test_a_thermostat_is_required_at_finite_temperature():
    from bridge_adapters.openmm import OpenMMEngine, lennard_jones_system

    a = 1.55 * SIGMA
    pos, box = lattice.fcc(a, (3, 3, 3))
    system = lennard_jones_system(len(pos), SIGMA, 0.99774, 39.948, box=box, cutoff=2.25 * SIGMA)
    nve = OpenMMEngine(system, pos, platform="Reference")                   # Verlet: no thermostat
    with pytest.raises(SetupError, match="no thermostat"):
        CrystalRVE(nve, temperature=10.0)
    hot = OpenMMEngine(system, pos, platform="Reference", temperature=30.0)
    with pytest.raises(SetupError, match="30.0 K, the RVE at 10.0 K"):
        CrystalRVE(hot, temperature=10.0)
