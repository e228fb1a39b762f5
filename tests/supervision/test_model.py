"""Random crashes, normal stops, manual restarts and clock advances across a two-level tree,
checked after every step against a small reference model of OTP's rules: which children run,
their restart counts, which supervisors gave up, and which refs live and whom they reach.

Refs are taken once per path and kept: every crash is sent through the ref held since the
path's actor was created, so a ref gone stale by an ancestor's restart fails the run."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from loguru import logger

from garrison import (
    ActorRef,
    ActorStopped,
    ChildSpec,
    GaveUp,
    LifecycleEvent,
    ManualClock,
    Node,
    Restart,
    Strategy,
    SupervisorRef,
    SupervisorSpec,
)

from ._support import Crash, Finish, Journal, Ping, drive, worker

T = TypeVar("T")

# -- the reference model ---------------------------------------------------------------


@dataclass
class ModelChild:
    id: str
    restart: Restart
    sub: ModelSupervisor | None = None
    running: bool = True
    restarts: int = 0


@dataclass
class ModelSupervisor:
    path: str
    spec: SupervisorSpec
    children: list[ModelChild] = field(default_factory=list)
    stamps: list[float] = field(default_factory=list)


def fresh(path: str, spec: SupervisorSpec, starts: Counter[str]) -> ModelSupervisor:
    """A supervisor as it starts: every child running (a new instance each), nothing counted."""
    model = ModelSupervisor(path, spec)
    for child in spec.children:
        child_path = f"{path}/{child.id}"
        if isinstance(child.start, SupervisorSpec):
            sub: ModelSupervisor | None = fresh(child_path, child.start, starts)
        else:
            sub = None
            starts[child_path] += 1
        model.children.append(ModelChild(child.id, child.restart, sub))
    return model


class Model:
    """OTP's supervisor rules (no backoff, no auto_shutdown), one decision at a time."""

    def __init__(self, spec: SupervisorSpec) -> None:
        self.starts: Counter[str] = Counter()
        """How many instances each worker path has had: a new one answers a Ping differently."""
        self.root: ModelSupervisor | None = fresh("/root", spec, self.starts)
        self.gave_up: list[str] = []

    def exit(self, path: str, abnormal: bool, now: float) -> None:
        """The worker at ``path`` exited (abnormally: it crashed; else ctx.stop())."""
        chain = self._chain(path)
        sup, child = chain[-1]
        escalate = self._child_exited(sup, child, abnormal, now)
        # A supervisor that gave up exits with `shutdown` (not abnormal) to its own parent.
        for parent, sub_child in reversed(chain[:-1]):
            if not escalate:
                return
            escalate = self._child_exited(parent, sub_child, False, now)
        if escalate:
            self.root = None

    def manual_restart(self, path: str) -> None:
        """terminate_child + restart_child: a new slot, and nothing counted."""
        _, child = self._chain(path)[-1]
        child.restarts = 0
        self.starts[path] += 1

    def _chain(self, path: str) -> list[tuple[ModelSupervisor, ModelChild]]:
        assert self.root is not None
        parts = path.split("/")[2:]
        chain = []
        sup = self.root
        for part in parts:
            child = next(child for child in sup.children if child.id == part)
            chain.append((sup, child))
            if child.sub is not None:
                sup = child.sub
        return chain

    def _child_exited(self, sup: ModelSupervisor, child: ModelChild, abnormal: bool, now: float) -> bool:
        """Apply OTP's decision; True if ``sup`` gave up."""
        restart = child.restart is Restart.PERMANENT or (child.restart is Restart.TRANSIENT and abnormal)
        if not restart:
            child.running = False
            child.sub = None
            if child.restart is Restart.TEMPORARY:
                sup.children.remove(child)
            return False
        sup.stamps = [stamp for stamp in sup.stamps if stamp >= now - sup.spec.period] + [now]
        if len(sup.stamps) > sup.spec.intensity:
            self.gave_up.append(sup.path)
            for other in sup.children:
                other.running = False
            return True
        running = [other for other in sup.children if other.running or other is child]
        if sup.spec.strategy is Strategy.ONE_FOR_ONE:
            group = [child]
        elif sup.spec.strategy is Strategy.ONE_FOR_ALL:
            group = running
        else:
            group = running[running.index(child) :]
        for member in group:
            if member is not child and member.restart is Restart.TEMPORARY:
                sup.children.remove(member)
                continue
            member.running = True
            member.restarts += 1
            if member.sub is not None or self._is_supervisor(sup, member):
                member.sub = fresh(f"{sup.path}/{member.id}", self._spec_of(sup, member), self.starts)
            else:
                self.starts[f"{sup.path}/{member.id}"] += 1
        return False

    @staticmethod
    def _spec_of(sup: ModelSupervisor, child: ModelChild) -> SupervisorSpec:
        [spec] = [spec for spec in sup.spec.children if spec.id == child.id]
        assert isinstance(spec.start, SupervisorSpec)
        return spec.start

    @staticmethod
    def _is_supervisor(sup: ModelSupervisor, child: ModelChild) -> bool:
        return any(spec.id == child.id and spec.is_supervisor for spec in sup.spec.children)

    def workers(self) -> list[str]:
        """Paths of the running workers."""
        found: list[str] = []

        def walk(sup: ModelSupervisor) -> None:
            for child in sup.children:
                if child.sub is not None and child.running:
                    walk(child.sub)
                elif child.sub is None and child.running and not self._is_supervisor(sup, child):
                    found.append(f"{sup.path}/{child.id}")

        if self.root is not None:
            walk(self.root)
        return found

    def supervisors(self) -> list[ModelSupervisor]:
        found: list[ModelSupervisor] = []

        def walk(sup: ModelSupervisor) -> None:
            found.append(sup)
            for child in sup.children:
                if child.sub is not None and child.running:
                    walk(child.sub)

        if self.root is not None:
            walk(self.root)
        return found


# -- the machine ---------------------------------------------------------------------

restart_types = st.sampled_from(list(Restart))
limits = st.tuples(st.integers(0, 3), st.sampled_from([1.0, 2.0, 5.0]))


class SupervisionMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.clock = ManualClock()
        # No loop monitor: it would start a watchdog thread per example.
        self.node = Node("model", clock=self.clock, handle_signals=False, guard=None)
        self.events: list[LifecycleEvent] = []
        self.journal = Journal()
        self.run(self.node.__aenter__())
        self.node.events.subscribe(self.events.append)
        # Thousands of crashes per run: formatting their tracebacks would be most of the time.
        # Re-enabled in teardown, which hypothesis runs for every machine it built.
        logger.disable("garrison")

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coroutine)

    @initialize(
        root_strategy=st.sampled_from(list(Strategy)),
        root_limits=limits,
        sub_strategy=st.sampled_from(list(Strategy)),
        sub_limits=limits,
        sub_restart=restart_types,
        worker_restarts=st.lists(restart_types, min_size=5, max_size=5),
    )
    def start_tree(
        self,
        root_strategy: Strategy,
        root_limits: tuple[int, float],
        sub_strategy: Strategy,
        sub_limits: tuple[int, float],
        sub_restart: Restart,
        worker_restarts: list[Restart],
    ) -> None:
        w1, x1, x2, x3, w2 = worker_restarts
        sub = SupervisorSpec(
            strategy=sub_strategy,
            intensity=sub_limits[0],
            period=sub_limits[1],
            children=[
                worker("x1", self.journal, x1),
                worker("x2", self.journal, x2),
                worker("x3", self.journal, x3),
            ],
        )
        spec = SupervisorSpec(
            strategy=root_strategy,
            intensity=root_limits[0],
            period=root_limits[1],
            children=[
                worker("w1", self.journal, w1),
                ChildSpec("sub", sub, restart=sub_restart),
                worker("w2", self.journal, w2),
            ],
        )
        self.model = Model(spec)
        self.root: SupervisorRef = self.run(self.node.start(spec))
        self.refs: dict[str, ActorRef] = {}
        """The ref of every live path, taken once when its actor was created and kept since."""
        self.dead: list[ActorRef] = []
        self.answers: dict[str, tuple[int, int]] = {}
        """Per worker path: (the model's instance count, the serial its ref's Ping answered)."""
        self.follow_the_model()

    def teardown(self) -> None:
        try:
            if self.node.running:
                self.run(drive(self.clock, self.node.shutdown(), within=3600.0))
        finally:
            self.loop.close()
            logger.enable("garrison")

    def _alive(self) -> bool:
        return self.model.root is not None

    def _has_workers(self) -> bool:
        return bool(self.model.workers())

    async def _send(self, path: str, message: Any) -> None:
        await self.refs[path].tell(message)  # the ref held since it was created, never a fresh look-up
        await self.clock.advance(0)

    @precondition(_has_workers)
    @rule(data=st.data(), crash=st.booleans())
    def exit_a_worker(self, data: st.DataObject, crash: bool) -> None:
        path = data.draw(st.sampled_from(self.model.workers()), label="worker")
        now = self.clock.now()
        self.run(self._send(path, Crash() if crash else Finish()))
        self.model.exit(path, abnormal=crash, now=now)

    @precondition(_alive)
    @rule(data=st.data())
    def restart_a_root_worker_by_hand(self, data: st.DataObject) -> None:
        candidates = [
            path
            for path in self.model.workers()
            if path.count("/") == 2 and self.model._chain(path)[-1][1].restart is not Restart.TEMPORARY
        ]
        if not candidates:
            return
        path = data.draw(st.sampled_from(candidates), label="by hand")
        child_id = path.rsplit("/", 1)[1]
        self.dead.append(self.refs.pop(path))  # terminate_child ends it for good; restart_child is new
        self.run(self.root.terminate_child(child_id))
        self.run(self.root.restart_child(child_id))
        self.model.manual_restart(path)

    @rule(seconds=st.sampled_from([0.25, 0.5, 1.0, 2.0, 5.5]))
    def advance_the_clock(self, seconds: float) -> None:
        self.run(self.clock.advance(seconds))

    def follow_the_model(self) -> None:
        """Move the refs of paths the model says are gone to ``dead``; take refs for new paths."""
        live = {sup.path for sup in self.model.supervisors()} | set(self.model.workers())
        for path in [path for path in self.refs if path not in live]:
            self.dead.append(self.refs.pop(path))
        for path in sorted(live - set(self.refs)):
            ref = self.node.lookup(path)
            assert all(ref is not dead for dead in self.dead), f"{path}: a dead ref came back"
            self.refs[path] = ref

    @invariant()
    def refs_live_and_reach_the_current_instance(self) -> None:
        if not hasattr(self, "model"):
            return
        self.follow_the_model()
        for path, ref in self.refs.items():
            assert ref.is_alive, path
            assert self.node.lookup(path) is ref, f"{path}: the ref changed without the path dying"
        for path in self.model.workers():
            name, serial = self.run(self.refs[path].ask(Ping()))
            assert name == path.rsplit("/", 1)[1]
            starts = self.model.starts[path]
            before = self.answers.get(path)
            if before is not None:
                if before[0] == starts:
                    assert serial == before[1], f"{path}: another instance answered, none was started"
                else:
                    assert serial > before[1], f"{path}: an older instance answered after a restart"
            self.answers[path] = (starts, serial)
        assert [ref.path for ref in self.dead if ref.is_alive] == []
        if self.dead:
            try:
                self.run(self.dead[-1].ask(Ping()))
            except ActorStopped:
                pass
            else:
                raise AssertionError(f"{self.dead[-1].path}: a dead ref answered")

    @invariant()
    def matches_the_model(self) -> None:
        if not hasattr(self, "model"):
            return
        gave_up = [event.path for event in self.events if isinstance(event, GaveUp)]
        assert gave_up == self.model.gave_up
        assert self.root.ref.is_alive == self._alive()
        assert self.node.exit_code == (0 if self._alive() else 1)
        for sup in self.model.supervisors():
            actual = self.run(self.node.supervisor(sup.path).which_children())
            expected = [
                (
                    child.id,
                    "running" if child.running else "undefined",
                    child.restarts if child.running else 0,
                )
                for child in sup.children
            ]
            assert [(row.id, row.state, row.restarts) for row in actual] == expected, sup.path


SupervisionMachine.TestCase.settings = settings(
    print_blob=True,
    # The same 100 sequences on every run (about 6 s): a failure here is never a fluke of the seed.
    derandomize=True,
    max_examples=100,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_supervision_follows_the_otp_model = pytest.mark.timeout(120)(SupervisionMachine.TestCase)
