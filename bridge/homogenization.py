r"""Closed-form effective stiffnesses for homogenization checks (numpy only).

Plane-strain Voigt notation with engineering shear: strain :math:`(\varepsilon_{11},
\varepsilon_{22}, \gamma_{12})`, stress :math:`(\sigma_{11}, \sigma_{22}, \sigma_{12})`,
stiffness ``C`` of shape ``(3, 3)``.

**Laminate** (layers normal to :math:`x_1`, volume fractions :math:`f_i`, :math:`\langle\cdot\rangle
= \sum_i f_i\,\cdot`).  Across the layers the tractions :math:`(\sigma_{11}, \sigma_{12})` and the
in-plane strain :math:`\varepsilon_{22}` are continuous, so each is uniform, and the fluctuation
is piecewise linear.  Splitting the Voigt components into the normal set ``n = (11, 12)`` and the
tangential set ``t = (22)``, with :math:`S = \langle C_{nn}^{-1}\rangle`,

.. math::

    C^*_{nn} = S^{-1},\quad C^*_{nt} = S^{-1}\langle C_{nn}^{-1}C_{nt}\rangle,\quad
    C^*_{tt} = \langle C_{tt} - C_{tn}C_{nn}^{-1}C_{nt}\rangle
             + \langle C_{tn}C_{nn}^{-1}\rangle S^{-1}\langle C_{nn}^{-1}C_{nt}\rangle,

which for orthotropic phases (:math:`C_{16} = C_{26} = 0`) are the classical formulas

.. math::

    C^*_{11} = \langle 1/C_{11}\rangle^{-1},\quad
    C^*_{12} = \langle C_{12}/C_{11}\rangle\langle 1/C_{11}\rangle^{-1},\quad
    C^*_{22} = \langle C_{22}\rangle - \langle C_{12}^2/C_{11}\rangle
             + \langle C_{12}/C_{11}\rangle^2\langle 1/C_{11}\rangle^{-1},\quad
    C^*_{66} = \langle 1/C_{66}\rangle^{-1}.

**Bounds**: Voigt :math:`\langle C\rangle` (uniform strain) and Reuss
:math:`\langle C^{-1}\rangle^{-1}` (uniform stress); any admissible effective stiffness lies
between them in the Loewner order.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .errors import SetupError

__all__ = ["plane_strain_isotropic", "isotropic_stiffness", "laminate_stiffness", "voigt_bound",
           "reuss_bound", "plane_moduli", "isotropy_error", "hashin_shtrikman_plane",
           "hashin_shtrikman_conductivity", "loewner_min_eig"]

# Voigt index of the symmetric pair (i, j): 2-D (11, 22, 12), 3-D (11, 22, 33, 23, 13, 12).
_VOIGT = {2: {(0, 0): 0, (1, 1): 1, (0, 1): 2},
          3: {(0, 0): 0, (1, 1): 1, (2, 2): 2, (1, 2): 3, (0, 2): 4, (0, 1): 5}}


def plane_strain_isotropic(E: float, nu: float) -> np.ndarray:
    """Plane-strain Voigt stiffness ``(3, 3)`` of an isotropic material.

    ``E``: Young's modulus (any stress unit); ``nu``: Poisson's ratio in (-1, 0.5).
    ``C11 = C22 = lambda + 2 mu``, ``C12 = lambda``, ``C66 = mu`` with the Lame constants
    ``lambda = E nu / ((1 + nu)(1 - 2 nu))`` and ``mu = E / (2 (1 + nu))``.
    """
    E, nu = float(E), float(nu)
    if not (E > 0.0 and -1.0 < nu < 0.5):
        raise SetupError(f"need E > 0 and -1 < nu < 0.5, got E={E}, nu={nu}",
                         fix="pass a positive, finite Young's modulus and a Poisson ratio "
                             "strictly between -1 and 0.5")
    lam = E * nu / ((1.0 + nu) * (1.0 - 2.0 * nu))
    mu = E / (2.0 * (1.0 + nu))
    return np.array([[lam + 2.0 * mu, lam, 0.0],
                     [lam, lam + 2.0 * mu, 0.0],
                     [0.0, 0.0, mu]])


def isotropic_stiffness(E: float, nu: float) -> np.ndarray:
    """3-D Voigt stiffness ``(6, 6)`` of an isotropic material, order (11, 22, 33, 23, 13, 12),
    engineering shear.  Its ``[0, 1, 5]`` block is :func:`plane_strain_isotropic`."""
    C2 = plane_strain_isotropic(E, nu)
    lam, mu = C2[0, 1], C2[2, 2]
    C = np.zeros((6, 6))
    C[:3, :3] = lam
    C[np.arange(3), np.arange(3)] = lam + 2.0 * mu
    C[np.arange(3, 6), np.arange(3, 6)] = mu
    return C


def _phases(fractions: Sequence[float], C_list: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    f = np.asarray(fractions, dtype=np.float64).reshape(-1)
    C = np.asarray(C_list, dtype=np.float64)
    if C.ndim != 3 or C.shape[1] != C.shape[2] or C.shape[1] not in (3, 6) or C.shape[0] != f.size:
        raise SetupError(f"need one (3, 3) or (6, 6) stiffness per fraction: {f.size} fraction(s), "
                         f"stiffness array of shape {C.shape}",
                         fix="pass C_list as a list of Voigt matrices, (3, 3) plane strain or "
                             "(6, 6) 3-D, one per volume fraction, in the same order")
    if np.any(f < 0.0) or abs(f.sum() - 1.0) > 1e-12:
        raise SetupError(f"volume fractions must be non-negative and sum to 1, got {f.tolist()}",
                         fix="pass non-negative fractions that add up to 1, e.g. f / sum(f)")
    if not np.all(np.isfinite(C)) or np.max(np.abs(C - C.transpose(0, 2, 1))) > 1e-12 * np.max(np.abs(C)):
        raise SetupError("phase stiffnesses must be finite and symmetric",
                         fix="pass symmetric Voigt matrices (C[i, j] == C[j, i]) without NaN/inf, "
                             "e.g. from plane_strain_isotropic(E, nu)")
    if np.min(np.linalg.eigvalsh(C)) <= 0.0:
        raise SetupError("phase stiffnesses must be positive definite",
                         fix="check E > 0 and -1 < nu < 0.5 of every phase")
    return f, C


def laminate_stiffness(fractions: Sequence[float], C_list: Sequence[np.ndarray], *,
                       normal: int = 0) -> np.ndarray:
    r"""Exact effective Voigt stiffness of a laminate, plane strain ``(3, 3)`` or 3-D ``(6, 6)``.

    ``fractions``: ``(n,)`` volume fractions summing to 1; ``C_list``: ``(n, 3, 3)`` or
    ``(n, 6, 6)`` phase stiffnesses (any symmetric positive-definite Voigt matrices);
    ``normal``: the axis the layers are stacked along (0, 1, or 2 in 3-D).  The "normal" Voigt
    set holds the components :math:`\sigma_{n k}` (tractions on the layer planes), the
    tangential set the rest; formula in the module docstring.
    """
    f, C = _phases(fractions, C_list)
    dim = 2 if C.shape[1] == 3 else 3
    if normal not in range(dim):
        raise SetupError(f"normal must be one of 0..{dim - 1}, got {normal}",
                         fix="pass the axis the layers are stacked along (0 for x1, 1 for x2, 2 for x3)")
    voigt = _VOIGT[dim]
    n_idx = sorted(voigt[tuple(sorted((normal, k)))] for k in range(dim))
    t_idx = [i for i in range(C.shape[1]) if i not in n_idx]
    Cnn = C[:, n_idx][:, :, n_idx]
    Cnt = C[:, n_idx][:, :, t_idx]
    Ctn = C[:, t_idx][:, :, n_idx]
    Ctt = C[:, t_idx][:, :, t_idx]
    Cnn_inv = np.linalg.inv(Cnn)
    S = np.einsum("i,ijk->jk", f, Cnn_inv)
    S_inv = np.linalg.inv(S)
    G = np.einsum("i,ijk->jk", f, Cnn_inv @ Cnt)           # <Cnn^-1 Cnt>
    H = np.einsum("i,ijk->jk", f, Ctn @ Cnn_inv)           # <Ctn Cnn^-1>
    T = np.einsum("i,ijk->jk", f, Ctt - Ctn @ Cnn_inv @ Cnt)
    out = np.zeros(C.shape[1:])
    out[np.ix_(n_idx, n_idx)] = S_inv
    out[np.ix_(n_idx, t_idx)] = S_inv @ G
    out[np.ix_(t_idx, n_idx)] = H @ S_inv
    out[np.ix_(t_idx, t_idx)] = T + H @ S_inv @ G
    return out


def voigt_bound(fractions: Sequence[float], C_list: Sequence[np.ndarray]) -> np.ndarray:
    """Voigt (uniform-strain) upper bound ``<C>``, ``(3, 3)``."""
    f, C = _phases(fractions, C_list)
    return np.einsum("i,ijk->jk", f, C)


def reuss_bound(fractions: Sequence[float], C_list: Sequence[np.ndarray]) -> np.ndarray:
    """Reuss (uniform-stress) lower bound ``<C^-1>^-1``, ``(3, 3)``."""
    f, C = _phases(fractions, C_list)
    return np.linalg.inv(np.einsum("i,ijk->jk", f, np.linalg.inv(C)))


def plane_moduli(C: np.ndarray) -> tuple[float, float]:
    """In-plane bulk and shear moduli ``(k, mu)`` of a plane-strain Voigt stiffness ``(3, 3)``.

    For an isotropic material ``k = lambda + mu = (C11 + C12)/2`` (the 2-D bulk modulus) and
    ``mu = C66``; for a general ``C`` the isotropic averages
    ``k = (C11 + C22 + 2 C12)/4`` and ``mu = (C11 + C22 - 2 C12)/8 + C66/2``.
    """
    C = np.asarray(C, dtype=np.float64)
    k = (C[0, 0] + C[1, 1] + 2.0 * C[0, 1]) / 4.0
    mu = (C[0, 0] + C[1, 1] - 2.0 * C[0, 1]) / 8.0 + C[2, 2] / 2.0
    return float(k), float(mu)


def isotropy_error(C: np.ndarray) -> float:
    """Distance of a plane-strain stiffness ``(3, 3)`` from in-plane isotropy, relative to C11:
    ``max(|C11 - C22|, |C66 - (C11 - C12)/2|, |C16|, |C26|) / C11``."""
    C = np.asarray(C, dtype=np.float64)
    parts = [C[0, 0] - C[1, 1], C[2, 2] - 0.5 * (0.5 * (C[0, 0] + C[1, 1]) - C[0, 1]), C[0, 2], C[1, 2]]
    return float(np.max(np.abs(parts)) / C[0, 0])


def hashin_shtrikman_plane(fractions: Sequence[float], k: Sequence[float],
                           mu: Sequence[float]) -> dict[str, float]:
    r"""Hashin--Shtrikman bounds on the in-plane bulk and shear moduli of an isotropic 2-D
    (transversely isotropic fiber) composite, in Walpole's form for any number of phases:

    .. math:: k_\pm = \Big(\sum_i \frac{f_i}{k_i + \mu_\pm}\Big)^{-1} - \mu_\pm,\qquad
              \mu_\pm = \Big(\sum_i \frac{f_i}{\mu_i + \zeta_\pm}\Big)^{-1} - \zeta_\pm,
              \qquad \zeta = \frac{k\mu}{k + 2\mu},

    with :math:`\mu_+ = \max\mu_i`, :math:`\zeta_+ = \zeta(\max k_i, \max\mu_i)` for the
    upper and the minima for the lower bounds.  ``k_i = lambda_i + mu_i`` (plane strain).
    Returns ``{"k_lower", "k_upper", "mu_lower", "mu_upper"}``.
    """
    f = np.asarray(fractions, dtype=np.float64)
    k = np.asarray(k, dtype=np.float64)
    mu = np.asarray(mu, dtype=np.float64)
    if not (f.shape == k.shape == mu.shape) or f.ndim != 1 or abs(f.sum() - 1.0) > 1e-12 \
            or np.any(f < 0) or np.any(k <= 0) or np.any(mu <= 0):
        raise SetupError("need equal-length fractions (summing to 1), k > 0 and mu > 0 per phase",
                         fix="pass one fraction, bulk modulus and shear modulus per phase")

    def bound(m_ref, z_ref):
        kb = 1.0 / np.sum(f / (k + m_ref)) - m_ref
        mb = 1.0 / np.sum(f / (mu + z_ref)) - z_ref
        return float(kb), float(mb)

    zeta = lambda kk, mm: kk * mm / (kk + 2.0 * mm)  # noqa: E731
    k_lo, mu_lo = bound(mu.min(), zeta(k.min(), mu.min()))
    k_hi, mu_hi = bound(mu.max(), zeta(k.max(), mu.max()))
    return {"k_lower": k_lo, "k_upper": k_hi, "mu_lower": mu_lo, "mu_upper": mu_hi}


def hashin_shtrikman_conductivity(fractions: Sequence[float], k: Sequence[float],
                                  dim: int = 2) -> tuple[float, float]:
    r"""Hashin--Shtrikman bounds ``(lower, upper)`` on the conductivity of an isotropic composite
    in ``dim`` dimensions: :math:`k_\pm = (\sum_i f_i/(k_i + (d-1)k_\pm^{ref}))^{-1} -
    (d-1)k_\pm^{ref}` with the reference the largest/smallest phase conductivity.  An insulating
    phase (``k = 0``) gives the lower bound 0; with pores of volume fraction
    :math:`\phi` in 2-D the upper bound is :math:`k_m (1-\phi)/(1+\phi)` (Maxwell).
    """
    f = np.asarray(fractions, dtype=np.float64)
    k = np.asarray(k, dtype=np.float64)
    if f.shape != k.shape or f.ndim != 1 or abs(f.sum() - 1.0) > 1e-12 or np.any(f < 0) \
            or np.any(k < 0) or k.max() <= 0 or dim not in (2, 3):
        raise SetupError("need equal-length fractions (summing to 1) and conductivities >= 0 "
                         "(at least one > 0) and dim 2 or 3",
                         fix="pass one fraction and one conductivity per phase")

    def bound(ref):
        c = (dim - 1) * ref
        if c == 0.0:
            return 0.0 if np.any((k == 0) & (f > 0)) else float(1.0 / np.sum(f / k))
        return float(1.0 / np.sum(f / (k + c)) - c)

    return bound(k.min()), bound(k.max())


def loewner_min_eig(A: np.ndarray, B: np.ndarray) -> float:
    """Smallest eigenvalue of the symmetric part of ``A - B``, relative to ``max|B|``:
    non-negative when ``A >= B`` in the Loewner order (up to round-off)."""
    D = np.asarray(A, dtype=np.float64) - np.asarray(B, dtype=np.float64)
    return float(np.min(np.linalg.eigvalsh(0.5 * (D + D.T))) / np.max(np.abs(B)))
