"""Rule 1: specs are validated when built, with an error naming the child id, the field and the value."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from garrison import (
    Actor,
    AutoShutdown,
    Backoff,
    ChildSpec,
    DynamicSupervisorSpec,
    InvalidSpec,
    Restart,
    Strategy,
    SupervisorSpec,
)

from ._support import Journal, Worker, worker


def _says(error: pytest.ExceptionInfo[InvalidSpec], *parts: str) -> None:
    text = str(error.value)
    for part in parts:
        assert part in text, f"{part!r} not in {text!r}"


def test_duplicate_child_ids_are_rejected_naming_the_id() -> None:
    journal = Journal()
    with pytest.raises(InvalidSpec) as error:
        SupervisorSpec(children=[worker("feed", journal), worker("risk", journal), worker("feed", journal)])
    assert error.value.child_id == "feed"
    assert error.value.field == "id"
    _says(error, "'feed'", "duplicate")


@pytest.mark.parametrize("intensity", [-1, -5, 1.5, "3", True, None])
def test_intensity_must_be_an_int_at_least_zero(intensity: Any) -> None:
    with pytest.raises(InvalidSpec) as error:
        SupervisorSpec(intensity=intensity)
    assert error.value.field == "intensity"
    assert error.value.value == intensity
    _says(error, "intensity=", repr(intensity))


@pytest.mark.parametrize("period", [-1.0, 0, -0.001, "5", None])
def test_period_must_be_positive(period: Any) -> None:
    with pytest.raises(InvalidSpec) as error:
        SupervisorSpec(period=period)
    assert error.value.field == "period"
    _says(error, "period=", repr(period))


@pytest.mark.parametrize("shutdown", [-1, -0.5, "5", True])
def test_shutdown_must_be_at_least_zero_or_none(shutdown: Any) -> None:
    with pytest.raises(InvalidSpec) as error:
        ChildSpec("journal", Worker, args=(Journal(),), shutdown=shutdown)
    assert error.value.child_id == "journal"
    assert error.value.field == "shutdown"
    _says(error, "'journal'", "shutdown=", repr(shutdown))


def test_significant_is_rejected_on_a_permanent_child() -> None:
    with pytest.raises(InvalidSpec) as error:
        ChildSpec("session", Worker, args=(Journal(),), restart=Restart.PERMANENT, significant=True)
    assert (error.value.child_id, error.value.field, error.value.value) == ("session", "significant", True)
    _says(error, "'session'", "significant=True", "PERMANENT")


def test_significant_is_rejected_under_auto_shutdown_never() -> None:
    child = worker("session", Journal(), Restart.TRANSIENT, significant=True)
    with pytest.raises(InvalidSpec) as error:
        SupervisorSpec(auto_shutdown=AutoShutdown.NEVER, children=[child])
    assert (error.value.child_id, error.value.field) == ("session", "significant")
    _says(error, "'session'", "significant=True", "auto_shutdown")


def test_significant_is_accepted_on_a_transient_child_under_auto_shutdown() -> None:
    child = worker("session", Journal(), Restart.TRANSIENT, significant=True)
    spec = SupervisorSpec(auto_shutdown=AutoShutdown.ANY_SIGNIFICANT, children=[child])
    assert spec.children[0].significant


def _plain_function() -> None:
    return None


class NotAnActorClass:
    pass


@pytest.mark.parametrize(
    "start",
    [_plain_function, NotAnActorClass, Worker.__new__(Worker), "Worker", 42, None],
    ids=["function", "plain-class", "actor-instance", "string", "int", "none"],
)
def test_start_must_be_an_actor_class_or_a_spec(start: Any) -> None:
    with pytest.raises(InvalidSpec) as error:
        ChildSpec("feed", start)
    assert (error.value.child_id, error.value.field) == ("feed", "start")
    assert error.value.value is start
    _says(error, "'feed'", "start=")


def test_a_nested_supervisor_spec_is_a_valid_child_and_waits_forever_by_default() -> None:
    market = SupervisorSpec(strategy=Strategy.REST_FOR_ONE, children=[worker("feed", Journal())])
    strategies = DynamicSupervisorSpec(worker("template", Journal()))
    root = SupervisorSpec(children=[ChildSpec("market", market), ChildSpec("strategies", strategies)])
    assert [child.is_supervisor for child in root.children] == [True, True]
    assert [child.shutdown for child in root.children] == [None, None]
    assert worker("feed", Journal()).shutdown == 5.0


def test_a_nested_supervisor_spec_takes_no_args() -> None:
    with pytest.raises(InvalidSpec) as error:
        ChildSpec("market", SupervisorSpec(), args=(1,))
    assert (error.value.child_id, error.value.field) == ("market", "args")


@pytest.mark.parametrize("child_id", ["", "a/b", 7, None])
def test_a_child_id_is_a_non_empty_string_without_slash(child_id: Any) -> None:
    with pytest.raises(InvalidSpec) as error:
        ChildSpec(child_id, Worker)
    assert error.value.field == "id"


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"initial": 0}, "backoff.initial"),
        ({"initial": -1}, "backoff.initial"),
        ({"initial": 2.0, "max": 1.0}, "backoff.max"),
        ({"multiplier": 0.5}, "backoff.multiplier"),
        ({"jitter": -0.1}, "backoff.jitter"),
        ({"reset_after": 0}, "backoff.reset_after"),
    ],
)
def test_backoff_values_are_checked(options: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidSpec) as error:
        Backoff(**options)
    assert error.value.field == field
    assert re.match(re.escape(field) + "=", str(error.value)), "a Backoff is not a supervisor"


def test_every_bad_field_of_a_child_spec_names_the_child() -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"restart": "permanent"}, "restart"),
        ({"args": "not-a-tuple"}, "args"),
        ({"kwargs": [1]}, "kwargs"),
        ({"significant": 1}, "significant"),
        ({"backoff": 0.5}, "backoff"),
        ({"mailbox": 10}, "mailbox"),
    ]
    for options, field in cases:
        with pytest.raises(InvalidSpec) as error:
            ChildSpec("feed", Worker, **options)
        assert (error.value.child_id, error.value.field) == ("feed", field), options
        _says(error, "'feed'", f"{field}=")


def test_supervisor_fields_are_checked() -> None:
    with pytest.raises(InvalidSpec) as error:
        SupervisorSpec(strategy="one_for_one")  # type: ignore[arg-type]
    assert error.value.field == "strategy"
    with pytest.raises(InvalidSpec) as error:
        SupervisorSpec(auto_shutdown="never")  # type: ignore[arg-type]
    assert error.value.field == "auto_shutdown"
    with pytest.raises(InvalidSpec) as error:
        SupervisorSpec(children=[Worker])  # type: ignore[list-item]
    assert error.value.field == "children"


def test_dynamic_supervisor_spec_is_validated() -> None:
    with pytest.raises(InvalidSpec) as error:
        DynamicSupervisorSpec(Worker)  # type: ignore[arg-type]
    assert error.value.field == "template"
    with pytest.raises(InvalidSpec) as error:
        DynamicSupervisorSpec(worker("strategy", Journal()), max_children=0)
    assert error.value.field == "max_children"
    with pytest.raises(InvalidSpec) as error:
        DynamicSupervisorSpec(worker("strategy", Journal()), intensity=-1)
    assert error.value.field == "intensity"


def test_an_actor_subclass_without_args_is_a_valid_start() -> None:
    class Plain(Actor):
        pass

    spec = ChildSpec("plain", Plain)
    assert spec.start is Plain and spec.args == () and spec.restart is Restart.PERMANENT


def _wrong_shapes() -> list[tuple[str, Callable[[], object], str, object]]:
    """(case, build, field, value): specs of the wrong shape a user writes by mistake."""
    child = ChildSpec("feed", Worker)
    not_a_class = Worker.__new__(Worker)
    return [
        ("one child instead of a list", lambda: SupervisorSpec(children=child), "children", child),
        ("a string for the children", lambda: SupervisorSpec(children="feed"), "children", "feed"),
        ("None for the children", lambda: SupervisorSpec(children=None), "children", None),
        ("a dict of children", lambda: SupervisorSpec(children={"feed": child}), "children", {"feed": child}),
        ("an actor instance to start", lambda: ChildSpec("feed", not_a_class), "start", not_a_class),
        ("a class name to start", lambda: ChildSpec("feed", "Worker"), "start", "Worker"),
        ("a negative intensity", lambda: SupervisorSpec(intensity=-1), "intensity", -1),
        ("a string intensity", lambda: SupervisorSpec(intensity="3"), "intensity", "3"),
        ("a string for the args", lambda: ChildSpec("feed", Worker, args="ab"), "args", "ab"),
        ("kwargs with int keys", lambda: ChildSpec("feed", Worker, kwargs={1: 2}), "kwargs", {1: 2}),
        ("a number for the id", lambda: ChildSpec(7, Worker), "id", 7),
        ("a list for a template", lambda: DynamicSupervisorSpec([child]), "template", [child]),
    ]


@pytest.mark.parametrize(
    ("case", "build", "field", "value"), _wrong_shapes(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_a_spec_of_the_wrong_shape_raises_invalid_spec_naming_the_field_and_value(
    case: str, build: Callable[[], object], field: str, value: object
) -> None:
    with pytest.raises(InvalidSpec) as error:
        build()
    assert not isinstance(error.value, TypeError), case
    assert (error.value.field, error.value.value) == (field, value), case
    assert f"{field}={value!r} is invalid" in str(error.value), case


def test_one_child_instead_of_a_list_says_how_to_write_it() -> None:
    with pytest.raises(InvalidSpec, match=r"wrap a single child in a list: children=\[ChildSpec\(\.\.\.\)\]"):
        SupervisorSpec(children=ChildSpec("feed", Worker))
