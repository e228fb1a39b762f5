"""Supervision trees with OTP semantics: specs, strategies, intensity, backoff, introspection."""

from garrison.supervision._intensity import RestartIntensity
from garrison.supervision._pool import PoolRef, PoolSpec, Routing
from garrison.supervision._ref import SupervisorRef
from garrison.supervision._singleton import SingletonClaim, SingletonCoordinator, SingletonEvents
from garrison.supervision._spec import (
    AutoShutdown,
    Backoff,
    ChildSpec,
    DynamicSupervisorSpec,
    Restart,
    Strategy,
    SupervisorSpec,
)
from garrison.supervision._supervisor import ChildCounts, ChildInfo, Supervisor

__all__ = [
    "AutoShutdown",
    "Backoff",
    "ChildCounts",
    "ChildInfo",
    "ChildSpec",
    "DynamicSupervisorSpec",
    "PoolRef",
    "PoolSpec",
    "Restart",
    "RestartIntensity",
    "Routing",
    "SingletonClaim",
    "SingletonCoordinator",
    "SingletonEvents",
    "Strategy",
    "Supervisor",
    "SupervisorRef",
    "SupervisorSpec",
]
