"""``metadata.execution`` on a real server and kernel: recorded as JupyterLab's
recordTiming records it when ``record_timing`` is on, deleted by a run when it is off."""

from __future__ import annotations

import asyncio
import datetime
import json
from collections.abc import AsyncIterator, Iterator

import nbformat
import pytest

from .conftest import Server, Session, read_saved, write_notebook
from .test_execution import run_to_idle

KEYS = [
    "iopub.status.busy",
    "iopub.execute_input",
    "shell.execute_reply.started",
    "shell.execute_reply",
    "iopub.status.idle",
]


@pytest.fixture(scope="module")
def timing_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("timing")
    home = tmp_path_factory.mktemp("timing-home")
    srv = Server(root, home, ["--YdocOutputsApp.record_timing=True",
                              "--YdocOutputsApp.autosave_delay=0.2"])  # fmt: skip
    yield srv
    srv.stop()


@pytest.fixture
async def tsession(timing_server: Server) -> AsyncIterator[Session]:
    s = Session(timing_server, timing_server.http())
    yield s
    await s.close()


def parse(date: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(date.replace("Z", "+00:00"))


async def test_a_run_records_the_timing_jupyterlab_records(
    timing_server: Server, tsession: Session
):
    path, [cell] = write_notebook(timing_server.root, "timed.ipynb",
                                  ["import time\ntime.sleep(0.3)"])  # fmt: skip
    kernel, room, client = await tsession.prepare(path)
    await tsession.execute(kernel, room, cell)
    await run_to_idle(client, cell)
    await client.wait_for(
        lambda: len(client.cell(cell)["metadata"].get("execution", {})) == len(KEYS)
    )
    timing = client.cell(cell)["metadata"]["execution"]
    assert sorted(timing) == sorted(KEYS)
    # In the order ipykernel makes them: busy, the reply's start, the input published,
    # the reply after the cell's own run, idle.
    order = [KEYS[0], KEYS[2], KEYS[1], KEYS[3], KEYS[4]]
    dates = [parse(timing[key]) for key in order]
    assert dates == sorted(dates), timing
    assert (dates[3] - dates[1]).total_seconds() >= 0.3
    # Saved and exported as nbformat's schema describes it.
    for _ in range(50):
        saved = await read_saved(timing_server.root / path)
        if saved.cells[0].metadata.get("execution") == timing:
            break
        await asyncio.sleep(0.1)
    assert saved.cells[0].metadata["execution"] == timing
    nbformat.validate(nbformat.reads(await tsession.export(path), as_version=4))
    await client.disconnect()


async def test_without_recording_a_run_deletes_the_old_timing(server: Server, session: Session):
    path, [cell] = write_notebook(server.root, "untimed.ipynb", ["1 + 1"])
    notebook = json.loads((server.root / path).read_text())
    notebook["cells"][0]["metadata"]["execution"] = {"iopub.status.busy": "2020-01-01T00:00:00Z"}
    (server.root / path).write_text(json.dumps(notebook))
    kernel, room, client = await session.prepare(path)
    assert "execution" in client.cell(cell)["metadata"]
    await session.execute(kernel, room, cell)
    await run_to_idle(client, cell)
    assert "execution" not in client.cell(cell)["metadata"]
    await client.disconnect()
