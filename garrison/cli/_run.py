"""``garrison run MODULE:SPEC``: one node in this process, or under heart in a child."""

from __future__ import annotations

import argparse
import asyncio
import errno
import importlib
import os
import sys
from typing import TYPE_CHECKING, Any

from loguru import logger

from garrison._errors import ActorStartError, GarrisonError, InvalidConfig, JournalCorrupt
from garrison._exitcodes import ExitCode
from garrison.cli._errors import UsageError
from garrison.cli._loops import LOOP_CHOICES, choose_loop
from garrison.observe import (
    HEART_LOST_EXIT_CODE,
    Heart,
    HeartBeat,
    HeartConfig,
    LoopGuard,
    SystemdNotifier,
    configure_logging,
)

if TYPE_CHECKING:
    from garrison._node import Node
    from garrison.persistence import Journal
    from garrison.supervision import SupervisorSpec

_HEART = HeartConfig()
"""Heart's defaults, for the --heart-* options (one place to change them)."""

_HEART_OPTIONS: tuple[tuple[str, type[float] | type[int], float | None, str, str], ...] = (
    ("timeout", float, _HEART.timeout, "S", "restart after S s without a beat (%(default)s)"),
    ("startup", float, None, "S", "time for the first beat (default: max(30, timeout))"),
    ("intensity", int, _HEART.intensity, "N", "give up after more than N restarts..."),
    ("period", float, _HEART.period, "S", "...within S s (%(default)s)"),
    ("backoff", float, _HEART.backoff, "S", "first restart delay, doubling (%(default)s)"),
    ("max-backoff", float, _HEART.max_backoff, "S", "longest restart delay (%(default)s)"),
)
"""The --heart-* options, in help order: (option, type, default, metavar, help). No startup
default: it follows the timeout given (``max(30, timeout)``)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "target", metavar="MODULE:SPEC", help="a SupervisorSpec (or a function returning one)"
    )
    parser.add_argument("--name", default="garrison", help="node name (default: garrison)")
    parser.add_argument(
        "--journal", metavar="PATH|URL", help="the node's journal: a SQLite file path or a redis:// URL"
    )
    parser.add_argument(
        "--metrics-port", type=int, metavar="N", help="serve /metrics /healthz /tree (0: any)"
    )
    parser.add_argument("--metrics-host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    parser.add_argument(
        "--stall-timeout",
        type=float,
        default=10.0,
        metavar="S",
        help="seconds without a loop tick before the watchdog dumps every stack (default: 10; 0: never)",
    )
    parser.add_argument(
        "--exit-on-stall",
        action="store_true",
        help="after the dump, end the process with STALL_EXIT_CODE (75) so it is restarted",
    )
    parser.add_argument(
        "--log-level", default="INFO", help="DEBUG, INFO, WARNING, ERROR... in any case (default: INFO)"
    )
    parser.add_argument(
        "--loop",
        choices=LOOP_CHOICES,
        default="auto",
        help="event loop: uvloop (garrison[fast]) when installed, else asyncio's (default: auto)",
    )
    parser.add_argument("--log-json", action="store_true", help="log JSON lines instead of text")
    parser.add_argument(
        "--log-file", metavar="PATH", help="append the log to PATH instead of stderr (reopened on SIGHUP)"
    )
    heart = parser.add_argument_group("heart: run the node as a child process and restart it")
    heart.add_argument("--heart", action="store_true", help="run the node under heart")
    for option, kind, default, metavar, text in _HEART_OPTIONS:
        heart.add_argument(f"--heart-{option}", type=kind, default=default, metavar=metavar, help=text)


def import_attribute(target: str, what: str = "MODULE:SPEC") -> Any:
    """The object ``MODULE:NAME`` names (the current directory first on sys.path); UsageError if none."""
    module_name, colon, attribute = target.partition(":")
    if not colon or not module_name or not attribute:
        raise UsageError(f"{what}: expected MODULE:NAME (e.g. myapp.node:root_spec), got {target!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise UsageError(f"cannot import module {module_name!r}: {error}") from error
    except Exception as error:
        raise UsageError(
            f"importing module {module_name!r} failed: {type(error).__name__}: {error}"
        ) from error
    value: Any = module
    for part in attribute.split("."):
        if not hasattr(value, part):
            raise UsageError(f"module {module_name!r} has no attribute {attribute!r}")
        value = getattr(value, part)
    return value


def resolve_spec(target: str) -> SupervisorSpec:
    """The SupervisorSpec ``MODULE:SPEC`` names, or returns when called with no arguments."""
    from garrison.supervision import SupervisorSpec

    value = import_attribute(target)
    if not isinstance(value, SupervisorSpec) and callable(value):
        try:
            value = value()
        except Exception as error:
            raise UsageError(f"{target}() failed: {type(error).__name__}: {error}") from error
    if not isinstance(value, SupervisorSpec):
        raise UsageError(
            f"{target} is a {type(value).__name__}, not a SupervisorSpec (or a function returning one)"
        )
    return value


def build_journal(location: str | None) -> Journal | None:
    if location is None:
        return None
    scheme = location.partition("://")[0].lower() if "://" in location else ""
    if scheme in ("redis", "rediss"):
        from garrison.persistence import RedisJournal

        return RedisJournal(location)
    if scheme and scheme != "file":
        raise UsageError(f"--journal {location}: unknown scheme {scheme!r}; give a file path or redis:// URL")
    from garrison.persistence import SqliteJournal

    return SqliteJournal(location.removeprefix("file://"))


def run_command(options: argparse.Namespace) -> int:
    try:
        configure_logging(
            options.log_level,
            json=options.log_json,
            file=options.log_file,
            who="heart" if options.heart else options.name,
        )
    except InvalidConfig as error:  # a log file that cannot be opened is like a journal's: 78
        code = ExitCode.CONFIG if error.field == "log_file" else ExitCode.USAGE
        raise UsageError(f"--{error.field.replace('_', '-')}: {error}", code) from error
    spec = resolve_spec(options.target)
    if options.heart:
        build_journal(options.journal)  # a bad URL is a usage error now, not in every child
        choose_loop(options.loop)  # and so is --loop uvloop without uvloop
        return run_heart(options)
    try:
        guard = LoopGuard(stall_timeout=options.stall_timeout or None, exit_on_stall=options.exit_on_stall)
    except InvalidConfig as error:
        raise UsageError(f"--stall-timeout: {error}") from error
    loop_name, loop_factory = choose_loop(options.loop)
    options.loop_name = loop_name
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            return runner.run(run_node(spec, options, guard))
    except KeyboardInterrupt:  # before the node handles SIGINT itself, or after it stopped
        return 130


async def run_node(spec: SupervisorSpec, options: argparse.Namespace, guard: LoopGuard) -> int:
    """Run the node until SIGTERM/SIGINT or until the root gives up; returns the exit code."""
    from garrison._node import Node

    try:
        node = Node(
            options.name,
            journal=build_journal(options.journal),
            metrics_port=options.metrics_port,
            metrics_host=options.metrics_host,
            guard=guard,
        )
    except InvalidConfig as error:
        raise UsageError(str(error), ExitCode.CONFIG) from error
    heart_lost = False

    def on_heart_lost() -> None:
        nonlocal heart_lost
        heart_lost = True
        node.request_shutdown(HEART_LOST_EXIT_CODE)

    try:
        beat = HeartBeat.from_environ(node.logger, on_heart_lost)
    except InvalidConfig as error:
        raise UsageError(str(error), ExitCode.CONFIG) from error
    systemd = SystemdNotifier.from_environ(node.logger)
    # Beats start before the node opens its journal: a long open or recovery still beats (the loop runs).
    if beat is not None:
        beat.start()
    try:
        try:
            await node.__aenter__()
        except (JournalCorrupt, InvalidConfig, OSError) as error:
            code = start_failure_code(error)
            node.request_shutdown(code)
            await node.shutdown()
            raise UsageError(f"cannot start node {node.name}: {error}", code) from error
        try:
            if heart_lost:
                node.request_shutdown(HEART_LOST_EXIT_CODE)
            if systemd is not None:
                systemd.start_watchdog()
            await _start_tree(node, spec, options, systemd)
            await node.wait_closed()
            if systemd is not None:
                systemd.stopping(f"node {node.name} stopping")
        finally:
            await node.shutdown()
    finally:
        if systemd is not None:
            await systemd.stop()
        if beat is not None:
            await beat.stop()
    return node.exit_code


def start_failure_code(error: Exception) -> ExitCode:
    """The exit code of a node that could not open what it needs before any actor starts."""
    if isinstance(error, JournalCorrupt):
        return ExitCode.DAMAGED
    if isinstance(error, ConnectionError):  # a Redis journal that cannot be reached
        return ExitCode.UNAVAILABLE
    if isinstance(error, OSError) and error.errno == errno.EADDRINUSE:  # e.g. the old node still stopping
        return ExitCode.STALLED
    return ExitCode.CONFIG  # a journal path that cannot be opened, a bad node setting


async def _start_tree(
    node: Node, spec: SupervisorSpec, options: argparse.Namespace, systemd: SystemdNotifier | None
) -> None:
    """Start the tree and say so (log, READY=1); a tree that fails to start ends the node with 1."""
    try:
        await node.start(spec)
    except ActorStartError as error:
        node.logger.error("the supervision tree failed to start: {error}", error=error)
        node.request_shutdown(ExitCode.FAILED)
        return
    where = ""
    if node.metrics_address is not None:
        host, port = node.metrics_address
        where = f"; metrics on http://{host}:{port}/metrics"
    node.logger.info(
        "node {name} running {target} (pid {pid}){where}",
        name=node.name,
        target=options.target,
        pid=os.getpid(),
        where=where,
    )
    node.logger.info("node {name} runs on the {loop} event loop", name=node.name, loop=options.loop_name)
    if systemd is not None:
        systemd.ready(f"node {node.name} running")


def _child_argv(options: argparse.Namespace) -> list[str]:
    """The same ``garrison run`` without --heart: what heart starts (and restarts)."""
    argv = [sys.executable, "-m", "garrison.cli", "run", options.target, "--name", options.name]
    if options.journal is not None:
        argv += ["--journal", options.journal]
    if options.metrics_port is not None:
        argv += ["--metrics-port", str(options.metrics_port), "--metrics-host", options.metrics_host]
    argv += ["--stall-timeout", repr(options.stall_timeout), "--log-level", options.log_level]
    argv += ["--loop", options.loop]
    if options.exit_on_stall:
        argv.append("--exit-on-stall")
    if options.log_json:
        argv.append("--log-json")
    if options.log_file is not None:
        argv += ["--log-file", options.log_file]
    if getattr(options, "debug", False):
        argv.append("--debug")
    return argv


def run_heart(options: argparse.Namespace) -> int:
    try:
        config = HeartConfig(
            timeout=options.heart_timeout,
            startup=options.heart_startup or max(30.0, options.heart_timeout),
            intensity=options.heart_intensity,
            period=options.heart_period,
            backoff=options.heart_backoff,
            max_backoff=options.heart_max_backoff,
        )
    except GarrisonError as error:
        raise UsageError(str(error)) from error
    return Heart(_child_argv(options), config, logger.bind(actor="heart")).run()
