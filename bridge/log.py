"""Logging and progress bars.

The bridge logs under the ``msbridge`` logger (silent unless configured; ``msbridge -v``
turns it on).  Long loops show a ``tqdm`` bar on an interactive terminal only, or when the
``MSBRIDGE_PROGRESS`` environment variable is ``1`` (``0`` turns bars off everywhere).
"""
from __future__ import annotations

import logging
import os
import sys
from typing import Iterable, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")

logger = logging.getLogger("msbridge")


def get_logger(name: str | None = None) -> logging.Logger:
    return logger if not name else logger.getChild(name)


def configure(verbosity: int = 0) -> None:
    """Log to stderr: 0 warnings, 1 info, 2+ debug."""
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    if not logger.handlers:
        h = logging.StreamHandler(sys.stderr)
        h.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s: %(message)s", "%H:%M:%S"))
        logger.addHandler(h)
    logger.setLevel(level)


def progress_enabled(enable: bool | None = None) -> bool:
    if enable is not None:
        return enable
    env = os.environ.get("MSBRIDGE_PROGRESS")
    if env in ("0", "1"):
        return env == "1"
    return sys.stderr.isatty()


def progress(it: Iterable[T], *, desc: str = "", total: int | None = None,
             enable: bool | None = None) -> Iterable[T]:
    """Wrap ``it`` in a tqdm bar when progress is enabled (see the module docstring)."""
    return tqdm(it, desc=desc, total=total, disable=not progress_enabled(enable), leave=False)
