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

__all__ = ["plane_strain_isotropic", "laminate_stiffness", "voigt_bound", "reuss_bound"]


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


def _phases(fractions: Sequence[float], C_list: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    f = np.asarray(fractions, dtype=np.float64).reshape(-1)
    C = np.asarray(C_list, dtype=np.float64)
    if C.ndim != 3 or C.shape[1:] != (3, 3) or C.shape[0] != f.size:
        raise SetupError(f"need one (3, 3) stiffness per fraction: {f.size} fraction(s), "
                         f"stiffness array of shape {C.shape}",
                         fix="pass C_list as a list of (3, 3) Voigt matrices, one per volume "
                             "fraction, in the same order")
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
    """Exact effective Voigt stiffness ``(3, 3)`` of a laminate of plane-strain layers.

    ``fractions``: ``(n,)`` volume fractions summing to 1; ``C_list``: ``(n, 3, 3)`` phase
    stiffnesses (any symmetric positive-definite Voigt matrices); ``normal``: the axis the layers
    are normal to (0 for :math:`x_1`, 1 for :math:`x_2`).  Formula in the module docstring.
    """
    f, C = _phases(fractions, C_list)
    if normal not in (0, 1):
        raise SetupError(f"normal must be 0 or 1, got {normal}",
                         fix="pass normal=0 for layers stacked along x1, 1 for layers stacked along x2")
    n_idx = [normal, 2]
    t_idx = [1 - normal]
    Cnn = C[:, n_idx][:, :, n_idx]
    Cnt = C[:, n_idx][:, :, t_idx]
    Ctn = C[:, t_idx][:, :, n_idx]
    Ctt = C[:, t_idx][:, :, t_idx]
    Cnn_inv = np.linalg.inv(Cnn)
    S = np.einsum("i,ijk->jk", f, Cnn_inv)
    S_inv = np.linalg.inv(S)
    G = np.einsum("i,ijk->jk", f, Cnn_inv @ Cnt)           # <Cnn^-1 Cnt>, (2, 1)
    H = np.einsum("i,ijk->jk", f, Ctn @ Cnn_inv)           # <Ctn Cnn^-1>, (1, 2)
    T = np.einsum("i,ijk->jk", f, Ctt - Ctn @ Cnn_inv @ Cnt)
    out = np.zeros((3, 3))
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
