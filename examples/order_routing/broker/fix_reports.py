"""The broker simulator's FIX dialect: FIX requests as the venue's own requests, and the venue's
answers as ExecutionReports (35=8), so one Venue serves both protocols.

ExecIDs (17) are unique per venue: ``<order_id>-new``, ``<order_id>-rej``, ``F<fill_seq>``,
``S<n>`` for status reports. A look-up of an order the venue does not know is answered as FIX
venues do: ExecType I, OrdStatus 8 (rejected), OrdRejReason 5 (unknown order).
"""

from __future__ import annotations

import itertools

import msgspec

from ..fix.messages import (
    ExecType,
    ExecutionReport,
    NewOrderSingle,
    OrdStatus,
)
from ..fix.messages import Side as FixSide
from ..protocol import (
    CancelResult,
    Fill,
    NewOrder,
    OrderAccepted,
    OrderRejected,
    OrderState,
    OrderStatus,
    Side,
)

UNKNOWN_ORDER = 5
DUPLICATE_ORDER = 6
OTHER_REASON = 99
SIDES = {FixSide.BUY: Side.BUY, FixSide.SELL: Side.SELL}
FIX_SIDES = {Side.BUY: FixSide.BUY, Side.SELL: FixSide.SELL}
ORD_STATUS = {
    OrderState.ACCEPTED: OrdStatus.NEW,
    OrderState.PARTIALLY_FILLED: OrdStatus.PARTIALLY_FILLED,
    OrderState.FILLED: OrdStatus.FILLED,
    OrderState.CANCELLED: OrdStatus.CANCELED,
}


def new_order_of(message: NewOrderSingle) -> NewOrder | str:
    """The venue's NewOrder for a 35=D, or why it cannot be one (the venue checks the rest)."""
    side = SIDES.get(message.side)
    if side is None:
        return f"Side (54) {message.side!r} is not 1 (buy) or 2 (sell)"
    if message.price is None:
        return "Price (44) is required: the venue takes limit orders only"
    return NewOrder(message.cl_ord_id, message.symbol, side, message.order_qty, message.price)


class ReportWriter:
    """Turns the venue's answers to one client into ExecutionReports; remembers each order it was
    sent (symbol, side, qty), which every report repeats."""

    def __init__(self, begin_string: str) -> None:
        self.orders: dict[str, NewOrder] = {}
        self.fix42 = begin_string == "FIX.4.2"
        self.status_ids = itertools.count(1)

    def remember(self, order: NewOrder) -> None:
        self.orders.setdefault(order.client_order_id, order)

    def report(self, answer: object) -> ExecutionReport | None:
        """The report for one of the venue's answers, or None for what FIX says otherwise (Welcome)."""
        match answer:
            case OrderAccepted(client_order_id=cid, order_id=order_id):
                order = self.orders.get(cid)
                return self.base(cid, order, order_id, f"{order_id}-new", ExecType.NEW, OrdStatus.NEW,
                                 leaves=order.qty if order else 0, cum=0)  # fmt: skip
            case OrderRejected(client_order_id=cid, reason=reason, duplicate=duplicate):
                order = self.orders.get(cid)
                report = self.base(cid, order, "NONE", f"rej-{next(self.status_ids)}", ExecType.REJECTED,
                                   OrdStatus.REJECTED, leaves=0, cum=0)  # fmt: skip
                return _replace(
                    report, text=reason, ord_rej_reason=DUPLICATE_ORDER if duplicate else OTHER_REASON
                )
            case Fill():
                return self.fill(answer)
            case OrderStatus():
                return self.status(answer)
            case CancelResult(client_order_id=cid, cancelled=True):
                order = self.orders.get(cid)
                return self.base(cid, order, "", f"cxl-{next(self.status_ids)}", ExecType.CANCELED,
                                 OrdStatus.CANCELED, leaves=0, cum=0)  # fmt: skip
        return None

    def fill(self, fill: Fill) -> ExecutionReport:
        order = self.orders.get(fill.client_order_id)
        total = order.qty if order is not None else fill.qty + fill.leaves_qty
        cum = total - fill.leaves_qty
        status = OrdStatus.FILLED if fill.leaves_qty == 0 else OrdStatus.PARTIALLY_FILLED
        kind = ExecType.TRADE
        if self.fix42:
            kind = ExecType.FILL if fill.leaves_qty == 0 else ExecType.PARTIAL_FILL
        return ExecutionReport(
            order_id=fill.order_id,
            # A ghost fill (the venue's own bug) carries an ExecID of its own, as a real venue's would.
            exec_id=f"F{fill.fill_seq}" if order is not None else f"X{fill.fill_seq}-{fill.client_order_id}",
            exec_type=kind,
            ord_status=status,
            symbol=fill.symbol,
            side=FIX_SIDES[fill.side],
            leaves_qty=fill.leaves_qty,
            cum_qty=cum,
            avg_px=fill.price,
            cl_ord_id=fill.client_order_id,
            order_qty=total,
            price=fill.price,
            last_qty=fill.qty,
            last_px=fill.price,
            exec_trans_type="0" if self.fix42 else None,
        )

    def status(self, status: OrderStatus) -> ExecutionReport:
        cid = status.client_order_id
        order = self.orders.get(cid)
        exec_id = f"S{next(self.status_ids)}"
        if not status.found or status.state is None:
            report = self.base(cid, order, "NONE", exec_id, ExecType.ORDER_STATUS, OrdStatus.REJECTED, 0, 0)
            return _replace(
                report,
                ord_rej_reason=UNKNOWN_ORDER,
                text="unknown order",
                ord_status_req_id=str(status.request_id),
            )
        closed = status.state in (OrderState.FILLED, OrderState.CANCELLED)
        report = self.base(
            cid, order, status.order_id, exec_id, ExecType.ORDER_STATUS, ORD_STATUS[status.state],
            leaves=0 if closed else status.qty - status.filled_qty, cum=status.filled_qty,
        )  # fmt: skip
        return _replace(report, order_qty=status.qty, ord_status_req_id=str(status.request_id))

    def base(
        self, cid: str, order: NewOrder | None, order_id: str, exec_id: str, kind: str, status: str,
        leaves: int, cum: int,
    ) -> ExecutionReport:  # fmt: skip
        return ExecutionReport(
            order_id=order_id or "NONE",
            exec_id=exec_id,
            exec_type=kind,
            ord_status=status,
            symbol=order.symbol if order is not None else "NA",
            side=FIX_SIDES[order.side] if order is not None else FixSide.BUY,
            leaves_qty=leaves,
            cum_qty=cum,
            avg_px=0.0,
            cl_ord_id=cid,
            order_qty=order.qty if order is not None else None,
            price=order.price if order is not None else None,
            exec_trans_type="0" if self.fix42 else None,
        )


def _replace(report: ExecutionReport, **changes: object) -> ExecutionReport:
    return msgspec.structs.replace(report, **changes)
