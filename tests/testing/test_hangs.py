"""A test that hangs fails within its timeout, showing every asyncio task's and thread's stack.

Run in a pytest subprocess: the timeout's alarm and faulthandler's watchdog
belong to the process, and the outer test has its own.
"""

from __future__ import annotations

import time

import pytest

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestAssertRewriteWarning")

INI = "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"

HANGING = """
import asyncio
import threading

import pytest
import pytest_asyncio

from garrison import Actor


async def wait_for_the_feed(forever):
    await forever


async def test_body_hangs_on_a_future():
    forever = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().create_task(wait_for_the_feed(forever), name="feed-reader")
    await wait_for_the_feed(forever)


@pytest_asyncio.fixture
async def stuck_teardown():
    yield
    await asyncio.Event().wait()  # the teardown itself never ends


async def test_fixture_teardown_hangs(stuck_teardown):
    pass


class StopsForever(Actor):
    async def on_receive(self, message):
        return message

    async def on_stop(self):
        await asyncio.Event().wait()


async def test_node_shutdown_hangs(garrison_node):
    # shutdown=None: the node waits for on_stop as long as it takes (a supervisor's default).
    await garrison_node.spawn(StopsForever, name="stubborn", shutdown=None)


def test_a_thread_is_shown_too():
    started = threading.Event()

    def hold():
        started.set()
        threading.Event().wait(30)

    threading.Thread(target=hold, name="blocking-sdk", daemon=True).start()
    started.wait()
    threading.Event().wait(30)
"""


def test_hung_tests_fail_within_the_timeout_with_every_task_and_thread_stack(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(test_hanging=HANGING)

    started = time.monotonic()
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider", "--timeout=1", timeout=120)
    elapsed = time.monotonic() - started

    outcomes = result.parseoutcomes()
    # Two bodies fail; two teardowns fail (after a body that passed, or that never got to run).
    assert (outcomes.get("failed"), outcomes.get("errors")) == (2, 2), outcomes
    output = result.stdout.str()
    # Each hang is stopped where it stood and reported with what was running.
    assert output.count("Timeout: the test ran longer than 1s") >= 4
    result.stdout.fnmatch_lines(
        [
            "*--- task 'feed-reader' (pending)*",
            "*in wait_for_the_feed*",
            "*waiting on <Future pending*",
        ]
    )
    result.stdout.fnmatch_lines(["*in stuck_teardown*"])
    result.stdout.fnmatch_lines(["*in on_stop*"])  # the node's shutdown, inside the actor's stop
    result.stdout.fnmatch_lines(["*--- thread 'blocking-sdk'*", "*in hold*"])
    # Nothing waited for the last resort (60 s past the timeout): each hang ended at its alarm.
    assert elapsed < 60, elapsed
