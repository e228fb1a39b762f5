"""The ``actor`` label of the node's metrics: bounded per node, with one template per pool.

An actor path becomes a label once, and keeps it for the node's life. A
pool's routees (``/root/pool/routee-0``, ``routee-1``, ...) share the label
``/root/pool/routee-*``, whatever the pool's size. The first ``limit``
distinct labels are shown as they are; every later one is folded into
``other``. So a node that spawns an actor per session shows at most
``limit + 1`` actor series per metric, and a label once shown never moves
into ``other`` (its counters stay monotonic).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from garrison._errors import ActorNotFound
from garrison.supervision._pool import ROUTEE_PREFIX, Pool

if TYPE_CHECKING:
    from garrison.actors._kernel import Kernel

OTHER = "other"
"""The label every actor beyond the node's limit shares."""

DEFAULT_ACTOR_LABEL_LIMIT = 200
"""Distinct actor labels a node shows before it folds the rest into ``other``."""

_REMEMBERED_PATHS = 10_000
"""Paths whose label is remembered; past this the memory starts afresh (labels stay admitted)."""

_ROUTEE = re.compile(rf"{re.escape(ROUTEE_PREFIX)}\d+\Z")


class ActorLabels:
    """Maps actor paths to the ``actor`` label of the node's metrics (read on the node's loop)."""

    def __init__(self, kernel: Kernel, limit: int = DEFAULT_ACTOR_LABEL_LIMIT) -> None:
        self._kernel = kernel
        self.limit = limit
        self._admitted: set[str] = set()
        self._by_path: dict[str, str] = {}

    def label(self, path: str) -> str:
        """The label of the actor at ``path``: its path, its pool's template, or ``other``."""
        known = self._by_path.get(path)
        if known is not None:
            return known
        label = self.template(path)
        if label not in self._admitted:
            if len(self._admitted) < self.limit:
                self._admitted.add(label)
            else:
                label = OTHER
        if len(self._by_path) >= _REMEMBERED_PATHS:
            self._by_path.clear()
        self._by_path[path] = label
        return label

    def template(self, path: str) -> str:
        """``path`` with each routee of a pool (``routee-N`` under a Pool) written ``routee-*``."""
        parts = path.split("/")
        shown = list(parts)
        for index in range(2, len(parts)):
            if _ROUTEE.match(parts[index]) and self._is_pool("/".join(parts[:index])):
                shown[index] = f"{ROUTEE_PREFIX}*"
        return "/".join(shown)

    def _is_pool(self, path: str) -> bool:
        try:
            ref = self._kernel.lookup(path)
        except ActorNotFound:
            return False
        return issubclass(ref.slot.actor_class, Pool)
