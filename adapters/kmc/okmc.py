"""Object kinetic Monte Carlo of vacancy and self-interstitial clusters (residence-time algorithm).

Objects are point defects and their clusters, each a position (nm) and a signed size ``n``:
``n > 0`` a cluster of ``n`` vacancies, ``n < 0`` of ``|n|`` self-interstitials.  Units: nm, s,
K, eV.

- **Migration.**  A mobile object of size ``n`` hops with the total rate
  ``Gamma_n = nu0 exp(-E_m(n) / k_B T)`` by ``lambda`` along one of the eight <111> directions
  of a BCC crystal (``lambda = a sqrt(3) / 2``), chosen uniformly: a 3-D random walk with
  ``D_n = Gamma_n lambda^2 / 6``.  Objects whose size has no migration energy are immobile.
- **Reactions.**  After every hop the object is checked against its neighbours; two objects
  closer than the sum of their capture radii ``r(n) = r_1 |n|^(1/3)`` react: the sizes add
  (a vacancy and an interstitial annihilate, like defects cluster), the survivor keeps the
  larger object's position, and the product is checked again (cascading reactions).
- **Sinks.**  Non-periodic box axes are free surfaces at 0 and ``L``: an object that hops
  across one is absorbed (counted in the ledger).  Inside the box, :class:`Sinks` holds straight
  dislocation lines along a box axis and spheres (voids, precipitates, bubbles): an object that
  ends a hop within the sink's capture radius plus its own ``r(n)`` is absorbed.  Each sink has
  one radius for vacancy-type and one for interstitial-type objects, so a dislocation's bias
  for interstitials is a larger ``radius_i``.  Every hop checks every sink (minimum image), a
  cost linear in the number of sinks.
- **Selection.**  Residence-time (BKL) algorithm with grouped selection: all objects of one
  mobile size share a rate, so an event is two uniform draws -- the size group by its share of
  the total rate (a scan over the few mobile sizes), then a member of the group -- and the time
  advances by ``-ln(u) / R``.  A cell list finds the reaction partners; clusters too large for
  the cells sit on a short list that every hop checks directly.  The event loop is compiled
  with numba (no Python per event).
- **Ledger.**  ``vacancies - interstitials`` in the box plus the absorbed ``V - I`` is a
  conserved integer, checked by :meth:`ObjectKMC.balance`.

Time schedules: :meth:`ObjectKMC.run` advances at one temperature to a given time; segments of
an isochronal anneal are successive calls.  Because the process is memoryless, stopping at a
segment's end without executing the pending event is exact.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bridge.defects import wrap
from bridge.errors import EngineNotAvailable, SetupError

try:
    import numba
except ImportError as exc:           # pragma: no cover - the kmc extra installs it
    raise EngineNotAvailable("kmc", "kmc", reason=str(exc)) from exc

__all__ = ["ObjectKMC", "MigrationTable", "Sinks", "BOLTZMANN_EV", "FE_BCC"]

BOLTZMANN_EV = 8.617333262e-5          # eV/K
#: BCC iron: lattice constant (nm) and default migration energies (eV) of the monomers.
FE_BCC = {"a": 0.28553, "E_m_vacancy": 0.67, "E_m_interstitial": 0.34}

_DIRS = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], float) / np.sqrt(3.0)


@dataclass
class MigrationTable:
    """Migration energies (eV) by signed cluster size; sizes not listed are immobile.

    Defaults (Fe): vacancy 0.67 eV, self-interstitial 0.34 eV, di-interstitial 0.42 eV;
    ``prefactor`` nu0 = 1e13 1/s.
    """

    energies: dict[int, float] = field(default_factory=lambda: {1: 0.67, -1: 0.34, -2: 0.42})
    prefactor: float = 1.0e13

    def rates(self, temperature: float) -> tuple[np.ndarray, np.ndarray]:
        """(sizes, rates 1/s) of the mobile sizes at ``temperature`` K."""
        if not (np.isfinite(temperature) and temperature > 0):
            raise SetupError(f"temperature must be positive, got {temperature} K", fix="pass kelvin")
        sizes = np.array(sorted(self.energies), np.int64)
        em = np.array([self.energies[int(s)] for s in sizes], float)
        if np.any(sizes == 0) or not np.all(np.isfinite(em)) or np.any(em < 0) or not self.prefactor > 0:
            raise SetupError("migration energies must be >= 0 eV for nonzero sizes, prefactor > 0",
                             fix="e.g. MigrationTable({1: 0.67, -1: 0.34})")
        return sizes, self.prefactor * np.exp(-em / (BOLTZMANN_EV * temperature))


class Sinks:
    """Internal sinks of an :class:`ObjectKMC` box: straight lines along a box axis (dislocations)
    and spheres.  Lengths in nm.

    ``radius_v`` and ``radius_i`` are the capture radii for vacancy-type and interstitial-type
    objects (``radius_i`` defaults to ``radius_v``; a dislocation's bias is ``radius_i > radius_v``);
    an object of size ``n`` is absorbed within ``radius + r_1 |n|^(1/3)`` of the line's axis or the
    sphere's centre.  Chain the calls: ``Sinks().lines(2, [[5, 5]], 1.0).sphere([2, 2, 2], 1.5)``.
    """

    def __init__(self):
        self._rows: list[tuple[int, int, tuple[float, float, float], float, float]] = []

    def _radii(self, radius_v, radius_i) -> tuple[float, float]:
        rv = float(radius_v)
        ri = rv if radius_i is None else float(radius_i)
        if not (np.isfinite(rv) and np.isfinite(ri) and rv > 0 and ri > 0):
            raise SetupError(f"sink capture radii must be positive nm, got {radius_v}, {radius_i}",
                             fix="e.g. radius_v=0.65, radius_i=0.85 for a biased dislocation")
        return rv, ri

    def lines(self, axis: int, points, radius_v: float, radius_i: float | None = None) -> "Sinks":
        """Lines along ``axis`` (0, 1, 2) through ``points`` ``(k, 2)``: the coordinates on the two
        other axes, in order (for ``axis=2``: x, y)."""
        if isinstance(axis, bool) or axis not in (0, 1, 2):
            raise SetupError(f"line axis must be 0, 1 or 2, got {axis!r}", fix="pass axis=2 for lines along z")
        P = np.asarray(points, float).reshape(-1, 2)
        if not np.all(np.isfinite(P)):
            raise SetupError("line positions contain NaN or inf", fix="pass finite (k, 2) coordinates in nm")
        rv, ri = self._radii(radius_v, radius_i)
        others = [k for k in range(3) if k != axis]
        for u, v in P:
            c = [0.0, 0.0, 0.0]
            c[others[0]], c[others[1]] = float(u), float(v)
            self._rows.append((0, int(axis), tuple(c), rv, ri))
        return self

    def sphere(self, centre, radius_v: float, radius_i: float | None = None) -> "Sinks":
        """One sphere around ``centre`` ``(3,)``."""
        c = np.asarray(centre, float).reshape(3)
        if not np.all(np.isfinite(c)):
            raise SetupError("sphere centre contains NaN or inf", fix="pass a finite (3,) centre in nm")
        rv, ri = self._radii(radius_v, radius_i)
        self._rows.append((1, 0, tuple(float(x) for x in c), rv, ri))
        return self

    def __len__(self) -> int:
        return len(self._rows)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(kind (k,) 0 line / 1 sphere, axis (k,), centre (k, 3), radii (k, 2) [vacancy, interstitial])``."""
        k = len(self._rows)
        kind = np.array([r[0] for r in self._rows], np.int64).reshape(k)
        axis = np.array([r[1] for r in self._rows], np.int64).reshape(k)
        centre = np.array([r[2] for r in self._rows], float).reshape(k, 3)
        radii = np.array([(r[3], r[4]) for r in self._rows], float).reshape(k, 2)
        return kind, axis, centre, radii

    def line_density(self, box) -> float:
        """Dislocation density (line length per volume, nm^-2) of the lines in ``box`` ``(3,)``."""
        L = np.asarray(box, float).reshape(3)
        return float(sum(L[r[1]] for r in self._rows if r[0] == 0) / np.prod(L))


# -- compiled kernel ----------------------------------------------------------------------------
@numba.njit(cache=True)
def _cell_of(p, L, nc):
    c = 0
    for k in range(3):
        ik = int(p[k] / L[k] * nc[k])
        if ik < 0:
            ik = 0
        elif ik >= nc[k]:
            ik = nc[k] - 1
        c = c * nc[k] + ik
    return c


@numba.njit(cache=True)
def _link(i, c, head, nxt, prv, cell):
    cell[i] = c
    prv[i] = -1
    nxt[i] = head[c]
    if head[c] >= 0:
        prv[head[c]] = i
    head[c] = i


@numba.njit(cache=True)
def _unlink(i, head, nxt, prv, cell):
    c = cell[i]
    if prv[i] >= 0:
        nxt[prv[i]] = nxt[i]
    else:
        head[c] = nxt[i]
    if nxt[i] >= 0:
        prv[nxt[i]] = prv[i]
    cell[i] = -1


@numba.njit(cache=True)
def _group(n, mob):
    for s in range(mob.size):
        if mob[s] == n:
            return s
    return -1


@numba.njit(cache=True)
def _list_add(i, g, members, count, slot):
    members[g, count[g]] = i
    slot[i] = count[g]
    count[g] += 1


@numba.njit(cache=True)
def _list_remove(i, g, members, count, slot):
    k = slot[i]
    last = members[g, count[g] - 1]
    members[g, k] = last
    slot[last] = k
    count[g] -= 1
    slot[i] = -1


@numba.njit(cache=True)
def _attach(i, pos, size, L, nc, head, nxt, prv, cell, mob, members, count, slot, big, nbig, bslot, big_size):
    g = _group(size[i], mob)
    if g >= 0:
        _list_add(i, g, members, count, slot)
    if abs(size[i]) > big_size:
        big[nbig[0]] = i
        bslot[i] = nbig[0]
        nbig[0] += 1
    else:
        bslot[i] = -1
    _link(i, _cell_of(pos[i], L, nc), head, nxt, prv, cell)


@numba.njit(cache=True)
def _detach(i, size, head, nxt, prv, cell, mob, members, count, slot, big, nbig, bslot):
    g = _group(size[i], mob)
    if g >= 0:
        _list_remove(i, g, members, count, slot)
    if bslot[i] >= 0:
        k = bslot[i]
        last = big[nbig[0] - 1]
        big[k] = last
        bslot[last] = k
        nbig[0] -= 1
        bslot[i] = -1
    _unlink(i, head, nxt, prv, cell)


@numba.njit(cache=True)
def _dist2(a, b, L, periodic):
    d2 = 0.0
    for k in range(3):
        d = a[k] - b[k]
        if periodic[k]:
            d -= L[k] * np.floor(d / L[k] + 0.5)
        d2 += d * d
    return d2


@numba.njit(cache=True)
def _overlaps(i, j, ri, pos, size, L, periodic, r1):
    """Objects ``i`` (capture radius ``ri``) and ``j`` are closer than the sum of their radii."""
    rj = r1 * abs(size[j]) ** (1.0 / 3.0)
    return j != i and _dist2(pos[i], pos[j], L, periodic) < (ri + rj) ** 2


@numba.njit(cache=True)
def _neighbour(c, d, n, periodic):
    """Cell index ``c + d`` on an axis of ``n`` cells: wrapped if periodic, -1 beyond a wall."""
    c += d
    if periodic:
        return c % n
    return c if 0 <= c < n else -1


@numba.njit(cache=True)
def _partner(i, pos, size, L, periodic, nc, head, nxt, big, nbig, r1, big_size, capacity):
    """An object overlapping ``i`` (sum of capture radii), or -1."""
    ri = r1 * abs(size[i]) ** (1.0 / 3.0)
    if abs(size[i]) > big_size:                     # a large cluster moved: check everything
        for j in range(capacity):
            if size[j] != 0 and _overlaps(i, j, ri, pos, size, L, periodic, r1):
                return j
        return -1
    ci = np.empty(3, np.int64)
    for k in range(3):
        ci[k] = min(max(int(pos[i, k] / L[k] * nc[k]), 0), nc[k] - 1)
    for dx in range(-1, 2):
        cx = _neighbour(ci[0], dx, nc[0], periodic[0])
        if cx < 0:
            continue
        for dy in range(-1, 2):
            cy = _neighbour(ci[1], dy, nc[1], periodic[1])
            if cy < 0:
                continue
            for dz in range(-1, 2):
                cz = _neighbour(ci[2], dz, nc[2], periodic[2])
                if cz < 0:
                    continue
                # with fewer than three cells on an axis a cell is visited twice: harmless
                j = head[(cx * nc[1] + cy) * nc[2] + cz]
                while j >= 0:
                    if _overlaps(i, j, ri, pos, size, L, periodic, r1):
                        return j
                    j = nxt[j]
    for k in range(nbig[0]):
        if _overlaps(i, big[k], ri, pos, size, L, periodic, r1):
            return big[k]
    return -1


@numba.njit(cache=True)
def _react(i, pos, size, L, periodic, nc, head, nxt, prv, cell, mob, members, count, slot, big, nbig, bslot,
           big_size, r1, free, nfree, ledger, capacity, sk_kind, sk_axis, sk_c, sk_r):
    """React ``i`` with every object it overlaps, repeatedly (the product may overlap more); a
    product that reaches a sink is absorbed there."""
    while True:
        j = _partner(i, pos, size, L, periodic, nc, head, nxt, big, nbig, r1, big_size, capacity)
        if j < 0:
            return
        ni, nj = size[i], size[j]
        _detach(i, size, head, nxt, prv, cell, mob, members, count, slot, big, nbig, bslot)
        _detach(j, size, head, nxt, prv, cell, mob, members, count, slot, big, nbig, bslot)
        ledger[0] += 1                                   # reactions
        if ni * nj < 0:
            ledger[1] += min(abs(ni), abs(nj))           # Frenkel pairs annihilated
        total = ni + nj
        keep, drop = (j, i) if abs(nj) >= abs(ni) else (i, j)
        size[drop] = 0
        free[nfree[0]] = drop
        nfree[0] += 1
        if total == 0:
            size[keep] = 0
            free[nfree[0]] = keep
            nfree[0] += 1
            return
        if sk_kind.size > 0 and _sunk(pos[keep], total, L, periodic, r1, sk_kind, sk_axis, sk_c, sk_r):
            _count_absorbed(total, True, ledger)         # grown into a sink's reach
            size[keep] = 0
            free[nfree[0]] = keep
            nfree[0] += 1
            return
        size[keep] = total
        _attach(keep, pos, size, L, nc, head, nxt, prv, cell, mob, members, count, slot, big, nbig, bslot, big_size)
        i = keep


@numba.njit(cache=True)
def _setup(m, pos, size, L, periodic, nc, head, nxt, prv, cell, mob, members, count, slot, big, nbig, bslot,
           big_size, r1, free, nfree, ledger, capacity, sk_kind, sk_axis, sk_c, sk_r):
    """File the first ``m`` objects in the cells and groups, then react every overlap."""
    for i in range(m):
        _attach(i, pos, size, L, nc, head, nxt, prv, cell, mob, members, count, slot, big, nbig, bslot, big_size)
    if r1 > 0.0:
        for i in range(m):
            if size[i] != 0:
                _react(i, pos, size, L, periodic, nc, head, nxt, prv, cell, mob, members, count, slot, big, nbig,
                       bslot, big_size, r1, free, nfree, ledger, capacity, sk_kind, sk_axis, sk_c, sk_r)


@numba.njit(cache=True)
def _insert(Pn, nn, pos, disp, size, L, periodic, nc, head, nxt, prv, cell, mob, members, count, slot, big, nbig,
            bslot, big_size, r1, free, nfree, ledger, capacity, sk_kind, sk_axis, sk_c, sk_r):
    """Put new objects into free slots (the caller made room), then react them."""
    k = nn.size
    new = np.empty(k, np.int64)
    for q in range(k):
        nfree[0] -= 1
        i = free[nfree[0]]
        new[q] = i
        for c in range(3):
            pos[i, c] = Pn[q, c]
            disp[i, c] = 0.0
        size[i] = nn[q]
        _attach(i, pos, size, L, nc, head, nxt, prv, cell, mob, members, count, slot, big, nbig, bslot, big_size)
    if r1 > 0.0:
        for q in range(k):
            i = new[q]
            if size[i] != 0:
                _react(i, pos, size, L, periodic, nc, head, nxt, prv, cell, mob, members, count, slot, big, nbig,
                       bslot, big_size, r1, free, nfree, ledger, capacity, sk_kind, sk_axis, sk_c, sk_r)


@numba.njit(cache=True)
def _sunk(p, n, L, periodic, r1, sk_kind, sk_axis, sk_c, sk_r):
    """Object of size ``n`` at ``p`` lies within the capture radius of a sink."""
    rn = r1 * abs(n) ** (1.0 / 3.0)
    col = 0 if n > 0 else 1
    for s in range(sk_kind.size):
        reach = sk_r[s, col] + rn
        d2 = 0.0
        for k in range(3):
            if sk_kind[s] == 0 and k == sk_axis[s]:
                continue                                  # along a line: no distance
            d = p[k] - sk_c[s, k]
            if periodic[k]:
                d -= L[k] * np.floor(d / L[k] + 0.5)
            d2 += d * d
        if d2 < reach * reach:
            return True
    return False


@numba.njit(cache=True)
def _count_absorbed(n, sunk, ledger):
    """Ledger entries of an object of size ``n`` absorbed (``sunk``: at an internal sink)."""
    if n > 0:
        ledger[2] += n
        if sunk:
            ledger[4] += n
    else:
        ledger[3] -= n
        if sunk:
            ledger[5] -= n


@numba.njit(cache=True)
def _sunk_all(P, n, L, periodic, r1, sk_kind, sk_axis, sk_c, sk_r):
    out = np.zeros(n.size, np.bool_)
    for i in range(n.size):
        out[i] = _sunk(P[i], n[i], L, periodic, r1, sk_kind, sk_axis, sk_c, sk_r)
    return out


@numba.njit(cache=True)
def _run(rng, t, t_end, max_events, pos, disp, size, L, periodic, nc, head, nxt, prv, cell, mob, rate, members, count,
         slot, big, nbig, bslot, big_size, r1, lam, dirs, free, nfree, ledger, capacity, sk_kind, sk_axis, sk_c, sk_r):
    """Events until ``t_end`` (s) or ``max_events``; returns (time, events)."""
    ng = mob.size
    events = 0
    while events < max_events:
        R = 0.0
        for g in range(ng):
            R += count[g] * rate[g]
        if R <= 0.0:
            return t_end, events
        dt = -np.log(1.0 - rng.random()) / R
        if t + dt >= t_end:
            return t_end, events
        t += dt
        x = rng.random() * R
        g = 0
        acc = count[0] * rate[0]
        while acc <= x and g < ng - 1:
            g += 1
            acc += count[g] * rate[g]
        if count[g] == 0:
            continue
        i = members[g, min(int(rng.random() * count[g]), count[g] - 1)]
        d = dirs[int(rng.random() * 8) % 8]
        gone = False
        for k in range(3):
            pos[i, k] += lam * d[k]
            disp[i, k] += lam * d[k]
            if periodic[k]:
                pos[i, k] -= L[k] * np.floor(pos[i, k] / L[k])
                if pos[i, k] >= L[k]:                     # -1e-17 wraps to L in floating point
                    pos[i, k] = 0.0
            elif pos[i, k] < 0.0 or pos[i, k] >= L[k]:
                gone = True
        events += 1
        _unlink(i, head, nxt, prv, cell)
        sunk = not gone and sk_kind.size > 0 and _sunk(pos[i], size[i], L, periodic, r1, sk_kind, sk_axis, sk_c, sk_r)
        if gone or sunk:                                 # absorbed at a free surface or an internal sink
            n = size[i]
            _link(i, 0, head, nxt, prv, cell)
            _detach(i, size, head, nxt, prv, cell, mob, members, count, slot, big, nbig, bslot)
            _count_absorbed(n, sunk, ledger)
            size[i] = 0
            free[nfree[0]] = i
            nfree[0] += 1
            continue
        _link(i, _cell_of(pos[i], L, nc), head, nxt, prv, cell)
        if r1 > 0.0:
            _react(i, pos, size, L, periodic, nc, head, nxt, prv, cell, mob, members, count, slot, big, nbig,
                   bslot, big_size, r1, free, nfree, ledger, capacity, sk_kind, sk_axis, sk_c, sk_r)
    return t, events


# -- the engine -------------------------------------------------------------------------------
class ObjectKMC:
    """Object KMC of point defects and clusters in a box (module docstring for the model).

    Parameters
    ----------
    box : (3,) nm box lengths, the box spanning [0, L).
    positions : (m, 3) nm object positions; sizes : (m,) signed ints (+n vacancies, -n interstitials).
    periodic : per-axis periodicity; a non-periodic axis has absorbing free surfaces at 0 and L.
    migration : :class:`MigrationTable` (default: Fe monomers and the di-interstitial).
    lattice_constant : nm, BCC; the hop length is ``a sqrt(3) / 2``.
    capture_radius : nm, ``r_1``; two objects react within ``r(n_i) + r(n_j)``, ``r(n) = r_1 |n|^(1/3)``
        (0 switches reactions off, e.g. to measure diffusion).
    seed : random seed (the run is reproducible for a given seed and sequence of calls).
    big_size : clusters with more than this many defects are kept on a short list that every hop
        checks directly; the cell edge is sized for the smaller ones (``2 r(big_size)``).
    sinks : :class:`Sinks`, optional; dislocation lines and spheres inside the box.

    Objects that overlap at the start react before anything moves (counted in the ledger); objects
    that start (or are inserted) within a sink, and reaction products that reach one, are absorbed
    at once (counted as absorbed there).  The sinks are fixed when the engine is built (``sinks``
    is copied into the kernel's arrays; a new set of sinks needs a new engine).
    """

    def __init__(self, box, positions, sizes, *, periodic=(True, True, True), migration: MigrationTable | None = None,
                 lattice_constant: float = FE_BCC["a"], capture_radius: float = 0.33, seed: int = 0,
                 big_size: int = 8, sinks: Sinks | None = None):
        L = np.asarray(box, float).reshape(3)
        if not (np.all(np.isfinite(L)) and np.all(L > 0)):
            raise SetupError(f"box lengths must be positive nm, got {L}", fix="pass (Lx, Ly, Lz) in nm")
        P = np.asarray(positions, float).reshape(-1, 3)
        n = np.asarray(sizes).reshape(-1)
        if len(n) != len(P):
            raise SetupError(f"{len(P)} positions but {len(n)} sizes", fix="pass one signed size per object")
        if not np.all(np.isfinite(P)):
            raise SetupError("object positions contain NaN or inf", fix="pass finite positions in nm")
        if n.size and (not np.issubdtype(n.dtype, np.integer) or np.any(n == 0)):
            raise SetupError("sizes must be nonzero integers (+n vacancies, -n interstitials)",
                             fix="drop empty objects and pass integer sizes")
        per = np.asarray(periodic, bool).reshape(3)
        P = wrap(P, L, per)
        for k in np.flatnonzero(~per):
            if P.size and (P[:, k].min() < 0 or P[:, k].max() >= L[k]):
                raise SetupError(f"objects lie outside the box on the non-periodic axis {k}",
                                 fix="put every object inside [0, L) or make that axis periodic")
        if isinstance(big_size, bool) or not isinstance(big_size, (int, np.integer)) or big_size < 1:
            raise SetupError(f"big_size must be an integer >= 1, got {big_size!r}",
                             fix="leave the default (8): clusters larger than this are checked on a short list")
        if not (np.isfinite(capture_radius) and capture_radius >= 0) or not lattice_constant > 0:
            raise SetupError("capture_radius must be >= 0 nm and lattice_constant > 0 nm",
                             fix="e.g. capture_radius=0.33, lattice_constant=0.28553 (Fe)")
        self.migration = migration or MigrationTable()
        self.mob, _ = self.migration.rates(300.0)
        self.L, self.periodic = L, per
        self.lam = float(lattice_constant) * np.sqrt(3.0) / 2.0
        self.r1, self.big_size = float(capture_radius), int(big_size)
        edge = 2.0 * self.r1 * self.big_size ** (1.0 / 3.0)
        self.nc = np.array([1 if edge <= 0 else int(min(max(np.floor(l / edge), 1), 128)) for l in L], np.int64)
        if sinks is not None and not isinstance(sinks, Sinks):
            raise SetupError(f"sinks must be a Sinks object, got {type(sinks).__name__}",
                             fix="build them with Sinks().lines(axis, points, radius_v, radius_i).sphere(...)")
        self.sinks = sinks or Sinks()
        self._sk = self.sinks.arrays()
        #: reactions, Frenkel pairs annihilated, vacancies absorbed, interstitials absorbed (surfaces
        #: and sinks), of which vacancies and interstitials absorbed at internal sinks
        self.ledger = np.zeros(6, np.int64)
        self.time = 0.0
        self.events = 0
        self.cascades = 0
        self.dose = 0.0
        self._dirs = _DIRS.copy()
        self.rng = np.random.default_rng(int(seed))
        self._initial = int(n.sum()) if n.size else 0
        P, n = self._absorb_at_sinks(P, n.astype(np.int64))
        self._allocate(P, n, len(P) + 8)

    def _absorb_at_sinks(self, P: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The objects not within a sink; those within are counted as absorbed there."""
        if not len(self.sinks) or not n.size:
            return P, n
        hit = _sunk_all(np.ascontiguousarray(P), n, self.L, self.periodic, self.r1, *self._sk)
        v, i = int(n[hit & (n > 0)].sum()), int(-n[hit & (n < 0)].sum())
        self.ledger[[2, 4]] += v
        self.ledger[[3, 5]] += i
        return P[~hit], n[~hit]

    def _allocate(self, P: np.ndarray, n: np.ndarray, C: int) -> None:
        """(Re)build every array for the objects ``P``, ``n`` with room for ``C`` and react overlaps."""
        m = len(P)
        self.capacity = C
        disp = np.zeros((C, 3))
        if hasattr(self, "disp"):                     # growing: P are the live objects, in order
            disp[:m] = self.disp[self.alive]
        self.disp = disp
        self.pos = np.zeros((C, 3))
        self.pos[:m] = P
        self.size = np.zeros(C, np.int64)
        self.size[:m] = n
        self.head = -np.ones(int(np.prod(self.nc)), np.int64)
        self.nxt = -np.ones(C, np.int64)
        self.prv = -np.ones(C, np.int64)
        self.cell = -np.ones(C, np.int64)
        self.members = -np.ones((len(self.mob), C), np.int64)
        self.count = np.zeros(len(self.mob), np.int64)
        self.slot = -np.ones(C, np.int64)
        self.big = -np.ones(C, np.int64)
        self.nbig = np.zeros(1, np.int64)
        self.bslot = -np.ones(C, np.int64)
        self.free = np.zeros(C, np.int64)
        self.free[: C - m] = np.arange(C - 1, m - 1, -1)
        self.nfree = np.array([C - m], np.int64)
        _setup(m, self.pos, self.size, self.L, self.periodic, self.nc, self.head, self.nxt, self.prv, self.cell,
               self.mob, self.members, self.count, self.slot, self.big, self.nbig, self.bslot, self.big_size,
               self.r1, self.free, self.nfree, self.ledger, self.capacity, *self._sk)

    def add_objects(self, positions, sizes) -> None:
        """Insert objects (e.g. a cascade's defects); they react with what they overlap at once.

        ``positions`` (k, 3) nm are wrapped on periodic axes; on a non-periodic axis an object
        outside the box is refused.  The V - I ledger grows by the inserted ``sum(sizes)``.
        """
        P = np.asarray(positions, float).reshape(-1, 3)
        n = np.asarray(sizes).reshape(-1)
        if len(P) != len(n) or not np.all(np.isfinite(P)) or (n.size and (
                not np.issubdtype(n.dtype, np.integer) or np.any(n == 0))):
            raise SetupError("need finite positions (k, 3) nm and as many nonzero integer sizes",
                             fix="pass the defects of one cascade, e.g. from bridge.defects.kmc_objects")
        per = self.periodic
        P = wrap(P, self.L, per)
        if np.any((P[:, ~per] < 0) | (P[:, ~per] >= self.L[~per])):
            raise SetupError("inserted objects lie outside the box on a non-periodic axis",
                             fix="place cascades inside the box (or clip them to it)")
        self._initial += int(n.sum())
        P, n = self._absorb_at_sinks(P, n.astype(np.int64))
        if self.nfree[0] < len(n):                    # grow: double the room
            a = self.alive
            self._allocate(self.pos[a], self.size[a], max(2 * (a.size + len(n)), a.size + len(n) + 8))
        _insert(np.ascontiguousarray(P), n.astype(np.int64), self.pos, self.disp, self.size, self.L, self.periodic,
                self.nc, self.head, self.nxt, self.prv, self.cell, self.mob, self.members, self.count, self.slot,
                self.big, self.nbig, self.bslot, self.big_size, self.r1, self.free, self.nfree, self.ledger,
                self.capacity, *self._sk)

    # -- running ---------------------------------------------------------------------------
    def run(self, temperature: float, duration: float, max_events: int | None = None) -> int:
        """Advance ``duration`` s at ``temperature`` K (or until ``max_events``); returns the events done."""
        if not (np.isfinite(duration) and duration >= 0):
            raise SetupError(f"duration must be >= 0 s, got {duration}", fix="pass seconds")
        sizes, rate = self.migration.rates(float(temperature))
        if not np.array_equal(sizes, self.mob):
            raise SetupError(f"the mobile sizes changed from {self.mob.tolist()} to {sizes.tolist()} after the engine "
                             "was built", fix="change migration energies, not which sizes move; or build a new ObjectKMC")
        t_end = self.time + float(duration)
        budget = np.iinfo(np.int64).max if max_events is None else int(max_events)
        done = 0
        while done < budget:
            t, ev = _run(self.rng, self.time, t_end, min(budget - done, 50_000_000), self.pos, self.disp, self.size, self.L,
                         self.periodic, self.nc, self.head, self.nxt, self.prv, self.cell, self.mob, rate,
                         self.members, self.count, self.slot, self.big, self.nbig, self.bslot, self.big_size, self.r1,
                         self.lam, self._dirs, self.free, self.nfree, self.ledger, self.capacity, *self._sk)
            self.time, done = t, done + int(ev)
            if t >= t_end:
                break
        self.events += done
        return done

    def irradiate(self, library: Any, dose_rate: float, temperature: float, duration: float, *,
                  atom_density: float | None = None, progress: bool = False) -> dict[str, float]:
        """Evolve under a dose rate: cascades from ``library`` arrive as a Poisson process.

        ``library``: a :class:`bridge.defects.CascadeLibrary`; ``dose_rate`` dpa/s (NRT);
        ``atom_density`` atoms/nm^3 (default BCC, ``2 / a^3``).  Cascades arrive at the rate
        ``dose_rate N_atoms / <NRT>``, each at a uniformly random place, turned by a random cubic
        symmetry operation; between arrivals the KMC runs at ``temperature``.  Returns the
        cascades inserted and the dose (dpa) they carried during this call.
        """
        from tqdm import tqdm

        from bridge.log import progress_enabled

        if not (np.isfinite(dose_rate) and dose_rate > 0 and np.isfinite(duration) and duration >= 0):
            raise SetupError("dose_rate must be > 0 dpa/s and duration >= 0 s", fix="e.g. 1e-6 dpa/s for 100 s")
        a = self.lam * 2.0 / np.sqrt(3.0)
        rho = 2.0 / a ** 3 if atom_density is None else float(atom_density)
        atoms = rho * float(np.prod(self.L))
        rate = dose_rate * atoms / library.mean_nrt
        t_end = self.time + float(duration)
        inserted, dose = 0, 0.0
        with tqdm(desc="irradiation", unit="cascade", disable=not progress_enabled(progress), leave=False) as pb:
            while True:
                t_next = self.time + self.rng.exponential(1.0 / rate)
                if t_next >= t_end:
                    self.run(temperature, t_end - self.time)
                    break
                self.run(temperature, t_next - self.time)
                P, n, nrt = library.draw(self.rng)
                P = P + self.rng.random(3) * self.L
                keep = np.all((P[:, ~self.periodic] >= 0) & (P[:, ~self.periodic] < self.L[~self.periodic]), axis=1)
                self.add_objects(P[keep], n[keep])           # a defect beyond a free surface is lost there
                self._initial += int(n[~keep].sum())            # ... and counted as absorbed there
                self.ledger[2] += int(n[~keep & (n > 0)].sum())
                self.ledger[3] += int(-n[~keep & (n < 0)].sum())
                inserted += 1
                dose += nrt / atoms
                pb.update(1)
        self.cascades += inserted
        self.dose += dose
        self.balance()
        return {"cascades": inserted, "dose_dpa": dose, "atoms": atoms, "cascade_rate_per_s": rate}

    def anneal(self, schedule, progress: bool = False) -> dict[str, np.ndarray]:
        """Isochronal annealing: ``schedule`` [(T K, hold s), ...]; state recorded after each hold.

        Returns arrays ``temperature``, ``time``, ``vacancies``, ``interstitials``, ``objects``,
        ``annihilated`` (Frenkel pairs), ``absorbed_v``, ``absorbed_i``, ``events``.
        """
        from bridge.log import progress as bar

        rows = []
        for T, hold in bar(list(schedule), desc="isochronal anneal", enable=progress):
            self.run(float(T), float(hold))
            c = self.counts()
            rows.append((T, self.time, c["vacancies"], c["interstitials"], c["objects"], self.ledger[1],
                         self.ledger[2], self.ledger[3], self.events))
            self.balance()
        keys = ("temperature", "time", "vacancies", "interstitials", "objects", "annihilated", "absorbed_v",
                "absorbed_i", "events")
        arr = np.array(rows, float).reshape(-1, len(keys))
        return {k: arr[:, j] for j, k in enumerate(keys)}

    # -- state ------------------------------------------------------------------------------
    @property
    def alive(self) -> np.ndarray:
        return np.flatnonzero(self.size != 0)

    def objects(self) -> tuple[np.ndarray, np.ndarray]:
        """Positions (k, 3) nm and signed sizes (k,) of the objects now in the box."""
        a = self.alive
        return self.pos[a].copy(), self.size[a].copy()

    def displacements(self) -> np.ndarray:
        """(k, 3) nm unwrapped distance each live object has hopped since the start."""
        return self.disp[self.alive].copy()

    def counts(self) -> dict[str, int]:
        s = self.size[self.alive]
        return {"vacancies": int(s[s > 0].sum()), "interstitials": int(-s[s < 0].sum()), "objects": int(s.size),
                "reactions": int(self.ledger[0]), "annihilated": int(self.ledger[1]),
                "absorbed_v": int(self.ledger[2]), "absorbed_i": int(self.ledger[3]),
                "absorbed_v_sinks": int(self.ledger[4]), "absorbed_i_sinks": int(self.ledger[5])}

    def balance(self) -> dict[str, int]:
        """The defect ledger; raises :class:`~bridge.errors.ConservationError` if V - I is not conserved.

        ``(V - I in the box) + (V absorbed) - (I absorbed)`` equals its value at the start, exactly.
        """
        from bridge.errors import ConservationError

        c = self.counts()
        now = c["vacancies"] - c["interstitials"] + c["absorbed_v"] - c["absorbed_i"]
        if now != self._initial:
            raise ConservationError(f"vacancy - interstitial balance broken: {now} != {self._initial}",
                                    fix="report this: reactions and sinks must conserve V - I")
        return dict(c, balance=now, initial=self._initial)
