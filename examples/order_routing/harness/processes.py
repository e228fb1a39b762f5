"""The node processes a run starts: finding, arming and stopping them.

Each node process shares a control folder with its run
(``HarnessConfig.control_dir``). The node leaves its pid there (``node.pid``),
so the run can SIGKILL the node itself rather than the heart that restarts
it. The run leaves a one-shot order there (``die-after``, a count of order
frames), which the node's next process takes and removes as it starts: it
SIGKILLs itself right after writing that many orders (the dead zone).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from pathlib import Path

PID_FILE = "node.pid"
DIE_AFTER_FILE = "die-after"


def alive(pid: int) -> bool:
    """True while a process with ``pid`` exists (a zombie too)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def stop_group(process: asyncio.subprocess.Process, timeout: float) -> int:
    """SIGTERM the process (heart forwards it), wait bounded, then SIGKILL its whole group;
    returns its exit code."""
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(process.wait(), timeout)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    await process.wait()
    return process.returncode if process.returncode is not None else -1


# -- the run's side -------------------------------------------------------------------------


def node_pid(control: Path, heart_pid: int) -> int | None:
    """The pid the node under ``heart_pid`` left in ``control``, while it is alive (None between
    two of its processes)."""
    try:
        pid = int((control / PID_FILE).read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return pid if pid != heart_pid and alive(pid) else None


def arm_dead_zone(control: Path, sends: int) -> None:
    """Order the node's next process to SIGKILL itself right after its ``sends``-th order frame."""
    (control / DIE_AFTER_FILE).write_text(str(sends))


def disarm_dead_zone(control: Path) -> None:
    """Take back an order no process has taken yet."""
    with contextlib.suppress(FileNotFoundError):
        (control / DIE_AFTER_FILE).unlink()


# -- the node's side ------------------------------------------------------------------------


def write_pid(control: str) -> None:
    """Leave this process's pid in ``control``, where its run looks for it."""
    with open(os.path.join(control, PID_FILE), "w") as pid_file:
        pid_file.write(str(os.getpid()))


def take_dead_zone_order(control: str) -> int | None:
    """The order frames after which this process must die, if its run left an order in
    ``control`` (0 for an empty one); the order is removed, so it is taken once."""
    order = os.path.join(control, DIE_AFTER_FILE)
    try:
        with open(order) as file:
            sends = int(file.read().strip() or 0)
        os.unlink(order)
    except FileNotFoundError:
        return None
    return sends
