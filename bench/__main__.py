"""``python -m bench [NAME ...] [--quick] [--name RUN]``: run benchmarks, print one JSON document.

``python -m bench --profile NAME`` instead profiles garrison's side of one
benchmark (cProfile) and writes it to ``bench/out/`` (see ``bench/_profile.py``).

The document also goes to ``bench/results/<RUN>.json`` (git-ignored). Progress
goes to stderr, so stdout is the JSON alone. The exit status is 0 even when
a target is missed (figures are reported, not asserted); it is 1 only when a
benchmark failed to run.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import importlib.metadata
import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path
from typing import Any

BENCHMARKS: dict[str, str] = {
    "tell": "bench.tell_throughput",
    "ask": "bench.ask_latency",
    "spawn": "bench.spawn_memory",
    "metrics": "bench.metrics_overhead",
    "guard": "bench.guard_overhead",
    "restart": "bench.restart_latency",
    "storm": "bench.restart_storm",
    "journal_append": "bench.journal_append",
    "journal_replay": "bench.journal_replay",
    "persist_encode": "bench.persist_encode",
    "redis_journal": "bench.redis_journal",
    "takeover": "bench.takeover",
    "intent_recovery_growth": "bench.intent_recovery_growth",
    "order_routing": "bench.order_routing",
    "e2e_fix": "bench.e2e_fix",
    "loops": "bench.event_loops",
    "fix_codec": "bench.fix_codec",
    "remote_tell": "bench.remote_tell",
    "remote_ask": "bench.remote_ask",
}
"""Short name -> module; every module exposes ``run(quick: bool) -> dict``."""

RESULTS = Path(__file__).absolute().parent / "results"


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument(
        "benchmarks",
        nargs="*",
        metavar="NAME",
        help=f"benchmarks to run (default: all): {', '.join(BENCHMARKS)} or their module names",
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run: small sizes, 3 rounds")
    parser.add_argument("--name", help="results file name under bench/results/ (default: a UTC timestamp)")
    parser.add_argument("--no-save", action="store_true", help="print only; write no results file")
    parser.add_argument(
        "--profile",
        metavar="NAME",
        choices=["tell", "ask", "restart", "spawn"],
        help="profile garrison's variant of one benchmark (tell, ask, restart, spawn) with cProfile; "
        "write bench/out/NAME.pstats, .collapsed (speedscope, flamegraph.pl) and .txt (µs per operation)",
    )
    args = parser.parse_args(argv)
    by_module = {module.rsplit(".", 1)[1]: short for short, module in BENCHMARKS.items()}
    chosen = []
    for name in args.benchmarks or list(BENCHMARKS):
        short = name if name in BENCHMARKS else by_module.get(name)
        if short is None:
            parser.error(f"unknown benchmark {name!r}; choose from {', '.join(BENCHMARKS)}")
        if short not in chosen:
            chosen.append(short)
    args.benchmarks = chosen
    return args


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _environment(quick: bool, started: datetime.datetime) -> dict[str, Any]:
    return {
        "started_at": started.isoformat(timespec="seconds"),
        "quick": quick,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "event_loop": "asyncio (default; `loops` also measures uvloop)",
        "garrison": _version("garrison"),
        "pykka": _version("pykka"),
    }


def _run_one(short: str, quick: bool) -> dict[str, Any]:
    module = importlib.import_module(BENCHMARKS[short])
    started = time.perf_counter()
    try:
        result: dict[str, Any] = module.run(quick)
    except Exception:
        result = {"error": traceback.format_exc()}
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result


def _verdict(benchmarks: dict[str, dict[str, Any]]) -> dict[str, Any]:
    met: list[str] = []
    missed: list[str] = []
    failed: list[str] = []
    for short, result in benchmarks.items():
        if "error" in result:
            failed.append(short)
            continue
        for target_name, figure in result.get("targets", {}).items():
            (met if figure["meets_target"] else missed).append(f"{short}.{target_name}")
    return {"met": met, "missed": missed, "failed": failed, "all_met": not missed and not failed}


def main(argv: list[str]) -> int:
    args = _parse(argv)
    if args.profile:
        from bench._profile import profile

        for path in profile(args.profile):
            print(f"bench: wrote {path}", file=sys.stderr)
        return 0
    started = datetime.datetime.now(datetime.UTC)
    document: dict[str, Any] = {"environment": _environment(args.quick, started), "benchmarks": {}}
    clock = time.perf_counter()
    for short in args.benchmarks:
        print(f"bench: {short} ...", file=sys.stderr, flush=True)
        result = _run_one(short, args.quick)
        document["benchmarks"][short] = result
        outcome = "FAILED" if "error" in result else f"{result['seconds']} s"
        print(f"bench: {short} {outcome}", file=sys.stderr, flush=True)
    document["environment"]["seconds"] = round(time.perf_counter() - clock, 1)
    document["targets"] = _verdict(document["benchmarks"])
    text = json.dumps(document, indent=2)
    print(text)
    if not args.no_save:
        name = args.name or started.strftime("%Y%m%dT%H%M%SZ") + ("-quick" if args.quick else "")
        RESULTS.mkdir(exist_ok=True)
        path = RESULTS / f"{name}.json"
        path.write_text(text + "\n")
        print(f"bench: wrote {path}", file=sys.stderr)
    return 1 if document["targets"]["failed"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
