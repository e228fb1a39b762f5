"""loguru records carry the node name and actor path; importing garrison adds no sinks."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from typing import Any

from garrison import Actor, Node


class Chatty(Actor):
    async def on_receive(self, message: Any) -> Any:
        self.ctx.logger.info("handling {message}", message=message)


async def test_actor_log_records_are_bound_with_node_name_and_actor_path(
    node: Node, log_records: list[dict[str, Any]]
) -> None:
    ref = await node.spawn(Chatty, name="chatty")
    await ref.ask("hello", timeout=1.0)
    records = [r for r in log_records if r["message"] == "handling hello"]
    assert len(records) == 1
    assert records[0]["extra"]["node"] == "t"
    assert records[0]["extra"]["actor"] == "/chatty"


async def test_node_log_records_are_bound_with_the_node_name(
    node: Node, log_records: list[dict[str, Any]]
) -> None:
    ref = await node.spawn(Chatty, name="chatty")
    await node.stop(ref)
    stopped = [r for r in log_records if "actor /chatty stopped" in r["message"]]
    assert stopped and stopped[0]["extra"]["node"] == "t"


def test_importing_garrison_configures_no_loguru_sinks() -> None:
    script = textwrap.dedent(
        """
        from loguru import logger
        before = sorted(logger._core.handlers)
        import garrison, garrison.actors, garrison.mailbox
        after = sorted(logger._core.handlers)
        print(before == after, before, after)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.startswith("True"), result.stdout + result.stderr
