"""Small QM/MM test systems built from textbook geometries (no force-field files needed).

Ethane (C-C 0.1535 nm, C-H 0.1090 nm, tetrahedral angles) with OPLS-AA charges
(C -0.18 e, H +0.06 e), and TIP3P waters (O-H 0.09572 nm, H-O-H 104.52 deg, q_O = -0.834 e,
q_H = +0.417 e) placed on a shell around it.  Positions in nm.
"""
from __future__ import annotations

import numpy as np

TIP3P_Q = (-0.834, 0.417, 0.417)
OH, HOH = 0.09572, np.deg2rad(104.52)


def _rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    return q * np.sign(np.diag(r))


def water(o: np.ndarray, rot: np.ndarray) -> np.ndarray:
    """(3, 3) O, H, H of a TIP3P water with its oxygen at ``o``."""
    local = np.array([[0.0, 0.0, 0.0], [OH, 0.0, 0.0], [OH * np.cos(HOH), OH * np.sin(HOH), 0.0]])
    return o + local @ rot.T


def ethane() -> tuple[np.ndarray, list[str], list[tuple[int, int]], list[float]]:
    """Staggered ethane: C0 H1 H2 H3 C4 H5 H6 H7."""
    cc, ch = 0.1535, 0.1090
    ct, st = 1.0 / 3.0, np.sqrt(8.0) / 3.0          # cos and sin of 180 - 109.47 deg
    x = [[0.0, 0.0, 0.0]]
    for phi in (0.0, 120.0, 240.0):
        p = np.deg2rad(phi)
        x.append([-ch * ct, ch * st * np.cos(p), ch * st * np.sin(p)])
    x.append([cc, 0.0, 0.0])
    for phi in (60.0, 180.0, 300.0):
        p = np.deg2rad(phi)
        x.append([cc + ch * ct, ch * st * np.cos(p), ch * st * np.sin(p)])
    el = ["C", "H", "H", "H", "C", "H", "H", "H"]
    bonds = [(0, 1), (0, 2), (0, 3), (0, 4), (4, 5), (4, 6), (4, 7)]
    q = [-0.18, 0.06, 0.06, 0.06, -0.18, 0.06, 0.06, 0.06]
    return np.array(x), el, bonds, q


def ethane_in_water_shell(n_water: int, radii: tuple[float, float], seed: int = 7):
    """Ethane plus ``n_water`` TIP3P waters with oxygens at distances in ``radii`` (nm) from
    the centroid of C0's methyl group, spread on a Fibonacci sphere.  Returns positions,
    elements, bonds, charges, and the water molecules (index arrays)."""
    rng = np.random.default_rng(seed)
    x, el, bonds, q = ethane()
    centre = x[:4].mean(axis=0)
    xs, mols = [x], []
    golden = np.pi * (3.0 - np.sqrt(5.0))
    for k in range(n_water):
        z = 1.0 - 2.0 * (k + 0.5) / n_water
        r = np.sqrt(1.0 - z * z)
        u = np.array([r * np.cos(golden * k), r * np.sin(golden * k), z])
        d = radii[0] + (radii[1] - radii[0]) * k / max(n_water - 1, 1)
        base = 8 + 3 * k
        xs.append(water(centre + d * u, _rotation(rng)))
        el += ["O", "H", "H"]
        bonds += [(base, base + 1), (base, base + 2)]
        q += list(TIP3P_Q)
        mols.append(np.arange(base, base + 3))
    return np.vstack(xs), el, np.array(bonds), np.array(q), mols
