"""Plugin registry: engines, validation cases and benchmarks found through entry points.

Groups:

- ``multiscale_bridge.engines`` -- an engine factory (class) per name;
- ``multiscale_bridge.validation`` -- a list of :class:`bridge.validation.Case` per entry;
- ``multiscale_bridge.benchmarks`` -- a list of :class:`bridge.bench.Benchmark` per entry.

A third party adds an engine by declaring an entry point in its own ``pyproject.toml``; the core
is not touched.  A plugin that fails to import is reported with the reason and the pip extra to
install -- it never disappears silently and never takes the other plugins down with it.
"""
from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from .errors import EngineNotAvailable, SetupError

ENGINES = "multiscale_bridge.engines"
VALIDATION = "multiscale_bridge.validation"
BENCHMARKS = "multiscale_bridge.benchmarks"

#: Built-in engines: name -> (pip extra that installs it, distribution whose version is reported).
BUILTIN_ENGINES = {"openmm": ("openmm", "openmm"), "dolfinx": ("dolfinx", "dolfinx-solver-real"),
                   "pyscf": ("pyscf", "pyscf"), "ase": ("ase", "ase"), "kmc": ("kmc", "numba")}
#: pip extra of each built-in engine, for the "install X" message.
EXTRAS = {name: extra for name, (extra, _) in BUILTIN_ENGINES.items()}

_extra_plugins: dict[str, dict[str, Any]] = {ENGINES: {}, VALIDATION: {}, BENCHMARKS: {}}


@dataclass(frozen=True)
class PluginStatus:
    name: str
    group: str
    target: str
    loaded: bool
    error: str | None = None


def register(group: str, name: str, obj: Any) -> None:
    """Register a plugin in-process (tests, notebooks); entry points are the normal way."""
    if group not in _extra_plugins:
        raise SetupError(f"unknown plugin group '{group}'", fix=f"use one of {sorted(_extra_plugins)}")
    _extra_plugins[group][name] = obj


def _entry_points(group: str) -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=group)}


def names(group: str = ENGINES) -> list[str]:
    """Names declared in ``group`` (whether or not they import)."""
    return sorted(set(_entry_points(group)) | set(_extra_plugins.get(group, {})))


def load(name: str, group: str = ENGINES) -> Any:
    """Load the plugin ``name`` of ``group``.

    Raises :class:`SetupError` for an unknown name (listing the known ones) and
    :class:`EngineNotAvailable` when its module cannot be imported.
    """
    if name in _extra_plugins.get(group, {}):
        return _extra_plugins[group][name]
    eps = _entry_points(group)
    if name not in eps:
        known = ", ".join(names(group)) or "none"
        raise SetupError(f"unknown {group.rsplit('.', 1)[-1]} plugin '{name}' (known: {known})",
                         fix="check the spelling, or install the package that provides it")
    try:
        return eps[name].load()
    except ImportError as exc:
        if group == ENGINES:
            raise EngineNotAvailable(name, EXTRAS.get(name), reason=str(exc)) from exc
        raise SetupError(f"plugin '{name}' ({eps[name].value}) of {group} cannot be imported: {exc}",
                         fix="reinstall the package that declares it") from exc
    except AttributeError as exc:
        raise SetupError(f"plugin '{name}' points at {eps[name].value}, which does not exist ({exc})",
                         fix="fix the entry point in the declaring package's pyproject.toml") from exc


def status(group: str = ENGINES) -> list[PluginStatus]:
    """Try to load every plugin of ``group``; report each as loaded or with its import error."""
    out = []
    for name, ep in sorted(_entry_points(group).items()):
        try:
            ep.load()
            out.append(PluginStatus(name, group, ep.value, True))
        except Exception as exc:  # noqa: BLE001 - a broken plugin is reported, never fatal here
            out.append(PluginStatus(name, group, ep.value, False, f"{type(exc).__name__}: {exc}"))
    for name in sorted(_extra_plugins.get(group, {})):
        out.append(PluginStatus(name, group, "<registered in-process>", True))
    return out


def engine(name: str, *args: Any, **kwargs: Any) -> Any:
    """Create an engine by name: ``engine("openmm", system=..., positions=...)``."""
    factory = load(name, ENGINES)
    return factory(*args, **kwargs)
