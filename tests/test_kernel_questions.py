"""A page that connects to a kernel while the server runs a cell gets what it needs to show
that cell's widgets at once, not when the cell ends: its kernel_info and comm_info answers
come from a subshell of its connection, and a model's state from the server.

Real server, real ipykernel 7 (subshells), and a raw kernel websocket in jupyter_server's
JSON protocol, as a page opened mid-run would use it.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import websockets

from ydoc_outputs.kernels.websocket import STATUS_CHECK, is_question, requested_state

from .conftest import TOKEN, Session, write_notebook
from .yclient import YClient

#: Shows a slider, then keeps the main shell busy for 8 s.
BUSY_WITH_A_SLIDER = (
    "import ipywidgets as w, time\ns = w.IntSlider(value=7, description='busy')\n"
    "display(s)\ntime.sleep(8)"
)


def request(msg_type: str, content: dict[str, Any], channel: str = "shell") -> dict[str, Any]:
    return {
        "header": {"msg_id": uuid.uuid4().hex, "msg_type": msg_type, "username": "page",
                   "session": "page-session", "date": "", "version": "5.4"},
        "parent_header": {}, "metadata": {}, "content": content, "channel": channel,
        "buffers": [],
    }  # fmt: skip


async def answer_to(
    ws: Any, msg_id: str | None, msg_type: str, timeout: float, seen: list[Any] | None = None
) -> dict[str, Any]:
    """The first message of ``msg_type`` whose parent is ``msg_id`` (any, if None); every
    message read goes to ``seen``."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        assert left > 0, f"no {msg_type} to {msg_id} within {timeout} s"
        raw = await asyncio.wait_for(ws.recv(), left)
        if isinstance(raw, bytes):
            continue  # a message with buffers; ours carry none
        msg = json.loads(raw)
        if seen is not None:
            seen.append(msg)
        parent = msg["parent_header"].get("msg_id")
        if msg["header"]["msg_type"] == msg_type and msg_id in (None, parent):
            return msg


async def slider_comm(client: YClient, cell: str) -> str:
    for _ in range(300):
        for output in client.outputs(cell):
            view = output.get("data", {}).get("application/vnd.jupyter.widget-view+json")
            if view:
                return str(view["model_id"])
        await asyncio.sleep(0.05)
    raise AssertionError("the slider was never shown")


async def test_a_page_connecting_mid_run_gets_its_answers_while_the_cell_runs(
    session: Session,
):
    path, [cell] = write_notebook(session.server.root, "busy.ipynb", [BUSY_WITH_A_SLIDER])
    kernel, room, client = await session.prepare(path)
    assert (await session.execute(kernel, room, cell)).status_code == 202
    model_id = await slider_comm(client, cell)
    url = (
        f"ws://127.0.0.1:{session.server.port}/api/kernels/{kernel}/channels"
        f"?session_id={uuid.uuid4().hex}&token={TOKEN}"
    )
    started = time.monotonic()
    async with websockets.connect(url, max_size=None) as ws:
        # Told at once that the kernel is busy with the server's execute request.
        seen: list[Any] = []
        busy = await answer_to(ws, None, "status", 5, seen)
        # jupyter_server's kernel_info_request has a busy and idle of its own.
        while busy["parent_header"]["msg_type"] != "execute_request":
            busy = await answer_to(ws, None, "status", 5, seen)
        assert busy["content"]["execution_state"] == "busy", seen
        info = request("kernel_info_request", {})
        await ws.send(json.dumps(info))
        reply = await answer_to(ws, info["header"]["msg_id"], "kernel_info_reply", 10)
        assert reply["channel"] == "shell"
        assert "kernel subshells" in reply["content"]["supported_features"]
        # What the server sends as the kernel carries the kernel's session: JupyterLab
        # drops queued messages whose session is not that of the last one it received.
        kernel_session = reply["header"]["session"]
        assert busy["header"]["session"] == kernel_session

        comms = request("comm_info_request", {"target_name": "jupyter.widget"})
        await ws.send(json.dumps(comms))
        reply = await answer_to(ws, comms["header"]["msg_id"], "comm_info_reply", 10)
        assert reply["channel"] == "shell"
        assert model_id in reply["content"]["comms"]

        ask = request("comm_msg", {"comm_id": model_id, "data": {"method": "request_state"}})
        await ws.send(json.dumps(ask))
        update = await answer_to(ws, ask["header"]["msg_id"], "comm_msg", 10)
        assert update["channel"] == "iopub"
        data = update["content"]["data"]
        assert data["method"] == "update"
        assert data["state"]["value"] == 7 and data["state"]["_model_name"] == "IntSliderModel"
        assert update["header"]["session"] == kernel_session
        answered = time.monotonic() - started
        # All three while the cell still sleeps: none waited for the main shell.
        assert client.state(cell) == "running", client.state(cell)
        assert answered < 5, answered
        # The idle of that request ends the busy the page was told of.
        idle = await answer_to(ws, busy["parent_header"]["msg_id"], "status", 20)
        while idle["content"]["execution_state"] != "idle":
            idle = await answer_to(ws, busy["parent_header"]["msg_id"], "status", 20)
    print(f"kernel_info, comm_info and request_state answered in {answered:.2f} s mid-run")
    # The subshell went with the connection: a page that reloads leaves no kernel
    # thread behind.
    async with websockets.connect(url.replace("session_id=", "session_id=x"), max_size=None) as ws:
        subshells = None
        for _ in range(50):
            ask = request("list_subshell_request", {}, channel="control")
            await ws.send(json.dumps(ask))
            reply = await answer_to(ws, ask["header"]["msg_id"], "list_subshell_reply", 10)
            subshells = reply["content"]["subshell_id"]
            if not subshells:
                break
            await asyncio.sleep(0.1)
        assert subshells == [], subshells


def test_which_messages_are_questions() -> None:
    assert is_question("kernel_info_request", {})
    assert is_question("comm_info_request", {"subshell_id": None})
    assert not is_question("comm_info_request", {"subshell_id": "the page's own"})
    assert not is_question("execute_request", {})
    assert not is_question("complete_request", {})
    state = {"comm_id": "c1", "data": {"method": "request_state"}}
    assert requested_state("comm_msg", state) == "c1"
    # A widget's own update runs the user's callbacks: never answered by the server.
    assert requested_state("comm_msg", {"comm_id": "c1", "data": {"method": "update"}}) is None
    assert requested_state("comm_open", state) is None
    assert requested_state("comm_msg", {"comm_id": 3, "data": {"method": "request_state"}}) is None
    assert requested_state("comm_msg", "not a dict") is None


async def test_a_page_that_leaves_mid_run_is_not_written_to(session: Session):
    """The last page of a kernel to leave keeps its channels (jupyter_server buffers for
    its return), so the check that the cell it was told of still runs must stop on its
    own: writing the idle to the closed websocket raised in a loop callback."""
    root = session.server.root
    path, [cell] = write_notebook(root, "leaves.ipynb", ["import time\ntime.sleep(4)"])
    kernel, room, client = await session.prepare(path)
    assert (await session.execute(kernel, room, cell)).status_code == 202
    url = (
        f"ws://127.0.0.1:{session.server.port}/api/kernels/{kernel}/channels"
        f"?session_id={uuid.uuid4().hex}&token={TOKEN}"
    )
    async with websockets.connect(url, max_size=None) as ws:
        await ws.send(json.dumps(request("kernel_info_request", {})))  # as JupyterLab does
        busy = await answer_to(ws, None, "status", 5)
        # kernel_info_requests have a busy and idle of their own.
        while busy["parent_header"]["msg_type"] != "execute_request":
            busy = await answer_to(ws, None, "status", 5)
        assert busy["content"]["execution_state"] == "busy"
        assert client.state(cell) == "running"  # it leaves mid-run
    while client.state(cell) == "running":
        await asyncio.sleep(0.05)
    await asyncio.sleep(3 * STATUS_CHECK)  # a check after the end would have written
    log = session.server.log()
    assert "WebSocketClosedError" not in log, log[-3000:]
    assert "Exception in callback" not in log, log[-3000:]
