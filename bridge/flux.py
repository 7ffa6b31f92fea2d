r"""Flux matching between a particle (MD) region and a continuum: the engine-independent core.

The hybrid particle–continuum scheme of Nie, Chen, E and Robbins (J. Fluid Mech. 500, 55 (2004))
and of MaMiCo, for flows that vary along one axis (``z``) and are periodic along ``x`` and ``y``:

- the MD region is a slab ``[z0, z0 + height]`` cut into equal **coupling cells** along ``z``
  (:class:`SlabLayout`).  From each outer wall inwards: ``buffer`` cells next to the boundary
  force that keeps the particles in, ``constrain`` cells where the continuum velocity is imposed
  (continuum → MD), ``gap`` cells where the particles relax, and the **sample** cells in the
  middle whose averages go to the continuum (MD → continuum);
- **continuum → MD**: in every constrained cell the mean velocity is set to the continuum value,
  the constrained dynamics ``F_i <- F_i - <F>_cell - (m/dt)(<v>_cell - u_continuum)`` of Nie et al.;
  applied after a step it is the shift ``v_i <- v_i - <v>_cell + u`` (:func:`constrain_cells`).
  The continuum value is interpolated linearly in time across the coupling window;
- **MD → continuum**: the window averages of the first and last sample cells are Dirichlet data of
  the two continuum pieces, which reach from the channel's walls into the MD slab up to the
  centres of those cells (the pieces overlap the slab's outer cells);
- every window records in a :class:`~bridge.ledger.Ledger` the momentum the constraint put into
  the atoms against the change of their total momentum (exact up to single-precision force sums),
  the particles that left through the outer walls (mass), and each continuum piece's momentum
  change against the flows through its boundaries (exact to round-off).

Noise: a cell average of ``N`` particles has the thermal spread ``sigma_u = sqrt(kT / (m N))``
(:func:`velocity_noise`); :func:`plan_sampling` picks the number of independent replicas (or
the window) that brings the error of a window average to a requested fraction of a reference
velocity.

Units are the caller's, used consistently; the examples use Lennard-Jones reduced units mapped
onto OpenMM's (sigma = 1 nm, epsilon = 1 kJ/mol, m = 1 amu, so tau = 1 ps).  Velocities are
``x``-components (the flow direction); ``z`` is the gradient direction.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence

import numpy as np

from .errors import CalculationError, SetupError
from .ledger import Ledger
from .log import progress

__all__ = ["couette_startup", "couette_window_mean", "SlabLayout", "velocity_noise", "SamplingPlan",
           "plan_sampling", "constrain_cells", "statistical_inefficiency", "series_noise", "WindowData",
           "SlabMD", "CouetteCoupling", "add_energy", "ThermalWindowData", "HeatCoupling"]


# -- analytic reference -------------------------------------------------------------------------
def _couette_terms(t: float, H: float, nu: float, tol: float = 1e-17, max_terms: int = 200_000) -> int:
    if t <= 0.0:
        return max_terms
    a = math.pi ** 2 * nu * t / H ** 2
    # exp(-k^2 a) / k < tol
    return int(min(max_terms, max(1, math.ceil(math.sqrt(max(-math.log(tol), 1.0) / a)))))


def couette_startup(z, t: float, U: float, H: float, nu: float) -> np.ndarray:
    r"""Start-up Couette flow: the wall at ``z = 0`` starts moving at ``U`` at ``t = 0``, the wall at
    ``z = H`` stays; the fluid (kinematic viscosity ``nu``) starts at rest.

    .. math:: u(z,t) = U(1 - z/H) - \frac{2U}{\pi}\sum_{k\ge1}\frac1k\sin\frac{k\pi z}{H}
              \,e^{-k^2\pi^2\nu t/H^2}

    ``z``: array of heights (length unit); returns ``u`` of the same shape.  The series is summed
    until its terms fall below 1e-17 U (slowly converging only as ``t -> 0``).
    """
    z = np.asarray(z, float)
    if t < 0 or H <= 0 or nu <= 0:
        raise SetupError(f"Couette start-up needs t >= 0, H > 0, nu > 0 (got t={t}, H={H}, nu={nu})",
                         fix="pass the time since the wall started, the channel height and the kinematic viscosity")
    if t == 0.0:
        return np.where(z <= 0.0, float(U), 0.0) * np.ones_like(z)
    k = np.arange(1, _couette_terms(t, H, nu) + 1, dtype=float)
    decay = np.exp(-k ** 2 * math.pi ** 2 * nu * t / H ** 2) / k
    s = np.sin(np.multiply.outer(z, k) * math.pi / H) @ decay
    return U * (1.0 - z / H) - 2.0 * U / math.pi * s


def couette_window_mean(z, t0: float, t1: float, U: float, H: float, nu: float) -> np.ndarray:
    """The start-up profile averaged over the time window ``[t0, t1]`` (``t1 > t0 >= 0``), exactly
    (each mode's exponential integrated in closed form) -- what a window average of MD measures."""
    z = np.asarray(z, float)
    if not t1 > t0 >= 0:
        raise SetupError(f"window [{t0}, {t1}] is not a forward interval from t >= 0",
                         fix="pass t1 > t0 >= 0")
    k = np.arange(1, _couette_terms(max(t0, 1e-3 * (t1 - t0)), H, nu) + 1, dtype=float)
    a = k ** 2 * math.pi ** 2 * nu / H ** 2
    mean_decay = (np.exp(-a * t0) - np.exp(-a * t1)) / (a * (t1 - t0)) / k
    s = np.sin(np.multiply.outer(z, k) * math.pi / H) @ mean_decay
    return U * (1.0 - z / H) - 2.0 * U / math.pi * s


# -- coupling cells -----------------------------------------------------------------------------
@dataclass(frozen=True)
class SlabLayout:
    """Coupling cells of an MD slab ``[z0, z0 + height]`` (length unit), ``n_cells`` equal cells in ``z``.

    From each end inwards: ``buffer`` cells, ``constrain`` cells (continuum -> MD), ``gap`` cells;
    the rest are sample cells (MD -> continuum), at least two.
    """

    z0: float
    height: float
    n_cells: int
    buffer: int = 1
    constrain: int = 1
    gap: int = 1

    def __post_init__(self) -> None:
        if not (math.isfinite(self.z0) and math.isfinite(self.height) and self.height > 0):
            raise SetupError(f"slab [{self.z0}, {self.z0} + {self.height}] is not a finite positive extent",
                             fix="pass the slab's lower edge z0 and its height > 0")
        if min(self.buffer, self.gap) < 0 or self.constrain < 1:
            raise SetupError("a slab needs constrain >= 1 and buffer, gap >= 0 cells at each end",
                             fix="e.g. SlabLayout(z0, height, n_cells=10, buffer=1, constrain=1, gap=1)")
        outer = self.buffer + self.constrain + self.gap
        if self.n_cells < 2 * outer + 2:
            raise SetupError(f"{self.n_cells} cells leave fewer than 2 sample cells after {outer} outer cells "
                             "at each end", fix=f"use n_cells >= {2 * outer + 2} or fewer buffer/gap cells")

    @property
    def width(self) -> float:
        return self.height / self.n_cells

    @property
    def edges(self) -> np.ndarray:
        """``(n_cells + 1,)`` cell edges."""
        return self.z0 + self.width * np.arange(self.n_cells + 1)

    @property
    def centres(self) -> np.ndarray:
        """``(n_cells,)`` cell centres."""
        return self.z0 + self.width * (np.arange(self.n_cells) + 0.5)

    @property
    def constrained(self) -> np.ndarray:
        """Indices of the constrained cells, lower end first."""
        lo = np.arange(self.buffer, self.buffer + self.constrain)
        return np.concatenate([lo, self.n_cells - 1 - lo[::-1]])

    @property
    def sampled(self) -> np.ndarray:
        """Indices of the sample cells (MD -> continuum)."""
        outer = self.buffer + self.constrain + self.gap
        return np.arange(outer, self.n_cells - outer)

    @property
    def interfaces(self) -> tuple[float, float]:
        """Heights where the continuum pieces take MD data: centres of the first and last sample cells."""
        c, s = self.centres, self.sampled
        return float(c[s[0]]), float(c[s[-1]])

    def roles(self) -> list[str]:
        out = ["buffer"] * self.n_cells
        for i in self.constrained:
            out[i] = "constrain"
        for i in range(self.buffer + self.constrain, self.n_cells - self.buffer - self.constrain):
            out[i] = "gap"
        for i in self.sampled:
            out[i] = "sample"
        return out

    def cell_of(self, z: np.ndarray) -> np.ndarray:
        """``(n,)`` cell index of each height, -1 outside the slab."""
        i = np.floor((np.asarray(z, float) - self.z0) / self.width).astype(np.int64)
        return np.where((i >= 0) & (i < self.n_cells), i, -1)


# -- noise --------------------------------------------------------------------------------------
def velocity_noise(kT: float, mass: float, n: float) -> float:
    """Thermal standard deviation of one cell-average velocity, ``sqrt(kT / (m N))``."""
    if kT <= 0 or mass <= 0 or n <= 0:
        raise SetupError(f"velocity noise needs kT, mass, N > 0 (got {kT}, {mass}, {n})",
                         fix="pass the thermal energy, the particle mass and the particles per cell")
    return math.sqrt(kT / (mass * n))


def statistical_inefficiency(series: np.ndarray) -> float:
    """Samples per independent sample, ``g >= 1``, of a correlated series ``(n_samples,)`` or
    ``(n_samples, k)`` (columns pooled): the squared ratio of the blocked standard error
    (:func:`bridge.averaging.block_average`) to the naive one, averaged over the columns."""
    from .averaging import block_average

    x = np.asarray(series, float)
    x = x.reshape(x.shape[0], -1)
    gs = []
    for col in x.T:
        naive = col.std(ddof=1) / math.sqrt(col.size)
        if naive == 0.0:
            continue
        gs.append((block_average(col)[1] / naive) ** 2)
    return max(1.0, float(np.mean(gs))) if gs else 1.0


def series_noise(series: Sequence[np.ndarray]) -> tuple[float, float]:
    """``(sigma, g)`` of cell-average samples at rest: ``series`` holds one ``(n_samples, n_cells)``
    time series per independent replica; ``sigma`` is the spread of one sample pooled over cells
    and replicas, ``g`` the statistical inefficiency averaged over the replicas (each blocked along
    its own time series, never across replicas)."""
    g = float(np.mean([statistical_inefficiency(x) for x in series]))
    sigma = float(np.sqrt(np.mean([np.var(x, axis=0, ddof=1) for x in series])))
    return sigma, g


@dataclass(frozen=True)
class SamplingPlan:
    """What :func:`plan_sampling` chose: ``replicas`` independent MD copies averaged per window of
    length ``window``; ``predicted_error`` the relative error of one window's cell average."""

    replicas: int
    window: float
    predicted_error: float
    sigma_u: float
    independent_per_window: float


def plan_sampling(target: float, u_ref: float, *, kT: float, mass: float, particles_per_cell: float,
                  correlation_time: float, window: float, vary: str = "replicas",
                  max_replicas: int = 64) -> SamplingPlan:
    """Replicas (``vary="replicas"``) or window length (``vary="window"``) for a target relative error.

    One window of length ``window`` gives ``window / correlation_time`` independent samples of a
    cell average per replica (``correlation_time``: the time between independent samples,
    ``g * sample interval`` from :func:`statistical_inefficiency`), each with the spread
    :func:`velocity_noise`.  The error of the window average relative to ``|u_ref|`` is
    ``sigma_u / sqrt(R * window / correlation_time) / |u_ref|``; the smallest ``R`` (or window)
    meeting ``target`` is returned.
    """
    if not (0 < target < 1) or u_ref == 0 or correlation_time <= 0 or window <= 0:
        raise SetupError(f"plan_sampling needs 0 < target < 1, u_ref != 0, correlation_time > 0, window > 0 "
                         f"(got {target}, {u_ref}, {correlation_time}, {window})",
                         fix="give the target as a fraction (e.g. 0.05) of a nonzero reference velocity")
    sigma = velocity_noise(kT, mass, particles_per_cell)
    needed = (sigma / (target * abs(u_ref))) ** 2              # independent samples
    per_window = window / correlation_time
    if vary == "replicas":
        R = max(1, math.ceil(needed / per_window))
        if R > max_replicas:
            raise SetupError(f"a {target:.1%} error needs {R} replicas (> max_replicas={max_replicas})",
                             fix="lengthen the window, enlarge the cells' cross-section, or relax the target")
        W = window
    elif vary == "window":
        R, W = 1, max(window, needed * correlation_time)
    else:
        raise SetupError(f"vary must be 'replicas' or 'window', got {vary!r}", fix="pick one of the two")
    err = sigma / math.sqrt(R * W / correlation_time) / abs(u_ref)
    return SamplingPlan(R, W, err, sigma, W / correlation_time)


# -- continuum -> MD ----------------------------------------------------------------------------
def constrain_cells(cell: np.ndarray, vx: np.ndarray, mass: np.ndarray, cells: Sequence[int],
                    targets: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """The constrained-dynamics velocity shift in the given cells.

    ``cell``: ``(n,)`` cell index of each particle (-1 outside); ``vx`` ``(n,)`` velocities;
    ``mass`` ``(n,)``; ``cells`` the constrained cell indices, ``targets`` their continuum
    velocities.  Returns ``(dv (n,), impulse (k,))``: the shift that makes each cell's
    mass-weighted mean velocity equal its target (zero for particles elsewhere; an empty cell
    gets nothing), and the momentum it adds per cell (``sum m dv``).
    """
    cells = np.asarray(cells, np.int64)
    targets = np.asarray(targets, float)
    if targets.shape != cells.shape or not np.all(np.isfinite(targets)):
        raise CalculationError(f"continuum targets {targets} for cells {cells} are not one finite value per cell",
                               fix="check the continuum solution that supplies the constrained velocities")
    ncell = int(max(cells.max() + 1, cell.max() + 1))
    inside = cell >= 0
    msum = np.bincount(cell[inside], weights=mass[inside], minlength=ncell)
    psum = np.bincount(cell[inside], weights=(mass * vx)[inside], minlength=ncell)
    shift = np.zeros(ncell)
    with np.errstate(invalid="ignore", divide="ignore"):
        want = targets - psum[cells] / msum[cells]
    shift[cells] = np.where(msum[cells] > 0, want, 0.0)
    dv = np.where(inside, shift[np.clip(cell, 0, None)], 0.0)
    return dv, shift[cells] * msum[cells]


# -- the coupling -------------------------------------------------------------------------------
def _check_timing(window: float, md_steps: int, substeps: int, mds: Sequence[Any]) -> None:
    """Positive window and step counts, and MD time per window equal to the continuum's."""
    if not (math.isfinite(window) and window > 0) or int(md_steps) < 1 or int(substeps) < 1:
        raise SetupError(f"window {window}, md_steps {md_steps}, substeps {substeps} must be positive",
                         fix="pass the coupling window (time) and the steps each side makes in it")
    for md in mds:
        dt = getattr(md, "dt", None)
        if dt is not None and not math.isclose(int(md_steps) * float(dt), window, rel_tol=1e-9):
            raise SetupError(f"{md_steps} MD steps of {dt} make {md_steps * dt}, not the window {window}",
                             fix="choose md_steps = window / dt so both sides cover the same time")


def _check_interface(piece: Any, boundary: str, z: float, what: str) -> None:
    """The piece's ``boundary`` sits at ``z`` (when the piece can say where its boundaries are)."""
    if not hasattr(piece, "boundary_coordinates"):
        return
    at = np.ravel(piece.boundary_coordinates(boundary))
    if at.size and not np.allclose(at, z, rtol=0, atol=1e-9 * max(1.0, abs(z))):
        raise SetupError(f"the {what} continuum piece's '{boundary}' boundary is at {at[0]:.6g}, expected {z:.6g}",
                         fix=f"end the {what} piece at {z:.6g} (the coupling cell centre that supplies its data)")


def _piece_profiles(a: Any, b: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Both 1-D pieces sampled at ``n`` points between their two named boundaries."""
    zs, us = [], []
    for piece in (a, b):
        ends = [float(np.ravel(piece.boundary_coordinates(name))[0]) for name in piece.boundaries.names]
        z = np.linspace(min(ends), max(ends), n)
        zs += [z, [np.nan]]
        us += [np.ravel(piece.evaluate(z[:, None])), [np.nan]]
    return np.concatenate(zs[:-1]), np.concatenate(us[:-1])


@dataclass
class WindowData:
    """What one MD replica reports for one coupling window.

    ``mean``, ``error``: ``(n_cells,)`` window-average ``x`` velocity per cell and its standard
    error (from the slab's noise calibration when it has one -- ``sigma sqrt(g / n_samples)`` --
    else blocked within the window, which misses correlations longer than the window); ``count``: ``(n_cells,)`` mean particles per cell; ``impulse``: ``(k,)``
    ``x`` momentum the constraint put into each constrained cell; ``momentum_change``: change of
    the replica's total ``x`` momentum; ``escaped``: particles beyond the outer walls at the
    window's end; ``temperature``: ``kT`` (energy unit) from the ``y`` and ``z`` velocities
    (the flow is ``x``), averaged over the window's samples (taken before the thermostat step);
    ``series``: ``(n_samples, n_cells)`` the samples behind ``mean``.
    """

    mean: np.ndarray
    error: np.ndarray
    count: np.ndarray
    impulse: np.ndarray
    momentum_change: float
    escaped: int
    temperature: float
    series: np.ndarray = field(repr=False, default_factory=lambda: np.zeros((0, 0)))


class SlabMD(Protocol):
    """An MD slab the coupling can drive (e.g. :class:`bridge_adapters.openmm.flux.LJSlab`)."""

    layout: SlabLayout
    area: float                                            # cross-section, length^2
    def run_window(self, n_steps: int, targets0: np.ndarray, targets1: np.ndarray) -> WindowData: ...


class CouetteCoupling:
    """Start-up Couette flow with an MD slab inside the channel ``[0, H]`` and continuum elsewhere.

    Parameters
    ----------
    replicas : sequence of :class:`SlabMD`
        Independent MD copies of the same slab; their window averages are averaged (the error
        bar falls as ``1/sqrt(R)``).
    lower, upper : continuum pieces on ``[0, z_a]`` and ``[z_b, H]`` (``z_a``, ``z_b`` =
        ``layout.interfaces``), each a :class:`~bridge.protocols.FieldEngine` with boundaries
        ``"wall"`` and ``"md"`` solving ``rho du/dt = eta d2u/dz2`` (``total_energy()`` = momentum
        per area, ``boundary_flux(b)`` = momentum flow into the piece per area).
    U : wall speed at ``z = 0``; ``viscosity``: the continuum's ``eta`` (for the momentum it
        carries through the slab's outer boundaries, reported per window).
    window : coupling window (time); ``md_steps``: MD steps per window (``md_steps * dt`` must
        equal ``window`` for replicas that have a ``dt``); ``substeps``: continuum steps per window.

    ``run(n_windows)`` exchanges once per window (:meth:`step_window`) and keeps ``history``.
    The ledger holds quantities of different precision: ``"x-momentum (MD)"`` closes to the
    engine's single-precision force sums (~1e-5 of a window's impulse on OpenMM's CPU platform),
    ``"x-momentum/area (continuum)"`` to round-off; check them with their own tolerances
    (``ledger.check`` applies one).  The continuum balance treats the flows through the pieces'
    MD ends as inflows: the state coupling is not momentum-conservative across the overlap, and
    the consistency of the constraint's impulse with the continuum's stress at the slab's ends
    is reported (``md_impulse`` against ``continuum_through_md_ends``), not enforced.
    """

    def __init__(self, replicas: Sequence[SlabMD], lower: Any, upper: Any, *, U: float, H: float,
                 viscosity: float, window: float, md_steps: int, substeps: int, ledger: Ledger | None = None):
        if not replicas:
            raise SetupError("no MD replica given", fix="pass at least one MD slab")
        self.replicas = list(replicas)
        self.layout = self.replicas[0].layout
        if any(r.layout != self.layout for r in self.replicas):
            raise SetupError("replicas have different coupling-cell layouts",
                             fix="build every replica with the same SlabLayout")
        za, zb = self.layout.interfaces
        if not (0.0 < self.layout.z0 and self.layout.z0 + self.layout.height < H):
            raise SetupError(f"MD slab [{self.layout.z0}, {self.layout.z0 + self.layout.height}] is not inside "
                             f"the channel (0, {H})", fix="place the slab strictly between the walls")
        _check_timing(float(window), md_steps, substeps, self.replicas)
        if not (math.isfinite(float(viscosity)) and viscosity > 0):
            raise SetupError(f"viscosity must be positive, got {viscosity}", fix="pass the continuum's eta")
        _check_interface(lower, "md", za, "lower")
        _check_interface(upper, "md", zb, "upper")
        self.lower, self.upper = lower, upper
        self.U, self.H, self.eta = float(U), float(H), float(viscosity)
        self.window, self.md_steps, self.substeps = float(window), int(md_steps), int(substeps)
        self.ledger = ledger if ledger is not None else Ledger()
        self.time = 0.0
        self.n_window = 0
        lay = self.layout
        self._band_z = lay.centres[lay.constrained]
        self._md_data = np.zeros(2)                      # MD velocities at z_a, z_b (fluid at rest)
        self._targets = np.zeros(len(self._band_z))
        self.history: list[dict[str, Any]] = []
        self.error_bar: float | None = None
        self.lower.set_dirichlet("wall", self.U)
        self.upper.set_dirichlet("wall", 0.0)

    def _outer_stress(self) -> np.ndarray:
        """Momentum flux ``-eta du/dz`` (per area per time, +z) of the continuum at the MD slab's two
        outer boundaries ``z0`` and ``z0 + height``, from central differences over a tenth of a cell."""
        z0, z1 = self.layout.z0, self.layout.z0 + self.layout.height
        d = 0.05 * self.layout.width
        out = []
        for piece, z in ((self.lower, z0), (self.upper, z1)):
            u = np.ravel(piece.evaluate(np.array([[z - d], [z + d]])))
            out.append(-self.eta * (u[1] - u[0]) / (2 * d))
        return np.array(out)

    def _continuum_targets(self) -> np.ndarray:
        z = self._band_z
        nlo = self.layout.constrain                      # constrained cells at the lower end
        lo = self.lower.evaluate(z[:nlo, None])
        hi = self.upper.evaluate(z[nlo:, None])
        return np.concatenate([np.ravel(lo), np.ravel(hi)])

    def _advance_continuum(self, md_values: np.ndarray, flows: dict | None = None) -> None:
        dt = self.window / self.substeps
        for k, piece in enumerate((self.lower, self.upper)):
            piece.set_dirichlet("md", float(md_values[k]))
            for _ in range(self.substeps):
                piece.advance(dt)
                if flows is not None:
                    for b in ("wall", "md"):
                        flows[k][b] += piece.boundary_flux(b) * dt

    def step_window(self, _calibrating: list | None = None) -> dict[str, Any]:
        """One coupling window; returns its record (also appended to ``history``).

        Predictor–corrector in time: the continuum is advanced over the window with the previous
        window's MD data (predictor) to give the constrained cells' velocities at the window's
        end; it is then restored, the MD runs the window with its targets interpolated from the
        continuum's values at the start to the predicted ones at the end, and the continuum is
        advanced again with this window's MD averages (corrector; the step that is kept and
        ledgered).  Without the corrector the continuum would take MD data one window late.
        """
        w = self.n_window
        saved = (self.lower.get_state(), self.upper.get_state())
        self._advance_continuum(self._md_data)
        targets1 = self._continuum_targets()
        self.lower.set_state(saved[0])
        self.upper.set_state(saved[1])
        datas = [r.run_window(self.md_steps, self._targets, targets1) for r in self.replicas]
        for i, d in enumerate(datas):
            for key, values in (("mean", d.mean[self.layout.sampled]), ("impulse", d.impulse)):
                if not np.all(np.isfinite(values)):
                    raise CalculationError(f"replica {i} returned non-finite {key} in window {w}",
                                           fix="check the MD run (time step, overlapping particles, empty cells)")
            self.ledger.transfer(w, f"constraint->md[{i}]", "x-momentum (MD)", float(d.impulse.sum()),
                                 float(d.momentum_change))
            self.ledger.transfer(w, f"outer walls[{i}]", "particles", 0.0, float(d.escaped))
        R = len(datas)
        mean = np.mean([d.mean for d in datas], axis=0)
        if _calibrating is not None:
            for sink, d in zip(_calibrating, datas):
                sink.append(d.series[:, self.layout.sampled])
        if self.error_bar is not None:
            error = np.full(len(mean), self.error_bar)
        elif R > 1:
            error = np.std([d.mean for d in datas], axis=0, ddof=1) / math.sqrt(R)
        else:
            error = datas[0].error
        impulse = np.mean([d.impulse for d in datas], axis=0)
        sa, sb = self.layout.sampled[0], self.layout.sampled[-1]
        self._md_data = np.array([mean[sa], mean[sb]])
        flows = ({"wall": 0.0, "md": 0.0}, {"wall": 0.0, "md": 0.0})
        p0 = (self.lower.total_energy(), self.upper.total_energy())
        s0 = self._outer_stress()
        self._advance_continuum(self._md_data, flows)
        through = 0.5 * (s0 + self._outer_stress()) * self.window
        for k, name in enumerate(("lower", "upper")):
            piece = (self.lower, self.upper)[k]
            q = "x-momentum/area (continuum)"
            # continuum momentum per area: its change against the flows through its two ends
            self.ledger.store(w, f"continuum_{name}", q, piece.total_energy() - p0[k])
            self.ledger.inflow(w, f"{name}_wall", q, flows[k]["wall"])
            self.ledger.inflow(w, f"{name}_md", q, flows[k]["md"])
        t0 = self.time
        self.time += self.window
        self._targets = self._continuum_targets()
        area = self.replicas[0].area
        nlo = self.layout.constrain
        rec = {"window": w, "t0": t0, "t1": self.time, "mean": mean, "error": error,
               "continuum": _piece_profiles(self.lower, self.upper, 24),
               "count": np.mean([d.count for d in datas], axis=0),
               "temperature": float(np.mean([d.temperature for d in datas])),
               "targets": targets1.copy(), "targets_next": self._targets.copy(),
               # momentum per area per window: what the constraint gave the MD at each end, and what
               # each continuum piece received through its MD-side end (opposite signs when consistent)
               "md_impulse": np.array([impulse[:nlo].sum(), impulse[nlo:].sum()]) / area,
               "continuum_md_flow": np.array([flows[0]["md"], flows[1]["md"]]),
               "continuum_momentum": np.array([self.lower.total_energy(), self.upper.total_energy()]),
               # what the continuum carries upwards through the slab's outer boundaries z0 and
               # z0 + height in the window: the constraint stands in for it, so on average
               # md_impulse ~ (through[0], -through[1])
               "continuum_through_md_ends": through,
               "wall_flow": np.array([flows[0]["wall"], flows[1]["wall"]]),
               "escaped": int(sum(d.escaped for d in datas))}
        self.history.append(rec)
        self.n_window += 1
        return rec

    def calibrate(self, n_windows: int) -> dict[str, Any]:
        """Measure the error bar of the coupled solution with the wall at rest.

        Runs ``n_windows`` coupled windows with ``U = 0`` from the current state (the fluid at
        rest): every deviation of a sample cell's window average from zero is noise -- the MD's
        own thermal noise plus the part that comes back through the continuum, which takes the
        noisy MD averages as boundary data and returns them to the constrained cells.  The error
        bar of a window average is the RMS of those averages, pooled over the sample cells
        (``coupled_error``); ``md_error`` is the MD's own part (``sigma sqrt(g / n)`` from the
        sample series, pooled over cells and replicas).  Afterwards the continuum, the clock and
        the boundary data are reset to the start (the MD keeps its state: an equilibrated fluid
        at rest) and every later window reports ``coupled_error`` as its error bar.
        """
        if self.n_window:
            raise SetupError("calibrate() must come before the first coupled window",
                             fix="call calibrate(n) right after building the coupling")
        n_windows = int(n_windows)
        if n_windows < 4:
            raise SetupError(f"{n_windows} calibration windows are too few for an error bar",
                             fix="calibrate over at least 4 (better 8 or more) windows")
        saved = (self.lower.get_state(), self.upper.get_state())
        U, ledger, self.ledger = self.U, self.ledger, Ledger()
        self.lower.set_dirichlet("wall", 0.0)
        s = self.layout.sampled
        means, series = [], [[] for _ in self.replicas]
        try:
            self.U = 0.0
            for _ in range(n_windows):
                rec = self.step_window(_calibrating=series)
                means.append(rec["mean"][s])
        finally:
            self.U, self.ledger = U, ledger
            self.lower.set_state(saved[0])
            self.upper.set_state(saved[1])
            self.lower.set_dirichlet("wall", self.U)
            self.history.clear()
            self.time, self.n_window = 0.0, 0
            self._md_data[:] = 0.0
            self._targets[:] = 0.0
        means = np.array(means)
        coupled = float(np.sqrt(np.mean(means ** 2)))
        sigma, g = series_noise([np.concatenate(x) for x in series])   # each replica's own time series
        n = series[0][0].shape[0]                                   # samples per window
        md_err = sigma * math.sqrt(g / n / len(self.replicas))
        self.error_bar = coupled
        return {"coupled_error": coupled, "md_error": md_err, "sigma": sigma, "g": g,
                "windows": n_windows, "window_means": means}

    def run(self, n_windows: int, *, show_progress: bool | None = None) -> list[dict[str, Any]]:
        """Run ``n_windows`` windows (a progress bar on a terminal or when asked); returns ``history``."""
        for _ in progress(range(int(n_windows)), desc=type(self).__name__, enable=show_progress):
            self.step_window()
        return self.history


# -- thermal coupling ---------------------------------------------------------------------------
def add_energy(cell: np.ndarray, v: np.ndarray, mass: np.ndarray, cells: Sequence[int],
               energy: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Put ``energy[k]`` into the particles of cell ``cells[k]``, keeping each cell's momentum.

    The velocities relative to the cell's centre of mass are scaled by
    ``lambda = sqrt(1 + dE / K_rel)`` (the HEX scheme of Ikeshoji and Hafskjold, Mol. Phys. 81,
    251 (1994)): the cell's momentum is unchanged and its kinetic energy changes by ``dE`` exactly.
    ``cell`` ``(n,)`` cell index per particle (-1 outside); ``v`` ``(n, 3)``; ``mass`` ``(n,)``.
    Returns ``(v_new (n, 3), applied (k,))`` with ``applied`` the kinetic-energy change measured
    from the velocities themselves (equal to ``energy`` to round-off).  A cell cannot give more
    than its relative kinetic energy: :class:`CalculationError` then.
    """
    cells = np.asarray(cells, np.int64)
    energy = np.asarray(energy, float)
    if energy.shape != cells.shape or not np.all(np.isfinite(energy)):
        raise CalculationError(f"energies {energy} for cells {cells} are not one finite value per cell",
                               fix="check the continuum flux handed to the MD")
    v = np.array(v, float)
    out = v.copy()
    applied = np.zeros(len(cells))
    for k, c in enumerate(cells):
        sel = np.flatnonzero(cell == c)
        if sel.size < 2:
            if energy[k] != 0.0:
                raise CalculationError(f"cell {c} holds {sel.size} particles and cannot take energy {energy[k]:.3g}",
                                       fix="use coupling cells that hold many particles")
            continue
        m = mass[sel][:, None]
        vc = (m * v[sel]).sum(axis=0) / m.sum()
        rel = v[sel] - vc
        k_rel = 0.5 * float((m * rel ** 2).sum())
        if k_rel + energy[k] <= 0.0:
            raise CalculationError(f"cell {c} has {k_rel:.4g} kinetic energy and cannot give {-energy[k]:.4g}",
                                   fix="exchange energy more often (smaller chunk) or use larger cells")
        out[sel] = vc + math.sqrt(1.0 + energy[k] / k_rel) * rel
        applied[k] = 0.5 * float((m * out[sel] ** 2).sum() - (m * v[sel] ** 2).sum())
    return out, applied


@dataclass
class ThermalWindowData:
    """What an MD bar reports for one thermal coupling window.

    ``mean``, ``error``: ``(n_cells,)`` window-average kinetic temperature per cell (energy unit,
    ``kT``; from the velocities relative to the cell's centre of mass, ``3 N - 3`` degrees of
    freedom) and its blocked standard error; ``count``: mean particles per cell; ``applied``:
    ``(2,)`` energy put into the two flux cells (measured from the velocities); ``energy_change``:
    change of the bar's total energy (kinetic + potential, from the engine); ``escaped``:
    particles beyond the bar's outer walls.
    """

    mean: np.ndarray
    error: np.ndarray
    count: np.ndarray
    applied: np.ndarray
    energy_change: float
    escaped: int
    series: np.ndarray = field(repr=False, default_factory=lambda: np.zeros((0, 0)))


class HeatCoupling:
    """A heat equation on both sides of an MD bar, coupled by energy flux and temperature.

    The continuum pieces ``left`` on ``[0, z_a]`` and ``right`` on ``[z_b, L]`` (``z_a``, ``z_b``
    the centres of the bar's first and last cells, its **flux cells**) are
    :class:`~bridge.protocols.FieldEngine` heat solvers with boundaries ``"outer"`` and ``"md"``;
    the caller sets the ``"outer"`` conditions (temperatures for a bar between two reservoirs,
    zero flux for an isolated bar).  Each window:

    1. both pieces are advanced over the window with the bar's flux-cell temperatures (the
       previous window's averages) as their ``"md"`` values, and the heat that flowed out of each
       piece through its ``"md"`` end -- the reaction of the Dirichlet condition, so that every
       piece's energy change equals its boundary flows to round-off -- is computed;
    2. the bar runs the window and puts exactly that heat into the atoms of its flux cells, in
       equal parts after every chunk of steps (:func:`add_energy`): a flux-driven thermostat;
    3. the bar's new flux-cell temperatures go back to the pieces for the next window.

    The :class:`~bridge.ledger.Ledger` records per window the heat each piece sent against the
    kinetic energy the atoms received, measured from their velocities (equal to round-off:
    ``"energy (heat to atoms)"``); the heat received against the change of the bar's total energy
    as the engine reports it (``"energy (bar, engine)"``: equal up to the integrator's energy
    error, also in ``history["integration_error"]``); and each piece's energy change against its
    boundary flows (``"energy/area (continuum)"``, round-off).  Energies of the continuum are per
    cross-section area; the MD's are divided by ``md.area`` in ``history``.

    ``md_temperature``: the flux cells' temperatures ``(2,)`` the pieces take in the first window
    (e.g. the bar's equilibrium temperature); default: the bar's cell temperatures now, one
    snapshot (noisy).
    """

    def __init__(self, md: Any, left: Any, right: Any, *, window: float, md_steps: int, substeps: int,
                 md_temperature: Sequence[float] | None = None, ledger: Ledger | None = None):
        _check_timing(float(window), md_steps, substeps, [md])
        self.md, self.left, self.right = md, left, right
        self.window, self.md_steps, self.substeps = float(window), int(md_steps), int(substeps)
        self.ledger = ledger if ledger is not None else Ledger()
        self.time = 0.0
        self.n_window = 0
        self.flux_cells = np.asarray(md.layout.constrained)
        if len(self.flux_cells) != 2:
            raise SetupError(f"a thermal bar needs one flux cell at each end, its layout has {len(self.flux_cells)}",
                             fix="build the bar's SlabLayout with constrain=1")
        za, zb = (float(z) for z in md.layout.centres[self.flux_cells])
        _check_interface(left, "md", za, "left")
        _check_interface(right, "md", zb, "right")
        if md_temperature is None:
            self._T_md = np.asarray(md.cell_temperatures(), float)[self.flux_cells]
        else:
            self._T_md = np.asarray(md_temperature, float).reshape(2)
        if not np.all(np.isfinite(self._T_md) & (self._T_md > 0)):
            raise SetupError(f"flux-cell temperatures {self._T_md} are not positive and finite",
                             fix="pass md_temperature=(T_left, T_right) or equilibrate the bar first")
        self.history: list[dict[str, Any]] = []

    def profiles(self, n: int = 24) -> tuple[np.ndarray, np.ndarray]:
        """``(z, T)``: the two continuum pieces sampled at ``n`` points each (NaN between them)."""
        return _piece_profiles(self.left, self.right, n)

    def energy(self) -> dict[str, float]:
        """Energy per area held by each model now (continuum: ``int rho c T dz``; MD: total / area)."""
        return {"left": self.left.total_energy(), "md": self.md.total_energy() / self.md.area,
                "right": self.right.total_energy()}

    def step_window(self) -> dict[str, Any]:
        w = self.n_window
        dt = self.window / self.substeps
        flows = ({"outer": 0.0, "md": 0.0}, {"outer": 0.0, "md": 0.0})
        e0 = self.energy()
        q = "energy/area (continuum)"
        for k, (name, piece) in enumerate((("left", self.left), ("right", self.right))):
            piece.set_dirichlet("md", float(self._T_md[k]))
            for _ in range(self.substeps):
                piece.advance(dt)
                for b in ("outer", "md"):
                    flows[k][b] += piece.boundary_flux(b) * dt
            self.ledger.store(w, f"continuum_{name}", q, piece.total_energy() - e0[name])
            self.ledger.inflow(w, f"{name}_outer", q, flows[k]["outer"])
            self.ledger.inflow(w, f"{name}_md", q, flows[k]["md"])
        area = self.md.area
        heat = -np.array([flows[0]["md"], flows[1]["md"]]) * area        # into the atoms, per window
        d = self.md.run_window(self.md_steps, heat)
        if not np.all(np.isfinite(d.mean[self.flux_cells])):
            raise CalculationError(f"the MD bar reported non-finite flux-cell temperatures in window {w}",
                                   fix="check the MD run (time step, cells emptied by sublimation)")
        for k, name in enumerate(("left", "right")):
            self.ledger.transfer(w, f"{name}->md", "energy (heat to atoms)", float(heat[k]), float(d.applied[k]))
        self.ledger.transfer(w, "heat->engine", "energy (bar, engine)", float(d.applied.sum()), float(d.energy_change))
        self.ledger.transfer(w, "outer walls", "particles", 0.0, float(d.escaped))
        self._T_md = d.mean[self.flux_cells].copy()
        t0 = self.time
        self.time += self.window
        e1 = self.energy()
        rec = {"window": w, "continuum": self.profiles(), "t0": t0, "t1": self.time, "mean": d.mean, "error": d.error, "count": d.count,
               "heat": heat / area, "applied": d.applied / area,
               "outer_flow": np.array([flows[0]["outer"], flows[1]["outer"]]),
               "md_energy_change": d.energy_change / area,
               "integration_error": (d.energy_change - float(d.applied.sum())) / area,
               "energy": e1, "escaped": d.escaped}
        self.history.append(rec)
        self.n_window += 1
        return rec

    def run(self, n_windows: int, *, show_progress: bool | None = None) -> list[dict[str, Any]]:
        """Run ``n_windows`` windows (a progress bar on a terminal or when asked); returns ``history``."""
        for _ in progress(range(int(n_windows)), desc=type(self).__name__, enable=show_progress):
            self.step_window()
        return self.history
