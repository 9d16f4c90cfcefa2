"""jupyter_server's idle culler, on gateway kernels the server runs cells on.

With a gateway, the server's ``GatewayMappingKernelManager`` culls: before each pass it
lists the gateway's kernels to refresh their models, then applies jupyter_server's
rules (idle for ``cull_idle_timeout``, not busy, no connection) and shuts a culled
kernel down on the gateway. The gateway counts the server's own websocket to a kernel as
a connection, so a kernel the server had run a cell on was never culled
(kernels/gateway.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from ..conftest import TOKEN, Server, Session, write_notebook
from ..test_execution import run_to_idle
from ..test_kernel_faults import wait_running
from .conftest import KernelGateway, gateway_server
from .test_gateway import WAIT

#: Seconds of inactivity after which the server culls a kernel.
CULL_IDLE_TIMEOUT = 3


@pytest.fixture(scope="module")
def culling_server(
    tmp_path_factory: pytest.TempPathFactory, gateway: KernelGateway
) -> Iterator[Server]:
    srv = gateway_server(
        tmp_path_factory.mktemp("culling-notebooks"),
        tmp_path_factory.mktemp("culling-home"),
        gateway,
        [
            f"--MappingKernelManager.cull_idle_timeout={CULL_IDLE_TIMEOUT}",
            "--MappingKernelManager.cull_interval=1",
        ],
    )
    yield srv
    srv.stop()


class KernelEvents:
    """jupyter_server's kernel action events, as a subscriber of the server gets them."""

    def __init__(self) -> None:
        self.shutdowns: dict[str, float] = {}
        self._changed = asyncio.Condition()

    async def listen(self, socket: Any) -> None:
        async for message in socket:
            event = json.loads(message)
            if not str(event.get("schema_id", "")).endswith("kernel_actions/v1"):
                continue
            if event.get("action") == "shutdown" and event.get("status") == "success":
                async with self._changed:
                    self.shutdowns[str(event.get("kernel_id"))] = time.monotonic()
                    self._changed.notify_all()

    async def shut_down(self, kernel: str, timeout: float) -> float:
        """Wait until ``kernel`` has been shut down; return when (monotonic)."""

        async def wait() -> None:
            async with self._changed:
                await self._changed.wait_for(lambda: kernel in self.shutdowns)

        await asyncio.wait_for(wait(), timeout)
        return self.shutdowns[kernel]


@pytest.fixture
async def events(culling_server: Server) -> AsyncIterator[KernelEvents]:
    url = f"ws://127.0.0.1:{culling_server.port}/api/events/subscribe?token={TOKEN}"
    found = KernelEvents()
    async with websockets.connect(url) as socket:
        listening = asyncio.ensure_future(found.listen(socket))
        yield found
        listening.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listening


async def test_an_idle_kernel_is_culled_and_a_busy_one_is_not(
    culling_server: Server, events: KernelEvents, gateway: KernelGateway, tmp_path: Path
):
    server = culling_server
    session = Session(server, server.http())
    flag = tmp_path / "go"
    path, [busy_cell, idle_cell] = write_notebook(
        server.root, "gw-cull.ipynb", [WAIT.format(flag=str(flag)), "print('done')"]
    )
    busy, room, client = await session.prepare(path)
    assert (await session.execute(busy, room, busy_cell)).status_code == 202
    await wait_running(client, busy_cell, "waiting\n")
    # Started after the busy cell's last message: idle for less time than the busy one.
    idle = await session.start_kernel()
    assert (await session.execute(idle, room, idle_cell)).status_code == 202
    await run_to_idle(client, idle_cell)
    ended = time.monotonic()

    culled = await events.shut_down(idle, timeout=CULL_IDLE_TIMEOUT + 20)
    assert culled - ended >= CULL_IDLE_TIMEOUT - 0.5  # idle past the timeout, not before
    # The same pass found the busy kernel silent for longer: busy, so it stays.
    assert busy not in events.shutdowns
    models = {k["id"]: k for k in (await session.http.get("/api/kernels")).json()}
    assert idle not in models
    assert models[busy]["execution_state"] == "busy"
    assert client.state(busy_cell) == "running"
    async with httpx.AsyncClient(base_url=gateway.url) as http:  # gone there too
        listed = (await http.get("/api/kernels")).json()
    assert idle not in [k["id"] for k in listed]
    assert busy in [k["id"] for k in listed]

    # Once its cell ends, it is idle, and culled in turn.
    flag.touch()
    await run_to_idle(client, busy_cell)
    ended = time.monotonic()
    culled = await events.shut_down(busy, timeout=CULL_IDLE_TIMEOUT + 20)
    assert culled - ended >= CULL_IDLE_TIMEOUT - 0.5
    await client.disconnect()
    session.kernels.clear()  # both gone
    await session.close()
