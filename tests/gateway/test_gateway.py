"""The core acceptance tests with every kernel remote: a real Jupyter Kernel Gateway
(jupyter-kernel-gateway 3.0.1) runs the kernels, and the server reaches them only through
jupyter_server's gateway client (``GatewayMappingKernelManager``, its websocket client).

Real processes, real ipykernels, real websocket clients of the rooms; nothing mocked.
The kernels run on this machine, under the gateway, so a test can kill one by its pid.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import nbformat
import websockets

from ..conftest import TOKEN, Server, Session, write_notebook
from ..test_execution import run_to_idle, stream_text
from ..test_kernel_faults import assert_cancelled, errors, execute_when_alive, kill, wait_running
from .conftest import KernelGateway

#: How soon a fault must show in the document. The gateway's restarter finds a dead
#: kernel within its own poll (3 s), and tells its websocket clients then.
MAX_DETECTION = 8.0

#: Prints numbered lines for a minute: long enough to be hit by any fault.
LOOP = "import time\nfor i in range(600):\n    print(i, flush=True)\n    time.sleep(0.1)"

#: Prints its kernel's pid, then numbered lines for a minute.
PID_LOOP = "import os\nprint(f'pid {os.getpid()}', flush=True)\n" + LOOP

#: Prints 15 lines, waits for the test's go (a file), then 15 more: the second half is
#: printed while the test has no client in the room.
HALVES = """import pathlib, time
for i in range(15):
    print(f'line {{i}}', flush=True)
go = pathlib.Path({flag!r})
while not go.exists():
    time.sleep(0.01)
for i in range(15, 30):
    print(f'line {{i}}', flush=True)
    time.sleep(0.02)"""

#: Busy and silent until the test's go: no message at all while it waits.
WAIT = """import pathlib, time
print('waiting', flush=True)
go = pathlib.Path({flag!r})
while not go.exists():
    time.sleep(0.01)"""

THIRTY = "".join(f"line {i}\n" for i in range(30))


async def kernel_model(session: Session, kernel: str) -> dict[str, Any]:
    r = await session.http.get(f"/api/kernels/{kernel}")
    assert r.status_code == 200, r.text
    model: dict[str, Any] = r.json()
    return model


async def gateway_model(gateway: KernelGateway, kernel: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=gateway.url) as http:
        r = await http.get(f"/api/kernels/{kernel}")
    assert r.status_code == 200, r.text
    model: dict[str, Any] = r.json()
    return model


def parse_time(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)


async def wait_kernel_idle(session: Session, kernel: str, timeout: float = 60) -> None:
    """Wait until the server says the kernel is idle (REST has no event for it)."""
    deadline = time.monotonic() + timeout
    while (await kernel_model(session, kernel))["execution_state"] != "idle":
        assert time.monotonic() < deadline, "the kernel never became idle"
        await asyncio.sleep(0.05)


async def test_the_kernels_are_the_gateways(session: Session, gateway: KernelGateway):
    kernel = await session.start_kernel()
    async with httpx.AsyncClient(base_url=gateway.url) as http:
        listed = (await http.get("/api/kernels")).json()
    assert kernel in [k["id"] for k in listed]


async def test_output_printed_while_no_client_is_connected(
    server: Server, session: Session, tmp_path: Path
):
    flag = tmp_path / "go"
    path, [cell] = write_notebook(server.root, "gw-away.ipynb", [HALVES.format(flag=str(flag))])
    kernel, room, client = await session.prepare(path)
    assert (await session.execute(kernel, room, cell)).status_code == 202
    await client.wait_for(lambda: "line 14\n" in stream_text(client.outputs(cell)))
    await client.disconnect()
    assert stream_text(client.outputs(cell)) == THIRTY[: THIRTY.index("line 15")]

    flag.touch()  # the second half is printed while nobody is in the room
    await wait_kernel_idle(session, kernel)
    await client.reconnect(client.url)
    assert client.outputs(cell) == [{"output_type": "stream", "name": "stdout", "text": THIRTY}]
    assert client.cell(cell)["execution_count"] == 1
    assert client.state(cell) == "idle"
    fresh = await session.client(path)
    assert fresh.outputs(cell) == client.outputs(cell)
    await client.disconnect()
    await fresh.disconnect()


async def test_output_after_quiet(server: Server, session: Session):
    """Output after seconds of quiet, in a cell and after an idle kernel: the gateway's
    client gives up each wait for iopub after 1 s (queue.Empty), which must not end
    the server's reading of the kernel."""
    path, cells = write_notebook(
        server.root,
        "gw-quiet.ipynb",
        ["import time\nprint('before', flush=True)\ntime.sleep(2.5)\nprint('after')",
         "print('next')"],
    )  # fmt: skip
    kernel, room, client = await session.prepare(path)
    assert (await session.execute(kernel, room, cells[0])).status_code == 202
    await run_to_idle(client, cells[0])
    assert stream_text(client.outputs(cells[0])) == "before\nafter\n"
    await asyncio.sleep(2.5)  # the workload: a kernel that sits idle for a while
    assert (await session.execute(kernel, room, cells[1])).status_code == 202
    await run_to_idle(client, cells[1])
    assert stream_text(client.outputs(cells[1])) == "next\n"
    await client.disconnect()


async def test_a_client_that_reconnects_mid_run_loses_nothing(server: Server, session: Session):
    path, [cell] = write_notebook(
        server.root,
        "gw-reconnect.ipynb",
        ["import time\nfor i in range(30):\n    print(f'line {i}', flush=True)\n"
         "    time.sleep(0.05)"],
    )  # fmt: skip
    kernel, room, client = await session.prepare(path)
    assert (await session.execute(kernel, room, cell)).status_code == 202
    await client.wait_for(lambda: "line 3\n" in stream_text(client.outputs(cell)))
    await client.disconnect()
    await client.reconnect(client.url)  # mid-run, with the document it had
    await run_to_idle(client, cell)
    assert client.outputs(cell) == [{"output_type": "stream", "name": "stdout", "text": THIRTY}]
    assert client.cell(cell)["execution_count"] == 1
    await client.disconnect()


async def test_two_clients_see_the_same_output(server: Server, session: Session):
    path, [cell] = write_notebook(
        server.root,
        "gw-two.ipynb",
        ["import time\nfor i in range(20):\n    print(i, flush=True)\n    time.sleep(0.02)\n"
         "display({'text/plain': 'done'}, raw=True)\n42"],
    )  # fmt: skip
    kernel = await session.start_kernel()
    a = await session.client(path)
    b = await session.client(path)
    room = (await session.open(path))["room"]
    assert (await session.execute(kernel, room, cell)).status_code == 202
    await run_to_idle(a, cell)
    await run_to_idle(b, cell)
    assert a.outputs(cell) == b.outputs(cell)
    assert [o["output_type"] for o in a.outputs(cell)] == [
        "stream", "display_data", "execute_result",
    ]  # fmt: skip
    assert stream_text(a.outputs(cell)) == "".join(f"{i}\n" for i in range(20))
    exported = nbformat.reads(await session.export(path), as_version=4)
    assert exported.cells[0].outputs == a.outputs(cell)
    await a.disconnect()
    await b.disconnect()


async def test_progress_bar_collapses_to_its_last_line(server: Server, session: Session):
    path, [cell] = write_notebook(
        server.root,
        "gw-progress.ipynb",
        ["import sys\nfor i in range(2000):\n    sys.stdout.write(f'\\r{i}/2000')\n"
         "    sys.stdout.flush()\nprint()\nprint('done')"],
    )  # fmt: skip
    kernel, room, client = await session.prepare(path)
    longest = 0

    def note() -> None:
        nonlocal longest
        with_text = [o for o in client.outputs(cell) if o["output_type"] == "stream"]
        longest = max([longest, *(len(o["text"]) for o in with_text)])

    client.listeners.append(note)
    assert (await session.execute(kernel, room, cell)).status_code == 202
    await run_to_idle(client, cell)
    assert client.outputs(cell) == [
        {"output_type": "stream", "name": "stdout", "text": "1999/2000\ndone\n"}
    ]
    # Collapsed on the server, all along: no client ever held more than a line or two.
    assert longest <= len("1999/2000\ndone\n")
    await client.disconnect()


async def test_interrupt_mid_cell(server: Server, session: Session):
    path, cells = write_notebook(
        server.root, "gw-interrupt.ipynb", [LOOP, "print('queued')", "print('after')"]
    )
    kernel, room, client = await session.prepare(path)
    for cell in cells[:2]:
        assert (await session.execute(kernel, room, cell)).status_code == 202
    await wait_running(client, cells[0], "0\n1\n")

    r = await session.http.post(f"/api/kernels/{kernel}/interrupt")
    assert r.status_code == 204, r.text
    await client.wait_for(lambda: client.state(cells[0]) == "idle", MAX_DETECTION)
    outputs = client.outputs(cells[0])
    assert stream_text(outputs).startswith("0\n1\n")
    [error] = errors(outputs)
    assert error["ename"] == "KeyboardInterrupt"
    assert client.cell(cells[0])["execution_count"] == 1
    # The error aborts the queued cell (stop_on_error).
    await client.wait_for(lambda: client.state(cells[1]) == "idle")
    assert client.outputs(cells[1]) == []
    assert client.cell(cells[1])["execution_count"] is None

    assert (await session.execute(kernel, room, cells[2])).status_code == 202
    await run_to_idle(client, cells[2])
    assert client.outputs(cells[2]) == [
        {"output_type": "stream", "name": "stdout", "text": "after\n"}
    ]
    assert (await kernel_model(session, kernel))["execution_state"] == "idle"
    await client.disconnect()


async def test_restart_mid_cell(server: Server, session: Session):
    path, cells = write_notebook(
        server.root, "gw-restart.ipynb", [LOOP, "print('queued')", "print('after restart')"]
    )
    kernel, room, client = await session.prepare(path)
    for cell in cells[:2]:
        assert (await session.execute(kernel, room, cell)).status_code == 202
    await wait_running(client, cells[0], "0\n1\n")

    restart = asyncio.ensure_future(session.http.post(f"/api/kernels/{kernel}/restart"))
    await client.wait_for(lambda: client.state(cells[0]) == "idle", MAX_DETECTION)
    assert (await restart).status_code == 200
    outputs = client.outputs(cells[0])
    assert stream_text(outputs).startswith("0\n1\n")
    assert outputs[-1]["output_type"] == "error"
    assert outputs[-1]["ename"] == "KernelRestarted"
    await client.wait_for(lambda: client.state(cells[1]) == "idle")
    assert_cancelled(client, cells[1])

    assert (await session.execute(kernel, room, cells[2])).status_code == 202
    await run_to_idle(client, cells[2])
    assert stream_text(client.outputs(cells[2])) == "after restart\n"
    assert client.cell(cells[2])["execution_count"] == 1  # a new kernel counts from 1
    assert (await kernel_model(session, kernel))["execution_state"] == "idle"
    await client.disconnect()


async def test_kernel_killed_mid_cell(server: Server, session: Session, gateway: KernelGateway):
    path, cells = write_notebook(
        server.root, "gw-death.ipynb", [PID_LOOP, "print('queued')", "print('back')"]
    )
    kernel, room, client = await session.prepare(path)
    for cell in cells[:2]:
        assert (await session.execute(kernel, room, cell)).status_code == 202
    await wait_running(client, cells[0], "\n0\n")
    pid = int(stream_text(client.outputs(cells[0])).split("\n")[0].removeprefix("pid "))

    await kill(pid)  # the kernel process under the gateway, without any clean-up
    died = time.monotonic()
    await client.wait_for(lambda: client.state(cells[0]) == "idle", MAX_DETECTION + 5)
    print(f"kernel death shown in the document after {time.monotonic() - died:.3f} s")
    outputs = client.outputs(cells[0])
    assert stream_text(outputs).startswith(f"pid {pid}\n0\n")
    assert outputs[-1]["output_type"] == "error"
    assert outputs[-1]["ename"] == "KernelDied"
    # A new process, starting or already idle (jupyter_server's rules alone left the
    # gateway's "restarting" until the next cell).
    assert (await kernel_model(session, kernel))["execution_state"] in ("starting", "idle")
    # Listing refreshes every model from the gateway, whose own reading of the kernel
    # stayed on the old ports (it says busy): the server's reading still holds.
    print("the gateway says", (await gateway_model(gateway, kernel))["execution_state"])
    [listed] = [k for k in (await session.http.get("/api/kernels")).json() if k["id"] == kernel]
    assert listed["execution_state"] in ("starting", "idle")
    await client.wait_for(lambda: client.state(cells[1]) == "idle")
    assert_cancelled(client, cells[1])

    # The gateway's restarter brings the kernel back; the server's client goes on.
    await execute_when_alive(session, kernel, room, cells[2])
    await run_to_idle(client, cells[2], timeout=30)
    assert client.outputs(cells[2]) == [
        {"output_type": "stream", "name": "stdout", "text": "back\n"}
    ]
    assert client.cell(cells[2])["execution_count"] == 1
    assert (await kernel_model(session, kernel))["execution_state"] == "idle"
    await client.disconnect()


async def test_kernel_shut_down_by_the_gateway_mid_cell(
    server: Server, session: Session, gateway: KernelGateway
):
    """The gateway shuts a kernel down behind the server's back (its own culler, an
    operator): the cell ends, and once the server lists the gateway's kernels the
    kernel is gone from it too."""
    path, cells = write_notebook(server.root, "gw-gone.ipynb", [LOOP, "print('never')"])
    kernel, room, client = await session.prepare(path)
    assert (await session.execute(kernel, room, cells[0])).status_code == 202
    await wait_running(client, cells[0], "0\n1\n")
    async with httpx.AsyncClient(base_url=gateway.url) as http:
        assert (await http.delete(f"/api/kernels/{kernel}")).status_code == 204
    await client.wait_for(lambda: client.state(cells[0]) == "idle", MAX_DETECTION)
    outputs = client.outputs(cells[0])
    assert stream_text(outputs).startswith("0\n1\n")
    assert outputs[-1]["output_type"] == "error"
    assert outputs[-1]["ename"] == "KernelShutdown"
    listed = (await session.http.get("/api/kernels")).json()
    assert kernel not in [k["id"] for k in listed]
    assert (await session.execute(kernel, room, cells[1])).status_code == 404
    session.kernels.remove(kernel)
    await client.disconnect()


async def test_kernel_state_follows_the_cells(
    server: Server, session: Session, gateway: KernelGateway, tmp_path: Path
):
    flag = tmp_path / "go"
    path, cells = write_notebook(
        server.root, "gw-state.ipynb", ["print('quick')", WAIT.format(flag=str(flag))]
    )
    kernel, room, client = await session.prepare(path)
    before = datetime.now(timezone.utc)
    assert (await session.execute(kernel, room, cells[0])).status_code == 202
    await run_to_idle(client, cells[0])
    # At once: the server's model is right as soon as the document says the cell ended.
    model = await kernel_model(session, kernel)
    assert model["execution_state"] == "idle"
    assert parse_time(model["last_activity"]) >= before
    # The server's own connection to the gateway is not a client's: no page is open.
    assert model["connections"] == 0
    [listed] = [k for k in (await session.http.get("/api/kernels")).json() if k["id"] == kernel]
    assert (listed["execution_state"], listed["connections"]) == ("idle", 0)

    assert (await session.execute(kernel, room, cells[1])).status_code == 202
    await wait_running(client, cells[1], "waiting\n")
    assert (await kernel_model(session, kernel))["execution_state"] == "busy"
    assert (await gateway_model(gateway, kernel))["execution_state"] == "busy"
    flag.touch()
    await run_to_idle(client, cells[1])
    ended = datetime.now(timezone.utc)
    model = await kernel_model(session, kernel)
    assert model["execution_state"] == "idle"
    assert parse_time(model["last_activity"]) <= ended
    # The gateway agrees, and listing (which refreshes every model from it) keeps it.
    assert (await gateway_model(gateway, kernel))["execution_state"] == "idle"
    [listed] = [k for k in (await session.http.get("/api/kernels")).json() if k["id"] == kernel]
    assert listed["execution_state"] == "idle"
    assert (await kernel_model(session, kernel))["execution_state"] == "idle"
    await client.disconnect()


async def test_a_page_connection_counts(server: Server, session: Session):
    """A page's kernel websocket (through the server to the gateway) is a connection."""
    path, [cell] = write_notebook(server.root, "gw-page.ipynb", ["print('x')"])
    kernel, room, client = await session.prepare(path)
    assert (await session.execute(kernel, room, cell)).status_code == 202
    await run_to_idle(client, cell)
    url = f"ws://127.0.0.1:{server.port}/api/kernels/{kernel}/channels?token={TOKEN}"
    async with websockets.connect(url):
        deadline = time.monotonic() + 10
        while True:
            listed = (await session.http.get("/api/kernels")).json()
            [model] = [k for k in listed if k["id"] == kernel]
            if model["connections"] == 1:
                break
            assert time.monotonic() < deadline, model
            await asyncio.sleep(0.05)
    await client.disconnect()
