"""Shared fixtures of the core unit tests: fakes only, no engine is ever imported here."""
import copy

import pytest

from bridge import registry


@pytest.fixture(autouse=True)
def _restore_registry():
    """Every test leaves the in-process plugin registry as it found it."""
    saved = copy.copy({g: dict(p) for g, p in registry._extra_plugins.items()})
    yield
    registry._extra_plugins.clear()
    registry._extra_plugins.update(saved)


class FakeEntryPoint:
    """Mimics ``importlib.metadata.EntryPoint``: ``name``, ``value`` and ``load()``."""

    def __init__(self, name, value, target=None, error=None):
        self.name, self.value, self._target, self._error = name, value, target, error
        self.loads = 0

    def load(self):
        self.loads += 1
        if self._error is not None:
            raise self._error
        return self._target


@pytest.fixture
def make_ep():
    """The :class:`FakeEntryPoint` class (conftest modules are not imported by tests)."""
    return FakeEntryPoint


@pytest.fixture
def entry_points(monkeypatch):
    """Replace the installed entry points by a dict ``{group: [FakeEntryPoint, ...]}`` (empty at first).

    Keeps the unit tests independent of the real adapters and validation plugins.
    """
    table: dict[str, list[FakeEntryPoint]] = {}
    monkeypatch.setattr(registry, "_entry_points", lambda group: {ep.name: ep for ep in table.get(group, [])})
    return table
