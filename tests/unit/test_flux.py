"""Unit tests of the flux-matching core (bridge.flux): the analytic reference, coupling cells, noise
planning, the constrained-dynamics shift, the energy exchange, and the coupling drivers on fakes."""
import math

import numpy as np
import pytest

from bridge.errors import CalculationError, SetupError
from bridge.flux import (CouetteCoupling, HeatCoupling, SlabLayout, ThermalWindowData, WindowData, add_energy,
                         constrain_cells, couette_startup, couette_window_mean, plan_sampling,
                         statistical_inefficiency, velocity_noise)

U, H, NU = 0.5, 50.0, 2.14 / 0.813


def test_couette_series_meets_its_walls_and_its_steady_state():
    z = np.linspace(0, H, 11)
    u = couette_startup(z, 30.0, U, H, NU)
    assert u[0] == pytest.approx(U, abs=1e-12) and u[-1] == pytest.approx(0.0, abs=1e-12)
    assert np.all(np.diff(u) < 0)
    assert np.allclose(couette_startup(z, 1e5, U, H, NU), U * (1 - z / H), atol=1e-12)
    assert np.all(couette_startup(z[1:], 0.0, U, H, NU) == 0.0)


def test_couette_series_solves_the_diffusion_equation():
    z, t, h, k = 7.3, 40.0, 1e-2, 1e-3
    u_t = (couette_startup([z], t + k, U, H, NU) - couette_startup([z], t - k, U, H, NU)) / (2 * k)
    u_zz = (couette_startup([z + h], t, U, H, NU) - 2 * couette_startup([z], t, U, H, NU)
            + couette_startup([z - h], t, U, H, NU)) / h ** 2
    assert u_t[0] == pytest.approx(NU * u_zz[0], rel=1e-4)


def test_window_mean_is_the_time_average_of_the_series():
    z = np.array([3.0, 11.0, 25.0])
    ts = np.linspace(10.0, 15.0, 2001)
    quad = np.trapezoid([couette_startup(z, t, U, H, NU) for t in ts], ts, axis=0) / 5.0
    assert np.allclose(couette_window_mean(z, 10.0, 15.0, U, H, NU), quad, atol=1e-8)
    with pytest.raises(SetupError):
        couette_window_mean(z, 5.0, 5.0, U, H, NU)


def test_slab_layout_roles_and_interfaces():
    lay = SlabLayout(z0=2.5, height=25.0, n_cells=10)
    assert lay.roles() == ["buffer", "constrain", "gap"] + ["sample"] * 4 + ["gap", "constrain", "buffer"]
    assert lay.constrained.tolist() == [1, 8] and lay.sampled.tolist() == [3, 4, 5, 6]
    assert lay.interfaces == (pytest.approx(11.25), pytest.approx(18.75))
    assert lay.cell_of(np.array([2.4, 2.5, 27.49, 27.5])).tolist() == [-1, 0, 9, -1]
    with pytest.raises(SetupError, match="sample cells"):
        SlabLayout(z0=0.0, height=10.0, n_cells=7)
    with pytest.raises(SetupError):
        SlabLayout(z0=0.0, height=-1.0, n_cells=10)


def test_noise_plan_meets_the_target_with_the_fewest_replicas():
    assert velocity_noise(1.1, 1.0, 200) == pytest.approx(math.sqrt(1.1 / 200))
    kw = dict(kT=1.1, mass=1.0, particles_per_cell=200, correlation_time=1.0, window=5.0)
    plan = plan_sampling(0.02, 0.5, **kw)
    assert plan.predicted_error <= 0.02
    fewer = velocity_noise(1.1, 1.0, 200) / math.sqrt((plan.replicas - 1) * 5.0) / 0.5
    assert fewer > 0.02                                   # one replica fewer would miss the target
    longer = plan_sampling(0.02, 0.5, vary="window", **kw)
    assert longer.replicas == 1 and longer.predicted_error == pytest.approx(0.02)
    with pytest.raises(SetupError, match="replicas"):
        plan_sampling(0.001, 0.5, **kw)
    with pytest.raises(SetupError):
        plan_sampling(0.05, 0.0, **kw)


def test_statistical_inefficiency_of_an_ar1_series():
    rng = np.random.default_rng(4)
    phi, n = 0.8, 200_000
    x = np.zeros(n)
    e = rng.standard_normal(n)
    for i in range(1, n):
        x[i] = phi * x[i - 1] + e[i]
    assert statistical_inefficiency(x) == pytest.approx((1 + phi) / (1 - phi), rel=0.25)
    assert statistical_inefficiency(rng.standard_normal(4096)) == pytest.approx(1.0, abs=0.3)


def test_constraint_sets_the_cell_means_and_reports_its_impulse():
    rng = np.random.default_rng(1)
    cell = rng.integers(-1, 6, size=500)
    v = rng.normal(size=500)
    m = rng.uniform(1.0, 3.0, size=500)
    dv, imp = constrain_cells(cell, v, m, [1, 4], [0.3, -0.2])
    w = v + dv
    for c, target in ((1, 0.3), (4, -0.2)):
        sel = cell == c
        assert np.sum(m[sel] * w[sel]) / np.sum(m[sel]) == pytest.approx(target, abs=1e-14)
    assert np.all(dv[~np.isin(cell, [1, 4])] == 0.0)
    assert imp == pytest.approx([np.sum((m * dv)[cell == 1]), np.sum((m * dv)[cell == 4])], abs=1e-12)
    dv, imp = constrain_cells(np.full(5, 2), v[:5], m[:5], [7], [1.0])            # an empty cell gets nothing
    assert np.all(dv == 0) and imp[0] == 0
    with pytest.raises(CalculationError):
        constrain_cells(cell, v, m, [1, 4], [0.3, np.nan])


def test_energy_exchange_is_exact_and_keeps_momentum():
    rng = np.random.default_rng(2)
    cell = rng.integers(0, 4, size=400)
    v = rng.normal(size=(400, 3)) + np.array([0.2, 0.0, -0.1])
    m = rng.uniform(1.0, 2.0, size=400)
    new, got = add_energy(cell, v, m, [0, 3], [1.5, -2.0])
    assert got == pytest.approx([1.5, -2.0], abs=1e-12)
    for c in (0, 3):
        sel = cell == c
        assert np.allclose((m[sel, None] * new[sel]).sum(0), (m[sel, None] * v[sel]).sum(0), atol=1e-12)
    assert np.array_equal(new[np.isin(cell, [1, 2])], v[np.isin(cell, [1, 2])])
    k_rel = 0.5 * np.sum(m[cell == 0, None] * (v[cell == 0] - np.average(v[cell == 0], 0, m[cell == 0])) ** 2)
    with pytest.raises(CalculationError, match="cannot give"):
        add_energy(cell, v, m, [0], [-1.01 * k_rel])


# -- the drivers on fakes ---------------------------------------------------------------------
class _Names:
    def __init__(self, names):
        self.names = names


class FakePiece:
    """1-D P1 diffusion on [lo, hi] (lumped mass, backward Euler), Dirichlet at both named ends."""

    def __init__(self, lo, hi, names, rho=1.0, k=1.0, n=40, initial=0.0):
        self.z = np.linspace(lo, hi, n + 1)
        self.h = (hi - lo) / n
        self.rho, self.k = rho, k
        self.u = np.full(n + 1, float(initial))
        self.boundaries = _Names(list(names))
        self.ends = dict(zip(names, (0, n)))
        self.val = {b: 0.0 for b in names}
        self._flux = {}

    def boundary_coordinates(self, b):
        return np.array([[self.z[self.ends[b]]]])

    def set_dirichlet(self, b, value):
        self.val[b] = float(value)

    def _mass(self):
        m = np.full(len(self.z), self.rho * self.h)
        m[[0, -1]] *= 0.5
        return m

    def advance(self, dt):
        n = len(self.z)
        M = self._mass()
        K = (np.diag(np.full(n, 2.0)) - np.diag(np.ones(n - 1), 1) - np.diag(np.ones(n - 1), -1)) * self.k / self.h
        K[0, 0] = K[-1, -1] = self.k / self.h
        A = np.diag(M / dt) + K
        b = M / dt * self.u
        fixed = [self.ends[x] for x in self.boundaries.names]
        free = np.setdiff1d(np.arange(n), fixed)
        new = self.u.copy()
        for x in self.boundaries.names:
            new[self.ends[x]] = self.val[x]
        new[free] = np.linalg.solve(A[np.ix_(free, free)], b[free] - A[np.ix_(free, fixed)] @ new[fixed])
        r = A @ new - b
        self._flux = {x: r[self.ends[x]] for x in self.boundaries.names}
        self.u = new

    def boundary_flux(self, b):
        return self._flux[b]

    def total_energy(self):
        return float(self._mass() @ self.u)

    def evaluate(self, pts):
        return np.interp(np.ravel(pts), self.z, self.u)

    def get_state(self):
        return {"u": self.u.copy(), "val": dict(self.val)}

    def set_state(self, s):
        self.u, self.val = s["u"].copy(), dict(s["val"])


class FakeSlab:
    """Returns the steady Couette profile exactly and records the targets it was given."""

    def __init__(self, layout, area=100.0, U=U, H=H):
        self.layout, self.area, self.U, self.H = layout, area, U, H
        self.calls = []

    def run_window(self, n_steps, t0, t1):
        self.calls.append((np.array(t0), np.array(t1)))
        mean = self.U * (1 - self.layout.centres / self.H)
        nc = self.layout.n_cells
        imp = np.array([0.25, -0.25])
        return WindowData(mean=mean, error=np.full(nc, 0.01), count=np.full(nc, 200.0), impulse=imp,
                          momentum_change=float(imp.sum()), escaped=0, temperature=1.1,
                          series=np.tile(mean, (20, 1)))


def _band_values(lower, upper, lay):
    z = lay.centres[lay.constrained]
    return np.array([lower.evaluate([z[0]])[0], upper.evaluate([z[1]])[0]])


def test_couette_driver_converges_to_steady_flow_with_exact_continuum_ledger():
    lay = SlabLayout(z0=2.5, height=25.0, n_cells=10)
    za, zb = lay.interfaces
    lower, upper = FakePiece(0, za, ["wall", "md"], k=2.0), FakePiece(zb, H, ["md", "wall"], k=2.0)
    md = FakeSlab(lay)
    c = CouetteCoupling([md], lower, upper, U=U, H=H, viscosity=2.0, window=50.0, md_steps=10, substeps=50)
    c.run(60)
    steady = U * (1 - lay.centres[lay.constrained] / H)
    assert np.allclose(c.history[-1]["targets"], steady, atol=1e-6)
    c.ledger.check(rtol=1e-10)
    assert c.ledger.global_imbalance("x-momentum/area (continuum)") < 1e-10


def test_md_targets_run_from_the_corrected_continuum_to_its_prediction():
    """Window n: the MD's targets start at the continuum's values after window n-1 and end at the
    values the continuum predicts with window n-1's MD data (not the values it started from)."""
    import copy

    lay = SlabLayout(z0=2.5, height=25.0, n_cells=10)
    za, zb = lay.interfaces
    lower, upper = FakePiece(0, za, ["wall", "md"], k=2.0), FakePiece(zb, H, ["md", "wall"], k=2.0)
    md = FakeSlab(lay)
    c = CouetteCoupling([md], lower, upper, U=U, H=H, viscosity=2.0, window=5.0, md_steps=10, substeps=5)
    md_data = np.zeros(2)                                   # the fluid at rest before the first window
    for n in range(4):
        start = _band_values(lower, upper, lay)
        lo, up = copy.deepcopy(lower), copy.deepcopy(upper)
        for piece, value in ((lo, md_data[0]), (up, md_data[1])):
            piece.set_dirichlet("md", value)
            for _ in range(5):
                piece.advance(1.0)
        predicted = _band_values(lo, up, lay)
        rec = c.step_window()
        assert np.allclose(md.calls[n][0], start, atol=1e-14)
        assert np.allclose(md.calls[n][1], predicted, atol=1e-14)
        assert not np.allclose(predicted, start)
        md_data = rec["mean"][[lay.sampled[0], lay.sampled[-1]]]


def test_couette_corrector_is_the_step_that_is_kept():
    """After a window the continuum is where one advance with this window's MD data takes it: the
    predictor's advance is undone."""
    lay = SlabLayout(z0=2.5, height=25.0, n_cells=10)
    za, zb = lay.interfaces
    lower, upper = FakePiece(0, za, ["wall", "md"], k=2.0), FakePiece(zb, H, ["md", "wall"], k=2.0)
    ref_lo, ref_up = FakePiece(0, za, ["wall", "md"], k=2.0), FakePiece(zb, H, ["md", "wall"], k=2.0)
    c = CouetteCoupling([FakeSlab(lay)], lower, upper, U=U, H=H, viscosity=2.0, window=5.0, md_steps=10, substeps=5)
    rec = c.step_window()
    md_values = rec["mean"][[lay.sampled[0], lay.sampled[-1]]]
    for piece, value, wall in ((ref_lo, md_values[0], U), (ref_up, md_values[1], 0.0)):
        piece.set_dirichlet("wall", wall)
        piece.set_dirichlet("md", value)
        for _ in range(5):
            piece.advance(1.0)
    assert np.array_equal(lower.u, ref_lo.u) and np.array_equal(upper.u, ref_up.u)


class NoisySlab(FakeSlab):
    def __init__(self, layout, seed=0):
        super().__init__(layout, U=0.0)
        self.rng = np.random.default_rng(seed)

    def run_window(self, n_steps, t0, t1):
        d = super().run_window(n_steps, t0, t1)
        d.series = self.rng.normal(scale=0.05, size=(20, self.layout.n_cells))
        d.mean = d.series.mean(axis=0)
        return d


def test_calibration_restores_the_continuum_and_reports_the_noise():
    lay = SlabLayout(z0=2.5, height=25.0, n_cells=10)
    za, zb = lay.interfaces
    c = CouetteCoupling([NoisySlab(lay)], FakePiece(0, za, ["wall", "md"]), FakePiece(zb, H, ["md", "wall"]),
                        U=U, H=H, viscosity=2.0, window=5.0, md_steps=20, substeps=5)
    before = (c.lower.get_state(), c.upper.get_state())
    cal = c.calibrate(6)
    # the noise moved the continuum during calibration; afterwards everything is as before
    assert cal["coupled_error"] == pytest.approx(np.sqrt(np.mean(cal["window_means"] ** 2)))
    assert 0.05 / np.sqrt(20) * 0.5 < cal["md_error"] < 0.05 / np.sqrt(20) * 2     # white noise: g ~ 1
    for piece, state in zip((c.lower, c.upper), before):
        assert np.array_equal(piece.u, state["u"]) and piece.val == state["val"]
    assert c.lower.val["wall"] == U and c.time == 0.0 and c.history == [] and c.n_window == 0
    assert np.all(c._md_data == 0) and np.all(c._targets == 0) and len(c.ledger.transfers) == 0
    assert np.all(c.step_window()["error"] == cal["coupled_error"])
    with pytest.raises(SetupError, match="before the first"):
        c.calibrate(4)


def test_replicas_are_averaged_and_their_noise_pooled():
    lay = SlabLayout(z0=2.5, height=25.0, n_cells=10)
    za, zb = lay.interfaces
    a, b = NoisySlab(lay, seed=1), NoisySlab(lay, seed=2)
    c = CouetteCoupling([a, b], FakePiece(0, za, ["wall", "md"]), FakePiece(zb, H, ["md", "wall"]),
                        U=U, H=H, viscosity=2.0, window=5.0, md_steps=20, substeps=5)
    rec = c.step_window()
    assert len(a.calls) == len(b.calls) == 1
    assert len([t for t in c.ledger.transfers if t.quantity == "x-momentum (MD)"]) == 2
    ra, rb = np.random.default_rng(1), np.random.default_rng(2)          # the two replicas' first draws
    ma = ra.normal(scale=0.05, size=(20, 10)).mean(0)
    mb = rb.normal(scale=0.05, size=(20, 10)).mean(0)
    assert np.allclose(rec["mean"], 0.5 * (ma + mb), atol=1e-15)
    # without a calibration the error bar is the spread of the replicas
    assert np.allclose(rec["error"], np.std([ma, mb], axis=0, ddof=1) / np.sqrt(2), atol=1e-15)


def test_coupling_refuses_mismatched_times_and_interfaces():
    class Timed(FakeSlab):
        dt = 0.005

    lay = SlabLayout(z0=2.5, height=25.0, n_cells=10)
    za, zb = lay.interfaces
    with pytest.raises(SetupError, match="window"):
        CouetteCoupling([Timed(lay)], FakePiece(0, za, ["wall", "md"]), FakePiece(zb, H, ["md", "wall"]),
                        U=U, H=H, viscosity=2.0, window=5.0, md_steps=999, substeps=5)
    with pytest.raises(SetupError, match="must be positive"):
        CouetteCoupling([FakeSlab(lay)], FakePiece(0, za, ["wall", "md"]), FakePiece(zb, H, ["md", "wall"]),
                        U=U, H=H, viscosity=2.0, window=5.0, md_steps=10, substeps=0)
    with pytest.raises(SetupError, match="expected 11.25"):
        CouetteCoupling([FakeSlab(lay)], FakePiece(0, 12.0, ["wall", "md"]), FakePiece(zb, H, ["md", "wall"]),
                        U=U, H=H, viscosity=2.0, window=5.0, md_steps=10, substeps=5)


def test_couette_driver_refuses_a_slab_outside_the_channel():
    lay = SlabLayout(z0=30.0, height=25.0, n_cells=10)
    with pytest.raises(SetupError, match="inside"):
        CouetteCoupling([FakeSlab(lay)], FakePiece(0, 1, ["wall", "md"]), FakePiece(1, 2, ["md", "wall"]),
                        U=U, H=H, viscosity=2.0, window=1.0, md_steps=10, substeps=1)


class FakeBar:
    """A 'bar' of heat capacity C per cell with conductance G between cells; takes the heat exactly."""

    def __init__(self, layout, area=10.0, C=30.0, G=5.0, T=0.3):
        self.layout, self.area, self.C, self.G = layout, area, C, G
        self.T = np.full(layout.n_cells, T)

    def cell_temperatures(self):
        return self.T.copy()

    def total_energy(self):
        return float(self.C * self.T.sum())

    def run_window(self, n_steps, heat):
        E0 = self.total_energy()
        for _ in range(n_steps):
            q = self.G * np.diff(self.T) / n_steps
            dT = np.zeros_like(self.T)
            dT[:-1] += q / self.C
            dT[1:] -= q / self.C
            dT[[0, -1]] += np.asarray(heat) / n_steps / self.C
            self.T += dT
        nc = self.layout.n_cells
        return ThermalWindowData(mean=self.T.copy(), error=np.zeros(nc), count=np.full(nc, 100.0),
                                 applied=np.asarray(heat, float).copy(), energy_change=self.total_energy() - E0,
                                 escaped=0)


def test_heat_driver_conserves_energy_of_an_isolated_system():
    lay = SlabLayout(z0=10.0, height=18.0, n_cells=6, buffer=0, constrain=1, gap=0)
    za, zb = lay.centres[lay.constrained]
    left = FakePiece(0.0, za, ["outer", "md"], rho=3.0, k=10.0, initial=0.5)
    right = FakePiece(zb, 40.0, ["md", "outer"], rho=3.0, k=10.0, initial=0.3)
    bar = FakeBar(lay)
    # "insulated" outer ends for the fake: Dirichlet ends re-set to the neighbour value each window
    c = HeatCoupling(bar, left, right, window=1.0, md_steps=50, substeps=10)
    e0 = sum(c.energy().values())
    for _ in range(5):
        left.set_dirichlet("outer", left.u[1])
        right.set_dirichlet("outer", right.u[-2])
        rec = c.step_window()
        assert rec["applied"] == pytest.approx(rec["heat"], abs=1e-14)
    flows = sum(r["outer_flow"].sum() for r in c.history)
    assert sum(c.energy().values()) - e0 == pytest.approx(flows, abs=1e-10)
    c.ledger.check(rtol=1e-10)
    assert c.history[-1]["mean"][0] > 0.3          # heat went from the warm left piece into the bar
