"""Every Redis key the cluster writes, built here and nowhere else.

Each key carries a hash tag (``{...}``) so that the keys one script touches
live in one Redis Cluster slot: the membership keys share the cluster's tag,
and each node's inbox has a tag of its own (the inboxes spread over slots).
"""

from __future__ import annotations

PREFIX = "garrison:cluster"


def cluster_key(cluster: str, kind: str, node_id: str = "") -> str:
    """The key of ``kind`` in ``cluster``: ``leases`` (a hash of every member's lease: node
    id -> deadline and uid), ``names`` (registered names) in the cluster's slot, ``inbox``
    (one node's stream of messages, with ``node_id``) in a slot of its own."""
    if kind == "inbox":
        return f"{PREFIX}:{{{cluster}/{node_id}}}:inbox"
    return f"{PREFIX}:{{{cluster}}}:{kind}"


def singletons_namespace(cluster: str) -> str:
    """The namespace of ``cluster``'s singleton leases (``RedisSingletons``): each singleton's
    lease and token then carry the singleton's own hash tag after it."""
    return f"{PREFIX}:{cluster}"
