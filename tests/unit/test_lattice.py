"""Perfect FCC crystals: neighbour shells, lattice sums, equilibrium, Cauchy–Born elastic tensor."""
import itertools
import math

import numpy as np
import pytest

from bridge import lattice as L
from bridge.errors import SetupError

SIGMA, EPS = 0.34, 0.99  # argon-like LJ, nm and kJ/mol
CUTOFF = 2.5 * SIGMA     # between the 5th (sqrt(5/2) a) and 6th (sqrt(3) a) shells at a ~ 1.55 sigma


def fcc_neighbours(a, cutoff):
    """Independent enumeration: FCC = {(a/2)(i, j, k) : i + j + k even}, without the origin."""
    n = int(math.ceil(2 * cutoff / a)) + 1
    pts = [(i, j, k) for i, j, k in itertools.product(range(-n, n + 1), repeat=3)
           if (i + j + k) % 2 == 0 and (i, j, k) != (0, 0, 0)]
    R = 0.5 * a * np.array(pts, float)
    return R[np.linalg.norm(R, axis=1) < cutoff]


def as_set(R, a):
    return {tuple(v) for v in np.rint(2 * R / a).astype(int)}


def test_lattice_vectors_match_an_independent_enumeration():
    a = 0.4
    R = L.lattice_vectors(L.FCC_BASIS, a, 2.1 * a)
    ref = fcc_neighbours(a, 2.1 * a)
    assert len(R) == len(ref) and as_set(R, a) == as_set(ref, a)
    # shell counts of FCC: 12, 6, 24, 12, 24, 8, 48, 6 at r^2 = (a^2/2) * (1, 2, ..., 8)
    n2 = np.rint(2 * np.sum(R * R, axis=1) / a ** 2).astype(int)
    counts = {m: int(np.count_nonzero(n2 == m)) for m in range(1, 9)}
    assert counts == {1: 12, 2: 6, 3: 24, 4: 12, 5: 24, 6: 8, 7: 48, 8: 6}
    # exactly 12 nearest neighbours at a / sqrt(2)
    r = np.linalg.norm(R, axis=1)
    assert np.count_nonzero(np.isclose(r, a / math.sqrt(2), rtol=1e-12)) == 12
    assert r.min() == pytest.approx(a / 2 ** 0.5, rel=1e-14)


def test_fcc_positions():
    a = 0.5
    pos, box = L.fcc(a, (2, 3, 2))
    assert pos.shape == (4 * 12, 3)
    np.testing.assert_allclose(box, np.diag([1.0, 1.5, 1.0]))
    # every atom has 12 nearest neighbours at a/sqrt(2) under minimum image, none closer
    d = pos[:, None, :] - pos[None, :, :]
    d -= np.diag(box) * np.round(d / np.diag(box))
    r = np.linalg.norm(d, axis=2) + np.eye(len(pos)) * 1e9
    assert r.min() == pytest.approx(a / math.sqrt(2), rel=1e-12)
    assert np.all(np.count_nonzero(np.isclose(r, a / math.sqrt(2), rtol=1e-9), axis=1) == 12)
    for bad in [(0.0, (1, 1, 1)), (-1.0, (1, 1, 1)), (0.4, (1, 0, 1))]:
        with pytest.raises(SetupError):
            L.fcc(*bad)


def test_nearest_neighbour_only_energy_is_six_bonds():
    a = 0.36
    r1 = a / math.sqrt(2)
    # any pair function; cutoff between the first (0.707 a) and second (a) shell
    phi = lambda r: np.exp(-3.0 * (r - 0.2)) - 2.0 * np.exp(-1.5 * (r - 0.2))  # noqa: E731
    pot = L.PairPotential(phi, lambda r: 0 * r, lambda r: 0 * r, cutoff=0.85 * a)
    assert L.energy_per_atom(pot, a) == pytest.approx(6.0 * phi(r1), rel=1e-14)


def test_lennard_jones_derivatives_against_finite_differences():
    pot = L.PairPotential.lennard_jones(SIGMA, EPS, CUTOFF)
    r = np.linspace(0.95 * SIGMA, 2.4 * SIGMA, 25)
    h = 1e-6 * SIGMA
    # central differences: relative truncation ~ (h/r)^2 * O(100) ~ 1e-10, round-off ~ 1e-16 / 1e-6;
    # compared on the scale of the largest value over the range
    fd1 = (pot.phi(r + h) - pot.phi(r - h)) / (2 * h)
    fd2 = (pot.dphi(r + h) - pot.dphi(r - h)) / (2 * h)
    np.testing.assert_allclose(pot.dphi(r), fd1, atol=1e-7 * np.abs(fd1).max())
    np.testing.assert_allclose(pot.d2phi(r), fd2, atol=1e-7 * np.abs(fd2).max())
    assert pot.phi(np.array([SIGMA]))[0] == 0.0 and pot.phi(np.array([2 ** (1 / 6) * SIGMA]))[0] == pytest.approx(-EPS)
    for bad in [(0.0, 1.0, 1.0), (1.0, -1.0, 1.0), (1.0, 1.0, 0.0)]:
        with pytest.raises(SetupError):
            L.PairPotential.lennard_jones(*bad)


@pytest.fixture(scope="module")
def lj():
    pot = L.PairPotential.lennard_jones(SIGMA, EPS, CUTOFF)
    return pot, L.equilibrium_lattice_constant(pot, 1.55 * SIGMA)


def test_equilibrium_lattice_constant(lj):
    pot, a = lj
    # analytic: with a fixed set of shells, E(a) = 2 eps sum[(s/r)^12 - (s/r)^6] with r = a rho_n,
    # dE/da = 0  <=>  a^6 = 2 s^6 S12 / S6,  S_k = sum rho_n^-k (rho = r / a, shells inside the cutoff)
    rho = np.linalg.norm(fcc_neighbours(1.0, CUTOFF / a), axis=1)
    assert len(rho) == 12 + 6 + 24 + 12 + 24
    a_exact = SIGMA * (2 * np.sum(rho ** -12.0) / np.sum(rho ** -6.0)) ** (1 / 6)
    # a bounded minimiser locates a minimum to ~sqrt(machine eps) in a
    assert a == pytest.approx(a_exact, rel=1e-7)
    # stationary: central difference of E (h = 1e-6 a; round-off ~ 1e-16 * |E| / h ~ 1e-9) is what a
    # displacement of less than 1e-7 a gives, E'(a) ~ E''(a) * delta
    h = 1e-6 * a
    e = lambda x: L.energy_per_atom(pot, x)  # noqa: E731
    d1 = (e(a + h) - e(a - h)) / (2 * h)
    d2 = (e(a + h) - 2 * e(a) + e(a - h)) / h ** 2
    assert d2 > 0 and abs(d1) < d2 * 1e-7 * a
    assert e(a) < e(1.01 * a) and e(a) < e(0.99 * a)


def lattice_energy(pot, R, F):
    """W(F) = 1/2 sum phi(|F R|), computed here from the lattice vectors."""
    return 0.5 * float(np.sum(pot.phi(np.linalg.norm(R @ F.T, axis=1))))


def stretch(E):
    """Right stretch tensor U = sqrt(I + 2E) of a symmetric Green–Lagrange strain E (U^T U = I + 2E)."""
    w, V = np.linalg.eigh(np.eye(3) + 2 * E)
    return (V * np.sqrt(w)) @ V.T


def sym_basis(i, j):
    B = np.zeros((3, 3))
    B[i, j] += 0.5
    B[j, i] += 0.5
    return B


def fd_tensor(pot, a, deformation, h):
    """C_ijkl = (1/Omega) d^2 W / dE_ij dE_kl by the 4-point mixed central difference."""
    R = L.lattice_vectors(L.FCC_BASIS, a, pot.cutoff)
    omega = a ** 3 / 4
    pairs = [(i, j) for i in range(3) for j in range(i, 3)]
    C = np.zeros((3, 3, 3, 3))
    for (i, j), (k, l) in itertools.product(pairs, pairs):
        Bij, Bkl = sym_basis(i, j), sym_basis(k, l)
        w = [lattice_energy(pot, R, deformation(s * h * Bij + t * h * Bkl))
             for s, t in ((1, 1), (1, -1), (-1, 1), (-1, -1))]
        v = (w[0] - w[1] - w[2] + w[3]) / (4 * h * h) / omega
        for p, q in ((i, j), (j, i)):
            for r, u in ((k, l), (l, k)):
                C[p, q, r, u] = v
    return C


@pytest.mark.parametrize("scale", [1.0, 1.03])
def test_cauchy_born_tensor_is_the_second_derivative_of_the_lattice_sum(lj, scale):
    # Exact statement for any a (stressed or not): C = (1/Omega) d^2 W / dE^2 with F = U(E).
    # h = 1e-4: truncation ~ h^2 * (4th/2nd derivative) ~ 1e-8 * O(100), round-off ~ 1e-16 |W| / h^2
    # ~ 1e-8 |W| with |C| ~ 100 |W|: 1e-5 of the largest component is safe.
    pot, a_eq = lj
    a = scale * a_eq
    C = L.cauchy_born_tensor(pot, a)
    C_fd = fd_tensor(pot, a, stretch, h=1e-4)
    np.testing.assert_allclose(C, C_fd, atol=1e-5 * np.abs(C).max())


def test_at_zero_stress_it_is_the_small_strain_stiffness(lj):
    # At the equilibrium a the stress vanishes, so d^2 W / d eps^2 with F = I + eps (linear strain)
    # gives the same tensor; the residual stress from locating a_eq to ~1e-9 relative is negligible.
    pot, a = lj
    C = L.cauchy_born_tensor(pot, a)
    C_fd = fd_tensor(pot, a, lambda eps: np.eye(3) + eps, h=1e-4)
    np.testing.assert_allclose(C, C_fd, atol=1e-5 * np.abs(C).max())


def test_cubic_symmetry_and_the_cauchy_relation(lj):
    pot, a = lj
    C = L.cauchy_born_tensor(pot, a)
    scale = np.abs(C).max()
    tol = 1e-12 * scale
    # minor and major symmetries
    np.testing.assert_allclose(C, C.transpose(1, 0, 2, 3), atol=tol)
    np.testing.assert_allclose(C, C.transpose(0, 1, 3, 2), atol=tol)
    np.testing.assert_allclose(C, C.transpose(2, 3, 0, 1), atol=tol)
    # cubic: invariant under a 90 degree rotation about z and the (111) three-fold axis
    for Q in (np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1.0]]), np.array([[0, 0, 1], [1, 0, 0], [0, 1, 0.0]])):
        np.testing.assert_allclose(np.einsum("ia,jb,kc,ld,abcd->ijkl", Q, Q, Q, Q, C), C, atol=tol)
    c = L.cubic_constants(C)
    assert c["C11"] == pytest.approx(C[1, 1, 1, 1], abs=tol) == pytest.approx(C[2, 2, 2, 2], abs=tol)
    assert c["C12"] == pytest.approx(C[1, 1, 2, 2], abs=tol) and c["C44"] == pytest.approx(C[1, 2, 1, 2], abs=tol)
    assert c["C11"] > c["C12"] > 0 and c["C44"] > 0  # mechanically stable
    assert c["C12"] == pytest.approx(c["C44"], rel=1e-12)  # Cauchy relation of central pair forces
    # entries that couple a normal strain to a shear strain vanish in a cubic crystal
    assert abs(C[0, 0, 0, 1]) < tol and abs(C[0, 1, 0, 2]) < tol


def test_check_cutoff_gap():
    a = 0.5
    r1, r2 = a / math.sqrt(2), a
    with pytest.raises(SetupError, match="neighbour shell") as exc:
        L.check_cutoff_gap(r2, a)  # cutoff on the second shell
    assert exc.value.fix
    with pytest.raises(SetupError):
        L.check_cutoff_gap(1.005 * r1, a)  # within 1 % above the first shell
    with pytest.raises(SetupError):
        L.check_cutoff_gap(0.995 * r2, a)  # within 1 % below the second
    L.check_cutoff_gap(0.5 * (r1 + r2), a)  # between the shells: fine
    L.check_cutoff_gap(0.98 * r2, a, gap=0.01)
