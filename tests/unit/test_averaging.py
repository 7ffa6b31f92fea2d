"""Averaging: cell binning against brute force, window means against numpy, blocking errors on AR(1)."""
import math

import numpy as np
import pytest
from scipy.signal import lfilter

from bridge.averaging import CellGrid, WindowAverage, block_average
from bridge.errors import SetupError, UsageError


def brute_force_cells(grid_lo, grid_hi, shape, x):
    """Cell index of every particle by explicit comparison with the cell edges (-1 outside)."""
    edges = [np.linspace(grid_lo[k], grid_hi[k], shape[k] + 1) for k in range(3)]
    out = []
    for p in x:
        ijk = []
        for k in range(3):
            hit = [i for i in range(shape[k]) if edges[k][i] <= p[k] < edges[k][i + 1]]
            ijk.append(hit[0] if hit else None)
        out.append(-1 if None in ijk else (ijk[0] * shape[1] + ijk[1]) * shape[2] + ijk[2])
    return np.array(out)


@pytest.fixture
def grid_and_particles():
    lo, hi, shape = np.array([-1.0, 0.0, 2.0]), np.array([1.0, 3.0, 6.0]), (2, 3, 4)
    rng = np.random.default_rng(7)
    x = rng.uniform(lo - 0.5, hi + 0.5, size=(500, 3))  # some particles fall outside
    return CellGrid(lo, hi, shape), lo, hi, shape, x


def test_cell_index_and_counts_match_a_brute_force_loop(grid_and_particles):
    grid, lo, hi, shape, x = grid_and_particles
    ref = brute_force_cells(lo, hi, shape, x)
    assert 0 < np.count_nonzero(ref == -1) < len(x)  # the test does cover outsiders
    np.testing.assert_array_equal(grid.index(x), ref)
    counts = np.array([np.count_nonzero(ref == c) for c in range(grid.n_cells)], float)
    np.testing.assert_array_equal(grid.sum(x), counts)
    assert grid.sum(x).sum() == np.count_nonzero(ref >= 0)  # outsiders ignored


def test_cell_sums_of_values(grid_and_particles):
    grid, lo, hi, shape, x = grid_and_particles
    ref = brute_force_cells(lo, hi, shape, x)
    v = np.arange(len(x), dtype=float)
    vk = np.column_stack([v, v ** 2])
    expect = np.array([[v[ref == c].sum(), (v[ref == c] ** 2).sum()] for c in range(grid.n_cells)])
    np.testing.assert_allclose(grid.sum(x, v), expect[:, 0], rtol=1e-14)
    np.testing.assert_allclose(grid.sum(x, vk), expect, rtol=1e-14)
    with pytest.raises(SetupError, match="one value per particle"):
        grid.sum(x, v[:-1])


def test_cell_geometry():
    grid = CellGrid([0, 0, 0], [1.0, 2.0, 4.0], (1, 2, 4))
    assert grid.cell_volume == pytest.approx(8.0 / 8)
    c = grid.centres()
    assert c.shape == (8, 3)
    # C order: the last axis runs fastest; each centre lies in its own cell
    np.testing.assert_allclose(c[:4, 2], [0.5, 1.5, 2.5, 3.5])
    np.testing.assert_array_equal(grid.index(c), np.arange(8))
    # [lo, hi): the upper face is outside, the lower inside
    assert list(grid.index([[0, 0, 0], [1.0, 2.0, 4.0], [0.5, 1.0, 4.0]])) == [0, -1, -1]


@pytest.mark.parametrize("lo, hi, shape, match", [
    ([0, 0, 0], [1, 1, 1], (1, 0, 1), "three positive integers"),
    ([0, 0, 0], [1, 1, 1], (1, 1), "three positive integers"),
    ([0, 0, 0], [1, 0, 1], (1, 1, 1), "non-positive extent"),
    ([0, 0], [1, 1, 1], (1, 1, 1), "shape"),
    ([0, 0, math.nan], [1, 1, 1], (1, 1, 1), "NaN"),
])
def test_bad_grids_are_refused(lo, hi, shape, match):
    with pytest.raises(SetupError, match=match):
        CellGrid(lo, hi, shape)


def test_window_average_matches_numpy():
    rng = np.random.default_rng(11)
    samples = rng.normal(2.0, 0.5, size=(20, 6))
    weights = rng.integers(1, 5, size=(20, 6)).astype(float)
    avg, wavg = WindowAverage(), WindowAverage()
    for s, w in zip(samples, weights):
        avg.add(s)
        wavg.add(s, w)
    mean, n, err = avg.result()
    assert n == 20
    np.testing.assert_allclose(mean, samples.mean(axis=0), rtol=1e-13)
    np.testing.assert_allclose(err, samples.std(axis=0, ddof=1) / math.sqrt(20), rtol=1e-10)
    wmean, n, werr = wavg.result()
    ref_mean = np.average(samples, axis=0, weights=weights)
    ref_var = np.average((samples - ref_mean) ** 2, axis=0, weights=weights)  # weighted, biased
    np.testing.assert_allclose(wmean, ref_mean, rtol=1e-13)
    np.testing.assert_allclose(werr, np.sqrt(ref_var / (20 - 1)), rtol=1e-8)


def test_window_average_of_vector_samples_and_empty_cells():
    rng = np.random.default_rng(12)
    samples = rng.normal(size=(10, 4, 3))  # (n_cells, k) per sample
    weights = np.tile([1.0, 2.0, 0.0, 1.0], (10, 1))  # cell 2 never has particles
    avg = WindowAverage()
    for s, w in zip(samples, weights):
        avg.add(s, w)
    mean, n, err = avg.result()
    assert mean.shape == (4, 3) and n == 10
    np.testing.assert_allclose(mean[[0, 1, 3]], samples.mean(axis=0)[[0, 1, 3]], rtol=1e-12)
    assert np.all(np.isnan(mean[2])) and np.all(np.isnan(err[2]))  # no data: NaN, never a fake 0
    avg.reset()
    with pytest.raises(UsageError, match="call add"):
        avg.result()
    with pytest.raises(SetupError, match="NaN"):
        avg.add(np.array([1.0, math.nan]))


def ar1(a, n, seed):
    """x_t = a x_{t-1} + e_t with unit-variance noise, started in the stationary distribution."""
    e = np.random.default_rng(seed).standard_normal(n)
    e[0] /= math.sqrt(1 - a * a)
    return lfilter([1.0], [1.0, -a], e)


@pytest.mark.parametrize("a, seed", [(0.8, 0), (0.8, 1), (0.8, 2), (0.5, 3), (0.95, 4), (0.0, 5)])
def test_block_average_error_of_an_ar1_series(a, seed):
    # For AR(1) the variance is 1/(1-a^2) and the integrated correlation gives the error of the
    # mean sqrt(var (1+a)/(1-a) / N).  With N = 2^16 the chosen blocking keeps >= ~64 blocks, so
    # the estimate scatters by 1/sqrt(2 (n_blocks - 1)) <~ 9 %: 25 % is about 3 standard deviations
    # (300 seeds at a = 0.9 all landed within 20 %).
    n = 2 ** 16
    x = ar1(a, n, seed)
    mean, err, block = block_average(x)
    exact = math.sqrt((1 / (1 - a * a)) * (1 + a) / (1 - a) / n)
    assert mean == pytest.approx(x.mean(), rel=1e-12)
    assert err == pytest.approx(exact, rel=0.25)
    tau = (1 + a) / (1 - a)
    assert block >= tau  # the blocks are longer than the correlation time
    assert n // block >= 8


def test_block_average_of_a_series_too_correlated_for_its_length_is_conservative():
    x = ar1(0.995, 512, seed=6)
    mean, err, block = block_average(x)
    naive = x.std(ddof=1) / math.sqrt(x.size)
    assert err > 2 * naive  # far above the naive error bar
    assert block & (block - 1) == 0 and x.size // block >= 8


def test_block_average_edge_cases():
    assert block_average(np.full(64, 3.0)) == (3.0, 0.0, 1)
    with pytest.raises(SetupError, match="at least 16 samples"):
        block_average(np.arange(15.0))
    with pytest.raises(SetupError, match="at least 40 samples"):
        block_average(np.arange(30.0), min_blocks=20)
    with pytest.raises(SetupError, match="NaN"):
        block_average(np.r_[np.zeros(20), math.nan])
