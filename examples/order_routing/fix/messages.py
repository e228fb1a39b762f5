"""Typed FIX messages: the session's admin messages and the example's application messages.

Each message is a frozen msgspec Struct whose fields map to FIX tags (``TAGS``) and whose
``MSG_TYPE`` is its MsgType (35). A field left ``None`` is not sent. Field types are ``str``,
``int``, ``float`` and ``bool`` (Y/N on the wire). Enumerated values (Side, ExecType, OrdStatus)
are the wire's own characters, named by the constant classes below, so that a venue's value
this module does not know still parses.

The standard header (8, 9, 35, 49, 56, 34, 52, 43, 122) is not part of a message: the codec
writes it and hands it back as ``Header``.
"""

from __future__ import annotations

from typing import ClassVar, Union

import msgspec


class Header(msgspec.Struct, frozen=True):
    """The standard header of a received (or stored) message."""

    begin_string: str
    msg_type: str
    sender_comp_id: str
    target_comp_id: str
    msg_seq_num: int
    sending_time: str
    poss_dup: bool = False
    orig_sending_time: str | None = None


class Side:
    BUY = "1"
    SELL = "2"


class OrdType:
    MARKET = "1"
    LIMIT = "2"


class ExecType:
    NEW = "0"
    PARTIAL_FILL = "1"  # FIX 4.2; FIX 4.4 reports fills as TRADE
    FILL = "2"  # FIX 4.2
    CANCELED = "4"
    REPLACED = "5"
    PENDING_CANCEL = "6"
    REJECTED = "8"
    PENDING_NEW = "A"
    EXPIRED = "C"
    TRADE = "F"
    ORDER_STATUS = "I"


class OrdStatus:
    NEW = "0"
    PARTIALLY_FILLED = "1"
    FILLED = "2"
    CANCELED = "4"
    PENDING_CANCEL = "6"
    REJECTED = "8"
    PENDING_NEW = "A"
    EXPIRED = "C"


class SessionRejectReason:
    """Reject (35=3) tag 373 values the session sends."""

    REQUIRED_TAG_MISSING = 1
    VALUE_INCORRECT = 5
    INCORRECT_DATA_FORMAT = 6
    COMP_ID_PROBLEM = 9
    SENDING_TIME_ACCURACY = 10
    INVALID_MSG_TYPE = 11


class BusinessRejectReason:
    """BusinessMessageReject (35=j) tag 380 values."""

    OTHER = 0
    UNKNOWN_ID = 1
    UNSUPPORTED_MESSAGE_TYPE = 3
    APPLICATION_NOT_AVAILABLE = 4


class FixMessageBase(msgspec.Struct, frozen=True):
    """What every typed message declares: its MsgType and its fields' tags, in wire order."""

    MSG_TYPE: ClassVar[str]
    TAGS: ClassVar[dict[str, int]]
    ADMIN: ClassVar[bool] = False


# ---- session (admin) messages ---------------------------------------------------------------


class Logon(FixMessageBase, frozen=True):
    MSG_TYPE = "A"
    ADMIN = True
    TAGS = {"encrypt_method": 98, "heart_bt_int": 108, "reset_seq_num_flag": 141}
    heart_bt_int: int
    encrypt_method: int = 0
    reset_seq_num_flag: bool | None = None


class Heartbeat(FixMessageBase, frozen=True):
    MSG_TYPE = "0"
    ADMIN = True
    TAGS = {"test_req_id": 112}
    test_req_id: str | None = None


class TestRequest(FixMessageBase, frozen=True):
    MSG_TYPE = "1"
    ADMIN = True
    TAGS = {"test_req_id": 112}
    test_req_id: str


class ResendRequest(FixMessageBase, frozen=True):
    """Asks for ``begin_seq_no`` to ``end_seq_no`` again; ``end_seq_no=0`` means "all after"."""

    MSG_TYPE = "2"
    ADMIN = True
    TAGS = {"begin_seq_no": 7, "end_seq_no": 16}
    begin_seq_no: int
    end_seq_no: int


class Reject(FixMessageBase, frozen=True):
    """A session-level reject of message ``ref_seq_num``."""

    MSG_TYPE = "3"
    ADMIN = True
    TAGS = {
        "ref_seq_num": 45,
        "text": 58,
        "ref_tag_id": 371,
        "ref_msg_type": 372,
        "session_reject_reason": 373,
    }
    ref_seq_num: int
    text: str | None = None
    ref_tag_id: int | None = None
    ref_msg_type: str | None = None
    session_reject_reason: int | None = None


class SequenceReset(FixMessageBase, frozen=True):
    """GapFill (``gap_fill_flag=True``: the seqs up to ``new_seq_no`` carried nothing to resend)
    or Reset (the receiver's expected seq jumps to ``new_seq_no``, whatever this one's seq)."""

    MSG_TYPE = "4"
    ADMIN = True
    TAGS = {"new_seq_no": 36, "gap_fill_flag": 123}
    new_seq_no: int
    gap_fill_flag: bool | None = None


class Logout(FixMessageBase, frozen=True):
    MSG_TYPE = "5"
    ADMIN = True
    TAGS = {"text": 58}
    text: str | None = None


# ---- application messages -------------------------------------------------------------------


class NewOrderSingle(FixMessageBase, frozen=True):
    MSG_TYPE = "D"
    TAGS = {
        "account": 1,
        "cl_ord_id": 11,
        "handl_inst": 21,
        "order_qty": 38,
        "ord_type": 40,
        "price": 44,
        "side": 54,
        "symbol": 55,
        "time_in_force": 59,
        "transact_time": 60,
    }
    cl_ord_id: str
    symbol: str
    side: str
    order_qty: int
    ord_type: str
    transact_time: str
    price: float | None = None
    time_in_force: str | None = None
    account: str | None = None
    handl_inst: str | None = None


class OrderCancelRequest(FixMessageBase, frozen=True):
    MSG_TYPE = "F"
    TAGS = {
        "cl_ord_id": 11,
        "order_id": 37,
        "order_qty": 38,
        "orig_cl_ord_id": 41,
        "side": 54,
        "symbol": 55,
        "transact_time": 60,
    }
    orig_cl_ord_id: str
    cl_ord_id: str
    symbol: str
    side: str
    transact_time: str
    order_qty: int | None = None
    order_id: str | None = None


class OrderStatusRequest(FixMessageBase, frozen=True):
    MSG_TYPE = "H"
    TAGS = {"cl_ord_id": 11, "order_id": 37, "side": 54, "symbol": 55, "ord_status_req_id": 790}
    cl_ord_id: str
    symbol: str
    side: str
    order_id: str | None = None
    ord_status_req_id: str | None = None


class ExecutionReport(FixMessageBase, frozen=True):
    MSG_TYPE = "8"
    TAGS = {
        "avg_px": 6,
        "cl_ord_id": 11,
        "cum_qty": 14,
        "exec_id": 17,
        "exec_trans_type": 20,
        "last_px": 31,
        "last_qty": 32,
        "order_id": 37,
        "order_qty": 38,
        "ord_status": 39,
        "orig_cl_ord_id": 41,
        "price": 44,
        "side": 54,
        "symbol": 55,
        "text": 58,
        "ord_rej_reason": 103,
        "exec_type": 150,
        "leaves_qty": 151,
        "ord_status_req_id": 790,
    }
    order_id: str
    exec_id: str
    exec_type: str
    ord_status: str
    symbol: str
    side: str
    leaves_qty: int
    cum_qty: int
    avg_px: float
    cl_ord_id: str | None = None
    orig_cl_ord_id: str | None = None
    order_qty: int | None = None
    price: float | None = None
    last_qty: int | None = None
    last_px: float | None = None
    text: str | None = None
    ord_rej_reason: int | None = None
    ord_status_req_id: str | None = None
    exec_trans_type: str | None = None
    """FIX 4.2's required ExecTransType (20); FIX 4.4 venues leave it out."""


class OrderCancelReject(FixMessageBase, frozen=True):
    MSG_TYPE = "9"
    TAGS = {
        "cl_ord_id": 11,
        "order_id": 37,
        "ord_status": 39,
        "orig_cl_ord_id": 41,
        "text": 58,
        "cxl_rej_reason": 102,
        "cxl_rej_response_to": 434,
    }
    order_id: str
    cl_ord_id: str
    orig_cl_ord_id: str
    ord_status: str
    cxl_rej_response_to: str
    cxl_rej_reason: int | None = None
    text: str | None = None


class BusinessMessageReject(FixMessageBase, frozen=True):
    MSG_TYPE = "j"
    TAGS = {
        "ref_seq_num": 45,
        "text": 58,
        "ref_msg_type": 372,
        "business_reject_ref_id": 379,
        "business_reject_reason": 380,
    }
    ref_msg_type: str
    business_reject_reason: int
    ref_seq_num: int | None = None
    business_reject_ref_id: str | None = None
    text: str | None = None


class UnknownMessage(FixMessageBase, frozen=True):
    """A message of a MsgType this module has no type for: its body fields as received."""

    MSG_TYPE = ""
    TAGS = {}
    msg_type: str
    fields: tuple[tuple[int, str], ...] = ()


AdminMessage = Union[Logon, Heartbeat, TestRequest, ResendRequest, Reject, SequenceReset, Logout]  # noqa: UP007
ApplicationMessage = Union[  # noqa: UP007
    NewOrderSingle,
    OrderCancelRequest,
    OrderStatusRequest,
    ExecutionReport,
    OrderCancelReject,
    BusinessMessageReject,
]
Message = Union[AdminMessage, ApplicationMessage, UnknownMessage]  # noqa: UP007

MESSAGE_TYPES: dict[str, type[FixMessageBase]] = {
    cls.MSG_TYPE: cls
    for cls in (
        Logon,
        Heartbeat,
        TestRequest,
        ResendRequest,
        Reject,
        SequenceReset,
        Logout,
        NewOrderSingle,
        OrderCancelRequest,
        OrderStatusRequest,
        ExecutionReport,
        OrderCancelReject,
        BusinessMessageReject,
    )
}
"""Every typed message by its MsgType (35)."""

ADMIN_MSG_TYPES = frozenset(t for t, cls in MESSAGE_TYPES.items() if cls.ADMIN)
"""The session-level MsgTypes: always gap-filled, never re-sent, on a ResendRequest."""
