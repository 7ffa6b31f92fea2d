"""Unit tests of the handshake core (NumPy atoms, NumPy meshes: no engine)."""
import numpy as np
import pytest

from bridge import handshake as H
from bridge.errors import SetupError
from bridge.lattice import PairPotential
from bridge.zones import CosSquaredSwitch

SIGMA, EPS, MASS = 0.3405, 0.99774, 39.948


def chain(constraint="atomwise", offset=2.5, n_atoms=60, nodes=30, h=5, overlap=12):
    fam = H.lattice_families("chain", 2)
    pot = PairPotential.lennard_jones(SIGMA, EPS, 10 * SIGMA)
    a = H.equilibrium_spacing(pot, fam, 1.12 * SIGMA)
    sw = CosSquaredSwitch(overlap * a)
    x1 = (n_atoms - overlap) * a

    def weight(P):
        return sw(np.asarray(P)[:, 0] - x1)

    X = H.lattice_sites("chain", a, [0.0], [n_atoms * a])
    lat = H.BondedLattice.build(X, fam, a).subset(weight(X) > 0)
    pts = x1 - offset * a + np.arange(nodes) * h * a
    mesh = H.P1Mesh(pts, np.stack([np.arange(nodes - 1), np.arange(1, nodes)], 1))
    hs = H.Handshake(lat, pot, mesh, weight, constraint=constraint)
    fixed = np.flatnonzero(~lat.complete() & ~hs.tied)
    return hs, a, pot, fixed, nodes - 1


def test_families_and_spacing():
    tri = H.lattice_families("triangular", 2)
    assert tri.shape == (6, 2)
    assert np.allclose(sorted(np.linalg.norm(tri, axis=1)), [1, 1, 1, np.sqrt(3)] * 1 + [np.sqrt(3)] * 2)
    fam = H.lattice_families("chain", 2)
    pot = PairPotential.lennard_jones(SIGMA, EPS, 10 * SIGMA)
    a = H.equilibrium_spacing(pot, fam, 1.12 * SIGMA)
    assert abs(pot.dphi(a) + 2 * pot.dphi(2 * a)) < 1e-8 * abs(pot.dphi(a))    # zero stress


@pytest.mark.parametrize("offset", [2.0, 2.5, 3.3])
def test_atomwise_patch_test_round_off_on_any_mesh(offset):
    hs, a, pot, fixed, far = chain(offset=offset)
    for F in (1.0, 1.02, 0.97):
        g = hs.ghost_forces(np.array([[F]]), fixed, [far])
        assert g["relative"] < 1e-10, (offset, F, g["relative"])
    raw = H.Handshake(hs.lattice, pot, hs.mesh, hs._weight_fn, constraint="atomwise", continuum="blended")
    assert raw.ghost_forces(np.array([[1.02]]), fixed, [far])["relative"] > 1e-3


def test_l2_ghost_force_is_fine_scale_only():
    hs, a, pot, fixed, far = chain("l2")
    g = hs.ghost_forces(np.array([[1.01]]), fixed, [far])
    assert 0 < g["relative"] < 0.05
    assert np.abs(g["atoms"][~hs.tied]).max() < 1e-10 * g["bond_force_scale"]   # free atoms: none


def test_gradient_matches_finite_differences():
    hs, a, *_ = chain("l2")
    rng = np.random.default_rng(1)
    x = hs.lattice.positions + 0.02 * a * rng.standard_normal(hs.lattice.positions.shape)
    u = 0.02 * a * rng.standard_normal(hs.mesh.nodes.shape)
    _, ga, gc = hs.energy_gradient(x, u)
    h = 1e-6
    for i in (0, 30, len(x) - 1):
        xp, xm = x.copy(), x.copy()
        xp[i, 0] += h
        xm[i, 0] -= h
        fd = (hs.energy_gradient(xp, u)[0] - hs.energy_gradient(xm, u)[0]) / (2 * h)
        assert abs(fd - ga[i, 0]) < 1e-6 * np.abs(ga).max()
    for k in (0, 2, 5):
        up, um = u.copy(), u.copy()
        up[k, 0] += h
        um[k, 0] -= h
        fd = (hs.energy_gradient(x, up)[0] - hs.energy_gradient(x, um)[0]) / (2 * h)
        assert abs(fd - gc[k, 0]) < 1e-6 * np.abs(gc).max()


@pytest.mark.parametrize("constraint", ["atomwise", "l2"])
def test_statics_uniform_stretch_is_affine(constraint):
    hs, a, pot, fixed, far = chain(constraint)
    F = 1.004
    X = hs.lattice.positions
    left = np.flatnonzero(X[:, 0] < 2.5 * a)
    x0 = X.copy()
    x0[left] *= F
    u0 = np.zeros_like(hs.mesh.nodes)
    u0[far] = (F - 1) * hs.mesh.nodes[far]
    res = hs.minimize(x0, u0, fixed_atoms=left, fixed_nodes=[far])
    if constraint == "atomwise":
        assert np.abs(res["x"] - F * X).max() < 1e-5 * a
        assert np.abs(res["u"] - (F - 1) * hs.mesh.nodes).max() < 1e-5 * a
    else:       # the fine-scale ghost force moves the overlap atoms a little
        assert np.abs(res["u"] - (F - 1) * hs.mesh.nodes).max() < 0.02 * (F - 1) * hs.mesh.nodes.max()
    # the constraints hold at the minimum
    G = hs.constraint_matrix()
    q = np.concatenate([res["x"] - X, res["u"]])
    assert np.abs(G @ q).max() < 1e-10 * a


def test_rattle_conserves_energy_and_holds_constraints():
    hs, a, pot, fixed, far = chain("l2", n_atoms=80, nodes=25)
    w_max = np.sqrt(2 / MASS * sum(pot.d2phi(j * a) * (1 - np.cos(np.pi * j)) for j in (1, 2)))
    eng = H.NumpyLatticeEngine(hs, MASS * np.maximum(hs.alpha, 0.02), 0.1 / w_max)
    dyn = H.HandshakeDynamics(hs, eng, MASS, substeps=1, fixed_nodes=[far])
    X = hs.lattice.positions[:, 0]
    u = 0.02 * a * np.exp(-((X - 52 * a) / (4 * a)) ** 2)
    dyn.set_initial(hs.lattice.positions + u[:, None], H.right_moving_velocities(u, a, MASS, pot, 2)[:, None])
    rec = dyn.run(900, every=50)
    E = np.array(rec.total)
    assert np.abs(E - E[0]).max() < 1e-3 * E[0]
    assert rec.continuum[-1] > 0.5 * E[0]          # the pulse went into the continuum
    x, v, _, _ = eng.state()
    G = hs.constraint_matrix()
    assert np.abs(G @ np.concatenate([x - hs.lattice.positions, dyn.u])).max() < 1e-12
    assert np.abs(G @ np.concatenate([v, dyn.vc])).max() < 1e-9


def test_setup_errors_name_the_fix():
    hs, a, pot, fixed, far = chain()
    with pytest.raises(SetupError, match="constraint"):
        H.Handshake(hs.lattice, pot, hs.mesh, hs._weight_fn, constraint="penalty")
    # a mesh that starts inside the blended region leaves bonds of weight < 1 untied
    fam = hs.lattice.families
    short = H.P1Mesh(hs.mesh.nodes[3:], hs.mesh.cells[3:] - 3)
    with pytest.raises(SetupError, match="extend the mesh"):
        H.Handshake(hs.lattice, pot, short, hs._weight_fn)
    with pytest.raises(SetupError, match="weight 0"):
        H.Handshake(H.BondedLattice.build(H.lattice_sites("chain", a, [0.0], [100 * a]), fam, a), pot,
                    hs.mesh, hs._weight_fn)
    with pytest.raises(SetupError, match=r"\[0, 1\]"):
        H.Handshake(hs.lattice, pot, hs.mesh, lambda P: 2.0 * np.ones(len(P)))
    with pytest.raises(SetupError, match="NaN"):
        hs.minimize(np.full_like(hs.lattice.positions, np.nan), np.zeros_like(hs.mesh.nodes))
    with pytest.raises(SetupError, match="outside the mesh"):
        hs.mesh.interpolation(np.array([[-1.0]]))


# -- 2-D --------------------------------------------------------------------------------------
def plate(n=24, **kw):
    from bridge_validation.handshake_plate import plate_setup

    return plate_setup(n, with_dolfinx=False, **kw)


def test_bond_density_is_cauchy_born_on_lattice_site_meshes():
    s = plate()
    hs = s["hs"]
    far = np.linalg.norm(hs.mesh.centroids, axis=1) > 20 * s["a"]        # no atom reaches these cells
    ideal = hs.mesh.volume[far, None] / hs.omega
    assert np.abs(hs.kappa[far] - ideal).max() < 1e-10 * ideal.max()
    assert hs.kappa.min() >= 0.0


@pytest.mark.parametrize("constraint", ["atomwise", "l2"])
def test_2d_patch_test(constraint):
    s = plate(constraint=constraint, full=False)
    hs = s["hs"]
    surface = np.flatnonzero(~hs.lattice.complete() & ~hs.tied)
    F = np.array([[1.01, 0.02], [-0.005, 0.99]])
    g = hs.ghost_forces(F, surface, s["outer_nodes"])["relative"]
    if constraint == "atomwise":
        assert g < 1e-10
        blended = H.Handshake(hs.lattice, s["pot"], hs.mesh, s["weight"], constraint="atomwise", continuum="blended")
        assert blended.ghost_forces(F, surface, s["outer_nodes"])["relative"] > 1e-3
    else:
        assert 1e-4 < g < 0.1          # the fine-scale ghost force of the L2 ties


def test_hessians_match_finite_differences():
    s = plate(full=False)
    hs, a = s["hs"], s["a"]
    rng = np.random.default_rng(3)
    x = hs.lattice.positions + 0.01 * a * rng.standard_normal(hs.lattice.positions.shape)
    u = 0.01 * a * rng.standard_normal(hs.mesh.nodes.shape)
    Hm = hs.hessian(x, u)
    n, d, h = len(x), 2, 1e-7
    for k in (5, 3 * n // 2, (n + 7) * d + 1):
        q = np.concatenate([x - hs.lattice.positions, u]).ravel()
        grads = []
        for sgn in (1, -1):
            qq = q.copy()
            qq[k] += sgn * h
            qq = qq.reshape(-1, d)
            _, ga, gc = hs.energy_gradient(hs.lattice.positions + qq[:n], qq[n:])
            grads.append(np.concatenate([ga, gc]).ravel())
        fd = (grads[0] - grads[1]) / (2 * h)
        assert np.abs(fd - Hm[:, k].toarray().ravel()).max() < 1e-5 * np.abs(Hm).max()


def test_plate_statics_match_full_atomistics():
    from bridge_validation.handshake_plate import compare, solve_coupled, solve_full

    s = plate(32)
    m = compare(s, solve_coupled(s), solve_full(s))
    assert m["error_over_max_displacement"] < 0.01
    assert m["error_over_void_displacement"] < 0.05


def test_mesh_hole_must_stay_where_the_weight_is_one():
    from bridge.zones import CosSquaredSwitch

    s = plate(full=False)
    a, hs = s["a"], s["hs"]
    sw = CosSquaredSwitch(6 * a)
    early = lambda P: sw(np.linalg.norm(np.asarray(P), axis=1) - 7 * a)        # blends inside the hole edge
    X = hs.lattice.positions
    with pytest.raises(SetupError, match="hole|outside the mesh"):
        H.Handshake(hs.lattice.subset(early(X) > 0), s["pot"], hs.mesh, early, constraint="atomwise")


@pytest.mark.parametrize("constraint", ["atomwise", "l2"])
def test_2d_rattle_dynamics_conserves_energy(constraint):
    s = plate(24, constraint=constraint, full=False)
    hs, a, pot = s["hs"], s["a"], s["pot"]
    dt = 0.025 / np.sqrt(12 * pot.d2phi(a) / MASS)             # 1/40 of the fastest period's scale
    dyn = H.HandshakeDynamics(hs, H.NumpyLatticeEngine(hs, MASS * np.maximum(hs.alpha, 0.02), dt), MASS,
                              substeps=1, fixed_nodes=s["outer_nodes"])
    X = hs.lattice.positions
    r = np.linalg.norm(X, axis=1)
    bump = 0.02 * a * np.exp(-(r / (4 * a)) ** 2)[:, None] * X / np.maximum(r, 1e-9)[:, None]
    dyn.set_initial(X + bump, np.zeros_like(X))
    rec = dyn.run(300, every=30)
    E = np.array(rec.total)
    assert E[0] > 0 and np.abs(E - E[0]).max() < 1e-4 * E[0]
    G = hs.constraint_matrix()
    x = dyn.engine.state()[0]
    assert np.abs(G @ np.concatenate([x - X, dyn.u])).max() < 1e-10 * a
