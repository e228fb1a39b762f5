"""What every benchmark shares: quiet logs, interleaved runs, medians, ratios and targets.

The machine is shared and noisy, so a benchmark never compares two figures
taken minutes apart: it runs ours and each baseline in turn, round after
round, and compares them round by round.
"""

from __future__ import annotations

import gc
import statistics
from collections.abc import Callable, Sequence
from typing import Any, Literal, TypeVar

T = TypeVar("T")

Comparison = Literal[">=", "<="]


def quiet_logs() -> None:
    """Drop every loguru sink: a benchmark measures the runtime, not the log writer."""
    from loguru import logger

    logger.remove()


def interleave(variants: dict[str, Callable[[], T]], runs: int) -> dict[str, list[T]]:
    """Run every variant once per round for ``runs`` rounds; results per variant, in round order.

    The order rotates each round so that no variant always runs first (on a
    cold cache) or last (after the others' garbage). A full collection
    before each run keeps one variant's garbage off the next one's clock.
    """
    names = list(variants)
    results: dict[str, list[T]] = {name: [] for name in names}
    for round_index in range(runs):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            gc.collect()
            results[name].append(variants[name]())
    return results


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def paired_ratio(numerators: Sequence[float], denominators: Sequence[float]) -> float:
    """Median over rounds of numerator/denominator taken in the same round.

    Pairing by round cancels load that comes and goes on a shared machine
    better than a ratio of two medians would.
    """
    return median([a / b for a, b in zip(numerators, denominators, strict=True)])


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The q-quantile (0..1) of already sorted values, nearest rank."""
    if not sorted_values:
        raise ValueError("no values")
    rank = min(len(sorted_values) - 1, max(0, round(q * len(sorted_values)) - 1))
    return sorted_values[rank]


def target(value: float, comparison: Comparison, goal: float, meaning: str) -> dict[str, Any]:
    """One target: the measured value, what it is held against, and whether it meets it."""
    meets = value >= goal if comparison == ">=" else value <= goal
    return {
        "value": round(value, 3),
        "comparison": comparison,
        "target": goal,
        "meets_target": meets,
        "meaning": meaning,
    }


def summary(values: Sequence[float], digits: int = 1) -> dict[str, Any]:
    """Median, spread and every run of one figure, rounded for reading."""
    return {
        "median": round(median(values), digits),
        "min": round(min(values), digits),
        "max": round(max(values), digits),
        "runs": [round(value, digits) for value in values],
    }
