"""The ``msbridge`` command: ``info``, ``validate``, ``bench``.

    msbridge info
    msbridge validate [--quick] [--json FILE] [--report DIR] [NAME ...]
    msbridge bench [--quick] [--json FILE] [--repeats N] [NAME ...]

``validate`` exits 1 when a case fails (2 for bad usage); ``bench`` exits 0 when it ran, the
goals are reported, not enforced (timings belong in benchmarks, not in pass/fail).
"""
from __future__ import annotations

import argparse
import importlib.metadata as md
import json
import sys
import time
from pathlib import Path
from typing import Sequence

from . import bench as benchmod
from . import registry, validation
from .errors import BridgeError, SetupError
from .log import configure

ENGINE_DISTS = {name: dist for name, (_, dist) in registry.BUILTIN_ENGINES.items()}


def _version(dist: str) -> str | None:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return None


def collect_info() -> dict:
    """Engines, their versions, OpenMM platforms, MPI and GPUs, as a dict."""
    info: dict = {"multiscale-bridge": _version("multiscale-bridge"), "engines": {}, "machine": benchmod.machine()}
    for st in registry.status(registry.ENGINES):
        entry: dict = {"loaded": st.loaded, "target": st.target}
        if st.error:
            entry["error"] = st.error
            entry["fix"] = (f"pip install 'multiscale-bridge[{registry.EXTRAS.get(st.name, st.name)}]'"
                            if st.error.startswith(("ImportError", "ModuleNotFoundError"))
                            else "the plugin's entry point names a missing object: reinstall or fix that package")
        else:
            factory = registry.load(st.name)
            describe = getattr(sys.modules.get(factory.__module__), "describe", None)
            if describe is None:
                describe = getattr(sys.modules.get(factory.__module__.rsplit(".", 1)[0]), "describe", None)
            if callable(describe):
                entry.update(describe())
        if st.name in ENGINE_DISTS:
            entry.setdefault("version", _version(ENGINE_DISTS[st.name]))
        info["engines"][st.name] = entry
    try:
        from mpi4py import MPI

        info["mpi"] = {"mpi4py": _version("mpi4py"), "library": " ".join(MPI.Get_library_version().split()[:3]),
                       "ranks": MPI.COMM_WORLD.Get_size()}
    except ImportError as exc:
        info["mpi"] = {"error": str(exc), "fix": "pip install 'multiscale-bridge[mpi]'"}
    return info


def cmd_info(args: argparse.Namespace) -> int:
    info = collect_info()
    if args.json:
        print(json.dumps(info, indent=2, default=str))
        return 0
    print(f"multiscale-bridge {info['multiscale-bridge']}")
    m = info["machine"]
    print(f"machine: {m['cpu']}, {m['cores']} cores, {m.get('memory_gib', '?')} GiB, GPU: {m['gpu'] or 'none'}")
    print("engines:")
    for name, e in info["engines"].items():
        if e["loaded"]:
            extra = "; ".join(f"{k} {v}" for k, v in e.items() if k not in ("loaded", "target", "version"))
            print(f"  {name:<8} {e.get('version') or '?':<14} {extra}")
        else:
            print(f"  {name:<8} MISSING  {e['error']}  -- fix: {e['fix']}")
    mpi = info["mpi"]
    if "error" in mpi:
        print(f"mpi: MISSING ({mpi['error']}) -- fix: {mpi['fix']}")
    else:
        print(f"mpi: mpi4py {mpi['mpi4py']}, {mpi['library']}, {mpi['ranks']} rank(s)")
    return 0


def _rank() -> int:
    if "mpi4py" in sys.modules:
        from mpi4py import MPI

        return MPI.COMM_WORLD.Get_rank()
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    cases = validation.select(validation.discover(), args.names, heavy=args.heavy or args.list)
    if args.list:
        for c in cases:
            print(f"{c.level}  {c.name:<28} {'[heavy: run by name or --heavy] ' if c.heavy else ''}{c.description}")
        return 0
    outdir = Path(args.report) if args.report else None
    results = []
    for case in cases:
        print(f"[validate] {case.name} ...", flush=True, file=sys.stderr)
        r = validation.run_case(case, quick=args.quick, outdir=outdir)
        print(f"[validate] {case.name}: {'passed' if r.passed else 'FAILED'} "
              f"({r.metric} = {r.value:.4g}, reference {r.reference:.4g} +- {r.tolerance:.2g}, {r.seconds:.1f} s)",
              flush=True, file=sys.stderr)
        results.append(r)
    meta = {"quick": args.quick, "time": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": benchmod.machine(),
            "versions": {k: _version(v) for k, v in ENGINE_DISTS.items()}}
    if _rank() == 0:
        print(validation.format_table(results))
        if args.json:
            validation.write_json(results, Path(args.json), meta)
        if outdir is not None:
            path = validation.write_report(results, outdir, {k: v for k, v in meta.items() if k != "versions"})
            print(f"report: {path}")
    return 0 if all(r.passed for r in results) else 1


def cmd_bench(args: argparse.Namespace) -> int:
    benches = benchmod.discover()
    if args.names:
        known = {b.name for b in benches}
        unknown = [n for n in args.names if n not in known]
        if unknown:
            raise SetupError(f"unknown benchmark(s) {unknown}", fix=f"choose from: {', '.join(sorted(known))}")
        benches = [b for b in benches if b.name in args.names]
    if args.list:
        for b in benches:
            print(f"{b.name:<24} {b.description}")
        return 0
    machine = benchmod.machine()
    print(f"machine: {machine['cpu']}, {machine['cores']} cores, GPU: {machine['gpu'] or 'none'}")
    results = []
    for b in benches:
        print(f"[bench] {b.name} ...", flush=True, file=sys.stderr)
        out = b.func(quick=args.quick, repeats=args.repeats)
        for r in out if isinstance(out, list) else [out]:
            print(benchmod.format_result(r), flush=True)
            results.append(r)
    if args.json:
        benchmod.write_json(results, Path(args.json))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="msbridge", description="multiscale bridge: OpenMM, DOLFINx, PySCF and ASE coupled")
    p.add_argument("-v", "--verbose", action="count", default=0, help="log more (-vv for debug)")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("info", help="engines found, versions, OpenMM platforms, MPI, GPU")
    s.add_argument("--json", action="store_true", help="print JSON")
    s.set_defaults(func=cmd_info)
    s = sub.add_parser("validate", help="run the validation hierarchy (exit 1 if a case fails)")
    s.add_argument("names", nargs="*", help="cases to run (default: all)")
    s.add_argument("--quick", action="store_true", help="smaller problems, same assertions")
    s.add_argument("--json", metavar="FILE", help="write results as JSON")
    s.add_argument("--report", metavar="DIR", help="write report.md and figures into DIR")
    s.add_argument("--list", action="store_true", help="list the cases and exit")
    s.add_argument("--heavy", action="store_true",
                   help="also run the heavy cases (minutes to tens of minutes each on 2 cores; by default only when named)")
    s.set_defaults(func=cmd_validate)
    s = sub.add_parser("bench", help="time coupled runs against their baselines")
    s.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    s.add_argument("--quick", action="store_true", help="fewer steps and repeats")
    s.add_argument("--repeats", type=int, default=None, help="timed repeats per benchmark")
    s.add_argument("--json", metavar="FILE", help="write results and the machine as JSON")
    s.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    s.set_defaults(func=cmd_bench)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure(args.verbose)
    try:
        return int(args.func(args))
    except BridgeError as exc:
        print(f"msbridge: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
