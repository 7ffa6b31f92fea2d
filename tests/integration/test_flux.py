"""Flux coupling on the real engines: the OpenMM slab and bar (bridge_adapters.openmm.flux) and a short
Couette run with DOLFINx continuum pieces."""
import numpy as np
import pytest

from bridge.errors import CalculationError, SetupError
from bridge.flux import SlabLayout

pytest.importorskip("openmm")
from bridge_adapters.openmm.flux import LJSlab, LJSolidBar  # noqa: E402


@pytest.fixture(scope="module")
def slab():
    md = LJSlab(SlabLayout(z0=2.5, height=25.0, n_cells=10), (10.0, 10.0), seed=3)
    md.equilibrate(2.0)
    return md


def test_slab_density_and_walls(slab):
    lay = slab.layout
    z = slab.positions()[:, 2]
    assert np.all((z > lay.z0) & (z < lay.z0 + lay.height))
    rho = np.histogram(z, bins=lay.edges)[0] / (slab.area * lay.width)
    # one snapshot: a 250 sigma^3 cell of this liquid fluctuates by ~0.02 in density
    assert rho[lay.sampled].mean() == pytest.approx(0.813, abs=0.025)


def test_constraint_holds_the_cells_and_the_momentum_ledger_closes(slab):
    lay = slab.layout
    p0 = float(slab.velocities()[:, 0].sum())
    d = slab.run_window(200, [0.0, 0.0], [0.4, -0.2])
    x, v = slab.positions(), slab.velocities()
    cell = lay.cell_of(x[:, 2])
    for c, target in zip(lay.constrained, (0.4, -0.2)):
        assert v[cell == c, 0].mean() == pytest.approx(target, abs=1e-12)   # set after the last chunk
    dp = float(v[:, 0].sum()) - p0
    assert d.momentum_change == pytest.approx(dp, abs=1e-9)
    assert dp == pytest.approx(d.impulse.sum(), rel=1e-4, abs=1e-4)       # single-precision force sums
    assert d.escaped == 0 and d.series.shape == (200 // slab.chunk, lay.n_cells)
    assert 0.9 < d.temperature < 1.3


def test_bad_window_requests_are_refused(slab):
    with pytest.raises(SetupError, match="multiple of chunk"):
        slab.run_window(15, [0, 0], [0, 0])
    with pytest.raises(CalculationError, match="targets"):
        slab.run_window(slab.chunk, [0, np.nan], [0, 0])
    with pytest.raises(SetupError, match="narrower"):
        LJSlab(SlabLayout(z0=0.0, height=25.0, n_cells=10), (4.0, 10.0))


def test_noise_calibration_predicts_the_spread_of_window_averages(slab):
    n = slab.calibrate(20.0, 2.0)
    assert n["sigma"] == pytest.approx(np.sqrt(1.1 / n["particles"]), rel=0.3)
    assert n["g"] > 1.0
    assert n["window_spread"] == pytest.approx(n["predicted_window_error"], rel=0.6)


def test_heat_goes_into_the_bar_exactly_and_its_energy_follows():
    bar = LJSolidBar(10.0, 5, 8, kT=0.3, seed=2)
    bar.equilibrate(2.0)
    d = bar.run_window(500, [30.0, -10.0])
    assert d.applied == pytest.approx([30.0, -10.0], abs=1e-10)
    assert d.energy_change == pytest.approx(20.0, abs=0.3)                 # Verlet, switched cutoff
    assert d.mean[0] > d.mean[-1] and d.escaped == 0                       # heated end warmer than cooled end
    bar.set_cell_temperatures(np.full(4, 0.25))
    assert bar.cell_temperatures() == pytest.approx(np.full(4, 0.25), rel=1e-10)
    with pytest.raises(SetupError, match="coupling cells"):
        LJSolidBar(10.0, 5, 6)


def test_short_couette_run_with_dolfinx_pieces():
    from bridge_validation.flux_cases import couette_model, ledger_ratios

    c = couette_model(calibrate=8.0, equilibrate=1.0, window=2.0)
    assert c.calibration["coupled_error"] > 0 and c.time == 0.0
    c.run(3)
    r = c.history[-1]
    assert r["mean"][c.layout.constrained[0]] > 0.02                       # the wall's motion reached the MD
    ratios = ledger_ratios(c)
    assert ratios["escaped particles / 0.5"] == 0 and ratios["md momentum ledger / 1e-4"] < 1
    assert ratios["continuum momentum ledger / 1e-10"] < 1
