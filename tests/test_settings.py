"""Settings: defaults < TOML file < GARRISON_* environment < flags, each key with its source; every
unknown key and bad value one ConfigError naming the key and where it came from."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from garrison import (
    ConfigError,
    ExitCode,
    InvalidConfig,
    MetricsSettings,
    Secret,
    Settings,
    redact_url,
    section_environ,
)
from garrison._settings import RESERVED_ENVIRONMENT, reference_table
from garrison.observe._heart import HEART_FD_ENV, HEART_INTERVAL_ENV

DOCS = Path(__file__).resolve().parent.parent / "docs"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "node.toml"
    path.write_text(text)
    return path


class Desk(msgspec.Struct, frozen=True, kw_only=True):
    symbols: tuple[str, ...] = ("ACME",)
    tick_rate: float = 100.0
    seed: int = 7
    live: bool = False
    note: str | None = None
    api_token: str = ""

    def __post_init__(self) -> None:
        if self.tick_rate > 10_000:
            raise ValueError(f"tick_rate={self.tick_rate}: must be at most 10000")


@dataclasses.dataclass(frozen=True)
class Broker:
    host: str
    port: int = 7400


# -- precedence and sources ------------------------------------------------------------------


def test_each_source_overrides_the_one_before_it_key_by_key(tmp_path: Path) -> None:
    file = write(tmp_path, '[node]\nname = "from-file"\nstall_timeout = 3\n[metrics]\nport = 9000\n')
    environ = {"GARRISON_NODE_STALL_TIMEOUT": "4", "GARRISON_METRICS_PORT": "9001"}

    settings = Settings.load(file, environ=environ, flags={"metrics.port": ("9002", "--metrics-port")})

    assert settings.node.name == "from-file" and settings.source("node.name") == str(file)
    assert (
        settings.node.stall_timeout == 4.0
        and settings.source("node.stall_timeout") == "GARRISON_NODE_STALL_TIMEOUT"
    )
    assert settings.metrics.port == 9002 and settings.source("metrics.port") == "--metrics-port"
    assert settings.metrics.host == "127.0.0.1" and settings.source("metrics.host") == "default"


def test_a_value_can_come_from_a_file_named_by_a_file_variable(tmp_path: Path) -> None:
    secret = tmp_path / "journal-url"
    secret.write_text("redis://:hunter2@db:6379/0\n")

    settings = Settings.load(environ={"GARRISON_JOURNAL_URL_FILE": str(secret)})

    assert settings.journal.url == Secret("redis://:hunter2@db:6379/0")  # the newline dropped
    assert settings.source("journal.url") == f"GARRISON_JOURNAL_URL_FILE={secret}"
    assert settings.secret_texts() == ["hunter2"]


def test_levels_are_case_insensitive_and_bools_and_empty_values_read_from_the_environment() -> None:
    settings = Settings.load(
        environ={"GARRISON_LOG_LEVEL": "debug", "GARRISON_LOG_JSON": "TRUE", "GARRISON_HEART_STARTUP": ""}
    )
    assert (settings.log.level, settings.log.json, settings.heart.startup) == ("DEBUG", True, None)


def test_heart_variables_of_the_child_are_not_settings() -> None:
    assert {HEART_FD_ENV, HEART_INTERVAL_ENV} <= RESERVED_ENVIRONMENT
    Settings.load(environ={HEART_FD_ENV: "5", HEART_INTERVAL_ENV: "1.0", "GARRISON_REDIS_URL": "x"})


# -- errors ----------------------------------------------------------------------------------


def test_unknown_keys_and_bad_values_are_one_error_naming_every_key_and_its_source(tmp_path: Path) -> None:
    file = write(tmp_path, '[node]\nnmae = "x"\nstall_timeout = -1\n[log]\nlevel = "loud"\n')
    environ = {"GARRISON_HEART_TIMEOUT": "soon", "GARRISON_JOURNAL_URLS": "x"}

    with pytest.raises(ConfigError) as raised:
        Settings.load(file, environ=environ, flags={"metrics.port": ("http", "--metrics-port")})

    problems = {problem.key: problem.source for problem in raised.value.problems}
    assert problems == {
        "node.nmae": str(file),
        "node.stall_timeout": str(file),
        "log.level": str(file),
        "journal.urls": "GARRISON_JOURNAL_URLS",
        "heart.timeout": "GARRISON_HEART_TIMEOUT",
        "metrics.port": "--metrics-port",
    }
    message = str(raised.value)
    assert "node.nmae" in message
    keys = "crash_traceback_limit, crash_traceback_window, exit_on_stall, loop, name, stall_timeout"
    assert f"unknown key; [node] has {keys}" in message
    assert "heart.timeout (GARRISON_HEART_TIMEOUT): must be a number > 0, not 'soon'" in message
    assert isinstance(raised.value, ValueError)


def test_a_bad_secret_is_named_but_never_shown(tmp_path: Path) -> None:
    file = write(tmp_path, "[journal]\nurl = 12345678\n")
    with pytest.raises(ConfigError) as raised:
        Settings.load(file, environ={})
    assert raised.value.keys == ["journal.url"]
    assert "12345678" not in str(raised.value) and "not ***" in str(raised.value)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"[node\nname = 1", "not valid TOML"),
        (b'name = "top-level"\n', "unknown key at the top level"),
        (b"\xff\xfe", "not valid TOML"),
    ],
)
def test_a_file_that_is_not_settings_is_a_config_error(tmp_path: Path, content: bytes, problem: str) -> None:
    path = tmp_path / "node.toml"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=re.escape(problem)):
        Settings.load(path, environ={})


def test_a_missing_config_file_and_an_unreadable_secret_file_name_their_source(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        Settings.load(
            tmp_path / "missing.toml", environ={"GARRISON_JOURNAL_URL_FILE": str(tmp_path / "nope")}
        )
    assert [(problem.key, problem.source) for problem in raised.value.problems] == [
        ("--config", str(tmp_path / "missing.toml")),
        ("journal.url", f"GARRISON_JOURNAL_URL_FILE={tmp_path / 'nope'}"),
    ]
    assert all("cannot read the file" in problem.problem for problem in raised.value.problems)


def test_a_value_and_its_file_variable_together_are_refused() -> None:
    with pytest.raises(ConfigError, match="both GARRISON_NODE_NAME and GARRISON_NODE_NAME_FILE"):
        Settings.load(environ={"GARRISON_NODE_NAME": "a", "GARRISON_NODE_NAME_FILE": "/dev/null"})


def test_the_exit_code_of_a_configuration_error_is_78() -> None:
    assert ExitCode.CONFIG == 78


# -- application sections --------------------------------------------------------------------


def test_a_section_reads_the_file_then_its_variables_and_keeps_their_sources(tmp_path: Path) -> None:
    file = write(tmp_path, '[desk]\nsymbols = ["ACME", "GLOBEX"]\nseed = 1\n')
    environ = {"GARRISON_DESK_SEED": "2", "GARRISON_DESK_LIVE": "true", "GARRISON_DESK_NOTE": ""}
    settings = Settings.load(file, environ=environ)

    desk = settings.section("desk", Desk)

    assert desk == Desk(symbols=("ACME", "GLOBEX"), seed=2, live=True)
    assert settings.section("desk", Desk) is desk
    assert [settings.source(f"desk.{key}") for key in ("symbols", "seed", "tick_rate")] == [
        str(file),
        "GARRISON_DESK_SEED",
        "default",
    ]
    settings.check_sections_read()


@pytest.mark.parametrize("raw", ["ACME, GLOBEX", '["ACME", "GLOBEX"]'])
def test_a_list_in_the_environment_is_comma_separated_or_json(raw: str) -> None:
    desk = Settings.load(environ={"GARRISON_DESK_SYMBOLS": raw}).section("desk", Desk)
    assert desk.symbols == ("ACME", "GLOBEX")


def test_a_section_of_a_dataclass_with_a_required_key() -> None:
    settings = Settings.load(environ={"GARRISON_BROKER_HOST": "venue"})
    assert settings.section("broker", Broker) == Broker("venue")
    with pytest.raises(ConfigError) as raised:
        Settings.load(environ={}).section("broker", Broker)
    assert raised.value.keys == ["broker.host"]
    assert "GARRISON_BROKER_HOST" in str(raised.value)


def test_a_section_refuses_unknown_keys_bad_values_and_its_own_validation(tmp_path: Path) -> None:
    file = write(tmp_path, "[desk]\nseeds = 1\n")
    settings = Settings.load(file, environ={"GARRISON_DESK_TICK_RATE": "fast", "GARRISON_DESK_X": "1"})
    with pytest.raises(ConfigError) as raised:
        settings.section("desk", Desk)
    assert {(problem.key, problem.source) for problem in raised.value.problems} == {
        ("desk.seeds", str(file)),
        ("desk.x", "GARRISON_DESK_X"),
        ("desk.tick_rate", "GARRISON_DESK_TICK_RATE"),
    }

    too_fast = Settings.load(environ={"GARRISON_DESK_TICK_RATE": "20000"})
    with pytest.raises(ConfigError) as raised:
        too_fast.section("desk", Desk)
    [problem] = raised.value.problems
    assert (problem.key, problem.source) == ("desk.tick_rate", "GARRISON_DESK_TICK_RATE")
    assert "must be at most 10000" in problem.problem


def test_a_section_nobody_read_is_an_error_once_the_factory_ran(tmp_path: Path) -> None:
    settings = Settings.load(write(tmp_path, "[desk]\nseed = 1\n[dsek]\nseed = 2\n"), environ={})
    settings.section("desk", Desk)
    with pytest.raises(ConfigError) as raised:
        settings.check_sections_read()
    assert raised.value.keys == ["dsek"] and "unknown section [dsek]" in str(raised.value)


@pytest.mark.parametrize("name", ["node", "Desk", "1desk", ""])
def test_a_section_name_must_be_a_lowercase_identifier_of_the_application(name: str) -> None:
    with pytest.raises(InvalidConfig):
        Settings.load(environ={}).section(name, Desk)


def test_fields_named_like_secrets_are_masked_and_their_values_known() -> None:
    settings = Settings.load(environ={"GARRISON_DESK_API_TOKEN": "tok-123456"})
    settings.section("desk", Desk)
    [entry] = [entry for entry in settings.entries() if entry.key == "desk.api_token"]
    assert entry.secret and entry.shown() == "***"
    assert "tok-123456" in settings.secret_texts()


@given(
    symbols=st.lists(st.from_regex(r"[A-Z][A-Z0-9.-]{0,7}", fullmatch=True), min_size=1, max_size=4),
    tick_rate=st.floats(min_value=0.001, max_value=10_000, allow_nan=False),
    seed=st.integers(-(2**40), 2**40),
    live=st.booleans(),
    note=st.none()
    | st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1),
)
def test_section_environ_is_read_back_as_the_same_value(
    symbols: list[str], tick_rate: float, seed: int, live: bool, note: str | None
) -> None:
    desk = Desk(symbols=tuple(symbols), tick_rate=tick_rate, seed=seed, live=live, note=note)
    assert Settings.load(environ=section_environ("desk", desk)).section("desk", Desk) == desk


def test_section_environ_of_a_core_section() -> None:
    environ = section_environ("metrics", MetricsSettings(port=9464))
    assert environ == {"GARRISON_METRICS_PORT": "9464", "GARRISON_METRICS_HOST": "127.0.0.1"}
    assert Settings.load(environ=environ).metrics.port == 9464


# -- secrets ---------------------------------------------------------------------------------


def test_a_secret_shows_itself_masked_and_reveals_on_request() -> None:
    url = Secret("redis://user:hunter2@db:6379/0")
    for text in (str(url), repr(url), f"{url}", f"{[url]}"):
        assert "hunter2" not in text
    assert str(url) == "redis://user:***@db:6379/0"
    assert str(Secret("hunter2")) == "***"
    assert url.reveal() == "redis://user:hunter2@db:6379/0"
    assert url == Secret("redis://user:hunter2@db:6379/0") and hash(url) == hash(Secret(url.reveal()))
    with pytest.raises(InvalidConfig):
        Secret(42)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:p%40ss@db:6379/0", "redis://:***@db:6379/0"),
        ("redis://db:6379/0", "redis://db:6379/0"),
        ("rediss://db/0?password=pw&db=1", "rediss://db/0?password=***&db=1"),
        ("redis://db/0?api_token=pw", "redis://db/0?api_token=***"),
        ("redis://:pw@[::1]:6379/0", "redis://:***@[::1]:6379/0"),
        ("redis://:pw@db:notaport/0", "***"),
    ],
)
def test_redact_url_masks_passwords_and_secret_query_values(url: str, shown: str) -> None:
    assert redact_url(url) == shown


# -- the reference in the docs -----------------------------------------------------------------


def test_the_settings_reference_of_the_docs_is_the_one_the_types_give() -> None:
    page = (DOCS / "operations.md").read_text(encoding="utf-8")
    start = "<!-- settings reference: generated by scripts/config_reference.py -->\n"
    table = page.split(start, 1)[1].split("<!-- end of settings reference -->", 1)[0]
    assert table == reference_table(), "run: .venv/bin/python scripts/config_reference.py"


def _python_blocks(heading: str) -> list[str]:
    page = (DOCS / "operations.md").read_text(encoding="utf-8")
    section = page.split(heading, 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)


@pytest.mark.parametrize("heading", ["## Configuration: file, environment, flags", "## Secrets"])
def test_the_examples_of_the_configuration_docs_run(heading: str) -> None:
    blocks = _python_blocks(heading)
    assert blocks
    for block in blocks:
        exec(compile(block, f"operations.md {heading}", "exec"), {"__name__": "docs_example"})
