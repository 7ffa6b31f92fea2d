r"""QM/MM coupling: energy composition, link atoms, boundary charges and a smooth cutoff.

Engine-agnostic: the QM part is any :class:`~bridge.protocols.EnergyModel` that accepts
embedding point charges (``PySCFModel``, or an MM stand-in for the degenerate test), the MM
part is whatever engine runs the whole system (OpenMM, through its own ``System``).

Two schemes (``scheme=``):

``"electrostatic"`` (additive, electrostatic embedding)
    .. math:: E = E_\mathrm{MM'}(\text{all}) + E_\mathrm{QM}\big(\text{QM} + \text{links};
              \{q_J s_J, r_J\}\big)

    :math:`E_\mathrm{MM'}` is the MM engine's energy of the whole system with the QM atoms'
    charges removed and QM–QM terms excluded (Lennard-Jones and boundary bonded terms kept),
    e.g. ``bridge_adapters.openmm.qmmm.electrostatic_embedding_system``.  The QM density and
    nuclei feel the MM charges :math:`q_J` scaled by the switch :math:`s_J`; this class returns
    the second term and its forces on every atom.

``"subtractive"`` (ONIOM-2, mechanical embedding)
    .. math:: E = E_\mathrm{MM}(\text{all}) + E_\mathrm{QM}(\text{QM} + \text{links})
              - E_\mathrm{MM}(\text{QM} + \text{links})

    The MM engine runs the unmodified system; this class returns the last two terms, with
    ``mm_region_model`` evaluating :math:`E_\mathrm{MM}` of the region plus link atoms.

**Link atoms.**  For a covalent bond cut between a QM host Q and an MM host M, a hydrogen sits on
the bond line, :math:`r_L = r_Q + g (r_M - r_Q)` with a fixed ratio
:math:`g = (\rho_Q + \rho_H) / (\rho_Q + \rho_M)` from covalent radii (Cordero et al. 2008),
and its force is handed to the hosts exactly by the chain rule:
:math:`F_Q \mathrel{+}= (1-g) F_L`, :math:`F_M \mathrel{+}= g F_L`.  By default only non-polar
single bonds are cut (|Delta chi| <= 0.4 on the Pauling scale, both hosts saturated); other
cuts raise :class:`SetupError` unless ``allow_polar_cut=True``.

**Boundary charges** (electrostatic scheme, ``boundary=``): ``"zero"`` drops the MM host's
charge; ``"rc"`` (redistributed charge, Lin & Truhlar 2005) drops it and places
:math:`q_M / n` at the midpoint of each of the n bonds from M to its MM neighbours (forces on
those virtual charges go half to each end); ``"none"`` keeps it.

**Cutoff** (``cutoff``, ``switch_width``, nm).  MM molecules (charge groups, so that embedded
charge stays integral) are embedded when the distance d from their first atom to the QM
centroid (minimum image in a periodic box) is below ``cutoff``; their charges are scaled by the
C1 switch :math:`s(d) = \cos^2(\pi (d - d_0) / (2 w))`, :math:`d_0 = r_c - w`, equal to one
below :math:`d_0`.  The chain-rule term :math:`-\phi_J q_J s'(d) \partial d / \partial r`
(:math:`\phi_J = \partial E / \partial (q_J s_J)`, the potential the QM region makes at J)
is in the forces on the molecule's first atom and on the QM atoms.  The QM region is made
whole across the box edge (minimum image relative to its first atom), and each embedded
molecule is shifted by one lattice vector as a whole.

Units: nm, e, kJ/mol, kJ/(mol nm).  Shapes: ``n`` atoms in the system, positions ``(n, 3)``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from .errors import SetupError
from .units import finite_array, to_internal
from .zones import CosSquaredSwitch

__all__ = ["LinkAtom", "QMMMCoupling", "link_ratio", "COVALENT_RADIUS", "PAULING"]

#: Covalent radii (nm), Cordero et al., Dalton Trans. 2008, 2832.
COVALENT_RADIUS = {"H": 0.031, "C": 0.076, "N": 0.071, "O": 0.066, "F": 0.057, "Si": 0.111,
                   "P": 0.107, "S": 0.105, "Cl": 0.102, "Se": 0.120, "Br": 0.120}
#: Pauling electronegativities.
PAULING = {"H": 2.20, "C": 2.55, "N": 3.04, "O": 3.44, "F": 3.98, "Si": 1.90, "P": 2.19,
           "S": 2.58, "Cl": 3.16, "Se": 2.55, "Br": 2.96}
#: Neighbour count of a saturated (sp3) atom.
SATURATED = {"C": 4, "Si": 4, "N": 3, "P": 3, "O": 2, "S": 2}


def link_ratio(q_element: str, m_element: str) -> float:
    """Fixed link-atom ratio g = (rho_Q + rho_H) / (rho_Q + rho_M) from covalent radii."""
    for el in (q_element, m_element):
        if el not in COVALENT_RADIUS:
            raise SetupError(f"no covalent radius for element '{el}'",
                             fix="pass the link ratio g explicitly (LinkAtom(..., ratio=g))")
    rq = COVALENT_RADIUS[q_element]
    return (rq + COVALENT_RADIUS["H"]) / (rq + COVALENT_RADIUS[m_element])


@dataclass(frozen=True)
class LinkAtom:
    """A hydrogen capping the cut bond ``qm_host``–``mm_host`` (atom indices in the system)."""

    qm_host: int
    mm_host: int
    ratio: float


def _check_cut(q: int, m: int, elements: Sequence[str], neighbours: dict[int, set[int]],
               bond_orders: dict[tuple[int, int], float] | None, allow_polar: bool) -> None:
    eq, em = elements[q], elements[m]
    if allow_polar:
        return
    if eq not in PAULING or em not in PAULING:
        raise SetupError(f"cannot judge the cut {eq}{q}-{em}{m}: unknown element",
                         fix="pass allow_polar_cut=True if this cut is intended")
    if abs(PAULING[eq] - PAULING[em]) > 0.4:
        raise SetupError(f"the QM/MM boundary cuts the polar bond {eq}{q}-{em}{m} "
                         f"(electronegativity difference {abs(PAULING[eq] - PAULING[em]):.2f})",
                         fix="move the boundary to a C-C single bond, or pass allow_polar_cut=True")
    order = None if bond_orders is None else bond_orders.get((min(q, m), max(q, m)))
    unsaturated = any(len(neighbours.get(a, ())) < SATURATED.get(elements[a], 0) for a in (q, m))
    if (order is not None and order > 1) or (order is None and unsaturated):
        raise SetupError(f"the QM/MM boundary cuts a multiple (or conjugated) bond {eq}{q}-{em}{m}",
                         fix="move the boundary to a saturated single bond, or pass allow_polar_cut=True")


class QMMMCoupling:
    """QM/MM energy and forces on all atoms of a system (see the module docstring).

    Parameters
    ----------
    qm_model : EnergyModel
        Energy of the QM atoms plus link atoms (positions in that order), with point-charge
        embedding for ``scheme="electrostatic"`` (properties ``charge_forces`` and, with a
        cutoff, ``charge_potential``).
    qm_atoms : (k,) int
        Indices of the QM atoms in the system.
    n_atoms : int
        Number of atoms in the system.
    scheme : "electrostatic" or "subtractive"
    charges : (n,) e
        MM charges of every atom (the QM atoms' entries are ignored).  Needed for
        ``"electrostatic"``.
    elements : (n,) str
        Element symbols (link ratios and the cut check).
    bonds : (b, 2) int
        Covalent bonds of the system; bonds from a QM to an MM atom become link atoms.
    bond_orders : dict ``{(i, j): order}`` with i < j, optional
    molecules : sequence of index arrays, optional
        Charge groups of the MM atoms (e.g. the waters); default: connected components of
        ``bonds``.  Only used with a cutoff.
    boundary : "rc", "zero" or "none"
    cutoff, switch_width : nm, optional
        Electrostatic embedding cutoff with a smooth switch (see the module docstring).
    mm_region_model : EnergyModel
        ``"subtractive"``: MM energy and forces of the QM atoms plus link atoms.
    link_ratio : float, optional
        Override the covalent-radius ratio for every link.
    allow_polar_cut : bool
        Accept cuts through polar or multiple bonds.
    """

    def __init__(self, qm_model: Any, qm_atoms: Sequence[int], n_atoms: int, *,
                 scheme: str = "electrostatic", charges: Any = None,
                 elements: Sequence[str] | None = None, bonds: Any = None,
                 bond_orders: dict[tuple[int, int], float] | None = None,
                 molecules: Sequence[Sequence[int]] | None = None, boundary: str = "rc",
                 cutoff: Any = None, switch_width: Any = None, mm_region_model: Any = None,
                 link_ratio: float | None = None, allow_polar_cut: bool = False):
        if scheme not in ("electrostatic", "subtractive"):
            raise SetupError(f"unknown QM/MM scheme '{scheme}'", fix="use 'electrostatic' or 'subtractive'")
        if boundary not in ("rc", "zero", "none"):
            raise SetupError(f"unknown boundary-charge scheme '{boundary}'", fix="use 'rc', 'zero' or 'none'")
        self.n_atoms = int(n_atoms)
        qm = np.unique(np.asarray(qm_atoms, dtype=np.int64))
        if qm.size == 0 or qm.size != len(qm_atoms) or qm[0] < 0 or qm[-1] >= self.n_atoms:
            raise SetupError(f"QM atoms must be unique indices in [0, {self.n_atoms})",
                             fix="select the QM region with valid, distinct atom indices")
        self.qm = np.asarray(qm_atoms, dtype=np.int64)
        self.scheme, self.boundary = scheme, boundary
        self.qm_model, self.mm_region_model = qm_model, mm_region_model
        in_qm = np.zeros(self.n_atoms, bool)
        in_qm[self.qm] = True
        self.in_qm = in_qm

        bonds = np.zeros((0, 2), np.int64) if bonds is None else np.asarray(bonds, np.int64).reshape(-1, 2)
        if bonds.size and (bonds.min() < 0 or bonds.max() >= self.n_atoms):
            raise SetupError("bond indices out of range", fix="pass bonds as (b, 2) atom indices of this system")
        self.bonds = bonds
        neighbours: dict[int, set[int]] = {}
        for i, j in bonds:
            neighbours.setdefault(int(i), set()).add(int(j))
            neighbours.setdefault(int(j), set()).add(int(i))
        self.neighbours = neighbours

        cut = [(int(i), int(j)) if in_qm[i] else (int(j), int(i)) for i, j in bonds if in_qm[i] != in_qm[j]]
        if cut and elements is None:
            raise SetupError("the QM region is bonded to MM atoms but no element symbols were given",
                             fix="pass elements=[...] (one symbol per atom) to place link atoms")
        self.links: list[LinkAtom] = []
        for q, m in cut:
            _check_cut(q, m, elements, neighbours, bond_orders, allow_polar_cut)
            g = link_ratio if link_ratio is not None else globals()["link_ratio"](elements[q], elements[m])
            self.links.append(LinkAtom(q, m, float(g)))
        self._lq = np.array([lk.qm_host for lk in self.links], np.int64)
        self._lm = np.array([lk.mm_host for lk in self.links], np.int64)
        self._lg = np.array([lk.ratio for lk in self.links], float)

        if scheme == "subtractive" and mm_region_model is None:
            raise SetupError("the subtractive scheme needs mm_region_model (E_MM of QM + link atoms)",
                             fix="pass e.g. bridge_adapters.openmm.qmmm.SubsystemEnergy(...)")
        if scheme == "electrostatic":
            if charges is None:
                raise SetupError("electrostatic embedding needs the MM charges",
                                 fix="pass charges=(n,) e, e.g. bridge_adapters.openmm.qmmm.mm_charges(system)")
            self.charges = finite_array(charges, (self.n_atoms,), name="charges")
        else:
            self.charges = np.zeros(self.n_atoms)
        self._setup_embedding()

        self.cutoff = None if cutoff is None else to_internal(cutoff, name="cutoff")
        if self.cutoff is not None:
            w = to_internal(switch_width if switch_width is not None else 0.1 * self.cutoff, name="switch_width")
            if not 0 < w <= self.cutoff:
                raise SetupError(f"switch_width must be in (0, cutoff], got {w}",
                                 fix="use a switch width smaller than the cutoff, e.g. 0.1 * cutoff")
            self.switch = CosSquaredSwitch(w)
            self._d0 = self.cutoff - w
            if molecules is None:
                molecules = self._components()
            self._set_groups(molecules)
        elif molecules is not None:
            self._set_groups(molecules)
        self.last: dict[str, Any] = {}

    # -- set-up helpers ---------------------------------------------------------------
    def _components(self) -> list[np.ndarray]:
        parent = np.arange(self.n_atoms)

        def find(a: int) -> int:
            while parent[a] != a:
                parent[a] = parent[parent[a]]
                a = parent[a]
            return a

        for i, j in self.bonds:
            if not (self.in_qm[i] or self.in_qm[j]):
                ri, rj = find(int(i)), find(int(j))
                if ri != rj:
                    parent[max(ri, rj)] = min(ri, rj)
        roots = np.array([find(a) for a in range(self.n_atoms)])
        mm = np.flatnonzero(~self.in_qm)
        return [mm[roots[mm] == r] for r in np.unique(roots[mm])]

    def _set_groups(self, molecules: Sequence[Sequence[int]]) -> None:
        """Charge groups from ``molecules``; MM atoms they leave out (e.g. the MM part of a
        residue cut by the QM boundary) are grouped by covalent connectivity."""
        group = np.full(self.n_atoms, -1, np.int64)
        anchors = []
        molecules = list(molecules)
        listed = np.zeros(self.n_atoms, bool)
        for mol in molecules:
            listed[np.asarray(mol, np.int64)] = True
        rest = [c[~listed[c]] for c in self._components()]
        molecules += [c for c in rest if c.size]
        for k, mol in enumerate(molecules):
            mol = np.asarray(mol, np.int64)
            if mol.size == 0 or np.any(self.in_qm[mol]) or np.any(group[mol] >= 0):
                raise SetupError("MM molecules must be non-empty, disjoint and contain no QM atom",
                                 fix="pass the MM charge groups (e.g. one array per water), or leave the default")
            group[mol] = k
            anchors.append(mol[0])
        self.group = group
        self.anchors = np.array(anchors, np.int64)

    def _setup_embedding(self) -> None:
        """Embedded charge sites: real MM atoms and (rc) virtual bond-midpoint charges."""
        q = self.charges.copy()
        q[self.in_qm] = 0.0
        virtual: list[tuple[int, int, float]] = []
        if self.scheme == "electrostatic" and self.links:
            for m in set(self._lm.tolist()):
                qm_charge = q[m]
                q[m] = 0.0 if self.boundary in ("rc", "zero") else q[m]
                if self.boundary == "rc":
                    mm_nb = [n for n in sorted(self.neighbours.get(m, ())) if not self.in_qm[n]]
                    for n in mm_nb:
                        virtual.append((m, n, qm_charge / len(mm_nb)))
        self.site_charge = q                      # (n,) charge of each real atom as embedded
        self.virtual = virtual                    # (M1, M2, charge) at the bond midpoint

    # -- geometry ---------------------------------------------------------------------
    @staticmethod
    def _mic(d: np.ndarray, box: np.ndarray | None) -> np.ndarray:
        return d if box is None else d - box * np.round(d / box)

    # -- the calculation --------------------------------------------------------------
    def compute(self, positions: Any, box: Any = None) -> tuple[float, np.ndarray]:
        """QM/MM energy (kJ/mol) and forces ``(n, 3)`` kJ/(mol nm) of the coupling terms.

        ``self.last`` keeps the QM energy, the number of embedded charges and ``region``: the
        ``(k + n_links, 3)`` nm positions handed to the QM model (QM atoms, then link atoms).

        ``box``: ``(3,)`` orthorhombic box lengths (nm) for periodic systems, else None.
        """
        x = finite_array(positions, (self.n_atoms, 3), name="positions")
        box = None if box is None else finite_array(box, (3,), name="box")
        if box is not None and self.scheme == "electrostatic" and self.cutoff is None:
            raise SetupError("electrostatic embedding in a periodic box needs a cutoff",
                             fix="pass cutoff= (nm) and switch_width= to QMMMCoupling")
        forces = np.zeros_like(x)
        # QM region whole across the box edge
        xq = x[self.qm].copy()
        if box is not None:
            xq = xq[0] + self._mic(xq - xq[0], box)
        x_local = x.copy()
        x_local[self.qm] = xq
        if box is not None and len(self.links):
            x_local[self._lm] = x_local[self._lq] + self._mic(x[self._lm] - x_local[self._lq], box)
        xl = x_local[self._lq] + self._lg[:, None] * (x_local[self._lm] - x_local[self._lq]) \
            if len(self.links) else np.zeros((0, 3))
        region = np.vstack([xq, xl])

        if self.scheme == "subtractive":
            res = self.qm_model.compute(region, ("energy", "forces"))
            mm = self.mm_region_model.compute(region, ("energy", "forces"))
            energy = float(res["energy"]) - float(mm["energy"])
            f_region = np.asarray(res["forces"]) - np.asarray(mm["forces"])
            self._scatter_region(forces, f_region)
            self.last = {"energy_qm": float(res["energy"]), "energy_mm_region": float(mm["energy"]),
                         "region": region}
            return energy, forces

        sites, pos, q, scale, dscale = self._embedded_sites(x, xq, box)
        props = ("energy", "forces", "charge_forces") + (("charge_potential",) if self.cutoff is not None else ())
        res = self.qm_model.compute(region, props, charges=q * scale, charge_positions=pos)
        energy = float(res["energy"])
        self._scatter_region(forces, np.asarray(res["forces"]))
        fc = np.asarray(res["charge_forces"])
        self._scatter_sites(forces, sites, fc)
        if self.cutoff is not None and len(q):
            # -dE/dr through the switch: phi_J q_J s'(d) dd/dr, d = |anchor - QM centroid|
            phi = np.asarray(res["charge_potential"])
            coef = -phi * q * dscale[:, 0]                       # (m,) scalar per site, times unit vector
            unit = dscale[:, 1:]
            per_site = coef[:, None] * unit                      # force on the anchor of each site's group
            anchors = self.anchors[self.group[self._site_owner(sites)]]
            np.add.at(forces, anchors, per_site)
            forces[self.qm] -= per_site.sum(axis=0) / len(self.qm)
        self.last = {"energy_qm": energy, "n_charges": int(len(q)), "region": region}
        return energy, forces

    def _site_owner(self, sites: np.ndarray) -> np.ndarray:
        """The real MM atom whose group a site belongs to (a virtual site: its MM host)."""
        n = self.n_atoms
        owner = sites.copy()
        virt = sites >= n
        if np.any(virt):
            owner[virt] = [self.virtual[k - n][0] for k in sites[virt]]
        return owner

    def _embedded_sites(self, x: np.ndarray, xq: np.ndarray, box: np.ndarray | None):
        """Sites (index; >= n for virtual), positions, charges, switch values and derivatives.

        ``dscale`` rows are ``(s'(d), unit vector from the QM centroid to the group's anchor)``.
        """
        n = self.n_atoms
        real = np.flatnonzero((~self.in_qm) & (self.site_charge != 0.0))
        idx = np.concatenate([real, n + np.arange(len(self.virtual))]).astype(np.int64)
        q = np.concatenate([self.site_charge[real], [v[2] for v in self.virtual]]).astype(float)
        owner = self._site_owner(idx)
        if self.cutoff is None:
            local = x                                            # isolated system: as given
            scale, dscale = np.ones(len(idx)), np.zeros((len(idx), 4))
        else:
            centroid = xq.mean(axis=0)
            anchors = self.anchors[self.group[owner]]
            dmic = self._mic(x[anchors] - centroid, box)
            d = np.linalg.norm(dmic, axis=1)
            keep = d < self.cutoff
            idx, q, owner, anchors, dmic, d = idx[keep], q[keep], owner[keep], anchors[keep], dmic[keep], d[keep]
            scale = self.switch(d - self._d0)
            dscale = np.column_stack([self.switch.derivative(d - self._d0), dmic / np.maximum(d, 1e-300)[:, None]])
            # every atom of an embedded group as the image next to its anchor's image near the QM
            local = x.copy()
            if box is not None:
                kept = set(idx.tolist())
                partners = [v[1] for k, v in enumerate(self.virtual) if n + k in kept]
                members = np.unique(np.concatenate([owner, partners])).astype(np.int64)
                a_of = self.anchors[self.group[members]]
                a_local = centroid + self._mic(x[a_of] - centroid, box)
                local[members] = a_local + self._mic(x[members] - x[a_of], box)
        pos = np.empty((len(idx), 3))
        real_mask = idx < n
        pos[real_mask] = local[idx[real_mask]]
        for row in np.flatnonzero(~real_mask):
            m1, m2, _ = self.virtual[idx[row] - n]
            pos[row] = 0.5 * (local[m1] + local[m2])
        return idx, pos, q, scale, dscale

    def _scatter_region(self, forces: np.ndarray, f_region: np.ndarray) -> None:
        k = len(self.qm)
        forces[self.qm] += f_region[:k]
        if len(self.links):
            fl = f_region[k:]
            np.add.at(forces, self._lq, (1.0 - self._lg)[:, None] * fl)
            np.add.at(forces, self._lm, self._lg[:, None] * fl)

    def _scatter_sites(self, forces: np.ndarray, sites: np.ndarray, fc: np.ndarray) -> None:
        n = self.n_atoms
        real = sites < n
        np.add.at(forces, sites[real], fc[real])
        for row in np.flatnonzero(~real):
            m1, m2, _ = self.virtual[sites[row] - n]
            forces[m1] += 0.5 * fc[row]
            forces[m2] += 0.5 * fc[row]
