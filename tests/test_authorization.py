"""Authorization: with a Jupyter Server authorizer that denies a resource, every endpoint
of the extension that touches it answers 403, and what the authorizer allows still works.

Two servers, each with an authorizer from ``tests/authorizers.py``: one denies
``contents`` (files), one denies ``kernels``. Running a cell needs both: ``execute`` on
the kernel and ``write`` on the notebook, whose outputs it writes.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import websockets

from .conftest import Server, write_notebook
from .yclient import YClient

REPO = Path(__file__).resolve().parent.parent
NOTEBOOK_BODY = {"format": "json", "type": "notebook"}
COLLABORATION_FEATURES = [
    ("GET", "/api/collaboration/timeline/a.ipynb?format=json&type=notebook"),
    ("PUT", "/api/collaboration/fork/json:notebook:abc"),
    ("PUT", "/api/collaboration/undo_redo/json:notebook:abc"),
]


def _server(tmp_path_factory: pytest.TempPathFactory, authorizer: str) -> Server:
    root = tmp_path_factory.mktemp("notebooks")
    home = tmp_path_factory.mktemp("jupyter-home")
    # The server process imports the authorizer from the repository's tests package.
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    return Server(
        root,
        home,
        [f"--ServerApp.authorizer_class=tests.authorizers.{authorizer}"],
        env={"PYTHONPATH": path},
    )


@pytest.fixture(scope="module")
def deny_contents(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = _server(tmp_path_factory, "DenyContents")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def deny_kernels(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = _server(tmp_path_factory, "DenyKernels")
    yield server
    server.stop()


def assert_refused(response: httpx.Response) -> None:
    assert response.status_code == 403, (response.request.method, response.request.url)
    assert response.json()["message"], response.text
    assert "fileId" not in response.text and "cells" not in response.text


async def assert_websocket_refused(server: Server, room: str) -> None:
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with websockets.connect(server.ws_url(room, None)):
            pass
    assert refused.value.response.status_code == 403


async def test_without_contents_every_endpoint_refuses(deny_contents: Server):
    server = deny_contents
    path, [cell] = write_notebook(server.root, "secret.ipynb", ["print('secret')"])
    room = f"json:notebook:{uuid.uuid4()}"
    async with server.http() as http:
        # What the authorizer allows still works: kernels.
        started = await http.post("/api/kernels", json={"name": "python3"})
        assert started.status_code == 201, started.text
        kernel = started.json()["id"]
        assert (await http.get(f"/api/kernels/{kernel}")).status_code == 200
        assert (await http.get("/api/status")).status_code == 200
        try:
            assert_refused(await http.put(f"/api/collaboration/session/{path}", json=NOTEBOOK_BODY))
            # Running a cell reads and writes the notebook: the kernel alone is not enough.
            assert_refused(
                await http.post(
                    f"/api/kernels/{kernel}/execute", json={"cell_id": cell, "document_id": room}
                )
            )
            assert_refused(await http.get(f"/api/ydoc-outputs/export/{path}"))
            # Running a notebook writes its outputs: refused without contents.
            assert_refused(await http.post(f"/api/ydoc-outputs/run/{path}", json={}))
            assert_refused(await http.get(f"/api/ydoc-outputs/output/{room}/{cell}"))
            for method, url in COLLABORATION_FEATURES:
                assert_refused(await http.request(method, url, content=b"{}"))
            assert_refused(await http.get(f"/api/contents/{path}"))  # the authorizer works
        finally:
            await http.delete(f"/api/kernels/{kernel}")
    await assert_websocket_refused(server, room)
    assert server.proc.poll() is None


async def test_without_kernels_execution_is_refused_and_documents_still_work(
    deny_kernels: Server,
):
    server = deny_kernels
    path, [cell] = write_notebook(server.root, "shared.ipynb", ["print('hi')"])
    async with server.http() as http:
        assert_refused(await http.post("/api/kernels", json={"name": "python3"}))
        # What the authorizer allows still works: the session, the room, fork and
        # timeline, export.
        r = await http.put(f"/api/collaboration/session/{path}", json=NOTEBOOK_BODY)
        assert r.status_code == 201, r.text
        info = r.json()
        room = f"json:notebook:{info['fileId']}"
        assert_refused(
            await http.post(
                f"/api/kernels/{uuid.uuid4()}/execute", json={"cell_id": cell, "document_id": room}
            )
        )
        # Running a notebook needs execute on kernels (and starts one).
        assert_refused(await http.post(f"/api/ydoc-outputs/run/{path}", json={}))
        client = YClient(server.ws_url(room, info["sessionId"]))
        await client.connect()
        assert client.cell(cell)["source"] == "print('hi')"
        # Fork and timeline need no kernel either.
        r = await http.get(f"/api/collaboration/timeline/{path}?format=json&type=notebook")
        assert r.status_code == 200, r.text
        r = await http.put(f"/api/collaboration/fork/{room}", json={"synchronize": True})
        assert r.status_code == 201, r.text
        fork = r.json()["fork_roomid"]
        r = await http.delete(f"/api/collaboration/fork/{fork}?merge=true")
        assert r.status_code == 200, r.text
        await client.disconnect()
        export = await http.get(f"/api/ydoc-outputs/export/{path}")
        assert export.status_code == 200
        assert export.json()["cells"][0]["id"] == cell
        output = await http.get(f"/api/ydoc-outputs/output/{room}/{cell}")
        assert output.status_code == 200 and output.text == "", output.text
    assert server.proc.poll() is None
