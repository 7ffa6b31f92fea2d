import os

# No progress bars in test logs.
os.environ.setdefault("MSBRIDGE_PROGRESS", "0")
# The QM tests use tiny molecules, for which PySCF's OpenMP threads cost more than they give
# on a 2-core machine (see PySCFModel's ``threads`` option); must be set before pyscf loads.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import shutil
import sys
from pathlib import Path

import pytest


@pytest.fixture
def mpiexec() -> Path:
    """The mpiexec of this environment: the mpich wheel's next to Python, else the one on PATH
    (the official DOLFINx image has its MPI elsewhere)."""
    here = Path(sys.executable).parent / "mpiexec"
    found = here if here.exists() else (Path(shutil.which("mpiexec")) if shutil.which("mpiexec") else None)
    assert found is not None, "no mpiexec: the 'dolfinx' extra installs the mpich wheel that provides it"
    return found
