"""The hot standby: ``python -m examples.order_routing chaos --standby`` runs the full node as a
cluster singleton on two node processes over one Redis journal and strikes the owner again and
again: SIGKILL, or SIGSTOP past its lease then SIGCONT (it wakes up believing it owns the node:
its writes are fenced, its orders held back). Each time the standby takes over, recovers the
intent log and resumes routing; then 0 duplicates, 0 lost, 0 phantoms, positions match.

Needs a redis-server (``scripts/with-redis``); about 40 s, so marked slow.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.persistence.redis._server import delete_namespace, shared_redis_url

from .runs import assert_verdict_passed, run_example

RUN_TIMEOUT = 150.0
"""Real seconds the whole run may take before the test stops it (it takes ~40 s)."""
STRIKES = 4
DATABASE = 12
"""The nodes keep their journal and lease under the default namespace: a database of its own
keeps them apart from every other test's keys on the shared server."""


@pytest.fixture
def journal_url() -> Iterator[str]:
    """The shared server, database DATABASE, emptied before and after."""
    parts = urlsplit(shared_redis_url())
    url = urlunsplit(parts._replace(path=f"/{DATABASE}"))
    asyncio.run(delete_namespace(url, "garrison"))
    yield url
    asyncio.run(delete_namespace(url, "garrison"))


@pytest.mark.slow
@pytest.mark.timeout(RUN_TIMEOUT + 90)
def test_the_standby_takes_over_a_killed_or_frozen_owner_and_nothing_is_lost_or_sent_twice(
    tmp_path: Path, journal_url: str
) -> None:
    output = run_example(
        "chaos",
        tmp_path,
        (
            *("--standby", "--journal", journal_url, "--kills", str(STRIKES), "--freeze-share", "0.5"),
            *("--min-interval", "1", "--max-interval", "2", "--calm", "1", "--settle-timeout", "30"),
            *("--rate", "100", "--burst-factor", "4", "--partial-fills", "--dedupe", "none"),
            # Ghost fills at 3% of fills: a run this short makes a few hundred fills, and at the
            # chaos default (0.5%) a run may get none, leaving nothing to quarantine.
            *("--ghost-fill-rate", "0.03"),
            *("--chaos-seed", "2"),
        ),
        RUN_TIMEOUT,
    )
    strikes = re.search(r"standby: (\d+) kills, (\d+) freezes; stopped \[([^\]]*)\]", output)
    assert strikes is not None, output
    kills, freezes, codes = int(strikes.group(1)), int(strikes.group(2)), strikes.group(3)
    assert kills + freezes == STRIKES and kills > 0 and freezes > 0, output
    # Both nodes stopped when asked: none had to be SIGKILLed.
    assert "-9" not in codes, output
    # Every strike was followed by a takeover, each timed from the broker's own record.
    assert len(re.findall(r"took the lease [\d.]+s after the strike", output)) == STRIKES, output
    takeover = re.search(r"takeover \(.*\): p50 ([\d.]+)s, max ([\d.]+)s over (\d+)", output)
    assert takeover is not None and int(takeover.group(3)) == STRIKES, output
    assert '"settled": true' in output, output
    assert_verdict_passed(output, ghosts=True)
