"""An open room whose file does not change costs the pages nothing.

The file watcher checks each open room's file every ``file_poll_interval`` seconds. Done
through ``contents_manager.get``, each check made jupyter_server emit a
``contents_service`` event, which every page subscribed to events received: one message
per second, room and page, the largest part of what idle tabs cost the server.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest
import websockets

from .conftest import TOKEN, Server, Session, write_notebook


@pytest.fixture(scope="module")
def polling_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(
        tmp_path_factory.mktemp("idle"),
        tmp_path_factory.mktemp("idle-home"),
        ["--YdocOutputsApp.file_poll_interval=0.1", "--YdocOutputsApp.autosave_delay=0.1"],
    )
    yield srv
    srv.stop()


async def test_watching_an_unchanged_file_emits_no_contents_events(polling_server: Server):
    server = polling_server
    session = Session(server, server.http())
    path, _ = write_notebook(server.root, "idle.ipynb", ["1"])
    events: list[dict[str, object]] = []
    url = f"ws://127.0.0.1:{server.port}/api/events/subscribe?token={TOKEN}"
    async with websockets.connect(url) as subscriber:

        async def listen() -> None:
            async for message in subscriber:
                events.append(json.loads(message))

        listening = asyncio.ensure_future(listen())
        client = await session.client(path)
        # The room has loaded its file and its first checks have run.
        await asyncio.sleep(0.5)
        opened = len(events)
        await asyncio.sleep(2)  # twenty checks of the file
        schemas = [str(e.get("schema_id")) for e in events[opened:]]
        idle = [s for s in schemas if s.endswith("contents_service/v1")]
        assert idle == []
        # A change on disk is still seen (and read through the contents manager).
        (server.root / path).write_text((server.root / path).read_text().replace('"1"', '"2"'))
        await client.wait_for(lambda: client.notebook.ycells[0]["source"].to_py() == "2")
        listening.cancel()
        await client.disconnect()
    await session.close()
