"""Membership: each node's lease in Redis, refreshed on the node's clock, and the view it reads.

A node holds a lease: its entry in the cluster's ``leases`` hash (its
incarnation's uid and a deadline ``lease_ttl`` ahead on the Redis server's
clock). Every ``refresh_interval`` seconds of node-clock time one script
renews this node's lease (only if it still holds it) and returns every member
whose lease lives; entries whose deadline passed are removed. The script
touches that one key only, so it runs on a Redis Cluster as on one server.
The difference from the last view is published as ``MemberUp`` /
``MemberDown``. A node that finds its own lease gone, or that
could not refresh it for longer than ``lease_ttl``, considers itself out.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec

from garrison._clock import Cancellable
from garrison._errors import InvalidConfig
from garrison.cluster._keys import cluster_key

if TYPE_CHECKING:
    from garrison._node import Node
    from garrison.cluster._config import RedisClient


class Member(msgspec.Struct, frozen=True, order=True):
    """A node in the cluster: its id and the uid of its incarnation (a restarted node with the
    same id is a new member)."""

    node_id: str
    uid: str


class MemberUp(msgspec.Struct, frozen=True):
    """Published on ``node.bus`` when a node joins the cluster (and, at join, once for each
    member already up, this node included)."""

    cluster: str
    member: Member


class MemberDown(msgspec.Struct, frozen=True):
    """Published on ``node.bus`` when a node leaves the cluster: it left, or its lease expired.
    ``reason`` says which. Also published for this node itself when it considers itself out."""

    cluster: str
    member: Member
    reason: str


# KEYS: leases (one hash per cluster: node id -> "<deadline ms> <uid>", deadlines on the
# Redis server's clock, so every key the script touches is declared and in one slot).
# ARGV: uid, ttl ms, joining ("1"/"0"), node id.
# Returns {held, node1, uid1, node2, uid2, ...}: held is 1 if this node holds its lease
# (renewed), 0 if it lost it, -1 (joining) if another incarnation still holds it. Entries
# whose deadline passed are removed; the hash itself expires a ttl after the last renewal.
REFRESH_SCRIPT = """
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local ttl = tonumber(ARGV[2])
local function parse(entry)
  local space = string.find(entry, ' ', 1, true)
  return tonumber(string.sub(entry, 1, space - 1)), string.sub(entry, space + 1)
end
local status = 0
local entry = redis.call('HGET', KEYS[1], ARGV[4])
local live, holder = false, nil
if entry then
  local deadline
  deadline, holder = parse(entry)
  live = deadline > now
end
if live and holder == ARGV[1] then
  status = 1
elseif ARGV[3] == '1' then
  status = live and -1 or 1
end
if status == 1 then
  redis.call('HSET', KEYS[1], ARGV[4], (now + ttl) .. ' ' .. ARGV[1])
  if redis.call('PTTL', KEYS[1]) < ttl then
    redis.call('PEXPIRE', KEYS[1], ttl)
  end
end
local result = {status}
local entries = redis.call('HGETALL', KEYS[1])
for index = 1, #entries, 2 do
  local deadline, uid = parse(entries[index + 1])
  if deadline > now then
    table.insert(result, entries[index])
    table.insert(result, uid)
  else
    redis.call('HDEL', KEYS[1], entries[index])
  end
end
return result
"""

# KEYS: leases. ARGV: uid, node id. Leaves only if this incarnation holds the lease.
LEAVE_SCRIPT = """
local entry = redis.call('HGET', KEYS[1], ARGV[2])
if entry and string.sub(entry, string.find(entry, ' ', 1, true) + 1) == ARGV[1] then
  redis.call('HDEL', KEYS[1], ARGV[2])
  return 1
end
return 0
"""


class Membership:
    """The lease loop of one node (internal: ``Cluster`` drives it, users read ``members()``).

    ``on_up`` / ``on_down`` are called for each change of the view, before the event is
    published on the bus; ``on_self_down`` once, when this node considers itself out.
    """

    def __init__(
        self,
        node: Node,
        client: RedisClient,
        *,
        cluster: str,
        member: Member,
        lease_ttl: float,
        refresh_interval: float,
        on_up: Callable[[Member], None],
        on_down: Callable[[Member, str], None],
        on_self_down: Callable[[str], None],
    ) -> None:
        self._node = node
        self._client = client
        self.cluster = cluster
        self.member = member
        self.lease_ttl = lease_ttl
        self.refresh_interval = refresh_interval
        self._on_up = on_up
        self._on_down = on_down
        self._on_self_down = on_self_down
        self._leases_key = cluster_key(cluster, "leases")
        self._script = client.register_script(REFRESH_SCRIPT)
        self._leave_script = client.register_script(LEAVE_SCRIPT)
        self.view: dict[str, Member] = {}
        """The members up now, by node id, as of the last refresh."""
        self.last_refreshed = node.clock.now()
        self.out = False
        """True once this node considers itself out of the cluster (for good)."""
        self.refresh_failures = 0
        self.rounds = 0
        """Refresh rounds finished (renewed, failed or found the lease lost)."""
        self._timer: Cancellable | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    async def join(self) -> None:
        """Take this node's lease and read the first view. A lease still held by an earlier
        incarnation of the same node id (a crash) is waited out, up to ``lease_ttl`` plus one
        refresh of real time; raises InvalidConfig if it is still held then."""
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self.lease_ttl + self.refresh_interval
        while True:
            status, members = await self._run_script(joining=True)
            if status == 1:
                break
            if loop.time() >= give_up:
                raise InvalidConfig(
                    "node_id",
                    self.member.node_id,
                    f"another live node holds this id in cluster {self.cluster!r}: give each node its own",
                )
            await asyncio.sleep(min(0.05, self.lease_ttl / 10))
        self.last_refreshed = self._node.clock.now()
        self._apply(members)
        self._schedule()

    async def _run_script(self, *, joining: bool) -> tuple[int, dict[str, Member]]:
        ttl_ms = max(1, int(self.lease_ttl * 1000))
        args: list[str | int] = [
            self.member.uid,
            ttl_ms,
            "1" if joining else "0",
            self.member.node_id,
        ]
        raw: list[Any] = await self._script(keys=[self._leases_key], args=args)
        status = int(raw[0])
        members: dict[str, Member] = {}
        for index in range(1, len(raw) - 1, 2):
            node_id = _text(raw[index])
            members[node_id] = Member(node_id, _text(raw[index + 1]))
        return status, members

    def _schedule(self) -> None:
        if not self._closed and not self.out:
            self._timer = self._node.clock.call_later(self.refresh_interval, self._tick)

    def _tick(self) -> None:
        self._timer = None
        if self._closed or self.out:
            return
        self._task = asyncio.get_running_loop().create_task(self._refresh(), name="garrison-cluster-lease")

    async def _refresh(self) -> None:
        """One round: renew, read the view, publish its changes, schedule the next round."""
        try:
            await self._round()
        finally:
            self.rounds += 1

    async def _round(self) -> None:
        try:
            async with asyncio.timeout(self.lease_ttl):
                status, members = await self._run_script(joining=False)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            self.refresh_failures += 1
            failing_for = self._node.clock.now() - self.last_refreshed
            self._node.logger.warning(
                "cluster {cluster}: lease refresh failed ({error}); failing for {seconds:.2f}s",
                cluster=self.cluster,
                error=f"{type(error).__name__}: {error}",
                seconds=failing_for,
            )
            if failing_for > self.lease_ttl:
                self._go_out(f"lease refresh failing for {failing_for:.2f}s > lease_ttl={self.lease_ttl}s")
                return
        else:
            if status != 1:
                self._go_out("its lease expired or was taken before it could be refreshed")
                return
            self.last_refreshed = self._node.clock.now()
            self._apply(members)
        self._schedule()

    def _apply(self, members: dict[str, Member]) -> None:
        before = self.view
        self.view = members
        for node_id, member in before.items():
            now = members.get(node_id)
            if now is None or now.uid != member.uid:
                self._on_down(member, "left" if now is None else "restarted (a new incarnation joined)")
        for node_id, member in members.items():
            was = before.get(node_id)
            if was is None or was.uid != member.uid:
                self._on_up(member)

    def _go_out(self, why: str) -> None:
        """This node considers itself out of the cluster: every other member is down for it,
        and it never rejoins (a restarted node joins as a new incarnation)."""
        if self.out:
            return
        self.out = True
        self._node.logger.error(
            "cluster {cluster}: node {node} considers itself out: {why}",
            cluster=self.cluster,
            node=self.member.node_id,
            why=why,
        )
        before, self.view = self.view, {}
        for member in before.values():
            if member != self.member:
                self._on_down(member, f"this node is out of the cluster ({why})")
        self._on_self_down(why)

    async def leave(self) -> None:
        """Stop refreshing and delete this node's lease (if it still holds it). Never raises."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        if self.out:
            return
        try:
            async with asyncio.timeout(self.lease_ttl):
                await self._leave_script(keys=[self._leases_key], args=[self.member.uid, self.member.node_id])
        except Exception as error:
            self._node.logger.warning(
                "cluster {cluster}: could not delete the lease on leaving ({error}); it expires in {ttl}s",
                cluster=self.cluster,
                error=f"{type(error).__name__}: {error}",
                ttl=self.lease_ttl,
            )


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
