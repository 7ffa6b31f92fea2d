"""Integration tests of the ASE adapter with ASE's EMT calculator on a Cu13 icosahedron.

Unit checks compare against ASE's own values converted with ASE's own constants
(``ase.units``, CODATA 2014), so they agree with the bridge's CODATA constants to ~1e-9
relative; the tolerance is 1e-8.  Energy conservation: velocity Verlet at 300 K, 0.5 ps;
the largest excursion of E = K + U from its start is ~0.05 kJ/mol at 1 fs (bound 0.1 kJ/mol,
against K ~ 55 kJ/mol) and scales as dt^2 (ratio 2 fs / 1 fs between 3 and 5).
"""
from __future__ import annotations

import sys

import numpy as np
import pytest
from ase import Atoms, units
from ase.calculators.calculator import Calculator, CalculationFailed, all_changes
from ase.calculators.emt import EMT
from ase.cluster import Icosahedron
from ase.md.verlet import VelocityVerlet

from bridge.errors import CalculationError, EngineNotAvailable, SetupError
from bridge.protocols import EnergyModel, ExternalForceHandle, ParticleEngine
from bridge_adapters.ase import ASEEngine, ASEModel

#: one eV in kJ/mol and one eV/Å in kJ/(mol nm), by ASE's own constants
EV_ASE = units.mol / units.kJ
EV_PER_A_ASE = EV_ASE * 10.0
#: nm/ps per (Å per ASE time unit): Å -> nm is 0.1, ASE time -> ps is 1 / (1000 fs)
VEL_ASE = 0.1 * 1000.0 * units.fs
RTOL = 1e-8


def cluster(temperature_K=300.0, seed=7):
    """Cu13 with Maxwell-Boltzmann momenta (ASE units), zero total momentum."""
    atoms = Icosahedron("Cu", 2)
    rng = np.random.default_rng(seed)
    m = atoms.get_masses()[:, None]
    p = rng.normal(size=(len(atoms), 3)) * np.sqrt(m * units.kB * temperature_K)
    p -= m * p.sum(axis=0) / m.sum()
    atoms.set_momenta(p)
    return atoms


def total_energy(engine):
    return engine.get_potential_energy() + engine.get_kinetic_energy()


def test_protocols():
    engine = ASEEngine(cluster(), EMT())
    assert isinstance(engine, ParticleEngine)
    assert isinstance(engine.add_external_force([0]), ExternalForceHandle)
    assert isinstance(ASEModel(EMT(), cluster()), EnergyModel)


def test_values_match_ase_converted():
    atoms = cluster()
    ref = atoms.copy()
    ref.calc = EMT()
    engine = ASEEngine(atoms, EMT())
    assert engine.n_particles == 13
    assert np.array_equal(engine.masses, ref.get_masses())
    assert np.allclose(engine.get_positions(), ref.get_positions() * 0.1, rtol=RTOL, atol=0)
    assert np.allclose(engine.get_velocities(), ref.get_velocities() * VEL_ASE, rtol=RTOL, atol=0)
    assert engine.get_potential_energy() == pytest.approx(ref.get_potential_energy() * EV_ASE,
                                                          rel=RTOL)
    assert np.allclose(engine.get_forces(), ref.get_forces() * EV_PER_A_ASE, rtol=RTOL,
                       atol=1e-10)
    assert engine.get_kinetic_energy() == pytest.approx(ref.get_kinetic_energy() * EV_ASE,
                                                        rel=RTOL)
    assert engine.get_kinetic_energy() > 20.0                  # kJ/mol, 300 K is there
    model = ASEModel(EMT(), atoms)
    out = model.compute(engine.get_positions())
    assert out["energy"] == pytest.approx(ref.get_potential_energy() * EV_ASE, rel=RTOL)
    assert np.allclose(out["forces"], engine.get_forces(), rtol=1e-12, atol=1e-12)


def test_step_matches_plain_ase_velocity_verlet():
    atoms = cluster()
    engine = ASEEngine(atoms, EMT(), timestep=0.001)
    engine.step(20)
    assert engine.time == pytest.approx(0.020, rel=1e-12)
    ref = atoms.copy()
    ref.calc = EMT()
    VelocityVerlet(ref, timestep=1.0 * units.fs).run(20)
    assert np.allclose(engine.get_positions(), ref.get_positions() * 0.1, rtol=0, atol=1e-12)
    assert np.allclose(engine.get_velocities(), ref.get_velocities() * VEL_ASE, rtol=RTOL,
                       atol=1e-12)
    assert np.array_equal(atoms.get_positions(), Icosahedron("Cu", 2).get_positions())


def excursion(dt, t_total=0.5):
    engine = ASEEngine(cluster(), EMT(), timestep=dt)
    e0 = total_energy(engine)
    energies = []
    for _ in range(int(round(t_total / dt)) // 10):
        engine.step(10)
        energies.append(total_energy(engine))
    return np.abs(np.array(energies) - e0).max()


def test_velocity_verlet_conserves_energy():
    e1 = excursion(0.001)
    e2 = excursion(0.002)
    assert e1 < 0.1                            # kJ/mol over 0.5 ps, 13 atoms at 300 K
    assert 3.0 < e2 / e1 < 5.0                 # second order in dt


def test_external_force_adds_force_and_energy():
    engine = ASEEngine(cluster(), EMT())
    model = engine.model()
    x0 = engine.get_positions()
    f0 = engine.get_forces()
    e0 = engine.get_potential_energy()
    handle = engine.add_external_force([2, 5, 11])
    assert np.array_equal(handle.indices, [2, 5, 11])
    fext = np.array([[150.0, -20.0, 5.0], [0.0, 80.0, -40.0], [-30.0, 0.0, 60.0]])  # kJ/(mol nm)
    handle.set_forces(fext)
    f1 = engine.get_forces()
    assert np.allclose(f1[[2, 5, 11]] - f0[[2, 5, 11]], fext, rtol=1e-12, atol=1e-9)
    assert np.allclose(np.delete(f1, [2, 5, 11], axis=0), np.delete(f0, [2, 5, 11], axis=0),
                       rtol=0, atol=1e-12)
    assert engine.get_potential_energy() == pytest.approx(e0, abs=1e-9)
    assert np.allclose(handle.reference, x0[[2, 5, 11]], rtol=1e-15, atol=1e-15)
    assert np.array_equal(handle.forces, fext)
    assert handle.energy(x0) == 0.0

    rng = np.random.default_rng(3)
    x1 = x0 + rng.normal(scale=0.003, size=x0.shape)
    engine.set_positions(x1)
    work = -np.sum(fext * (x1[[2, 5, 11]] - x0[[2, 5, 11]]))
    base = model.compute(x1, ("energy",))["energy"]
    assert handle.energy(x1) == pytest.approx(work, rel=1e-9)
    assert handle.energy(engine.get_positions()) == pytest.approx(work, rel=1e-9)
    assert abs(work) > 0.1
    assert engine.get_potential_energy() == pytest.approx(base + work, rel=1e-12, abs=1e-9)

    h = 1e-5                                                # nm
    fd = np.zeros((4, 3))
    for row, i in enumerate([0, 2, 5, 11]):
        for k in range(3):
            e = []
            for sign in (1.0, -1.0):
                x = x1.copy()
                x[i, k] += sign * h
                engine.set_positions(x)
                e.append(engine.get_potential_energy())
            fd[row, k] = -(e[0] - e[1]) / (2 * h)
    engine.set_positions(x1)
    assert np.allclose(fd, engine.get_forces()[[0, 2, 5, 11]], rtol=0, atol=1e-3)

    handle.remove()
    assert engine.get_potential_energy() == pytest.approx(base, rel=1e-12)
    with pytest.raises(SetupError):
        handle.set_forces(fext)


def test_external_force_conserves_energy_while_held():
    engine = ASEEngine(cluster(), EMT(), timestep=0.001)
    handle = engine.add_external_force([0, 1])
    handle.set_forces([[200.0, 0.0, 0.0], [-200.0, 50.0, 0.0]])
    e0 = total_energy(engine)
    energies = []
    for _ in range(30):
        engine.step(10)
        energies.append(total_energy(engine))
    assert np.abs(np.array(energies) - e0).max() < 0.1
    assert abs(handle.energy(engine.get_positions())) > 0.5   # the forces did work the energy books


def test_state_round_trip_is_bit_for_bit():
    engine = ASEEngine(cluster(), EMT(), timestep=0.002)
    handle = engine.add_external_force([4])
    engine.step(5)
    handle.set_forces([[100.0, -50.0, 25.0]])
    state = engine.get_state()
    assert all(isinstance(v, np.ndarray) for v in state.values())
    assert state["positions"].shape == (13, 3) and state["cell"].shape == (3, 3)
    assert float(state["time"]) == pytest.approx(0.010)
    engine.step(50)
    x_ref, v_ref, t_ref = engine.get_positions(), engine.get_velocities(), engine.time
    e_ref = engine.get_potential_energy()

    handle.set_forces([[0.0, 0.0, 0.0]])
    engine.set_state(state)
    assert engine.time == float(state["time"])
    assert np.array_equal(engine.get_positions(), state["positions"])
    engine.step(50)
    assert np.array_equal(engine.get_positions(), x_ref)
    assert np.array_equal(engine.get_velocities(), v_ref)
    assert engine.time == pytest.approx(t_ref, rel=1e-14)
    assert engine.get_potential_energy() == e_ref

    fresh = ASEEngine(cluster(seed=99), EMT(), timestep=0.002)
    fresh.add_external_force([4])
    fresh.set_state(state)
    fresh.step(50)
    assert np.array_equal(fresh.get_positions(), x_ref)

    edited = dict(state)
    edited["positions"] = state["positions"] + 0.001
    engine.set_state(edited)
    assert np.allclose(engine.get_positions(), state["positions"] + 0.001, rtol=0, atol=1e-15)
    with pytest.raises(SetupError, match="external"):
        ASEEngine(cluster(), EMT()).set_state(state)


def test_to_atoms_round_trip():
    engine = ASEEngine(cluster(), EMT(), timestep=0.001)
    engine.step(10)
    atoms = engine.to_atoms()
    assert atoms.calc is None
    assert np.allclose(atoms.get_positions() * 0.1, engine.get_positions(), rtol=0, atol=1e-15)
    atoms.positions[0, 0] += 1.0                      # a copy: the engine is untouched
    assert not np.allclose(atoms.get_positions() * 0.1, engine.get_positions())
    again = ASEEngine(engine.to_atoms(), EMT(), timestep=0.001)
    assert np.array_equal(again.get_positions(), engine.get_positions())
    assert np.array_equal(again.get_velocities(), engine.get_velocities())
    assert np.array_equal(again.get_forces(), engine.get_forces())
    again.step(10)
    engine.step(10)
    assert np.array_equal(again.get_positions(), engine.get_positions())


def test_set_positions_and_velocities():
    engine = ASEEngine(cluster(), EMT())
    x = engine.get_positions() * 1.01
    v = np.full((13, 3), 0.5)
    engine.set_positions(x)
    engine.set_velocities(v)
    assert np.allclose(engine.get_positions(), x, rtol=1e-15, atol=0)
    assert np.allclose(engine.get_velocities(), v, rtol=1e-14, atol=0)
    assert engine.get_kinetic_energy() == pytest.approx(0.5 * engine.masses.sum() * 3 * 0.25)


class _CountingEMT(EMT):
    def __init__(self):
        super().__init__()
        self.count = 0

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        self.count += 1
        super().calculate(atoms, properties, system_changes)


def test_model_cache_and_copies():
    calc = _CountingEMT()
    model = ASEModel(calc, cluster())
    x0 = Icosahedron("Cu", 2).get_positions() * 0.1
    first = model.compute(x0)
    assert calc.count == 1
    out = model.compute(x0.copy())
    assert calc.count == 1
    out["forces"][:] = 1e9
    assert np.array_equal(model.compute(x0)["forces"], first["forces"])  # copies returned
    assert model.compute(x0 * 1.01)["energy"] != first["energy"]
    assert calc.count == 2
    with pytest.raises(SetupError):
        model.compute(x0, charges=[1.0])
    with pytest.raises(SetupError, match="stress"):
        model.compute(x0, ("stress",))


class _Failing(Calculator):
    implemented_properties = ["energy", "forces"]

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        raise CalculationFailed("SCF exploded")


class _NaNForces(Calculator):
    implemented_properties = ["energy", "forces"]

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        self.results = {"energy": 0.0, "forces": np.full((len(atoms), 3), np.nan)}


def test_errors():
    with pytest.raises(SetupError, match="timestep"):
        ASEEngine(cluster(), EMT(), timstep=0.001)
    with pytest.raises(SetupError, match="calculator"):
        ASEEngine(cluster())
    with pytest.raises(SetupError, match="timestep"):
        ASEEngine(cluster(), EMT(), timestep=-1.0)
    with pytest.raises(SetupError):
        ASEEngine([1, 2, 3], EMT())
    engine = ASEEngine(cluster(), EMT())
    bad = engine.get_positions()
    bad[0, 0] = np.inf
    with pytest.raises(SetupError, match="NaN or infinite"):
        engine.set_positions(bad)
    with pytest.raises(SetupError, match="shape"):
        engine.set_velocities(np.zeros((12, 3)))
    with pytest.raises(SetupError):
        engine.step(-1)
    with pytest.raises(SetupError, match="range"):
        engine.add_external_force([13])
    with pytest.raises(SetupError, match="shape"):
        engine.add_external_force([0, 1]).set_forces(np.zeros((3, 3)))
    with pytest.raises(CalculationError, match="SCF exploded"):
        ASEEngine(cluster(), _Failing()).get_forces()
    with pytest.raises(CalculationError, match="non-finite"):
        ASEEngine(cluster(), _NaNForces()).get_forces()
    with pytest.raises(CalculationError, match="non-finite"):
        ASEModel(_NaNForces(), cluster()).compute(np.zeros((13, 3)), ("forces",))


def test_atoms_are_copied_and_calc_defaults_to_atoms_calc():
    atoms = cluster()
    atoms.calc = EMT()
    engine = ASEEngine(atoms)
    engine.step(3)
    assert np.array_equal(atoms.get_positions(), cluster().get_positions())
    assert isinstance(engine.calculator, EMT)
    assert isinstance(ASEEngine(Atoms("Cu", positions=[[0, 0, 0]]), EMT()).get_forces(), np.ndarray)


def test_missing_ase_names_the_extra(monkeypatch):
    atoms = cluster()
    monkeypatch.setitem(sys.modules, "ase", None)
    with pytest.raises(EngineNotAvailable) as info:
        ASEEngine(atoms, EMT())
    assert info.value.extra == "ase"
    assert "multiscale-bridge[ase]" in str(info.value)


def test_external_force_with_an_explicit_reference():
    """Same API as the OpenMM ExternalForce: set_forces(forces, reference), energy(positions)."""
    engine = ASEEngine(cluster(), EMT())
    model = engine.model()
    x = engine.get_positions()
    handle = engine.add_external_force([1, 7])
    assert np.array_equal(handle.forces, np.zeros((2, 3)))
    assert np.allclose(handle.reference, x[[1, 7]], rtol=0, atol=1e-15)
    fext = np.array([[40.0, -10.0, 0.0], [0.0, 25.0, -60.0]])
    ref = x[[1, 7]] + np.array([[0.01, 0.0, -0.02], [0.0, 0.005, 0.0]])
    handle.set_forces(fext, reference=ref)
    assert np.array_equal(handle.reference, ref)
    expected = -np.sum(fext * (x[[1, 7]] - ref))
    assert handle.energy(x) == pytest.approx(expected, rel=1e-14)
    base = model.compute(x, ("energy",))["energy"]
    assert engine.get_potential_energy() == pytest.approx(base + expected, rel=1e-12, abs=1e-9)
    # attributes are copies: changing them changes nothing
    handle.reference[:] = 0.0
    handle.forces[:] = 0.0
    assert np.array_equal(handle.reference, ref) and np.array_equal(handle.forces, fext)
    # the default reference is again the current positions
    handle.set_forces(fext)
    assert engine.get_potential_energy() == pytest.approx(base, rel=1e-12, abs=1e-9)
    with pytest.raises(SetupError, match="reference positions contains NaN"):
        handle.set_forces(fext, reference=np.full((2, 3), np.nan))
    with pytest.raises(SetupError, match="shape"):
        handle.set_forces(fext, reference=ref[:1])
    with pytest.raises(SetupError, match="shape"):
        handle.energy(x[[1, 7]])                          # full-system positions, not the subset


def test_state_round_trip_keeps_an_explicit_reference_bit_for_bit():
    engine = ASEEngine(cluster(), EMT(), timestep=0.002)
    handle = engine.add_external_force([3, 9])
    engine.step(3)
    ref = engine.get_positions()[[3, 9]] + 0.0123456789
    handle.set_forces([[30.0, 0.0, -5.0], [1.0, 2.0, 3.0]], reference=ref)
    state = engine.get_state()
    assert np.array_equal(state["external_0_reference"], ref)
    engine.step(20)
    x_ref, e_ref = engine.get_positions(), engine.get_potential_energy()

    handle.set_forces(np.zeros((2, 3)))
    engine.set_state(state)
    assert np.array_equal(handle.reference, ref)
    assert np.array_equal(handle.forces, state["external_0_forces"])
    engine.step(20)
    assert np.array_equal(engine.get_positions(), x_ref)
    assert engine.get_potential_energy() == e_ref


@pytest.mark.parametrize("what", ["positions", "momenta", "cell"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_atoms_are_refused_before_ase(what, bad):
    atoms = cluster()
    if what == "positions":
        atoms.positions[4, 1] = bad
    elif what == "momenta":
        p = atoms.get_momenta()
        p[0, 2] = bad
        atoms.set_momenta(p)
    else:
        atoms.set_cell(np.diag([10.0, bad, 10.0]))
    calc = _CountingEMT()
    with pytest.raises(SetupError, match=f"atoms.*{what}.*NaN or infinite") as exc:
        ASEEngine(atoms, calc)
    assert exc.value.fix
    assert calc.count == 0


def test_non_positive_masses_are_refused():
    atoms = cluster()
    masses = atoms.get_masses()
    masses[3] = 0.0
    atoms.set_masses(masses)
    with pytest.raises(SetupError, match=r"masses.*\[3\]") as exc:
        ASEEngine(atoms, EMT())
    assert "set_masses" in exc.value.fix


def test_non_finite_velocities_are_refused_before_ase():
    engine = ASEEngine(cluster(), _CountingEMT())
    v = engine.get_velocities()
    before = engine.get_velocities()
    v[2, 0] = np.nan
    with pytest.raises(SetupError, match="velocities contains NaN or infinite") as exc:
        engine.set_velocities(v)
    assert exc.value.fix
    assert np.array_equal(engine.get_velocities(), before)   # nothing reached the Atoms
    x = engine.get_positions()
    x[0] = -np.inf
    with pytest.raises(SetupError, match="positions contains NaN or infinite"):
        engine.set_positions(x)
    assert engine.calculator.count == 0


def test_unknown_option_suggests_the_closest():
    with pytest.raises(SetupError) as exc:
        ASEEngine(cluster(), EMT(), integratr=None)
    assert "'integratr'" in str(exc.value)
    assert exc.value.fix.startswith("did you mean 'integrator'?")
