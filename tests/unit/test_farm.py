"""MicroFarm (serial path) and the LPT assignment, with fake micro models."""
import numpy as np
import pytest

from bridge.errors import CalculationError, SetupError
from bridge.farm import MicroFarm, lpt_assignment, tangent_extrapolation


class Quadratic:
    """stress = C E + a |E|^2 (1, 1, 0): a smooth nonlinear law with its exact tangent."""

    calls = 0

    def __init__(self, gid):
        self.gid = gid
        self.C = np.array([[4.0, 1.0, 0.0], [1.0, 4.0, 0.0], [0.0, 0.0, 1.5]]) * (1 + gid)
        self.state = {"count": 0}

    def initialize(self):
        self.state["count"] = 0

    def solve(self, data, dt):
        Quadratic.calls += 1
        E = data["strain"]
        if not np.all(np.abs(E) < 1.0):
            raise ValueError("strain out of range")
        self.state["count"] += 1
        s = self.C @ E + 0.5 * np.dot(E, E) * np.array([1.0, 1.0, 0.0])
        t = self.C + np.outer([1.0, 1.0, 0.0], E)
        return {"stress": s, "tangent": t}

    def get_state(self):
        return dict(self.state)

    def set_state(self, state):
        self.state = dict(state)


def test_lpt_assignment_balances_and_is_deterministic():
    costs = np.array([5.0, 4.0, 3.0, 3.0, 2.0, 2.0, 1.0])
    a = lpt_assignment(costs, 2)
    loads = np.bincount(a, weights=costs, minlength=2)
    assert loads.max() - loads.min() <= costs.min()
    np.testing.assert_array_equal(a, lpt_assignment(costs, 2))
    assert lpt_assignment(np.zeros(4), 3).tolist() == [0, 1, 2, 0]


def test_serial_farm_solves_every_point_and_stacks_outputs():
    farm = MicroFarm(Quadratic, 4)
    E = np.array([[0.01, 0.0, 0.0], [0.0, 0.02, 0.0], [0.0, 0.0, 0.03], [0.01, 0.01, 0.01]])
    out = farm.solve({"strain": E})
    assert out["stress"].shape == (4, 3) and out["tangent"].shape == (4, 3, 3)
    for i in range(4):
        np.testing.assert_allclose(out["stress"][i], Quadratic(i).solve({"strain": E[i]}, 0)["stress"])
    assert farm.stats.solves == 4 and farm.stats.reused == 0
    assert farm.get_state()[2] == {"count": 1}


def test_reuse_with_tangent_extrapolation_has_second_order_error():
    tol = 1e-3
    farm = MicroFarm(Quadratic, 1, reuse_tolerance=tol, extrapolate=tangent_extrapolation)
    E0 = np.array([[0.1, 0.05, 0.02]])
    farm.solve({"strain": E0})
    dE = np.array([[5e-4, -5e-4, 2e-4]])
    out = farm.solve({"strain": E0 + dE})
    assert farm.stats.reused == 1 and farm.stats.solves == 1
    exact = Quadratic(0).solve({"strain": (E0 + dE)[0]}, 0)["stress"]
    err = np.max(np.abs(out["stress"][0] - exact))
    assert 0 < err <= np.dot(dE[0], dE[0])          # exactly |dE|^2/2 for this law
    farm.solve({"strain": E0 + 3 * tol})             # moved beyond the tolerance: solved again
    assert farm.stats.solves == 2


def test_failure_names_point_and_inputs():
    farm = MicroFarm(Quadratic, 3)
    E = np.zeros((3, 3))
    E[1, 0] = 2.0
    with pytest.raises(CalculationError) as info:
        farm.solve({"strain": E})
    err = info.value
    assert "point 1" in str(err) and "strain out of range" in str(err)
    assert err.state["macro_data"]["strain"] == [2.0, 0.0, 0.0]


def test_bad_inputs_are_refused_before_any_solve():
    Quadratic.calls = 0
    farm = MicroFarm(Quadratic, 2)
    with pytest.raises(SetupError, match="first axis"):
        farm.solve({"strain": np.zeros((3, 3))})
    with pytest.raises(SetupError, match="NaN"):
        farm.solve({"strain": np.array([[0.0, 0.0, 0.0], [np.nan, 0.0, 0.0]])})
    assert Quadratic.calls == 0
    with pytest.raises(SetupError):
        MicroFarm(Quadratic, 2, reuse_tolerance=-1.0)
    with pytest.raises(SetupError):
        MicroFarm("not callable", 2)
