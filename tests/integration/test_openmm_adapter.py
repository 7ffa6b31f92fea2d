"""OpenMM adapter against the real engine (Reference platform: double precision)."""
import ase.build
import numpy as np
import openmm
import pytest

from bridge import checkpoint, lattice
from bridge.errors import SetupError
from bridge_adapters.openmm import OpenMMEngine, describe, lennard_jones_system, select_platform

SIGMA, EPS, MASS = 0.3405, 0.99774, 39.948


def cluster(n=13, seed=0):
    """A small jittered FCC fragment, non-periodic."""
    pos, _ = lattice.fcc(1.56 * SIGMA, (2, 2, 2))
    rng = np.random.default_rng(seed)
    return pos[:n] + 0.01 * rng.standard_normal((n, 3))


def lj_engine(n=13, platform="Reference", **kw):
    x = cluster(n)
    system = lennard_jones_system(n, SIGMA, EPS, MASS, cutoff=None)
    return OpenMMEngine(system, x, platform=platform, **kw)


def test_default_platform_is_first_usable_in_preference_order():
    eng = lj_engine(platform=None)
    usable = describe()["usable"].split(", ")
    expected = next(p for p in ("CUDA", "OpenCL", "CPU", "Reference") if p in usable)
    assert eng.platform == expected


def test_unknown_platform_is_refused_with_a_fix():
    with pytest.raises(SetupError, match="not registered.*fix"):
        lj_engine(platform="Metal")


def test_bad_inputs_are_refused():
    system = lennard_jones_system(3, SIGMA, EPS, MASS)
    x = np.zeros((3, 3))
    x[:, 0] = [0, 0.4, 0.8]
    with pytest.raises(SetupError, match="NaN"):
        OpenMMEngine(system, np.full((3, 3), np.nan), platform="Reference")
    with pytest.raises(SetupError, match="shape"):
        OpenMMEngine(system, x[:2], platform="Reference")
    with pytest.raises(SetupError, match="timestep"):
        OpenMMEngine(system, x, timestep=-1.0, platform="Reference")
    eng = OpenMMEngine(system, x, platform="Reference")
    with pytest.raises(SetupError, match="indices"):
        eng.add_external_force([0, 5])
    with pytest.raises(SetupError, match="mode"):
        eng.add_external_force([0], mode="magic")
    with pytest.raises(SetupError, match="reduced form"):
        eng.set_box(np.array([[1.0, 0.3, 0], [0, 1, 0], [0, 0, 1]]))


def test_forces_are_minus_the_energy_gradient():
    eng = lj_engine()
    x0 = eng.get_positions()
    f = eng.get_forces()
    h = 1e-6
    rng = np.random.default_rng(1)
    for i, k in zip(rng.integers(0, len(x0), 5), rng.integers(0, 3, 5)):
        xp, xm = x0.copy(), x0.copy()
        xp[i, k] += h
        xm[i, k] -= h
        eng.set_positions(xp)
        ep = eng.get_potential_energy()
        eng.set_positions(xm)
        em = eng.get_potential_energy()
        # central difference: O(h^2) truncation ~1e-8, round-off ~1e-16 * E / h ~1e-9 (kJ/mol/nm)
        assert -(ep - em) / (2 * h) == pytest.approx(f[i, k], abs=1e-5 * max(1.0, abs(f[i, k])))
    eng.set_positions(x0)


@pytest.mark.parametrize("mode", ["python", "parameters"])
def test_external_force_adds_force_and_consistent_energy(mode):
    eng = lj_engine()
    idx = [1, 4, 7]
    f_before = eng.get_forces()
    e_before = eng.get_potential_energy()
    h = eng.add_external_force(idx, mode=mode)
    fext = np.array([[1.0, -2.0, 3.0], [0.5, 0.0, -1.0], [-4.0, 2.0, 0.25]])
    h.set_forces(fext)
    f_after = eng.get_forces()
    np.testing.assert_allclose(f_after[idx] - f_before[idx], fext, atol=1e-9)
    others = np.setdiff1d(np.arange(eng.n_particles), idx)
    np.testing.assert_allclose(f_after[others], f_before[others], atol=1e-9)
    # zero energy at the reference positions, -f.dx after a displacement
    assert eng.get_potential_energy() == pytest.approx(e_before, abs=1e-9)
    x = eng.get_positions()
    dx = np.zeros_like(x)
    dx[idx] = 1e-3
    eng.set_positions(x + dx)
    e_lj = eng.get_potential_energy()
    eng.set_positions(x)
    assert h.energy(x + dx) == pytest.approx(-np.sum(fext * 1e-3), rel=1e-12)
    # finite-difference check of the total force on a subset atom
    i = 4
    for k in range(3):
        xp, xm = x.copy(), x.copy()
        xp[i, k] += 1e-6
        xm[i, k] -= 1e-6
        eng.set_positions(xp)
        ep = eng.get_potential_energy()
        eng.set_positions(xm)
        em = eng.get_potential_energy()
        assert -(ep - em) / 2e-6 == pytest.approx(f_after[i, k], abs=1e-5)
    assert np.isfinite(e_lj)


@pytest.mark.parametrize("mode", ["python", "parameters"])
def test_nve_with_held_forces_conserves_energy(mode):
    # smooth potential (switched cutoff) so that Verlet conserves energy to O(dt^2)
    n = 13
    system = lennard_jones_system(n, SIGMA, EPS, MASS, cutoff=1.0, switch_distance=0.8)
    eng = OpenMMEngine(system, cluster(n), timestep=0.002, platform="Reference")
    h = eng.add_external_force([0, 1], mode=mode)
    eng.set_velocities_to_temperature(20.0, seed=3)
    h.set_forces(np.array([[2.0, 0, 0], [-2.0, 0, 0]]))
    energies = []
    for _ in range(50):
        eng.step(10)
        energies.append(eng.get_potential_energy() + eng.get_kinetic_energy())
    energies = np.array(energies)
    ke = eng.get_kinetic_energy()
    # fluctuation of the total energy small against the kinetic energy (dt = 2 fs, 20 K argon)
    assert np.ptp(energies) < 0.02 * max(ke, 1.0)


def test_forces_not_a_step_late_after_set_forces():
    """The step right after set_forces already uses the new forces (python mode)."""
    results = []
    for push in (0.0, 50.0):
        eng = lj_engine(timestep=0.001)
        h = eng.add_external_force([0])
        h.set_forces(np.array([[push, 0.0, 0.0]]))
        x0 = eng.get_positions()[0, 0]
        eng.step(1)
        results.append(eng.get_positions()[0, 0] - x0)
    # velocity Verlet-like leapfrog: dx = (F/m) dt^2 after one step from rest
    assert results[1] - results[0] == pytest.approx(50.0 / MASS * 0.001 ** 2, rel=1e-6)


def test_exact_state_restore_with_langevin_rng():
    eng = lj_engine(temperature=50.0, seed=7)
    h = eng.add_external_force([2, 3])
    h.set_forces(np.ones((2, 3)))
    eng.step(5)
    state = eng.get_state()
    eng.step(20)
    x1, v1 = eng.get_positions(), eng.get_velocities()
    h.set_forces(np.zeros((2, 3)))
    eng.set_state(state)
    np.testing.assert_array_equal(h.forces, np.ones((2, 3)))
    eng.step(20)
    np.testing.assert_array_equal(eng.get_positions(), x1)
    np.testing.assert_array_equal(eng.get_velocities(), v1)


def test_coupled_checkpoint_file_restarts_bit_exact(tmp_path):
    eng = lj_engine(temperature=30.0, seed=11)
    rng = np.random.default_rng(5)
    eng.step(3)
    path = checkpoint.save_run(tmp_path / "run.h5", engines={"md": eng}, rngs={"noise": rng})
    eng.step(10)
    x_ref = eng.get_positions()
    r_ref = rng.random(3)
    eng2 = lj_engine(temperature=30.0, seed=99)
    rng2 = np.random.default_rng(0)
    checkpoint.restore_run(path, engines={"md": eng2}, rngs={"noise": rng2})
    eng2.step(10)
    np.testing.assert_array_equal(eng2.get_positions(), x_ref)
    np.testing.assert_array_equal(rng2.random(3), r_ref)
    assert list(tmp_path.iterdir()) == [path]


def test_from_atoms_matches_lattice_sum():
    cutoff = 2.55 * SIGMA
    pot = lattice.PairPotential.lennard_jones(SIGMA, EPS, cutoff)
    a = lattice.equilibrium_lattice_constant(pot, 1.55 * SIGMA)
    atoms = ase.build.bulk("Ar", "fcc", a=a * 10, cubic=True).repeat((4, 4, 4))
    eng = OpenMMEngine.from_atoms(atoms, lennard_jones={"Ar": (SIGMA, EPS)}, cutoff=cutoff, platform="Reference")
    assert eng.n_particles == 256
    np.testing.assert_allclose(eng.masses, atoms.get_masses())
    e = eng.get_potential_energy() / len(atoms)
    assert e == pytest.approx(lattice.energy_per_atom(pot, a), rel=1e-10)
    with pytest.raises(SetupError, match="Lennard-Jones parameters"):
        OpenMMEngine.from_atoms(atoms, lennard_jones={"Ne": (0.27, 0.3)}, cutoff=cutoff)


def test_select_platform_named_reference():
    system = lennard_jones_system(2, SIGMA, EPS, MASS)
    ctx = select_platform(system, openmm.VerletIntegrator(0.001), "Reference")
    assert ctx.getPlatform().getName() == "Reference"


def test_platform_that_fails_to_start_falls_back_to_the_next(monkeypatch):
    """A registered platform that cannot start (CUDA without a GPU) must not block the others."""
    import bridge_adapters.openmm as adapter

    real_context = openmm.Context
    first = next(p for p in adapter.PLATFORM_ORDER if p in adapter.platforms())

    def flaky_context(system, integrator, platform, props):
        if platform.getName() == first:
            real_context(system, integrator, openmm.Platform.getPlatformByName("Reference"))  # binds it
            raise openmm.OpenMMException(f"{first} cannot start here")
        return real_context(system, integrator, platform, props)

    monkeypatch.setattr(adapter.openmm, "Context", flaky_context)
    eng = lj_engine(platform=None)
    assert eng.platform != first
    assert first in eng.context.msbridge_skipped
    x0 = eng.get_positions()
    eng.step(2)
    assert not np.array_equal(eng.get_positions(), x0)


def test_parameters_mode_energy_is_minimum_image_in_a_periodic_box():
    """A wrapped coordinate (as GPU platforms give custom forces) must not shift the energy by f.L."""
    pos, box = lattice.fcc(1.56 * SIGMA, (3, 3, 3))
    system = lennard_jones_system(len(pos), SIGMA, EPS, MASS, box=box, cutoff=0.75)
    plain = OpenMMEngine(lennard_jones_system(len(pos), SIGMA, EPS, MASS, box=box, cutoff=0.75), pos,
                         platform="Reference")
    eng = OpenMMEngine(system, pos, platform="Reference")
    h = eng.add_external_force([0, 5], mode="parameters")
    f = np.array([[3.0, -1.0, 2.0], [0.5, 0.5, 0.5]])
    h.set_forces(f)
    x = eng.get_positions()
    shifted = x.copy()
    shifted[0] += box[0] + box[2]                 # the same atom one box image away
    shifted[0, 0] += 1e-3
    eng.set_positions(shifted)
    plain.set_positions(shifted)
    held = eng.get_potential_energy() - plain.get_potential_energy()
    assert held == pytest.approx(-3.0 * 1e-3, abs=1e-8)
