"""Every Redis key the cluster writes, built here and nowhere else.

Each key carries a hash tag (``{...}``) so that the keys one script touches
live in one Redis Cluster slot: the membership keys share the cluster's tag,
and each node's inbox has a tag of its own (the inboxes spread over slots).
"""

from __future__ import annotations

PREFIX = "garrison:cluster"


def cluster_key(cluster: str, kind: str, node_id: str = "") -> str:
    """The key of ``kind`` in ``cluster``: ``members`` (the set of node ids), ``names``
    (registered names), ``lease`` (one node's lease, with ``node_id``) in the cluster's slot,
    ``inbox`` (one node's stream of messages, with ``node_id``) in a slot of its own."""
    if kind == "inbox":
        return f"{PREFIX}:{{{cluster}/{node_id}}}:inbox"
    if kind == "lease":
        return f"{PREFIX}:{{{cluster}}}:lease:{node_id}"
    return f"{PREFIX}:{{{cluster}}}:{kind}"


def lease_prefix(cluster: str) -> str:
    """What a node's lease key is this prefix followed by its id (the membership script's)."""
    return cluster_key(cluster, "lease", "")
