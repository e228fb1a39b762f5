"""An expectation of the kit that is never awaited fails instead of passing silently."""

from __future__ import annotations

import pytest

from garrison.testing import ActorTestKit, LogCapture


async def test_the_kit_raises_on_close_naming_an_expectation_never_awaited() -> None:
    with pytest.raises(AssertionError) as raised:
        async with ActorTestKit() as kit:
            probe = kit.probe()
            probe.expect_no_message(within=0.5)
    message = str(raised.value)
    assert "1 expectation(s) of the garrison test kit were never awaited" in message
    assert (
        "TestProbe.expect_no_message(within=0.5) made at tests/testing/test_awaited.py:14 in test_the_kit"
        in (message)
    )


async def test_an_awaited_expectation_is_not_reported() -> None:
    async with ActorTestKit() as kit:
        probe = kit.probe()
        probe.tell_nowait("hi")
        assert await probe.expect("hi") == "hi"
        with LogCapture() as logs:
            kit.node.logger.info("hello")
            record = await logs.expect("hello", level="INFO")
    assert record.message == "hello"
