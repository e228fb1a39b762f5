"""The pytest plugin as a user meets it: fixtures without decorators, the guard, the seed, opting out."""

from __future__ import annotations

import sys

import pytest

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestAssertRewriteWarning")

STRICT = "[pytest]\nasyncio_mode = strict\nasyncio_default_fixture_loop_scope = function\n"

ACTORS = """
from garrison import Actor, ChildSpec, Restarted, SupervisorSpec

class Echo(Actor):
    def __init__(self, to):
        self.to = to

    async def on_receive(self, message):
        if message == "boom":
            raise RuntimeError("boom")
        await self.to.tell(message)
"""


def test_async_tests_using_garrison_fixtures_run_in_strict_mode_without_a_decorator(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini(STRICT)
    pytester.makepyfile(
        ACTORS
        + """
async def test_echo(garrison_node, garrison_probe):
    echo = await garrison_node.spawn(Echo, args=(garrison_probe,))
    await echo.tell("hi")
    assert await garrison_probe.expect("hi") == "hi"

async def test_no_garrison_fixture():
    pass
"""
    )
    result = pytester.runpytest("-q", "-rfs")
    outcomes = result.parseoutcomes()
    # The plain async test is left to pytest, which skips it (pytest < 8.4) or fails it.
    assert outcomes.get("passed") == 1 and outcomes.get("failed", 0) + outcomes.get("skipped", 0) == 1
    result.stdout.fnmatch_lines(["*test_no_garrison_fixture*"])


def test_an_unexpected_crash_fails_the_test_with_the_seed_in_the_report(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        ACTORS
        + """
async def test_crash(garrison_node, garrison_probe, garrison_events):
    echo = await garrison_node.spawn(Echo, args=(garrison_probe,), name="echo")
    await echo.tell("boom")
    await garrison_probe.expect_no_message()
"""
    )
    pytester.makeini(STRICT.replace("strict", "auto"))
    result = pytester.runpytest("-q")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*AssertionError: 1 unexpected failure(s) on node 'test':",
            "*actor /echo failed handling str at t=0: failure: RuntimeError: boom",
            "*- garrison -*",
            "seed=* (replay: --garrison-seed=*); virtual time at failure: 0.1s",
        ]
    )


def test_the_marker_or_the_guard_make_expected_crashes_pass(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        ACTORS
        + """
import pytest

@pytest.mark.garrison(allow_crashes=True, allow_dead_letters=True)
async def test_marker(garrison_node, garrison_probe):
    echo = await garrison_node.spawn(Echo, args=(garrison_probe,), name="echo")
    await echo.tell("boom")
    await garrison_probe.expect_no_message()

async def test_guard(garrison_node, garrison_node_guard, garrison_probe):
    garrison_node_guard.allow_crashes("/echo", RuntimeError)
    echo = await garrison_node.spawn(Echo, args=(garrison_probe,), name="echo")
    await echo.tell("boom")
    await garrison_probe.expect_no_message()
"""
    )
    pytester.makeini(STRICT)
    pytester.runpytest("-q").assert_outcomes(passed=2)


def test_the_seed_comes_from_the_marker_the_option_or_the_test_id(pytester: pytest.Pytester) -> None:
    pytester.makeini(STRICT)
    pytester.makepyfile(
        """
import pytest

@pytest.mark.garrison(seed=42)
async def test_pinned(garrison_node, garrison_seed):
    assert garrison_seed == 42
    print("pinned", garrison_node.random.random())

async def test_derived(garrison_node, garrison_seed):
    print("derived", garrison_seed, garrison_node.random.random())
"""
    )
    first = pytester.runpytest("-q", "-s")
    second = pytester.runpytest("-q", "-s")
    replayed = pytester.runpytest("-q", "-s", "--garrison-seed=42")
    first.assert_outcomes(passed=2)

    def line(result: pytest.RunResult, word: str) -> str:
        [text] = [text for text in result.outlines if word in text]
        return text[text.index(word) :]

    assert line(first, "derived") == line(second, "derived")
    assert line(first, "pinned") == line(second, "pinned") == line(replayed, "pinned")
    assert line(replayed, "derived").startswith("derived 42 ")
    assert line(replayed, "derived").split()[2] == line(first, "pinned").split()[1]


def test_the_journal_fixture_gives_the_node_a_journal_and_a_journal_fault_is_expected(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini(STRICT)
    pytester.makepyfile(
        """
import msgspec
import pytest
from garrison import ChildSpec, PersistFailed, Restarted, SupervisorSpec
from garrison.persistence import EventSourcedActor

class Counted(msgspec.Struct, frozen=True, tag=True):
    pass

class Counter(EventSourcedActor):
    events = (Counted,)

    def initial_state(self):
        return 0

    def apply(self, state, event):
        return state + 1

    async def on_receive(self, message):
        if message == "count":
            await self.persist(Counted())
        return self.state

async def test_recovers_what_is_durable(garrison_node, garrison_journal, garrison_faults, garrison_events):
    await garrison_node.start(SupervisorSpec(children=[ChildSpec("counter", Counter)]))
    counter = garrison_node.lookup("/root/counter")
    assert await counter.ask("count") == 1
    garrison_faults.fail_journal(mode="after_write")
    with pytest.raises(PersistFailed):
        await counter.ask("count")
    await garrison_events.expect(Restarted(path="/root/counter"))
    assert await counter.ask("get") == 2
    assert garrison_journal.path.endswith("journal.db")

async def test_without_the_fixture_the_node_has_no_journal(garrison_node):
    assert garrison_node.journal is None
"""
    )
    pytester.runpytest("-q").assert_outcomes(passed=2)


def test_the_plugin_can_be_turned_off(pytester: pytest.Pytester) -> None:
    pytester.makeini(STRICT)
    pytester.makepyfile(
        """
def test_uses_node(garrison_node):
    pass

def test_plain():
    pass
"""
    )
    result = pytester.runpytest("-q", "-p", "no:garrison")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*fixture 'garrison_node' not found*"])


def test_without_pytest_asyncio_the_fixtures_say_what_to_install(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(
        """
def test_uses_node(garrison_node):
    pass

def test_plain():
    pass
"""
    )
    pytester.makepyfile(
        run_without_asyncio="""
import sys
sys.modules["pytest_asyncio"] = None  # as if it were not installed
import pytest
test_file = "test_without_pytest_asyncio_the_fixtures_say_what_to_install.py"
sys.exit(pytest.main(["-q", "-p", "garrison.testing.plugin", test_file]))
"""
    )
    # Without autoloading, as pytest would load pytest-asyncio's entry point otherwise.
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    result = pytester.run(sys.executable, "run_without_asyncio.py", timeout=60)
    assert "which is not installed: pip install 'garrison[testing]'" in result.stdout.str()
    result.stdout.fnmatch_lines(["*1 passed, 1 error*"])


def test_the_kit_imports_without_pytest_or_pytest_asyncio(pytester: pytest.Pytester) -> None:
    script = (
        "import sys\n"
        "sys.modules['pytest'] = sys.modules['pytest_asyncio'] = None\n"
        "import garrison.testing\n"
        "print(sorted(garrison.testing.__all__)[:2])\n"
    )
    result = pytester.run(sys.executable, "-c", script, timeout=60)
    assert result.ret == 0, result.stderr.str()
    result.stdout.fnmatch_lines(["*'ActorTestKit', 'ChildProcess'*"])


def test_an_expectation_never_awaited_fails_the_test_naming_where_it_was_made(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        ACTORS
        + """
async def test_forgot_await(garrison_node, garrison_probe, garrison_events):
    echo = await garrison_node.spawn(Echo, args=(garrison_probe,))
    await echo.tell("hi")
    garrison_probe.expect("bye")
    garrison_events.expect(Restarted)

async def test_awaited(garrison_node, garrison_probe):
    echo = await garrison_node.spawn(Echo, args=(garrison_probe,))
    await echo.tell("hi")
    await garrison_probe.expect("hi")
"""
    )
    pytester.makeini(STRICT)
    result = pytester.runpytest("-q", "-W", "error::RuntimeWarning")
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines(
        [
            "*2 expectation(s) of the garrison test kit were never awaited, so they asserted nothing; "
            "add 'await':",
            "  TestProbe.expect('bye') made at "
            "test_an_expectation_never_awaited_fails_the_test_naming_where_it_was_made.py:15 "
            "in test_forgot_await",
            "  EventRecorder.expect(Restarted) made at *.py:16 in test_forgot_await",
        ]
    )
    assert "was never awaited" not in result.stderr.str()


def test_an_expectation_run_as_a_task_counts_as_awaited(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        ACTORS
        + """
import asyncio

async def test_task(garrison_node, garrison_probe):
    echo = await garrison_node.spawn(Echo, args=(garrison_probe,))
    waiting = asyncio.create_task(garrison_probe.expect("hi"))
    await echo.tell("hi")
    assert await waiting == "hi"
"""
    )
    pytester.makeini(STRICT)
    pytester.runpytest("-q").assert_outcomes(passed=1)


def test_the_fixtures_of_the_previous_release_still_work_with_a_deprecation_warning(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini(STRICT)
    pytester.makepyfile(
        ACTORS
        + """
async def test_old_names(node, probe, clock, events, faults, logs, node_guard):
    echo = await node.spawn(Echo, args=(probe,))
    await echo.tell("hi")
    assert await probe.expect("hi") == "hi"
    assert clock.now() == node.clock.now()
"""
    )
    result = pytester.runpytest("-q", "-W", "always::DeprecationWarning")
    result.assert_outcomes(passed=1, warnings=7)
    for old in ("node", "probe", "clock", "events", "faults", "logs", "node_guard"):
        result.stdout.fnmatch_lines([f"*the garrison fixture '{old}' is now 'garrison_{old}'*"])


def test_a_project_fixture_named_node_no_longer_collides_with_the_plugin(pytester: pytest.Pytester) -> None:
    pytester.makeini(STRICT)
    pytester.makeconftest(
        """
import pytest

@pytest.fixture
def node():
    return "the project's own node"

@pytest.fixture
def clock():
    return "the project's own clock"
"""
    )
    pytester.makepyfile(
        """
async def test_both(node, clock, garrison_node, garrison_clock):
    assert node == "the project's own node" and clock == "the project's own clock"
    assert garrison_node.clock is garrison_clock
"""
    )
    result = pytester.runpytest("-q", "-W", "error::DeprecationWarning")
    result.assert_outcomes(passed=1)
