"""Clients that do not read, and users that open too many connections: the server's
memory stays bounded, and the clients that behave keep getting every change.

A dedicated server (module scope) with a small budget of bytes waiting on all room
websockets (``websocket_max_total_pending_bytes``), a per-user connection limit, and
an identity provider that takes the user name from the URL (tests/authorizers.py).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import websockets
from pycrdt import Encoder

from .conftest import TOKEN, Server, Session
from .yclient import YClient

BUDGET_MB = 64
PER_USER = 55
#: What 50 clients that read nothing may add to the server's memory, all told.
RSS_GROWTH_MB = 300


@pytest.fixture(scope="module")
def slow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(
        tmp_path_factory.mktemp("notebooks"),
        tmp_path_factory.mktemp("jupyter-home"),
        [
            "--YdocOutputsApp.room_cleanup_delay=1.0",
            f"--YdocOutputsApp.websocket_max_total_pending_bytes={BUDGET_MB << 20}",
            f"--YdocOutputsApp.websocket_max_connections_per_user={PER_USER}",
            "--ServerApp.identity_provider_class=tests.authorizers.UserFromQuery",
        ],
    )
    yield srv
    srv.stop()


@pytest.fixture
async def ssession(slow_server: Server) -> AsyncIterator[Session]:
    s = Session(slow_server, slow_server.http())
    yield s
    await s.close()
    assert slow_server.proc.poll() is None, "the server died"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def big_notebook(root: Path, name: str, megabytes: float) -> None:
    """A notebook of ``megabytes`` of stream output, and an empty cell "edited"."""
    per_cell = 100_000
    line = "x" * 99 + "\n"
    cells = [
        {"cell_type": "code", "execution_count": 1, "id": f"out-{i}", "metadata": {},
         "outputs": [{"output_type": "stream", "name": "stdout",
                      "text": line * (per_cell // 100)}],
         "source": f"print({i})"}
        for i in range(int(megabytes * 1e6 / per_cell))
    ]  # fmt: skip
    cells.append({"cell_type": "code", "execution_count": None, "id": "edited",
                  "metadata": {}, "outputs": [], "source": ""})  # fmt: skip
    nb = {"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    (root / name).write_text(json.dumps(nb))


def masked_frame(payload: bytes) -> bytes:
    """A binary frame as a client sends it (masked), for payloads under 126 bytes."""
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x82, 0x80 | len(payload)]) + mask + masked


def unknown_state_sync_step1() -> bytes:
    """Sync step 1 of a client holding edits of its own, by a client id the server does
    not know: the server answers with its own encoding of the whole document."""
    state = Encoder()
    state.write_var_uint(1)
    state.write_var_uint(int.from_bytes(os.urandom(4), "big") | 1)
    state.write_var_uint(1)
    vector = state.to_bytes()
    return bytes([0, 0, len(vector)]) + vector


class StalledClient:
    """A websocket client that sends its sync step 1 and then reads nothing: its socket's
    receive buffer is small and the transport does not read, so what the server sends
    stays in the server."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, server: Server, url_path: str) -> StalledClient:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", server.port))
        reader, writer = await asyncio.open_connection(sock=sock, limit=1 << 16)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            f"GET {url_path} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        writer.write(masked_frame(unknown_state_sync_step1()))
        await writer.drain()
        writer.transport.pause_reading()
        return cls(reader, writer)

    async def closed_by_server(self, timeout: float) -> bool:
        """Read at last: whether the server closed the connection (end of stream)."""
        self.writer.transport.resume_reading()
        try:
            async with asyncio.timeout(timeout):
                while await self.reader.read(1 << 20):
                    pass
            return True
        except (TimeoutError, ConnectionError):
            return False

    def close(self) -> None:
        self.writer.close()


def room_path(server: Server, info: dict[str, str], user: str) -> str:
    url = server.ws_url(info["room"], info["sessionId"])
    return url[url.index("/api/") :] + f"&user={user}"


async def test_clients_that_do_not_read_cost_bounded_memory(slow_server: Server, ssession: Session):
    """50 clients of one user on a 5 MB notebook ask for the whole document, each its own
    encoding of it, and read nothing while another client edits. Before, each held its
    5 MB answer, a copy of every edit, and a task per edit: 50 of them took the server
    past 600 MB. Now the bytes waiting on all websockets stay within the budget (the
    clients holding most are closed), the server grows by less than 300 MB, and a
    reading client of the same room still gets every edit."""
    server = slow_server
    big_notebook(server.root, "big.ipynb", 5.0)
    info = await ssession.open("big.ipynb")
    reader = YClient(f"{server.ws_url(info['room'], info['sessionId'])}&user=alice")
    writer = YClient(f"{server.ws_url(info['room'], info['sessionId'])}&user=alice")
    await reader.connect()
    await writer.connect()
    await asyncio.sleep(1)
    pid = server.proc.pid
    base = rss_mb(pid)
    peak = base
    stalled = []
    for _ in range(50):
        stalled.append(await StalledClient.connect(server, room_path(server, info, "alice")))
        await asyncio.sleep(0.02)
        peak = max(peak, rss_mb(pid))
    source = next(c for c in writer.notebook.ycells if c["id"] == "edited")["source"]
    for i in range(200):  # 4 MB of edits, each sent to every client
        source.insert(len(source), f"{i:05d}" + "e" * 19_995)
        await asyncio.sleep(0.01)
        peak = max(peak, rss_mb(pid))
    expected = str(source)
    await reader.wait_for(lambda: reader.cell("edited")["source"] == expected, 60)
    await asyncio.sleep(1)
    peak = max(peak, rss_mb(pid))
    growth = peak - base
    print(f"RSS {base:.0f} MB, peak growth {growth:.0f} MB with 50 clients not reading")
    assert growth < RSS_GROWTH_MB, f"the server grew by {growth:.0f} MB"
    assert not reader.closed.is_set() and not writer.closed.is_set()
    # Each unread answer is 5 MB: at most a dozen fit in the budget, the rest were closed.
    closed = await asyncio.gather(*(c.closed_by_server(10) for c in stalled))
    assert sum(closed) >= 50 - BUDGET_MB // 5, f"{sum(closed)} closed"
    for client in stalled:
        client.close()
    await reader.disconnect()
    await writer.disconnect()


async def test_connections_per_user_are_limited(slow_server: Server, ssession: Session):
    """Past websocket_max_connections_per_user, a user's next room websocket is refused
    with HTTP 429 before the upgrade; another user is not affected, and closing one
    connection frees its slot."""
    server = slow_server
    (server.root / "small.ipynb").write_text(
        json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5})
    )
    info = await ssession.open("small.ipynb")
    url = server.ws_url(info["room"], info["sessionId"])
    async with contextlib.AsyncExitStack() as stack:
        bobs = [
            await stack.enter_async_context(websockets.connect(f"{url}&user=bob"))
            for _ in range(PER_USER)
        ]
        with pytest.raises(websockets.InvalidStatus) as refused:
            await websockets.connect(f"{url}&user=bob")
        assert refused.value.response.status_code == 429
        assert b"too many" in refused.value.response.body
        async with websockets.connect(f"{url}&user=carol") as carol:
            await carol.recv()  # the server's sync step 1: served
        await bobs[0].close()
        # The slot is free once the server has seen the close.
        for _ in range(50):
            try:
                again = await websockets.connect(f"{url}&user=bob")
                break
            except websockets.InvalidStatus:
                await asyncio.sleep(0.1)
        else:
            raise AssertionError("closing a connection did not free its slot")
        await again.recv()
        await again.close()
    assert TOKEN in url
