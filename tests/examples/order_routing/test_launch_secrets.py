"""The example's launcher passes the journal URL (a Redis password) to its node processes by
environment, never in argv: nothing in ps or /proc/PID/cmdline of heart or the node shows it, nor
the node's log, while the node places orders on that journal."""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from pathlib import Path

import msgspec

from examples.order_routing.broker import load_orders
from examples.order_routing.harness.broker_process import BrokerProcess, broker_arguments
from examples.order_routing.harness.entry import HarnessConfig
from examples.order_routing.harness.launch import (
    HARNESSED_SINGLE_NODE,
    JOURNAL_ENV,
    HeartOptions,
    node_command,
    node_env,
)
from examples.order_routing.harness.processes import node_pid, stop_group
from examples.order_routing.node.config import NodeConfig
from garrison import Settings
from tests.persistence.redis._server import RedisServer, redis_server_binary

REPO = Path(__file__).resolve().parents[3]


def proc_file(pid: int, name: str) -> bytes:
    """``/proc/PID/NAME``: a process's argv (``cmdline``) or environment, NUL-separated."""
    return Path(f"/proc/{pid}/{name}").read_bytes()


def test_node_env_carries_the_config_as_its_section_and_the_journal_as_a_variable() -> None:
    config = NodeConfig(symbols=("ACME", "GLOBEX"), tick_rate=50.0, broker_port=7400)
    env = node_env(config, journal="redis://:pw@db:6379/0", base={"GARRISON_JOURNAL_URL_FILE": "/x"})

    settings = Settings.load(environ=env)
    assert settings.section("order_routing", NodeConfig) == config
    assert settings.journal.url is not None and settings.journal.url.reveal() == "redis://:pw@db:6379/0"
    assert "pw" not in " ".join(node_command(HARNESSED_SINGLE_NODE, name="router-1"))


async def test_a_node_on_a_journal_with_a_password_never_shows_it_in_argv_or_its_log(tmp_path: Path) -> None:
    password = f"pw-{uuid.uuid4().hex}"
    redis = await RedisServer(redis_server_binary(), tmp_path / "redis", password=password).start()
    parser = argparse.ArgumentParser()
    broker_arguments(parser)
    control = tmp_path / "control"
    control.mkdir()
    log_path = tmp_path / "node.log"
    try:
        async with BrokerProcess.start(parser.parse_args([]), tmp_path / "broker.db") as broker:
            config = NodeConfig(broker_port=broker.port, symbols=("ACME",), strategies=("momentum",))
            env = node_env(config, HarnessConfig(control_dir=str(control)), journal=redis.url)
            with log_path.open("wb") as log:
                heart = await asyncio.create_subprocess_exec(
                    *node_command(HARNESSED_SINGLE_NODE, name="router-1", log_level="INFO",
                                  heart=HeartOptions(backoff=0.1, max_backoff=0.5)),
                    cwd=REPO, env=env, stdout=log, stderr=log, start_new_session=True,
                )  # fmt: skip
            try:
                deadline = time.monotonic() + 30
                pid = None
                while pid is None or not load_orders(broker.store):
                    assert time.monotonic() < deadline, log_path.read_text()
                    assert heart.returncode is None, log_path.read_text()
                    pid = node_pid(control, heart.pid)
                    await asyncio.sleep(0.2)
                command_lines = [proc_file(p, "cmdline") for p in (heart.pid, pid)]
                node_environment = proc_file(pid, "environ")
            finally:
                await stop_group(heart, 20.0)
    finally:
        await redis.stop()

    assert all(b"garrison.cli\0run\0" in line for line in command_lines)
    for line in command_lines:
        assert password.encode() not in line
    assert f"{JOURNAL_ENV}={redis.url}".encode() in node_environment.split(b"\0")
    log_text = log_path.read_text()
    assert "node router-1 running" in log_text and password not in log_text
    assert msgspec.json.encode(config).decode() not in " ".join(map(bytes.decode, command_lines))
