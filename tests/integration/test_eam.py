"""EAM iron in OpenMM (CustomGBForce on setfl splines) against ASE and the analytic NumPy evaluation."""
import numpy as np
import pytest

from bridge.defects import bcc_sites
from bridge.eam import EAM, mendelev_fe, read_setfl, write_setfl
from bridge.errors import SetupError
from bridge.units import EV


@pytest.fixture(scope="module")
def fe(tmp_path_factory):
    f = mendelev_fe()
    path = write_setfl(tmp_path_factory.mktemp("eam") / "Fe.eam.alloy", f)
    return f, read_setfl(path), path


def test_analytic_derivatives_and_the_short_range_splice():
    f = mendelev_fe()
    r = np.linspace(0.3, 5.25, 400)
    h = 1e-6
    assert np.abs((f.phi(r + h) - f.phi(r - h)) / (2 * h) - f.dphi(r)).max() < 1e-5 * np.abs(f.dphi(r)).max()
    assert np.abs((f.density(r + h) - f.density(r - h)) / (2 * h) - f.ddensity(r)).max() < 1e-6
    for r0 in (1.0, 2.05):                                          # continuous where the pieces join
        assert abs(f.phi(np.array(r0 - 1e-9)) - f.phi(np.array(r0 + 1e-9))) < 1e-6 * abs(f.phi(np.array(r0)))
    assert f.phi(np.array(0.5)) > 500.0                              # the screened Coulomb wall


def test_openmm_ase_and_numpy_agree(fe):
    from ase import Atoms
    from ase.calculators.eam import EAM as AseEAM

    from bridge_adapters.openmm.eam import OpenMMEAM

    f, tables, path = fe
    a = f.lattice_constant / 10
    X = bcc_sites(a, (5, 5, 5)) + 0.25 * a
    L = np.full(3, 5 * a)
    X = X + 0.01 * np.random.default_rng(0).standard_normal(X.shape)
    E0, F0, _ = EAM(f, L).energy_forces(X)
    E1, F1 = OpenMMEAM(tables, len(X), L).energy_forces(X)
    atoms = Atoms(f"Fe{len(X)}", positions=X * 10, cell=L * 10, pbc=True)
    atoms.calc = AseEAM(potential=str(path), form="alloy")
    E2, F2 = atoms.get_potential_energy() * EV, atoms.get_forces() * EV * 10
    scale = np.abs(F0).max()
    assert abs(E1 - E0) < 1e-9 * abs(E0) and abs(E2 - E0) < 1e-8 * abs(E0)
    assert np.abs(F1 - F0).max() < 1e-6 * scale and np.abs(F2 - F0).max() < 1e-6 * scale
    h = 1e-6                                                         # and the NumPy forces are -dE/dx
    Xp, Xm = X.copy(), X.copy()
    Xp[3, 1] += h
    Xm[3, 1] -= h
    fd = -(EAM(f, L).energy_forces(Xp)[0] - EAM(f, L).energy_forces(Xm)[0]) / (2 * h)
    assert abs(fd - F0[3, 1]) < 1e-5 * scale


def test_vacancy_relaxation_lowers_the_formation_energy(fe):
    from bridge_adapters.openmm.eam import OpenMMEAM

    f, tables, _ = fe
    a = f.lattice_constant / 10
    X = bcc_sites(a, (5, 5, 5)) + 0.25 * a
    L = np.full(3, 5 * a)
    N = len(X)
    perfect = OpenMMEAM(tables, N, L).energy_forces(X)[0]
    vac = OpenMMEAM(tables, N - 1, L)
    unrelaxed = (vac.energy_forces(X[1:])[0] - (N - 1) / N * perfect) / EV
    relaxed = (vac.minimize(X[1:], tolerance=1e-3)[0] - (N - 1) / N * perfect) / EV
    assert 1.8 < unrelaxed < 1.9 and 1.6 < relaxed < unrelaxed


def test_small_box_and_bad_positions_are_refused(fe):
    from bridge_adapters.openmm.eam import OpenMMEAM

    f, tables, _ = fe
    with pytest.raises(SetupError, match="twice the cutoff"):
        OpenMMEAM(tables, 2, np.full(3, 0.5))
    eam = OpenMMEAM(tables, 2, np.full(3, 1.2))
    with pytest.raises(SetupError, match="NaN"):
        eam.energy_forces(np.full((2, 3), np.nan))


def test_engines_agree_for_a_close_pair_in_a_cascade(fe):
    """Two atoms pushed to 0.65-0.9 Å (a head-on collision): the tables and the wall still agree."""
    from bridge_adapters.openmm.eam import OpenMMEAM

    f, tables, _ = fe
    a = f.lattice_constant / 10
    X = bcc_sites(a, (5, 5, 5)) + 0.25 * a
    L = np.full(3, 5 * a)
    om = OpenMMEAM(tables, len(X), L)
    j = int(np.argmin(np.linalg.norm(X[1:] - X[0], axis=1))) + 1
    u = (X[j] - X[0]) / np.linalg.norm(X[j] - X[0])
    for d in (0.09, 0.075, 0.065):                                      # nm
        Y = X.copy()
        Y[j] = X[0] + d * u
        E0, F0, rho = EAM(f, L).energy_forces(Y)
        E1, F1 = om.energy_forces(Y)
        assert rho.max() < tables.rho[-1]                               # inside the table
        assert abs(E1 - E0) < 1e-6 * abs(E0) and np.abs(F1 - F0).max() < 1e-5 * np.abs(F0).max()
