"""Coupled checkpoint/restart: every engine plus the core's state in one HDF5 file.

Layout: one group per part (``engines/openmm``, ``core/scheduler``, ``core/ledger``, ...);
each entry is a dataset (numpy arrays), a ``uint8`` dataset (``bytes``, e.g. OpenMM's binary
checkpoint) or an attribute (str, int, float, bool).  A SHA-256 over every entry (name, type,
shape, bytes, in sorted order) is stored in the root attribute ``sha256`` and verified on
load; a mismatch raises :class:`~bridge.errors.SetupError`.

Under MPI every rank's parts go into the same file (``rank<r>/<part>``, written by rank 0)
and a restart must use the same number of ranks.

The file is written to a temporary name in the same folder, flushed and fsync'ed, then renamed
over the target (atomic on POSIX), so a crash never leaves a half-written checkpoint and an old
one stays intact.  Nothing is pickled: only arrays, bytes and plain scalars are accepted.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any, Mapping

import h5py
import numpy as np

from .errors import SetupError

FORMAT = "msbridge-checkpoint-1"
_KINDS = {"array": 0, "bytes": 1, "str": 2, "int": 3, "float": 4, "bool": 5}
_PART = "__part__"


def _entry_bytes(value: Any) -> tuple[str, bytes]:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "bytes", bytes(value)
    if isinstance(value, str):
        if "\x00" in value:
            raise SetupError("strings with NUL characters cannot be checkpointed",
                             fix="store such data as bytes")
        return "str", value.encode()
    if isinstance(value, (bool, np.bool_)):
        return "bool", b"1" if value else b"0"
    if isinstance(value, (int, np.integer)):
        if not -2 ** 63 <= int(value) < 2 ** 64:
            raise SetupError(f"integer {int(value)} does not fit in 64 bits",
                             fix="store it as a str or split it into 64-bit words")
        return "int", str(int(value)).encode()
    if isinstance(value, (float, np.floating)):
        return "float", np.float64(value).tobytes()
    if isinstance(value, np.ndarray):
        # HDF5 holds numbers, bools, byte strings and records of them; not Python objects,
        # unicode (<U) or datetime arrays.
        if value.dtype.hasobject or value.dtype.kind not in "biufcSV":
            raise SetupError(f"arrays of dtype {value.dtype} cannot be checkpointed",
                             fix="convert to a numeric (or bytes) array")
        arr = np.ascontiguousarray(value)
        return "array", f"{arr.dtype.str}{arr.shape}".encode() + arr.tobytes()
    raise SetupError(f"cannot checkpoint a value of type {type(value).__name__}",
                     fix="engine states must be numpy arrays, bytes, str, int, float or bool")


def _digest(parts: Mapping[str, Mapping[str, Any]]) -> str:
    h = hashlib.sha256()
    for part in sorted(parts):
        for key in sorted(parts[part]):
            kind, data = _entry_bytes(parts[part][key])
            h.update(f"{part}/{key}:{kind}:{len(data)}:".encode())
            h.update(data)
    return h.hexdigest()


def _check_name(name: str) -> None:
    if not name or name.startswith(("/", "__")) or ".." in name.split("/"):
        raise SetupError(f"invalid checkpoint part or key name {name!r}",
                         fix="use plain names like 'engines/openmm' (a leading '__' is reserved)")


def _comm(comm: Any) -> Any:
    """The communicator to use: ``comm``, else MPI.COMM_WORLD when mpi4py is loaded with > 1 rank."""
    if comm is not None:
        return comm if comm.Get_size() > 1 else None
    mpi = sys.modules.get("mpi4py.MPI")
    if mpi is not None and mpi.COMM_WORLD.Get_size() > 1:
        return mpi.COMM_WORLD
    return None


def save(path: str | os.PathLike, parts: Mapping[str, Mapping[str, Any]],
         metadata: Mapping[str, str] | None = None, *, comm: Any = None) -> Path:
    """Write ``parts`` (``{part: {key: value}}``) to ``path`` atomically; return the path.

    Under MPI (``comm``, or ``MPI.COMM_WORLD`` when mpi4py is loaded and has more than one
    rank) the call is collective: every rank passes its own parts (e.g. the dofs it owns),
    rank 0 writes them all into the one file as ``rank<r>/<part>`` and every rank returns
    after the file is complete.  An error on any rank is raised on every rank.
    """
    comm = _comm(comm)
    if comm is None:
        return _write(path, parts, metadata)
    local_error = None
    try:
        for part, entries in parts.items():
            _check_name(part)
            for key in entries:
                _check_name(key)
        _digest(parts)
    except SetupError as exc:
        local_error = str(exc)
    errors = [e for e in comm.allgather(local_error) if e]
    if errors:
        raise SetupError(f"checkpoint not written: {errors[0]}", fix="make every rank's state checkpointable")
    gathered = comm.gather({p: dict(e) for p, e in parts.items()}, root=0)
    error = None
    if comm.Get_rank() == 0:
        merged = {f"rank{r}/{p}": e for r, rank_parts in enumerate(gathered) for p, e in rank_parts.items()}
        try:
            _write(path, merged, {**(metadata or {}), "ranks": str(comm.Get_size())})
        except (SetupError, OSError) as exc:
            error = f"{type(exc).__name__}: {exc}"
    error = comm.bcast(error, root=0)
    if error:
        raise SetupError(f"checkpoint {path} not written: {error}", fix="check the folder and free disk space")
    return Path(path)


def _write(path: str | os.PathLike, parts: Mapping[str, Mapping[str, Any]],
           metadata: Mapping[str, str] | None = None) -> Path:
    path = Path(path)
    for part, entries in parts.items():
        _check_name(part)
        for key in entries:
            _check_name(key)
    digest = _digest(parts)  # validates every value before anything touches the disk
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with h5py.File(tmp, "w") as f:
            f.attrs["format"] = FORMAT
            f.attrs["sha256"] = digest
            for k, v in (metadata or {}).items():
                f.attrs[f"meta_{k}"] = str(v)
            for part, entries in parts.items():
                g = f.require_group(part)
                g.attrs[_PART] = True  # marks the group as a part, so an empty part survives
                for key, value in entries.items():
                    kind, _ = _entry_bytes(value)
                    if kind == "array":
                        g.create_dataset(key, data=value)
                    elif kind == "bytes":
                        g.create_dataset(key, data=np.frombuffer(bytes(value), dtype=np.uint8))
                    else:
                        g.attrs[key] = value
                    g.attrs[f"__kind__{key}"] = _KINDS[kind]
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def load(path: str | os.PathLike, *, comm: Any = None) -> dict[str, dict[str, Any]]:
    """Read a checkpoint written by :func:`save`, verifying its checksum.

    Under MPI (see :func:`save`) the call is collective: rank 0 reads and verifies the file and
    every rank receives its own parts; the number of ranks must equal the one that wrote it.
    """
    comm = _comm(comm)
    if comm is None:
        parts, meta = _read(path)
        if "ranks" in meta:
            raise SetupError(f"checkpoint {path} was written by {meta['ranks']} MPI ranks",
                             fix=f"restart under mpiexec -n {meta['ranks']}")
        return parts
    payload: list[Any] | None = None
    if comm.Get_rank() == 0:
        try:
            parts, meta = _read(path)
            ranks = int(meta.get("ranks", 1))
            if ranks != comm.Get_size():
                raise SetupError(f"checkpoint {path} was written by {ranks} MPI rank(s), this run has "
                                 f"{comm.Get_size()}", fix=f"restart under mpiexec -n {ranks}")
            payload = [{p.split("/", 1)[1]: e for p, e in parts.items() if p.split("/", 1)[0] == f"rank{r}"}
                       for r in range(ranks)]
        except SetupError as exc:
            payload = [exc] * comm.Get_size()
    mine = comm.scatter(payload, root=0)
    if isinstance(mine, SetupError):
        raise mine          # rank 0's error (with its fix), raised on every rank
    return mine


def _read(path: str | os.PathLike) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    path = Path(path)
    if not path.exists():
        raise SetupError(f"checkpoint {path} does not exist", fix="check the path, or start a new run")
    parts: dict[str, dict[str, Any]] = {}
    inv = {v: k for k, v in _KINDS.items()}
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise SetupError(f"checkpoint {path} is not a readable HDF5 file ({exc})",
                         fix="restart from an intact checkpoint") from exc
    with f:
        if f.attrs.get("format") != FORMAT:
            raise SetupError(f"{path} is not an msbridge checkpoint (format {f.attrs.get('format')!r})",
                             fix="pass a file written by bridge.checkpoint.save")
        expected = str(f.attrs["sha256"])
        meta = {k[len("meta_"):]: str(v) for k, v in f.attrs.items() if k.startswith("meta_")}

        def visit(name: str, obj: Any) -> None:
            if not isinstance(obj, h5py.Group):
                return
            entries: dict[str, Any] = {}
            for akey in obj.attrs:
                if not akey.startswith("__kind__"):
                    continue
                key = akey[len("__kind__"):]
                kind = inv[int(obj.attrs[akey])]
                if kind == "array":
                    entries[key] = np.asarray(obj[key][()])  # a 0-d dataset reads as a scalar
                elif kind == "bytes":
                    entries[key] = obj[key][()].tobytes()
                elif kind == "str":
                    entries[key] = str(obj.attrs[key])
                elif kind == "int":
                    entries[key] = int(obj.attrs[key])
                elif kind == "float":
                    entries[key] = float(obj.attrs[key])
                else:
                    entries[key] = bool(obj.attrs[key])
            if entries or _PART in obj.attrs:
                parts[name] = entries

        f.visititems(visit)
    if _digest(parts) != expected:
        raise SetupError(f"checkpoint {path} fails its SHA-256 check (corrupted or edited)",
                         fix="restart from an earlier checkpoint")
    return parts, meta


def save_run(path: str | os.PathLike, *, engines: Mapping[str, Any] = {}, scheduler: Any = None,
             ledger: Any = None, rngs: Mapping[str, np.random.Generator] = {},
             extra: Mapping[str, Mapping[str, Any]] = {}, comm: Any = None) -> Path:
    """Checkpoint a coupled run: each engine's ``get_state()``, the scheduler, ledger and RNGs.

    RNG streams are saved as their bit-generator state (JSON), the ledger as JSON: no pickle.
    """
    parts: dict[str, dict[str, Any]] = {f"engines/{k}": dict(e.get_state()) for k, e in engines.items()}
    if scheduler is not None:
        parts["core/scheduler"] = scheduler.get_state()
    if ledger is not None:
        parts["core/ledger"] = {"json": ledger.to_json()}
    if rngs:
        parts["core/rng"] = {k: json.dumps(g.bit_generator.state) for k, g in rngs.items()}
    for k, v in extra.items():
        parts[f"extra/{k}"] = dict(v)
    return save(path, parts, comm=comm)


def restore_run(path: str | os.PathLike, *, engines: Mapping[str, Any] = {}, scheduler: Any = None,
                rngs: Mapping[str, np.random.Generator] = {}, comm: Any = None) -> dict[str, Any]:
    """Restore what :func:`save_run` wrote into the given objects (collective under MPI).

    Returns ``{"ledger": Ledger | None, "extra": {...}}``.  A missing engine part raises
    :class:`SetupError` naming it.
    """
    from .ledger import Ledger

    parts = load(path, comm=comm)

    def part(name: str) -> dict[str, Any]:
        if name not in parts:
            raise SetupError(f"checkpoint {path} has no '{name}' part (has: {sorted(parts)})",
                             fix="restore only what save_run was given")
        return parts[name]

    for k, e in engines.items():
        if f"engines/{k}" not in parts:
            raise SetupError(f"checkpoint {path} has no state for engine '{k}' "
                             f"(has: {sorted(p for p in parts if p.startswith('engines/'))})",
                             fix="restore with the engine names used when saving")
        e.set_state(parts[f"engines/{k}"])
    if scheduler is not None:
        scheduler.set_state(part("core/scheduler"))
    for k, g in rngs.items():
        if k not in part("core/rng"):
            raise SetupError(f"checkpoint {path} has no RNG stream '{k}' (has: {sorted(parts['core/rng'])})",
                             fix="restore with the RNG names used when saving")
        g.bit_generator.state = json.loads(parts["core/rng"][k])
    ledger = Ledger.from_json(parts["core/ledger"]["json"]) if "core/ledger" in parts else None
    extra = {k[len("extra/"):]: v for k, v in parts.items() if k.startswith("extra/")}
    return {"ledger": ledger, "extra": extra}
