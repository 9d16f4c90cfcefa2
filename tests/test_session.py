"""The session endpoint serves exactly the files the contents API serves, one file id each."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest

from .conftest import TOKEN, Server, Session, write_notebook

NOTEBOOK = {"format": "json", "type": "notebook"}


async def raw_put(server: Server, raw_path: str, body: dict[str, Any]) -> tuple[int, Any]:
    """PUT ``raw_path`` exactly as written: httpx and browsers collapse ``./`` and ``x/..``
    before sending, a script or curl with ``--path-as-is`` does not."""
    data = json.dumps(body).encode()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(
        f"PUT {raw_path} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
        f"Authorization: token {TOKEN}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode()
        + data
    )
    await writer.drain()
    answer = await reader.read()
    writer.close()
    head, _, payload = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(payload) if payload else None


@pytest.mark.parametrize(
    "spelling",
    [
        "./spelled.ipynb",
        "sub/../spelled.ipynb",
        "spelled.ipynb/",
        "/spelled.ipynb",
        "sub//..//./spelled.ipynb",
        "%2E/spelled.ipynb",
        "sub%2F..%2Fspelled.ipynb",
        "sub/%2E%2E/spelled.ipynb",
    ],
)
async def test_every_spelling_of_a_path_gets_its_one_file_id(
    server: Server, session: Session, spelling: str
):
    # Two file ids for one file would be two rooms editing it, each reloading the
    # other's saves from disk.
    (server.root / "sub").mkdir(exist_ok=True)
    path, _ = write_notebook(server.root, "spelled.ipynb", ["1"])
    file_id = (await session.open(path))["fileId"]
    status, body = await raw_put(server, f"/api/collaboration/session/{spelling}", NOTEBOOK)
    assert (status, body["fileId"]) == (200, file_id)


@pytest.mark.parametrize(
    "escape", ["../outside.ipynb", "sub/../../outside.ipynb", "%2E%2E/outside.ipynb"]
)
async def test_a_path_outside_the_root_is_not_found(server: Server, session: Session, escape: str):
    (server.root / "sub").mkdir(exist_ok=True)
    write_notebook(server.root.parent, "outside.ipynb", ["1"])
    status, body = await raw_put(server, f"/api/collaboration/session/{escape}", NOTEBOOK)
    assert status == 404, body
    assert "fileId" not in body


@pytest.mark.parametrize(
    ("hidden", "absent"),
    [
        (".hidden.ipynb", ".absent.ipynb"),
        (".secret/inside.ipynb", ".secret/absent.ipynb"),
        ("visible/../.hidden.ipynb", "visible/../.absent.ipynb"),
    ],
)
async def test_hidden_files_are_as_absent_as_in_the_contents_api(
    server: Server, session: Session, hidden: str, absent: str
):
    (server.root / ".secret").mkdir(exist_ok=True)
    (server.root / "visible").mkdir(exist_ok=True)
    write_notebook(server.root, ".hidden.ipynb", ["1"])
    write_notebook(server.root, ".secret/inside.ipynb", ["1"])
    contents = await session.http.get(f"/api/contents/{hidden.replace('visible/../', '')}")
    assert contents.status_code == 404  # what the server's own API says
    answers = []
    for path in (hidden, absent):
        status, body = await raw_put(server, f"/api/collaboration/session/{path}", NOTEBOOK)
        answers.append((status, body["message"].replace(path, "<path>")))
    # The same answer as for a file that does not exist: nothing tells them apart.
    assert answers[0] == answers[1]
    assert answers[0][0] == 404
    # Nor does the export give the hidden notebook away.
    export = await session.http.get(f"/api/ydoc-outputs/export/{hidden}")
    assert export.status_code == 404, export.text


@pytest.mark.parametrize("path", ["a" * 3000, "spelled.ipynb/x", "%00", "b%00.ipynb"])
async def test_a_path_the_system_cannot_look_up_is_not_found(
    server: Server, session: Session, path: str
):
    # Too long for the OS, under a file, or with a NUL byte: no file, not a server error.
    write_notebook(server.root, "spelled.ipynb", ["1"])
    status, body = await raw_put(server, f"/api/collaboration/session/{path}", NOTEBOOK)
    assert status == 404, body
    export = await session.http.get(f"/api/ydoc-outputs/export/{path}")
    assert export.status_code == 404, export.text


async def test_a_directory_is_not_a_document(server: Server, session: Session):
    (server.root / "folder.ipynb").mkdir(exist_ok=True)
    for path in ("folder.ipynb", "", "."):
        status, body = await raw_put(server, f"/api/collaboration/session/{path}", NOTEBOOK)
        assert status == 404, (path, body)
        assert "fileId" not in body


@pytest.fixture(scope="module")
def unsaving_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server that neither saves nor watches files for the length of a test: the room
    alone holds an edit."""
    srv = Server(
        tmp_path_factory.mktemp("notebooks"),
        tmp_path_factory.mktemp("jupyter-home"),
        ["--YdocOutputsApp.autosave_delay=3600", "--YdocOutputsApp.file_poll_interval=0"],
    )
    yield srv
    srv.stop()


async def test_export_of_another_spelling_is_the_open_room(unsaving_server: Server):
    session = Session(unsaving_server, unsaving_server.http())
    path, _ = write_notebook(unsaving_server.root, "exported.ipynb", ["1"])
    client = await session.client(path)
    client.notebook.ycells[0]["source"].insert(0, "# edited\n")
    watcher = await session.client(path)  # the server has the edit once this one sees it
    await watcher.wait_for(lambda: str(watcher.notebook.ycells[0]["source"]) == "# edited\n1")
    for spelling in ("exported.ipynb", "%2E/exported.ipynb", "sub%2F..%2Fexported.ipynb"):
        exported = await session.http.get(f"/api/ydoc-outputs/export/{spelling}")
        assert exported.status_code == 200, exported.text
        assert "".join(exported.json()["cells"][0]["source"]) == "# edited\n1", spelling
    await watcher.disconnect()
    await client.disconnect()
    await session.close()


async def test_a_file_id_of_a_hidden_file_opens_no_room(tmp_path):
    """An id handed out while hidden files were allowed (or before the session endpoint
    refused them) opens no room once they are not: the contents manager's own ``get``
    refuses the hidden file (a guard; this held before the session endpoint's fix too)."""
    from .yclient import YClient

    root, home = tmp_path / "root", tmp_path / "home"
    root.mkdir()
    home.mkdir()
    path, _ = write_notebook(root, ".hidden.ipynb", ["1"])
    allowing = Server(root, home, ["--ContentsManager.allow_hidden=True"])
    try:
        async with allowing.http() as http:
            info = await Session(allowing, http).open(path)
    finally:
        allowing.stop()
    server = Server(root, home, [])
    try:
        client = YClient(server.ws_url(info["room"], None))
        await client.connect(wait_synced=False)
        await asyncio.wait_for(client.closed.wait(), 10)
        assert client.close_code == 4404, client.close_reason
        assert not client.synced.is_set()
    finally:
        server.stop()
