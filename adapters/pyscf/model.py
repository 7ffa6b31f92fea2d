r"""QM region energy and forces from PySCF, with electrostatic embedding in MM point charges.

Physics.  For QM nuclei :math:`A` (charge :math:`Z_A`, position :math:`R_A`) and MM point
charges :math:`J` (charge :math:`q_J`, position :math:`r_J`) the energy returned is

.. math::

    E(R, r) = E_\mathrm{el}[P;\, h + V_\mathrm{MM}]
              + \sum_{A<B} \frac{Z_A Z_B}{|R_A - R_B|}
              + \sum_{A} \sum_{J} \frac{Z_A q_J}{|R_A - r_J|},
    \qquad V_\mathrm{MM}(x) = -\sum_J \frac{q_J}{|x - r_J|},

the SCF (HF or KS) energy of the electrons in the field of the charges, the QM nuclear
repulsion and the QM-nuclei/MM-charge Coulomb energy.  It does **not** include the MM-MM
Coulomb energy :math:`\sum_{J<K} q_J q_K / |r_J - r_K|`, van der Waals or bonded QM-MM
terms: those belong to the MM engine or the coupling method.

Forces are exact derivatives of that energy at the converged SCF solution:
``forces`` :math:`F_A = -\partial E / \partial R_A` on the QM atoms and ``charge_forces``
:math:`f_J = -\partial E / \partial r_J = -\sum_{pq} P_{pq}\, \partial h_{pq} / \partial r_J
- \partial E_{\mathrm{nuc}\text{-}\mathrm{MM}} / \partial r_J` on the MM charges.  The total
is translation invariant, :math:`\sum_A F_A + \sum_J f_J = 0` (up to the DFT grid).

Units.  Inputs and outputs in bridge units: positions nm, charges e, energy kJ/mol,
forces kJ/(mol nm).  PySCF works in bohr and hartree; molecules are built with
``unit="Bohr"`` from nm / :data:`bridge.units.BOHR`, so the bridge's CODATA constant (not
PySCF's own) is the single nm <-> bohr conversion.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from bridge.errors import CalculationError, EngineNotAvailable, SetupError
from bridge.options import check_options, check_properties
from bridge.units import BOHR, HARTREE, HARTREE_PER_BOHR, ANGSTROM, finite_array

__all__ = ["PySCFModel", "build_mol", "make_scf", "run_scf", "gradients"]

_METHODS = ("RHF", "UHF", "RKS", "UKS")
_PROPERTIES = ("energy", "forces", "charge_forces")
_GUESSES = ("minao", "atom", "huckel", "mod_huckel", "hcore", "1e", "sap", "vsap")
_OPTIONS = ("method", "xc", "basis", "charge", "spin", "conv_tol", "conv_tol_grad",
            "max_cycle", "grid_level", "grid_response", "init_guess", "reuse_density",
            "max_memory", "verbose")


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
             charges: np.ndarray | None = None, charge_positions_bohr: np.ndarray | None = None):
    """Create (do not run) a PySCF SCF object, embedded in point charges if any are given.

    Args:
      mol: a built ``Mole`` (bohr).
      method: ``"RHF"``, ``"UHF"``, ``"RKS"`` or ``"UKS"``.
      xc: exchange-correlation functional for KS methods (PySCF/libxc name).
      charges: ``(m,)`` MM point charges, e; ``None`` or ``m = 0`` for no embedding.
      charge_positions_bohr: ``(m, 3)`` positions of the charges, bohr.

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
        mf = qmmm.add_mm_charges(mf, np.asarray(charge_positions_bohr, dtype=float),
                                 np.asarray(charges, dtype=float), unit="Bohr")
    return mf


def run_scf(mf, dm0: np.ndarray | None = None) -> int:
    """Run the SCF of ``mf`` to convergence, starting from ``dm0`` if given.

    Returns:
      the number of SCF cycles taken.

    Raises:
      CalculationError: the SCF did not converge within ``mf.max_cycle`` cycles, or gave a
        non-finite energy.  ``.state`` holds what PySCF left: ``e_tot`` (hartree),
        ``cycles``, ``max_cycle``, ``conv_tol``, ``converged``, ``mo_energy`` (hartree),
        and per cycle ``e_history`` (hartree) and ``grad_norm_history`` (orbital gradient).
    """
    history: dict[str, list[float]] = {"e": [], "g": []}
    user_callback = mf.callback

    def record(envs: dict) -> None:
        history["e"].append(float(envs["e_tot"]))
        history["g"].append(float(envs["norm_gorb"]))
        if callable(user_callback):
            user_callback(envs)

    mf.callback = record
    try:
        mf.kernel(dm0=dm0)
    finally:
        mf.callback = user_callback
    cycles = int(getattr(mf, "cycles", len(history["e"])))
    finite = mf.e_tot is not None and math.isfinite(float(mf.e_tot))
    if not mf.converged or not finite:
        state = {
            "e_tot": float(mf.e_tot) if mf.e_tot is not None else float("nan"),
            "cycles": cycles,
            "max_cycle": int(mf.max_cycle),
            "conv_tol": float(mf.conv_tol),
            "converged": bool(mf.converged),
            "mo_energy": None if mf.mo_energy is None else np.array(mf.mo_energy, copy=True),
            "e_history": list(history["e"]),
            "grad_norm_history": list(history["g"]),
        }
        if not finite:
            reason = f"SCF energy is not finite ({state['e_tot']}) after {cycles} cycles"
        else:
            e = history["e"]
            last_de = e[-1] - e[-2] if len(e) > 1 else float("nan")
            last_g = history["g"][-1] if history["g"] else float("nan")
            reason = (f"SCF not converged in {cycles} of max_cycle={mf.max_cycle} cycles "
                      f"(E={state['e_tot']:.12g} Eh, last dE={last_de:.3g} Eh, |g|={last_g:.3g}, "
                      f"conv_tol={mf.conv_tol:g})")
        raise CalculationError("PySCF calculation failed", reason=reason, state=state,
                               fix="raise max_cycle, start from a better geometry or density, "
                                   "or loosen conv_tol")
    return cycles


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
    return o


class PySCFModel:
    """A QM region computed by PySCF, as a bridge energy model (ASE-calculator style).

    ``compute`` returns energy and forces in bridge units; results are cached on the inputs
    (positions, point charges, their positions) and returned as copies; the last converged
    density matrix is the initial guess of the next SCF.  See the module docstring for
    exactly which energy terms are included.

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
      max_cycle: maximum SCF cycles (default 100); not converging raises
        :class:`CalculationError`.
      grid_level: PySCF DFT grid level 0..9 (KS only; default PySCF's 3).
      grid_response: include the grid response in KS forces (KS only; default ``True``).
      init_guess: PySCF initial guess for a cold start (default ``"minao"``).
      reuse_density: start each SCF from the last converged density (default ``True``).
      max_memory: PySCF memory limit, MB (default PySCF's).
      verbose: PySCF verbosity (default 0, silent).

    Any other keyword is a :class:`SetupError` (typo-proof options).

    Attributes:
      implemented_properties: ``("energy", "forces", "charge_forces")``.
      symbols: ``(n,)`` element symbols.
      positions: ``(n, 3)`` nm, the positions of the last computation (or the initial ones).
      results: the cached results of the last inputs (internal units).
      mol: the PySCF ``Mole`` of the last computation (bohr).
      mf: the converged PySCF SCF object of the last computation.
      last_scf_cycles: SCF cycles of the last SCF run.
      total_scf_cycles: SCF cycles summed over all runs.
      scf_runs: number of SCF runs (a cache hit does not run one).

    Example::

        model = PySCFModel(["O", "H", "H"], xyz_nm, method="RKS", xc="b3lyp", basis="6-31g")
        out = model.compute(xyz_nm, ("energy", "forces", "charge_forces"),
                            charges=q_e, charge_positions=r_nm)
    """

    implemented_properties: tuple[str, ...] = _PROPERTIES

    def __init__(self, symbols: Sequence[str], positions: Any, *, method: str = "RHF",
                 xc: str | None = None, basis: Any = "sto-3g", charge: int = 0, spin: int = 0,
                 conv_tol: float = 1e-10, conv_tol_grad: float | None = None,
                 max_cycle: int = 100, grid_level: int | None = None,
                 grid_response: bool | None = None, init_guess: str = "minao",
                 reuse_density: bool = True, max_memory: float | None = None,
                 verbose: int = 0, **unknown: Any):
        _pyscf()
        options = dict(method=method, xc=xc, basis=basis, charge=charge, spin=spin,
                       conv_tol=conv_tol, conv_tol_grad=conv_tol_grad, max_cycle=max_cycle,
                       grid_level=grid_level, grid_response=grid_response,
                       init_guess=init_guess, reuse_density=reuse_density,
                       max_memory=max_memory, verbose=verbose, **unknown)
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
        self.mf = None

    # -- compute ----------------------------------------------------------------------------

    def compute(self, positions: Any, properties: Sequence[str] = ("energy", "forces"),
                charges: Any = None, charge_positions: Any = None) -> dict[str, Any]:
        """Energy and forces of the QM region, optionally embedded in MM point charges.

        Args:
          positions: ``(n, 3)`` float, nm, the QM atoms.
          properties: any of ``"energy"``, ``"forces"``, ``"charge_forces"``.
          charges: ``(m,)`` float, e, MM point charges (``None``: no embedding).
          charge_positions: ``(m, 3)`` float, nm, where the charges sit.

        Returns:
          a dict with the requested entries, copies of the cache:
          ``energy`` float kJ/mol; ``forces`` ``(n, 3)`` kJ/(mol nm) on the QM atoms;
          ``charge_forces`` ``(m, 3)`` kJ/(mol nm) on the MM charges from the QM electrons
          and nuclei.

        Raises:
          SetupError: bad shapes, NaN/inf inputs, an unknown property, a charge on a nucleus.
          CalculationError: the SCF did not converge (``.state`` carries PySCF's state).
        """
        properties = check_properties(properties, self.implemented_properties, "PySCFModel")
        key = self._inputs(positions, charges, charge_positions)
        if not self._same_inputs(key):
            self._run(key)
        want_qm = "forces" in properties and "forces" not in self.results
        want_mm = "charge_forces" in properties and "charge_forces" not in self.results
        if want_qm or want_mm:
            self._gradients(want_qm, want_mm)
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
        mf = make_scf(mol, method=o["method"], xc=o["xc"], conv_tol=o["conv_tol"],
                      conv_tol_grad=o["conv_tol_grad"], max_cycle=o["max_cycle"],
                      grid_level=o["grid_level"], init_guess=o["init_guess"],
                      charges=q, charge_positions_bohr=r / BOHR)
        if o["max_memory"] is not None:
            mf.max_memory = float(o["max_memory"])
        mf.verbose = o["verbose"]
        dm0 = None
        if o["reuse_density"] and self._dm is not None:
            nao = mol.nao_nr()
            expected = (2, nao, nao) if o["method"].startswith("U") else (nao, nao)
            if self._dm.shape == expected:
                dm0 = self._dm
        self.mol = mol
        self.positions = x
        cycles = run_scf(mf, dm0)
        self.scf_runs += 1
        self.last_scf_cycles = cycles
        self.total_scf_cycles += cycles
        self._dm = np.array(mf.make_rdm1(), copy=True)
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
