"""The ``garrison`` pytest plugin: fixtures for actor tests, on virtual time.

Registered through the ``pytest11`` entry point, so it is active wherever
garrison is installed; ``-p no:garrison`` turns it off. It only adds things:

- fixtures ``garrison_clock``, ``garrison_node``, ``garrison_probe``,
  ``garrison_events``, ``garrison_faults``, ``garrison_logs``,
  ``garrison_node_guard``, ``garrison_journal``, ``garrison_kit``,
  ``garrison_seed``; the names of the previous release (``clock``, ``node``,
  ``probe``, ...) still work for one release, with a DeprecationWarning (a
  project's own fixtures of those names take precedence, as pytest always
  does);
- the marker ``@pytest.mark.garrison(seed=..., allow_crashes=..., allow_dead_letters=...)``;
- the option ``--garrison-seed=N|random``;
- in pytest-asyncio's strict mode, the ``asyncio`` mark on ``async def`` tests
  that use a garrison fixture, so they run without a decorator (auto mode
  needs nothing);
- a check, when a test body returns, that it awaited every expectation it
  made (``probe.expect(...)`` without ``await`` asserts nothing), that no
  actor crashed and no message was dead-lettered unexpectedly, and the seed
  in the report of a failed test;
- with pytest-timeout's ``signal`` method, a test that hangs fails with the
  stack of every asyncio task and every thread, in its body, its fixtures'
  teardown or a node's shutdown alike (see ``garrison.testing._hangs``).

Async tests run on pytest-asyncio, a dependency of ``garrison[testing]``.
"""

from __future__ import annotations

import inspect
import random
import threading
import warnings
import zlib
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from garrison._clock import ManualClock
from garrison._node import Node
from garrison.testing import _hangs
from garrison.testing._awaited import take_unawaited, unawaited_report
from garrison.testing._events import EventRecorder
from garrison.testing._faults import Faults
from garrison.testing._guard import NodeGuard
from garrison.testing._journal import TrackedJournal
from garrison.testing._kit import ActorTestKit
from garrison.testing._logs import LogCapture
from garrison.testing._probe import TestProbe

try:
    import pytest_asyncio

    HAVE_PYTEST_ASYNCIO = True
except ImportError:  # pragma: no cover - exercised in a subprocess test
    HAVE_PYTEST_ASYNCIO = False

RENAMED = {
    "clock": "garrison_clock",
    "node": "garrison_node",
    "probe": "garrison_probe",
    "events": "garrison_events",
    "faults": "garrison_faults",
    "logs": "garrison_logs",
    "node_guard": "garrison_node_guard",
    "journal": "garrison_journal",
}
"""The fixtures' names before they were namespaced: still there for one release, with a
DeprecationWarning."""
FIXTURES = frozenset({*RENAMED.values(), *RENAMED, "garrison_kit", "garrison_seed"})
KIT = pytest.StashKey[ActorTestKit]()
DISARM = pytest.StashKey[Callable[[], None]]()
MISSING_ASYNCIO = (
    "garrison's async fixtures run on pytest-asyncio, which is not installed: pip install 'garrison[testing]'"
)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("garrison", "garrison actor tests")
    group.addoption(
        "--garrison-seed",
        dest="garrison_seed",
        default=None,
        help="seed for node.random in the node fixture: an int to replay a run, or 'random' for a "
        "fresh seed per test (default: derived from the test id, stable across runs)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "garrison(seed=None, allow_crashes=False, allow_dead_letters=False): configure the garrison "
        "node fixture for this test: pin node.random's seed, and expect actor crashes or dead "
        "letters instead of failing the test on them",
    )


def _marker_kwargs(request: pytest.FixtureRequest) -> dict[str, Any]:
    marker = request.node.get_closest_marker("garrison")
    if marker is None:
        return {}
    unknown = set(marker.kwargs) - {"seed", "allow_crashes", "allow_dead_letters"}
    if marker.args or unknown:
        raise pytest.UsageError(
            f"@pytest.mark.garrison takes keyword arguments seed, allow_crashes, allow_dead_letters; "
            f"got args={marker.args!r} and unknown keywords {sorted(unknown)}"
        )
    return dict(marker.kwargs)


@pytest.fixture
def garrison_seed(request: pytest.FixtureRequest) -> int:
    """The seed of ``node.random``: the marker's, else ``--garrison-seed``, else one derived
    from the test id (the same on every run)."""
    seed = _marker_kwargs(request).get("seed")
    if seed is not None:
        return int(seed)
    option = request.config.getoption("garrison_seed")
    if option == "random":
        return random.SystemRandom().randrange(2**32)
    if option is not None:
        try:
            return int(option)
        except ValueError:
            raise pytest.UsageError(f"--garrison-seed={option!r}: pass an int or 'random'") from None
    return zlib.crc32(request.node.nodeid.encode())


@pytest.fixture
def garrison_clock() -> ManualClock:
    """The node's virtual clock: ``await garrison_clock.advance(seconds)`` fires every timer that
    falls due."""
    return ManualClock()


if HAVE_PYTEST_ASYNCIO:

    @pytest_asyncio.fixture
    async def garrison_kit(
        request: pytest.FixtureRequest, garrison_clock: ManualClock, garrison_seed: int
    ) -> AsyncIterator[ActorTestKit]:
        """The whole kit behind the fixtures: node, clock, guard, events, faults."""
        options = _marker_kwargs(request)
        kit = ActorTestKit(
            clock=garrison_clock,
            seed=garrison_seed,
            allow_crashes=bool(options.get("allow_crashes", False)),
            allow_dead_letters=bool(options.get("allow_dead_letters", False)),
        )
        await kit.start()
        request.node.stash[KIT] = kit
        try:
            yield kit
        finally:
            # The guard was checked when the test body returned (pytest_pyfunc_call).
            await kit.close(check=False)

    @pytest_asyncio.fixture
    async def garrison_probe(garrison_kit: ActorTestKit) -> TestProbe:
        """A TestProbe registered at ``/probe`` on the node."""
        return garrison_kit.probe()

    @pytest_asyncio.fixture
    async def garrison_journal(garrison_kit: ActorTestKit, tmp_path: Path) -> TrackedJournal:
        """A real SqliteJournal in ``tmp_path``, installed as ``node.journal``: opened now,
        closed when the node shuts down. Its I/O takes no virtual time (see TrackedJournal)."""
        return await garrison_kit.open_journal(tmp_path / "journal.db")

else:  # pragma: no cover - exercised in a subprocess test

    @pytest.fixture(name="garrison_kit")
    def _garrison_kit_needs_pytest_asyncio() -> ActorTestKit:
        pytest.fail(MISSING_ASYNCIO, pytrace=False)

    @pytest.fixture(name="garrison_probe")
    def _probe_needs_pytest_asyncio() -> TestProbe:
        pytest.fail(MISSING_ASYNCIO, pytrace=False)

    @pytest.fixture(name="garrison_journal")
    def _journal_needs_pytest_asyncio() -> TrackedJournal:
        pytest.fail(MISSING_ASYNCIO, pytrace=False)


@pytest.fixture
def garrison_node(garrison_kit: ActorTestKit) -> Node:
    """A running Node on the ``garrison_clock`` fixture, seeded with ``garrison_seed``, without
    signal handlers; shut down after the test. The test fails if an actor crashed or a message
    was dead-lettered unexpectedly (see ``garrison_node_guard`` and the ``garrison`` marker)."""
    return garrison_kit.node


@pytest.fixture
def garrison_node_guard(garrison_kit: ActorTestKit) -> NodeGuard:
    """The node's guard: ``allow_crashes(path, error)``, ``allow_dead_letters(recipient, message)``."""
    return garrison_kit.guard


@pytest.fixture
def garrison_events(garrison_kit: ActorTestKit) -> EventRecorder:
    """Every lifecycle event of the node since it started; ``await garrison_events.expect(...)``."""
    return garrison_kit.events


@pytest.fixture
def garrison_faults(garrison_kit: ActorTestKit) -> Faults:
    """Fault injection on the node's actors and journal; every fault is removed after the test."""
    return garrison_kit.faults


@pytest.fixture
def garrison_logs(garrison_clock: ManualClock) -> Iterator[LogCapture]:
    """Loguru records (DEBUG and above) emitted during the test; ``await garrison_logs.expect(...)``."""
    with LogCapture("DEBUG", clock=garrison_clock) as capture:
        yield capture


# -- the names of the previous release, kept one release ---------------------------


def _renamed(old: str) -> None:
    warnings.warn(
        f"the garrison fixture {old!r} is now {RENAMED[old]!r}; the old name, which collides with a "
        f"project's own fixtures, goes away in the next release",
        DeprecationWarning,
        stacklevel=2,
    )


@pytest.fixture(name="clock")
def _clock_renamed(garrison_clock: ManualClock) -> ManualClock:
    """Deprecated: ``garrison_clock``."""
    _renamed("clock")
    return garrison_clock


@pytest.fixture(name="node")
def _node_renamed(garrison_node: Node) -> Node:
    """Deprecated: ``garrison_node``."""
    _renamed("node")
    return garrison_node


@pytest.fixture(name="probe")
def _probe_renamed(garrison_probe: TestProbe) -> TestProbe:
    """Deprecated: ``garrison_probe``."""
    _renamed("probe")
    return garrison_probe


@pytest.fixture(name="journal")
def _journal_renamed(garrison_journal: TrackedJournal) -> TrackedJournal:
    """Deprecated: ``garrison_journal``."""
    _renamed("journal")
    return garrison_journal


@pytest.fixture(name="node_guard")
def _node_guard_renamed(garrison_node_guard: NodeGuard) -> NodeGuard:
    """Deprecated: ``garrison_node_guard``."""
    _renamed("node_guard")
    return garrison_node_guard


@pytest.fixture(name="events")
def _events_renamed(garrison_events: EventRecorder) -> EventRecorder:
    """Deprecated: ``garrison_events``."""
    _renamed("events")
    return garrison_events


@pytest.fixture(name="faults")
def _faults_renamed(garrison_faults: Faults) -> Faults:
    """Deprecated: ``garrison_faults``."""
    _renamed("faults")
    return garrison_faults


@pytest.fixture(name="logs")
def _logs_renamed(garrison_logs: LogCapture) -> LogCapture:
    """Deprecated: ``garrison_logs``."""
    _renamed("logs")
    return garrison_logs


# -- running async tests without a decorator -------------------------------------


@pytest.hookimpl(hookwrapper=True, trylast=True)
def pytest_pycollect_makeitem(
    collector: pytest.Module | pytest.Class, name: str, obj: object
) -> Generator[None, Any, None]:
    """Mark ``async def`` tests that use a garrison fixture with ``asyncio``.

    Runs inside pytest-asyncio's own wrapper of this hook, so the mark is
    there when it decides which tests it runs. Auto mode marks them anyway.
    """
    outcome = yield
    if not HAVE_PYTEST_ASYNCIO or not inspect.iscoroutinefunction(obj):
        return
    result = outcome.get_result()
    items = result if isinstance(result, list) else [result]
    for item in items:
        if (
            isinstance(item, pytest.Function)
            and item.get_closest_marker("asyncio") is None
            and FIXTURES.intersection(item.fixturenames)
        ):
            item.add_marker(pytest.mark.asyncio)


# -- the guard, and the seed in reports ----------------------------------------


@pytest.hookimpl(wrapper=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> Generator[None, object, object]:
    """Fail the test, when its body returns, on an expectation it never awaited and on what
    the node guard found unexpected."""
    __tracebackhide__ = True
    take_unawaited()  # made outside any test body (a fixture's setup): not this test's to answer for
    try:
        result = yield
    finally:
        unawaited = take_unawaited()
    if unawaited:
        pytest.fail(unawaited_report(unawaited), pytrace=False)
    kit = pyfuncitem.stash.get(KIT, None)
    if kit is not None:
        kit.guard.check()
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report = yield
    kit = item.stash.get(KIT, None)
    if kit is not None and report.failed and report.when == "call":
        lines = [
            f"seed={kit.seed} (replay: --garrison-seed={kit.seed}); "
            f"virtual time at failure: {kit.clock.now():g}s"
        ]
        unexpected = kit.guard.unexpected
        if unexpected:
            lines.append("unexpected failures on the node:")
            lines.extend(f"  - {line}" for line in unexpected)
        report.sections.append(("garrison", "\n".join(lines)))
    return report


# -- a hung test: every task's and thread's stack, within the timeout --------------


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config) -> Generator[None, None, None]:
    """Keep the real stderr before pytest's capture wraps it (for the last-resort dump)."""
    _hangs.keep_stderr()
    return (yield)


@pytest.hookimpl(optionalhook=True, tryfirst=True)
def pytest_timeout_set_timer(item: pytest.Item, settings: Any) -> bool | None:
    """Take over pytest-timeout's ``signal`` timer; leave its ``thread`` method alone."""
    if settings.method != "signal" or threading.current_thread() is not threading.main_thread():
        return None

    def fail(report: str) -> None:
        __tracebackhide__ = True
        pytest.fail(report, pytrace=False)

    item.stash[DISARM] = _hangs.arm(float(settings.timeout), fail)
    return True


@pytest.hookimpl(optionalhook=True, tryfirst=True)
def pytest_timeout_cancel_timer(item: pytest.Item) -> bool | None:
    disarm = item.stash.get(DISARM, None)
    if disarm is None:
        return None
    del item.stash[DISARM]
    disarm()
    return True
