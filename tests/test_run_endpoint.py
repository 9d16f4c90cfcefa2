"""``POST api/ydoc-outputs/run/{path}``: a notebook's code cells queued on the server, on
its session's kernel (started if there is none), with clear errors for bad requests.

A real server, real ipykernels, a real Y client watching the room.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from .conftest import Server, Session, write_notebook
from .test_execution import run_to_idle, stream_text
from .test_kernel_faults import kill


class Runs:
    """Posts runs; shuts down the sessions they started."""

    def __init__(self, session: Session) -> None:
        self.http = session.http
        self.paths: set[str] = set()

    async def post(self, path: str, body: object = None, **kwargs: object):
        if body is not None:
            kwargs["json"] = body
        r = await self.http.post(f"/api/ydoc-outputs/run/{path}", **kwargs)
        self.paths.add(path)
        return r

    async def sessions(self, path: str) -> list[dict]:
        return [s for s in (await self.http.get("/api/sessions")).json() if s["path"] == path]

    async def close(self) -> None:
        for path in self.paths:
            for s in await self.sessions(path):
                await self.http.delete(f"/api/sessions/{s['id']}")


@pytest.fixture
async def runs(session: Session) -> AsyncIterator[Runs]:
    r = Runs(session)
    yield r
    await r.close()


def assert_error(r, status: int, words: str) -> None:
    assert r.status_code == status, (r.status_code, r.text)
    message = r.json()["message"]
    assert words in message, message


async def test_run_queues_the_code_cells_in_order_on_a_new_session(
    server: Server, session: Session, runs: Runs
):
    sources = ["seen = [0]", "seen.append(1)", "", "seen.append(3)\nprint(seen)"]
    path, cells = write_notebook(server.root, "run-all.ipynb", sources)
    client = await session.client(path)
    assert await runs.sessions(path) == []
    r = await runs.post(path, {})
    assert r.status_code == 202, r.text
    body = r.json()
    # The blank cell is skipped, as JupyterLab skips it.
    assert body["cell_ids"] == [cells[0], cells[1], cells[3]]
    assert body["cell_indices"] == [0, 1, 3]
    assert body["path"] == path and body["status"] == "queued"
    assert body["document_id"] == (await session.open(path))["room"]
    [s] = await runs.sessions(path)
    assert s["kernel"]["id"] == body["kernel_id"] and s["id"] == body["session_id"]
    assert body["kernel_name"] == "python3"  # the notebook's kernelspec
    await run_to_idle(client, cells[3])
    assert stream_text(client.outputs(cells[3])) == "[0, 1, 3]\n"
    assert [client.cell(c)["execution_count"] for c in cells] == [1, 2, None, 3]

    # A second run goes to the same session's kernel.
    r = await runs.post(path, {"start": 3})
    assert r.status_code == 202, r.text
    assert r.json()["cell_ids"] == [cells[3]] and r.json()["kernel_id"] == body["kernel_id"]
    await client.wait_for(lambda: client.cell(cells[3])["execution_count"] == 4)
    assert stream_text(client.outputs(cells[3])) == "[0, 1, 3, 3]\n"
    await client.disconnect()


async def test_queued_cells_show_running_when_the_answer_comes(
    server: Server, session: Session, runs: Runs
):
    path, cells = write_notebook(
        server.root, "run-marks.ipynb", ["import time; time.sleep(1.5)", "1", "2"]
    )
    client = await session.client(path)
    r = await runs.post(path, {})
    assert r.status_code == 202, r.text
    # What a page that opens the notebook now sees: [*] on the running and queued cells.
    await client.wait_for(lambda: all(client.state(c) == "running" for c in cells), 5)
    await run_to_idle(client, cells[2])
    await client.disconnect()


async def test_a_range_and_stop_on_error(server: Server, session: Session, runs: Runs):
    sources = ["print('zero')", "print('one')", "1/0", "print('three')", "print('four')"]
    path, cells = write_notebook(server.root, "run-range.ipynb", sources)
    client = await session.client(path)
    r = await runs.post(path, {"start": 1, "stop": 4})
    assert r.status_code == 202, r.text
    assert r.json()["cell_ids"] == cells[1:4]
    await client.wait_for(lambda: all(client.state(c) == "idle" for c in cells[1:4]), 60)
    assert client.outputs(cells[0]) == []  # not in the range
    assert stream_text(client.outputs(cells[1])) == "one\n"
    assert [o["ename"] for o in client.outputs(cells[2])] == ["ZeroDivisionError"]
    # Stopped at the error, as Run All: the next cell did not run.
    assert client.outputs(cells[3]) == [] and client.cell(cells[3])["execution_count"] is None
    assert client.outputs(cells[4]) == []
    await client.disconnect()


async def test_an_empty_range_queues_nothing(server: Server, runs: Runs):
    path, _ = write_notebook(server.root, "run-empty.ipynb", ["1", "2"])
    r = await runs.post(path, {"start": 1, "stop": 1})
    assert r.status_code == 202, r.text
    assert r.json()["cell_ids"] == [] and r.json()["kernel_id"] is None
    assert await runs.sessions(path) == []  # no kernel started for nothing


async def test_unknown_notebook_is_404(server: Server, runs: Runs):
    for path in ["missing.ipynb", "no/such/dir/a.ipynb", "%2E%2E/outside.ipynb", ".hidden.ipynb"]:
        if path.startswith("."):
            write_notebook(server.root, path, ["1"])
        assert_error(await runs.post(path, {}), 404, "no file at")
    (server.root / "run-dir.ipynb").mkdir()
    assert_error(await runs.post("run-dir.ipynb", {}), 404, "no file at")


async def test_bad_requests_are_400(server: Server, runs: Runs):
    path, _ = write_notebook(server.root, "run-bad.ipynb", ["1", "2", "3"])
    (server.root / "run-bad.txt").write_text("not a notebook")
    assert_error(await runs.post("run-bad.txt", {}), 400, "not a notebook")
    (server.root / "run-broken.ipynb").write_text("not json")
    assert_error(await runs.post("run-broken.ipynb", {}), 400, "Unreadable Notebook")
    assert_error(await runs.post(path, content=b"{not json"), 400, "not JSON")
    assert_error(await runs.post(path, [1, 2]), 400, "JSON object")
    for body in [{"start": -1}, {"start": "1"}, {"stop": 1.5}, {"stop": True}]:
        assert_error(await runs.post(path, body), 400, "non-negative integer")
    assert_error(await runs.post(path, {"start": 4}), 400, "out of range: the notebook has 3")
    assert_error(await runs.post(path, {"stop": 9}), 400, "cells :9 out of range")
    assert_error(await runs.post(path, {"start": 2, "stop": 1}), 400, "start after stop")
    for name in [3, "", "x" * 300]:
        assert_error(await runs.post(path, {"kernel_name": name}), 400, "'kernel_name'")
    assert_error(
        await runs.post(path, {"kernel_name": "no-such-kernel"}), 400, "no kernel 'no-such-kernel'"
    )
    assert await runs.sessions(path) == []


async def test_a_notebook_asking_for_a_missing_kernel_is_400(server: Server, runs: Runs):
    path, _ = write_notebook(server.root, "run-julia.ipynb", ["1"])
    nb = json.loads((server.root / path).read_text())
    nb["metadata"]["kernelspec"]["name"] = "julia-1.9"
    (server.root / path).write_text(json.dumps(nb))
    assert_error(await runs.post(path, {}), 400, "named in the notebook's metadata")
    # A kernel given by name wins over the metadata.
    r = await runs.post(path, {"kernel_name": "python3"})
    assert r.status_code == 202, r.text


async def test_oversized_body_is_413(server: Server, runs: Runs):
    path, _ = write_notebook(server.root, "run-big.ipynb", ["1"])
    big = {"start": 0, "padding": "x" * (64 * 1024)}
    assert_error(await runs.post(path, big), 413, "body larger than")


async def test_another_kernel_or_a_dead_one_is_409(server: Server, session: Session, runs: Runs):
    path, cells = write_notebook(server.root, "run-409.ipynb", ["import os\nprint(os.getpid())"])
    client = await session.client(path)
    r = await runs.post(path, {})
    assert r.status_code == 202, r.text
    await run_to_idle(client, cells[0])
    assert_error(await runs.post(path, {"kernel_name": "python2"}), 409, "already has a session")
    await kill(int(stream_text(client.outputs(cells[0]))))
    # Until jupyter_server's restarter brings it back (3 s later).
    assert_error(await runs.post(path, {}), 409, "is dead")
    await client.disconnect()


async def test_wrong_token_is_403(server: Server):
    path, _ = write_notebook(server.root, "run-token.ipynb", ["1"])
    async with server.http(token="wrong") as http:
        r = await http.post(f"/api/ydoc-outputs/run/{path}", json={})
        assert r.status_code == 403, r.text
    async with server.http(token=None) as http:
        r = await http.post(f"/api/ydoc-outputs/run/{path}", json={})
        assert r.status_code == 403, r.text
