"""Unit tests of the object KMC engine (bridge_adapters.kmc): reactions, sinks, ledger, rates."""
import numpy as np
import pytest

from bridge.errors import SetupError

kmc = pytest.importorskip("bridge_adapters.kmc", reason="the kmc extra (numba) is part of the default install")
ObjectKMC, MigrationTable = kmc.ObjectKMC, kmc.MigrationTable


def test_overlapping_objects_react_at_the_hand_off():
    L = np.full(3, 10.0)
    P = np.array([[5, 5, 5], [5.3, 5, 5], [1, 1, 1], [1.2, 1, 1], [1.1, 1.3, 1]])
    k = ObjectKMC(L, P, np.array([1, -1, 1, 1, 1]))
    c = k.counts()
    assert c["annihilated"] == 1 and c["vacancies"] == 3 and c["interstitials"] == 0
    assert k.objects()[1].tolist() == [3]                               # V + V + V -> V3
    assert k.balance()["balance"] == 3


def test_free_surfaces_absorb_and_the_ledger_balances():
    L = np.array([20.0, 20.0, 3.0])
    rng = np.random.default_rng(0)
    n = 200
    P = rng.random((n, 3)) * L
    k = ObjectKMC(L, P, np.where(np.arange(n) % 3 == 0, 1, -1), periodic=(True, True, False), seed=3)
    for T in (150.0, 300.0, 600.0):
        k.run(T, 10.0)
        k.balance()
    c = k.counts()
    assert c["absorbed_i"] > 0 and c["absorbed_v"] > 0
    assert c["vacancies"] - c["interstitials"] + c["absorbed_v"] - c["absorbed_i"] == n // 3 + 1 - (n - n // 3 - 1)


def test_rates_and_hops():
    table = MigrationTable({-1: 0.34})
    sizes, rates = table.rates(200.0)
    assert sizes.tolist() == [-1] and rates[0] == pytest.approx(1e13 * np.exp(-0.34 / (8.617333262e-5 * 200)))
    k = ObjectKMC(np.full(3, 30.0), np.full((1, 3), 15.0), np.array([-1]), migration=table, seed=1)
    t = 2000 / rates[0]
    ev = k.run(200.0, t)
    assert abs(ev - 2000) < 5 * np.sqrt(2000)                          # Poisson number of hops
    d = k.displacements()[0] / (k.lam / np.sqrt(3))                   # in units of the <111> hop components
    assert np.allclose(d, np.round(d), atol=1e-6)                      # a sum of <111> hops
    assert np.all(np.round(d) % 2 == ev % 2)                           # each hop moves every axis by +-1
    immobile = ObjectKMC(np.full(3, 30.0), np.full((1, 3), 15.0), np.array([5]))
    assert immobile.run(600.0, 1e6) == 0 and immobile.time == pytest.approx(1e6)


def test_same_seed_same_history():
    L = np.full(3, 15.0)
    P = np.random.default_rng(4).random((300, 3)) * L
    S = np.where(np.arange(300) % 2 == 0, 1, -1)
    a, b = ObjectKMC(L, P, S, seed=9), ObjectKMC(L, P, S, seed=9)
    a.run(200.0, 5.0)
    b.run(200.0, 5.0)
    assert a.counts() == b.counts() and np.array_equal(a.objects()[1], b.objects()[1])


def test_bad_input_is_refused():
    L = np.full(3, 10.0)
    with pytest.raises(SetupError, match="nonzero integers"):
        ObjectKMC(L, np.zeros((1, 3)), np.array([0]))
    with pytest.raises(SetupError, match="outside the box"):
        ObjectKMC(L, np.array([[1.0, 1.0, 11.0]]), np.array([1]), periodic=(True, True, False))
    with pytest.raises(SetupError, match="temperature"):
        ObjectKMC(L, np.zeros((1, 3)), np.array([1])).run(-5.0, 1.0)


def test_irradiation_inserts_cascades_at_the_dose_rate_and_keeps_the_ledger():
    from bridge.defects import Cascade, CascadeLibrary, cubic_symmetry

    ops = cubic_symmetry()
    assert ops.shape == (48, 3, 3) and np.allclose(np.einsum("kij,kil->kjl", ops, ops), np.eye(3))
    rng = np.random.default_rng(7)
    P = rng.normal(scale=0.8, size=(20, 3))
    lib = CascadeLibrary([Cascade(P, np.repeat([1, -1], 10), 1000.0)])          # NRT 10 per cascade
    k = ObjectKMC(np.full(3, 25.0), np.zeros((0, 3)), np.zeros(0, np.int64), periodic=(True, True, False), seed=5)
    out = k.irradiate(lib, 2e-4, 300.0, 50.0)
    expected = out["cascade_rate_per_s"] * 50.0
    assert abs(out["cascades"] - expected) < 5 * np.sqrt(expected)
    assert out["dose_dpa"] == pytest.approx(out["cascades"] * 10 / out["atoms"])
    assert k.balance()["balance"] == 0 and k.counts()["annihilated"] > 0
    with pytest.raises(SetupError, match="as many vacancies"):
        CascadeLibrary([Cascade(P, np.ones(20, int), 1000.0)])


def test_adding_objects_beyond_capacity_keeps_state():
    L = np.full(3, 50.0)
    k = ObjectKMC(L, np.array([[1.0, 1.0, 1.0]]), np.array([5]))
    rng = np.random.default_rng(1)
    for _ in range(5):
        k.add_objects(rng.random((40, 3)) * L, np.full(40, 7))          # immobile, far apart on average
    pos, size = k.objects()
    assert size.sum() == 5 + 200 * 7 and k.balance()["balance"] == 5 + 1400


def test_sinks_absorb_with_their_bias_and_the_ledger_balances():
    Sinks = kmc.Sinks
    L = np.array([12.0, 12.0, 6.0])
    sinks = Sinks().lines(2, [[3.0, 3.0], [9.0, 9.0]], radius_v=0.6, radius_i=1.2).sphere([9.0, 3.0, 3.0], 1.0)
    assert len(sinks) == 3 and sinks.line_density(L) == pytest.approx(2 * 6.0 / L.prod())
    # at the start (no cluster radius: capture_radius=0): a vacancy 0.8 nm from a line (outside its
    # 0.6), an interstitial 0.8 nm from it (inside its 1.2), a vacancy 0.42 nm from the second line,
    # a di-interstitial inside the sphere, a vacancy far from everything
    P = np.array([[3.8, 3.0, 1.0], [3.0, 3.8, 2.0], [8.7, 9.3, 5.9], [9.5, 3.0, 3.0], [6.0, 6.0, 3.0]])
    k = ObjectKMC(L, P, np.array([1, -1, 1, -2, 1]), capture_radius=0.0, sinks=sinks, seed=2)
    c = k.counts()
    assert (c["absorbed_v_sinks"], c["absorbed_i_sinks"]) == (1, 3)     # vacancy at [8.7, 9.3]; I1 and I2
    assert c["absorbed_v"] == 1 and c["vacancies"] == 2 and k.balance()["balance"] == 3 - 3
    # a line across the box's periodic edge absorbs from both sides, and along its whole length
    edge = Sinks().lines(0, [[0.1, 5.9]], 0.5)                         # along x through y = 0.1, z = 5.9
    k2 = ObjectKMC(L, np.array([[4.0, 11.9, 0.1], [11.0, 0.3, 5.8], [4.0, 6.0, 3.0]]), np.array([1, 1, 1]),
                   capture_radius=0.0, sinks=edge)
    assert k2.counts()["absorbed_v_sinks"] == 2
    # many interstitials and vacancies, no reactions: the biased lines take interstitials faster
    rng = np.random.default_rng(1)
    n = 400
    k3 = ObjectKMC(L, rng.random((n, 3)) * L, np.where(np.arange(n) % 2 == 0, 1, -1), capture_radius=0.0,
                   sinks=Sinks().lines(2, [[6.0, 6.0]], radius_v=0.5, radius_i=1.5),
                   migration=MigrationTable({1: 0.34, -1: 0.34}), seed=5)
    k3.run(300.0, 2e-5)                                               # ~400 hops each
    c3 = k3.counts()
    assert c3["absorbed_i_sinks"] > 1.3 * c3["absorbed_v_sinks"] > 0
    assert c3["absorbed_v"] == c3["absorbed_v_sinks"] and k3.balance()["balance"] == 0
    # inserted objects within a sink are absorbed at once, and counted
    k3.add_objects(np.array([[6.2, 6.1, 1.0]]), np.array([-4]))
    assert k3.counts()["absorbed_i_sinks"] == c3["absorbed_i_sinks"] + 4 and k3.balance()["balance"] == -4
    # a reaction product whose larger radius reaches a sink is absorbed there: V6 and V5 2.55 nm from
    # a sphere of 1.9 nm each stay out of reach (1.9 + 0.33 n^(1/3) = 2.50, 2.46); V11 reaches 2.64
    ball = Sinks().sphere([6.0, 6.0, 3.0], 1.9)
    k4 = ObjectKMC(L, np.array([[8.55, 6.0, 3.0], [6.0, 8.55, 3.0]]), np.array([6, 5]), sinks=ball)
    assert k4.counts()["objects"] == 2
    k5 = ObjectKMC(L, np.array([[8.55, 6.0, 3.0], [8.35, 6.0, 3.9]]), np.array([6, 5]), sinks=ball)
    assert k5.counts()["objects"] == 0 and k5.counts()["absorbed_v_sinks"] == 11 and k5.balance()["balance"] == 11
    with pytest.raises(SetupError, match="radii"):
        Sinks().sphere([1, 1, 1], -1.0)
    with pytest.raises(SetupError, match="axis"):
        Sinks().lines(3, [[1, 1]], 1.0)
    with pytest.raises(SetupError, match="Sinks object"):
        ObjectKMC(L, P, np.ones(5, int), sinks=[(2, 3.0, 3.0)])
