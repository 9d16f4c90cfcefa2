"""Run All's order through the whole path, driven as the stock page drives it (see
tests/page.py): the test checks the order the cells ran in, never how long it took."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from jupyter_ydoc import YNotebook
from pycrdt import Doc

from .conftest import Server, Session, write_notebook
from .page import mark, post, run_as_the_page_does
from .test_execution import run_to_idle
from .yclient import YClient


def chain(n: int) -> list[str]:
    """Cells that fail with a NameError or an AssertionError unless run in order."""
    return ["ran = [0]"] + [
        f"assert ran[-1] == {i - 1}, ran[-1]\nran.append({i})" for i in range(1, n)
    ]


async def test_run_all_of_100_cells_with_shuffled_late_posts_runs_in_document_order(
    server: Server, session: Session
):
    path, cells = write_notebook(server.root, "run-all-100.ipynb", chain(100))
    kernel, room, client = await session.prepare(path)
    for seed in (1, 2):
        responses = await run_as_the_page_does(
            session.http, client, kernel, room, cells, rng=random.Random(seed), max_delay=0.2
        )
        assert all(r.status_code == 202 for r in responses), [r.text for r in responses]
        for cell in cells:
            await run_to_idle(client, cell)
        counts = [int(client.cell(c)["execution_count"]) for c in cells]
        assert counts == list(range(counts[0], counts[0] + 100)), seed
        errors = [c for c in cells if any(o["output_type"] == "error" for o in client.outputs(c))]
        assert errors == [], client.outputs(errors[0])
    await client.disconnect()


async def test_run_all_posted_in_order_at_once_runs_in_document_order(
    server: Server, session: Session
):
    path, cells = write_notebook(server.root, "run-all-30.ipynb", chain(30))
    kernel, room, client = await session.prepare(path)
    await run_as_the_page_does(session.http, client, kernel, room, cells)
    for cell in cells:
        await run_to_idle(client, cell)
    counts = [int(client.cell(c)["execution_count"]) for c in cells]
    assert counts == list(range(counts[0], counts[0] + 30))
    await client.disconnect()


async def test_an_error_in_a_run_all_stops_it_there(server: Server, session: Session):
    """The cell after a failing one may already be in the kernel (sent ahead): the
    kernel aborts it, and it ends as the queued ones do, idle with no count."""
    sources = ["import time\ntime.sleep(0.2)\na = 1", "raise ValueError('stop')", "b = 2", "c = 3"]
    path, cells = write_notebook(server.root, "run-all-fails.ipynb", sources)
    kernel, room, client = await session.prepare(path)
    await run_as_the_page_does(session.http, client, kernel, room, cells)
    await run_to_idle(client, cells[1])
    for cell in cells[2:]:
        await client.wait_for(lambda cell=cell: client.state(cell) == "idle")
    assert client.outputs(cells[1])[-1]["ename"] == "ValueError"
    assert [client.cell(c)["execution_count"] for c in cells[2:]] == [None, None]
    assert [client.outputs(c) for c in cells[2:]] == [[], []]
    r = await session.http.post(
        f"/api/kernels/{kernel}/execute", json={"cell_id": cells[3], "document_id": room}
    )
    assert r.status_code == 202
    await run_to_idle(client, cells[3])
    reply = await session.http.get(f"/api/ydoc-outputs/export/{path}")
    assert "NameError" not in reply.text
    await client.disconnect()


async def test_marks_sent_before_a_request_reach_the_room_before_it(
    server: Server, session: Session
):
    """A page's marks go over the room websocket before its execute requests. If the
    room takes them in more slowly than the server handles requests, a cell can run and
    end before its own mark is applied; a mark made before the page saw the cell start
    is concurrent with the server's idle, and wins it when the page's client id is the
    higher one: the cell then shows running after it ran, until the grace makes it idle
    (and a Run All's later cells wait for it that long). Here 300 marks go out, the
    posted cell's own mark last, then its request: the mark must be in first."""
    path, cells = write_notebook(server.root, "marks-first.ipynb", ["x = 1"] + ["pass"] * 299)
    kernel = await session.start_kernel()
    opened = await session.open(path)
    # The highest client id a Yjs page can have: its concurrent writes win.
    page = YNotebook(Doc(client_id=2**53 - 1))
    client = YClient(server.ws_url(opened["room"], opened["sessionId"]), page)
    await client.connect()
    first = cells[0]
    ran_then_running: list[str] = []

    def watch() -> None:
        if client.cell(first).get("execution_count") and client.state(first) == "running":
            ran_then_running.append(client.state(first))

    client.listeners.append(watch)
    for cell_id in [*cells[1:], first]:
        mark(client, cell_id)
    await client.flush()
    r = await post(session.http, kernel, opened["room"], first, int(time.time() * 1000))
    assert r.status_code == 202, r.text
    # Cells 1-299 were marked and never posted: the grace sets them idle, after which
    # every mark is in. The posted cell ran, and never showed running after that.
    for cell_id in cells[1:]:
        await client.wait_for(lambda cell_id=cell_id: client.state(cell_id) == "idle")
    await run_to_idle(client, first)
    assert ran_then_running == []
    assert client.state(first) == "idle"
    await client.disconnect()


async def test_a_mark_without_its_request_holds_later_cells_only_for_the_grace(
    server: Server, session: Session
):
    """The page marked cell 1 and went away before posting it: cell 2, posted alone,
    still runs, and cell 1 no longer shows as running."""
    path, cells = write_notebook(server.root, "stale-mark.ipynb", ["a = 1", "b = 2", "c = 3"])
    kernel, room, client = await session.prepare(path)
    mark(client, cells[1])
    mark(client, cells[2])
    await client.flush()
    r = await post(session.http, kernel, room, cells[2], sent=1)
    assert r.status_code == 202, r.text
    await run_to_idle(client, cells[2])
    await client.wait_for(lambda: client.state(cells[1]) == "idle")
    assert client.cell(cells[1])["execution_count"] is None
    assert f"cells ['{cells[1]}'] of {room} were marked to run, but not run" in server.log()
    await client.disconnect()


async def test_a_mark_alone_is_set_idle_once_the_grace_is_over(server: Server, session: Session):
    """A page marked a cell and never posted it, and nothing else is run: the [*] does
    not stay forever."""
    path, cells = write_notebook(server.root, "lone-mark.ipynb", ["a = 1"])
    client = await session.client(path)
    room = (await session.open(path))["room"]
    mark(client, cells[0])
    await client.wait_for(lambda: client.state(cells[0]) == "running")
    await client.wait_for(lambda: client.state(cells[0]) == "idle", timeout=10)
    assert f"cells ['{cells[0]}'] of {room} were marked to run, but not run" in server.log()
    await client.disconnect()


GRACE = 3.0


@pytest.fixture
async def patient(tmp_path: Path) -> AsyncIterator[Session]:
    """A server whose grace is long enough that a loaded machine cannot outlast it."""
    (tmp_path / "root").mkdir()
    (tmp_path / "home").mkdir()
    args = [f"--YdocOutputsApp.run_order_grace={GRACE}"]
    srv = Server(tmp_path / "root", tmp_path / "home", args)
    s = Session(srv, srv.http())
    yield s
    await s.close()
    srv.stop()


async def test_after_an_error_the_rest_of_a_run_all_does_not_run(patient: Session):
    """As the kernel's stop_on_error aborts what the page sent after a failing cell, the
    requests of the cells that Run All marked are refused when they arrive after the
    error, while the run's requests are still arriving (the queued ones are cancelled)."""
    sources = ["warm = 1", "raise ValueError('stop')", "x = 1", "y = 2"]
    session = patient
    path, cells = write_notebook(session.server.root, "run-all-error.ipynb", sources)
    kernel, room, client = await session.prepare(path)
    assert (await session.execute(kernel, room, cells[0])).status_code == 202
    await run_to_idle(client, cells[0])
    for cell in cells[1:]:
        mark(client, cell)
    await client.flush()
    assert (await post(session.http, kernel, room, cells[1], sent=1)).status_code == 202
    await run_to_idle(client, cells[1])  # a warm kernel: well within the grace
    late = await asyncio.gather(*(post(session.http, kernel, room, c, sent=1) for c in cells[2:]))
    assert [r.status_code for r in late] == [202, 202]
    for cell in cells[2:]:
        await client.wait_for(lambda cell=cell: client.state(cell) == "idle")
    assert [client.cell(c)["execution_count"] for c in cells[2:]] == [None, None]
    assert client.outputs(cells[1])[-1]["ename"] == "ValueError"
    # A request after the run's requests stopped arriving runs.
    await asyncio.sleep(GRACE + 0.2)
    assert (await session.execute(kernel, room, cells[3])).status_code == 202
    await run_to_idle(client, cells[3])
    await client.disconnect()
