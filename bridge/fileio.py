"""Small file helpers shared by the command's outputs: atomic writes and strict JSON.

Outputs are written to a temporary name in the target folder and renamed over the target, so
an interrupted run never leaves a half-written report.  JSON is strict (RFC 8259): NaN and
infinities become ``null`` and numpy values become plain Python ones.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file and a rename."""
    return atomic_write_bytes(path, text.encode())


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def plain(obj: Any) -> Any:
    """``obj`` with numpy values made plain and non-finite floats replaced by None."""
    if isinstance(obj, dict):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return plain(obj.tolist())
    if isinstance(obj, np.generic):
        return plain(obj.item())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if obj is None or isinstance(obj, (str, bool, int, float)):
        return obj
    return str(obj)


def write_json(path: str | os.PathLike, payload: Any) -> Path:
    """Strict JSON of ``payload``, written atomically."""
    return atomic_write_text(path, json.dumps(plain(payload), indent=2, allow_nan=False))
