"""Orders over FIX: the node's requests as FIX application messages, and the venue's
ExecutionReports as the answers the executor and positions already take.

The executor and positions do not know which protocol the gateway speaks: the FIX gateway turns
every ExecutionReport (35=8) into the same ``OrderAccepted``, ``OrderRejected``, ``Fill`` or
``OrderStatus`` the native protocol carries, so the exactly-once rules (executor.py, answers.py)
hold unchanged. By ExecType (150), with OrdStatus (39) for the state of a looked-up order:

| ExecType | becomes |
|---|---|
| 0 New | ``OrderAccepted`` (ACKED) |
| 8 Rejected | ``OrderRejected``; OrdRejReason 6 (duplicate order) marks it a duplicate (UNKNOWN, looked up) |
| F Trade (4.2: 1, 2) | ``Fill`` to positions, numbered by the report's MsgSeqNum (``fill_number``) |
| 4 Canceled, C Expired | ``OrderClosed``: DONE (the fills before it stand) |
| I Order status | ``OrderStatus`` (answers 35=H); OrdStatus 8 + OrdRejReason 5 (unknown order): not found |
| A Pending new, others | nothing: a later report settles the order |
"""

from __future__ import annotations

from examples.order_routing.fix.messages import (
    ExecType,
    ExecutionReport,
    NewOrderSingle,
    OrderCancelRequest,
    OrderStatusRequest,
    OrdStatus,
    OrdType,
)
from examples.order_routing.fix.messages import Side as FixSide
from examples.order_routing.node.messages import OrderClosed, OrderIntent
from examples.order_routing.protocol import Fill, OrderAccepted, OrderRejected, OrderState, OrderStatus, Side

UNKNOWN_ORDER = 5
"""OrdRejReason (103) 5: the venue does not know the order (the "not found" of a 35=H)."""
DUPLICATE_ORDER = 6
"""OrdRejReason (103) 6: a ClOrdID the venue already holds."""
TIME_IN_FORCE_DAY = "0"
SEQUENCE_SPACE = 1 << 32
"""MsgSeqNums of one session day; ``fill_number`` puts each day above the last."""

FIX_SIDES = {Side.BUY: FixSide.BUY, Side.SELL: FixSide.SELL}
NODE_SIDES = {FixSide.BUY: Side.BUY, FixSide.SELL: Side.SELL}
ORDER_STATES = {
    OrdStatus.NEW: OrderState.ACCEPTED,
    OrdStatus.PENDING_NEW: OrderState.ACCEPTED,
    OrdStatus.PENDING_CANCEL: OrderState.ACCEPTED,
    OrdStatus.PARTIALLY_FILLED: OrderState.PARTIALLY_FILLED,
    OrdStatus.FILLED: OrderState.FILLED,
    OrdStatus.CANCELED: OrderState.CANCELLED,
    OrdStatus.EXPIRED: OrderState.CANCELLED,
}
"""OrdStatus (39) of a found order -> where it stands (a rejected one is an OrderRejected)."""
FILL_EXEC_TYPES = frozenset({ExecType.TRADE, ExecType.PARTIAL_FILL, ExecType.FILL})
CLOSED_EXEC_TYPES = frozenset({ExecType.CANCELED, ExecType.EXPIRED})


Answer = OrderAccepted | OrderRejected | Fill | OrderStatus | OrderClosed


def new_order_single(intent: OrderIntent, transact_time: str, account: str | None = None) -> NewOrderSingle:
    """35=D for ``intent``: a day limit order whose ClOrdID (11) is the intent's deterministic id,
    so any copy of it (a PossDup resend, a look-up) names the one intent."""
    return NewOrderSingle(
        cl_ord_id=intent.client_order_id,
        symbol=intent.symbol,
        side=FIX_SIDES[intent.side],
        order_qty=intent.qty,
        ord_type=OrdType.LIMIT,
        transact_time=transact_time,
        price=intent.price,
        time_in_force=TIME_IN_FORCE_DAY,
        account=account,
    )


def cancel_request(intent: OrderIntent, cl_ord_id: str, transact_time: str) -> OrderCancelRequest:
    """35=F for ``intent``'s order: OrigClOrdID (41) is the intent's id, ``cl_ord_id`` the cancel's
    own (unique too). The example's node never cancels; a node that does sends this, and the
    venue's ExecType 4 report settles the intent DONE (``OrderClosed``)."""
    return OrderCancelRequest(
        orig_cl_ord_id=intent.client_order_id,
        cl_ord_id=cl_ord_id,
        symbol=intent.symbol,
        side=FIX_SIDES[intent.side],
        transact_time=transact_time,
        order_qty=intent.qty,
    )


def status_request(client_order_id: str, symbol: str, side: Side, request_id: int) -> OrderStatusRequest:
    """35=H for one order; OrdStatusReqID (790) carries ``request_id`` back in the answer."""
    return OrderStatusRequest(
        cl_ord_id=client_order_id, symbol=symbol, side=FIX_SIDES[side], ord_status_req_id=str(request_id)
    )


def fill_number(epoch: int, msg_seq_num: int) -> int:
    """The ``fill_seq`` positions keeps its place by: the report's MsgSeqNum within its session day
    ``epoch``. It grows with every message, and a resent report (PossDup) keeps its MsgSeqNum, so
    positions takes each fill once however often the venue sends it again."""
    return epoch * SEQUENCE_SPACE + msg_seq_num


def answer_of(report: ExecutionReport, fill_seq: int) -> Answer | None:
    """What ``report`` tells the node, or None (a report that settles nothing, or one without the
    ClOrdID that names the intent: a report about an order this node never sent)."""
    cid = report.cl_ord_id
    if not cid:
        return None
    kind = report.exec_type
    if kind == ExecType.NEW:
        return OrderAccepted(cid, report.order_id)
    if kind == ExecType.REJECTED:
        return rejected(report, cid)
    if kind in FILL_EXEC_TYPES:
        side = NODE_SIDES.get(report.side)
        qty, price = report.last_qty, report.last_px
        if side is None or qty is None or price is None:
            return None
        return Fill(fill_seq, cid, report.order_id, report.symbol, side, qty, price, report.leaves_qty)
    if kind in CLOSED_EXEC_TYPES:
        return OrderClosed(cid, report.text or f"ExecType {kind}")
    if kind == ExecType.ORDER_STATUS:
        return status_of(report, cid)
    return None


def rejected(report: ExecutionReport, cid: str) -> OrderRejected:
    reason = report.text or f"rejected by the venue (OrdRejReason {report.ord_rej_reason})"
    return OrderRejected(cid, reason, duplicate=report.ord_rej_reason == DUPLICATE_ORDER)


def status_of(report: ExecutionReport, cid: str) -> OrderStatus | OrderRejected:
    text = report.ord_status_req_id or ""
    request_id = int(text) if text.isdigit() else 0
    if report.ord_status == OrdStatus.REJECTED:
        if report.ord_rej_reason == UNKNOWN_ORDER:
            return OrderStatus(request_id, cid, found=False)
        return rejected(report, cid)
    state = ORDER_STATES.get(report.ord_status, OrderState.ACCEPTED)
    qty = report.order_qty if report.order_qty is not None else report.cum_qty + report.leaves_qty
    return OrderStatus(request_id, cid, True, state, report.order_id, report.cum_qty, qty)
