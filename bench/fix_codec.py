"""The order-routing example's FIX codec: encode + parse of NewOrderSingle and ExecutionReport.

One operation is one message encoded to a wire frame and parsed back. Ours: a typed message
through ``examples.order_routing.fix.codec.encode`` (strict header order, field formatting,
BodyLength and CheckSum: the bytes simplefix writes, built in one join) and ``FrameReader.feed``
(framing by BodyLength, CheckSum checked, fields split, a typed message built with its checks).
The baseline: simplefix alone, the same fields appended to a ``FixMessage`` and encoded, then
``FixParser.append_buffer`` and ``get_message`` (no checksum check, no typed message). Messages
per CPU second, interleaved rounds; the ratio is the median of per-round ratios. Target: ours
>= 0.9x simplefix alone.
"""

from __future__ import annotations

import time
from typing import Any

import simplefix  # type: ignore[import-untyped]

from bench._harness import interleave, paired_ratio, summary, target
from examples.order_routing.fix.codec import FIX44, FrameReader, encode, sending_time
from examples.order_routing.fix.messages import (
    ExecType,
    ExecutionReport,
    FixMessageBase,
    NewOrderSingle,
    OrdStatus,
    OrdType,
    Side,
)

NOW = 1_765_000_000.0
ORDER = NewOrderSingle(
    cl_ord_id="0f3c2a1b-intent-000042",
    symbol="ESZ6",
    side=Side.BUY,
    order_qty=3,
    ord_type=OrdType.LIMIT,
    transact_time=sending_time(NOW),
    price=5012.25,
    time_in_force="0",
)
REPORT = ExecutionReport(
    order_id="B-000042",
    exec_id="B-000042-F1",
    exec_type=ExecType.TRADE,
    ord_status=OrdStatus.PARTIALLY_FILLED,
    symbol="ESZ6",
    side=Side.BUY,
    leaves_qty=1,
    cum_qty=2,
    avg_px=5012.25,
    cl_ord_id="0f3c2a1b-intent-000042",
    order_qty=3,
    price=5012.25,
    last_qty=2,
    last_px=5012.25,
)
MESSAGES: dict[str, FixMessageBase] = {"new_order_single": ORDER, "execution_report": REPORT}


def ours(message: FixMessageBase, count: int) -> float:
    reader = FrameReader()
    stamp = sending_time(NOW)
    started = time.thread_time()
    for seq in range(1, count + 1):
        raw = encode(
            message,
            begin_string=FIX44,
            sender_comp_id="NODE",
            target_comp_id="VENUE",
            msg_seq_num=seq,
            sending_time_text=stamp,
        )
        reader.feed(raw)
    return count / (time.thread_time() - started)


def _body(message: FixMessageBase) -> list[tuple[int, Any]]:
    """The same body fields as our encode writes, as simplefix takes them."""
    pairs = []
    for name, tag in sorted(message.TAGS.items(), key=lambda item: item[1]):
        value = getattr(message, name)
        if value is not None:
            pairs.append((tag, value))
    return pairs


def simplefix_alone(message: FixMessageBase, count: int) -> float:
    parser = simplefix.FixParser()
    stamp = sending_time(NOW)
    body = _body(message)
    msg_type = message.MSG_TYPE
    started = time.thread_time()
    for seq in range(1, count + 1):
        out = simplefix.FixMessage()
        out.append_pair(8, FIX44)
        out.append_pair(35, msg_type)
        out.append_pair(49, "NODE")
        out.append_pair(56, "VENUE")
        out.append_pair(34, seq)
        out.append_pair(52, stamp)
        for tag, value in body:
            out.append_pair(tag, value)
        parser.append_buffer(out.encode())
        parser.get_message()
    return count / (time.thread_time() - started)


def run(quick: bool) -> dict[str, Any]:
    runs = 3 if quick else 7
    count = 2_000 if quick else 20_000
    for message in MESSAGES.values():  # warm-up
        ours(message, 200)
        simplefix_alone(message, 200)
    variants = {}
    for name, message in MESSAGES.items():
        variants[f"{name}_ours"] = lambda message=message: ours(message, count)
        variants[f"{name}_simplefix"] = lambda message=message: simplefix_alone(message, count)
    measured = interleave(variants, runs)
    ratios = {
        name: round(paired_ratio(measured[f"{name}_ours"], measured[f"{name}_simplefix"]), 3)
        for name in MESSAGES
    }
    return {
        "measures": "FIX encode + parse, messages per CPU second: our typed codec against simplefix alone",
        "params": {"runs": runs, "messages_per_run": count},
        "figures": {
            "messages_per_cpu_sec": {
                name: {
                    "ours": summary(measured[f"{name}_ours"], 0),
                    "simplefix": summary(measured[f"{name}_simplefix"], 0),
                }
                for name in MESSAGES
            }
        },
        "ratios": {f"{name}_ours_over_simplefix": ratio for name, ratio in ratios.items()},
        "targets": {
            f"{name}_codec": target(ratio, ">=", 0.9, f"{name}: encode + parse, ours / simplefix alone")
            for name, ratio in ratios.items()
        },
    }
