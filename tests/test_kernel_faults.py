"""Kernel faults end cells cleanly: death, restart, interrupt and shutdown in mid-cell.

A real server, real ipykernels. Every fault must end the running cell promptly (idle,
with an error output naming what happened, and what it printed before kept), cancel the
cells queued behind it visibly, and leave the kernel usable for the next execution.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

from .conftest import Server, Session, write_notebook
from .test_execution import run_to_idle, stream_text
from .yclient import YClient

#: How soon a fault must show in the document (DESIGN: "a couple of seconds at most").
MAX_DETECTION = 2.0

#: Prints numbered lines for a minute: long enough to be hit by any fault.
LOOP = "import time\nfor i in range(600):\n    print(i, flush=True)\n    time.sleep(0.1)"

#: Prints a line, waits for the test's go (a file), then dies without any cleanup.
#: The handshake matters: os._exit skips zmq's linger, so a line printed just before
#: it may never leave the kernel process; and it gives the moment of death exactly.
DIE = """import os, pathlib, time
print('before death', flush=True)
go = pathlib.Path({flag!r})
while not go.exists():
    time.sleep(0.01)
os._exit(1)"""


def errors(outputs: list[dict]) -> list[dict]:
    return [o for o in outputs if o["output_type"] == "error"]


async def wait_idle(client: YClient, cell: str, timeout: float = 30) -> float:
    """Wait until ``cell`` is idle; return when that was seen (monotonic)."""
    await client.wait_for(lambda: client.state(cell) == "idle", timeout)
    return time.monotonic()


async def wait_running(client: YClient, cell: str, text: str) -> None:
    """Wait until ``cell`` runs and its stream output contains ``text``."""
    await client.wait_for(
        lambda: client.state(cell) == "running" and text in stream_text(client.outputs(cell))
    )


async def execute_when_alive(
    session: Session, kernel: str, room: str, cell: str, timeout: float = 30
) -> None:
    """Execute ``cell`` as soon as the server accepts it again.

    After a kernel death the endpoint answers 409 until jupyter_server's restarter has
    brought the kernel back, on its own timer (``time_to_dead``, 3 s); REST clients get
    no event for that moment, so ask again until it accepts.
    """
    deadline = time.monotonic() + timeout
    while True:
        r = await session.execute(kernel, room, cell)
        if r.status_code == 202:
            return
        assert r.status_code == 409, r.text
        assert time.monotonic() < deadline, "the kernel never came back"
        await asyncio.sleep(0.1)


async def kill(pid: int) -> None:
    """SIGKILL a kernel process and wait until it has exited.

    Without the wait the server may still see it alive and accept a cell for it: that
    cell then (rightly) ends as "died", which is not what the calling test is about.
    """
    pidfd = os.pidfd_open(pid)
    try:
        os.kill(pid, signal.SIGKILL)
        loop = asyncio.get_running_loop()
        exited = asyncio.Event()
        loop.add_reader(pidfd, exited.set)  # a pidfd is readable once the process exited
        try:
            await asyncio.wait_for(exited.wait(), 10)
        finally:
            loop.remove_reader(pidfd)
    finally:
        os.close(pidfd)


def assert_cancelled(client: YClient, cell: str) -> None:
    """The queued ``cell`` never ran: as stock JupyterLab leaves such a cell of a Run All
    after a restart, idle with no output and ``[ ]``; only the cell that was running
    says what happened."""
    assert client.state(cell) == "idle"
    assert client.cell(cell)["execution_count"] is None
    assert client.outputs(cell) == []


async def test_kernel_death_mid_cell(server: Server, session: Session, tmp_path: Path):
    flag = tmp_path / "die-now"
    path, cells = write_notebook(
        server.root,
        "death.ipynb",
        [DIE.format(flag=str(flag)), "print('queued 1')", "print('queued 2')", "print('back')"],
    )
    kernel, room, client = await session.prepare(path)
    for cell in cells[:3]:
        assert (await session.execute(kernel, room, cell)).status_code == 202
    await wait_running(client, cells[0], "before death\n")
    # Behind it, the other two are queued: shown as running ([*]) like in the classic UI.
    assert client.state(cells[1]) == client.state(cells[2]) == "running"

    flag.touch()
    died = time.monotonic()
    latency = await wait_idle(client, cells[0]) - died
    print(f"kernel death detected in {latency:.3f} s")
    assert latency < MAX_DETECTION

    outputs = client.outputs(cells[0])
    assert stream_text(outputs) == "before death\n"
    [error] = errors(outputs)
    assert outputs[-1] == error
    assert error["ename"] == "KernelDied"
    assert "died" in error["evalue"]
    for cell in cells[1:3]:
        await wait_idle(client, cell)
        assert_cancelled(client, cell)

    # jupyter_server's restarter brings the kernel back; the server's client goes on.
    await execute_when_alive(session, kernel, room, cells[3])
    await run_to_idle(client, cells[3])
    assert client.outputs(cells[3]) == [
        {"output_type": "stream", "name": "stdout", "text": "back\n"}
    ]
    assert client.cell(cells[3])["execution_count"] == 1
    await client.disconnect()


#: Cells queued behind the running one in the fault tests: the runner sends them to the
#: kernel ahead of time (up to 8), so they are in the kernel when the fault comes.
QUEUED = 4


async def test_kernel_restart_mid_cell(server: Server, session: Session):
    path, cells = write_notebook(
        server.root,
        "restart.ipynb",
        [LOOP, *[f"print('queued {i}')" for i in range(QUEUED)], "print('after restart')"],
    )
    kernel, room, client = await session.prepare(path)
    for cell in cells[: 1 + QUEUED]:
        assert (await session.execute(kernel, room, cell)).status_code == 202
    await wait_running(client, cells[0], "0\n1\n")

    asked = time.monotonic()
    restart = asyncio.ensure_future(session.http.post(f"/api/kernels/{kernel}/restart"))
    latency = await wait_idle(client, cells[0]) - asked
    print(f"kernel restart detected in {latency:.3f} s")
    assert latency < MAX_DETECTION
    assert (await restart).status_code == 200

    outputs = client.outputs(cells[0])
    assert stream_text(outputs).startswith("0\n1\n")
    # jupyter_client interrupts a kernel before it shuts it down, so the kernel's own
    # KeyboardInterrupt may come first; the last word says what really happened.
    assert outputs[-1]["output_type"] == "error"
    assert outputs[-1]["ename"] == "KernelRestarted"
    assert "restarted" in outputs[-1]["evalue"]
    for cell in cells[1 : 1 + QUEUED]:
        await wait_idle(client, cell)
        assert_cancelled(client, cell)

    last = cells[-1]
    assert (await session.execute(kernel, room, last)).status_code == 202
    await run_to_idle(client, last)
    assert stream_text(client.outputs(last)) == "after restart\n"
    assert client.cell(last)["execution_count"] == 1  # a new kernel counts from 1
    await client.disconnect()


async def test_execute_right_after_restarts_between_cells(server: Server, session: Session):
    # The restarted kernel publishes on a new socket: what it sends before the server's
    # subscription reconnects is lost, so the runner must not execute before then.
    rounds = 3
    path, cells = write_notebook(
        server.root, "restart-idle.ipynb", [f"print('round {i}')" for i in range(rounds + 1)]
    )
    kernel, room, client = await session.prepare(path)
    assert (await session.execute(kernel, room, cells[0])).status_code == 202
    await run_to_idle(client, cells[0])
    for i in range(1, rounds + 1):
        r = await session.http.post(f"/api/kernels/{kernel}/restart")
        assert r.status_code == 200, r.text
        assert (await session.execute(kernel, room, cells[i])).status_code == 202
        await run_to_idle(client, cells[i], timeout=20)
        assert stream_text(client.outputs(cells[i])) == f"round {i}\n"
        assert client.cell(cells[i])["execution_count"] == 1
    await client.disconnect()


async def test_kernel_killed_between_cells_comes_back(server: Server, session: Session):
    path, cells = write_notebook(
        server.root, "killed-idle.ipynb", ["import os\nprint(os.getpid())", "print('back')"]
    )
    kernel, room, client = await session.prepare(path)
    assert (await session.execute(kernel, room, cells[0])).status_code == 202
    await run_to_idle(client, cells[0])
    await kill(int(stream_text(client.outputs(cells[0]))))
    await execute_when_alive(session, kernel, room, cells[1])
    await run_to_idle(client, cells[1], timeout=20)
    assert stream_text(client.outputs(cells[1])) == "back\n"
    assert client.cell(cells[1])["execution_count"] == 1
    await client.disconnect()


async def test_interrupt_mid_cell(server: Server, session: Session):
    path, cells = write_notebook(
        server.root,
        "interrupt.ipynb",
        [LOOP, *[f"print('queued {i}')" for i in range(QUEUED)], "print('after')"],
    )
    kernel, room, client = await session.prepare(path)
    for cell in cells[: 1 + QUEUED]:
        assert (await session.execute(kernel, room, cell)).status_code == 202
    await wait_running(client, cells[0], "0\n1\n")

    asked = time.monotonic()
    r = await session.http.post(f"/api/kernels/{kernel}/interrupt")
    assert r.status_code == 204, r.text
    latency = await wait_idle(client, cells[0]) - asked
    print(f"interrupt ended the cell in {latency:.3f} s")
    assert latency < MAX_DETECTION

    outputs = client.outputs(cells[0])
    assert stream_text(outputs).startswith("0\n1\n")
    [error] = errors(outputs)
    assert error["ename"] == "KeyboardInterrupt"
    assert client.cell(cells[0])["execution_count"] == 1
    # An error aborts the queued cells, like stop_on_error in the classic frontend (the
    # kernel aborts those it was sent).
    for cell in cells[1 : 1 + QUEUED]:
        await wait_idle(client, cell)
        assert client.outputs(cell) == []
        assert client.cell(cell)["execution_count"] is None

    assert (await session.execute(kernel, room, cells[-1])).status_code == 202
    await run_to_idle(client, cells[-1])
    assert stream_text(client.outputs(cells[-1])) == "after\n"
    await client.disconnect()


async def test_kernel_shutdown_mid_cell(server: Server, session: Session):
    path, cells = write_notebook(server.root, "shutdown.ipynb", [LOOP, "print('queued')"])
    kernel, room, client = await session.prepare(path)
    for cell in cells:
        assert (await session.execute(kernel, room, cell)).status_code == 202
    await wait_running(client, cells[0], "0\n1\n")

    asked = time.monotonic()
    deleted = asyncio.ensure_future(session.http.delete(f"/api/kernels/{kernel}"))
    latency = await wait_idle(client, cells[0]) - asked
    print(f"kernel shutdown detected in {latency:.3f} s")
    assert latency < MAX_DETECTION
    assert (await deleted).status_code == 204

    outputs = client.outputs(cells[0])
    assert stream_text(outputs).startswith("0\n1\n")
    assert outputs[-1]["output_type"] == "error"
    assert outputs[-1]["ename"] == "KernelShutdown"
    assert "shut down" in outputs[-1]["evalue"]
    await wait_idle(client, cells[1])
    assert_cancelled(client, cells[1])
    r = await session.execute(kernel, room, cells[1])
    assert r.status_code == 404
    await client.disconnect()


async def test_fault_output_reaches_the_export(server: Server, session: Session):
    # The fault's error output is ordinary document state: exported and saved like any.
    path, [cell] = write_notebook(server.root, "fault-export.ipynb", [LOOP])
    kernel, room, client = await session.prepare(path)
    assert (await session.execute(kernel, room, cell)).status_code == 202
    await wait_running(client, cell, "0\n")
    assert (await session.http.post(f"/api/kernels/{kernel}/restart")).status_code == 200
    await wait_idle(client, cell)
    exported = await session.export(path)
    assert '"KernelRestarted"' in exported
    await client.disconnect()


#: Ignores SIGINT, so jupyter_client's interrupt before a shutdown does nothing and the
#: process lingers until it is terminated (``shutdown_wait_time`` / 2 = 2.5 s later).
STUBBORN = """import signal, time
signal.signal(signal.SIGINT, signal.SIG_IGN)
print('stubborn', flush=True)
while True:
    time.sleep(0.01)"""


async def test_restart_of_a_kernel_that_ignores_interrupts(server: Server, session: Session):
    path, cells = write_notebook(server.root, "stubborn.ipynb", [STUBBORN, "print('after')"])
    kernel, room, client = await session.prepare(path)
    assert (await session.execute(kernel, room, cells[0])).status_code == 202
    await wait_running(client, cells[0], "stubborn\n")

    asked = time.monotonic()
    restart = asyncio.ensure_future(session.http.post(f"/api/kernels/{kernel}/restart"))
    latency = await wait_idle(client, cells[0]) - asked
    print(f"restart of a stubborn kernel detected in {latency:.3f} s")
    assert latency < MAX_DETECTION
    outputs = client.outputs(cells[0])
    assert stream_text(outputs) == "stubborn\n"
    assert outputs[-1]["ename"] == "KernelRestarted"
    assert (await restart).status_code == 200

    assert (await session.execute(kernel, room, cells[1])).status_code == 202
    await run_to_idle(client, cells[1])
    assert stream_text(client.outputs(cells[1])) == "after\n"
    assert client.cell(cells[1])["execution_count"] == 1
    await client.disconnect()
