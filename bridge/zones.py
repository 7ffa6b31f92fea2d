"""Zones and smooth weight functions.

A zone maps positions to a distance ``d`` (nm) from its core and a weight

    w(d) = 1                                  for d <= d_in
    w(d) = cos^2( pi (d - d_in) / (2 width) )  for d_in < d < d_in + width
    w(d) = 0                                  for d >= d_in + width

which is C1-continuous; ``dw/dd = -(pi / (2 width)) sin(pi (d - d_in) / width)`` in the hybrid
layer and zero elsewhere.  ``weights(x)`` returns ``(n,)`` weights and ``gradient(x)`` the
``(n, 3)`` spatial gradient ``dw/dx = dw/dd * dd/dx`` (nm^-1), for forces from weighted energies.

- :class:`Slab` -- ``d = |x_axis - centre| - half_width`` (a slab of full thickness
  ``2 half_width`` around ``centre`` along ``axis``), optionally periodic along that axis;
- :class:`Sphere` -- ``d = |x - centre| - radius``, optionally with minimum-image in a box.

Every length (``centre``, ``half_width``, ``radius``, ``hybrid_width``, ``period``, ``box``)
is a float in nm or an ``openmm.unit`` Quantity; NaN or infinite values are a
:class:`~bridge.errors.SetupError` naming the parameter.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .errors import SetupError
from .units import finite_array, to_internal


def _length(value: Any, name: str) -> float:
    """One length in nm (float or Quantity), finite; a :class:`SetupError` naming ``name``."""
    x = to_internal(value, name=name)
    if np.ndim(x) != 0:
        raise SetupError(f"{name} must be a single length, got an array of shape {np.shape(x)}",
                         fix=f"pass {name} as one float in nm (or an openmm.unit Quantity)")
    return float(x)


class CosSquaredSwitch:
    """The cos² switch from 1 (``d <= 0``) to 0 (``d >= width``); ``width`` > 0 in nm.

    ``name``: what the width is called in error messages (zones pass ``"hybrid_width"``).
    """

    def __init__(self, width: Any, *, name: str = "width"):
        width = _length(width, name)
        if width <= 0:
            raise SetupError(f"{name} must be a positive length, got {width}",
                             fix=f"give the hybrid-layer width in nm (> 0), e.g. {name}=0.5")
        self.width = width

    def __call__(self, d: np.ndarray) -> np.ndarray:
        s = np.clip(np.asarray(d, float) / self.width, 0.0, 1.0)
        # cos(pi/2)**2 is 3.7e-33 in floating point, not 0: set the outside exactly to 0
        return np.where(s >= 1.0, 0.0, np.cos(0.5 * np.pi * s) ** 2)

    def derivative(self, d: np.ndarray) -> np.ndarray:
        d = np.asarray(d, float)
        s = d / self.width
        inside = (s > 0) & (s < 1)
        return np.where(inside, -(np.pi / (2 * self.width)) * np.sin(np.pi * np.clip(s, 0, 1)), 0.0)


class Zone:
    """Base class: subclasses define ``distance(x) -> (d, dd_dx)``."""

    def __init__(self, hybrid_width: Any):
        self.switch = CosSquaredSwitch(hybrid_width, name="hybrid_width")
        #: nm, the thickness of the hybrid layer
        self.hybrid_width = self.switch.width

    def distance(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover
        raise NotImplementedError

    def _x(self, x: np.ndarray) -> np.ndarray:
        return finite_array(x, (None, 3), name="positions")

    def weights(self, x: np.ndarray) -> np.ndarray:
        """``(n,)`` weights in [0, 1] for positions ``(n, 3)`` nm."""
        d, _ = self.distance(self._x(x))
        return self.switch(d)

    def gradient(self, x: np.ndarray) -> np.ndarray:
        """``(n, 3)`` spatial gradient of the weights (1/nm)."""
        d, dd = self.distance(self._x(x))
        return self.switch.derivative(d)[:, None] * dd

    def region(self, x: np.ndarray) -> np.ndarray:
        """``(n,)`` int: 0 core (w = 1), 1 hybrid (0 < w < 1), 2 outside (w = 0)."""
        w = self.weights(x)
        return np.where(w >= 1.0, 0, np.where(w <= 0.0, 2, 1))


class Slab(Zone):
    """Core ``|x[axis] - centre| <= half_width``, then a hybrid layer ``hybrid_width`` thick.

    ``period``: box length along ``axis`` for minimum-image distances (None: not periodic).
    """

    def __init__(self, axis: int, centre: Any, half_width: Any, hybrid_width: Any,
                 period: Any = None):
        super().__init__(hybrid_width)
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)) or axis not in (0, 1, 2):
            raise SetupError(f"slab axis must be 0, 1 or 2, got {axis!r}",
                             fix="pass axis=0 for x, 1 for y, 2 for z")
        centre = _length(centre, "centre")
        half_width = _length(half_width, "half_width")
        if half_width < 0:
            raise SetupError(f"slab half_width must be a length >= 0, got {half_width}",
                             fix="pass half the core thickness in nm (0 for a core of zero thickness)")
        if period is not None:
            period = _length(period, "period")
            if period <= 0:
                raise SetupError(f"slab period must be a positive length, got {period}",
                                 fix="pass the box length along the slab axis in nm, "
                                     "or period=None for a non-periodic slab")
            width = 2 * (half_width + self.hybrid_width)
            if width > period:
                raise SetupError(f"slab core + hybrid ({width:g} nm) exceed the period {period:g} nm",
                                 fix="narrow the zone or enlarge the box")
        self.axis, self.centre, self.half_width, self.period = int(axis), centre, half_width, period

    def distance(self, x):
        dx = x[:, self.axis] - self.centre
        if self.period:
            dx = dx - self.period * np.round(dx / self.period)
        d = np.abs(dx) - self.half_width
        dd = np.zeros_like(x)
        dd[:, self.axis] = np.sign(dx)
        return d, dd


class Sphere(Zone):
    """Core ``|x - centre| <= radius``, then a spherical shell ``hybrid_width`` thick.

    ``box``: ``(3,)`` orthorhombic box lengths for minimum-image distances (None: not periodic).
    """

    def __init__(self, centre: Any, radius: Any, hybrid_width: Any, box: Any = None):
        super().__init__(hybrid_width)
        radius = _length(radius, "radius")
        if radius < 0:
            raise SetupError(f"sphere radius must be a length >= 0, got {radius}",
                             fix="pass the core radius in nm (0 for a point core)")
        self.centre = finite_array(centre, (3,), name="sphere centre")
        self.radius = radius
        self.box = None if box is None else finite_array(box, (3,), name="box lengths")
        if self.box is not None:
            if np.any(self.box <= 0):
                raise SetupError(f"box lengths must be positive, got {self.box.tolist()}",
                                 fix="pass the three orthorhombic box lengths in nm, or box=None")
            diameter = 2 * (radius + self.hybrid_width)
            if diameter > self.box.min():
                raise SetupError(f"sphere plus hybrid shell ({diameter:g} nm across) does not fit "
                                 f"in the periodic box (shortest side {self.box.min():g} nm)",
                                 fix="shrink the sphere or enlarge the box")

    def distance(self, x):
        dx = x - self.centre
        if self.box is not None:
            dx = dx - self.box * np.round(dx / self.box)
        r = np.linalg.norm(dx, axis=1)
        safe = np.where(r > 0, r, 1.0)
        return r - self.radius, dx / safe[:, None] * (r > 0)[:, None]
