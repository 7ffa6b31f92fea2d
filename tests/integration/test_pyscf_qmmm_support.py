"""What the QM/MM coupling needs from the PySCF model: the potential at the MM charges
(dE/dq), Gaussian-smeared MM charges, SCF recovery, density extrapolation, and the cache.

Tolerances, atomic units.  dE/dq against central differences in the charge values: step
1e-3 e, SCF converged to conv_tol 1e-12 hartree and |g| 1e-8, so the SCF noise is
~1e-12 / 1e-3 = 1e-9 and the truncation error h^2 E'''/6 ~ 1e-11 (E is nearly quadratic in
q): tolerance 1e-8 hartree/e.  Forces as in test_pyscf_adapter.py: step 1e-4 nm,
tolerance 1e-5 hartree/bohr.  Energies against direct PySCF 1e-9 hartree.
"""
from __future__ import annotations

import numpy as np
import pytest
from pyscf import gto, qmmm, scf
from scipy.special import erf

import bridge_adapters.pyscf.model as pyscf_model
from bridge.errors import CalculationError, SetupError
from bridge.units import ANGSTROM, BOHR, HARTREE, HARTREE_PER_BOHR
from bridge_adapters.pyscf import PySCFModel

SYMBOLS = ["O", "H", "H"]
WATER_A = np.array([[0.0, 0.0, 0.1173], [0.0, 0.7572, -0.4692], [0.0, -0.7572, -0.4692]])
WATER = WATER_A * ANGSTROM                                              # nm
CHARGES = np.array([-0.834, 0.417, 0.417])                              # e
CHARGE_POS = np.array([[0.29, 0.02, 0.01], [0.33, 0.09, 0.03], [0.32, -0.06, 0.06]])  # nm
#: charges close enough that a 0.08 nm Gaussian differs clearly from a point charge
NEAR_Q = np.array([-0.8, 0.5, 0.3])
NEAR_POS = np.array([[0.21, 0.03, 0.02], [0.02, 0.19, -0.12], [-0.05, -0.16, 0.15]])
SIGMA = 0.08                                                            # nm

TIGHT = dict(conv_tol=1e-12, conv_tol_grad=1e-8)
HQ = 1e-3             # e, finite-difference step in a charge value
PHI_TOL = 1e-8        # hartree/e
HX = 1e-4             # nm, finite-difference step in a position
FD_TOL = 1e-5         # hartree/bohr


def energy(model, x, q, r):
    return model.compute(x, ("energy",), charges=q, charge_positions=r)["energy"]


def fd_potential(model, x, q, r):
    """Central differences dE/dq_J, kJ/(mol e)."""
    out = np.zeros(len(q))
    for j in range(len(q)):
        e = []
        for sign in (1.0, -1.0):
            qq = q.copy()
            qq[j] += sign * HQ
            e.append(energy(model, x, qq, r))
        out[j] = (e[0] - e[1]) / (2 * HQ)
    return out


def fd_forces(model, x, q, r, which):
    """Central-difference forces, kJ/(mol nm), on the QM atoms or on the charges."""
    target = x if which == "qm" else r
    out = np.zeros_like(target)
    for i in range(target.shape[0]):
        for k in range(3):
            e = []
            for sign in (1.0, -1.0):
                moved = target.copy()
                moved[i, k] += sign * HX
                e.append(energy(model, moved, q, r) if which == "qm" else
                         energy(model, x, q, moved))
            out[i, k] = -(e[0] - e[1]) / (2 * HX)
    return out


def direct_pyscf(q, r_nm, radii_nm=None, max_cycle=100):
    mol = gto.M(atom=[(s, tuple(p)) for s, p in zip(SYMBOLS, WATER_A)], unit="Angstrom",
                basis="6-31g", verbose=0)
    radii = None if radii_nm is None else np.asarray(radii_nm) / ANGSTROM
    mf = qmmm.add_mm_charges(scf.RHF(mol), r_nm / ANGSTROM, q, radii=radii, unit="Angstrom")
    mf.conv_tol = 1e-11
    mf.max_cycle = max_cycle
    e = mf.kernel()
    assert mf.converged
    return e, mf


# -- charge_potential -----------------------------------------------------------------------

@pytest.mark.parametrize("width", [None, SIGMA])
def test_charge_potential_is_the_charge_derivative_of_the_energy(width):
    model = PySCFModel(SYMBOLS, WATER, basis="6-31g", charge_width=width, **TIGHT)
    phi = model.compute(WATER, ("energy", "charge_potential"), charges=NEAR_Q,
                        charge_positions=NEAR_POS)["charge_potential"]
    assert phi.shape == (3,)
    fd = fd_potential(model, WATER, NEAR_Q, NEAR_POS)
    assert np.abs(phi - fd).max() / HARTREE < PHI_TOL
    assert np.abs(phi).max() / HARTREE > 1e-2                 # not a trivial comparison


def test_charge_potential_equals_the_electrostatic_potential_of_the_density():
    """Against PySCF's own 1/|r - r0| integrals (``int1e_rinv``) at each charge: the point-charge
    potential exactly; far away a Gaussian charge sees the same potential (erf -> 1)."""
    model = PySCFModel(SYMBOLS, WATER, basis="6-31g")
    phi = model.compute(WATER, ("charge_potential",), charges=CHARGES,
                        charge_positions=CHARGE_POS)["charge_potential"] / HARTREE
    mol, dm = model.mol, model.mf.make_rdm1()
    for j, r in enumerate(CHARGE_POS / BOHR):
        with mol.with_rinv_origin(r):
            electrons = np.einsum("pq,qp->", mol.intor("int1e_rinv"), dm)
        nuclei = sum(z / np.linalg.norm(rz - r)
                     for z, rz in zip(mol.atom_charges(), mol.atom_coords()))
        assert abs(phi[j] - (nuclei - electrons)) < 1e-10
    probe = np.array([[0.0, 0.0, 3.0], [0.0, 2.5, -1.0]])     # nm, 1e-6 e: no polarisation
    far = [model.compute(WATER, ("charge_potential",), charges=[1e-6, 1e-6],
                         charge_positions=probe)["charge_potential"]
           for model in (PySCFModel(SYMBOLS, WATER, basis="6-31g"),
                         PySCFModel(SYMBOLS, WATER, basis="6-31g", charge_width=0.05))]
    assert np.allclose(far[1], far[0], rtol=1e-8, atol=0)
    assert np.abs(far[0]).min() / HARTREE > 1e-5


def test_charge_potential_needs_no_new_scf(monkeypatch):
    runs = []
    real = pyscf_model.run_scf_with_recovery

    def counting(mf, dm0=None, **kw):
        runs.append(1)
        return real(mf, dm0, **kw)

    monkeypatch.setattr(pyscf_model, "run_scf_with_recovery", counting)
    model = PySCFModel(SYMBOLS, WATER)
    e = model.compute(WATER, ("energy", "forces", "charge_forces"), charges=CHARGES,
                      charge_positions=CHARGE_POS)
    phi = model.compute(WATER, ("charge_potential",), charges=CHARGES.copy(),
                        charge_positions=CHARGE_POS.copy())["charge_potential"]
    assert len(runs) == 1 and model.scf_runs == 1
    again = model.compute(WATER, ("energy", "charge_potential"), charges=CHARGES,
                          charge_positions=CHARGE_POS)
    assert len(runs) == 1 and again["energy"] == e["energy"]
    assert np.array_equal(again["charge_potential"], phi)
    phi[:] = 0.0
    assert np.abs(model.compute(WATER, ("charge_potential",), charges=CHARGES,
                                charge_positions=CHARGE_POS)["charge_potential"]).min() > 0


def test_no_charges_or_empty_charges():
    model = PySCFModel(SYMBOLS, WATER)
    props = ("energy", "forces", "charge_forces", "charge_potential")
    none = model.compute(WATER, props)
    assert none["charge_forces"].shape == (0, 3) and none["charge_potential"].shape == (0,)
    for q, r in (([], []), (np.zeros(0), np.zeros((0, 3)))):
        empty = model.compute(WATER, props, charges=q, charge_positions=r)
        assert empty["energy"] == none["energy"]
        assert empty["charge_forces"].shape == (0, 3) and empty["charge_potential"].shape == (0,)
    assert model.scf_runs == 1                                # same inputs: one SCF


# -- Gaussian MM charges --------------------------------------------------------------------

def test_gaussian_charges_match_pyscf_radii_and_the_stated_form():
    """charge_width sigma is PySCF's radius sqrt(2) sigma; the nuclear term is
    Z q erf(d / (sqrt(2) sigma)) / d; a small width tends to the point charge."""
    model = PySCFModel(SYMBOLS, WATER, basis="6-31g", charge_width=SIGMA)
    e = energy(model, WATER, NEAR_Q, NEAR_POS)
    ref, _ = direct_pyscf(NEAR_Q, NEAR_POS, radii_nm=np.full(3, np.sqrt(2) * SIGMA))
    assert abs(e / HARTREE - ref) < 1e-9
    point = PySCFModel(SYMBOLS, WATER, basis="6-31g")
    assert abs(e - energy(point, WATER, NEAR_Q, NEAR_POS)) > 10.0   # kJ/mol: smearing acts
    # nuclear-charge term, exactly the stated functional form (atomic units)
    d = np.linalg.norm(WATER[:, None, :] - NEAR_POS[None, :, :], axis=-1) / BOHR
    z = np.array([8.0, 1.0, 1.0])
    expected = z @ (erf(d / (np.sqrt(2) * SIGMA / BOHR)) / d) @ NEAR_Q
    assert abs(model.mf.energy_nuc() - model.mol.energy_nuc() - expected) < 1e-12
    narrow = PySCFModel(SYMBOLS, WATER, basis="6-31g", charge_width=1e-4)
    assert abs(energy(narrow, WATER, NEAR_Q, NEAR_POS)
               - energy(point, WATER, NEAR_Q, NEAR_POS)) / HARTREE < 1e-8


def test_gaussian_charge_forces_match_finite_differences():
    model = PySCFModel(SYMBOLS, WATER, basis="6-31g", charge_width=SIGMA)
    out = model.compute(WATER, ("energy", "forces", "charge_forces"), charges=NEAR_Q,
                        charge_positions=NEAR_POS)
    fd_qm = fd_forces(model, WATER, NEAR_Q, NEAR_POS, "qm")
    assert np.abs(out["forces"] - fd_qm).max() / HARTREE_PER_BOHR < FD_TOL
    fd_mm = fd_forces(model, WATER, NEAR_Q, NEAR_POS, "mm")
    assert np.abs(out["charge_forces"] - fd_mm).max() / HARTREE_PER_BOHR < FD_TOL
    assert np.abs(fd_mm).max() / HARTREE_PER_BOHR > 1e-2
    net = out["forces"].sum(axis=0) + out["charge_forces"].sum(axis=0)
    assert np.abs(net).max() / HARTREE_PER_BOHR < 1e-6


def test_gaussian_charges_with_kohn_sham():
    model = PySCFModel(SYMBOLS, WATER, method="RKS", xc="lda,vwn", basis="sto-3g",
                       grid_level=0, charge_width=SIGMA, **TIGHT)
    q, r = NEAR_Q[:2], NEAR_POS[:2]
    out = model.compute(WATER, ("energy", "charge_forces", "charge_potential"), charges=q,
                        charge_positions=r)
    assert np.abs(out["charge_potential"] - fd_potential(model, WATER, q, r)).max() \
        / HARTREE < PHI_TOL
    fd_mm = fd_forces(model, WATER, q, r, "mm")
    assert np.abs(out["charge_forces"] - fd_mm).max() / HARTREE_PER_BOHR < FD_TOL


def test_bad_charge_width_and_guess_options():
    for bad in (0.0, -0.1, float("nan"), "wide", True, [0.1, 0.2]):
        with pytest.raises(SetupError, match="charge_width"):
            PySCFModel(SYMBOLS, WATER, charge_width=bad)
    with pytest.raises(SetupError, match="guess"):
        PySCFModel(SYMBOLS, WATER, guess="linear")
    with pytest.raises(SetupError, match="reuse_density"):
        PySCFModel(SYMBOLS, WATER, guess="extrapolate", reuse_density=False)
    model = PySCFModel(SYMBOLS, WATER, charge_width=0.05)
    assert model.options["charge_width"] == 0.05 and model.options["recovery"] is True
    model.set(charge_width=None)
    assert model.options["charge_width"] is None


# -- SCF recovery ---------------------------------------------------------------------------

def test_recovery_chain_is_tried_in_order_and_recorded():
    """max_cycle=2 is too few for DIIS, level shift and damping on 6-31G water, and enough
    for the second-order SCF; the result is the ordinary SCF solution."""
    model = PySCFModel(SYMBOLS, WATER, basis="6-31g", max_cycle=2)
    out = model.compute(WATER, ("energy", "forces", "charge_forces", "charge_potential"),
                        charges=CHARGES, charge_positions=CHARGE_POS)
    steps = [a["step"] for a in model.last_recovery]
    assert steps == ["plain", "level_shift", "damping", "newton"]
    assert [a["converged"] for a in model.last_recovery] == [False, False, False, True]
    assert model.last_recovery[1]["settings"] == {"level_shift": 0.3}
    assert model.last_recovery[2]["settings"] == {"damp": 0.5, "diis_start_cycle": 8}
    assert model.last_scf_cycles == sum(a["cycles"] for a in model.last_recovery)
    assert model.scf_runs == 1
    # each retry starts from the last density: the energy improves along the chain
    e = [a["e_tot"] for a in model.last_recovery]
    assert e[0] > e[1] > e[2] > e[3]
    ref = PySCFModel(SYMBOLS, WATER, basis="6-31g")
    want = ref.compute(WATER, ("energy", "forces", "charge_forces", "charge_potential"),
                       charges=CHARGES, charge_positions=CHARGE_POS)
    assert ref.last_recovery == []
    assert abs(out["energy"] - want["energy"]) / HARTREE < 1e-9
    for name in ("forces", "charge_forces"):
        assert np.abs(out[name] - want[name]).max() / HARTREE_PER_BOHR < 1e-6
    assert np.abs(out["charge_potential"] - want["charge_potential"]).max() / HARTREE < 1e-6


def test_recovery_false_raises_at_once():
    model = PySCFModel(SYMBOLS, WATER, basis="6-31g", max_cycle=2, recovery=False)
    with pytest.raises(CalculationError) as info:
        model.compute(WATER, ("energy",))
    err = info.value
    assert [a["step"] for a in err.state["attempts"]] == ["plain"]
    assert [a["step"] for a in model.last_recovery] == ["plain"]
    assert err.state["cycles"] == 2 and model.scf_runs == 0 and model.results == {}


def test_failed_recovery_lists_every_attempt():
    model = PySCFModel(SYMBOLS, WATER, basis="6-31g", max_cycle=1)
    with pytest.raises(CalculationError) as info:
        model.compute(WATER, ("energy",))
    err = info.value
    attempts = err.state["attempts"]
    assert [a["step"] for a in attempts] == ["plain", "level_shift", "damping", "newton"]
    assert not any(a["converged"] for a in attempts)
    assert all(np.isfinite(a["e_tot"]) and a["cycles"] == 1 for a in attempts)
    for a in attempts:
        assert f"{a['step']}: 1 cycles, E={a['e_tot']:.12g} Eh" in err.reason
    assert err.state["converged"] is False and err.state["e_tot"] == attempts[-1]["e_tot"]
    assert model.last_recovery == attempts and model.scf_runs == 0 and model.results == {}
    assert "fix:" in str(err)


# -- density extrapolation ------------------------------------------------------------------

def test_extrapolated_guess_saves_cycles_along_a_vibration():
    """Water vibrating, x(t) = x0 + a sin(w t), 40 calls per period: the quadratic
    extrapolation needs fewer SCF cycles than the previous density (measured: 3.6 against
    5.8 a call), same energies.  The guess errors scale as (w dt)^3 against (w dt)."""
    a = np.array([[0.0, 0.0, -0.002], [0.0, 0.004, 0.006], [0.0, -0.004, 0.006]])   # nm
    path = [WATER + a * np.sin(2 * np.pi * t / 40) for t in range(14)]
    cycles, energies = {}, {}
    for guess in ("previous", "extrapolate"):
        model = PySCFModel(SYMBOLS, WATER, basis="6-31g", guess=guess)
        cycles[guess], energies[guess], used = [], [], []
        for x in path:
            energies[guess].append(energy(model, x, CHARGES, CHARGE_POS))
            cycles[guess].append(model.last_scf_cycles)
            used.append(model.last_guess)
        expected = ["cold", "previous", "previous"] + [guess] * (len(path) - 3)
        assert used == expected
    assert np.mean(cycles["extrapolate"][3:]) < np.mean(cycles["previous"][3:]) - 1.0
    assert np.abs(np.subtract(energies["extrapolate"], energies["previous"])).max() \
        / HARTREE < 1e-9


def test_extrapolation_history_replaces_same_geometry_and_resets():
    model = PySCFModel(SYMBOLS, WATER, guess="extrapolate")
    shift = np.array([0.0, 0.0, 0.001])
    for k in range(3):
        energy(model, WATER + k * shift, CHARGES, CHARGE_POS)
    energy(model, WATER + 2 * shift, CHARGES * 0.5, CHARGE_POS)   # same geometry, new charges
    assert len(model._history) == 3 and model.last_guess == "previous"
    energy(model, WATER + 3 * shift, CHARGES, CHARGE_POS)
    assert model.last_guess == "extrapolate"
    model.reset()
    energy(model, WATER, CHARGES, CHARGE_POS)
    assert model.last_guess == "cold" and len(model._history) == 1


def test_unrestricted_extrapolation():
    xyz = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 0.097]])
    model = PySCFModel(["O", "H"], xyz, method="UHF", spin=1, guess="extrapolate")
    ref = PySCFModel(["O", "H"], xyz, method="UHF", spin=1)
    for k in range(5):
        x = xyz + np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 0.002 * np.sin(k / 3)]])
        e = energy(model, x, [0.3], [[0.2, 0.05, 0.0]])
        assert abs(e - energy(ref, x, [0.3], [[0.2, 0.05, 0.0]])) / HARTREE < 1e-9
    assert model.last_guess == "extrapolate"
