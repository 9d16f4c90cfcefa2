"""Running cells as the stock JupyterLab page does under server-side execution.

For each code cell, in document order and in one synchronous loop (``Promise.all`` over
``runCell``): ydoc-outputs' page extension marks the cell running in the shared
document (``NotebookActions.executionScheduled``), then jupyter-docprovider posts
``api/kernels/{id}/execute`` with JupyterLab's ``?{Date.now()}`` in the query. The
marks go out over the room websocket in order; the posts may arrive in any order.
"""

from __future__ import annotations

import asyncio
import random
import time

import httpx
from pycrdt import Map

from .yclient import YClient

__all__ = ["mark", "post", "run_as_the_page_does"]


def mark(client: YClient, cell_id: str) -> None:
    """What the page writes before it posts a cell (stock ``CodeCell.execute`` too)."""
    for ycell in client.notebook.ycells:
        if isinstance(ycell, Map) and ycell.get("id") == cell_id:
            ycell["execution_state"] = "running"
            return
    raise KeyError(cell_id)


async def post(
    http: httpx.AsyncClient, kernel: str, room: str, cell_id: str, sent: int, delay: float = 0
) -> httpx.Response:
    if delay:
        await asyncio.sleep(delay)
    return await http.post(
        f"/api/kernels/{kernel}/execute?{sent}", json={"cell_id": cell_id, "document_id": room}
    )


async def run_as_the_page_does(
    http: httpx.AsyncClient,
    client: YClient,
    kernel: str,
    room: str,
    cells: list[str],
    *,
    rng: random.Random | None = None,
    max_delay: float = 0.0,
) -> list[httpx.Response]:
    """Mark and post ``cells`` as the page's Run All does. With ``rng``, the posts go
    in a shuffled order, each after a random delay up to ``max_delay`` seconds."""
    sends = []
    for cell_id in cells:
        mark(client, cell_id)
        sends.append((cell_id, int(time.time() * 1000)))
    await client.flush()
    if rng is not None:
        rng.shuffle(sends)
    delays = [rng.random() * max_delay if rng is not None else 0.0 for _ in sends]
    return await asyncio.gather(
        *(post(http, kernel, room, c, sent, d) for (c, sent), d in zip(sends, delays, strict=True))
    )
