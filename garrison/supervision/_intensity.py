"""Restart intensity: OTP's sliding window, on the node clock."""

from __future__ import annotations

from collections import deque


class RestartIntensity:
    """At most ``intensity`` restarts within any ``period`` seconds.

    One window per supervisor, over all its children. A restart is allowed
    while the restarts in the last ``period`` seconds, this one included,
    number at most ``intensity`` (OTP keeps timestamps ``>= now - period``;
    we do the same with sub-second resolution).
    """

    __slots__ = ("_stamps", "intensity", "period")

    def __init__(self, intensity: int, period: float) -> None:
        self.intensity = intensity
        self.period = period
        self._stamps: deque[float] = deque()

    def _expire(self, now: float) -> None:
        horizon = now - self.period
        stamps = self._stamps
        while stamps and stamps[0] < horizon:
            stamps.popleft()

    def allow(self, now: float) -> bool:
        """Record a restart at ``now``; True if it stays within the limit."""
        self._expire(now)
        self._stamps.append(now)
        return len(self._stamps) <= self.intensity

    def recent(self, now: float) -> int:
        """Restarts counted in the window ending at ``now``."""
        self._expire(now)
        return len(self._stamps)
