"""Logging set-up and progress bars."""
import logging

import pytest

from bridge import log


@pytest.mark.parametrize("env, tty, expect", [("1", False, True), ("0", True, False), (None, True, True),
                                              (None, False, False), ("yes", False, False)])
def test_progress_enabled(monkeypatch, env, tty, expect):
    if env is None:
        monkeypatch.delenv("MSBRIDGE_PROGRESS", raising=False)
    else:
        monkeypatch.setenv("MSBRIDGE_PROGRESS", env)
    monkeypatch.setattr(log.sys.stderr, "isatty", lambda: tty)
    assert log.progress_enabled() is expect
    assert log.progress_enabled(True) is True and log.progress_enabled(False) is False  # explicit wins


def test_progress_yields_every_item(monkeypatch):
    monkeypatch.setenv("MSBRIDGE_PROGRESS", "0")
    assert list(log.progress(range(5), desc="x")) == [0, 1, 2, 3, 4]
    assert list(log.progress(iter("abc"), enable=False)) == ["a", "b", "c"]


def test_configure_levels(monkeypatch):
    monkeypatch.setattr(log.logger, "handlers", [])
    monkeypatch.setattr(log.logger, "level", log.logger.level)
    log.configure(0)
    assert log.logger.level == logging.WARNING and len(log.logger.handlers) == 1
    log.configure(1)
    assert log.logger.level == logging.INFO and len(log.logger.handlers) == 1  # no duplicate handler
    log.configure(3)
    assert log.logger.level == logging.DEBUG
    assert log.get_logger() is log.logger and log.get_logger("zones").name == "msbridge.zones"
