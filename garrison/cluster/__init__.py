"""Beyond one machine on Redis: the cluster singleton (a fenced lease), ``RedisSingletons``."""

from garrison.cluster._singleton import RedisSingletons, SingletonLease

__all__ = [
    "RedisSingletons",
    "SingletonLease",
]
