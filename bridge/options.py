"""Keyword-option checking shared by the adapters: an unknown name is a :class:`SetupError`
that suggests the closest valid one ("did you mean ...?") and lists them all."""
from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any

from .errors import SetupError

__all__ = ["check_options", "check_properties"]


def check_options(given: Mapping[str, Any], allowed: Iterable[str], what: str) -> None:
    """Refuse any key of ``given`` that is not in ``allowed``.

    Args:
      given: the options passed (e.g. a function's ``**kwargs``).
      allowed: the valid option names; listed in the fix in this order (sorted for a set).
      what: what takes the options, for the message (e.g. ``"ASEEngine"``).

    Raises:
      SetupError: naming every unknown option, with a fix that suggests the closest valid
        name of each (by :func:`difflib.get_close_matches`) and lists the valid ones.
    """
    names = sorted(allowed) if isinstance(allowed, (set, frozenset)) else list(allowed)
    valid = set(names)
    unknown = [k for k in given if k not in valid]
    if not unknown:
        return
    guesses = []
    for key in unknown:
        close = difflib.get_close_matches(str(key), names, n=1)
        if close:
            guesses.append((key, close[0]))
    s = "s" if len(unknown) > 1 else ""
    message = f"unknown {what} option{s} {', '.join(repr(k) for k in unknown)}"
    if len(guesses) == 1 and len(unknown) == 1:
        hint = f"did you mean '{guesses[0][1]}'? "
    elif guesses:
        hint = "did you mean " + ", ".join(f"'{c}' for {k!r}" for k, c in guesses) + "? "
    else:
        hint = ""
    valid_list = ", ".join(names) if names else "(none)"
    raise SetupError(message, fix=f"{hint}valid {what} options: {valid_list}")


def check_properties(properties: str | Iterable[str], implemented: Iterable[str], what: str) -> tuple[str, ...]:
    """``properties`` as a tuple, refusing any that ``what`` cannot compute (ASE-calculator style)."""
    props = (properties,) if isinstance(properties, str) else tuple(properties)
    implemented = tuple(implemented)
    bad = [p for p in props if p not in implemented]
    if bad:
        raise SetupError(f"{what} cannot compute {', '.join(map(repr, bad))}",
                         fix=f"ask for any of {', '.join(implemented)}")
    return props
