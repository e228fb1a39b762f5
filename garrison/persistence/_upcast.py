"""Schema evolution: stored events of an old version read back as the current type.

Every version of an event type has a tag of its own (the tag is what the
journal stores with each event). When a type changes in a way its stored
events cannot follow by themselves, the new version gets a new tag, and an
Upcaster turns a stored event of the old tag into the fields of the next one,
until a registered type is reached. Renaming a type is the same, without a
function: an alias. Events of the current tags never meet any of this.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, final

import msgspec

from garrison._errors import InvalidConfig

Tag = str | int
Upcast = Callable[[dict[str, Any]], dict[str, Any]]


@final
class Upcaster:
    """Reads stored events tagged ``tag`` as the version ``to`` (Akka's event adapter, read side).

    ``to`` is a registered event type or the tag of another version, itself
    upcast further. ``upcast``, if given, receives the stored event's fields
    (a dict, without the tag) and returns the fields of ``to``; without it, the
    fields are kept as they are (an alias: the type was renamed). Fields a
    newer version added with a default need no upcaster at all.

    ``tag`` must not be a registered type's tag: an evolved type gets a new
    tag (``tag="OrderPlaced.v2"``) so that old and new events can be told apart.
    """

    __slots__ = ("tag", "to", "upcast")

    def __init__(self, tag: Tag, to: type[msgspec.Struct] | Tag, upcast: Upcast | None = None) -> None:
        if isinstance(tag, bool) or not isinstance(tag, (str, int)) or tag == "":
            raise InvalidConfig(
                "Upcaster.tag", tag, "the stored tag to upcast: a non-empty str (or an int tag)"
            )
        if not (_is_tag(to) or (isinstance(to, type) and issubclass(to, msgspec.Struct))):
            raise InvalidConfig("Upcaster.to", to, "a registered event type, or the tag of the next version")
        if upcast is not None and not callable(upcast):
            raise InvalidConfig(
                "Upcaster.upcast", upcast, "a function from the stored fields (a dict) to the next version's"
            )
        if _tag_of(to) == tag:
            raise InvalidConfig(
                "Upcaster.to", to, f"upcasts {tag!r} to itself: give the new version a new tag"
            )
        self.tag: Tag = tag
        self.to: type[msgspec.Struct] | Tag = to
        self.upcast: Upcast | None = upcast

    def __repr__(self) -> str:
        to = self.to.__qualname__ if isinstance(self.to, type) else repr(self.to)
        upcast = (
            "" if self.upcast is None else f", upcast={getattr(self.upcast, '__qualname__', self.upcast)}"
        )
        return f"Upcaster({self.tag!r}, to={to}{upcast})"


@final
class Chain:
    """What a stored tag becomes: the steps' functions in order, then the registered type."""

    __slots__ = ("tag", "steps", "target")

    def __init__(self, tag: Tag, steps: tuple[Upcast | None, ...], target: type[msgspec.Struct]) -> None:
        self.tag = tag
        self.steps = steps
        self.target = target


def chains(upcasters: Sequence[Upcaster], registered: Mapping[Any, type[msgspec.Struct]]) -> dict[Tag, Chain]:
    """Each old tag's chain to a registered type. Raises InvalidConfig for an upcaster of a
    registered tag, two of one tag, a ``to`` type not registered, a chain that ends at no
    registered type, or a cycle."""
    by_tag: dict[Tag, Upcaster] = {}
    for index, upcaster in enumerate(upcasters):
        field = f"upcasters[{index}]"
        if not isinstance(upcaster, Upcaster):
            raise InvalidConfig(field, upcaster, "must be a garrison.persistence.Upcaster")
        if upcaster.tag in registered:
            owner = registered[upcaster.tag].__qualname__
            raise InvalidConfig(
                field,
                upcaster,
                f"{upcaster.tag!r} is the tag of the registered {owner}: events of a current tag are "
                f"read as they are; give the evolved {owner} a new tag (tag={_next_tag(upcaster.tag)!r}) "
                f"and upcast {upcaster.tag!r} to it",
            )
        if upcaster.tag in by_tag:
            raise InvalidConfig(
                field, upcaster, f"a second upcaster of {upcaster.tag!r}: keep one per stored tag"
            )
        to = upcaster.to
        if isinstance(to, type) and registered.get(_tag_of(to)) is not to:
            raise InvalidConfig(
                field, upcaster, f"upcasts to {to.__qualname__}, which is not in the events list"
            )
        by_tag[upcaster.tag] = upcaster
    result: dict[Tag, Chain] = {}
    for tag in by_tag:
        steps: list[Upcast | None] = []
        seen = [tag]
        current: Tag = tag
        while current not in registered:
            step = by_tag.get(current)
            if step is None:
                raise InvalidConfig(
                    "upcasters",
                    seen,
                    f"{current!r} is neither a registered event type's tag nor upcast further: "
                    "end every chain at a type in the events list",
                )
            steps.append(step.upcast)
            current = _tag_of(step.to)
            if current in seen:
                raise InvalidConfig("upcasters", [*seen, current], "the upcasters go round in a cycle")
            seen.append(current)
        result[tag] = Chain(tag, tuple(steps), registered[current])
    return result


def _is_tag(value: object) -> bool:
    return isinstance(value, (str, int)) and not isinstance(value, bool) and value != ""


def _tag_of(to: type[msgspec.Struct] | Tag) -> Tag:
    if isinstance(to, type):
        tag: Tag = to.__struct_config__.tag  # type: ignore[assignment]
        return tag
    return to


def _next_tag(tag: Tag) -> Tag:
    return f"{tag}.v2" if isinstance(tag, str) else tag + 1
