"""RedisConnection: a password and TLS per config, on real redis-servers of the test's own.

A server with ``requirepass`` takes the journal with the right password and
refuses it, as garrison's own InvalidConfig naming the setting, with a wrong
one or none. A server with ``--tls-port`` (a CA, server and client
certificates made here with ``openssl``) takes the journal with ``tls`` and
the CA, and refuses a CA that did not sign its certificate. The node config
(``[journal]``, ``GARRISON_JOURNAL_PASSWORD_FILE``) reaches the connection.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from garrison import InvalidConfig
from garrison._errors import ConfigError
from garrison._secret import Secret
from garrison._settings import JournalSettings, Settings
from garrison.cli._run import build_journal
from garrison.persistence import RedisConnection, RedisJournal

from ._server import free_port
from .conftest import StartRedis

PASSWORD = "correct horse battery staple"


# -- bad input ---------------------------------------------------------------------------------


def test_bad_connection_settings_are_refused_naming_the_field(tmp_path: Path) -> None:
    pem = tmp_path / "ca.pem"
    pem.write_text("not read here")
    cases: list[tuple[dict[str, object], str]] = [
        ({"url": "http://db:6379"}, "url"),
        ({"url": "redis://db:6379/0", "tls_ca": str(tmp_path / "missing.pem"), "tls": True}, "tls_ca"),
        ({"url": "redis://db:6379/0", "tls_ca": str(pem)}, "tls_ca"),  # a CA file without TLS
        ({"url": "rediss://db:6379/0", "tls_cert": str(pem)}, "tls_key"),  # a certificate without its key
        ({"url": "redis://db:6379/0", "tls": "yes"}, "tls"),
        ({"url": "unix:///run/redis.sock", "cluster": True}, "cluster"),
        ({"url": "redis://db:6379/0", "password": 1234}, "password"),
    ]
    for options, field in cases:
        with pytest.raises(InvalidConfig) as caught:
            RedisConnection(**options)  # type: ignore[arg-type]
        assert caught.value.field == field, options


def test_the_password_never_shows_and_a_rediss_url_means_tls() -> None:
    connection = RedisConnection(url="rediss://db:6379/0", password=PASSWORD)

    assert connection.password == Secret(PASSWORD)
    assert connection.uses_tls
    assert PASSWORD not in repr(connection)
    assert PASSWORD not in repr(RedisJournal(connection))


def test_a_cluster_journal_refuses_confirm_aof_and_a_namespace_with_braces() -> None:
    cluster = RedisConnection(url="redis://db:6379/0", cluster=True)
    with pytest.raises(InvalidConfig) as caught:
        RedisJournal(cluster, confirm_aof=True)
    assert caught.value.field == "confirm_aof"
    with pytest.raises(InvalidConfig) as caught:
        RedisJournal(cluster, namespace="app{1}")
    assert caught.value.field == "namespace"


# -- the node config ----------------------------------------------------------------------------


def test_the_journal_section_reaches_the_connection_with_the_password_from_a_file(tmp_path: Path) -> None:
    secret = tmp_path / "redis-password"
    secret.write_text(PASSWORD + "\n")
    ca = tmp_path / "ca.pem"
    ca.write_text("-")
    settings = Settings.load(
        environ={
            "GARRISON_JOURNAL_URL": "redis://db:6379/0",
            "GARRISON_JOURNAL_PASSWORD_FILE": str(secret),
            "GARRISON_JOURNAL_TLS": "true",
            "GARRISON_JOURNAL_TLS_CA": str(ca),
            "GARRISON_JOURNAL_CLUSTER": "true",
        }
    )

    journal = build_journal(settings.journal)

    assert isinstance(journal, RedisJournal)
    assert journal.connection == RedisConnection(
        url="redis://db:6379/0", password=PASSWORD, tls=True, tls_ca=str(ca), cluster=True
    )
    assert PASSWORD not in str(list(settings))


def test_redis_settings_with_a_sqlite_journal_are_a_config_error(tmp_path: Path) -> None:
    settings = JournalSettings(url=Secret(str(tmp_path / "j.db")), password=Secret(PASSWORD), cluster=True)

    with pytest.raises(ConfigError) as caught:
        build_journal(settings)

    assert {problem.key for problem in caught.value.problems} == {"journal.password", "journal.cluster"}


def test_a_bad_redis_setting_is_a_config_error_naming_the_key() -> None:
    with pytest.raises(ConfigError) as caught:
        build_journal(JournalSettings(url=Secret("redis://db:6379/0"), tls_ca="/nowhere/ca.pem", tls=True))

    assert [problem.key for problem in caught.value.problems] == ["journal.tls_ca"]


# -- a password ---------------------------------------------------------------------------------


async def test_a_server_with_a_password_takes_the_right_one_and_names_the_setting_for_a_wrong_one(
    start_redis: StartRedis,
) -> None:
    server = await start_redis(password=PASSWORD)
    url = f"redis://127.0.0.1:{server.port}/0"

    async with RedisJournal(RedisConnection(url=url, password=PASSWORD)) as journal:
        assert await journal.append("orders", [b"o1"], 0) == 1

    for wrong in ("hunter2", None):
        with pytest.raises(InvalidConfig) as caught:
            await RedisJournal(RedisConnection(url=url, password=wrong)).open()
        assert caught.value.field == "password"
        assert "journal.password" in str(caught.value)
        assert "hunter2" not in str(caught.value)
        assert caught.value.value == ("***" if wrong else None)


# -- TLS ----------------------------------------------------------------------------------------


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


def _make_ca(folder: Path, name: str) -> None:
    _openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", f"{name}.key", "-out", f"{name}.crt", "-days", "1", "-subj", f"/CN={name}",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=folder,
    )  # fmt: skip


def _make_signed(folder: Path, name: str, ca: str) -> None:
    (folder / f"{name}.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    _openssl(
        "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", "/CN=127.0.0.1",
        cwd=folder,
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
        "-CAcreateserial", "-out", f"{name}.crt", "-days", "1", "-extfile", f"{name}.ext",
        cwd=folder,
    )  # fmt: skip


@pytest.fixture
def certificates(tmp_path: Path) -> Path:
    """A folder with a CA (``ca``), a server and a client certificate it signed, and another
    CA (``stranger``) that signed neither; skipped without openssl (failed under CI)."""
    if shutil.which("openssl") is None:
        import os

        if os.environ.get("CI"):
            pytest.fail("CI is set but openssl is missing: the TLS tests make their certificates with it")
        pytest.skip("no openssl to make the TLS test certificates with")
    folder = tmp_path / "tls"
    folder.mkdir()
    _make_ca(folder, "ca")
    _make_ca(folder, "stranger")
    _make_signed(folder, "server", "ca")
    _make_signed(folder, "client", "ca")
    return folder


async def test_a_tls_server_takes_the_journal_with_its_ca_and_client_certificate(
    start_redis: StartRedis, certificates: Path
) -> None:
    tls_port = free_port()
    await start_redis(
        extra=(
            "--tls-port", str(tls_port),
            "--tls-cert-file", str(certificates / "server.crt"),
            "--tls-key-file", str(certificates / "server.key"),
            "--tls-ca-cert-file", str(certificates / "ca.crt"),
            "--tls-auth-clients", "yes",
        )
    )  # fmt: skip
    url = f"redis://127.0.0.1:{tls_port}/0"
    connection = RedisConnection(
        url=url,
        tls=True,
        tls_ca=str(certificates / "ca.crt"),
        tls_cert=str(certificates / "client.crt"),
        tls_key=str(certificates / "client.key"),
    )

    async with RedisJournal(connection, namespace="tls") as journal:
        assert await journal.append("orders", [b"o1", b"o2"], 0) == 2
    async with RedisJournal(connection, namespace="tls") as journal:
        assert [payload async for _, payload in journal.read("orders")] == [b"o1", b"o2"]

    stranger = RedisConnection(
        url=url,
        tls=True,
        tls_ca=str(certificates / "stranger.crt"),
        tls_cert=str(certificates / "client.crt"),
        tls_key=str(certificates / "client.key"),
    )
    with pytest.raises(InvalidConfig) as caught:
        await RedisJournal(stranger, namespace="tls").open()
    assert caught.value.field == "tls_ca"
    assert "journal.tls_ca" in str(caught.value)


async def test_garrison_journal_takes_the_password_from_the_node_config_and_names_it_when_refused(
    start_redis: StartRedis,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import asyncio

    from garrison import ExitCode
    from garrison.cli import main

    server = await start_redis(password=PASSWORD)
    secret = tmp_path / "password"
    config = tmp_path / "node.toml"
    config.write_text(f'[journal]\nurl = "redis://127.0.0.1:{server.port}/0"\n')
    monkeypatch.delenv("GARRISON_JOURNAL_URL", raising=False)
    monkeypatch.delenv("GARRISON_JOURNAL_URL_FILE", raising=False)
    monkeypatch.setenv("GARRISON_JOURNAL_PASSWORD_FILE", str(secret))
    command = ["journal", "list", "-", "--config", str(config)]

    secret.write_text(PASSWORD)
    assert await asyncio.to_thread(main, command) == 0  # the command runs a loop of its own
    secret.write_text("hunter2")
    assert await asyncio.to_thread(main, command) == ExitCode.USAGE
    error = capsys.readouterr().err
    assert "journal.password" in error
    assert "hunter2" not in error
