"""Awareness (user names, cursors) through a real server: merged per room, sent to each
client at most once per ``awareness_interval``, the sender included.

Each client holds its view of the room as a browser does (tests/yclient.py applies what
it receives with y-protocols' rules), so the assertions are what a user would notice:
the collaborators list of every page, at once for a page that just opened, without a
page whose connection closed.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import websockets
from pycrdt import Decoder, create_awareness_message, write_var_uint

from ydoc_outputs.app import YdocOutputsApp

from .conftest import Server, Session, write_notebook
from .test_hostile import awareness_frame, closed_with, jupyter_awareness
from .yclient import YClient

#: The server fixture runs with the default interval.
INTERVAL: float = YdocOutputsApp.awareness_interval.default_value


def client_ids_in(update: bytes) -> list[tuple[int, int]]:
    """(client id, clock) of each entry of an awareness update."""
    decoder = Decoder(update)
    entries = []
    for _ in range(decoder.read_var_uint()):
        client_id, clock = decoder.read_var_uint(), decoder.read_var_uint()
        decoder.read_var_string()
        entries.append((client_id, clock))
    return entries


def echoed(client: YClient) -> bool:
    """Whether the server sent ``client`` its own latest state back (browsers take that
    echo as a sign that the connection is alive)."""
    own = client.awareness.client_id
    clock = client.awareness.meta[own]["clock"]
    return any((own, clock) in client_ids_in(u) for _, u in client.awareness_received)


def state_of(name: str, moves: int) -> dict[str, Any]:
    state = jupyter_awareness(name)
    state["cursors"][0]["head"] = moves
    return state


async def test_every_page_sees_the_same_collaborators(server: Server, session: Session):
    path, _ = write_notebook(server.root, "collaborators.ipynb", ["1"])
    pages = [await session.client(path) for _ in range(5)]
    for moves in range(3):
        for i, page in enumerate(pages):
            await page.set_awareness(state_of(f"p{i}", moves))
    everyone = {page.awareness.client_id: state_of(f"p{i}", 2) for i, page in enumerate(pages)}
    for page in pages:
        await page.wait_for(lambda page=page: page.awareness.states == everyone, 10)
        await page.wait_for(lambda page=page: echoed(page), 10)

    # A page that opens now lists everyone at once: the room sends it the states it
    # holds right after the server's sync step 1, before any collaborator moves again.
    late = await session.client(path)
    assert late.peers == everyone
    await late.set_awareness(state_of("late", 0))
    everyone[late.awareness.client_id] = state_of("late", 0)
    pages.append(late)
    for page in pages:
        await page.wait_for(lambda page=page: page.awareness.states == everyone, 5)

    # A page whose connection drops sends no goodbye: the room says it for it.
    gone = pages.pop(0)
    await gone.disconnect()
    del everyone[gone.awareness.client_id]
    for page in pages:
        await page.wait_for(lambda page=page: page.awareness.states == everyone, 5)

    # A page that closes says goodbye itself (a null state): it goes from every page ...
    leaving = pages.pop(0)
    await leaving.set_awareness(None)
    del everyone[leaving.awareness.client_id]
    for page in pages:
        await page.wait_for(lambda page=page: page.awareness.states == everyone, 5)
    # ... and comes back with its next clock, as a page that reconnects does.
    await leaving.set_awareness(state_of("back", 0))
    everyone[leaving.awareness.client_id] = state_of("back", 0)
    pages.append(leaving)
    for page in pages:
        await page.wait_for(lambda page=page: page.awareness.states == everyone, 5)
    for page in [*pages, gone]:
        await page.disconnect()


async def test_each_page_gets_one_awareness_update_per_interval(server: Server, session: Session):
    """8 pages move their cursors 40 times a second each: every page gets at most one
    update per interval (the room used to forward 320 a second to each), holding the
    latest state of everyone, its own included."""
    path, _ = write_notebook(server.root, "cursors.ipynb", ["1"])
    pages = [await session.client(path) for _ in range(8)]
    moves = 60
    started = time.monotonic()
    for move in range(moves):
        tick = time.monotonic()
        for i, page in enumerate(pages):
            await page.set_awareness(state_of(f"p{i}", move))
        await asyncio.sleep(max(0.0, 0.025 - (time.monotonic() - tick)))
    everyone = {
        page.awareness.client_id: state_of(f"p{i}", moves - 1) for i, page in enumerate(pages)
    }
    for page in pages:
        await page.wait_for(lambda page=page: page.awareness.states == everyone, 10)
        await page.wait_for(lambda page=page: echoed(page), 10)
    for page in pages:
        # Every update received since the first move was sent after it reached the
        # server and before it reached this page; the room sends them an interval apart.
        times = [t for t, _ in page.awareness_received if t >= started]
        span = times[-1] - started
        assert len(times) <= span / INTERVAL + 2, (len(times), span)
    for page in pages:
        await page.disconnect()


async def test_a_malformed_awareness_message_closes_only_its_sender(
    server: Server, session: Session
):
    path, _ = write_notebook(server.root, "bad-awareness.ipynb", ["1"])
    page = await session.client(path)
    info = await session.open(path)
    url = server.ws_url(info["room"], info["sessionId"])
    async with websockets.connect(url) as ws:
        await ws.send(awareness_frame(4242, 1, jupyter_awareness("bad")))
        await page.wait_for(lambda: 4242 in page.peers, 5)
        await ws.send(create_awareness_message(b"\x01\x07\x01\x03NaN"))  # not JSON
        assert await closed_with(ws) == 4400
    await page.wait_for(lambda: 4242 not in page.peers, 5)
    await page.set_awareness(jupyter_awareness("good"))
    await page.wait_for(lambda: echoed(page), 5)
    assert not page.closed.is_set()
    await page.disconnect()


async def test_a_connection_may_hold_only_a_few_awareness_states(server: Server, session: Session):
    """The room keeps each state until its sender's connection closes: one connection
    claiming many client ids is closed (4429), and its states go."""
    path, _ = write_notebook(server.root, "many-ids.ipynb", ["1"])
    page = await session.client(path)
    info = await session.open(path)
    url = server.ws_url(info["room"], info["sessionId"])
    entries = [
        write_var_uint(client_id) + write_var_uint(1) + write_var_uint(2) + b"{}"
        for client_id in range(1000, 1100)
    ]
    async with websockets.connect(url) as ws:
        await ws.send(awareness_frame(999, 1, {"one": "page"}))
        await page.wait_for(lambda: 999 in page.peers, 5)
        await ws.send(create_awareness_message(write_var_uint(len(entries)) + b"".join(entries)))
        assert await closed_with(ws) == 4429
    await page.wait_for(lambda: not page.peers, 5)
    assert not page.closed.is_set()
    await page.disconnect()
