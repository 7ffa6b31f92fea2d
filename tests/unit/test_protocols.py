"""The engine protocols are structural: a fake with the right methods fits, one without does not."""
import numpy as np

from bridge.protocols import EnergyModel, FieldEngine, MicroModel, ParticleEngine


class FakeParticles:
    n_particles, masses, time = 2, np.ones(2), 0.0

    def get_positions(self): return np.zeros((2, 3))
    def set_positions(self, positions): pass
    def get_velocities(self): return np.zeros((2, 3))
    def set_velocities(self, velocities): pass
    def get_forces(self): return np.zeros((2, 3))
    def get_potential_energy(self): return 0.0
    def get_kinetic_energy(self): return 0.0
    def step(self, n): pass
    def add_external_force(self, indices): pass
    def get_state(self): return {}
    def set_state(self, state): pass


class FakeMicro:
    def initialize(self): return None
    def solve(self, macro_data, dt): return {}
    def get_state(self): return {}
    def set_state(self, state): pass


def test_fakes_fit_the_protocols():
    assert isinstance(FakeParticles(), ParticleEngine)
    assert isinstance(FakeMicro(), MicroModel)
    assert not isinstance(FakeMicro(), ParticleEngine)


def test_a_missing_method_does_not_fit():
    NoStep = type("NoStep", (), {k: v for k, v in vars(FakeParticles).items() if k != "step"})

    class NotAField:
        field_units = "K"

    assert not isinstance(NotAField(), FieldEngine)
    assert not isinstance(object(), EnergyModel)
    assert not isinstance(NoStep(), ParticleEngine)
