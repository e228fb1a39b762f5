"""Per-mailbox metrics: depth, counts and consumer lag, read on the injected clock."""

from __future__ import annotations

import pytest

from garrison import ManualClock, Overflow
from garrison.mailbox import WAIT_BUCKETS
from garrison.mailbox._mailbox import WAIT_SAMPLE
from tests.mailbox._support import build, take_all

SAMPLE = WAIT_SAMPLE
"""The wait histogram records every SAMPLE-th message taken."""


async def test_metrics_report_depth_capacity_and_counts() -> None:
    mailbox, _ = build(capacity=3, overflow=Overflow.DROP_NEWEST)
    for message in range(5):
        mailbox.put_nowait(message)
    mailbox.take()
    metrics = mailbox.metrics()
    assert metrics.capacity == 3
    assert metrics.depth == 2
    assert metrics.enqueued == 5
    assert metrics.processed == 1
    assert metrics.dropped == 2
    assert metrics.conflated == 0
    assert metrics.rejected == 0


async def test_oldest_age_is_the_age_of_the_oldest_queued_message() -> None:
    clock = ManualClock()
    mailbox, _ = build(capacity=10, clock=clock)
    assert mailbox.metrics().oldest_age_seconds == 0.0
    mailbox.put_nowait("a")
    await clock.advance(2.0)
    mailbox.put_nowait("b")
    await clock.advance(1.0)
    assert mailbox.metrics().oldest_age_seconds == 3.0
    mailbox.take()
    assert mailbox.metrics().oldest_age_seconds == 1.0
    mailbox.take()
    assert mailbox.metrics().oldest_age_seconds == 0.0


async def test_conflated_message_keeps_the_age_of_its_key_first_arrival() -> None:
    clock = ManualClock()
    mailbox, _ = build(capacity=10, overflow=Overflow.CONFLATE, key=lambda m: m[0], clock=clock)
    mailbox.put_nowait(("AAPL", 1))
    await clock.advance(5.0)
    mailbox.put_nowait(("AAPL", 2))
    assert mailbox.metrics().oldest_age_seconds == 5.0


async def test_wait_histogram_samples_every_sixteenth_message_taken() -> None:
    clock = ManualClock()
    mailbox, _ = build(capacity=100, clock=clock)
    for message in range(2 * SAMPLE + 4):
        mailbox.put_nowait(message)
    await clock.advance(0.3)
    take_all(mailbox)
    metrics = mailbox.metrics()
    assert metrics.processed == 2 * SAMPLE + 4
    assert metrics.wait_count == 2  # the 16th and the 32nd
    assert metrics.wait_sum_seconds == pytest.approx(0.6)
    counts = dict(metrics.wait_buckets)
    assert counts[0.5] == 2
    assert sum(counts.values()) == 2


async def test_wait_histogram_measures_each_message_from_its_own_enqueue_time() -> None:
    clock = ManualClock()
    mailbox, _ = build(capacity=100, clock=clock)
    for _ in range(SAMPLE - 1):
        mailbox.put_nowait("early")
    await clock.advance(4.0)
    mailbox.put_nowait("sampled")  # enqueued at t=4
    await clock.advance(0.02)
    take_all(mailbox)
    metrics = mailbox.metrics()
    assert metrics.wait_count == 1
    assert metrics.wait_sum_seconds == pytest.approx(0.02)
    assert dict(metrics.wait_buckets)[0.025] == 1


async def test_wait_bucket_bounds_are_inclusive_upper_bounds() -> None:
    clock = ManualClock()
    mailbox, _ = build(capacity=100, clock=clock)
    for _ in range(SAMPLE):
        mailbox.put_nowait("m")
    await clock.advance(1.0)
    take_all(mailbox)
    metrics = mailbox.metrics()
    assert dict(metrics.wait_buckets)[1.0] == 1  # a wait of exactly 1.0s is "<= 1.0"
    assert metrics.wait_quantile(0.5) == 1.0


async def test_wait_buckets_end_with_an_infinite_bound_for_long_waits() -> None:
    clock = ManualClock()
    mailbox, _ = build(capacity=100, clock=clock)
    for _ in range(SAMPLE):
        mailbox.put_nowait("m")
    await clock.advance(60.0)
    take_all(mailbox)
    metrics = mailbox.metrics()
    bounds = [bound for bound, _ in metrics.wait_buckets]
    assert bounds == [*WAIT_BUCKETS, float("inf")]
    assert metrics.wait_buckets[-1] == (float("inf"), 1)
    assert metrics.wait_quantile(0.99) == float("inf")


async def test_wait_quantile_reads_the_bucket_holding_the_rank() -> None:
    clock = ManualClock()
    mailbox, _ = build(capacity=1000, clock=clock)
    # Nine sampled messages wait 0.8ms, one waits 2s.
    for _ in range(9):
        for _ in range(SAMPLE):
            mailbox.put_nowait("fast")
        await clock.advance(0.0008)
        take_all(mailbox)
    for _ in range(SAMPLE):
        mailbox.put_nowait("slow")
    await clock.advance(2.0)
    take_all(mailbox)
    metrics = mailbox.metrics()
    assert metrics.wait_count == 10
    assert metrics.wait_quantile(0.5) == 0.001
    assert metrics.wait_quantile(0.9) == 0.001
    assert metrics.wait_quantile(1.0) == 2.5


async def test_wait_quantile_of_an_empty_histogram_is_zero() -> None:
    mailbox, _ = build()
    assert mailbox.metrics().wait_quantile(0.99) == 0.0


async def test_metrics_disabled_skips_lag_but_keeps_counts() -> None:
    clock = ManualClock()
    mailbox, _ = build(capacity=100, clock=clock, metrics=False)
    for message in range(16):
        mailbox.put_nowait(message)
    await clock.advance(3.0)
    assert mailbox.metrics().oldest_age_seconds == 0.0
    take_all(mailbox)
    metrics = mailbox.metrics()
    assert metrics.processed == 16
    assert metrics.wait_count == 0


async def test_at_a_backlog_of_sixteen_a_message_carries_the_enqueue_time_read_before_it() -> None:
    clock = ManualClock()
    mailbox, _ = build(capacity=100, clock=clock)
    for _ in range(SAMPLE):
        mailbox.put_nowait("early")  # fewer than 16 queued at each arrival: each one's own time
    await clock.advance(1.0)
    mailbox.put_nowait("late")  # arrives at a backlog of 16: carries the time read at t=0
    for _ in range(SAMPLE):
        mailbox.take()
    # "late" is 0 s old; the lag reads at most the time the 15 before it took to arrive.
    assert mailbox.metrics().oldest_age_seconds == 1.0


async def test_at_a_backlog_every_sixteenth_message_reads_the_clock() -> None:
    clock = ManualClock()
    mailbox, _ = build(capacity=100, clock=clock)
    for _ in range(2 * SAMPLE - 1):
        mailbox.put_nowait("early")
    await clock.advance(1.0)
    mailbox.put_nowait("sixteenth")  # the 32nd enqueued: its own time, t=1
    for _ in range(2 * SAMPLE - 1):
        mailbox.take()
    assert mailbox.metrics().oldest_age_seconds == 0.0
    await clock.advance(0.5)
    assert mailbox.metrics().oldest_age_seconds == 0.5
