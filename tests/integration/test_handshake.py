"""Handshake with the real engines: OpenMM atoms, DOLFINx meshes and output."""
import numpy as np
import pytest

pytest.importorskip("openmm")
pytest.importorskip("dolfinx_solver")

from bridge import handshake as H  # noqa: E402
from bridge.errors import SetupError  # noqa: E402
from bridge_validation.handshake_cases import EPSILON, MASS, SIGMA, chain_setup  # noqa: E402


@pytest.fixture(scope="module")
def setup():
    return chain_setup("l2", n_atoms=80, nodes=30)


def test_dolfinx_interval_mesh_is_the_p1_layout(setup):
    mesh = setup["mesh"]
    assert mesh.dim == 1 and len(mesh.nodes) == 30 and len(mesh.cells) == 29
    assert np.allclose(np.sort(np.diff(np.sort(mesh.nodes[:, 0]))), 5 * setup["a"])
    g = setup["hs"].ghost_forces(np.array([[1.01]]), setup["surface_atoms"], [setup["far_node"]])
    assert np.isfinite(g["relative"])


def test_openmm_engine_equals_numpy_twin(setup):
    from bridge_adapters.openmm.lattice import handshake_engine

    hs, a, pot = setup["hs"], setup["a"], setup["pot"]
    eta = 3.0 * (1 - hs.alpha) ** 2
    w_max = np.sqrt(2 / MASS * sum(pot.d2phi(j * a) * (1 - np.cos(np.pi * j)) for j in (1, 2)))
    dt = 0.05 / w_max
    omm = handshake_engine(hs, SIGMA, EPSILON, MASS, dt, eta=eta)
    ref = H.NumpyLatticeEngine(hs, MASS * np.maximum(hs.alpha, 0.02), dt, eta)
    X = hs.lattice.positions[:, 0]
    u = 0.02 * a * np.exp(-((X - 62 * a) / (4 * a)) ** 2)
    v = H.right_moving_velocities(u, a, MASS, pot, 2)
    recs = []
    for eng in (omm, ref):
        dyn = H.HandshakeDynamics(hs, eng, MASS, substeps=3, fixed_nodes=[setup["far_node"]])
        dyn.set_initial(hs.lattice.positions + u[:, None], v[:, None])
        recs.append((dyn.run(200, every=50), dyn.u.copy(), eng.state()[0]))
    (r1, u1, x1), (r2, u2, x2) = recs
    assert np.abs(x1 - x2).max() < 1e-9 * a
    assert np.abs(u1 - u2).max() < 1e-9 * a
    assert np.allclose(r1.total, r2.total, rtol=1e-8)
    assert r1.damped[-1] > 0                        # the damping layer took energy out


def test_openmm_engine_refuses_another_potential(setup):
    from bridge_adapters.openmm.lattice import handshake_engine

    with pytest.raises(SetupError, match="disagree"):
        handshake_engine(setup["hs"], 1.1 * SIGMA, EPSILON, MASS, 0.005)


def test_paraview_output(setup, tmp_path):
    from bridge_adapters.dolfinx.handshake import write_atoms_vtk, write_displacement

    hs = setup["hs"]
    u = 1e-3 * np.ones_like(hs.mesh.nodes)
    p = write_displacement(tmp_path / "u.xdmf", setup["V"], u, 1 - setup["weight"](hs.mesh.nodes))
    assert (tmp_path / "u.h5").stat().st_size > 0 and "displacement" in open(p).read()
    q = write_atoms_vtk(tmp_path / "atoms.vtk", hs.lattice.positions, np.zeros_like(hs.lattice.positions), hs.alpha)
    text = open(q).read()
    assert f"POINTS {len(hs.alpha)} double" in text and "SCALARS weight" in text
    with pytest.raises(SetupError, match="shape"):
        write_displacement(tmp_path / "bad.xdmf", setup["V"], u[:-1])
    assert not (tmp_path / "bad.xdmf").exists()
