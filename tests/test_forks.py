"""jupyter-collaboration's fork, timeline and event API on a notebook the server runs.

A fork taken while a cell runs and merged back after it: the cell's outputs are those of
the run, once. A timeline steps a document back and forth as @jupyter/docprovider 3.0's
timeline slider does (the page's own document moves to the timeline's room, then back).
The session, awareness and fork events, as jupyter-server-ydoc emits them, are read
through the probe extension (``tests/collab_probe.py``).
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote

import nbformat
import pytest

from . import test_collaboration_api as api
from .conftest import Server, Session
from .test_collaboration_api import Probe, wait_saved, write_mixed_notebook
from .test_execution import run_to_idle, stream_text
from .yclient import YClient

# Each iteration prints a numbered line, then a progress text that the next line
# overwrites after a \r (terminal semantics, as JupyterLab's), and updates a display in
# place: the run deletes as much as it adds.
RUN_40 = (
    "import sys, time\n"
    "from IPython.display import display\n"
    "h = display({'text/plain': 'status 0'}, raw=True, display_id=True)\n"
    "for i in range(40):\n"
    "    sys.stdout.write(f'\\rline {i}\\n')\n"
    "    sys.stdout.write(f'{i}%')\n"
    "    sys.stdout.flush()\n"
    "    h.update({'text/plain': f'status {i + 1}'}, raw=True)\n"
    "    time.sleep(0.1)\n"
    "sys.stdout.write('\\rdone\\n')\n"
    "sys.stdout.flush()\n"
)
# The probe server and its fixtures, shared with test_collaboration_api.py.
probe_server = api.probe_server
probe_session = api.probe_session
probe = api.probe

RUN_40_TEXT = "".join(f"line {i}\n" for i in range(40)) + "done\n"
FORK_SCHEMA = "https://schema.jupyter.org/jupyter_collaboration/fork/v1"
SESSION_SCHEMA = "https://schema.jupyter.org/jupyter_collaboration/session/v1"
AWARENESS_SCHEMA = "https://schema.jupyter.org/jupyter_collaboration/awareness/v1"


def markdown_source(client: YClient) -> str:
    return str(client.notebook.ycells[0]["source"])


def append_to_source(client: YClient, text: str) -> None:
    """Type ``text`` at the end of the first cell's source, as a page does."""
    source = client.notebook.ycells[0]["source"]
    source += text


def assert_run_40_outputs(outputs: list[dict[str, Any]]) -> None:
    """Exactly the outputs of a run of RUN_40: the display at its last state, every line
    once, the progress text erased."""
    assert [o["output_type"] for o in outputs] == ["display_data", "stream"], outputs
    assert outputs[0]["data"] == {"text/plain": "status 40"}
    assert outputs[1]["name"] == "stdout"
    assert outputs[1]["text"] == RUN_40_TEXT


@pytest.mark.parametrize("synchronize", [False, True], ids=["snapshot", "synchronized"])
async def test_a_fork_taken_mid_run_and_merged_after_it_keeps_the_runs_outputs_once(
    probe_server: Server, probe_session: Session, probe: Probe, synchronize: bool
) -> None:
    path, _, cell = write_mixed_notebook(probe_server.root, f"fork-{synchronize}.ipynb", RUN_40)
    kernel, room, page = await probe_session.prepare(path)
    assert (await probe_session.execute(kernel, room, cell)).status_code == 202
    await page.wait_for(lambda: "line 10\n" in stream_text(page.outputs(cell)), 60)

    r = await probe_session.http.put(
        f"/api/collaboration/fork/{room}",
        json={"synchronize": synchronize, "title": "mid-run", "description": "a test"},
    )
    assert r.status_code == 201, r.text
    body = r.json()
    fork_room = body["fork_roomid"]
    assert body["fork_info"] == {
        "root_roomid": room,
        "synchronize": synchronize,
        "title": "mid-run",
        "description": "a test",
    }
    listed = (await probe_session.http.get(f"/api/collaboration/fork/{room}")).json()
    assert listed == {fork_room: body["fork_info"]}

    # A page of the fork (the room is served where documents are) edits the markdown.
    fork = YClient(probe_server.ws_url(fork_room, body["sessionId"]))
    await fork.connect()
    forked_text = stream_text(fork.outputs(cell))
    assert "line 10\n" in forked_text and "line 39\n" not in forked_text
    append_to_source(fork, " (edited in the fork)")
    await run_to_idle(page, cell)
    if synchronize:
        # A synchronized fork follows the root: the run's end, with its deletions.
        await fork.wait_for(lambda: fork.cell(cell) == page.cell(cell))
    else:
        assert stream_text(fork.outputs(cell)) == forked_text
    assert markdown_source(page) == "# Title"  # the fork's edit stays in the fork

    r = await probe_session.http.delete(f"/api/collaboration/fork/{fork_room}?merge=true")
    assert r.status_code == 200, r.text
    await page.wait_for(lambda: markdown_source(page) == "# Title (edited in the fork)")
    await fork.closed.wait()
    assert (await probe.room(fork_room))["exists"] is False

    assert_run_40_outputs(page.outputs(cell))
    assert page.cell(cell)["execution_count"] == 1 and page.state(cell) == "idle"
    later = await probe_session.client(path)
    assert later.notebook.get() == page.notebook.get()
    exported = nbformat.reads(await probe_session.export(path), as_version=4)
    nbformat.validate(exported)
    assert exported.cells[0].source == "# Title (edited in the fork)"
    assert_run_40_outputs(exported.cells[1].outputs)
    saved = await wait_saved(
        probe_server.root / path, lambda nb: nb.cells[0].source == exported.cells[0].source
    )
    assert_run_40_outputs(saved.cells[1].outputs)

    forks = [e for e in await probe.events() if e["schema_id"] == FORK_SCHEMA]
    mine = [e for e in forks if e["fork_roomid"] == fork_room]
    assert [e["action"] for e in mine] == ["create", "delete"]
    for event in mine:
        assert event["fork_info"] == body["fork_info"] and event["username"]
    await later.disconnect()
    await page.disconnect()
    await fork.disconnect()


# -- timeline --------------------------------------------------------------------------------


async def test_timeline_steps_the_pages_document_back_and_forth_then_restores(
    probe_server: Server, probe_session: Session, probe: Probe
) -> None:
    path, _, _ = write_mixed_notebook(probe_server.root, "timeline.ipynb", "x = 1")
    page = await probe_session.client(path)
    room = (await probe_session.open(path))["room"]
    for version in ("v1", "v2", "v3"):
        append_to_source(page, f" {version}")
        want = markdown_source(page)
        while (await probe.room(room))["content"]["cells"][0]["source"] != want:
            await asyncio.sleep(0.02)
    assert markdown_source(page) == "# Title v1 v2 v3"

    # As the slider asks for it: the path unencoded, `&&` between the arguments.
    r = await probe_session.http.get(
        f"/api/collaboration/timeline/{path}?format=json&&type=notebook"
    )
    assert r.status_code == 200, r.text
    timeline = r.json()
    assert set(timeline) == {"roomId", "timestamps", "forkRoom", "sessionId"}
    assert timeline["roomId"] == room
    stamps = timeline["timestamps"]  # checked last (see the end)

    # connectToForkDoc: the page's own document leaves the room for the timeline's.
    await page.disconnect()
    url = probe_server.ws_url(timeline["forkRoom"], timeline["sessionId"])
    await page.reconnect(url)
    watcher = YClient(url)
    await watcher.connect()

    async def step(action: str, steps: int) -> dict[str, Any]:
        r = await probe_session.http.put(
            f"/api/collaboration/undo_redo/{quote(room, safe='')}"
            f"?action={action}&&steps={steps}&&forkRoom={timeline['forkRoom']}"
        )
        assert r.status_code == 200, r.text
        answer: dict[str, Any] = r.json()
        return answer

    async def shows(source: str) -> None:
        await page.wait_for(lambda: markdown_source(page) == source)
        await watcher.wait_for(lambda: markdown_source(watcher) == source)

    assert await step("undo", 1) == {"status": "undone"}
    await shows("# Title v1 v2")
    assert await step("redo", 1) == {"status": "redone"}
    await shows("# Title v1 v2 v3")
    assert await step("undo", 2) == {"status": "undone"}
    await shows("# Title v1")
    # The file's room is not touched by the timeline.
    assert "v3" in (await read_markdown(probe, probe_session, path))

    assert await step("restore", 0) == {"code": 200, "status": "Document restored successfully"}
    r = await probe_session.http.put(
        f"/api/collaboration/undo_redo/{quote(room, safe='')}"
        f"?action=undo&&steps=1&&forkRoom={timeline['forkRoom']}"
    )
    assert r.status_code == 404, r.text
    # As jupyter-collaboration does, the timeline's room is not closed under its pages
    # (y-websocket would reconnect to an empty room of that name): it goes with them.
    assert not watcher.closed.is_set()

    # provider.reconnect(): the page takes its document back to the file's room, which
    # then holds the restored version, and saves it.
    await page.disconnect()
    await page.reconnect(probe_server.ws_url(room, timeline["sessionId"]))
    while (await read_markdown(probe, probe_session, path)) != "# Title v1":
        await asyncio.sleep(0.02)
    saved = await wait_saved(
        probe_server.root / path, lambda nb: nb.cells[0].source == "# Title v1"
    )
    assert saved.cells[1].source == "x = 1"
    await page.disconnect()
    await watcher.disconnect()
    while (await probe.room(timeline["forkRoom"]))["exists"]:
        await asyncio.sleep(0.02)
    # One timestamp per step the slider can take: the load, then the three edits.
    assert len(stamps) >= 4 and stamps == sorted(stamps), stamps
    assert all(isinstance(t, float) for t in stamps)


async def read_markdown(probe_: Probe, session: Session, path: str) -> str:
    room = (await session.open(path))["room"]
    answer = await probe_.room(room)
    assert answer["exists"], "the file's room is not open"
    source: str = answer["content"]["cells"][0]["source"]
    return source


# -- session and awareness events ------------------------------------------------------------


async def test_session_and_awareness_events_of_a_rooms_life(
    probe_server: Server, probe_session: Session, probe: Probe
) -> None:
    path, _, _ = write_mixed_notebook(probe_server.root, "events.ipynb", "x = 1")
    room = (await probe_session.open(path))["room"]

    def of_room(events: list[dict[str, Any]]) -> list[tuple[str, ...]]:
        seen = []
        for e in events:
            if e["schema_id"] == SESSION_SCHEMA and e["room"] == room:
                assert e["path"] == path and e["level"] == "INFO", e
                seen.append(("session", e["action"], e["msg"]))
            elif e["schema_id"] == AWARENESS_SCHEMA and e["roomid"] == room:
                seen.append(("awareness", e["action"], e["username"]))
        return seen

    first = await probe_session.client(path)
    second = await probe_session.client(path)
    # The collaborators panel's room: no awareness events.
    everyone = YClient(probe_server.ws_url("JupyterLab:globalAwareness", None))
    await everyone.connect()
    append_to_source(first, " edited")
    await wait_saved(probe_server.root / path, lambda nb: nb.cells[0].source == "# Title edited")
    await probe.wait_events(lambda ev: ("session", "save", "Content saved.") in of_room(ev))

    # Another program rewrites the file.
    nb = nbformat.read(probe_server.root / path, as_version=4)
    nb.cells[0].source = "# Changed on disk"
    nbformat.write(nb, probe_server.root / path)
    await first.wait_for(lambda: markdown_source(first) == "# Changed on disk")

    await everyone.disconnect()
    await second.disconnect()
    await first.disconnect()
    events = await probe.wait_events(
        lambda ev: ("session", "clean", "Loader deleted.") in of_room(ev)
    )
    seen = of_room(events)
    # Each token request without a cookie is a user of its own: compare by position.
    joins = [e[2] for e in seen if e[:2] == ("awareness", "join")]
    leaves = [e[2] for e in seen if e[:2] == ("awareness", "leave")]
    assert len(joins) == 2 and all(joins) and sorted(leaves) == sorted(joins)
    seen = [(*e[:2], "user") if e[0] == "awareness" else e for e in seen]
    user = "user"
    # Saves come when the server saves: collapse them to one, wherever they fall.
    collapsed = [e for i, e in enumerate(seen) if e[1] != "save" or seen[i - 1][1] != "save"]
    assert collapsed == [
        ("session", "load", "Content loaded from disk."),
        ("session", "initialize", "Room initialized"),
        ("session", "initialize", "New client connected."),
        ("awareness", "join", user),
        ("session", "initialize", "New client connected."),
        ("awareness", "join", user),
        ("session", "save", "Content saved."),
        ("session", "overwrite", "Out-of-band changes. Overwriting the room."),
        ("awareness", "leave", user),
        ("awareness", "leave", user),
        ("session", "clean", "Room deleted."),
        ("session", "clean", "Loader deleted."),
    ], seen
    global_awareness = [
        e
        for e in events
        if e["schema_id"] == AWARENESS_SCHEMA and e["roomid"] == "JupyterLab:globalAwareness"
    ]
    assert global_awareness == []
