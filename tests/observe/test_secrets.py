"""A node run with a Redis password never shows it: not in a log line, not on /tree, /metrics or
/healthz, not in any error, not in the argv of heart's child; and `garrison config show` masks it.

Each test runs a real redis-server that requires a password of the test's own, and scans every
text the run produced for it.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from garrison import ExitCode, InvalidConfig, JournalClosed, Secret
from garrison.persistence import RedisJournal
from tests.observe._nodes import REPO, RUNNING, garrison
from tests.persistence.redis._server import RedisServer, free_port, redis_server_binary

METRICS = re.compile(r"metrics on (http://[\d.]+:\d+)/metrics")


@pytest.fixture
async def password_redis(tmp_path: Path) -> AsyncIterator[RedisServer]:
    """A private redis-server that requires a password no other text of the run could contain."""
    server = RedisServer(redis_server_binary(), tmp_path / "redis", password=f"pw-{uuid.uuid4().hex}")
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


def environ_of(pid: int) -> str:
    return Path(f"/proc/{pid}/environ").read_bytes().replace(b"\0", b"\n").decode(errors="replace")


def run_garrison(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "garrison.cli", *args],
        cwd=REPO,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.parametrize("mode", ["plain", "heart", "heart-given-a-flag"])
async def test_a_node_with_a_redis_password_never_shows_it(
    password_redis: RedisServer, tmp_path: Path, mode: str
) -> None:
    """``heart-given-a-flag``: the operator put the URL in heart's own argv (warned against);
    heart still passes it to the node by environment, never in the node's argv."""
    password = password_redis.password
    assert password is not None
    heart = mode != "plain"
    secret_file = tmp_path / "journal-url"
    secret_file.write_text(password_redis.url + "\n")
    args = ["run", "tests.observe._nodes:with_journal_talk", "--metrics-port", "0", "--log-level", "debug"]
    if heart:
        args.append("--heart")
    if mode == "heart-given-a-flag":
        args += ["--journal", password_redis.url]
        env = {}
    else:
        env = {"GARRISON_JOURNAL_URL_FILE": str(secret_file)}
    texts: list[str] = []
    with garrison(tmp_path, *args, env=env) as run:
        [url] = await asyncio.to_thread(run.wait_for, METRICS)
        [node_pid] = [int(pid) for pid in await asyncio.to_thread(run.wait_for, RUNNING)]
        assert (node_pid != run.process.pid) == heart
        for path in ("/tree", "/metrics", "/healthz"):
            status, body = await asyncio.to_thread(get, url + path)
            assert status == 200, (path, body)
            texts.append(body)
        assert '"/root/talker"' in texts[0]
        texts.append(cmdline(node_pid))
        if mode != "heart-given-a-flag":
            texts.append(cmdline(run.process.pid))
        if heart:  # the child got the secret by environment: only its own user can read that
            assert f"GARRISON_JOURNAL_URL={password_redis.url}" in environ_of(node_pid)
        run.process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(run.wait) == 0, run.text()
        log = run.text()
    texts.append(log)

    # The careless actor logged the raw URL: the line is there, its password masked.
    assert f"my journal's raw url is redis://:***@127.0.0.1:{password_redis.port}/0" in log
    assert f"my journal is RedisJournal('redis://:***@127.0.0.1:{password_redis.port}/0', open)" in log
    if mode == "heart-given-a-flag":
        assert "--journal carries a secret" in log
    for text in texts:
        assert password not in text


async def test_errors_of_a_run_with_a_password_never_show_it(
    password_redis: RedisServer, tmp_path: Path
) -> None:
    password = password_redis.password
    assert password is not None
    wrong = password_redis.url.replace(password, f"wrong-{uuid.uuid4().hex}")
    down = f"redis://:{password}@127.0.0.1:{free_port()}/0"
    outputs: list[str] = []

    refused = await asyncio.to_thread(
        run_garrison, "run", "tests.observe._nodes:calm", env={"GARRISON_JOURNAL_URL": wrong}
    )
    unreachable = await asyncio.to_thread(
        run_garrison, "run", "tests.observe._nodes:calm", env={"GARRISON_JOURNAL_URL": down}
    )
    for result in (refused, unreachable):
        assert result.returncode != 0
        assert result.stderr.strip().splitlines()[-1].startswith("garrison: cannot start node garrison")
        outputs.append(result.stdout + result.stderr)
    assert "redis://:***@127.0.0.1:" in unreachable.stderr

    # Given as a flag it works, with a warning; the log masks it even so.
    flagged = await asyncio.to_thread(
        run_garrison, "run", "tests.observe._nodes:calm", "--journal", down, env={}
    )
    assert "--journal carries a secret" in flagged.stderr
    assert "set GARRISON_JOURNAL_URL or GARRISON_JOURNAL_URL_FILE instead" in flagged.stderr
    outputs.append(flagged.stdout + flagged.stderr)

    # The journal's own errors and repr, in a program.
    journal = RedisJournal(down)
    with pytest.raises(ConnectionError) as unreached:
        await journal.open()
    with pytest.raises(JournalClosed) as closed:
        journal.client()
    with pytest.raises(InvalidConfig) as invalid:
        RedisJournal(f"http://:{password}@127.0.0.1/0")
    outputs += [
        str(unreached.value),
        repr(unreached.value),
        str(closed.value),
        repr(journal),
        str(invalid.value),
    ]
    assert "redis://:***@127.0.0.1" in str(unreached.value)
    wrong_password = wrong.split("@")[0].removeprefix("redis://:")
    for text in outputs:
        assert password not in text
        assert wrong_password not in text


async def test_config_show_masks_the_password_in_text_and_json(
    password_redis: RedisServer, tmp_path: Path
) -> None:
    password = password_redis.password
    assert password is not None
    env = {"GARRISON_JOURNAL_URL": password_redis.url}

    text = await asyncio.to_thread(run_garrison, "config", "show", env=env)
    as_json = await asyncio.to_thread(run_garrison, "config", "show", "--json", env=env)

    assert text.returncode == as_json.returncode == 0, text.stderr + as_json.stderr
    shown = f"redis://:***@127.0.0.1:{password_redis.port}/0"
    assert re.search(rf'^url\s+= "{re.escape(shown)}"\s+# GARRISON_JOURNAL_URL$', text.stdout, re.M), (
        text.stdout
    )
    assert json.loads(as_json.stdout)["journal.url"] == {"value": shown, "source": "GARRISON_JOURNAL_URL"}
    for output in (text.stdout, text.stderr, as_json.stdout, as_json.stderr):
        assert password not in output


def test_a_secret_in_a_bad_config_is_never_in_the_error(tmp_path: Path) -> None:
    password = f"pw-{uuid.uuid4().hex}"
    config = tmp_path / "node.toml"
    config.write_text(f'[journal]\nurl = "ftp://:{password}@host/x"\n')

    result = run_garrison("run", "tests.observe._nodes:calm", "--config", str(config), env={})

    assert result.returncode == ExitCode.CONFIG
    assert "journal.url" in result.stderr and "unknown scheme 'ftp'" in result.stderr
    assert password not in result.stdout + result.stderr
    assert str(Secret(f"ftp://:{password}@host/x")) in result.stderr


async def test_the_journal_tools_take_the_journal_from_the_settings_to_keep_it_out_of_argv(
    password_redis: RedisServer, tmp_path: Path
) -> None:
    password = password_redis.password
    assert password is not None
    secret_file = tmp_path / "journal-url"
    secret_file.write_text(password_redis.url + "\n")
    env = {"GARRISON_JOURNAL_URL_FILE": str(secret_file)}

    listed = await asyncio.to_thread(run_garrison, "journal", "list", "-", env=env)
    verified = await asyncio.to_thread(run_garrison, "journal", "verify", "-", env=env)
    unset = await asyncio.to_thread(run_garrison, "journal", "list", "-", env={"GARRISON_JOURNAL_URL": ""})

    assert listed.returncode == 0, listed.stderr
    assert verified.returncode == 0 and "journal sound" in verified.stderr, verified.stderr
    assert unset.returncode == ExitCode.USAGE and "GARRISON_JOURNAL_URL" in unset.stderr
    for result in (listed, verified, unset):
        assert password not in result.stdout + result.stderr
