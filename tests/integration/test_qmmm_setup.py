"""embed_qm_region: the QM/MM force inside an OpenMM System, through OpenMM's own integrators."""
import numpy as np
import openmm
import pytest

from bridge.errors import SetupError
from bridge_adapters.openmm import OpenMMEngine
from bridge_adapters.openmm.qmmm import MMRegionModel
from bridge_adapters.openmm.qmmm_setup import embed_qm_region
from bridge_validation.qmmm_cases import _dimer, tip3p_waters, water_box
from bridge_validation.qmmm_geometry import _rotation, water


def cluster(n=4, seed=2):
    rng = np.random.default_rng(seed)
    parts = [_dimer()]
    for w in range(n - 2):
        o = rng.normal(size=3)
        parts.append(water(0.32 * (w + 1.3) * o / np.linalg.norm(o), _rotation(rng)))
    return np.vstack(parts)


@pytest.mark.parametrize("scheme", ["electrostatic", "subtractive"])
def test_degenerate_qmmm_trajectory_equals_the_mm_trajectory(scheme):
    """With the MM model as 'QM', every step sees the same forces: never a step late."""
    x = cluster()
    top, system = tip3p_waters(x)
    _, single = tip3p_waters(x[3:6])
    setup = embed_qm_region(system, top, [3, 4, 5], MMRegionModel(single), scheme=scheme)
    runs = []
    for sysm in (system, setup.system):
        eng = OpenMMEngine(sysm, x, integrator=openmm.VerletIntegrator(0.0005), platform="Reference")
        eng.set_velocities(np.random.default_rng(1).normal(scale=0.5, size=x.shape))
        eng.step(100)
        runs.append(eng.get_positions())
    # identical forces to round-off each step; the trajectories agree to accumulated round-off
    assert np.abs(runs[0] - runs[1]).max() < 1e-9


def test_qmmm_energy_is_readable_by_force_group():
    x = cluster(2)
    top, system = tip3p_waters(x)
    _, single = tip3p_waters(x[:3])
    setup = embed_qm_region(system, top, [0, 1, 2], MMRegionModel(single))
    eng = OpenMMEngine(setup.system, x, platform="Reference")
    e_group = eng.context.getState(getEnergy=True, groups={setup.group}).getPotentialEnergy()
    e_model = MMRegionModel(single).compute(x[:3], ("energy",), charges=setup.coupling.charges[3:],
                                            charge_positions=x[3:])["energy"]
    assert e_group.value_in_unit(e_group.unit) == pytest.approx(e_model, rel=1e-12)


def test_periodic_system_needs_a_cutoff_and_topology_must_match():
    top, x, system = water_box(1.6)
    _, single = tip3p_waters(x[:3])
    with pytest.raises(SetupError, match="cutoff"):
        embed_qm_region(system, top, [0, 1, 2], MMRegionModel(single))
    top2, _ = tip3p_waters(x[:6])
    with pytest.raises(SetupError, match="topology"):
        embed_qm_region(system, top2, [0, 1, 2], MMRegionModel(single), cutoff=0.6)
    with pytest.raises(SetupError, match="scheme"):
        embed_qm_region(system, top, [0, 1, 2], MMRegionModel(single), scheme="oniom3", cutoff=0.6)


def test_periodic_qmmm_forces_match_finite_differences_across_the_box_edge():
    """A QM water split by the box edge: energy and forces as for the whole molecule."""
    top, x, system = water_box(1.6)
    _, single = tip3p_waters(x[:3])
    setup = embed_qm_region(system, top, [0, 1, 2], MMRegionModel(single), cutoff=0.6, switch_width=0.15)
    box = np.full(3, 1.6)
    c = setup.coupling
    e0, f0 = c.compute(x, box)
    shifted = x.copy()
    shifted[1] += [1.6, 0.0, 0.0]                          # one QM hydrogen wrapped to the next image
    e1, f1 = c.compute(shifted, box)
    assert e1 == pytest.approx(e0, rel=1e-12)
    np.testing.assert_allclose(f1, f0, atol=1e-9)
    h = 1e-5
    for i in (0, 1, int(c.anchors[5])):
        for k in range(3):
            xp, xm = shifted.copy(), shifted.copy()
            xp[i, k] += h
            xm[i, k] -= h
            fd = -(c.compute(xp, box)[0] - c.compute(xm, box)[0]) / (2 * h)
            assert fd == pytest.approx(f1[i, k], abs=1e-5 * max(1.0, abs(f1[i, k])))


def test_a_failing_qm_model_surfaces_through_the_engine_as_itself():
    from bridge.errors import CalculationError

    class Failing(MMRegionModel):
        def compute(self, *args, **kwargs):
            raise CalculationError("SCF did not converge", reason="test", state={"cycles": 3})

    x = cluster(2)
    top, system = tip3p_waters(x)
    _, single = tip3p_waters(x[:3])
    setup = embed_qm_region(system, top, [0, 1, 2], Failing(single))
    eng = OpenMMEngine(setup.system, x, platform="Reference")
    with pytest.raises(CalculationError, match="SCF did not converge") as exc:
        eng.step(1)
    assert exc.value.state == {"cycles": 3}
    with pytest.raises(CalculationError):
        eng.get_potential_energy()
