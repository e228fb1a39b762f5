"""A node's settings: one typed object read from defaults, a TOML file, the environment and flags.

Each later source overrides the earlier ones, key by key:

1. the defaults of the settings types below;
2. a TOML file (``garrison run --config node.toml``);
3. ``GARRISON_<SECTION>_<KEY>`` environment variables (``GARRISON_JOURNAL_URL``),
   or ``GARRISON_<SECTION>_<KEY>_FILE`` naming a file that holds the value
   (``GARRISON_JOURNAL_URL_FILE=/run/secrets/journal-url``: Docker and
   Kubernetes secrets);
4. the flags of ``garrison run``.

The core sections (``[node]``, ``[journal]``, ``[metrics]``, ``[log]``,
``[heart]``) are the ``garrison run`` options. Any other table of the file is
an application's section: the spec factory reads it with
``settings.section("order_routing", NodeConfig)`` into its own msgspec Struct
(or dataclass), from the file and ``GARRISON_ORDER_ROUTING_<KEY>``.

Why msgspec and tomllib rather than pydantic-settings: both are already
garrison's (msgspec types every message and event; tomllib is the standard
library), they validate and convert the same way the rest of garrison does,
and knowing each key's source (for ``garrison config show``) is a few lines
here, where pydantic-settings would add pydantic and pydantic-core, a second
validation system, for less.

Every problem (an unknown key, a bad value, an unreadable file) is collected
into one ConfigError naming each key and where its value came from; a secret's
value never appears in it.
"""

from __future__ import annotations

import enum
import inspect as pyinspect
import json
import os
import re
import tomllib
import typing
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import msgspec
from msgspec import Meta
from msgspec import inspect as mi

from garrison._errors import ConfigError, ConfigProblem
from garrison._secret import MASK, Secret, is_secret_name, secret_texts

__all__ = [
    "ENV_PREFIX",
    "HeartSettings",
    "JournalSettings",
    "LogSettings",
    "MetricsSettings",
    "NodeSettings",
    "RESERVED_ENVIRONMENT",
    "Setting",
    "Settings",
    "reference_table",
    "section_environ",
]

T = TypeVar("T")

ENV_PREFIX = "GARRISON_"
FILE_SUFFIX = "_FILE"
RESERVED_ENVIRONMENT = frozenset({"GARRISON_HEART_FD", "GARRISON_HEART_INTERVAL"})
"""Variables under a section's prefix that are not settings: heart's pipe to its child."""

_LOG_LEVELS = ("TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL")


def _meta(description: str, flag: str | None = None) -> Meta:
    return Meta(description=description, extra={"flag": flag} if flag else None)


class NodeSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[node]``: the node itself."""

    name: Annotated[str, Meta(min_length=1), _meta("node name, in every log record", "--name")] = "garrison"
    stall_timeout: Annotated[
        float,
        Meta(ge=0),
        _meta(
            "the loop has not ticked for this many seconds: dump every stack (0: never)", "--stall-timeout"
        ),
    ] = 10.0
    exit_on_stall: Annotated[
        bool, _meta("after the dump, end the process with exit code 75", "--exit-on-stall")
    ] = False
    crash_traceback_limit: Annotated[
        int,
        Meta(ge=0),
        _meta(
            "crash records of a child per window that carry the traceback; later ones go without (0: never)",
            "--crash-traceback-limit",
        ),
    ] = 10
    crash_traceback_window: Annotated[
        float,
        Meta(gt=0),
        _meta("seconds of the window crash_traceback_limit counts in", "--crash-traceback-window"),
    ] = 60.0
    loop: Annotated[
        Literal["auto", "asyncio", "uvloop"],
        _meta("the event loop: auto is uvloop when installed (garrison[fast]), else asyncio's", "--loop"),
    ] = "auto"


class JournalSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[journal]``: the journal event-sourced actors use."""

    url: Annotated[
        Secret | None,
        _meta(
            "a SQLite file path or a redis:// URL (a secret: give a password by environment or file)",
            "--journal",
        ),
    ] = None
    password: Annotated[
        Secret | None,
        _meta("Redis: the password (AUTH; overrides one in the URL; give it by environment or file)"),
    ] = None
    tls: Annotated[bool, _meta("Redis: encrypt the connection (as a rediss:// URL does)")] = False
    tls_ca: Annotated[
        Annotated[str, Meta(min_length=1)] | None,
        _meta("Redis: the CA file to check the server's certificate with (none: the system's)"),
    ] = None
    tls_cert: Annotated[
        Annotated[str, Meta(min_length=1)] | None,
        _meta("Redis: this node's certificate file, for a server that asks for one (with tls_key)"),
    ] = None
    tls_key: Annotated[
        Annotated[str, Meta(min_length=1)] | None, _meta("Redis: the private key file of tls_cert")
    ] = None
    cluster: Annotated[bool, _meta("Redis: the URL names a node of a Redis Cluster")] = False


class MetricsSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[metrics]``: the HTTP endpoint (/metrics, /healthz, /tree)."""

    port: Annotated[
        Annotated[int, Meta(ge=0, le=65535)] | None,
        _meta("serve /metrics, /healthz, /tree on this port (0: any free one; none: off)", "--metrics-port"),
    ] = None
    host: Annotated[
        str,
        Meta(min_length=1),
        _meta("address to bind; 0.0.0.0 to scrape from outside the host", "--metrics-host"),
    ] = "127.0.0.1"


class LogSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[log]``: what ``garrison run`` logs, and how."""

    level: Annotated[
        str,
        _meta(
            "the lowest level logged: trace, debug, info, success, warning, error, critical", "--log-level"
        ),
    ] = "INFO"
    json: Annotated[bool, _meta("JSON lines instead of text", "--log-json")] = False
    file: Annotated[
        Annotated[str, Meta(min_length=1)] | None,
        _meta("append the log to this file instead of stderr (reopened on SIGHUP)", "--log-file"),
    ] = None

    def __post_init__(self) -> None:
        if self.level.upper() not in _LOG_LEVELS:
            raise ValueError(f"level: must be one of {', '.join(level.lower() for level in _LOG_LEVELS)}")
        msgspec.structs.force_setattr(self, "level", self.level.upper())


class HeartSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[heart]``: run the node as a child process and restart it (docs/operations.md, heart)."""

    enabled: Annotated[bool, _meta("run the node under heart", "--heart")] = False
    timeout: Annotated[
        float, Meta(gt=0), _meta("restart after this many seconds without a beat", "--heart-timeout")
    ] = 10.0
    startup: Annotated[
        Annotated[float, Meta(gt=0)] | None,
        _meta("seconds for the first beat (none: max(30, timeout))", "--heart-startup"),
    ] = None
    intensity: Annotated[
        int, Meta(ge=0), _meta("give up after more than this many restarts...", "--heart-intensity")
    ] = 5
    period: Annotated[float, Meta(gt=0), _meta("...within this many seconds", "--heart-period")] = 60.0
    backoff: Annotated[float, Meta(ge=0), _meta("first restart delay, doubling (s)", "--heart-backoff")] = 0.5
    max_backoff: Annotated[
        float, Meta(ge=0), _meta("the longest restart delay (s)", "--heart-max-backoff")
    ] = 30.0


CORE_SECTIONS: dict[str, type[msgspec.Struct]] = {
    "node": NodeSettings,
    "journal": JournalSettings,
    "metrics": MetricsSettings,
    "log": LogSettings,
    "heart": HeartSettings,
}
"""The sections ``garrison run`` reads itself, in the order ``config show`` prints them."""

_SECTION_NAME = re.compile(r"[a-z][a-z0-9_]*\Z")


_PATH_OR_URL_KEYS = frozenset({"journal.url"})
"""Secret settings that may also hold a local file path (a SQLite journal): a path carries no
password, so it is shown as it is (in log lines, errors and ``config show``)."""


def _is_plain_path(key: str, value: Any) -> bool:
    if key not in _PATH_OR_URL_KEYS or not isinstance(value, Secret):
        return False
    text = value.reveal()
    return "://" not in text or text.lower().startswith("file://")


class Setting(msgspec.Struct, frozen=True):
    """One effective setting, as ``garrison config show`` prints it: ``key`` (``"node.name"``),
    ``value`` (shown masked when ``secret``), and ``source``: ``"default"``, the config file's
    path, an environment variable (``"GARRISON_JOURNAL_URL_FILE=/run/secrets/url"`` for a file)
    or a flag (``"--name"``)."""

    key: str
    value: Any
    source: str
    secret: bool = False

    def shown(self) -> Any:
        """The value as shown: a secret masked (``***``, or a URL with its password masked); a
        journal's SQLite path as it is."""
        if _is_plain_path(self.key, self.value):
            return self.value.reveal()
        if isinstance(self.value, Secret):
            return self.value.masked()
        if self.secret and self.value is not None:
            return Secret(str(self.value)).masked()
        return self.value


# -- how values are read and described -------------------------------------------------------


def _fields(kind: type[Any]) -> list[mi.Field]:
    info = mi.type_info(kind)
    if not isinstance(info, mi.StructType | mi.DataclassType):
        raise TypeError(f"{kind!r} is not a msgspec Struct or a dataclass")
    return list(info.fields)


def _unwrap(field_type: mi.Type) -> mi.Type:
    return field_type.type if isinstance(field_type, mi.Metadata) else field_type


def _description(field: mi.Field) -> str:
    if isinstance(field.type, mi.Metadata):
        return str((field.type.extra_json_schema or {}).get("description", ""))
    return ""


def _flag(field: mi.Field) -> str:
    if isinstance(field.type, mi.Metadata):
        return str((field.type.extra or {}).get("flag", ""))
    return ""


def _bounds(kind: mi.IntType | mi.FloatType) -> str:
    parts = [
        f"{symbol} {bound:g}"
        for symbol, bound in ((">", kind.gt), (">=", kind.ge), ("<", kind.lt), ("<=", kind.le))
        if bound is not None
    ]
    return f" {' and '.join(parts)}" if parts else ""


def describe(field_type: mi.Type) -> str:
    """What a value of ``field_type`` must be, in words (``"a number >= 0"``)."""
    kind = _unwrap(field_type)
    if isinstance(kind, mi.UnionType):
        others = [t for t in kind.types if not isinstance(t, mi.NoneType)]
        text = " or ".join(describe(t) for t in others)
        return f"{text}, or empty for none" if len(others) < len(kind.types) else text
    if isinstance(kind, mi.BoolType):
        return "true or false"
    if isinstance(kind, mi.IntType):
        return f"a whole number{_bounds(kind)}"
    if isinstance(kind, mi.FloatType):
        return f"a number{_bounds(kind)}"
    if isinstance(kind, mi.StrType):
        return "a non-empty string" if kind.min_length else "a string"
    if isinstance(kind, mi.CustomType) and kind.cls is Secret:
        return "a string"
    if isinstance(kind, mi.LiteralType):
        return "one of " + ", ".join(repr(value) for value in kind.values)
    if isinstance(kind, mi.EnumType):
        return "one of " + ", ".join(repr(member.value) for member in kind.cls)
    if isinstance(kind, mi.ListType | mi.VarTupleType | mi.SetType | mi.FrozenSetType):
        return f"a list of ({describe(kind.item_type)}): a TOML array, or comma-separated in the environment"
    return f"a value of type {type(kind).__name__.removesuffix('Type').lower()}"


def _is_sequence(field_type: mi.Type) -> bool:
    kind = _unwrap(field_type)
    if isinstance(kind, mi.UnionType):
        return any(_is_sequence(t) for t in kind.types)
    return isinstance(kind, mi.ListType | mi.VarTupleType | mi.SetType | mi.FrozenSetType)


def _is_optional(field_type: mi.Type) -> bool:
    kind = _unwrap(field_type)
    return isinstance(kind, mi.UnionType) and any(isinstance(t, mi.NoneType) for t in kind.types)


def _holds_secret(field: mi.Field) -> bool:
    kind = _unwrap(field.type)
    types = kind.types if isinstance(kind, mi.UnionType) else (kind,)
    return is_secret_name(field.name) or any(isinstance(t, mi.CustomType) and t.cls is Secret for t in types)


def _decode_custom(kind: type[Any], value: Any) -> Any:
    if kind is Secret:
        if isinstance(value, Secret):
            return value
        if isinstance(value, str):
            return Secret(value)
        raise TypeError("expected a string")
    raise NotImplementedError(f"cannot read a {kind.__name__} from a setting")


def _from_environment(raw: str, field: mi.Field) -> Any:
    """A variable's text as the value to convert: empty is none for an optional field; a list
    is JSON (``["a", "b"]``) or comma-separated."""
    if raw == "" and _is_optional(field.type):
        return None
    if _is_sequence(field.type):
        stripped = raw.strip()
        if stripped.startswith("["):
            try:
                return json.loads(stripped)
            except ValueError:
                return raw
        return [item.strip() for item in raw.split(",") if item.strip()]
    return raw


def _environment_text(value: Any) -> str:
    """How ``section_environ`` writes a value: the inverse of ``_from_environment``."""
    if value is None:
        return ""
    if isinstance(value, Secret):
        return value.reveal()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, list | tuple | set | frozenset):
        return json.dumps([_json_ready(item) for item in value])
    return str(value) if not isinstance(value, float) else repr(value)


def _json_ready(value: Any) -> Any:
    return value.reveal() if isinstance(value, Secret) else msgspec.to_builtins(value)


class _Raw(msgspec.Struct):
    """A value before conversion, and where it came from."""

    value: Any
    source: str
    from_environment: bool = False


# -- reading a section -----------------------------------------------------------------------


def _env_name(section: str, key: str) -> str:
    return f"{ENV_PREFIX}{section.upper()}_{key.upper()}"


class _Reader:
    """Collects the raw values of sections and every problem met on the way."""

    def __init__(self, file: Path | None, table: Mapping[str, Any], environ: Mapping[str, str]) -> None:
        self.file = file
        self.table = table
        self.environ = environ
        self.problems: list[ConfigProblem] = []

    def problem(self, key: str, source: str, problem: str) -> None:
        self.problems.append(ConfigProblem(key, source, problem))

    def raw_section(
        self, section: str, fields: list[mi.Field], flags: Mapping[str, Any] | None = None
    ) -> dict[str, _Raw]:
        """The given values of ``section``'s keys: the file's, overridden by the environment's,
        overridden by ``flags`` (key to (value, flag)); unknown keys are problems."""
        names = {field.name for field in fields}
        raw: dict[str, _Raw] = {}
        table = self.table.get(section, {})
        if not isinstance(table, dict):
            self.problem(
                section, str(self.file), f"[{section}] must be a table, not a {type(table).__name__}"
            )
            table = {}
        for key, value in table.items():
            if key in names:
                raw[key] = _Raw(value, str(self.file))
            else:
                self.problem(
                    f"{section}.{key}",
                    str(self.file),
                    f"unknown key; [{section}] has {', '.join(sorted(names))}",
                )
        prefix = f"{ENV_PREFIX}{section.upper()}_"
        known = {_env_name(section, name): name for name in names}
        for variable in sorted(self.environ):
            if not variable.startswith(prefix) or variable in RESERVED_ENVIRONMENT:
                continue
            name = variable.removesuffix(FILE_SUFFIX) if variable.endswith(FILE_SUFFIX) else variable
            if variable not in known and name not in known:
                self.problem(
                    f"{section}.{variable[len(prefix) :].lower()}",
                    variable,
                    f"unknown setting; [{section}] has {', '.join(sorted(names))} "
                    f"({prefix}<KEY> or {prefix}<KEY>{FILE_SUFFIX})",
                )
        for variable, key in known.items():
            from_file = self.environ.get(variable + FILE_SUFFIX)
            direct = self.environ.get(variable)
            if from_file is not None and direct is not None:
                self.problem(
                    f"{section}.{key}",
                    variable,
                    f"both {variable} and {variable}{FILE_SUFFIX} are set: keep one",
                )
            elif direct is not None:
                raw[key] = _Raw(direct, variable, from_environment=True)
            elif from_file is not None:
                source = f"{variable}{FILE_SUFFIX}={from_file}"
                try:
                    text = Path(from_file).read_text(encoding="utf-8")
                except (OSError, UnicodeDecodeError) as error:
                    reason = (
                        error.strerror
                        if isinstance(error, OSError) and error.strerror
                        else type(error).__name__
                    )
                    self.problem(f"{section}.{key}", source, f"cannot read the file: {reason}")
                    continue
                raw[key] = _Raw(text.rstrip("\r\n"), source, from_environment=True)
        for key, (value, flag) in (flags or {}).items():
            raw[key] = _Raw(value, flag, from_environment=isinstance(value, str))
        return raw

    def convert(self, section: str, kind: type[T], fields: list[mi.Field], raw: dict[str, _Raw]) -> T | None:
        """``raw`` as a ``kind`` (defaults for what is not given), or None after recording why not."""
        values: dict[str, Any] = {}
        failed = False
        by_name = {field.name: field for field in fields}
        annotations = typing.get_type_hints(kind, include_extras=True)
        for key, given in raw.items():
            field = by_name[key]
            value = _from_environment(given.value, field) if given.from_environment else given.value
            try:
                values[key] = msgspec.convert(
                    value, annotations[key], strict=not given.from_environment, dec_hook=_decode_custom
                )
            except (msgspec.ValidationError, TypeError, ValueError):
                shown = MASK if _holds_secret(field) else repr(value)
                self.problem(f"{section}.{key}", given.source, f"must be {describe(field.type)}, not {shown}")
                failed = True
        missing = [field.name for field in fields if field.required and field.name not in values]
        for name in missing:
            self.problem(
                f"{section}.{name}",
                "missing",
                f"required: set it in [{section}] or {_env_name(section, name)}",
            )
        if failed or missing:
            return None
        try:
            return msgspec.convert(values, kind, strict=False, dec_hook=_decode_custom)
        except (msgspec.ValidationError, TypeError, ValueError) as error:
            message = str(error)
            key = next((name for name in by_name if message.startswith((f"{name}: ", f"{name}="))), "")
            message = message.removeprefix(f"{key}: ") if key else message
            sources = sorted({given.source for given in raw.values()}) or ["default"]
            source = raw[key].source if key in raw else ", ".join(sources)
            self.problem(f"{section}.{key}" if key else section, source, message)
            return None


# -- the settings object -----------------------------------------------------------------------


class Settings:
    """The effective settings of a node: defaults < TOML file < ``GARRISON_*`` environment < flags.

    Build it with :meth:`load`. The core sections are attributes (``settings.node.name``,
    ``settings.journal.url``, a :class:`Secret`); an application reads its own section with
    :meth:`section`. A spec factory that takes one argument gets the settings from
    ``garrison run``::

        def root_spec(settings: Settings) -> SupervisorSpec:
            config = settings.section("order_routing", NodeConfig)
            return build_spec(config)

    >>> settings = Settings.load(environ={"GARRISON_NODE_NAME": "router-1"})
    >>> settings.node.name, settings.source("node.name")
    ('router-1', 'GARRISON_NODE_NAME')
    """

    node: NodeSettings
    journal: JournalSettings
    metrics: MetricsSettings
    log: LogSettings
    heart: HeartSettings

    def __init__(
        self,
        sections: dict[str, msgspec.Struct],
        entries: dict[str, Setting],
        reader: _Reader,
    ) -> None:
        self.node = sections["node"]  # type: ignore[assignment]
        self.journal = sections["journal"]  # type: ignore[assignment]
        self.metrics = sections["metrics"]  # type: ignore[assignment]
        self.log = sections["log"]  # type: ignore[assignment]
        self.heart = sections["heart"]  # type: ignore[assignment]
        self.file = reader.file
        """The config file read, or None."""
        self._entries = entries
        self._reader = reader
        self._read_sections: dict[str, Any] = {}

    @classmethod
    def load(
        cls,
        file: str | os.PathLike[str] | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        flags: Mapping[str, tuple[Any, str]] | None = None,
    ) -> Settings:
        """Read the settings: defaults, then ``file`` (TOML), then ``environ`` (default:
        ``os.environ``), then ``flags`` (``{"node.name": ("router-1", "--name")}``: key to value
        and the flag that gave it; a text value is read as a variable's would be).

        Raises:
            ConfigError: listing every unknown key and bad value, each with its source (the
                file, the variable, the flag), and an unreadable or undecodable file.
        """
        path = None if file is None else Path(file)
        table: dict[str, Any] = {}
        problems: list[ConfigProblem] = []
        if path is not None:
            try:
                with path.open("rb") as opened:
                    table = tomllib.load(opened)
            except OSError as error:
                problems.append(
                    ConfigProblem("--config", str(path), f"cannot read the file: {error.strerror}")
                )
            except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
                problems.append(ConfigProblem("--config", str(path), f"not valid TOML: {error}"))
        reader = _Reader(path, table, os.environ if environ is None else environ)
        reader.problems.extend(problems)
        for key, value in table.items():
            if not isinstance(value, dict):
                reader.problem(
                    key, str(path), "unknown key at the top level: every setting belongs to a [section]"
                )
        flags_by_section: dict[str, dict[str, tuple[Any, str]]] = {}
        for key, given in (flags or {}).items():
            section, _, name = key.partition(".")
            flags_by_section.setdefault(section, {})[name] = given
        sections: dict[str, msgspec.Struct] = {}
        entries: dict[str, Setting] = {}
        for section, kind in CORE_SECTIONS.items():
            fields = _fields(kind)
            raw = reader.raw_section(section, fields, flags_by_section.get(section))
            value = reader.convert(section, kind, fields, raw)
            sections[section] = value if value is not None else kind()
            entries.update(_entries(section, fields, sections[section], raw))
        if reader.problems:
            raise ConfigError(reader.problems)
        return cls(sections, entries, reader)

    def section(self, name: str, kind: type[T]) -> T:
        """The application's section ``[name]`` as a ``kind`` (a msgspec Struct or a dataclass):
        the file's table, overridden by ``GARRISON_<NAME>_<KEY>`` (or ``..._FILE``) variables;
        defaults for the rest. Reading a section twice gives the same value.

        Raises:
            ConfigError: an unknown key (in the file or under the section's variable prefix), a
                bad value, a required key missing, or the type's own validation refusing it.
            InvalidConfig: ``name`` is a core section or not a lowercase identifier.
        """
        from garrison._errors import InvalidConfig

        if name in self._read_sections:
            return self._read_sections[name]  # type: ignore[no-any-return]
        if not _SECTION_NAME.match(name) or name in CORE_SECTIONS:
            raise InvalidConfig(
                "section", name, f"a lowercase identifier other than {', '.join(CORE_SECTIONS)}"
            )
        fields = _fields(kind)
        reader = _Reader(self._reader.file, self._reader.table, self._reader.environ)
        raw = reader.raw_section(name, fields)
        value = reader.convert(name, kind, fields, raw)
        if reader.problems or value is None:
            raise ConfigError(reader.problems)
        self._entries.update(_entries(name, fields, value, raw))
        self._read_sections[name] = value
        return value

    def source(self, key: str) -> str:
        """Where ``key``'s value came from (see :class:`Setting`); KeyError for a key not read."""
        return self._entries[key].source

    def entries(self) -> list[Setting]:
        """Every setting read so far (the core sections, then each section read), in order."""
        return list(self._entries.values())

    def unread_sections(self) -> list[str]:
        """Tables of the config file that are neither a core section nor read by ``section``."""
        return [
            name
            for name, value in self._reader.table.items()
            if isinstance(value, dict) and name not in CORE_SECTIONS and name not in self._read_sections
        ]

    def check_sections_read(self) -> None:
        """Raise ConfigError for every table of the file nothing read: a misspelt section, or
        one for an application that is not running. ``garrison run`` calls it once the spec
        factory has run."""
        unread = self.unread_sections()
        if unread:
            raise ConfigError(
                [
                    ConfigProblem(
                        name,
                        str(self.file),
                        f"unknown section [{name}]: neither garrison's ({', '.join(CORE_SECTIONS)}) "
                        "nor read by the spec factory (settings.section)",
                    )
                    for name in unread
                ]
            )

    def secret_texts(self) -> list[str]:
        """The texts no log line may show: every secret setting's value (a URL's password)."""
        texts: list[str] = []
        for entry in self._entries.values():
            if entry.value is None or not entry.secret or _is_plain_path(entry.key, entry.value):
                continue
            value = entry.value.reveal() if isinstance(entry.value, Secret) else str(entry.value)
            texts += secret_texts(value)
        return texts

    def __iter__(self) -> Iterator[Setting]:
        return iter(self.entries())

    def __repr__(self) -> str:
        return f"<Settings {self.file or 'without a file'}: {len(self._entries)} keys>"


def _entries(section: str, fields: list[mi.Field], value: Any, raw: Mapping[str, _Raw]) -> dict[str, Setting]:
    return {
        f"{section}.{field.name}": Setting(
            f"{section}.{field.name}",
            getattr(value, field.name),
            raw[field.name].source if field.name in raw else "default",
            _holds_secret(field),
        )
        for field in fields
    }


def section_environ(name: str, value: Any) -> dict[str, str]:
    """The environment that gives ``Settings.section(name, type(value))`` this ``value``:
    ``GARRISON_<NAME>_<KEY>`` per field (secrets revealed: pass the result only to a child
    process's environment, never to its argv). Lists are JSON, none is empty.

    >>> section_environ("metrics", MetricsSettings(port=9464))
    {'GARRISON_METRICS_PORT': '9464', 'GARRISON_METRICS_HOST': '127.0.0.1'}
    """
    return {
        _env_name(name, field.name): _environment_text(getattr(value, field.name))
        for field in _fields(type(value))
    }


# -- the reference table of docs/operations.md -----------------------------------------------------


def _default_text(field: mi.Field) -> str:
    default = field.default
    if field.required:
        return "required"
    if default is None:
        return "none"
    if isinstance(default, bool):
        return "true" if default else "false"
    if isinstance(default, str):
        return f'"{default}"'
    return f"{default:g}" if isinstance(default, float) else str(default)


def reference_table() -> str:
    """The Markdown table of every core setting (key, environment variable, flag, default,
    meaning): docs/operations.md holds it, and a test checks it matches."""
    lines = [
        "| Key | Environment | Flag | Default | Meaning |",
        "|---|---|---|---|---|",
    ]
    for section, kind in CORE_SECTIONS.items():
        for field in _fields(kind):
            flag = _flag(field)
            secret = " **secret**" if _holds_secret(field) else ""
            lines.append(
                f"| `{section}.{field.name}` | `{_env_name(section, field.name)}` "
                f"| {f'`{flag}`' if flag else ''} | {_default_text(field)} "
                f"| {_description(field)}; {describe(field.type)}{secret} |"
            )
    return "\n".join(lines) + "\n"


def factory_takes_settings(factory: Any) -> bool:
    """Whether a spec factory wants the settings: it has one required positional parameter."""
    try:
        signature = pyinspect.signature(factory)
    except (TypeError, ValueError):
        return False
    required = [
        parameter
        for parameter in signature.parameters.values()
        if parameter.default is parameter.empty
        and parameter.kind in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD)
    ]
    return len(required) == 1
