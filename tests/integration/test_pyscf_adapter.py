"""Integration tests of the PySCF adapter against PySCF itself.

Tolerances, in atomic units: energies against a direct PySCF run 1e-9 hartree (the only
difference is PySCF's older bohr constant, ~1e-11 hartree here); analytic forces against
central finite differences 1e-5 hartree/bohr (step 1e-4 nm = 1.9e-3 bohr: truncation
error ~h^2 E''' ~ 1e-6, SCF noise conv_tol / h ~ 5e-8); translation invariance 1e-6.
"""
from __future__ import annotations

import sys
import warnings

import ase
import numpy as np
import pytest
from pyscf import gto, qmmm, scf

import bridge_adapters.pyscf.model as pyscf_model
from bridge.errors import CalculationError, EngineNotAvailable, SetupError
from bridge.protocols import EnergyModel
from bridge.units import ANGSTROM, HARTREE, HARTREE_PER_BOHR
from bridge_adapters.pyscf import PySCFModel

SYMBOLS = ["O", "H", "H"]
#: water, angstrom
WATER_A = np.array([[0.0, 0.0, 0.1173], [0.0, 0.7572, -0.4692], [0.0, -0.7572, -0.4692]])
WATER = WATER_A * ANGSTROM                                              # nm
#: a TIP3P-like water 0.3 nm away, as point charges (e) at nm
CHARGES = np.array([-0.834, 0.417, 0.417])
CHARGE_POS = np.array([[0.29, 0.02, 0.01], [0.33, 0.09, 0.03], [0.32, -0.06, 0.06]])

H = 1e-4              # nm, finite-difference step
FD_TOL = 1e-5         # hartree/bohr


def fd_forces(model, x, q, r, which):
    """Central-difference forces, kJ/(mol nm), on the QM atoms or on the charges."""
    target = x if which == "qm" else r
    out = np.zeros_like(target)
    for i in range(target.shape[0]):
        for k in range(3):
            e = []
            for sign in (1.0, -1.0):
                moved = target.copy()
                moved[i, k] += sign * H
                xx, rr = (moved, r) if which == "qm" else (x, moved)
                e.append(model.compute(xx, ("energy",), charges=q, charge_positions=rr)["energy"])
            out[i, k] = -(e[0] - e[1]) / (2 * H)
    return out


@pytest.fixture(scope="module")
def embedded():
    """RHF/6-31G water in three point charges: the model and its analytic results."""
    model = PySCFModel(SYMBOLS, WATER, method="RHF", basis="6-31g")
    out = model.compute(WATER, ("energy", "forces", "charge_forces"),
                        charges=CHARGES, charge_positions=CHARGE_POS)
    return model, out


def test_is_an_energy_model():
    model = PySCFModel(SYMBOLS, WATER)
    assert isinstance(model, EnergyModel)
    assert model.implemented_properties == ("energy", "forces", "charge_forces",
                                            "charge_potential")


def test_energy_equals_direct_pyscf():
    model = PySCFModel(SYMBOLS, WATER, basis="6-31g")
    e = model.compute(WATER, ("energy",))["energy"] / HARTREE
    mol = gto.M(atom=[(s, tuple(p)) for s, p in zip(SYMBOLS, WATER_A)], unit="Angstrom",
                basis="6-31g", verbose=0)
    mf = scf.RHF(mol)
    mf.conv_tol = 1e-10
    ref = mf.kernel()
    assert mf.converged
    assert abs(e - ref) < 1e-9
    assert model.mol.unit.lower().startswith("bohr")
    assert np.allclose(model.mol.atom_coords(unit="Angstrom"), WATER_A, atol=1e-9)


def test_embedded_energy_equals_direct_pyscf_qmmm(embedded):
    _, out = embedded
    mol = gto.M(atom=[(s, tuple(p)) for s, p in zip(SYMBOLS, WATER_A)], unit="Angstrom",
                basis="6-31g", verbose=0)
    mf = qmmm.add_mm_charges(scf.RHF(mol), CHARGE_POS / ANGSTROM, CHARGES, unit="Angstrom")
    mf.conv_tol = 1e-10
    ref = mf.kernel()
    assert mf.converged
    assert abs(out["energy"] / HARTREE - ref) < 1e-9
    vacuum = PySCFModel(SYMBOLS, WATER, basis="6-31g").compute(WATER, ("energy",))["energy"]
    assert abs(out["energy"] - vacuum) > 1.0        # kJ/mol: the charges do act


def test_qm_forces_match_finite_differences(embedded):
    model, out = embedded
    fd = fd_forces(model, WATER, CHARGES, CHARGE_POS, "qm")
    err = np.abs(out["forces"] - fd).max() / HARTREE_PER_BOHR
    assert err < FD_TOL
    assert np.abs(fd).max() / HARTREE_PER_BOHR > 1e-3    # not a trivially zero comparison


def test_charge_forces_match_finite_differences(embedded):
    model, out = embedded
    fd = fd_forces(model, WATER, CHARGES, CHARGE_POS, "mm")
    assert out["charge_forces"].shape == (3, 3)
    err = np.abs(out["charge_forces"] - fd).max() / HARTREE_PER_BOHR
    assert err < FD_TOL
    assert np.abs(fd).max() / HARTREE_PER_BOHR > 1e-3


def test_net_force_vanishes(embedded):
    _, out = embedded
    net = out["forces"].sum(axis=0) + out["charge_forces"].sum(axis=0)
    assert np.abs(net).max() / HARTREE_PER_BOHR < 1e-6
    assert np.abs(out["forces"].sum(axis=0)).max() / HARTREE_PER_BOHR > 1e-3


def test_density_reuse_saves_scf_cycles():
    moved = WATER + np.array([[0.0, 0.0, 0.002], [0.0, 0.001, 0.0], [0.0, -0.001, 0.0]])
    cold = PySCFModel(SYMBOLS, moved, basis="6-31g")
    e_cold = cold.compute(moved, ("energy",))["energy"]
    warm = PySCFModel(SYMBOLS, WATER, basis="6-31g")
    warm.compute(WATER, ("energy",))
    e_warm = warm.compute(moved, ("energy",))["energy"]
    assert warm.last_scf_cycles < cold.last_scf_cycles
    assert warm.scf_runs == 2
    assert abs(e_warm - e_cold) / HARTREE < 1e-9
    nocache = PySCFModel(SYMBOLS, WATER, basis="6-31g", reuse_density=False)
    nocache.compute(WATER, ("energy",))
    nocache.compute(moved, ("energy",))
    assert nocache.last_scf_cycles == cold.last_scf_cycles


def test_cache_does_not_recompute(monkeypatch):
    runs = []
    real = pyscf_model.run_scf_with_recovery

    def counting(mf, dm0=None, **kw):
        runs.append(1)
        return real(mf, dm0, **kw)

    monkeypatch.setattr(pyscf_model, "run_scf_with_recovery", counting)
    model = PySCFModel(SYMBOLS, WATER)
    first = model.compute(WATER, ("energy",), charges=CHARGES, charge_positions=CHARGE_POS)
    assert len(runs) == 1
    both = model.compute(WATER.copy(), ("energy", "forces", "charge_forces"),
                         charges=CHARGES.copy(), charge_positions=CHARGE_POS.copy())
    assert len(runs) == 1 and model.scf_runs == 1          # gradients from the cached SCF
    assert both["energy"] == first["energy"]
    both["forces"][:] = 0.0
    again = model.compute(WATER, ("forces",), charges=CHARGES, charge_positions=CHARGE_POS)
    assert np.abs(again["forces"]).max() > 0                # returned arrays are copies
    assert len(runs) == 1
    model.compute(WATER, ("energy",), charges=CHARGES * 0.5, charge_positions=CHARGE_POS)
    assert len(runs) == 2                                   # new charges: new SCF
    model.compute(WATER, ("energy",))
    assert len(runs) == 3                                   # no charges: new SCF
    model.compute(WATER, ("energy",))
    assert len(runs) == 3


def test_non_convergence_raises_with_state():
    model = PySCFModel(SYMBOLS, WATER, basis="6-31g", max_cycle=2, recovery=False)
    with pytest.raises(CalculationError) as info:
        model.compute(WATER, ("energy",))
    err = info.value
    assert "not converged" in err.reason
    assert err.state["converged"] is False
    assert err.state["cycles"] == 2
    assert np.isfinite(err.state["e_tot"])
    assert len(err.state["e_history"]) == 2
    assert err.state["mo_energy"].shape == (13,)
    assert model.results == {} and model.scf_runs == 0
    assert [a["step"] for a in err.state["attempts"]] == ["plain"]
    model.set(max_cycle=100)
    assert model.compute(WATER, ("energy",))["energy"] / HARTREE < -75.0


def test_bad_inputs_raise_setup_error():
    model = PySCFModel(SYMBOLS, WATER)
    bad = WATER.copy()
    bad[1, 2] = np.nan
    with pytest.raises(SetupError, match="NaN"):
        model.compute(bad)
    with pytest.raises(SetupError, match="shape"):
        model.compute(WATER[:2])
    with pytest.raises(SetupError, match="NaN"):
        PySCFModel(SYMBOLS, bad)
    with pytest.raises(SetupError):
        model.compute(WATER, ("energy",), charges=CHARGES)
    with pytest.raises(SetupError, match="shape"):
        model.compute(WATER, ("energy",), charges=CHARGES, charge_positions=CHARGE_POS[:2])
    with pytest.raises(SetupError, match="stress"):
        model.compute(WATER, ("energy", "stress"))
    with pytest.raises(SetupError, match="sits on QM atom"):
        model.compute(WATER, ("energy",), charges=[0.5], charge_positions=WATER[:1])


def test_unknown_and_invalid_options_raise_setup_error():
    with pytest.raises(SetupError, match="conv_tol"):
        PySCFModel(SYMBOLS, WATER, conv_tl=1e-8)
    with pytest.raises(SetupError, match="method"):
        PySCFModel(SYMBOLS, WATER, method="CCSD")
    with pytest.raises(SetupError, match="xc"):
        PySCFModel(SYMBOLS, WATER, method="RKS")
    with pytest.raises(SetupError, match="functional"):
        PySCFModel(SYMBOLS, WATER, method="RKS", xc="b3lpy")
    with pytest.raises(SetupError, match="Kohn-Sham"):
        PySCFModel(SYMBOLS, WATER, method="RHF", grid_level=2)
    with pytest.raises(SetupError, match="UHF"):
        PySCFModel(SYMBOLS, WATER, spin=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)    # PySCF's basis-set-exchange advert
        with pytest.raises(SetupError, match="basis"):
            PySCFModel(SYMBOLS, WATER, basis="no-such-basis")
    with pytest.raises(SetupError, match="max_cycle"):
        PySCFModel(SYMBOLS, WATER, max_cycle=0)
    with pytest.raises(SetupError, match="init_guess"):
        PySCFModel(SYMBOLS, WATER, init_guess="minoa")
    with pytest.raises(SetupError, match="spin"):
        PySCFModel(["O", "H"], WATER[:2], method="UHF", spin=0)
    model = PySCFModel(SYMBOLS, WATER)
    with pytest.raises(SetupError, match="max_cycle"):
        model.set(max_cylce=5)


def test_rks_forces_match_finite_differences():
    q, r = CHARGES[:2], CHARGE_POS[:2]
    model = PySCFModel(SYMBOLS, WATER, method="RKS", xc="b3lyp", basis="sto-3g", grid_level=0)
    assert model.options["grid_response"] is True
    out = model.compute(WATER, ("energy", "forces", "charge_forces"), charges=q, charge_positions=r)
    tol = 2 * FD_TOL
    fd_qm = fd_forces(model, WATER, q, r, "qm")
    assert np.abs(out["forces"] - fd_qm).max() / HARTREE_PER_BOHR < tol
    fd_mm = fd_forces(model, WATER, q, r, "mm")
    assert np.abs(out["charge_forces"] - fd_mm).max() / HARTREE_PER_BOHR < tol
    net = out["forces"].sum(axis=0) + out["charge_forces"].sum(axis=0)
    assert np.abs(net).max() / HARTREE_PER_BOHR < 1e-6


def test_uhf_open_shell_matches_direct_pyscf():
    xyz_a = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 0.97]])
    model = PySCFModel(["O", "H"], xyz_a * ANGSTROM, method="UHF", spin=1, basis="sto-3g")
    out = model.compute(xyz_a * ANGSTROM, ("energy", "forces", "charge_forces"),
                        charges=[0.4], charge_positions=[[0.25, 0.05, 0.0]])
    mol = gto.M(atom=[("O", tuple(xyz_a[0])), ("H", tuple(xyz_a[1]))], unit="Angstrom",
                basis="sto-3g", spin=1, verbose=0)
    mf = qmmm.add_mm_charges(scf.UHF(mol), [[2.5, 0.5, 0.0]], [0.4], unit="Angstrom")
    mf.conv_tol = 1e-10
    assert abs(out["energy"] / HARTREE - mf.kernel()) < 1e-9
    net = out["forces"].sum(axis=0) + out["charge_forces"].sum(axis=0)
    assert np.abs(net).max() / HARTREE_PER_BOHR < 1e-6


def test_from_atoms():
    atoms = ase.Atoms("OH2", positions=WATER_A)
    model = PySCFModel.from_atoms(atoms, basis="6-31g")
    assert model.symbols == ("O", "H", "H")
    assert np.allclose(model.positions, WATER, rtol=0, atol=1e-15)
    direct = PySCFModel(SYMBOLS, WATER, basis="6-31g")
    e = model.compute(WATER, ("energy",))["energy"]
    assert abs(e - direct.compute(WATER, ("energy",))["energy"]) / HARTREE < 1e-12
    atoms.pbc = True
    atoms.cell = [10.0, 10.0, 10.0]
    with pytest.raises(SetupError, match="periodic"):
        PySCFModel.from_atoms(atoms)


def test_missing_pyscf_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyscf", None)
    with pytest.raises(EngineNotAvailable) as info:
        PySCFModel(SYMBOLS, WATER)
    assert info.value.extra == "pyscf"
    assert "multiscale-bridge[pyscf]" in str(info.value)
