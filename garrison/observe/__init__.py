"""Watching the runtime itself: loop lag, stall watchdog, metrics and health over HTTP."""

from garrison.observe._loop import LAG_BUCKETS, STALL_EXIT_CODE, LagStats, LoopGuard, LoopMonitor

__all__ = ["LAG_BUCKETS", "STALL_EXIT_CODE", "LagStats", "LoopGuard", "LoopMonitor"]
