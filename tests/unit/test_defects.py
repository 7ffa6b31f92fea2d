"""Unit tests of bridge.defects: Wigner–Seitz analysis, clusters, the KMC hand-off, NRT/arc-dpa."""
import numpy as np
import pytest

from bridge.defects import arc_dpa, bcc_sites, defect_clusters, kmc_objects, nrt_dpa, wigner_seitz
from bridge.errors import SetupError

A = 0.28553


def test_nrt_and_arc_dpa_reference_numbers():
    assert nrt_dpa(1e4, 40.0) == pytest.approx(100.0)
    assert arc_dpa(1e4, 40.0) == pytest.approx(33.8, abs=0.05)          # DESIGN.md §6
    assert nrt_dpa(30.0) == 0.0 and nrt_dpa(60.0) == 1.0
    with pytest.raises(SetupError):
        nrt_dpa(-1.0)


def test_wigner_seitz_finds_known_frenkel_pairs_across_the_periodic_boundary():
    X = bcc_sites(A, (5, 5, 5))
    L = np.full(3, 5 * A)
    rng = np.random.default_rng(2)
    Y = X + 0.05 * A * rng.standard_normal(X.shape)                   # thermal noise stays in its cell
    Y[0] = X[0] - 0.1 * A                                             # wraps around the box: not a defect
    moved = np.array([10, 50, 90])
    octa = np.array([0.5, 0.5, 0.0]) * A
    Y[moved] = X[[20, 60, 100]] + octa                                # to octahedral sites of other atoms
    ws = wigner_seitz(X, Y, L)
    assert sorted(ws.vacancies) == sorted(moved)
    assert len(ws.interstitials) == 3
    assert ws.occupancy.sum() == len(Y) and len(ws.vacancies) - len(ws.interstitials) == len(X) - len(Y)


def test_clusters_are_connected_components_with_periodic_images():
    L = np.full(3, 10.0)
    P = np.array([[0.1, 5, 5], [9.9, 5, 5], [5, 5, 5], [5.2, 5, 5], [2, 2, 2]])
    lab = defect_clusters(P, L, 0.5)
    assert lab[0] == lab[1] and lab[2] == lab[3] and len(set(lab)) == 3
    pos, size = kmc_objects(P[:4], P[4:], L, 0.5)
    assert sorted(size.tolist()) == [-1, 2, 2]
    wrapped = pos[(size == 2) & (np.abs(pos[:, 0] - 5.1) > 1)][0]
    assert min(wrapped[0], 10 - wrapped[0]) < 1e-12                  # centroid of 0.1 and 9.9 is at 0


def test_bad_input_is_refused():
    with pytest.raises(SetupError, match="box"):
        wigner_seitz(np.zeros((1, 3)), np.zeros((1, 3)), [1.0, 0.0, 1.0])
    with pytest.raises(SetupError, match="NaN"):
        wigner_seitz(np.zeros((1, 3)), np.full((1, 3), np.nan), [1.0, 1.0, 1.0])


def test_centroid_of_a_cluster_longer_than_half_the_box():
    L = np.full(3, 10.0)
    chain = np.stack([np.arange(1.0, 7.01, 0.4), np.full(16, 5.0), np.full(16, 5.0)], 1)   # 1 .. 7 nm, bonded
    pos, size = kmc_objects(chain, np.zeros((0, 3)), L, 0.5)
    assert size.tolist() == [16] and np.allclose(pos[0], [4.0, 5.0, 5.0])
    pos, _ = kmc_objects(np.array([[-1e-17, 1.0, 1.0]]), np.zeros((0, 3)), L, 0.5)
    assert 0.0 <= pos[0, 0] < 10.0                                     # wrapped into [0, L)


def test_cascade_library_draws_every_cascade_with_cubic_operations():
    from bridge.defects import Cascade, CascadeLibrary

    a = Cascade(np.array([[0.5, 0.0, 0.0], [-0.5, 0.0, 0.0]]), np.array([1, -1]), 500.0)
    b = Cascade(np.array([[0.3, 0.2, 0.1], [0.0, 0.0, 0.0], [-0.3, 0.0, 0.0]]), np.array([2, -1, -1]), 800.0)
    lib = CascadeLibrary([a, b])
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(50):
        P, n, nrt = lib.draw(rng)
        seen.add(len(n))
        assert nrt == (5.0 if len(n) == 2 else 8.0)
        src = a if len(n) == 2 else b
        assert np.allclose(np.sort(np.linalg.norm(P, axis=1)), np.sort(np.linalg.norm(src.positions, axis=1)))
    assert seen == {2, 3}
    with pytest.raises(SetupError, match="nonzero integer"):
        CascadeLibrary([Cascade(a.positions, np.array([1.0, -1.0]), 500.0)])
