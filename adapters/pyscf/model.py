r"""QM region energy and forces from PySCF, with electrostatic embedding in MM charges.

Physics.  For QM nuclei :math:`A` (charge :math:`Z_A`, position :math:`R_A`) and MM charges
:math:`J` (charge :math:`q_J`, centre :math:`r_J`) the energy returned is

.. math::

    E(R, r, q) = E_\mathrm{el}[P;\, h + V_\mathrm{MM}]
                 + \sum_{A<B} \frac{Z_A Z_B}{|R_A - R_B|}
                 + \sum_{A} \sum_{J} Z_A q_J\, g(|R_A - r_J|),
    \qquad V_\mathrm{MM}(x) = -\sum_J q_J\, \langle g \rangle_J(x),

the SCF (HF or KS) energy of the electrons in the field of the charges, the QM nuclear
repulsion and the QM-nuclei/MM-charge Coulomb energy.  It does **not** include the MM-MM
Coulomb energy, van der Waals or bonded QM-MM terms: those belong to the MM engine or the
coupling method.

MM charge model (option ``charge_width``).  ``None`` (default): point charges,
:math:`g(d) = 1/d`, and the electrons feel :math:`-q_J/|x - r_J|`.  A width
:math:`\sigma > 0` (nm) makes every MM charge a normalised spherical Gaussian

.. math::

    \rho_J(x) = q_J\, (2\pi\sigma^2)^{-3/2} \exp\!\big(-|x - r_J|^2 / 2\sigma^2\big)
              = q_J\, (\pi R^2)^{-3/2} \exp\!\big(-|x - r_J|^2 / R^2\big),
    \qquad R = \sqrt{2}\,\sigma,

(:math:`\sigma` the standard deviation along each axis, :math:`R` PySCF's "radius",
``pyscf.qmmm.add_mm_charges(..., radii=R)``, exponent :math:`\zeta = 1/R^2`), whose potential
is :math:`q_J\, g(d)` with :math:`g(d) = \operatorname{erf}(d / \sqrt{2}\sigma) / d`.  The
nuclei stay point charges (:math:`Z_A q_J \operatorname{erf}(d/R)/d`), and the electrons
interact with the full Gaussian (exact three-centre Coulomb integrals ``int3c2e``).

Derivatives, all exact at the converged SCF solution (Hellmann-Feynman; the DFT grid
response is included for KS forces):

- ``forces`` :math:`F_A = -\partial E / \partial R_A` on the QM atoms;
- ``charge_forces`` :math:`f_J = -\partial E / \partial r_J` on the MM charge centres;
- ``charge_potential`` :math:`\phi_J = \partial E / \partial q_J = \sum_A Z_A\, g(|R_A - r_J|)
  - \sum_{pq} P_{pq} \langle p | g_J | q \rangle`, the electrostatic potential of the QM
  region (nuclei plus electron density) at charge :math:`J` -- for Gaussian charges the
  potential averaged over the Gaussian.  Because :math:`E` is variational in the density,
  the derivative at fixed density equals the total derivative, so :math:`\phi_J` is what a
  coupling method needs to differentiate a charge that is switched or scaled with distance.

The total force is translation invariant, :math:`\sum_A F_A + \sum_J f_J = 0` (up to the DFT
grid).

SCF recovery (option ``recovery``, default on).  When the plain SCF (DIIS) does not converge
in ``max_cycle`` cycles, it is retried, each retry with ``max_cycle`` cycles again and
starting from the last density of the attempt before (the previous start if that density is
not finite), in this order:

1. ``level_shift``: virtual orbitals shifted up by :data:`RECOVERY_LEVEL_SHIFT` = 0.3 hartree;
2. ``damping``: Fock damping :data:`RECOVERY_DAMP` = 0.5, DIIS started only at cycle
   :data:`RECOVERY_DIIS_START` = 8;
3. ``newton``: second-order SCF (``mf.newton()``, co-iterative augmented Hessian).

Level shift and damping change the path, not the solution: PySCF's convergence test uses the
unshifted, undamped Fock matrix, so a converged retry is the same SCF solution.  Every attempt
is recorded (``PySCFModel.last_recovery``); when all fail, :class:`CalculationError` carries
them in ``.state["attempts"]``.

Initial guess (options ``reuse_density``, ``guess``).  A cold start uses ``init_guess``.
With ``reuse_density`` (default) the next SCF starts from the previous converged density
(``guess="previous"``), or, with ``guess="extrapolate"`` for molecular dynamics, from the
quadratic extrapolation of the last three converged densities in Loewdin-orthogonalised form,

.. math::

    \tilde P_k = S_k^{1/2} P_k S_k^{1/2}, \qquad
    \tilde P_{n+1} = 3\tilde P_n - 3\tilde P_{n-1} + \tilde P_{n-2}, \qquad
    P^{(0)}_{n+1} = S_{n+1}^{-1/2}\, \tilde P_{n+1}\, S_{n+1}^{-1/2},

(:math:`S_k` the AO overlap at geometry :math:`k`), exact for a density quadratic in time and
keeping the electron count (the coefficients sum to 1).  It assumes equally spaced calls
along a smooth path (MD steps); it is only a start, the SCF converges as tightly as ever.  A
call at the same QM geometry as the last one replaces the last stored density instead of
adding one; with fewer than three stored densities the previous density is used.

Units.  Inputs and outputs in bridge units: positions nm, charges e, energy kJ/mol, forces
kJ/(mol nm), potential kJ/(mol e), ``charge_width`` nm.  PySCF works in bohr and hartree;
molecules are built with ``unit="Bohr"`` from nm / :data:`bridge.units.BOHR`, so the bridge's
CODATA constant (not PySCF's own) is the single nm <-> bohr conversion.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from bridge.errors import CalculationError, EngineNotAvailable, SetupError
from bridge.options import check_options, check_properties
from bridge.units import BOHR, HARTREE, HARTREE_PER_BOHR, ANGSTROM, finite_array, to_internal

__all__ = ["PySCFModel", "build_mol", "make_scf", "run_scf", "run_scf_with_recovery",
           "gradients", "charge_potential", "extrapolate_density", "RECOVERY_STEPS"]

_METHODS = ("RHF", "UHF", "RKS", "UKS")
_PROPERTIES = ("energy", "forces", "charge_forces", "charge_potential")
_GUESSES = ("minao", "atom", "huckel", "mod_huckel", "hcore", "1e", "sap", "vsap")
_WARM_GUESSES = ("previous", "extrapolate")
_OPTIONS = ("method", "xc", "basis", "charge", "spin", "conv_tol", "conv_tol_grad",
            "max_cycle", "grid_level", "grid_response", "init_guess", "reuse_density",
            "guess", "charge_width", "recovery", "max_memory", "threads", "verbose")

#: level shift of the virtual orbitals in the first retry, hartree
RECOVERY_LEVEL_SHIFT = 0.3
#: Fock damping factor in the second retry (new Fock = (1 - d) F + d F_last)
RECOVERY_DAMP = 0.5
#: SCF cycle at which DIIS starts in the second retry (damping acts before it)
RECOVERY_DIIS_START = 8


def _retries() -> tuple[tuple[str, dict[str, Any]], ...]:
    """The recovery chain: (step name, SCF attributes set for that attempt), in order."""
    return (("level_shift", {"level_shift": RECOVERY_LEVEL_SHIFT}),
            ("damping", {"damp": RECOVERY_DAMP, "diis_start_cycle": RECOVERY_DIIS_START}),
            ("newton", {}))


#: SCF recovery steps, in the order tried after a plain SCF fails (see the module docstring).
RECOVERY_STEPS = tuple(step for step, _ in _retries())
#: MM charges per block of AO integrals (bounds memory to ~block * nao^2 * 8 bytes)
_CHARGE_BLOCK = 200


def _pyscf():
    """Import PySCF's modules, or raise :class:`EngineNotAvailable` naming the extra."""
    try:
        from pyscf import dft, gto, qmmm, scf
    except ImportError as exc:
        raise EngineNotAvailable("pyscf", "pyscf", reason=str(exc)) from exc
    return gto, scf, dft, qmmm


# --- functional core, atomic units --------------------------------------------------------

def build_mol(symbols: Sequence[str], positions_bohr: np.ndarray, *, basis: Any = "sto-3g",
              charge: int = 0, spin: int = 0, max_memory: float | None = None,
              verbose: int = 0):
    """Build a PySCF ``Mole``.

    Args:
      symbols: ``(n,)`` element symbols (PySCF spelling, e.g. ``"O"``, ``"ghost-H"``).
      positions_bohr: ``(n, 3)`` float, bohr.
      basis: a PySCF basis name, or a mapping element -> basis.
      charge: net charge of the QM region, e.
      spin: ``2S = n_alpha - n_beta``.

    Returns:
      a built ``pyscf.gto.Mole`` with ``unit="Bohr"``.

    Raises:
      SetupError: PySCF refused the molecule (unknown element or basis, or a spin that
        does not match the number of electrons).
    """
    gto = _pyscf()[0]
    atom = [(str(s), tuple(float(c) for c in xyz)) for s, xyz in zip(symbols, positions_bohr)]
    mol = gto.Mole()
    mol.atom = atom
    mol.unit = "Bohr"
    mol.basis = basis
    mol.charge = int(charge)
    mol.spin = int(spin)
    mol.verbose = int(verbose)
    if max_memory is not None:
        mol.max_memory = float(max_memory)
    try:
        mol.build(dump_input=False, parse_arg=False)
    except (RuntimeError, KeyError, ValueError) as exc:
        raise SetupError(f"PySCF cannot build the QM molecule: {exc}",
                         fix="check the element symbols, the basis name, charge and spin "
                             "(spin = n_alpha - n_beta must match the electron count)") from exc
    return mol


def make_scf(mol, *, method: str = "RHF", xc: str | None = None, conv_tol: float = 1e-10,
             conv_tol_grad: float | None = None, max_cycle: int = 100,
             grid_level: int | None = None, init_guess: str = "minao",
             charges: np.ndarray | None = None, charge_positions_bohr: np.ndarray | None = None,
             charge_width_bohr: float | None = None):
    """Create (do not run) a PySCF SCF object, embedded in MM charges if any are given.

    Args:
      mol: a built ``Mole`` (bohr).
      method: ``"RHF"``, ``"UHF"``, ``"RKS"`` or ``"UKS"``.
      xc: exchange-correlation functional for KS methods (PySCF/libxc name).
      charges: ``(m,)`` MM charges, e; ``None`` or ``m = 0`` for no embedding.
      charge_positions_bohr: ``(m, 3)`` positions of the charges, bohr.
      charge_width_bohr: ``None`` for point charges, or the Gaussian width sigma, bohr
        (density ``q (2 pi sigma^2)^(-3/2) exp(-r^2 / 2 sigma^2)``; PySCF radius
        ``R = sqrt(2) sigma``).

    Returns:
      the SCF object; with charges, a ``pyscf.qmmm`` QM/MM object whose energy includes
      the electron-charge and nucleus-charge interactions (see the module docstring).
    """
    gto, scf, dft, qmmm = _pyscf()
    if method == "RHF":
        mf = scf.RHF(mol)
    elif method == "UHF":
        mf = scf.UHF(mol)
    elif method == "RKS":
        mf = dft.RKS(mol, xc=xc)
    elif method == "UKS":
        mf = dft.UKS(mol, xc=xc)
    else:
        raise SetupError(f"unknown SCF method '{method}'", fix=f"use one of {', '.join(_METHODS)}")
    mf.conv_tol = float(conv_tol)
    mf.conv_tol_grad = None if conv_tol_grad is None else float(conv_tol_grad)
    mf.max_cycle = int(max_cycle)
    mf.init_guess = init_guess
    mf.chkfile = None
    if grid_level is not None and hasattr(mf, "grids"):
        mf.grids.level = int(grid_level)
    if charges is not None and len(charges) > 0:
        q = np.asarray(charges, dtype=float)
        radii = None
        if charge_width_bohr is not None:
            radii = np.full(len(q), math.sqrt(2.0) * float(charge_width_bohr))
        mf = qmmm.add_mm_charges(mf, np.asarray(charge_positions_bohr, dtype=float), q,
                                 radii=radii, unit="Bohr")
    return mf


def _attempt(mf, dm0: np.ndarray | None, step: str, settings: dict) -> dict:
    """Run one SCF attempt of ``mf`` from ``dm0``; return its record (never raises).

    The record: ``step``, ``settings``, ``converged``, ``cycles``, ``e_tot`` (hartree),
    ``max_cycle``, ``conv_tol``, ``mo_energy`` (hartree), per cycle ``e_history`` (hartree) and
    ``grad_norm_history`` (orbital gradient), ``reason`` (why it failed, else ``None``).
    """
    history: dict[str, list[float]] = {"e": [], "g": []}
    macro = {"n": 0}
    user_callback = mf.callback

    def record(envs: dict) -> None:
        if "imacro" in envs:               # second-order SCF: one call per macro iteration,
            n = int(envs["imacro"]) + 1    # and one more after the loop
            if n == macro["n"]:
                return
            macro["n"] = n
        history["e"].append(float(envs["e_tot"]))
        history["g"].append(float(envs["norm_gorb"]))
        if callable(user_callback):
            user_callback(envs)

    mf.callback = record
    try:
        mf.kernel(dm0=dm0)
    finally:
        mf.callback = user_callback
    cycles = macro["n"] if step == "newton" else int(getattr(mf, "cycles", len(history["e"])))
    e_tot = float(mf.e_tot) if mf.e_tot is not None else float("nan")
    finite = math.isfinite(e_tot)
    converged = bool(mf.converged) and finite
    reason = None
    if not finite:
        reason = f"SCF energy is not finite ({e_tot}) after {cycles} cycles"
    elif not converged:
        e = history["e"]
        last_de = e[-1] - e[-2] if len(e) > 1 else float("nan")
        last_g = history["g"][-1] if history["g"] else float("nan")
        reason = (f"SCF not converged in {cycles} of max_cycle={mf.max_cycle} cycles "
                  f"(E={e_tot:.12g} Eh, last dE={last_de:.3g} Eh, |g|={last_g:.3g}, "
                  f"conv_tol={mf.conv_tol:g})")
    return {
        "step": step,
        "settings": dict(settings),
        "converged": converged,
        "cycles": cycles,
        "e_tot": e_tot,
        "max_cycle": int(mf.max_cycle),
        "conv_tol": float(mf.conv_tol),
        "mo_energy": None if mf.mo_energy is None else np.array(mf.mo_energy, copy=True),
        "e_history": list(history["e"]),
        "grad_norm_history": list(history["g"]),
        "reason": reason,
    }


_FAIL_FIX = ("raise max_cycle, start from a better geometry or density, or loosen conv_tol; "
             "check charge and spin (an open shell needs UHF/UKS)")


def run_scf(mf, dm0: np.ndarray | None = None) -> int:
    """Run the SCF of ``mf`` to convergence, starting from ``dm0`` if given (no recovery).

    Returns:
      the number of SCF cycles taken.

    Raises:
      CalculationError: the SCF did not converge within ``mf.max_cycle`` cycles, or gave a
        non-finite energy.  ``.state`` holds what PySCF left: ``e_tot`` (hartree),
        ``cycles``, ``max_cycle``, ``conv_tol``, ``converged``, ``mo_energy`` (hartree),
        and per cycle ``e_history`` (hartree) and ``grad_norm_history`` (orbital gradient).
    """
    rec = _attempt(mf, dm0, "plain", {})
    if not rec["converged"]:
        state = {k: v for k, v in rec.items() if k not in ("step", "settings", "reason")}
        state["attempts"] = [_summary(rec)]
        raise CalculationError("PySCF calculation failed", reason=rec["reason"], state=state,
                               fix=_FAIL_FIX)
    return rec["cycles"]


def _summary(rec: dict) -> dict:
    """A record without the per-cycle arrays, for ``last_recovery`` and error states."""
    return {k: rec[k] for k in ("step", "settings", "converged", "cycles", "e_tot", "reason")}


def _last_density(mf, fallback: np.ndarray | None) -> np.ndarray | None:
    """The density ``mf`` ended with if it is finite, else ``fallback``."""
    if mf.mo_coeff is None or mf.mo_occ is None:
        return fallback
    dm = np.asarray(mf.make_rdm1())
    return dm if np.all(np.isfinite(dm)) else fallback


def run_scf_with_recovery(mf, dm0: np.ndarray | None = None, *, recovery: bool = True):
    """Run the SCF of ``mf``; if it fails, retry with the recovery chain of the module docstring.

    Args:
      mf: an SCF object from :func:`make_scf` (not yet run).
      dm0: initial density matrix (AO basis, ``(nao, nao)`` or ``(2, nao, nao)``), or ``None``
        for ``mf.init_guess``.
      recovery: ``False`` raises after the plain SCF fails.

    Returns:
      ``(mf_converged, attempts)``: the converged SCF object (``mf`` itself, or its
      second-order ``mf.newton()`` version) and the list of attempt summaries (``step``,
      ``settings``, ``converged``, ``cycles``, ``e_tot`` hartree, ``reason``), one per
      attempt, the plain SCF first.  The total cycle count is ``sum(a["cycles"])``.

    Raises:
      CalculationError: every attempt failed.  ``.state`` is the last attempt's state
        (keys as in :func:`run_scf`) plus ``attempts``, the summaries of all of them.
    """
    attempts = []
    rec = _attempt(mf, dm0, "plain", {})
    attempts.append(rec)
    if not rec["converged"] and recovery:
        for step, settings in _retries():
            start = _last_density(mf, dm0)
            if step == "newton":
                mf = mf.newton()
                rec = _attempt(mf, start, step, settings)
            else:
                saved = {k: getattr(mf, k) for k in settings}
                for k, v in settings.items():
                    setattr(mf, k, v)
                try:
                    rec = _attempt(mf, start, step, settings)
                finally:
                    for k, v in saved.items():
                        setattr(mf, k, v)
            attempts.append(rec)
            if rec["converged"]:
                break
    summaries = [_summary(a) for a in attempts]
    if not rec["converged"]:
        state = {k: v for k, v in rec.items() if k not in ("step", "settings", "reason")}
        state["attempts"] = summaries
        if len(attempts) == 1:
            reason = rec["reason"]
        else:
            tried = "; ".join(f"{a['step']}: {a['cycles']} cycles, E={a['e_tot']:.12g} Eh"
                              for a in attempts)
            reason = (f"SCF not converged after {len(attempts)} attempts ({tried}); "
                      f"last: {rec['reason']}")
        raise CalculationError("PySCF calculation failed", reason=reason, state=state,
                               fix=_FAIL_FIX)
    return mf, summaries


def gradients(mf, *, qm: bool = True, mm: bool = False,
              grid_response: bool = True) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Energy gradients of a converged SCF, hartree/bohr.

    Args:
      mf: a converged SCF object from :func:`make_scf` and :func:`run_scf`.
      qm: compute the gradient on the QM atoms, ``(n, 3)``.
      mm: compute the gradient on the MM point charges, ``(m, 3)`` (zero rows if ``mf``
        has no embedding).
      grid_response: for KS, include the response of the integration grid to the atoms
        (needed for forces consistent with the energy).

    Returns:
      ``(g_qm, g_mm)``; an entry is ``None`` where not asked for.
    """
    qmmm = _pyscf()[3]
    g = mf.nuc_grad_method()
    g.verbose = 0
    if hasattr(g, "grid_response"):
        g.grid_response = bool(grid_response)
    g_qm = np.asarray(g.kernel(), dtype=float) if qm else None
    g_mm = None
    if mm:
        if isinstance(mf, qmmm.QMMM):
            dm = mf.make_rdm1()
            if dm.ndim == 3:
                dm = dm[0] + dm[1]
            g_mm = np.asarray(g.grad_hcore_mm(dm) + g.grad_nuc_mm(), dtype=float)
        else:
            g_mm = np.zeros((0, 3))
    return g_qm, g_mm


def _total_density(dm: np.ndarray) -> np.ndarray:
    dm = np.asarray(dm)
    return dm[0] + dm[1] if dm.ndim == 3 else dm


def charge_potential(mf, dm: np.ndarray | None = None) -> np.ndarray:
    """Electrostatic potential of the QM region at each MM charge, hartree/e (atomic units).

    ``phi_J = sum_A Z_A g(|R_A - r_J|) - sum_pq P_pq <p|g_J|q>`` with ``g(d) = 1/d`` for point
    charges and, for Gaussian charges of PySCF exponent ``zeta = 1/R^2``, ``g`` the potential
    of the normalised Gaussian (``erf(sqrt(zeta) d)/d`` for a nucleus, the three-centre
    integral ``(pq|g_J)`` for the electrons).  This is ``dE/dq_J`` at fixed density, which
    equals the total derivative at SCF convergence.

    Args:
      mf: an SCF object from :func:`make_scf` (QM/MM or not).
      dm: the AO density, ``(nao, nao)`` or ``(2, nao, nao)``; default ``mf.make_rdm1()``.

    Returns:
      ``(m,)`` float, hartree/e; ``(0,)`` when ``mf`` has no MM charges.

    PySCF functions: ``Mole.intor("int1e_grids", grids=...)`` (point charges),
    ``gto.fakemol_for_charges`` + ``df.incore.aux_e2(..., "int3c2e")`` (Gaussian charges).
    """
    gto = _pyscf()[0]
    qmmm = _pyscf()[3]
    if not isinstance(mf, qmmm.QMMM):
        return np.zeros(0)
    from pyscf import df
    from scipy.special import erf

    mol, mm_mol = mf.mol, mf.mm_mol
    coords = np.asarray(mm_mol.atom_coords(), dtype=float)
    dm = _total_density(mf.make_rdm1() if dm is None else dm)
    gaussian = mm_mol.charge_model == "gaussian"
    zetas = np.asarray(mm_mol.get_zetas(), dtype=float) if gaussian else None
    # nuclei
    d = np.linalg.norm(coords[:, None, :] - mol.atom_coords()[None, :, :], axis=-1)  # (m, n)
    z = mol.atom_charges().astype(float)
    kern = erf(np.sqrt(zetas)[:, None] * d) / d if gaussian else 1.0 / d
    phi = kern @ z
    # electrons
    for i0 in range(0, len(coords), _CHARGE_BLOCK):
        i1 = min(i0 + _CHARGE_BLOCK, len(coords))
        if gaussian:
            fake = gto.fakemol_for_charges(coords[i0:i1], zetas[i0:i1])
            intor = "int3c2e_cart" if mol.cart else "int3c2e_sph"
            v = df.incore.aux_e2(mol, fake, intor=intor, aosym="s1")     # (nao, nao, k)
            phi[i0:i1] -= np.einsum("pqk,qp->k", v, dm)
        else:
            v = mol.intor("int1e_grids", hermi=1, grids=coords[i0:i1])   # (k, nao, nao)
            phi[i0:i1] -= np.einsum("kpq,qp->k", v, dm)
    return phi


def _sqrt_overlap(mol) -> tuple[np.ndarray, np.ndarray]:
    """``(S^{1/2}, S^{-1/2})`` of the AO overlap of ``mol``."""
    w, u = np.linalg.eigh(mol.intor_symmetric("int1e_ovlp"))
    return (u * np.sqrt(w)) @ u.T, (u / np.sqrt(w)) @ u.T


def extrapolate_density(orthogonal: Sequence[np.ndarray], s_inv_half: np.ndarray) -> np.ndarray:
    """Quadratic extrapolation of Loewdin-orthogonalised densities to a new geometry.

    Args:
      orthogonal: the last three ``S^{1/2} P S^{1/2}``, oldest first, each ``(nao, nao)`` or
        ``(2, nao, nao)``.
      s_inv_half: ``(nao, nao)``, ``S^{-1/2}`` at the new geometry.

    Returns:
      the AO guess ``S^{-1/2} (3 Q_n - 3 Q_{n-1} + Q_{n-2}) S^{-1/2}``, shape of the inputs.
    """
    q2, q1, q0 = (np.asarray(a) for a in orthogonal)
    q = 3.0 * q0 - 3.0 * q1 + q2
    return s_inv_half @ q @ s_inv_half


# --- the stateful model, bridge units -----------------------------------------------------

def _integer(name: str, value: Any) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise SetupError(f"{name} must be an integer, got {value!r}",
                         fix=f"pass {name} as a Python int")
    return int(value)


def _positive(name: str, value: Any) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        out = float("nan")
    if isinstance(value, bool) or not (math.isfinite(out) and out > 0):
        raise SetupError(f"{name} must be a positive number, got {value!r}",
                         fix=f"pass {name} as a finite float > 0")
    return out


def _check_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """Validate and normalise model options; unknown names are a :class:`SetupError`."""
    check_options(options, _OPTIONS, "PySCFModel")
    o = dict(options)
    method = str(o["method"]).upper()
    if method not in _METHODS:
        raise SetupError(f"unknown method '{o['method']}'",
                         fix=f"use one of {', '.join(_METHODS)} (pass the functional as xc=)")
    o["method"] = method
    kohn_sham = method.endswith("KS")
    if kohn_sham:
        if not o["xc"]:
            raise SetupError(f"method {method} needs an exchange-correlation functional",
                             fix="pass xc='b3lyp', xc='pbe', xc='lda,vwn', ...")
        dft = _pyscf()[2]
        try:
            dft.libxc.parse_xc(o["xc"])
        except (KeyError, ValueError) as exc:
            raise SetupError(f"unknown functional xc='{o['xc']}': {exc}",
                             fix="use a libxc name, e.g. 'b3lyp', 'pbe', 'lda,vwn'") from exc
    else:
        for name in ("xc", "grid_level", "grid_response"):
            if o[name] is not None:
                raise SetupError(f"option {name} applies to Kohn-Sham methods only, not {method}",
                                 fix="use method='RKS' or 'UKS', or drop the option")
    if not isinstance(o["basis"], (str, Mapping)):
        raise SetupError(f"basis must be a PySCF basis name or a mapping element -> basis, "
                         f"got {type(o['basis']).__name__}",
                         fix="pass e.g. basis='sto-3g', '6-31g*' or {'O': 'cc-pvdz', 'H': 'sto-3g'}")
    for name in ("charge", "spin", "max_cycle", "verbose"):
        o[name] = _integer(name, o[name])
    if o["spin"] < 0:
        raise SetupError(f"spin must be >= 0 (2S = n_alpha - n_beta), got {o['spin']}",
                         fix="pass spin=0 for a singlet, 1 for a doublet, 2 for a triplet")
    if o["spin"] != 0 and method.startswith("R"):
        raise SetupError(f"{method} is closed-shell but spin={o['spin']}",
                         fix="use method='UHF' or 'UKS' for open shells")
    if o["max_cycle"] < 1:
        raise SetupError(f"max_cycle must be >= 1, got {o['max_cycle']}",
                         fix="pass the maximum number of SCF iterations, e.g. max_cycle=100")
    o["conv_tol"] = _positive("conv_tol", o["conv_tol"])
    if o["conv_tol_grad"] is not None:
        o["conv_tol_grad"] = _positive("conv_tol_grad", o["conv_tol_grad"])
    if o["max_memory"] is not None:
        o["max_memory"] = _positive("max_memory", o["max_memory"])
    if o.get("threads") is not None:
        o["threads"] = _integer("threads", o["threads"])
        if o["threads"] < 1:
            raise SetupError(f"threads must be >= 1, got {o['threads']}",
                             fix="pass the number of OpenMP threads for PySCF, or None for its default")
    if o["grid_level"] is not None:
        o["grid_level"] = _integer("grid_level", o["grid_level"])
        if not 0 <= o["grid_level"] <= 9:
            raise SetupError(f"grid_level must be 0..9, got {o['grid_level']}",
                             fix="pass a PySCF DFT grid level from 0 (coarse) to 9 (fine), e.g. 3")
    if kohn_sham and o["grid_response"] is None:
        o["grid_response"] = True
    guess = str(o["init_guess"]).lower()
    if guess not in _GUESSES:
        raise SetupError(f"unknown init_guess '{o['init_guess']}'",
                         fix=f"use one of {', '.join(_GUESSES)}")
    o["init_guess"] = guess
    o["reuse_density"] = bool(o["reuse_density"])
    warm = str(o["guess"]).lower()
    if warm not in _WARM_GUESSES:
        raise SetupError(f"unknown guess '{o['guess']}'",
                         fix=f"use one of {', '.join(_WARM_GUESSES)} (the cold-start guess is "
                             "init_guess=)")
    if warm == "extrapolate" and not o["reuse_density"]:
        raise SetupError("guess='extrapolate' needs reuse_density=True",
                         fix="drop reuse_density=False, or use guess='previous'")
    o["guess"] = warm
    if o["charge_width"] is not None:
        raw = o["charge_width"]
        try:
            width = to_internal(raw, name="charge_width")
        except (SetupError, TypeError, ValueError):
            width = float("nan")
        if isinstance(raw, bool) or np.ndim(width) != 0 or not (math.isfinite(width)
                                                               and width > 0):
            raise SetupError(f"charge_width must be a positive length (nm) or None, got {raw!r}",
                             fix="pass the Gaussian width sigma of the MM charges in nm, e.g. "
                                 "charge_width=0.05, or None for point charges")
        o["charge_width"] = float(width)
    o["recovery"] = bool(o["recovery"])
    return o


class PySCFModel:
    """A QM region computed by PySCF, as a bridge energy model (ASE-calculator style).

    ``compute`` returns energy, forces and the QM potential at the MM charges in bridge
    units; results are cached on the inputs (positions, MM charges, their positions) and
    returned as copies; the last converged density matrix (or an extrapolation of the last
    three) is the initial guess of the next SCF.  See the module docstring for exactly which
    energy terms are included, the Gaussian charge model and the SCF recovery chain.

    Args:
      symbols: ``(n,)`` element symbols of the QM atoms.
      positions: ``(n, 3)`` float, nm -- the initial geometry (used to check the set-up;
        every :meth:`compute` call passes its own positions).
      method: ``"RHF"`` (default), ``"UHF"``, ``"RKS"`` or ``"UKS"``.
      xc: exchange-correlation functional for KS methods, e.g. ``"b3lyp"``, ``"pbe"``.
      basis: PySCF basis name (default ``"sto-3g"``) or mapping element -> basis.
      charge: net charge of the QM region, e (integer).
      spin: ``2S = n_alpha - n_beta`` (0 for closed shells; restricted methods need 0).
      conv_tol: SCF energy convergence threshold, hartree (default ``1e-10``).
      conv_tol_grad: orbital-gradient threshold (default: PySCF's ``sqrt(conv_tol)``).
      max_cycle: maximum SCF cycles per attempt (default 100); not converging, after the
        recovery chain, raises :class:`CalculationError`.
      grid_level: PySCF DFT grid level 0..9 (KS only; default PySCF's 3).
      grid_response: include the grid response in KS forces (KS only; default ``True``).
      init_guess: PySCF initial guess for a cold start (default ``"minao"``).
      reuse_density: start each SCF from earlier converged densities (default ``True``);
        ``False``: every SCF starts cold from ``init_guess``.
      guess: how earlier densities start the next SCF: ``"previous"`` (default, the last
        converged density) or ``"extrapolate"`` (quadratic extrapolation of the last three,
        for MD with equal time steps; see the module docstring).
      charge_width: ``None`` (default) for MM point charges, or the width sigma, nm, of
        Gaussian MM charges ``q (2 pi sigma^2)^(-3/2) exp(-r^2 / 2 sigma^2)`` (PySCF radius
        ``sqrt(2) sigma``).
      recovery: retry a non-converging SCF with level shift, then damping, then second-order
        SCF before raising (default ``True``); ``False`` raises at once.
      max_memory: PySCF memory limit, MB (default PySCF's).
      threads: OpenMP threads PySCF uses in :meth:`compute` (default: PySCF's own setting);
        1 is fastest for small QM regions on few cores.
      verbose: PySCF verbosity (default 0, silent).

    Any other keyword is a :class:`SetupError` (typo-proof options).

    Attributes:
      implemented_properties: ``("energy", "forces", "charge_forces", "charge_potential")``.
      symbols: ``(n,)`` element symbols.
      positions: ``(n, 3)`` nm, the positions of the last computation (or the initial ones).
      results: the cached results of the last inputs (internal units).
      mol: the PySCF ``Mole`` of the last computation (bohr).
      mf: the converged PySCF SCF object of the last computation (after a ``newton``
        recovery, the second-order SCF object).
      last_scf_cycles: SCF cycles of the last SCF run (all recovery attempts summed).
      total_scf_cycles: SCF cycles summed over all runs.
      scf_runs: number of converged SCF runs (a cache hit does not run one).
      last_guess: how the last SCF started: ``"cold"``, ``"previous"`` or ``"extrapolate"``.
      last_recovery: ``[]`` if the last SCF converged plainly, else one summary per attempt
        (``step`` in ``"plain"``, ``"level_shift"``, ``"damping"``, ``"newton"``;
        ``settings``, ``converged``, ``cycles``, ``e_tot`` hartree, ``reason``).

    Example::

        model = PySCFModel(["O", "H", "H"], xyz_nm, method="RKS", xc="b3lyp", basis="6-31g")
        out = model.compute(xyz_nm, ("energy", "forces", "charge_forces", "charge_potential"),
                            charges=q_e, charge_positions=r_nm)
    """

    implemented_properties: tuple[str, ...] = _PROPERTIES

    def __init__(self, symbols: Sequence[str], positions: Any, *, method: str = "RHF",
                 xc: str | None = None, basis: Any = "sto-3g", charge: int = 0, spin: int = 0,
                 conv_tol: float = 1e-10, conv_tol_grad: float | None = None,
                 max_cycle: int = 100, grid_level: int | None = None,
                 grid_response: bool | None = None, init_guess: str = "minao",
                 reuse_density: bool = True, guess: str = "previous",
                 charge_width: float | None = None, recovery: bool = True,
                 max_memory: float | None = None, threads: int | None = None, verbose: int = 0,
                 **unknown: Any):
        _pyscf()
        options = dict(method=method, xc=xc, basis=basis, charge=charge, spin=spin,
                       conv_tol=conv_tol, conv_tol_grad=conv_tol_grad, max_cycle=max_cycle,
                       grid_level=grid_level, grid_response=grid_response,
                       init_guess=init_guess, reuse_density=reuse_density, guess=guess,
                       charge_width=charge_width, recovery=recovery,
                       max_memory=max_memory, threads=threads, verbose=verbose, **unknown)
        self._options = _check_options(options)
        if isinstance(symbols, str) or len(symbols) == 0:
            raise SetupError("symbols must be a non-empty sequence of element symbols",
                             fix="pass e.g. ['O', 'H', 'H']")
        self.symbols: tuple[str, ...] = tuple(str(s) for s in symbols)
        self.positions = finite_array(positions, (len(self.symbols), 3), name="positions")
        self.mol = self._build_mol(self.positions)
        self.mf = None
        self.results: dict[str, Any] = {}
        self._key: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._dm: np.ndarray | None = None
        #: (positions nm, S^{1/2} P S^{1/2}) of the last converged SCFs, oldest first, <= 3
        self._history: list[tuple[np.ndarray, np.ndarray]] = []
        self.last_guess = "cold"
        self.last_recovery: list[dict[str, Any]] = []
        self.last_scf_cycles = 0
        self.total_scf_cycles = 0
        self.scf_runs = 0

    @classmethod
    def from_atoms(cls, atoms: Any, **options: Any) -> "PySCFModel":
        """Build from an ASE ``Atoms`` (symbols and positions in angstrom); options as above.

        Periodic atoms are refused: this model is molecular.
        """
        pbc = np.asarray(getattr(atoms, "pbc", False))
        if np.any(pbc):
            raise SetupError("PySCFModel is molecular but the Atoms are periodic",
                             fix="set atoms.pbc = False for a cluster QM region")
        return cls(list(atoms.get_chemical_symbols()),
                   np.asarray(atoms.get_positions(), dtype=float) * ANGSTROM, **options)

    @property
    def options(self) -> dict[str, Any]:
        """A copy of the (validated) options."""
        return dict(self._options)

    def set(self, **options: Any) -> None:
        """Change options (same names as the constructor); clears the cache and density."""
        merged = {**self._options, **options}
        if not str(merged["method"]).upper().endswith("KS"):
            for name in ("xc", "grid_level", "grid_response"):
                if name not in options:
                    merged[name] = None
        old, self._options = self._options, _check_options(merged)
        try:
            self.mol = self._build_mol(self.positions)
        except SetupError:
            self._options = old
            raise
        self.reset()

    def reset(self) -> None:
        """Forget cached results and the stored density (the next SCF starts cold)."""
        self.results = {}
        self._key = None
        self._dm = None
        self._history = []
        self.mf = None

    # -- compute ----------------------------------------------------------------------------

    def compute(self, positions: Any, properties: Sequence[str] = ("energy", "forces"),
                charges: Any = None, charge_positions: Any = None) -> dict[str, Any]:
        """See :meth:`_compute`; runs with ``threads`` OpenMP threads when that option is set.

        Small QM regions (tens of basis functions) run fastest on one thread: on a 2-core
        machine PySCF's OpenMP overhead made an HF/6-31G water 10x slower than ``threads=1``.
        """
        threads = self._options.get("threads")
        if threads is None:
            return self._compute(positions, properties, charges, charge_positions)
        from pyscf import lib

        with lib.with_omp_threads(threads):
            return self._compute(positions, properties, charges, charge_positions)

    def _compute(self, positions: Any, properties: Sequence[str] = ("energy", "forces"),
                 charges: Any = None, charge_positions: Any = None) -> dict[str, Any]:
        """Energy and derivatives of the QM region, optionally embedded in MM charges.

        Args:
          positions: ``(n, 3)`` float, nm, the QM atoms.
          properties: any of ``"energy"``, ``"forces"``, ``"charge_forces"``,
            ``"charge_potential"``.
          charges: ``(m,)`` float, e, MM charges (``None`` or ``m = 0``: no embedding);
            point charges, or Gaussians of the model's ``charge_width``.
          charge_positions: ``(m, 3)`` float, nm, where the charges sit.

        Returns:
          a dict with the requested entries, copies of the cache:
          ``energy`` float kJ/mol; ``forces`` ``(n, 3)`` kJ/(mol nm) on the QM atoms;
          ``charge_forces`` ``(m, 3)`` kJ/(mol nm) on the MM charges from the QM electrons
          and nuclei; ``charge_potential`` ``(m,)`` kJ/(mol e), ``dE/dq_J``, the potential of
          the QM nuclei and electrons at each charge (Gaussian-averaged for smeared charges).

        Only what is missing for the same inputs is computed: a new SCF runs only when
        positions, charges or charge positions change; forces and potentials asked for
        later come from the cached SCF solution.

        Raises:
          SetupError: bad shapes, NaN/inf inputs, an unknown property, a charge on a nucleus.
          CalculationError: the SCF did not converge even after the recovery chain
            (``.state`` carries PySCF's state and ``attempts``).
        """
        properties = check_properties(properties, self.implemented_properties, "PySCFModel")
        key = self._inputs(positions, charges, charge_positions)
        if not self._same_inputs(key):
            self._run(key)
        want_qm = "forces" in properties and "forces" not in self.results
        want_mm = "charge_forces" in properties and "charge_forces" not in self.results
        if want_qm or want_mm:
            self._gradients(want_qm, want_mm)
        if "charge_potential" in properties and "charge_potential" not in self.results:
            phi = charge_potential(self.mf)
            if not np.all(np.isfinite(phi)):
                raise CalculationError("PySCF charge potential failed",
                                       reason="non-finite potential at the MM charges",
                                       state={"e_tot": float(self.mf.e_tot), "potential": phi},
                                       fix="check for MM charges on top of QM atoms")
            self.results["charge_potential"] = phi * HARTREE
        return {p: (np.array(self.results[p], copy=True) if isinstance(self.results[p], np.ndarray)
                    else self.results[p]) for p in properties}

    def _inputs(self, positions: Any, charges: Any, charge_positions: Any):
        x = finite_array(positions, (len(self.symbols), 3), name="positions")
        if (charges is None) != (charge_positions is None):
            raise SetupError("charges and charge_positions go together",
                             fix="pass both (m,) charges in e and (m, 3) positions in nm, "
                                 "or neither")
        if charges is None:
            q = np.zeros(0)
            r = np.zeros((0, 3))
        else:
            q = np.asarray(finite_array(charges, (None,), name="charges"), dtype=float)
            if len(q) == 0 and np.size(charge_positions) == 0:
                r = np.zeros((0, 3))                      # [] or (0, 3): no embedding
            else:
                r = finite_array(charge_positions, (len(q), 3), name="charge_positions")
            if len(q):
                d = np.linalg.norm(x[:, None, :] - r[None, :, :], axis=-1)
                if d.min() < 1e-10:
                    i, j = np.unravel_index(np.argmin(d), d.shape)
                    raise SetupError(f"MM charge {j} sits on QM atom {i} "
                                     f"(distance {d[i, j]:.3g} nm)",
                                     fix="exclude MM charges at QM atom sites (link atoms, "
                                         "bonded hosts) from the embedding")
        return x.copy(), q.copy(), r.copy()

    def _same_inputs(self, key) -> bool:
        return self._key is not None and all(
            a.shape == b.shape and np.array_equal(a, b) for a, b in zip(key, self._key))

    def _build_mol(self, positions_nm: np.ndarray):
        o = self._options
        return build_mol(self.symbols, positions_nm / BOHR, basis=o["basis"], charge=o["charge"],
                         spin=o["spin"], max_memory=o["max_memory"], verbose=o["verbose"])

    def _run(self, key) -> None:
        x, q, r = key
        o = self._options
        self.results = {}
        self._key = None
        self.mf = None
        mol = self._build_mol(x)
        width = None if o["charge_width"] is None else o["charge_width"] / BOHR
        mf = make_scf(mol, method=o["method"], xc=o["xc"], conv_tol=o["conv_tol"],
                      conv_tol_grad=o["conv_tol_grad"], max_cycle=o["max_cycle"],
                      grid_level=o["grid_level"], init_guess=o["init_guess"],
                      charges=q, charge_positions_bohr=r / BOHR, charge_width_bohr=width)
        if o["max_memory"] is not None:
            mf.max_memory = float(o["max_memory"])
        mf.verbose = o["verbose"]
        nao = mol.nao_nr()
        expected = (2, nao, nao) if o["method"].startswith("U") else (nao, nao)
        dm0, self.last_guess = None, "cold"
        s_half = s_inv_half = None
        if o["guess"] == "extrapolate":
            s_half, s_inv_half = _sqrt_overlap(mol)
            if self._history and self._history[-1][1].shape != expected:
                self._history = []
            if len(self._history) == 3 and not np.array_equal(self._history[-1][0], x):
                dm0 = extrapolate_density([h[1] for h in self._history], s_inv_half)
                self.last_guess = "extrapolate"
        if dm0 is None and o["reuse_density"] and self._dm is not None \
                and self._dm.shape == expected:
            dm0, self.last_guess = self._dm, "previous"
        self.mol = mol
        self.positions = x
        self.last_recovery = []
        try:
            mf, attempts = run_scf_with_recovery(mf, dm0, recovery=o["recovery"])
        except CalculationError as exc:
            self.last_recovery = list(exc.state.get("attempts", []))
            raise
        cycles = sum(a["cycles"] for a in attempts)
        self.last_recovery = attempts if len(attempts) > 1 else []
        self.scf_runs += 1
        self.last_scf_cycles = cycles
        self.total_scf_cycles += cycles
        self._dm = np.array(mf.make_rdm1(), copy=True)
        if o["guess"] == "extrapolate":
            entry = (x.copy(), s_half @ self._dm @ s_half)
            if self._history and np.array_equal(self._history[-1][0], x):
                self._history[-1] = entry              # same geometry: replace, not add
            else:
                self._history = [*self._history, entry][-3:]
        self.mf = mf
        self._key = key
        self.results = {"energy": float(mf.e_tot) * HARTREE}

    def _gradients(self, qm: bool, mm: bool) -> None:
        g_qm, g_mm = gradients(self.mf, qm=qm, mm=mm,
                               grid_response=bool(self._options["grid_response"]))
        for name, g in (("forces", g_qm), ("charge_forces", g_mm)):
            if g is None:
                continue
            if not np.all(np.isfinite(g)):
                raise CalculationError("PySCF gradient failed", reason=f"non-finite {name}",
                                       state={"e_tot": float(self.mf.e_tot), "gradient": g},
                                       fix="check the geometry for overlapping atoms or charges, "
                                           "and tighten conv_tol so the SCF is well converged")
            self.results[name] = -g * HARTREE_PER_BOHR

    def __repr__(self) -> str:
        o = self._options
        method = o["method"] + (f"/{o['xc']}" if o["xc"] else "")
        return (f"PySCFModel({''.join(self.symbols)}, {method}/{o['basis']}, "
                f"charge={o['charge']}, spin={o['spin']})")
