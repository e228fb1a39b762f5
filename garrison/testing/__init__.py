"""garrison's test kit: probes, fault injection, event and log assertions, virtual time.

Importable without pytest: ``ActorTestKit`` gives a seeded node on a manual
clock with everything below. With pytest, the ``garrison`` plugin (installed
with garrison, opt out with ``-p no:garrison``) offers the same as fixtures:
``node``, ``clock``, ``probe``, ``events``, ``faults``, ``logs``,
``node_guard``, ``journal``. See docs/testing.md, "Testing your actors".
"""

from garrison.testing._events import EventRecorder
from garrison.testing._faults import Crash, Fault, Faults, Hang
from garrison.testing._guard import NodeGuard
from garrison.testing._injected import InjectedFault
from garrison.testing._journal import JournalFault, TrackedJournal
from garrison.testing._kit import ActorTestKit
from garrison.testing._logs import LogCapture, LogRecord
from garrison.testing._matching import Matcher
from garrison.testing._probe import TestProbe
from garrison.testing._process import ChildProcess, kill_process, send_signal
from garrison.testing._waiting import wait_until

__all__ = [
    "ActorTestKit",
    "ChildProcess",
    "Crash",
    "EventRecorder",
    "Fault",
    "Faults",
    "Hang",
    "InjectedFault",
    "JournalFault",
    "LogCapture",
    "LogRecord",
    "Matcher",
    "NodeGuard",
    "TestProbe",
    "TrackedJournal",
    "kill_process",
    "send_signal",
    "wait_until",
]
