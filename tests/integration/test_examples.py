"""Every example runs as a script in --quick mode and asserts its own reference."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.py"))


def test_there_are_examples():
    assert EXAMPLES


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda p: p.stem)
def test_example_quick(script, tmp_path):
    out = subprocess.run([sys.executable, str(script), "--quick", "--out", str(tmp_path / "fig")], cwd=tmp_path,
                         capture_output=True, text=True, timeout=900,
                         env={**os.environ, "MSBRIDGE_PROGRESS": "0"})
    assert out.returncode == 0, out.stdout + out.stderr
    assert any((tmp_path / "fig").glob("*.png")), "the example saved no figure"


@pytest.mark.mpi
def test_dolfinx_example_under_two_ranks(tmp_path, mpiexec):
    script = Path(__file__).resolve().parents[2] / "examples" / "plate_boundary_windows.py"
    out = subprocess.run([str(mpiexec), "-n", "2", sys.executable, str(script), "--quick", "--out",
                          str(tmp_path / "fig")], cwd=tmp_path, capture_output=True, text=True, timeout=600,
                         env={**os.environ, "MSBRIDGE_PROGRESS": "0"})
    assert out.returncode == 0, out.stdout + out.stderr
    assert "ranks: 2" in out.stdout


@pytest.mark.mpi
def test_fe2_example_under_two_ranks(tmp_path, mpiexec):
    script = Path(__file__).resolve().parents[2] / "examples" / "fe2_cantilever.py"
    out = subprocess.run([str(mpiexec), "-n", "2", sys.executable, str(script), "--quick", "--out",
                          str(tmp_path / "fig")], cwd=tmp_path, capture_output=True, text=True, timeout=600,
                         env={**os.environ, "MSBRIDGE_PROGRESS": "0"})
    assert out.returncode == 0, out.stdout + out.stderr
    assert (tmp_path / "fig" / "fe2_cantilever.png").exists()
    assert (tmp_path / "fig" / "fe2_cantilever.xdmf").exists()
