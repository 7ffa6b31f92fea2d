"""Closed-form homogenization references (numpy only)."""
import numpy as np
import pytest

from bridge.errors import SetupError
from bridge.homogenization import laminate_stiffness, plane_strain_isotropic, reuss_bound, voigt_bound


def test_laminate_closed_form_helpers():
    CA, CB = plane_strain_isotropic(10.0, 0.3), plane_strain_isotropic(1.0, 0.45)
    f = np.array([0.4, 0.6])
    Cs = [CA, CB]
    C = laminate_stiffness(f, Cs)
    avg = lambda g: f[0] * g(CA) + f[1] * g(CB)  # noqa: E731
    inv11 = avg(lambda c: 1 / c[0, 0])
    classical = {(0, 0): 1 / inv11,
                 (0, 1): avg(lambda c: c[0, 1] / c[0, 0]) / inv11,
                 (1, 1): avg(lambda c: c[1, 1]) - avg(lambda c: c[0, 1] ** 2 / c[0, 0])
                 + avg(lambda c: c[0, 1] / c[0, 0]) ** 2 / inv11,
                 (2, 2): 1 / avg(lambda c: 1 / c[2, 2])}
    for (i, j), value in classical.items():
        assert C[i, j] == pytest.approx(value, rel=1e-14)
        assert C[j, i] == pytest.approx(value, rel=1e-14)
    assert C[0, 2] == C[1, 2] == 0.0
    assert np.min(np.linalg.eigvalsh(voigt_bound(f, Cs) - C)) > -1e-12
    assert np.min(np.linalg.eigvalsh(C - reuss_bound(f, Cs))) > -1e-12
    swap = np.array([[0, 1, 0], [1, 0, 0], [0, 0, 1]])
    np.testing.assert_allclose(laminate_stiffness(f, [swap @ c @ swap for c in Cs], normal=1),
                               swap @ C @ swap, rtol=1e-14)
    with pytest.raises(SetupError, match="sum to 1"):
        laminate_stiffness([0.5, 0.6], Cs)
