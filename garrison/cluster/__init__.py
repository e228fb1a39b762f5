"""A cluster of nodes on one Redis: membership (leases), remote refs, registered names, and the
cluster singleton (a fenced lease).

``garrison.cluster`` sits above the node: ``await Cluster.join(node, url)``
joins a node to a named cluster and sets ``node.cluster``; ``RedisSingletons``
(``Node(singletons=...)``) runs singleton children on the one node holding
their lease. Needs redis-py (``pip install 'garrison[redis]'``), imported only
when a cluster connects. See docs/cluster.md.
"""

from garrison.cluster._cluster import DEFAULT_MAX_INBOX_LENGTH, DEFAULT_READ_COUNT, Cluster
from garrison.cluster._config import ClusterConnection, ClusterSettings
from garrison.cluster._membership import Member, MemberDown, MemberUp
from garrison.cluster._remote import RemoteRef
from garrison.cluster._singleton import RedisSingletons, SingletonLease
from garrison.cluster._wire import MessageTypes

__all__ = [
    "DEFAULT_MAX_INBOX_LENGTH",
    "DEFAULT_READ_COUNT",
    "Cluster",
    "ClusterConnection",
    "ClusterSettings",
    "Member",
    "MemberDown",
    "MemberUp",
    "MessageTypes",
    "RedisSingletons",
    "RemoteRef",
    "SingletonLease",
]
