"""The verdict the design exists for: ``python -m examples.order_routing chaos`` SIGKILLs the
whole node 20 times (some kills aimed at the dead zone, right after an order frame is written),
with in-node actor crashes and hangs, against a broker that drops replies, resets connections,
rejects, fills in parts, sends ghost fills, and does not dedupe at all. Then: 0 duplicates, 0 lost,
ghost fills quarantined and none applied, positions match.

The only slow test of the example (about 40 s here); ``-m 'not slow'`` leaves it out.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from examples.order_routing.harness.processes import alive

from .runs import assert_verdict_passed, run_example

RUN_TIMEOUT = 420.0
"""Real seconds the whole chaos run may take before the test stops it (it takes ~40 s)."""


@pytest.mark.slow
@pytest.mark.timeout(RUN_TIMEOUT + 120)
def test_twenty_sigkills_against_a_broker_without_dedupe_place_every_order_exactly_once(
    tmp_path: Path,
) -> None:
    output = run_example(
        "chaos", tmp_path, ("--kills", "20", "--dedupe", "none", "--partial-fills"), RUN_TIMEOUT
    )

    assert "chaos: kill 20/20" in output
    armed = re.search(r"chaos: 20 kills \((\d+) armed for the dead zone\)", output)
    assert armed is not None and int(armed.group(1)) > 0, output
    assert '"settled": true' in output
    assert_verdict_passed(output, ghosts=True)
    # Bounded progress: drained, and the bounds held in every incarnation.
    assert re.search(r"time to drain \(settle run\): [\d.]+ s \(drained\)", output), output
    bounds = re.search(
        r"backlog max \(unsettled\): ([\d,]+) \(max_unsettled ([\d,]+)\); "
        r"in doubt max: ([\d,]+) \(send_window ([\d,]+)\).*\(([\d,]+) progress lines\)",
        output,
    )
    assert bounds is not None, output
    unsettled, max_unsettled, in_doubt, window, lines = (int(n.replace(",", "")) for n in bounds.groups())
    assert lines > 0 and unsettled <= max_unsettled and in_doubt <= window, output
    assert re.search(r"^run length: \d+ s$", output, re.MULTILINE), output
    # Nothing left running: the last node the heart started is gone.
    assert not alive(int((tmp_path / "control" / "node.pid").read_text()))
