"""Trust: output the server produced by running the notebook's own code is trusted, as
when JupyterLab runs a cell; outputs from elsewhere keep their own trust."""

from __future__ import annotations

import asyncio
import json

from .conftest import Server, Session, write_notebook
from .test_execution import run_to_idle
from .yclient import YClient

HTML = "from IPython.display import HTML\nHTML('<style>b {color: red}</style><b>red</b>')"


def with_foreign_outputs(server: Server, path: str) -> None:
    """Outputs written into the file by another program: an unsigned notebook."""
    notebook = json.loads((server.root / path).read_text())
    for cell in notebook["cells"]:
        cell["outputs"] = [{"output_type": "display_data", "metadata": {},
                            "data": {"text/html": "<script>alert(1)</script>"}}]  # fmt: skip
    (server.root / path).write_text(json.dumps(notebook))


def trusted(client: YClient, cell: str) -> bool:
    return client.cell(cell)["metadata"].get("trusted") is True


async def contents_trust(session: Session, path: str) -> list[bool]:
    """Trust as jupyter_server reads it from the file (its signature)."""
    r = await session.http.get(f"/api/contents/{path}")
    return [c["metadata"].get("trusted") is True for c in r.json()["content"]["cells"]]


async def test_running_a_cell_trusts_it_and_leaves_the_others_as_they_came(
    server: Server, session: Session
):
    path, cells = write_notebook(server.root, "trust.ipynb", [HTML, "1"])
    with_foreign_outputs(server, path)
    kernel, room, client = await session.prepare(path)
    assert not trusted(client, cells[0]) and not trusted(client, cells[1])

    await session.execute(kernel, room, cells[0])
    await run_to_idle(client, cells[0])
    assert trusted(client, cells[0])
    assert not trusted(client, cells[1])  # its foreign output stays untrusted
    # Not every code cell is trusted: the file is not signed, as stock saves it.
    await asyncio.sleep(1)
    assert await contents_trust(session, path) == [False, False]

    await session.execute(kernel, room, cells[1])
    await run_to_idle(client, cells[1])
    for _ in range(50):  # every cell trusted: signed on save
        if await contents_trust(session, path) == [True, True]:
            break
        await asyncio.sleep(0.1)
    assert await contents_trust(session, path) == [True, True]
    await client.disconnect()


async def test_a_fresh_client_gets_the_trust_with_the_cell(server: Server, session: Session):
    """A page reads a cell's trust once, when it builds the cell from its first sync: the
    trust must be in that step 2, not in changes sent after a kept answer."""
    path, [cell] = write_notebook(server.root, "trust-fresh.ipynb", [HTML])
    with_foreign_outputs(server, path)
    kernel, room, client = await session.prepare(path)
    first = await session.client(path)  # the room now keeps its answer for fresh clients
    await first.disconnect()
    await session.execute(kernel, room, cell)
    await run_to_idle(client, cell)

    info = await session.open(path)
    fresh = YClient(session.server.ws_url(info["room"], info["sessionId"]))
    at_step2: list[bool] = []

    def first_step2() -> None:
        if not at_step2 and fresh.notebook.ycells:
            at_step2.append(trusted(fresh, cell))

    fresh.listeners.append(first_step2)
    await fresh.connect()
    assert at_step2 == [True]
    for c in (client, fresh):
        await c.disconnect()
