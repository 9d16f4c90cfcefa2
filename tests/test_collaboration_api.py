"""jupyter-server-ydoc's Python API (``settings["jupyter_server_ydoc"]``) used from inside the
server, as extensions do: jupyter-ai's notebook tools with no browser open, and
``get_document`` showing the output our server writes.

The calls are made by a test-only server extension, ``tests/collab_probe.py``.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from .conftest import Server, Session, read_saved, write_notebook
from .test_execution import run_to_idle, stream_text

REPO = Path(__file__).resolve().parent.parent

#: jupyter-ai's notebook tools (jupyter-ai 3.x), if installed where the server can import
#: them; else the probe makes the same calls itself.
AI_TOOLS = importlib.util.find_spec("jupyter_ai_tools") is not None
#: Installed beside us in the test venv; jupyter-ai-tools then takes its path.
JSD_INSTALLED = importlib.util.find_spec("jupyter_server_documents") is not None


def start_probe_server(tmp_path_factory: pytest.TempPathFactory, *args: str) -> Server:
    """A server with the probe extension (``tests.collab_probe``) enabled."""
    root = tmp_path_factory.mktemp("notebooks")
    home = tmp_path_factory.mktemp("jupyter-home")
    config = home / "config"
    config.mkdir()
    (config / "jupyter_server_config.json").write_text(
        json.dumps({"ServerApp": {"jpserver_extensions": {"tests.collab_probe": True}}})
    )
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    return Server(
        root,
        home,
        [
            "--YdocOutputsApp.room_cleanup_delay=1.0",
            "--YdocOutputsApp.autosave_delay=0.2",
            *args,
        ],
        env={"PYTHONPATH": path},
    )


class Probe:
    """The probe extension's endpoints."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def _json(self, response: httpx.Response) -> Any:
        assert response.status_code == 200, response.text
        return response.json()

    async def events(self) -> list[dict[str, Any]]:
        body = await self._json(await self.http.get("/api/test-probe/events"))
        events: list[dict[str, Any]] = body["events"]
        return events

    async def wait_events(
        self, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float = 30
    ) -> list[dict[str, Any]]:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            events = await self.events()
            if predicate(events):
                return events
            assert asyncio.get_running_loop().time() < deadline, events
            await asyncio.sleep(0.05)

    async def get_document(self, **args: Any) -> dict[str, Any]:
        body: dict[str, Any] = await self._json(
            await self.http.post("/api/test-probe/document", json=args)
        )
        return body

    async def held(self, handle: str) -> dict[str, Any]:
        body = await self._json(await self.http.get(f"/api/test-probe/document/{handle}"))
        content: dict[str, Any] = body["content"]
        return content

    async def append_markdown(self, handle: str, source: str) -> dict[str, Any]:
        body = await self._json(
            await self.http.post(f"/api/test-probe/document/{handle}", json={"source": source})
        )
        content: dict[str, Any] = body["content"]
        return content

    async def room(self, name: str) -> dict[str, Any]:
        body: dict[str, Any] = await self._json(await self.http.get(f"/api/test-probe/room/{name}"))
        return body

    async def ai_tool(self, tool: str, **body: Any) -> dict[str, Any]:
        answer: dict[str, Any] = await self._json(
            await self.http.post("/api/test-probe/ai-tools", json={"tool": tool, **body})
        )
        return answer


@pytest.fixture(scope="module")
def probe_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_probe_server(tmp_path_factory)
    yield srv
    srv.stop()


@pytest.fixture
async def probe_session(probe_server: Server) -> AsyncIterator[Session]:
    s = Session(probe_server, probe_server.http())
    yield s
    await s.close()
    assert probe_server.proc.poll() is None, "the server died"


@pytest.fixture
def probe(probe_session: Session) -> Probe:
    return Probe(probe_session.http)


def write_mixed_notebook(root: Path, name: str, code: str) -> tuple[str, str, str]:
    """A notebook of a markdown cell, then a code cell; its path and the two cell ids."""
    path, [md, cell] = write_notebook(root, name, ["# Title", code])
    nb = json.loads((root / path).read_text())
    nb["cells"][0] = {"cell_type": "markdown", "id": md, "metadata": {}, "source": "# Title"}
    (root / path).write_text(json.dumps(nb))
    return path, md, cell


def cell_outputs(content: dict[str, Any], cell_id: str) -> list[dict[str, Any]]:
    """The outputs of a cell of ``YNotebook.get()``'s answer."""
    for cell in content["cells"]:
        if cell["id"] == cell_id:
            outputs: list[dict[str, Any]] = cell.get("outputs", [])
            return outputs
    raise KeyError(cell_id)


async def wait_saved(path: Path, predicate: Callable[[Any], bool], timeout: float = 30) -> Any:
    """Wait until the notebook on disk satisfies ``predicate``."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        nb = await read_saved(path)
        if predicate(nb):
            return nb
        assert asyncio.get_running_loop().time() < deadline, nb
        await asyncio.sleep(0.05)


# -- jupyter-ai's notebook tools -----------------------------------------------------------


AGENT_SOURCE = "print('added by the agent')"


def _tool_modes() -> list[Any]:
    real_reason = "jupyter-ai-tools is not installed"
    return [
        pytest.param({"mimic": True}, id="same-calls"),
        pytest.param(
            {"jsd": False},
            id="jupyter-ai-tools",
            marks=pytest.mark.skipif(not AI_TOOLS, reason=real_reason),
        ),
        pytest.param(
            {"jsd": True},
            id="jupyter-ai-tools-beside-jupyter-server-documents",
            marks=[
                pytest.mark.skipif(not AI_TOOLS, reason=real_reason),
                pytest.mark.skipif(not JSD_INSTALLED, reason="no jupyter_server_documents"),
            ],
        ),
    ]


@pytest.mark.parametrize("mode", _tool_modes())
async def test_ai_notebook_tools_read_and_add_a_cell_with_no_browser(
    probe_server: Server, probe_session: Session, probe: Probe, mode: dict[str, Any]
) -> None:
    name = "agent-" + "-".join(f"{key}-{value}" for key, value in mode.items()) + ".ipynb"
    path, md, code = write_mixed_notebook(probe_server.root, name, "x = 1")
    on_disk = json.loads((probe_server.root / path).read_text())

    # Reading: the tools read the file, which the server keeps current.
    read = await probe.ai_tool("read_notebook_json", args={"file_path": path}, **mode)
    assert "error" not in read, read.get("traceback")
    assert read["result"] == on_disk
    if not mode.get("mimic"):
        markdown = await probe.ai_tool("read_notebook", args={"file_path": path}, **mode)
        assert "error" not in markdown, markdown.get("traceback")
        assert "# Title" in markdown["result"] and "x = 1" in markdown["result"]

    # The notebook's room is open, with no client (as while a cell runs with every page
    # closed): the tool finds it through ywebsocket_server and edits its document.
    opened = await probe.get_document(path=path, content_type="notebook", file_format="json")
    assert opened["handle"] is None  # not open yet: get_document(create=False) opens nothing
    live = await probe.get_document(
        path=path, content_type="notebook", file_format="json", copy=False, create=True
    )
    assert live["class"] == "YNotebook"
    added = await probe.ai_tool(
        "add_cell",
        args={"file_path": path, "content": AGENT_SOURCE, "cell_type": "code"},
        **mode,
    )
    assert "error" not in added, added.get("traceback")
    # It went into the room's document, not around it into the file.
    sources = [c["source"] for c in (await probe.held(live["handle"]))["cells"]]
    assert sources == ["# Title", "x = 1", AGENT_SOURCE]

    # Autosave writes it to the file ...
    nb = await wait_saved(probe_server.root / path, lambda nb: len(nb.cells) == 3)
    assert [c.source for c in nb.cells] == ["# Title", "x = 1", AGENT_SOURCE]
    assert [c.id for c in nb.cells[:2]] == [md, code]
    assert nb.cells[2].cell_type == "code" and nb.cells[2].outputs == []
    # ... and a client that connects afterwards has it.
    client = await probe_session.client(path)
    assert [str(c["source"]) for c in client.notebook.ycells] == ["# Title", "x = 1", AGENT_SOURCE]
    await client.disconnect()


# -- output written by the server, seen through get_document -------------------------------

COUNT_20 = (
    "import time\nfor i in range(20):\n    print(f'line {i}', flush=True)\n    time.sleep(0.1)"
)


@pytest.mark.parametrize("with_client", [False, True], ids=["no-client", "client"])
async def test_get_document_shows_the_output_as_it_arrives_and_a_copy_is_a_snapshot(
    probe_server: Server, probe_session: Session, probe: Probe, with_client: bool
) -> None:
    path, _, cell = write_mixed_notebook(probe_server.root, f"live-{with_client}.ipynb", COUNT_20)
    kernel = await probe_session.start_kernel()
    room = (await probe_session.open(path))["room"]
    client = await probe_session.client(path) if with_client else None
    # With no page, the run opens the room and holds it open until it ends.
    r = await probe_session.execute(kernel, room, cell)
    assert r.status_code == 202, r.text
    live = await probe.get_document(room_id=room, copy=False, create=True)
    assert live["handle"] is not None

    # The live document shows the lines as the kernel prints them.
    async def live_text() -> str:
        return stream_text(cell_outputs(await probe.held(live["handle"]), cell))

    deadline = asyncio.get_running_loop().time() + 60
    while "line 3\n" not in (text := await live_text()):
        assert asyncio.get_running_loop().time() < deadline, text
        await asyncio.sleep(0.05)
    assert "line 19\n" not in text  # really seen mid-run

    # A copy: what the room holds now, independent of it.
    snapshot = await probe.get_document(room_id=room, copy=True)
    taken = stream_text(cell_outputs(snapshot["content"], cell))
    assert taken.startswith("line 0\nline 1\nline 2\nline 3\n")
    edited = await probe.append_markdown(snapshot["handle"], "only in the copy")
    assert [c["source"] for c in edited["cells"]][-1] == "only in the copy"

    expected = "".join(f"line {i}\n" for i in range(20))
    while (text := await live_text()) != expected:
        assert asyncio.get_running_loop().time() < deadline, text
        await asyncio.sleep(0.05)
    live_content = await probe.held(live["handle"])
    # jupyter-ai-tools' way to the same room gives the same document.
    via_room = await probe.room(room)
    assert via_room["exists"] and via_room["content"] == live_content

    # The copy kept its state and its edit; neither reached the room or the file.
    copy = await probe.held(snapshot["handle"])
    assert stream_text(cell_outputs(copy, cell)) == taken
    assert len(copy["cells"]) == 3 and len(live_content["cells"]) == 2
    nb = await wait_saved(
        probe_server.root / path, lambda nb: stream_text(nb.cells[1].outputs) == expected
    )
    assert len(nb.cells) == 2
    if client is not None:
        await run_to_idle(client, cell)
        assert len(client.notebook.ycells) == 2
        assert stream_text(client.outputs(cell)) == expected
        await client.disconnect()
    else:
        late = await probe_session.client(path)
        assert len(late.notebook.ycells) == 2
        assert stream_text(late.outputs(cell)) == expected
        await late.disconnect()
