"""Child processes for crash tests: SIGKILL at a chosen moment, always reaped.

These run real subprocesses; each wait is bounded by a real-time timeout.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import pytest

from garrison.testing import ChildProcess, Faults, kill_process, send_signal

SLEEPER = "import time; print('ready', flush=True); time.sleep(60); print('survived', flush=True)"
COUNTER = (
    "import time\n"
    "for step in range(1, 4):\n"
    "    print(f'step {step}', flush=True)\n"
    "time.sleep(60)\n"
    "print('survived', flush=True)\n"
)


def reaped(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


async def test_kill_process_after_output_kills_right_after_that_line_and_reaps() -> None:
    async with await ChildProcess.start(sys.executable, "-c", COUNTER) as process:
        status = await kill_process(process, after_output="step 2", timeout=30.0)
        assert status == -signal.SIGKILL
        assert process.returncode == -signal.SIGKILL
        assert "step 2" in process.output
        assert "survived" not in process.output
        assert reaped(process.pid)


async def test_kill_process_without_a_moment_kills_at_once() -> None:
    process = await ChildProcess.start(sys.executable, "-c", SLEEPER)
    try:
        assert await process.wait_for_output("ready") == "ready"
        assert await kill_process(process) == -signal.SIGKILL
    finally:
        await process.aclose()
    assert reaped(process.pid)


async def test_waiting_for_a_line_the_process_never_prints_fails_with_its_output() -> None:
    async with await ChildProcess.start(sys.executable, "-c", "print('only this')") as process:
        with pytest.raises(
            AssertionError, match=r"(?s)expected a line matching 'never'.*ended its output.*only this"
        ):
            await process.wait_for_output("never", timeout=30.0)
        assert await process.wait() == 0


async def test_kill_after_output_that_never_comes_still_kills_and_reaps() -> None:
    process = await ChildProcess.start(sys.executable, "-c", "print('bye')")
    with pytest.raises(AssertionError, match="expected a line matching 'never'"):
        await process.kill(after_output="never", timeout=30.0)
    assert process.returncode is not None
    assert reaped(process.pid)


async def test_faults_close_kills_and_reaps_the_processes_they_started() -> None:
    faults = Faults()
    process = await faults.start_process(sys.executable, "-c", SLEEPER)
    await process.wait_for_output("ready")
    await faults.aclose()
    assert process.returncode == -signal.SIGKILL
    assert reaped(process.pid)


async def test_faults_kill_process_after_output(faults: Faults) -> None:
    process = await faults.start_process(sys.executable, "-c", COUNTER)
    assert await faults.kill_process(process, after_output="step 3") == -signal.SIGKILL
    assert process.output[-1] == "step 3"


async def test_send_signal_never_takes_the_exit_status_from_asyncio() -> None:
    """A process that exits on its own while being signalled still reports its own status."""
    process = await asyncio.create_subprocess_exec(sys.executable, "-c", "import sys; sys.exit(3)")
    try:
        async with asyncio.timeout(30.0):
            while process.returncode is None:
                send_signal(process, signal.SIGCONT)  # harmless to a live process, and to a zombie
                await asyncio.sleep(0.001)
        assert await process.wait() == 3
        assert send_signal(process, signal.SIGKILL) is False  # reaped: never signalled again
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
