"""The atomistic RVE micro model against lattice sums, with a numpy pair-potential crystal as engine."""
import itertools

import numpy as np
import pytest

from bridge import lattice, units
from bridge.crystal_rve import (CrystalRVE, _lower_triangular, _reduce, cauchy_born_response, stretch_tensor,
                                voigt_stiffness, voigt_to_tensor)
from bridge.errors import SetupError, UsageError
from bridge.protocols import MicroModel

SIGMA, EPS, MASS = 0.34, 0.99, 39.948          # argon-like, nm, kJ/mol, amu
CUTOFF = 2.0 * SIGMA                           # between the 3rd (1.22 a) and 4th (1.41 a) shells
POT = lattice.PairPotential.lennard_jones(SIGMA, EPS, CUTOFF)
A = lattice.equilibrium_lattice_constant(POT, 1.55 * SIGMA)
SHEARED = np.array([0.01, -0.006, 0.004, 0.008, -0.005, 0.012])   # a general 3-D strain, engineering shear


class FakeCrystal:
    """A periodic pair-potential crystal in numpy, speaking the duck-typed engine API of CrystalRVE.

    The energy sums every pair over the 27 nearest periodic images (exact while the cutoff is
    below the smallest box height).  The box must be lower triangular, as OpenMM demands.
    ``step`` only redraws Maxwell–Boltzmann velocities (positions stay put), so a finite-
    temperature stress has a known mean: the static lattice stress plus the kinetic term.
    """

    def __init__(self, reps=(2, 2, 2), a=A, pot=POT):
        self.pot = pot
        pos, box = lattice.fcc(a, reps)
        self._x, self._box = pos, box
        self._v = np.zeros_like(pos)
        self._m = np.full(len(pos), MASS)
        self._T, self._rng = 0.0, np.random.default_rng(0)
        self.energy_calls = 0
        self.shifts = np.array(list(itertools.product((-1, 0, 1), repeat=3)), float)

    @property
    def masses(self):
        return self._m.copy()

    def get_box(self):
        return self._box.copy()

    def set_box(self, box):
        box = np.asarray(box, float)
        if box.shape != (3, 3) or np.any(box[np.triu_indices(3, 1)] != 0):
            raise ValueError("box must be lower triangular")
        self._box = box.copy()

    def get_positions(self):
        return self._x.copy()

    def set_positions(self, x):
        self._x = np.array(x, float)

    def get_velocities(self):
        return self._v.copy()

    def set_velocities(self, v):
        self._v = np.array(v, float)

    def set_velocities_to_temperature(self, T, seed=1):
        self._T, self._rng = float(T), np.random.default_rng(seed)
        self.step(0)

    def step(self, n):
        sd = np.sqrt(units.KB * self._T / self._m)[:, None]
        self._v = sd * self._rng.standard_normal(self._x.shape)

    def get_potential_energy(self):
        self.energy_calls += 1
        d = self._x[None, :, None, :] - self._x[:, None, None, :] + (self.shifts @ self._box)[None, None]
        r2 = np.einsum("...k,...k->...", d, d)
        r = np.sqrt(r2[(r2 > 1e-18) & (r2 < self.pot.cutoff ** 2)])
        return 0.5 * float(np.sum(self.pot.phi(r)))


def rve(dim=3, **kw):
    model = CrystalRVE(FakeCrystal(), dim=dim, **kw)
    model.initialize()
    return model


def test_lattice_sum_reference_matches_the_cauchy_born_tensor_and_its_own_derivatives():
    ref0 = cauchy_born_response(POT, A, np.zeros(6))
    C = voigt_stiffness(lattice.cauchy_born_tensor(POT, A)) * units.PRESSURE_GPA
    np.testing.assert_allclose(ref0["tangent"], C, rtol=1e-12, atol=1e-12 * C.max())
    assert np.max(np.abs(ref0["stress"])) < 1e-8 * C[0, 0]      # equilibrium lattice constant
    # stress = dw/dE and tangent = dS/dE at a general strain (central differences)
    ref = cauchy_born_response(POT, A, SHEARED)
    h = 1e-6
    for i in range(6):
        e = np.zeros(6)
        e[i] = h
        p, m = cauchy_born_response(POT, A, SHEARED + e), cauchy_born_response(POT, A, SHEARED - e)
        assert (p["energy_density"] - m["energy_density"]) / (2 * h) == pytest.approx(ref["stress"][i],
                                                                                      abs=1e-7 * C[0, 0])
        np.testing.assert_allclose((p["stress"] - m["stress"]) / (2 * h), ref["tangent"][:, i],
                                   atol=1e-6 * C[0, 0])


def test_stretch_tensor_is_the_symmetric_square_root():
    E = voigt_to_tensor(SHEARED, 3)
    U = stretch_tensor(E)
    np.testing.assert_allclose(U, U.T, atol=1e-15)
    np.testing.assert_allclose(U @ U, np.eye(3) + 2 * E, atol=1e-14)
    assert np.all(np.linalg.eigvalsh(U) > 0)
    np.testing.assert_allclose(voigt_to_tensor([0.1, 0.2, 0.3], 2), [[0.1, 0.15, 0], [0.15, 0.2, 0], [0, 0, 0]])


def test_is_a_micro_model():
    assert isinstance(rve(), MicroModel)


def test_zero_strain_tangent_is_the_cauchy_born_tensor():
    model = rve()
    out = model.solve({"strain": np.zeros(6)}, 0.0)
    C = voigt_stiffness(lattice.cauchy_born_tensor(POT, A)) * units.PRESSURE_GPA
    assert out["stress"].shape == (6,) and out["tangent"].shape == (6, 6)
    np.testing.assert_allclose(out["tangent"], C, rtol=0, atol=1e-7 * C[0, 0])
    assert np.max(np.abs(out["stress"])) < 1e-9 * C[0, 0]
    assert out["energy_density"] == pytest.approx(0.0, abs=1e-15)
    # initialize() gave the same zero-strain response
    init = CrystalRVE(FakeCrystal()).initialize()
    np.testing.assert_allclose(init["tangent"], out["tangent"], rtol=1e-12)


@pytest.mark.parametrize("dim", [2, 3])
def test_stress_tangent_and_energy_at_a_finite_strain_match_lattice_sums(dim):
    e = SHEARED if dim == 3 else SHEARED[[0, 1, 5]]
    model = rve(dim)
    out = model.solve({"strain": e}, 0.0)
    ref = cauchy_born_response(POT, A, e, dim=dim)
    scale = ref["tangent"][0, 0]
    assert out["stress"].shape == (len(e),) and out["tangent"].shape == (len(e), len(e))
    np.testing.assert_allclose(out["stress"], ref["stress"], rtol=0, atol=1e-9 * scale)
    np.testing.assert_allclose(out["tangent"], ref["tangent"], rtol=0, atol=1e-7 * scale)
    assert out["energy_density"] == pytest.approx(ref["energy_density"], abs=1e-12 * scale)
    assert abs(ref["stress"]).max() > 1e-3 * scale     # a real, nonzero stress was compared


def test_plane_strain_is_the_in_plane_block_of_3d():
    e3 = np.array([0.01, -0.004, 0.0, 0.0, 0.0, 0.006])
    o3 = rve(3).solve({"strain": e3}, 0.0)
    o2 = rve(2).solve({"strain": e3[[0, 1, 5]]}, 0.0)
    idx = [0, 1, 5]
    np.testing.assert_allclose(o2["stress"], o3["stress"][idx], atol=1e-9)
    np.testing.assert_allclose(o2["tangent"], o3["tangent"][np.ix_(idx, idx)], atol=1e-7)


def test_tangent_is_the_derivative_of_the_returned_stress():
    model = rve(3)
    out = model.solve({"strain": SHEARED}, 0.0)
    d = 1e-4
    for j in (0, 3, 5):                                  # a normal and two shear columns
        e = np.zeros(6)
        e[j] = d
        p = model.solve({"strain": SHEARED + e}, 0.0)["stress"]
        m = model.solve({"strain": SHEARED - e}, 0.0)["stress"]
        # central difference of the stress: O(d^2) ~ 1e-8 relative
        np.testing.assert_allclose((p - m) / (2 * d), out["tangent"][:, j], atol=1e-6 * out["tangent"][0, 0])
    # stress . dE = dW / V0 with engineering shear
    de = 1e-5 * np.array([1.0, -2.0, 0.5, 3.0, -1.0, 2.0])
    dw = (model.solve({"strain": SHEARED + de}, 0.0)["energy_density"]
          - model.solve({"strain": SHEARED - de}, 0.0)["energy_density"])
    assert dw == pytest.approx(2 * out["stress"] @ de, rel=1e-6)


def test_solves_are_independent_and_leave_the_engine_at_its_reference():
    model = rve(2)
    eng = model.engine
    x0, b0 = eng.get_positions(), eng.get_box()
    a = model.solve({"strain": [0.02, 0.0, 0.01]}, 0.0)
    np.testing.assert_array_equal(eng.get_positions(), x0)
    np.testing.assert_array_equal(eng.get_box(), b0)
    model.solve({"strain": [-0.03, 0.01, -0.02]}, 0.0)
    b = model.solve({"strain": [0.02, 0.0, 0.01]}, 0.0)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


def test_large_shear_matches_lattice_sums_and_a_cutoff_crossing_is_reported(caplog):
    model = rve(2)
    e = np.array([0.01, -0.01, 0.2])                     # engineering shear 0.2: a lower-triangular box
    with caplog.at_level("WARNING", logger="msbridge.crystal_rve"):
        out = model.solve({"strain": e}, 0.0)
    ref = cauchy_born_response(POT, A, e, dim=2)
    np.testing.assert_allclose(out["stress"], ref["stress"], atol=1e-9 * ref["tangent"][0, 0])
    assert not caplog.records
    # at shear 0.3 a neighbour shell crosses the truncated potential's cutoff inside the stencil
    with caplog.at_level("WARNING", logger="msbridge.crystal_rve"):
        model.solve({"strain": [0.01, -0.01, 0.3]}, 0.0)
    assert "crosses the potential's cutoff" in caplog.text


def test_box_reduction_keeps_the_lattice():
    box = np.array([[1.0, 0.0, 0.0], [0.7, 1.1, 0.0], [-0.9, 0.8, 1.2]])
    red = _reduce(box)
    a, b, c = red
    assert abs(b[0]) <= 0.5 * a[0] and abs(c[0]) <= 0.5 * a[0] and abs(c[1]) <= 0.5 * b[1]
    M = red @ np.linalg.inv(box)                          # an integer, unimodular change of basis
    np.testing.assert_allclose(M, np.rint(M), atol=1e-12)
    assert round(abs(np.linalg.det(M))) == 1
    low, q = _lower_triangular(np.array([[1.0, 0.2, 0.1], [0.1, 1.0, 0.3], [0.0, 0.2, 0.9]]))
    np.testing.assert_allclose(q @ q.T, np.eye(3), atol=1e-14)
    assert np.linalg.det(q) > 0 and np.all(np.diag(low) > 0) and not np.any(low[np.triu_indices(3, 1)])


@pytest.mark.parametrize("macro, match", [
    ({"strain": np.zeros(6)}, r"shape \(6,\), expected \(3,\)"),
    ({"strain": [0.0, np.nan, 0.0]}, "NaN"),
    ({"strain": [0.0, np.inf, 0.0]}, "NaN or infinite"),
    ({"stress": [0.0, 0.0, 0.0]}, "'strain' entry"),
    ({"strain": ["a", "b", "c"]}, "numeric"),
    ({"strain": [-0.6, 0.0, 0.0]}, "not positive definite"),
])
def test_bad_macro_data_is_refused_with_a_fix(macro, match):
    model = rve(2)
    with pytest.raises(SetupError, match=match) as info:
        model.solve(macro, 0.0)
    assert info.value.fix


def test_bad_set_up_is_refused():
    with pytest.raises(UsageError, match="initialize"):
        CrystalRVE(FakeCrystal()).solve({"strain": np.zeros(6)}, 0.0)
    eng = FakeCrystal()
    eng._box = eng._box + np.array([[0, 0, 0], [0.1, 0, 0], [0, 0, 0]])
    with pytest.raises(SetupError, match="orthorhombic"):
        CrystalRVE(eng)
    eng = FakeCrystal()
    eng._box = -eng._box
    with pytest.raises(SetupError, match="non-positive"):
        CrystalRVE(eng)
    eng = FakeCrystal()
    eng._box = np.full((3, 3), np.nan)
    with pytest.raises(SetupError, match="finite"):
        CrystalRVE(eng)
    with pytest.raises(SetupError, match="dim"):
        CrystalRVE(FakeCrystal(), dim=4)
    with pytest.raises(SetupError, match="step h"):
        CrystalRVE(FakeCrystal(), h=0.0)
    with pytest.raises(SetupError, match="temperature"):
        CrystalRVE(FakeCrystal(), temperature=-1.0)
    with pytest.raises(SetupError, match="n_samples"):
        CrystalRVE(FakeCrystal(), temperature=10.0, n_samples=4)
    with pytest.raises(SetupError, match="cutoff"):
        CrystalRVE(FakeCrystal(), cutoff=0.6)                  # box edge 2 a = 1.05 nm
    model = CrystalRVE(FakeCrystal(), cutoff=0.5)
    model.initialize()
    with pytest.raises(SetupError, match="box height"):
        model.solve({"strain": [-0.2, 0, 0, 0, 0, 0]}, 0.0)


def test_finite_temperature_needs_a_thermostat_and_no_barostat():
    class Integrator:                       # an NVE integrator: no getTemperature
        pass

    class Thermostatted:
        def getTemperature(self):
            return 20.0

    class Barostat:
        def getDefaultPressure(self):
            return 1.0

    class System:
        def __init__(self, forces):
            self.forces = forces

        def getForces(self):
            return self.forces

    eng = FakeCrystal()
    eng.integrator = Integrator()
    with pytest.raises(SetupError, match="no thermostat"):
        CrystalRVE(eng, temperature=10.0)
    eng.integrator = Thermostatted()
    with pytest.raises(SetupError, match="20.0 K, the RVE at 10.0 K"):
        CrystalRVE(eng, temperature=10.0)
    CrystalRVE(eng, temperature=20.0)
    eng.system = System([Barostat()])
    with pytest.raises(SetupError, match="barostat"):
        CrystalRVE(eng, temperature=20.0)
    bare = type("Bare", (), {k: getattr(FakeCrystal, k) for k in ("get_box", "get_positions")})
    with pytest.raises(SetupError, match="engine.step"):
        CrystalRVE(bare(), temperature=10.0)


def test_finite_temperature_stress_is_the_static_stress_plus_the_kinetic_term():
    T = 300.0
    model = rve(3, temperature=T, n_samples=32, sample_interval=1, equilibration=0)
    out = model.solve({"strain": SHEARED}, 0.0)
    ref = cauchy_born_response(POT, A, SHEARED)
    n = len(model.positions0)
    Cinv = np.linalg.inv(np.eye(3) + 2 * voigt_to_tensor(SHEARED, 3))
    kinetic = -n * units.KB * T / model.volume0 * units.PRESSURE_GPA * np.array(
        [Cinv[i, j] for i, j in ((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))])
    err = out["stress_error"]
    assert err.shape == (6,) and np.all(err > 0) and np.all(np.isfinite(err))
    assert np.all(np.abs(out["stress"] - (ref["stress"] + kinetic)) < 5 * err)
    # the kinetic term is resolved: its diagonal is many error bars away from zero
    assert np.all(np.abs(kinetic[:3]) > 10 * err[:3])
    assert out["kinetic_temperature"] == pytest.approx(T, rel=0.05)
    # the tangent is the zero-temperature Cauchy–Born one, documented as an approximation
    np.testing.assert_allclose(out["tangent"], ref["tangent"], atol=1e-7 * ref["tangent"][0, 0])


def test_state_round_trip():
    model = rve(2)
    out = model.solve({"strain": [0.01, 0.0, 0.004]}, 0.0)
    state = model.get_state()
    assert all(isinstance(v, np.ndarray) for v in state.values())
    other = CrystalRVE(FakeCrystal(), dim=2)
    other.set_state(state)
    again = other.get_state()
    assert state.keys() == again.keys()
    for k in state:
        np.testing.assert_array_equal(state[k], again[k])
    np.testing.assert_array_equal(again["last_stress"], out["stress"])
    # the restored model is initialised and gives the same answer
    np.testing.assert_array_equal(other.solve({"strain": [0.01, 0.0, 0.004]}, 0.0)["tangent"], out["tangent"])
    with pytest.raises(SetupError, match="same options"):
        CrystalRVE(FakeCrystal(), dim=3).set_state(state)
    with pytest.raises(SetupError, match="get_state"):
        other.set_state({"stress": 1.0})


def test_finite_temperature_state_carries_the_md_frame():
    model = rve(2, temperature=50.0, n_samples=16, sample_interval=1, equilibration=0)
    model.solve({"strain": [0.0, 0.0, 0.0]}, 0.0)
    state = model.get_state()
    assert {"md_box", "md_positions", "md_velocities", "md_deformation", "last_stress_error"} <= state.keys()
    other = CrystalRVE(FakeCrystal(), dim=2, temperature=50.0, n_samples=16, sample_interval=1, equilibration=0)
    other.set_state(state)
    np.testing.assert_array_equal(other.engine.get_velocities(), state["md_velocities"])
    bad = dict(state, md_positions=state["md_positions"][:3])
    with pytest.raises(SetupError, match="MD frame"):
        other.set_state(bad)
    # a second solve continues from the kept frame, mapped into the new box
    out = other.solve({"strain": [0.01, 0.0, 0.0]}, 0.0)
    assert np.all(np.isfinite(out["stress"])) and other.n_solves == 2
