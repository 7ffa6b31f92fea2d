"""One small error hierarchy, split by the phase in which things go wrong.

Every error says what to do about it: pass ``fix=`` and it is appended to the message.

- :class:`SetupError` -- bad input, a missing engine, inconsistent zones; raised before any
  engine has run, so nothing is lost.
- :class:`EngineNotAvailable` -- an engine's Python package is missing; names the pip extra.
- :class:`UsageError` -- a multi-step API called in the wrong order ("call X first").
- :class:`CalculationError` -- an engine ran and failed (SCF or linear solver not converged, NaN
  produced); carries the engine's own reason and state.
- :class:`ConservationError` -- a conservation ledger does not balance.
"""
from __future__ import annotations

from typing import Any

__all__ = [
    "BridgeError",
    "SetupError",
    "EngineNotAvailable",
    "UsageError",
    "CalculationError",
    "ConservationError",
]


class BridgeError(Exception):
    """Base class of every error raised by the bridge."""

    def __init__(self, message: str, *, fix: str | None = None):
        self.fix = fix
        super().__init__(f"{message} -- fix: {fix}" if fix else message)


class SetupError(BridgeError, ValueError):
    """Bad input or an inconsistent set-up, detected before anything runs."""


class EngineNotAvailable(SetupError, ImportError):
    """An engine's Python package cannot be imported."""

    def __init__(self, engine: str, extra: str | None = None, reason: str | None = None):
        extra = extra or engine
        self.engine = engine
        self.extra = extra
        msg = f"engine '{engine}' is not available"
        if reason:
            msg += f" ({reason})"
        super().__init__(msg, fix=f"pip install 'multiscale-bridge[{extra}]'")


class UsageError(BridgeError, RuntimeError):
    """A multi-step API was used in the wrong order."""


class CalculationError(BridgeError, RuntimeError):
    """An engine ran and failed; ``reason`` is the engine's own account, ``state`` what it left."""

    def __init__(self, message: str, *, reason: str | None = None, state: Any = None,
                 fix: str | None = None):
        self.reason = reason
        self.state = state
        if reason:
            message = f"{message}: {reason}"
        super().__init__(message, fix=fix)


class ConservationError(BridgeError, RuntimeError):
    """A conservation ledger does not balance within its tolerance."""

    def __init__(self, message: str, *, imbalance: float | None = None,
                 tolerance: float | None = None, fix: str | None = None):
        self.imbalance = imbalance
        self.tolerance = tolerance
        super().__init__(message, fix=fix)
