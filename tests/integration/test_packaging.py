"""The package as a user meets it: install layout, plugins, Docker files, missing engines."""
import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from bridge import registry
from bridge.errors import EngineNotAvailable, SetupError

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
MSBRIDGE = [sys.executable, "-m", "bridge.cli"]


def run(args, cwd, env=None, timeout=600):
    return subprocess.run(args, cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True,
                          timeout=timeout)


def test_adapters_do_not_install_as_top_level_adapters(tmp_path):
    code = ("import importlib.util as u, json; "
            "print(json.dumps([u.find_spec(n) is not None for n in "
            "('adapters', 'bridge', 'bridge_adapters', 'bridge_adapters.openmm')]))")
    out = run([sys.executable, "-c", code], cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == [False, True, True, True]


def test_every_builtin_engine_registers_and_loads():
    assert set(registry.names()) >= {"openmm", "dolfinx", "pyscf", "ase"}
    for st in registry.status():
        assert st.loaded, f"{st.name}: {st.error}"


def test_unknown_engine_names_the_known_ones():
    with pytest.raises(SetupError, match="unknown engines plugin 'lammps'.*openmm"):
        registry.engine("lammps")


def test_missing_engine_gives_the_extra_to_install(tmp_path):
    # shadow dolfinx with a package that fails to import, as on a machine without the extra
    fake = tmp_path / "block" / "dolfinx"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('No module named dolfinx')\n")
    (tmp_path / "block" / "dolfinx_solver.py").write_text("raise ImportError('No module named dolfinx_solver')\n")
    env = {"PYTHONPATH": str(tmp_path / "block")}
    code = ("from bridge import registry\n"
            "from bridge.errors import EngineNotAvailable\n"
            "try:\n"
            "    f = registry.load('dolfinx')\n"
            "    f()\n"
            "except EngineNotAvailable as e:\n"
            "    print('ERR', e)\n"
            "import bridge_adapters.openmm, bridge_adapters.pyscf\n"
            "print('others fine')\n")
    out = run([sys.executable, "-c", code], cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr
    assert "ERR" in out.stdout and "multiscale-bridge[dolfinx]" in out.stdout
    assert "others fine" in out.stdout
    info = run(MSBRIDGE + ["info"], cwd=tmp_path, env=env)
    assert info.returncode == 0, info.stderr
    assert "openmm" in info.stdout and "pyscf" in info.stdout


def test_engine_not_available_is_an_import_and_setup_error():
    e = EngineNotAvailable("dolfinx")
    assert isinstance(e, ImportError) and isinstance(e, SetupError)
    assert "pip install 'multiscale-bridge[dolfinx]'" in str(e)


def _dockerfile(name):
    return (ROOT / "docker" / name).read_text()


@pytest.mark.parametrize("name", ["Dockerfile.cpu", "Dockerfile.cuda"])
def test_dockerfiles_agree_with_pyproject(name):
    text = _dockerfile(name)
    extras = set(PYPROJECT["project"]["optional-dependencies"])
    # every package folder the build needs is copied
    for folder in PYPROJECT["tool"]["setuptools"]["package-dir"].values():
        assert re.search(rf"^COPY {folder} ", text, re.M), f"{name} does not copy {folder}/"
    # every extra named in a pip install exists in pyproject
    named = set()
    for m in re.finditer(r'"\.\[([a-z0-9,\-]+)\]"', text):
        named |= set(m.group(1).split(","))
    assert named, f"{name} installs no extras"
    assert named <= extras, f"{name} names extras {named - extras} that pyproject does not define"


def test_cpu_image_dolfinx_matches_the_dolfinx_extra():
    text = _dockerfile("Dockerfile.cpu")
    tag = re.search(r"DOLFINX_VERSION=v(\d+)\.(\d+)", text)
    req = next(r for r in PYPROJECT["project"]["optional-dependencies"]["dolfinx"] if r.startswith("dolfinx"))
    want = re.search(r">=(\d+)\.(\d+)", req)
    assert tag and want and tag.groups() == want.groups()
    assert "dolfinx" not in re.search(r'"\.\[([a-z0-9,\-]+)\]"', text).group(1).split(",")


def test_cuda_image_openmm_matches_the_openmm_extra():
    text = _dockerfile("Dockerfile.cuda")
    m = re.search(r'"openmm\[cuda12\]>=([\d.]+)"', text)
    req = PYPROJECT["project"]["optional-dependencies"]["openmm"][0]
    assert m and req == f"openmm>={m.group(1)}"


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "./bootstrap.sh test" in readme and "./bootstrap.sh main" in readme
    assert re.search(r"^exec \./bootstrap\.sh test$", ci, re.M)
