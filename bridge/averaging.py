"""Averaging: binning particles into coupling cells, window averages, and error bars.

- :class:`CellGrid` bins ``(n, 3)`` positions (nm) into a regular grid of cells and sums
  per-particle quantities per cell (vectorised ``np.bincount``, no per-atom Python loop);
- :class:`WindowAverage` accumulates per-cell samples over a coupling window and returns
  the mean, the number of samples and the standard error;
- :func:`block_average` gives the mean of a correlated time series with the Flyvbjerg–Petersen
  blocking error bar (J. Chem. Phys. 91, 461 (1989)), the standard estimate for MD averages.
"""
from __future__ import annotations

import numpy as np

from .errors import SetupError, UsageError
from .units import finite_array


class CellGrid:
    """A regular grid of ``shape`` cells spanning ``[lo, hi)`` (each ``(3,)`` nm).

    Particles outside the grid get cell index -1 and are ignored by the sums.
    """

    def __init__(self, lo, hi, shape: tuple[int, int, int]):
        self.lo = finite_array(lo, (3,), name="grid lower corner")
        self.hi = finite_array(hi, (3,), name="grid upper corner")
        self.shape = tuple(int(s) for s in shape)
        if len(self.shape) != 3 or min(self.shape) < 1:
            raise SetupError(f"cell grid shape must be three positive integers, got {shape}",
                             fix="pass e.g. shape=(1, 1, 10) for ten cells along z")
        if np.any(self.hi <= self.lo):
            raise SetupError(f"cell grid has non-positive extent: lo={self.lo}, hi={self.hi}",
                             fix="make every component of hi larger than lo")
        self.size = (self.hi - self.lo) / np.array(self.shape)
        self.n_cells = int(np.prod(self.shape))

    @property
    def cell_volume(self) -> float:
        return float(np.prod(self.size))

    def centres(self) -> np.ndarray:
        """``(n_cells, 3)`` nm, in C order of ``shape``."""
        idx = np.stack(np.meshgrid(*(np.arange(s) for s in self.shape), indexing="ij"), -1).reshape(-1, 3)
        return self.lo + (idx + 0.5) * self.size

    def index(self, x: np.ndarray) -> np.ndarray:
        """``(n,)`` flat cell index of each position, -1 outside."""
        x = finite_array(x, (None, 3), name="positions")
        ijk = np.floor((x - self.lo) / self.size).astype(np.int64)
        inside = np.all((ijk >= 0) & (ijk < np.array(self.shape)), axis=1)
        flat = np.ravel_multi_index(tuple(np.clip(ijk, 0, np.array(self.shape) - 1).T), self.shape)
        return np.where(inside, flat, -1)

    def sum(self, x: np.ndarray, values: np.ndarray | None = None) -> np.ndarray:
        """Per-cell sum of ``values`` (``(n,)`` or ``(n, k)``); counts when ``values`` is None."""
        idx = self.index(x)
        keep = idx >= 0
        if values is None:
            return np.bincount(idx[keep], minlength=self.n_cells).astype(float)
        v = np.asarray(values, float)
        if v.shape[0] != len(idx):
            raise SetupError(f"{v.shape[0]} values for {len(idx)} positions", fix="pass one value per particle")
        if v.ndim == 1:
            return np.bincount(idx[keep], weights=v[keep], minlength=self.n_cells)
        return np.stack([np.bincount(idx[keep], weights=v[keep, k], minlength=self.n_cells)
                         for k in range(v.shape[1])], axis=1)


class WindowAverage:
    """Accumulate samples of a per-cell quantity ``(n_cells,)`` or ``(n_cells, k)`` over a window.

    ``add(sample, weight)`` adds one sample (``weight``: e.g. particle counts per cell, so the
    mean is the mass-weighted cell average); ``result()`` returns ``(mean, n_samples,
    standard error)`` treating samples as independent -- space samples further apart than the
    correlation time, or use :func:`block_average` on the series.  ``reset()`` starts a window.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._s = self._s2 = self._w = None
        self.n_samples = 0

    def add(self, sample: np.ndarray, weight: np.ndarray | None = None) -> None:
        x = np.asarray(sample, float)
        if not np.all(np.isfinite(x)):
            raise SetupError("a window sample contains NaN or infinite values",
                             fix="check the quantity sampled before averaging it")
        w = np.ones(x.shape[0]) if weight is None else np.asarray(weight, float)
        wb = w.reshape(w.shape + (1,) * (x.ndim - 1))
        if self._s is None:
            self._s, self._s2, self._w = np.zeros_like(x), np.zeros_like(x), np.zeros_like(w)
        self._s += wb * x
        self._s2 += wb * x * x
        self._w += w
        self.n_samples += 1

    def result(self) -> tuple[np.ndarray, int, np.ndarray]:
        if self.n_samples == 0:
            raise UsageError("no samples in this window", fix="call add() before result()")
        w = self._w.reshape(self._w.shape + (1,) * (self._s.ndim - 1))
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(w > 0, self._s / w, np.nan)
            var = np.where(w > 0, self._s2 / w - mean ** 2, np.nan)
            err = np.sqrt(np.clip(var, 0, None) / max(self.n_samples - 1, 1))
        return mean, self.n_samples, err


def block_average(series: np.ndarray, min_blocks: int = 8) -> tuple[float, float, int]:
    """Mean and error of a correlated series by Flyvbjerg–Petersen blocking.

    Returns ``(mean, error, block_length)``: the error is the blocked standard error SE(B) at
    the smallest block length ``B`` with ``B^3 > 2 N (SE(B) / SE(1))^4`` (Lee et al., Phys.
    Rev. E 83, 066706 (2011), Eq. 14; Wolff, Comput. Phys. Commun. 156, 143 (2004)): long
    enough to remove the correlation, short enough to keep many blocks.  When no blocking with
    at least ``min_blocks`` blocks qualifies (series too short for its correlation time), the
    largest estimate over those blockings is returned, a conservative choice.
    ``block_length`` is the number of samples per block of the returned estimate.
    """
    x = np.asarray(series, float).ravel()
    if x.size < 2 * min_blocks:
        raise SetupError(f"block averaging needs at least {2 * min_blocks} samples, got {x.size}",
                         fix="sample longer, or lower min_blocks")
    if not np.all(np.isfinite(x)):
        raise SetupError("series contains NaN or infinite values", fix="clean the series first")
    mean, n_samples = float(x.mean()), x.size
    levels: list[tuple[int, float]] = []  # (block length, blocked standard error)
    length = 1
    while x.size >= min_blocks:
        levels.append((length, float(np.sqrt(x.var(ddof=1) / x.size))))
        n = x.size // 2
        x = 0.5 * (x[: 2 * n : 2] + x[1 : 2 * n : 2])
        length *= 2
    se1 = levels[0][1]
    for length, err in levels:
        if se1 == 0.0 or length ** 3 > 2 * n_samples * (err / se1) ** 4:
            return mean, err, length
    length, err = max(levels, key=lambda le: le[1])
    return mean, err, length
