"""QM/MM coupling core against fake models: chain rule (links, boundary charges, switch), net force."""
import numpy as np
import pytest

from bridge.errors import SetupError
from bridge.qmmm import QMMMCoupling, link_ratio

KE = 138.935458  # kJ mol^-1 nm e^-2


class FakeQM:
    """Region of point charges p_i with springs between consecutive atoms, feeling MM charges."""

    implemented_properties = ("energy", "forces", "charge_forces", "charge_potential")

    def __init__(self, p, k=500.0, r0=0.12):
        self.p, self.k, self.r0 = np.asarray(p, float), k, r0

    def compute(self, x, properties=("energy", "forces"), charges=None, charge_positions=None):
        x = np.asarray(x, float)
        assert len(x) == len(self.p)
        e, f = 0.0, np.zeros_like(x)
        for i in range(len(x) - 1):
            d = x[i + 1] - x[i]
            r = np.linalg.norm(d)
            e += 0.5 * self.k * (r - self.r0) ** 2
            g = self.k * (r - self.r0) * d / r
            f[i] += g
            f[i + 1] -= g
        out = {"charge_forces": np.zeros((0, 3)), "charge_potential": np.zeros(0)}
        if charges is not None and len(charges):
            Q, y = np.asarray(charges), np.asarray(charge_positions)
            d = x[:, None, :] - y[None, :, :]
            r = np.linalg.norm(d, axis=2)
            e += KE * np.sum(self.p[:, None] * Q[None, :] / r)
            pair = KE * (self.p[:, None] * Q[None, :] / r ** 3)[:, :, None] * d
            f += pair.sum(axis=1)
            out["charge_forces"] = -pair.sum(axis=0)
            out["charge_potential"] = KE * np.sum(self.p[:, None] / r, axis=0)
        out.update(energy=e, forces=f)
        return out


def ethane_in_water(n_water=6, seed=0):
    """C0(H1,H2,H3) QM - C4(H5,H6,H7) MM, plus waters; returns positions, elements, bonds, charges."""
    rng = np.random.default_rng(seed)
    x = [[0, 0, 0], [-0.04, 0.09, 0.03], [-0.04, -0.06, 0.08], [-0.04, -0.03, -0.09],
         [0.153, 0, 0], [0.19, 0.09, 0.03], [0.19, -0.06, 0.08], [0.19, -0.03, -0.09]]
    el = ["C", "H", "H", "H", "C", "H", "H", "H"]
    bonds = [(0, 1), (0, 2), (0, 3), (0, 4), (4, 5), (4, 6), (4, 7)]
    q = [-0.18, 0.06, 0.06, 0.06, -0.18, 0.06, 0.06, 0.06]
    for w in range(n_water):
        o = rng.normal(size=3)
        o = o / np.linalg.norm(o) * (0.35 + 0.06 * w)
        base = len(x)
        x += [o, o + [0.0957, 0, 0], o + [-0.024, 0.0927, 0]]
        el += ["O", "H", "H"]
        bonds += [(base, base + 1), (base, base + 2)]
        q += [-0.834, 0.417, 0.417]
    return np.array(x, float), el, np.array(bonds), np.array(q)


def numeric_forces(c, x, box=None, h=1e-6):
    f = np.zeros_like(x)
    for i in range(len(x)):
        for k in range(3):
            xp, xm = x.copy(), x.copy()
            xp[i, k] += h
            xm[i, k] -= h
            f[i, k] = -(c.compute(xp, box)[0] - c.compute(xm, box)[0]) / (2 * h)
    return f


@pytest.mark.parametrize("boundary", ["rc", "zero", "none"])
@pytest.mark.parametrize("cutoff", [None, 0.55])
def test_forces_are_the_energy_gradient_and_sum_to_zero(boundary, cutoff):
    x, el, bonds, q = ethane_in_water()
    qm = [0, 1, 2, 3]
    model = FakeQM([0.3, -0.1, -0.1, -0.1, 0.0])       # 4 QM atoms + 1 link atom
    c = QMMMCoupling(model, qm, len(x), charges=q, elements=el, bonds=bonds, boundary=boundary,
                     cutoff=cutoff, switch_width=None if cutoff is None else 0.2)
    assert len(c.links) == 1 and c.links[0].ratio == pytest.approx(link_ratio("C", "C"))
    e, f = c.compute(x)
    # central differences: O(h^2) truncation ~1e-9 and round-off ~1e-16 * E / h ~1e-8 kJ/mol/nm
    np.testing.assert_allclose(f, numeric_forces(c, x), atol=2e-5)
    np.testing.assert_allclose(f.sum(axis=0), 0.0, atol=1e-9)      # translation invariance
    if cutoff is not None:
        d = np.linalg.norm(x[8::3] - x[qm].mean(axis=0), axis=1)
        assert np.any((d > cutoff - 0.2) & (d < cutoff)), "the test must put a water in the switching shell"


def test_rc_scheme_conserves_the_boundary_charge():
    x, el, bonds, q = ethane_in_water(0)
    c = QMMMCoupling(FakeQM(np.zeros(5)), [0, 1, 2, 3], len(x), charges=q, elements=el, bonds=bonds)
    moved = sum(v[2] for v in c.virtual)
    assert c.site_charge[4] == 0.0 and moved == pytest.approx(q[4])
    assert {(m1, m2) for m1, m2, _ in c.virtual} == {(4, 5), (4, 6), (4, 7)}


def test_periodic_box_keeps_the_qm_region_whole_and_matches_the_unwrapped_energy():
    x, el, bonds, q = ethane_in_water()
    box = np.array([2.0, 2.0, 2.0])
    c = QMMMCoupling(FakeQM([0.3, -0.1, -0.1, -0.1, 0.0]), [0, 1, 2, 3], len(x), charges=q, elements=el,
                     bonds=bonds, cutoff=0.55, switch_width=0.2)
    e0, f0 = c.compute(x + 0.7, box)                                # all inside the box
    wrapped = x + 0.7
    wrapped[[1, 9, 10]] -= box                                      # one QM atom and part of a water wrapped
    e1, f1 = c.compute(wrapped, box)
    assert e1 == pytest.approx(e0, rel=1e-12)
    np.testing.assert_allclose(f1, f0, atol=1e-9)
    np.testing.assert_allclose(f1, numeric_forces(c, wrapped, box), atol=2e-5)


def test_subtractive_scheme_with_an_identical_mm_model_cancels_exactly():
    x, el, bonds, q = ethane_in_water(0)
    model = FakeQM([0.0] * 5)
    c = QMMMCoupling(model, [0, 1, 2, 3], len(x), scheme="subtractive", elements=el, bonds=bonds,
                     mm_region_model=FakeQM([0.0] * 5))
    e, f = c.compute(x)
    assert e == 0.0 and not f.any()
    c2 = QMMMCoupling(FakeQM([0.0] * 5, k=800.0), [0, 1, 2, 3], len(x), scheme="subtractive", elements=el,
                      bonds=bonds, mm_region_model=model)
    np.testing.assert_allclose(c2.compute(x)[1], numeric_forces(c2, x), atol=2e-5)


def test_polar_and_unsaturated_cuts_are_refused_with_a_fix():
    x, el, bonds, q = ethane_in_water(0)
    el_polar = list(el)
    el_polar[4] = "O"
    with pytest.raises(SetupError, match="polar bond.*fix"):
        QMMMCoupling(FakeQM(np.zeros(5)), [0, 1, 2, 3], len(x), charges=q, elements=el_polar, bonds=bonds)
    unsat = bonds[[b for b in range(len(bonds)) if tuple(bonds[b]) != (4, 7)]]
    with pytest.raises(SetupError, match="multiple"):
        QMMMCoupling(FakeQM(np.zeros(5)), [0, 1, 2, 3], len(x), charges=q, elements=el, bonds=unsat)
    c = QMMMCoupling(FakeQM(np.zeros(5)), [0, 1, 2, 3], len(x), charges=q, elements=el_polar, bonds=bonds,
                     allow_polar_cut=True)
    assert len(c.links) == 1


def test_bad_input():
    x, el, bonds, q = ethane_in_water(0)
    with pytest.raises(SetupError, match="unique"):
        QMMMCoupling(FakeQM(np.zeros(5)), [0, 0], len(x), charges=q)
    with pytest.raises(SetupError, match="charges"):
        QMMMCoupling(FakeQM(np.zeros(5)), [0, 1, 2, 3], len(x), elements=el, bonds=bonds)
    with pytest.raises(SetupError, match="element"):
        QMMMCoupling(FakeQM(np.zeros(5)), [0, 1, 2, 3], len(x), charges=q, bonds=bonds)
    c = QMMMCoupling(FakeQM(np.zeros(5)), [0, 1, 2, 3], len(x), charges=q, elements=el, bonds=bonds)
    bad = x.copy()
    bad[3, 0] = np.nan
    with pytest.raises(SetupError, match="NaN"):
        c.compute(bad)
    with pytest.raises(SetupError, match="cutoff"):
        c.compute(x, box=[3.0, 3.0, 3.0])


def test_mm_atoms_left_out_of_the_given_molecules_get_their_own_charge_group():
    """The MM half of a residue cut by the QM region must be switched by its own distance."""
    x, el, bonds, q = ethane_in_water(3)
    waters = [np.arange(8 + 3 * w, 11 + 3 * w) for w in range(3)]
    c = QMMMCoupling(FakeQM([0.3, -0.1, -0.1, -0.1, 0.0]), [0, 1, 2, 3], len(x), charges=q, elements=el,
                     bonds=bonds, cutoff=0.6, switch_width=0.2, molecules=waters)
    assert np.all(c.group[4:] >= 0)
    assert len({int(c.group[i]) for i in (4, 5, 6, 7)}) == 1
    assert c.group[4] not in {int(c.group[w[0]]) for w in waters}
    np.testing.assert_allclose(c.compute(x)[1], numeric_forces(c, x), atol=2e-5)
