r"""An atomistic representative volume element (RVE): a periodic crystal as an FE²/HMM micro model.

:class:`CrystalRVE` speaks the preCICE Micro Manager contract of
:class:`bridge.protocols.MicroModel`: the macro model hands it a strain at a quadrature point
and gets back the stress and the consistent tangent, computed by a particle engine holding a
periodic crystal.  The engine is duck-typed (the core imports none); it must offer

- ``get_box()`` / ``set_box(box)``: ``(3, 3)`` nm, rows are the box vectors, lower triangular
  (OpenMM's reduced form);
- ``get_positions()`` / ``set_positions(x)``: ``(n, 3)`` nm;
- ``get_potential_energy()``: kJ/mol;
- at finite temperature also ``step(n)``, ``get_velocities()`` / ``set_velocities(v)``
  ``(n, 3)`` nm/ps, ``masses`` ``(n,)`` amu (property or method) and
  ``set_velocities_to_temperature(T, seed)``.

**Strain.**  ``macro_data["strain"]`` is the Green–Lagrange strain :math:`E` in Voigt notation
with engineering shear: ``(6,)`` = :math:`(E_{11}, E_{22}, E_{33}, 2E_{23}, 2E_{13}, 2E_{12})`
for ``dim=3``, or plane strain ``(3,)`` = :math:`(E_{11}, E_{22}, 2E_{12})` with
:math:`E_{33} = E_{13} = E_{23} = 0` for ``dim=2``.  It is applied as the rotation-free
deformation

.. math::  F = U = \sqrt{I + 2E} \quad (\text{symmetric eigen-decomposition, } U^T U = I + 2E)

to the reference box and to the reference positions (Cauchy–Born).  Because the energy is
invariant under rotations, the engine receives :math:`Q^T U` with the rotation :math:`Q` (a QR
decomposition) that brings the deformed box back to lower-triangular form; the box vectors are
then reduced by lattice translations, which leave a periodic crystal unchanged.  A Bravais
lattice (one atom per primitive cell, e.g. FCC) needs no internal relaxation, so the affine map
is its exact equilibrium.  A lattice with a basis (diamond, HCP, ionic crystals) must relax its
sublattices after the affine map: pass ``relax`` (e.g. ``lambda eng: eng.minimize(1e-6)``),
called after every affine placement; the finite differences then see the relaxed energy, whose
accuracy is limited by the minimiser's tolerance.

**Zero temperature** (``temperature=0``).  With :math:`W(E)` the engine's potential energy
(kJ/mol) of the deformed crystal and :math:`V_0` the reference box volume (nm³),

.. math::

    S_I = \frac{1}{V_0}\frac{\partial W}{\partial E_I},\qquad
    C_{IJ} = \frac{1}{V_0}\frac{\partial^2 W}{\partial E_I\,\partial E_J},\qquad
    w = \frac{W(E) - W(0)}{V_0},

the second Piola–Kirchhoff stress, its tangent and the strain-energy density, all in GPa
(``units.PRESSURE_GPA``).  With engineering shear, :math:`S \cdot \mathrm{d}E = \mathrm{d}W/V_0`.
The derivatives are central differences in the Voigt components with steps ``h`` and ``2h``
and Richardson extrapolation (truncation :math:`O(h^4)`):

.. math::

    S_I &\approx \frac{8[W(+h) - W(-h)] - [W(+2h) - W(-2h)]}{12 h V_0},\\
    C_{II} &\approx \tfrac{4}{3} D_{II}(h) - \tfrac{1}{3} D_{II}(2h),\quad
    D_{II}(h) = \frac{W(+h) + W(-h) - 2W(0)}{h^2 V_0},\\
    C_{IJ} &\approx \tfrac{4}{3} D_{IJ}(h) - \tfrac{1}{3} D_{IJ}(2h),\quad
    D_{IJ}(h) = \frac{W(+h,+h) - W(+h,-h) - W(-h,+h) + W(-h,-h)}{4 h^2 V_0}.

A 3-D solve costs :math:`1 + 4\cdot 6 + 8\cdot 15 = 145` energies, a plane-strain one 29.
Error budget, measured for argon FCC Lennard-Jones (256 atoms, cutoff 2.55 sigma, OpenMM
Reference platform in double precision; ``validation/crystal_rve_case.py``), as the largest
tangent error against the lattice sums relative to C11, at zero strain and at two 1 % strains:
the energy sums carry a relative round-off of about 1e-13, which the second differences amplify
as :math:`1/h^2`, and the :math:`O(h^4)` truncation takes over above ``h`` ~ 1.5e-3:

=========  ========  ========  ========  ========  ========  ========
h          2.5e-4    5e-4      1e-3      2e-3      4e-3      8e-3
error      4.6e-7    9.5e-8    2.5e-8    2.8e-8    4.5e-7    7.2e-6
=========  ========  ========  ========  ========  ========  ========

The default ``h = 1e-3`` sits at the minimum; the stress error there is 5e-11 of C11.
The stencil spans strains ``E +- 2h``: a truncated (unshifted) potential makes :math:`W` jump
where a neighbour crosses the cutoff, and a crossing inside the stencil spoils stress and
tangent there (for the FCC crystal of the unit tests at an engineering shear of 0.3, an
error of 0.45 GPa).  Such a strain is detected (the second-order stresses from ``h`` and ``2h``
disagree) and logged as a warning; a shifted or switched potential removes the jump.
The engine is put back at its reference box and positions after every zero-temperature solve,
so solves are independent of each other and of their order.

**Finite temperature** (``temperature > 0`` K).  The engine must carry a thermostat (e.g.
OpenMM's Langevin integrator; an OpenMM engine without one, or with a barostat, is refused).
A solve maps the crystal affinely into the deformed box (the previous solve's last frame,
mapped by the strain increment, or at first the perfect lattice with velocities drawn at
``temperature``), runs ``equilibration`` steps, then ``n_samples`` frames ``sample_interval``
steps apart.  In each frame the Cauchy stress of the current (rotated) box of volume :math:`V` is

.. math::

    \sigma_{ij} = \frac{1}{V}\Big[\frac{\partial U}{\partial H_{ij}}\Big|_{H=0}
                  - \sum_a m_a v_{a,i} v_{a,j}\Big],

where :math:`U(H)` is the potential energy after the affine map :math:`x \to (I + H)x` of box
and positions (:math:`H_{ij}` with :math:`i \le j`, so the box stays lower triangular); masses
amu, velocities nm/ps, so :math:`m v^2` is in kJ/mol.  The derivative is the median of the four
one-sided slopes of :math:`U` at :math:`H_{ij} = -2s, -s, 0, s, 2s` (``s = virial_step``,
default 1e-7): for a smooth energy that is the central difference at ``s`` (measured for 108
argon atoms at 10 K: within 4e-9 GPa of a Richardson difference), and it ignores a pair that
crosses a truncated potential's cutoff inside the stencil.  Such a crossing makes :math:`U`
jump, and a plain central difference turns the jump into a spike of 0.1 to 1 GPa (measured: in
0.8 % of the frames per component with ``s = 1e-5``, cutoff 2.25 sigma).  The stress is
therefore the conventional virial of the smooth part of the potential, as MD codes report it;
the impulsive contribution of the jump at the cutoff is left out, as it is from the
zero-temperature lattice sums.  Each frame's :math:`\sigma` is pulled back to the second
Piola–Kirchhoff stress :math:`S = J F^{-1}\sigma F^{-T}` of the engine's deformation
:math:`F = Q^T U` (:math:`J = \det F`), so the macro model sees one stress measure at every
temperature.  ``"stress"`` is the mean over the frames and ``"stress_error"`` its
Flyvbjerg–Petersen blocking error (:func:`bridge.averaging.block_average`).  Note that the
stress at zero strain is not zero: at the zero-temperature lattice constant the thermal motion
pushes outward (a positive pressure, a negative diagonal stress).

The finite-temperature ``"tangent"`` is **not** a thermal average: it is the zero-temperature
Cauchy–Born tangent at the same strain (perfect lattice, finite differences as above), and
``"energy_density"`` is likewise the zero-temperature strain energy (not a free energy).  The
tangent leaves out the thermal softening of the elastic constants (which grows with
temperature towards melting) and the fluctuation term of the isothermal stiffness; it serves a
macro Newton iteration as a symmetric, positive-definite approximate Jacobian, whose converged
answer is set by the stress alone.

**State** (:meth:`CrystalRVE.get_state`): a flat dict of numpy arrays -- the last strain and
results and, at finite temperature, the box, positions, velocities and deformation gradient
of the last frame.  A
restored finite-temperature run continues statistically, not bitwise (the thermostat's random
stream is the engine's own).  ``dt`` of :meth:`CrystalRVE.solve` is accepted and ignored: the
RVE is quasi-static; its sampling length is ``n_samples * sample_interval`` engine steps.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np

from . import units
from .averaging import block_average
from .errors import CalculationError, SetupError, UsageError
from .lattice import FCC_BASIS, PairPotential, lattice_vectors
from .log import get_logger

_log = get_logger("crystal_rve")

#: For a smooth energy the second-order central differences of the stress with steps h and 2h
#: differ by ~ (third derivative) h^2 / 2: measured ~6 h^2 C11 for Lennard-Jones argon at small
#: strains.  A pair crossing the cutoff of a truncated potential inside the stencil makes them
#: differ by its energy jump / (h V0) instead.  Above this multiple of h^2 times the largest
#: diagonal stiffness (1e-4 of C11 at h = 1e-3) a warning is logged.
_FD_SMOOTHNESS = 100.0

__all__ = ["CrystalRVE", "VOIGT_2D", "VOIGT_3D", "voigt_to_tensor", "voigt_stiffness", "stretch_tensor",
           "cauchy_born_response"]

#: Voigt index pairs (tensor components) of the 3-D and plane-strain orderings.
VOIGT_3D = ((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))
VOIGT_2D = ((0, 0), (1, 1), (0, 1))


def _pairs(dim: int) -> tuple[tuple[int, int], ...]:
    if dim not in (2, 3):
        raise SetupError(f"dim must be 2 (plane strain) or 3, got {dim!r}",
                         fix="pass dim=2 for (E11, E22, 2E12) or dim=3 for the 6-component Voigt strain")
    return VOIGT_2D if dim == 2 else VOIGT_3D


def voigt_to_tensor(strain: np.ndarray, dim: int = 3) -> np.ndarray:
    """Green–Lagrange strain tensor ``(3, 3)`` from Voigt ``(3,)`` (``dim=2``) or ``(6,)`` (``dim=3``).

    Shear entries are engineering shears (``2 E_ij``); the plane-strain out-of-plane components
    are zero.
    """
    pairs = _pairs(dim)
    e = np.asarray(strain, float)
    E = np.zeros((3, 3))
    for v, (i, j) in zip(e, pairs):
        if i == j:
            E[i, i] = v
        else:
            E[i, j] = E[j, i] = 0.5 * v
    return E


def voigt_stiffness(C: np.ndarray, dim: int = 3) -> np.ndarray:
    """Voigt matrix ``(6, 6)`` (``dim=3``) or plane-strain ``(3, 3)`` of a tensor ``C`` ``(3, 3, 3, 3)``."""
    pairs = _pairs(dim)
    C = np.asarray(C, float)
    return np.array([[C[i, j, k, l] for (k, l) in pairs] for (i, j) in pairs])


def stretch_tensor(E: np.ndarray) -> np.ndarray:
    """The right stretch ``U = sqrt(I + 2E)`` ``(3, 3)`` of a symmetric Green–Lagrange strain ``E``.

    Raises :class:`SetupError` when ``I + 2E`` is not positive definite (no deformation has
    that strain).
    """
    E = np.asarray(E, float)
    Cg = np.eye(3) + 2.0 * 0.5 * (E + E.T)
    lam, vec = np.linalg.eigh(Cg)
    if lam.min() <= 0.0:
        raise SetupError(f"I + 2E is not positive definite (eigenvalues {lam}); no deformation has this strain",
                         fix="pass a Green–Lagrange strain with every principal value > -1/2")
    return (vec * np.sqrt(lam)) @ vec.T


def cauchy_born_response(pot: PairPotential, a: float, strain: np.ndarray, *, dim: int = 3,
                         basis: np.ndarray = FCC_BASIS) -> dict[str, Any]:
    r"""Energy density, stress and tangent of a perfect cubic-cell crystal from lattice sums (GPa).

    The reference of :class:`CrystalRVE` for a Bravais lattice: with :math:`r = |U R| =
    \sqrt{R\cdot(I + 2E)R}`, per atom :math:`W = \tfrac12\sum_R \phi(r)`, and with the
    volume per atom :math:`\Omega = a^3/n_\text{basis}`,

    .. math::

        S_{ij} = \frac{1}{2\Omega}\sum_R \frac{\phi'(r)}{r} R_i R_j,\qquad
        C_{ijkl} = \frac{1}{2\Omega}\sum_R \Big[\phi''(r) - \frac{\phi'(r)}{r}\Big]
                   \frac{R_i R_j R_k R_l}{r^2}.

    ``a``: lattice constant (nm); ``strain``: Voigt Green–Lagrange strain ``(3,)`` or ``(6,)``
    as in :class:`CrystalRVE`.  Returns ``{"energy_density": float, "stress": (k,),
    "tangent": (k, k)}`` in GPa (``k`` = 3 or 6), the energy relative to the undeformed crystal.
    """
    pairs = _pairs(dim)
    e = _finite_vector(strain, len(pairs), "strain")
    E = voigt_to_tensor(e, dim)
    Cg = np.eye(3) + 2.0 * E
    stretch_tensor(E)                     # refuses a strain with no deformation
    lam_min = np.linalg.eigvalsh(Cg).min()
    R = lattice_vectors(basis, a, pot.cutoff / np.sqrt(lam_min) * (1 + 1e-9))
    r = np.sqrt(np.einsum("ni,ij,nj->n", R, Cg, R))
    keep = r < pot.cutoff
    R, r = R[keep], r[keep]
    r0 = np.linalg.norm(lattice_vectors(basis, a, pot.cutoff), axis=1)
    omega = a ** 3 / len(basis)
    g = units.PRESSURE_GPA
    w = 0.5 * (np.sum(pot.phi(r)) - np.sum(pot.phi(r0))) / omega
    S = np.einsum("n,ni,nj->ij", pot.dphi(r) / r, R, R) / (2 * omega)
    k = (pot.d2phi(r) - pot.dphi(r) / r) / r ** 2
    C = np.einsum("n,ni,nj,nk,nl->ijkl", k, R, R, R, R) / (2 * omega)
    return {"energy_density": float(w * g), "stress": np.array([S[i, j] for i, j in pairs]) * g,
            "tangent": voigt_stiffness(C, dim) * g}


def _finite_vector(value: Any, n: int, name: str) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise SetupError(f"{name} must be numeric, got {type(value).__name__}",
                         fix=f"pass {name} as a float array of shape ({n},)") from None
    if arr.shape != (n,):
        raise SetupError(f"{name} has shape {arr.shape}, expected ({n},)",
                         fix=f"pass {name} as Voigt components of shape ({n},): "
                             + ("(E11, E22, 2E12)" if n == 3 else "(E11, E22, E33, 2E23, 2E13, 2E12)"))
    if not np.all(np.isfinite(arr)):
        raise SetupError(f"{name} contains NaN or infinite entries: {arr}",
                         fix=f"check how the macro model computed {name} before passing it on")
    return arr


def _lower_triangular(box: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rotate the box ``(3, 3)`` (rows) to lower-triangular form: returns ``(box @ Q, Q)``."""
    q, r = np.linalg.qr(box.T)
    d = np.sign(np.diag(r))
    d[d == 0] = 1.0
    q = q * d
    low = box @ q
    low[np.triu_indices(3, 1)] = 0.0
    return low, q


def _reduce(box: np.ndarray) -> np.ndarray:
    """Reduce a lower-triangular box by lattice translations (OpenMM's reduced form)."""
    a, b, c = box.copy()
    c = c - b * np.round(c[1] / b[1])
    c = c - a * np.round(c[0] / a[0])
    b = b - a * np.round(b[0] / a[0])
    return np.array([a, b, c])


def _interior_fractions(x: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Fractional coordinates ``(n, 3)`` of ``x`` in ``box``, translated so no atom sits on a face.

    Along each axis the crystal is shifted (a rigid translation, which changes no energy) so that
    the cell faces fall in the middle of the widest gap between atomic planes.  A lattice site on
    a face would land, after the rotation of a sheared box, a round-off (fractional coordinate
    ~ -1e-20) outside the cell, and OpenMM 8.6's Reference platform then returns a wrong energy
    in a triclinic box (measured: -1784 instead of -2069 kJ/mol for 256 argon atoms under 0.1 %
    shear).
    """
    frac = x @ np.linalg.inv(box)
    frac -= np.floor(frac)
    for k in range(3):
        u = np.unique(np.round(frac[:, k], 12) % 1.0)
        gaps = np.diff(np.append(u, u[0] + 1.0))
        m = int(np.argmax(gaps))
        frac[:, k] = (frac[:, k] - (u[m] + 0.5 * gaps[m])) % 1.0
    return frac


def _heights(box: np.ndarray) -> np.ndarray:
    """Distances (nm) between opposite faces of the cell ``box`` ``(3, 3)``."""
    vol = abs(np.linalg.det(box))
    return np.array([vol / np.linalg.norm(np.cross(box[(i + 1) % 3], box[(i + 2) % 3])) for i in range(3)])


class CrystalRVE:
    """A periodic crystal in a particle engine as a micro model (see the module docstring).

    Parameters
    ----------
    engine : duck-typed particle engine holding the crystal at its reference configuration
        (its current box, which must be orthorhombic, and positions are taken as the reference).
    dim : 2 (plane strain, Voigt ``(3,)``) or 3 (Voigt ``(6,)``).
    h : finite-difference step in Green–Lagrange strain (default 1e-3, from the error budget).
    temperature : K; 0 for the Cauchy–Born response, > 0 for thermostatted MD sampling.
    n_samples, sample_interval, equilibration : frames averaged (>= 16 for the blocking error),
        engine steps between frames, engine steps before the first frame, per solve.
    virial_step : step of the affine finite difference of the per-frame virial (strain, 1e-7).
    seed : seed of the initial velocities at finite temperature.
    cutoff : nm, optional: the engine's interaction cutoff; strains that would shrink a box
        height below twice the cutoff are then refused before the engine sees them.
    relax : optional callable ``relax(engine)`` run after every affine placement (a lattice
        with a basis needs its internal relaxation).
    """

    def __init__(self, engine: Any, *, dim: int = 3, h: float = 1e-3, temperature: Any = 0.0,
                 n_samples: int = 64, sample_interval: int = 20, equilibration: int = 1000,
                 virial_step: float = 1e-7, seed: int = 1, cutoff: float | None = None,
                 relax: Callable[[Any], None] | None = None):
        self._pairs = _pairs(dim)
        self.dim = int(dim)
        self.n_voigt = len(self._pairs)
        self.h = float(h)
        if not (np.isfinite(self.h) and 0 < self.h < 0.05):
            raise SetupError(f"finite-difference step h = {h} must lie in (0, 0.05)",
                             fix="keep the default h = 1e-3 unless an error budget says otherwise")
        self.temperature = float(units.to_internal(temperature, name="temperature"))
        if self.temperature < 0:
            raise SetupError(f"temperature must be >= 0 K, got {self.temperature}",
                             fix="pass 0 for the Cauchy–Born response or a positive temperature in K")
        self.n_samples, self.sample_interval = int(n_samples), int(sample_interval)
        self.equilibration, self.seed = int(equilibration), int(seed)
        self.virial_step = float(virial_step)
        if self.temperature > 0:
            if self.n_samples < 16 or self.sample_interval < 1 or self.equilibration < 0:
                raise SetupError(f"finite-temperature sampling needs n_samples >= 16, sample_interval >= 1 and "
                                 f"equilibration >= 0 (got {n_samples}, {sample_interval}, {equilibration})",
                                 fix="sample at least 16 frames so the blocking error bar is defined")
            if not (np.isfinite(self.virial_step) and 0 < self.virial_step < 1e-2):
                raise SetupError(f"virial_step = {virial_step} must lie in (0, 1e-2)",
                                 fix="keep the default 1e-7")
            for name in ("step", "get_velocities", "set_velocities", "set_velocities_to_temperature", "masses"):
                if not hasattr(engine, name):
                    raise SetupError(f"a finite-temperature RVE needs engine.{name}, which "
                                     f"{type(engine).__name__} lacks",
                                     fix="use a particle engine with MD (e.g. OpenMMEngine), or temperature=0")
            _check_thermostat(engine, self.temperature)
        self.cutoff = None if cutoff is None else float(cutoff)
        if relax is not None and not callable(relax):
            raise SetupError("relax must be a callable relax(engine) or None",
                             fix="pass e.g. relax=lambda eng: eng.minimize(1e-6)")
        self.relax = relax
        self.engine = engine
        #: free-form description of the crystal (set by builders such as ``fcc_lj_crystal_rve``)
        self.info: dict[str, Any] = {}

        box = np.asarray(engine.get_box(), float)
        if box.shape != (3, 3) or not np.all(np.isfinite(box)):
            raise SetupError(f"the engine's box must be a finite (3, 3) array, got shape {box.shape}",
                             fix="build a periodic engine; rows of the box are the box vectors in nm")
        diag = np.diag(box)
        if np.any(diag <= 0):
            raise SetupError(f"the reference box has non-positive edge lengths {diag} nm",
                             fix="build the crystal in a periodic box with positive edges")
        if np.any(np.abs(box - np.diag(diag)) > 1e-12 * diag.max()):
            raise SetupError("the reference box must be orthorhombic (a diagonal box matrix)",
                             fix="build the crystal in an orthorhombic cell, e.g. bridge.lattice.fcc")
        pos = np.asarray(engine.get_positions(), float)
        if pos.ndim != 2 or pos.shape[1] != 3 or len(pos) == 0 or not np.all(np.isfinite(pos)):
            raise SetupError(f"the engine's positions must be a finite (n, 3) array, got shape {pos.shape}",
                             fix="give the engine the crystal's positions in nm")
        self.box0 = np.diag(diag)
        self.positions0 = pos.copy()
        self._frac0 = _interior_fractions(pos, self.box0)
        self.volume0 = float(np.prod(diag))
        if self.cutoff is not None and 2 * self.cutoff >= diag.min():
            raise SetupError(f"cutoff {self.cutoff} nm is not below half the smallest box edge "
                             f"({0.5 * diag.min():.4g} nm)", fix="use more unit cells or a shorter cutoff")
        self._initialized = False
        self._energy0 = np.nan
        self._last: dict[str, np.ndarray] = {}
        self._md: dict[str, np.ndarray] | None = None
        self.n_solves = 0

    # -- placement ----------------------------------------------------------------------
    def _deformed_cell(self, F: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For the deformation ``F`` ``(3, 3)``: the engine's box (lower triangular, reduced),
        the unreduced rotated box ``box0 F'^T`` and the engine's deformation ``F' = Q^T F``."""
        low, q = _lower_triangular(self.box0 @ F.T)
        if self.cutoff is not None and 2 * self.cutoff >= _heights(low).min():
            raise SetupError(f"this strain shrinks a box height to {_heights(low).min():.4g} nm, below twice "
                             f"the cutoff {self.cutoff} nm", fix="use more unit cells, or a smaller strain")
        return _reduce(low), low, q.T @ F

    def _place(self, E: np.ndarray) -> None:
        """Put the engine at the affinely deformed reference crystal (strain tensor ``E``)."""
        box, low, _ = self._deformed_cell(stretch_tensor(E))
        self.engine.set_box(box)
        self.engine.set_positions(self._frac0 @ low)
        if self.relax is not None:
            self.relax(self.engine)

    def _energy(self, e: np.ndarray) -> float:
        self._place(voigt_to_tensor(e, self.dim))
        w = float(self.engine.get_potential_energy())
        if not np.isfinite(w):
            raise CalculationError(f"the engine returned a non-finite energy at strain {e}",
                                   fix="check the engine set-up (overlapping atoms, cutoff vs box)")
        return w

    def _restore(self) -> None:
        self.engine.set_box(self.box0)
        self.engine.set_positions(self.positions0)

    # -- the MicroModel contract --------------------------------------------------------
    def initialize(self) -> dict[str, np.ndarray]:
        """Record the reference energy; returns the zero-temperature ``stress`` and ``tangent``
        (GPa) at zero strain, the macro model's initial stiffness."""
        self._restore()
        self._energy0 = float(self.engine.get_potential_energy())
        if not np.isfinite(self._energy0):
            raise SetupError("the engine returned a non-finite reference energy",
                             fix="check the engine set-up (overlapping atoms, cutoff vs box)")
        self._initialized = True
        out = self._cauchy_born(np.zeros(self.n_voigt))
        self._restore()
        return {"stress": out["stress"], "tangent": out["tangent"]}

    def solve(self, macro_data: Mapping[str, Any], dt: float = 0.0) -> dict[str, np.ndarray]:
        """Stress ``(k,)`` GPa, tangent ``(k, k)`` GPa and energy density (GPa) at the given strain.

        ``macro_data["strain"]``: Voigt Green–Lagrange strain ``(k,)`` (``k`` = 3 for ``dim=2``,
        6 for ``dim=3``; engineering shear).  ``dt`` is ignored (quasi-static).  At finite
        temperature the result also has ``stress_error`` ``(k,)`` GPa, ``kinetic_temperature``
        (K) and ``n_samples``.
        """
        if not self._initialized:
            raise UsageError("solve() called before initialize()", fix="call initialize() once first")
        if not isinstance(macro_data, Mapping) or "strain" not in macro_data:
            raise SetupError("macro_data must be a dict with a 'strain' entry",
                             fix='pass {"strain": voigt_strain}')
        e = _finite_vector(macro_data["strain"], self.n_voigt, "strain")
        stretch_tensor(voigt_to_tensor(e, self.dim))
        try:
            cb = self._cauchy_born(e)
        finally:
            if self._md is None:
                self._restore()
        if self.temperature > 0:
            out = self._sample(e)
            out["tangent"] = cb["tangent"]
            out["energy_density"] = cb["energy_density"]
        else:
            out = cb
        out = {k: np.array(v, dtype=float) for k, v in out.items()}
        self._last = {"strain": e.copy(), **{k: v.copy() for k, v in out.items()}}
        self.n_solves += 1
        return out

    def _cauchy_born(self, e: np.ndarray) -> dict[str, np.ndarray]:
        """Zero-temperature energy density, stress and tangent by Richardson finite differences."""
        md = None
        if self._md is not None:                         # keep the MD frame aside
            md = (self.engine.get_box(), self.engine.get_positions())
        h, k = self.h, self.n_voigt
        cache: dict[tuple, float] = {}

        def W(*steps: tuple[int, float]) -> float:
            de = np.zeros(k)
            for i, s in steps:
                de[i] += s
            key = tuple(np.round(de / h).astype(int))
            if key not in cache:
                cache[key] = self._energy(e + de)
            return cache[key]

        try:
            w0 = W()
            S = np.empty(k)
            S_gap = np.empty(k)           # second-order stress estimates from h and 2h: their difference
            C = np.empty((k, k))
            for i in range(k):
                p1, m1, p2, m2 = W((i, h)), W((i, -h)), W((i, 2 * h)), W((i, -2 * h))
                S[i] = (8 * (p1 - m1) - (p2 - m2)) / (12 * h)
                S_gap[i] = (p1 - m1) / (2 * h) - (p2 - m2) / (4 * h)
                d1 = (p1 + m1 - 2 * w0) / h ** 2
                d2 = (p2 + m2 - 2 * w0) / (2 * h) ** 2
                C[i, i] = (4 * d1 - d2) / 3
            for i in range(k):
                for j in range(i + 1, k):
                    def mixed(s):
                        return (W((i, s), (j, s)) - W((i, s), (j, -s)) - W((i, -s), (j, s))
                                + W((i, -s), (j, -s))) / (4 * s * s)
                    C[i, j] = C[j, i] = (4 * mixed(h) - mixed(2 * h)) / 3
        finally:
            if md is not None:
                self.engine.set_box(md[0])
                self.engine.set_positions(md[1])
        g = units.PRESSURE_GPA / self.volume0
        scale = np.abs(np.diag(C)).max()
        if np.abs(S_gap).max() > _FD_SMOOTHNESS * h * h * scale:
            _log.warning("strain %s: the stress from steps h and 2h differs by %.3g GPa (%.2g of the largest "
                         "diagonal stiffness): a neighbour crosses the potential's cutoff within the "
                         "finite-difference stencil, so stress and tangent there are not derivatives of a "
                         "smooth energy; use a shifted or switched potential, or a smaller h",
                         np.array2string(e, precision=4), np.abs(S_gap).max() * g,
                         np.abs(S_gap).max() / scale)
        return {"stress": S * g, "tangent": C * g, "energy_density": np.array((w0 - self._energy0) * g)}

    # -- finite temperature -----------------------------------------------------------
    def _masses(self) -> np.ndarray:
        m = self.engine.masses
        m = np.asarray(m() if callable(m) else m, float)
        if m.shape != (len(self.positions0),) or np.any(m <= 0):
            raise SetupError(f"engine masses must be ({len(self.positions0)},) positive amu",
                             fix="check the engine's masses")
        return m

    def _sample(self, e: np.ndarray) -> dict[str, np.ndarray]:
        eng = self.engine
        F = stretch_tensor(voigt_to_tensor(e, self.dim))
        box, low, Fp = self._deformed_cell(F)
        if self._md is None:
            eng.set_box(box)
            eng.set_positions(self._frac0 @ low)
            if self.relax is not None:
                self.relax(eng)
            eng.set_velocities_to_temperature(self.temperature, self.seed)
        else:                                            # the last frame, mapped by the strain increment
            increment = Fp @ np.linalg.inv(self._md["deformation"])
            eng.set_box(box)
            eng.set_positions(self._md["positions"] @ increment.T)
            eng.set_velocities(self._md["velocities"])
        eng.step(self.equilibration)
        m = self._masses()
        Finv = np.linalg.inv(Fp)
        J = float(np.linalg.det(Fp))
        comps = self._pairs
        hv = self.virial_step
        need = sorted({(min(i, j), max(i, j)) for i, j in comps})
        S_series, T_series = [], []
        dof = 3 * len(m)
        for _ in range(self.n_samples):
            eng.step(self.sample_interval)
            x = np.asarray(eng.get_positions(), float)
            v = np.asarray(eng.get_velocities(), float)
            b = np.asarray(eng.get_box(), float)
            vol = abs(float(np.linalg.det(b)))
            dU = {}
            u0 = float(eng.get_potential_energy())
            for i, j in need:
                vals = {0: u0}
                for k in (-2, -1, 1, 2):
                    G = np.eye(3)
                    G[i, j] += k * hv
                    eng.set_box(b @ G.T)
                    eng.set_positions(x @ G.T)
                    vals[k] = float(eng.get_potential_energy())
                slopes = np.diff([vals[k] for k in (-2, -1, 0, 1, 2)]) / hv
                dU[(i, j)] = float(np.median(slopes))
            eng.set_box(b)
            eng.set_positions(x)
            kin = np.einsum("n,ni,nj->ij", m, v, v)
            sigma = np.zeros((3, 3))
            for (i, j), val in dU.items():
                sigma[i, j] = sigma[j, i] = val
            sigma = (sigma - kin) / vol
            if not np.all(np.isfinite(sigma)):
                raise CalculationError("the MD stress is not finite", reason="the crystal blew up",
                                       fix="reduce the time step or the temperature")
            S = J * Finv @ sigma @ Finv.T * units.PRESSURE_GPA
            S_series.append([S[i, j] for i, j in comps])
            T_series.append(np.trace(kin) / (dof * units.KB))
        self._md = {"box": np.asarray(eng.get_box(), float), "positions": np.asarray(eng.get_positions(), float),
                    "velocities": np.asarray(eng.get_velocities(), float), "deformation": Fp.copy()}
        series = np.array(S_series)
        stats = [block_average(series[:, c]) for c in range(series.shape[1])]
        return {"stress": np.array([s[0] for s in stats]), "stress_error": np.array([s[1] for s in stats]),
                "kinetic_temperature": np.array(np.mean(T_series)),
                "n_samples": np.array(float(self.n_samples))}

    # -- state --------------------------------------------------------------------------
    def get_state(self) -> dict[str, np.ndarray]:
        """The last strain and results and, at finite temperature, the MD frame (numpy arrays only)."""
        state = {"dim": np.array(self.dim), "temperature": np.array(self.temperature),
                 "n_solves": np.array(self.n_solves), "energy0": np.array(self._energy0)}
        state.update({f"last_{k}": v.copy() for k, v in self._last.items()})
        if self._md is not None:
            state.update({f"md_{k}": v.copy() for k, v in self._md.items()})
        return state

    def set_state(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`get_state` output (from this or an identically built RVE)."""
        if not isinstance(state, Mapping) or "dim" not in state or "temperature" not in state:
            raise SetupError("state must be the dict returned by CrystalRVE.get_state()",
                             fix="pass the dict returned by get_state()")
        dim, temperature = int(np.asarray(state["dim"])), float(np.asarray(state["temperature"]))
        if dim != self.dim or temperature != self.temperature:
            raise SetupError(f"state is of a dim={dim}, T={temperature} K RVE, this one is dim={self.dim}, "
                             f"T={self.temperature} K", fix="restore into an RVE built with the same options")
        n = len(self.positions0)
        md = {k[3:]: np.array(v, dtype=float) for k, v in state.items() if k.startswith("md_")}
        if md:
            shapes = {"box": (3, 3), "positions": (n, 3), "velocities": (n, 3), "deformation": (3, 3)}
            if set(md) != set(shapes) or any(md[k].shape != s for k, s in shapes.items()):
                raise SetupError("the state's MD frame does not match this RVE's crystal",
                                 fix="restore into an RVE built on the same crystal")
        self._last = {k[5:]: np.array(v, dtype=float) for k, v in state.items() if k.startswith("last_")}
        self._md = md or None
        self.n_solves = int(np.asarray(state.get("n_solves", 0)))
        e0 = float(np.asarray(state.get("energy0", np.nan)))
        if np.isfinite(e0):
            self._energy0 = e0
            self._initialized = True
        if self._md is not None:
            self.engine.set_box(self._md["box"])
            self.engine.set_positions(self._md["positions"])
            self.engine.set_velocities(self._md["velocities"])


def _check_thermostat(engine: Any, temperature: float) -> None:
    """Refuse an OpenMM-like engine without a thermostat at ``temperature`` or with a barostat."""
    system = getattr(engine, "system", None)
    forces = list(system.getForces()) if hasattr(system, "getForces") else []
    if any(hasattr(f, "getDefaultPressure") for f in forces):
        raise SetupError("the engine's system has a barostat: the box would not stay at the imposed strain",
                         fix="remove the barostat; the RVE controls the box")
    integrator = getattr(engine, "integrator", None)
    if integrator is None:
        return                                          # cannot tell: trust the engine
    andersen = [f for f in forces if hasattr(f, "getDefaultCollisionFrequency")]
    if hasattr(integrator, "getTemperature"):
        t_int = float(units.to_internal(integrator.getTemperature(), name="integrator temperature"))
    elif andersen:
        t_int = float(units.to_internal(andersen[0].getDefaultTemperature(), name="thermostat temperature"))
    else:
        raise SetupError(f"the engine's integrator {type(integrator).__name__} has no thermostat",
                         fix=f"build the engine with temperature={temperature} (a Langevin integrator)")
    if abs(t_int - temperature) > 1e-6 * temperature:
        raise SetupError(f"the engine's thermostat is at {t_int} K, the RVE at {temperature} K",
                         fix="build the engine and the RVE with the same temperature")
