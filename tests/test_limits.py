"""A cell that prints past ``cell_output_chars`` against a real server and kernel: the
document keeps the head and the tail, and the whole output can still be fetched."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import nbformat
import pytest

from .conftest import Server, Session, write_notebook
from .test_execution import run_to_idle, stream_text

LIMIT = 200_000
SEGMENT = 10_000
LINES = 60_000  # about 650 KB of text: more than three times the limit


@pytest.fixture(scope="module")
def limited_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(
        tmp_path_factory.mktemp("notebooks"),
        tmp_path_factory.mktemp("jupyter-home"),
        [
            "--YdocOutputsApp.autosave_delay=0.2",
            f"--YdocOutputsApp.cell_output_chars={LIMIT}",
            f"--YdocOutputsApp.stream_segment_chars={SEGMENT}",
        ],
    )
    yield srv
    srv.stop()


@pytest.fixture
async def lsession(limited_server: Server) -> AsyncIterator[Session]:
    s = Session(limited_server, limited_server.http())
    yield s
    await s.close()


def is_marker(output: dict[str, object]) -> bool:
    metadata = output.get("metadata")
    mine = metadata.get("ydoc_outputs") if isinstance(metadata, dict) else None
    return isinstance(mine, dict) and mine.get("truncated") is True


async def test_a_runaway_cell_keeps_head_and_tail_and_serves_the_whole_output(
    lsession: Session,
):
    server = lsession.server
    source = f"for i in range({LINES}):\n    print(f'line {{i:06d}}')"
    path, [cell] = write_notebook(server.root, "runaway.ipynb", [source])
    kernel, room, client = await lsession.prepare(path)
    assert (await lsession.execute(kernel, room, cell)).status_code == 202
    await run_to_idle(client, cell, timeout=120)

    outputs = client.outputs(cell)
    markers = [i for i, output in enumerate(outputs) if is_marker(output)]
    assert len(markers) == 1, outputs[:3]
    head, tail = stream_text(outputs[: markers[0]]), stream_text(outputs[markers[0] + 1 :])
    assert head.startswith("line 000000\nline 000001\n") and len(head) <= LIMIT // 2
    assert tail.endswith(f"line {LINES - 1:06d}\n") and len(tail) <= LIMIT // 2 + SEGMENT
    # The marker says what happened and links to the whole output.
    marker = outputs[markers[0]]
    url = f"/api/ydoc-outputs/output/{room.replace(':', '%3A')}/{cell}"
    assert url in marker["data"]["text/plain"] and url in marker["data"]["text/html"]

    whole = await lsession.http.get(url)
    assert whole.status_code == 200, whole.text
    assert whole.headers["content-type"] == "text/plain; charset=UTF-8"
    assert whole.text == "".join(f"line {i:06d}\n" for i in range(LINES))

    # The notebook on disk and the export hold the truncated cell, valid nbformat.
    exported = nbformat.reads(await lsession.export(path), as_version=4)
    nbformat.validate(exported)
    assert len(exported.cells[0].outputs) == len(outputs)

    # Running the cell again starts over: the old middle is gone.
    count = client.cell(cell)["execution_count"]
    client.notebook.ycells[0]["source"].clear()
    client.notebook.ycells[0]["source"].insert(0, "print('short')")
    watcher = await lsession.client(path)  # the server has the edit once this one sees it
    await watcher.wait_for(lambda: watcher.cell(cell)["source"] == "print('short')")
    await watcher.disconnect()
    assert (await lsession.execute(kernel, room, cell)).status_code == 202
    await client.wait_for(
        lambda: client.state(cell) == "idle" and client.cell(cell)["execution_count"] == count + 1
    )
    assert stream_text(client.outputs(cell)) == "short\n"
    again = await lsession.http.get(url)
    assert again.text == "short\n"
    await client.disconnect()


async def test_the_output_of_a_cell_that_was_not_truncated_is_text(lsession: Session):
    server = lsession.server
    nb = nbformat.v4.new_notebook()
    nb.cells.append(
        nbformat.v4.new_code_cell(
            "print('hi')", outputs=[nbformat.v4.new_output("stream", name="stdout", text="hi\n")]
        )
    )
    nbformat.write(nb, server.root / "printed.ipynb")
    room = (await lsession.open("printed.ipynb"))["room"]
    output = await lsession.http.get(f"/api/ydoc-outputs/output/{room}/{nb.cells[0].id}")
    assert output.status_code == 200, output.text
    assert output.headers["content-type"] == "text/plain; charset=UTF-8"
    assert output.text == "hi\n"


async def test_output_endpoint_errors(lsession: Session):
    server = lsession.server
    path, [cell] = write_notebook(server.root, "small.ipynb", ["print('hi')"])
    room = (await lsession.open(path))["room"]
    unknown_cell = await lsession.http.get(f"/api/ydoc-outputs/output/{room}/nope")
    assert unknown_cell.status_code == 404 and "nope" in unknown_cell.json()["message"]
    assert unknown_cell.headers["content-type"] == "application/json"
    unknown_doc = await lsession.http.get(f"/api/ydoc-outputs/output/json:notebook:x/{cell}")
    assert unknown_doc.status_code == 404, unknown_doc.text
    not_a_notebook = await lsession.http.get(f"/api/ydoc-outputs/output/text:file:x/{cell}")
    assert not_a_notebook.status_code == 400, not_a_notebook.text
    assert "message" in not_a_notebook.json()
