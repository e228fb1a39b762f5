"""Watching the runtime itself: loop lag, stall watchdog, metrics and health over HTTP, heart, systemd.

Below the node: what the metrics endpoint reads of a node is declared here
(``ObservedNode``), and ``garrison.Node`` implements it.
"""

from garrison.observe._heart import HEART_LOST_EXIT_CODE, USAGE_EXIT_CODE, Heart, HeartBeat, HeartConfig
from garrison.observe._http import MetricsServer
from garrison.observe._labels import DEFAULT_ACTOR_LABEL_LIMIT, ActorLabels
from garrison.observe._loop import LAG_BUCKETS, STALL_EXIT_CODE, LagStats, LoopGuard, LoopMonitor
from garrison.observe._metrics import LagSource, ObservedNode
from garrison.observe._systemd import SystemdNotifier

__all__ = [
    "DEFAULT_ACTOR_LABEL_LIMIT",
    "HEART_LOST_EXIT_CODE",
    "LAG_BUCKETS",
    "STALL_EXIT_CODE",
    "USAGE_EXIT_CODE",
    "ActorLabels",
    "Heart",
    "HeartBeat",
    "HeartConfig",
    "LagSource",
    "LagStats",
    "LoopGuard",
    "LoopMonitor",
    "MetricsServer",
    "ObservedNode",
    "SystemdNotifier",
]
