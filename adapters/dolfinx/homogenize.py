r"""Effective plane-strain stiffness of a periodic RVE in one call.

:func:`homogenize_elasticity` is the short form of
``LinearRVE(mesh, stiffness, ...).effective("periodic")`` for a 2-D cell (see
:mod:`~bridge_adapters.dolfinx.rve` for the formulation, the kinematic and traction estimates,
3-D cells and conduction).  Voigt notation with engineering shear: strain
:math:`(\varepsilon_{11}, \varepsilon_{22}, \gamma_{12})`, stress
:math:`(\sigma_{11}, \sigma_{22}, \sigma_{12})`, stiffness ``(3, 3)``.  Units: those of ``C``.
"""
from __future__ import annotations

from typing import Any

from bridge.errors import SetupError

from ._backend import require

require()

import dolfinx  # noqa: E402

from .mesh import NamedTags  # noqa: E402
from .rve import HomogenizationResult, LinearRVE  # noqa: E402

__all__ = ["homogenize_elasticity", "HomogenizationResult"]


def homogenize_elasticity(mesh: dolfinx.mesh.Mesh, stiffness: Any, *,
                          cell_tags: NamedTags | None = None, degree: int = 1,
                          tol: float | None = None,
                          keep_fluctuations: bool = False) -> HomogenizationResult:
    """Effective plane-strain stiffness ``(3, 3)`` of the periodic RVE ``mesh`` (one MPI rank).

    ``stiffness``: Voigt ``(3, 3)`` for all cells, ``{phase: (3, 3)}`` with ``cell_tags``, a
    callable of the cell midpoints ``(3, m) -> (m, 3, 3)``, or a DG0 ``Function``.
    ``keep_fluctuations`` returns the three periodic fluctuations ``w``.  The forms are compiled
    once, the matrix assembled and factored once; each unit load case is one solve.
    """
    if mesh.geometry.dim != 2 or mesh.topology.dim != 2:
        raise SetupError("homogenize_elasticity is plane strain: it needs a 2-D mesh",
                         fix="pass a rectangle mesh, or use LinearRVE for a 3-D cell")
    rve = LinearRVE(mesh, stiffness, cell_tags=cell_tags, degree=degree, tol=tol)
    return rve.effective("periodic", keep_fields=keep_fluctuations)
