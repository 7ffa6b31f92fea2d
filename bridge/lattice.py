"""Perfect crystals and their Cauchy–Born elastic constants from lattice sums.

For a Bravais lattice with a pair potential ``phi(r)`` cut at ``r_c``, the energy per atom
under a homogeneous deformation gradient ``F`` is

    W(F) = 1/2 * sum_{R != 0, |R| < r_c} phi(|F R|)

and the elastic tensor at the reference configuration (second derivative of W with respect to
the Green–Lagrange strain E, per reference volume Omega) is

    C_ijkl = 1/(2 Omega) * sum_R [phi''(r) - phi'(r)/r] R_i R_j R_k R_l / r^2 .

With zero stress at the reference (the equilibrium lattice constant of the truncated potential,
:func:`equilibrium_lattice_constant`), this is the zero-temperature elastic tensor; a Bravais
lattice has no internal relaxation, so Cauchy–Born is exact for it.  Pair potentials give the
Cauchy relation C12 = C44 for cubic crystals.

Units: lengths nm, energies kJ/mol, stiffness kJ/(mol nm^3) (x ``units.PRESSURE_GPA`` for GPa).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy.optimize import minimize_scalar

from .errors import SetupError

#: Conventional cubic FCC basis in units of the lattice constant.
FCC_BASIS = np.array([[0.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.5, 0.0, 0.5], [0.0, 0.5, 0.5]])


def fcc(a: float, reps: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Positions ``(4*nx*ny*nz, 3)`` nm and box ``(3, 3)`` nm (rows = box vectors) of an FCC crystal."""
    if a <= 0 or any(int(r) < 1 for r in reps):
        raise SetupError(f"fcc needs a > 0 and repetitions >= 1, got a={a}, reps={reps}",
                         fix="pass a positive lattice constant in nm and positive integer repetitions")
    nx, ny, nz = (int(r) for r in reps)
    cells = np.stack(np.meshgrid(np.arange(nx), np.arange(ny), np.arange(nz), indexing="ij"), -1).reshape(-1, 1, 3)
    pos = (cells + FCC_BASIS[None]).reshape(-1, 3) * a
    return pos, np.diag([nx * a, ny * a, nz * a]).astype(float)


def lattice_vectors(basis: np.ndarray, a: float, cutoff: float) -> np.ndarray:
    """All lattice vectors ``R != 0`` with ``|R| < cutoff`` for a cubic cell with ``basis`` (fractions)."""
    n = int(np.ceil(cutoff / a)) + 1
    rng = np.arange(-n, n + 1)
    cells = np.stack(np.meshgrid(rng, rng, rng, indexing="ij"), -1).reshape(-1, 1, 3)
    R = ((cells + basis[None]).reshape(-1, 3)) * a
    r = np.linalg.norm(R, axis=1)
    return R[(r > 1e-12 * a) & (r < cutoff)]


@dataclass(frozen=True)
class PairPotential:
    """A pair potential with its first two derivatives (r in nm, energy kJ/mol), cut at ``cutoff``."""

    phi: Callable[[np.ndarray], np.ndarray]
    dphi: Callable[[np.ndarray], np.ndarray]
    d2phi: Callable[[np.ndarray], np.ndarray]
    cutoff: float

    @classmethod
    def lennard_jones(cls, sigma: float, epsilon: float, cutoff: float) -> "PairPotential":
        """Truncated (not shifted) 12-6 Lennard-Jones: 4 eps [(s/r)^12 - (s/r)^6] for r < cutoff."""
        if sigma <= 0 or epsilon <= 0 or cutoff <= 0:
            raise SetupError("Lennard-Jones needs sigma, epsilon and cutoff > 0",
                             fix="give sigma (nm), epsilon (kJ/mol) and cutoff (nm) as positive numbers")

        def phi(r):
            x6 = (sigma / r) ** 6
            return 4 * epsilon * (x6 * x6 - x6)

        def dphi(r):
            x6 = (sigma / r) ** 6
            return 4 * epsilon * (-12 * x6 * x6 + 6 * x6) / r

        def d2phi(r):
            x6 = (sigma / r) ** 6
            return 4 * epsilon * (156 * x6 * x6 - 42 * x6) / r ** 2

        return cls(phi, dphi, d2phi, float(cutoff))


def energy_per_atom(pot: PairPotential, a: float, basis: np.ndarray = FCC_BASIS) -> float:
    """Lattice-sum energy per atom (kJ/mol) of the perfect crystal with lattice constant ``a``."""
    r = np.linalg.norm(lattice_vectors(basis, a, pot.cutoff), axis=1)
    return 0.5 * float(np.sum(pot.phi(r)))


def equilibrium_lattice_constant(pot: PairPotential, a_guess: float,
                                 basis: np.ndarray = FCC_BASIS) -> float:
    """Lattice constant (nm) minimising the lattice-sum energy near ``a_guess``.

    The truncated potential makes W(a) piecewise smooth; the search bracket is +-10 % of the
    guess, and the result is refused if a neighbour shell sits within 1 % of the cutoff (the
    energy would then jump under the strains used to measure elastic constants).
    """
    res = minimize_scalar(lambda a: energy_per_atom(pot, a, basis), bounds=(0.9 * a_guess, 1.1 * a_guess),
                          method="bounded", options={"xatol": 1e-14 * a_guess})
    a = float(res.x)
    check_cutoff_gap(pot.cutoff, a, basis)
    return a


def check_cutoff_gap(cutoff: float, a: float, basis: np.ndarray = FCC_BASIS, gap: float = 0.01) -> None:
    """Refuse a cutoff within ``gap`` (relative) of a neighbour shell."""
    r = np.linalg.norm(lattice_vectors(basis, a, cutoff * (1 + 2 * gap)), axis=1)
    near = r[np.abs(r - cutoff) < gap * cutoff]
    if near.size:
        raise SetupError(f"cutoff {cutoff:.5g} nm is within {gap:.0%} of a neighbour shell at {near[0]:.5g} nm",
                         fix="move the cutoff between two neighbour shells")


def cauchy_born_tensor(pot: PairPotential, a: float, basis: np.ndarray = FCC_BASIS) -> np.ndarray:
    """Elastic tensor ``(3, 3, 3, 3)`` kJ/(mol nm^3) from the lattice sum (see module docstring)."""
    R = lattice_vectors(basis, a, pot.cutoff)
    r = np.linalg.norm(R, axis=1)
    omega = a ** 3 / len(basis)
    w = (pot.d2phi(r) - pot.dphi(r) / r) / r ** 2
    return np.einsum("n,ni,nj,nk,nl->ijkl", w, R, R, R, R) / (2 * omega)


def cubic_constants(C: np.ndarray) -> dict[str, float]:
    """C11, C12, C44 of a cubic tensor ``(3,3,3,3)``."""
    return {"C11": float(C[0, 0, 0, 0]), "C12": float(C[0, 0, 1, 1]), "C44": float(C[0, 1, 0, 1])}
