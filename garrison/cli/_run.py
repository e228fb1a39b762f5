"""``garrison run MODULE:SPEC``: one node in this process, or under heart in a child."""

from __future__ import annotations

import argparse
import asyncio
import errno
import importlib
import os
import sys
from typing import TYPE_CHECKING, Any

import msgspec
from loguru import logger

from garrison._errors import ActorStartError, ConfigError, ConfigProblem, InvalidConfig, JournalCorrupt
from garrison._exitcodes import ExitCode
from garrison._secret import Secret, mask_text, secret_texts
from garrison._settings import (
    CORE_SECTIONS,
    JournalSettings,
    Settings,
    factory_takes_settings,
    section_environ,
)
from garrison.cli._errors import UsageError
from garrison.cli._loops import choose_loop
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
    from garrison.cluster import ClusterSettings
    from garrison.persistence import Journal
    from garrison.supervision import SupervisorSpec

CONFIG_FILE_ENV = "GARRISON_CONFIG"
"""The config file when ``--config`` is not given."""


def _run_flags() -> list[tuple[str, str, str, Any, str]]:
    """The settings ``garrison run`` takes as flags: (flag, dest, key, default, help), from the
    settings types (garrison._settings), in their order."""
    flags = []
    for section, kind in CORE_SECTIONS.items():
        info = msgspec.inspect.type_info(kind)
        assert isinstance(info, msgspec.inspect.StructType)
        for field in info.fields:
            meta = field.type if isinstance(field.type, msgspec.inspect.Metadata) else None
            flag = str((meta.extra or {}).get("flag", "")) if meta is not None else ""
            if flag:
                text = str((meta.extra_json_schema or {}).get("description", "")) if meta is not None else ""
                flags.append(
                    (flag, flag.lstrip("-").replace("-", "_"), f"{section}.{field.name}", field.default, text)
                )
    return flags


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``garrison run``'s arguments: the target, ``--config`` and one flag per core setting."""
    parser.add_argument(
        "target",
        metavar="MODULE:SPEC",
        help="a SupervisorSpec (or a function returning one, given the settings if it takes an argument)",
    )
    add_setting_arguments(parser)


_METAVARS = {
    "journal.url": "PATH|URL",
    "node.name": "NAME",
    "metrics.host": "HOST",
    "log.level": "LEVEL",
    "heart.startup": "S",
    "node.loop": "auto|asyncio|uvloop",
    "log.file": "PATH",
}


def add_setting_arguments(parser: argparse.ArgumentParser) -> None:
    """``--config`` and one flag per core setting. Every flag's default is None: a flag given
    overrides the file and the environment, one not given leaves them be."""
    add_config_argument(parser)
    heart = parser.add_argument_group("heart: run the node as a child process and restart it")
    for flag, dest, key, default, text in _run_flags():
        group = heart if key.startswith("heart.") else parser
        shown = "none" if default is None else str(default).lower() if isinstance(default, bool) else default
        if isinstance(default, bool):
            group.add_argument(flag, dest=dest, action="store_true", default=None, help=text)
        else:
            metavar = _METAVARS.get(key) or ("S" if isinstance(default, float) else "N")
            group.add_argument(
                flag, dest=dest, default=None, metavar=metavar, help=f"{text} (default: {shown})"
            )


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        metavar="FILE",
        default=os.environ.get(CONFIG_FILE_ENV),
        help=f"a TOML file of settings (default: ${CONFIG_FILE_ENV} if set); "
        "the environment (GARRISON_<SECTION>_<KEY>) and flags override it",
    )


def load_settings(options: argparse.Namespace) -> Settings:
    """The settings: the defaults, ``--config``, the environment, the flags given."""
    flags = {
        key: (getattr(options, dest), flag)
        for flag, dest, key, _, _ in _run_flags()
        if getattr(options, dest, None) is not None
    }
    return Settings.load(options.config, flags=flags)


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


def resolve_spec(target: str, settings: Settings | None = None) -> SupervisorSpec:
    """The SupervisorSpec ``MODULE:SPEC`` names, or returns when called: with ``settings`` when it
    takes one argument (``def root_spec(settings)``), else with none. A ConfigError the factory
    raises (reading its section) passes through."""
    from garrison.supervision import SupervisorSpec

    value = import_attribute(target)
    if not isinstance(value, SupervisorSpec) and callable(value):
        try:
            wants_settings = settings is not None and factory_takes_settings(value)
            value = value(settings) if wants_settings else value()
        except ConfigError:
            raise
        except Exception as error:
            raise UsageError(f"{target}() failed: {type(error).__name__}: {error}") from error
    if not isinstance(value, SupervisorSpec):
        raise UsageError(
            f"{target} is a {type(value).__name__}, not a SupervisorSpec (or a function returning one)"
        )
    return value


_REDIS_ONLY = ("password", "tls", "tls_ca", "tls_cert", "tls_key", "cluster")
"""The ``[journal]`` settings only a Redis journal reads."""


def build_journal(settings: JournalSettings) -> Journal | None:
    """The journal ``journal.url`` names (not yet open): a SQLite file, ``file://PATH`` or a
    ``redis://`` URL, reached as the other ``[journal]`` settings say (password, TLS, cluster)."""
    location = settings.url
    if location is None:
        return None
    url = location.reveal()
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    if scheme in ("redis", "rediss", "unix"):
        from garrison.persistence import RedisConnection, RedisJournal

        try:
            return RedisJournal(RedisConnection.from_settings(settings))
        except InvalidConfig as error:
            key = f"journal.{error.field}"
            raise ConfigError([ConfigProblem(key, key, str(error))]) from None
    redis_only = [name for name in _REDIS_ONLY if getattr(settings, name) not in (None, False)]
    if redis_only:
        raise ConfigError(
            [
                ConfigProblem(f"journal.{name}", f"journal.{name}", "only a Redis journal uses it: drop it")
                for name in redis_only
            ]
        )
    if scheme and scheme != "file":
        raise ConfigError(
            [
                ConfigProblem(
                    "journal.url",
                    location.masked(),
                    f"unknown scheme {scheme!r}: give a file path or a redis:// URL",
                )
            ]
        )
    from garrison.persistence import SqliteJournal

    return SqliteJournal(url.removeprefix("file://"))


def _warn_secret_in_argv(settings: Settings) -> None:
    """A password given as a flag is in argv, which every user of the host can read (ps)."""
    for entry in settings.entries():
        value = entry.value.reveal() if isinstance(entry.value, Secret) else entry.value
        if entry.secret and entry.source.startswith("--") and secret_texts(str(value or "")):
            variable = "GARRISON_" + entry.key.replace(".", "_").upper()
            logger.warning(
                "{flag} carries a secret, visible to every user of this host in ps and "
                "/proc/PID/cmdline: set {variable} or {variable}_FILE instead",
                flag=entry.source,
                variable=variable,
            )


def _config_failure(settings: Settings, error: InvalidConfig, section: str) -> ConfigError:
    """An InvalidConfig of something built from ``section`` (HeartConfig, LoopGuard, Node) as a
    ConfigError naming the setting and its source."""
    key = f"{section}.{error.field}"
    try:
        source = settings.source(key)
    except KeyError:
        key, source = section, "settings"
    return ConfigError([ConfigProblem(key, source, str(error))])


def cluster_settings(settings: Settings) -> ClusterSettings | None:
    """The ``[cluster]`` section when the config file has one or a ``GARRISON_CLUSTER_*``
    variable is set (the node then joins that cluster), else None. Raises ConfigError."""
    from garrison.cluster import ClusterSettings

    wanted = (
        "cluster" in settings.unread_sections()
        or any(name.startswith("GARRISON_CLUSTER_") for name in os.environ)
        or any(entry.key.startswith("cluster.") for entry in settings.entries())  # read already
    )
    return settings.section("cluster", ClusterSettings) if wanted else None


def run_command(options: argparse.Namespace) -> int:
    settings = load_settings(options)
    cluster_settings(settings)  # read before logging starts: its secrets are masked in every line
    try:
        configure_logging(
            settings.log.level,
            json=settings.log.json,
            file=settings.log.file,
            who="heart" if settings.heart.enabled else settings.node.name,
            secrets=settings.secret_texts(),
        )
    except InvalidConfig as error:  # a log file that cannot be opened, like a journal's: 78
        key = "log.file" if error.field == "log_file" else "log.level"
        raise ConfigError([ConfigProblem(key, settings.source(key), str(error))]) from None
    _warn_secret_in_argv(settings)
    spec = resolve_spec(options.target, settings)
    settings.check_sections_read()
    if settings.heart.enabled:
        build_journal(settings.journal)  # a bad URL is a configuration error now, not in every child
        choose_loop(settings.node.loop)  # and so is loop = "uvloop" without uvloop
        return run_heart(options, settings)
    try:
        guard = LoopGuard(
            stall_timeout=settings.node.stall_timeout or None, exit_on_stall=settings.node.exit_on_stall
        )
    except InvalidConfig as error:
        raise _config_failure(settings, error, "node") from None
    loop_name, loop_factory = choose_loop(settings.node.loop)
    options.loop_name = loop_name
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            return runner.run(run_node(spec, options, settings, guard))
    except KeyboardInterrupt:  # before the node handles SIGINT itself, or after it stopped
        return 130


async def run_node(
    spec: SupervisorSpec, options: argparse.Namespace, settings: Settings, guard: LoopGuard
) -> int:
    """Run the node until SIGTERM/SIGINT or until the root gives up; returns the exit code."""
    from garrison._node import Node

    wanted_cluster = cluster_settings(settings)
    try:
        # One cluster, one connection story: the [cluster] section also gives the node's singletons.
        singletons = None if wanted_cluster is None else wanted_cluster.singletons(settings.node.name)
    except InvalidConfig as error:
        raise _config_failure(settings, error, "cluster") from None
    try:
        node = Node(
            settings.node.name,
            journal=build_journal(settings.journal),
            metrics_port=settings.metrics.port,
            metrics_host=settings.metrics.host,
            guard=guard,
            singletons=singletons,
            crash_traceback_limit=settings.node.crash_traceback_limit,
            crash_traceback_window=settings.node.crash_traceback_window,
        )
    except InvalidConfig as error:
        raise _config_failure(settings, error, "metrics") from None
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
            text = mask_text(str(error), settings.secret_texts())
            raise UsageError(f"cannot start node {node.name}: {text}", code) from None
        try:
            if heart_lost:
                node.request_shutdown(HEART_LOST_EXIT_CODE)
            if systemd is not None:
                systemd.start_watchdog()
            await _join_cluster(node, settings)
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


async def _join_cluster(node: Node, settings: Settings) -> None:
    """Join the cluster of the ``[cluster]`` section, if any, before the tree starts (its actors
    may use ``node.cluster`` in ``on_start``). A Redis that cannot be reached ends the node with
    ``ExitCode.UNAVAILABLE``; a bad setting with ``ExitCode.CONFIG``."""
    wanted = cluster_settings(settings)
    if wanted is None:
        return
    from garrison.cluster import Cluster

    try:
        await Cluster.join_settings(node, wanted)
    except (InvalidConfig, OSError) as error:
        code = start_failure_code(error)
        text = mask_text(str(error), settings.secret_texts())
        raise UsageError(f"node {node.name} cannot join cluster {wanted.name}: {text}", code) from None
    except Exception as error:  # redis-py's own ConnectionError/TimeoutError are not OSErrors
        text = mask_text(f"{type(error).__name__}: {error}", settings.secret_texts())
        raise UsageError(
            f"node {node.name} cannot join cluster {wanted.name}: {text}", ExitCode.UNAVAILABLE
        ) from None


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
    """The same ``garrison run`` without --heart: what heart starts (and restarts). It reads the
    same config file and environment; the flags given are passed on, except those of secrets,
    which travel in its environment (``_child_environ``): argv is readable by every user."""
    argv = [sys.executable, "-m", "garrison.cli", "run", options.target]
    if options.config is not None:
        argv += ["--config", os.path.abspath(options.config)]
    for flag, dest, key, default, _ in _run_flags():
        value = getattr(options, dest, None)
        if value is None or key.startswith("heart.") or key in _SECRET_KEYS:
            continue
        argv += [flag] if isinstance(default, bool) else [flag, str(value)]
    if getattr(options, "debug", False):
        argv.append("--debug")
    return argv


_SECRET_KEYS = frozenset({"journal.url"})
"""Settings of ``garrison run`` whose flags are never passed on in argv."""


def _child_environ(settings: Settings) -> dict[str, str]:
    """Heart's environment for the node: this one, with every secret setting as its variable
    (its ``_FILE`` variable dropped), so that the child never needs it in argv."""
    environ = dict(os.environ)
    for key in sorted(_SECRET_KEYS):
        section, _, name = key.partition(".")
        values = section_environ(section, getattr(settings, section))
        variable = f"GARRISON_{section.upper()}_{name.upper()}"
        environ.pop(variable + "_FILE", None)
        if values[variable]:
            environ[variable] = values[variable]
    return environ


def run_heart(options: argparse.Namespace, settings: Settings) -> int:
    heart = settings.heart
    try:
        config = HeartConfig(
            timeout=heart.timeout,
            startup=heart.startup or max(30.0, heart.timeout),
            intensity=heart.intensity,
            period=heart.period,
            backoff=heart.backoff,
            max_backoff=heart.max_backoff,
        )
    except InvalidConfig as error:
        raise _config_failure(settings, error, "heart") from None
    return Heart(
        _child_argv(options), config, logger.bind(actor="heart"), environ=_child_environ(settings)
    ).run()
