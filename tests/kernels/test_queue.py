"""The execution queue's order, from evidence only (pure logic, no server): the cells a
document shows as scheduled, and when the page sent each request."""

from __future__ import annotations

import asyncio
import random

import pytest

from ydoc_outputs.kernels.queue import DocumentView, ExecutionQueue, ExecutionRequest, sent_time

GRACE = 0.3


class Document:
    """A fake document of ``n`` code cells, ``cell-0`` to ``cell-{n-1}``, and the
    server's record of which of them it has taken to run."""

    def __init__(self, n: int) -> None:
        self.positions = {f"cell-{i}": i for i in range(n)}
        self.marked: set[str] = set()
        self.active: set[str] = set()
        self.stale: list[set[str]] = []

    def queue(self, grace: float = GRACE) -> ExecutionQueue:
        return ExecutionQueue(
            lambda _d, _active: DocumentView(dict(self.positions), set(self.marked)),
            lambda _d: set(self.active),
            grace=grace,
            on_stale=lambda _d, cells: self.stale.append(set(cells)),
        )

    def post(self, queue: ExecutionQueue, i: int, sent: int | None = None) -> bool:
        """A request arrives: the server takes it (it is active until it ends)."""
        cell = f"cell-{i}"
        self.active.add(cell)
        return queue.put(ExecutionRequest("d", cell, "pass", i, sent, "alice" if sent else None))

    def ran(self, request: ExecutionRequest) -> int:
        self.active.discard(request.cell_id)
        self.marked.discard(request.cell_id)
        return self.positions[request.cell_id]


async def test_a_lone_request_runs_at_once_wherever_its_cell_is() -> None:
    doc = Document(60)
    queue = doc.queue(grace=60)
    doc.marked.add("cell-49")  # what the page writes right before it posts
    doc.post(queue, 49)
    request = await asyncio.wait_for(queue.get(), 0.1)  # no wait at all
    assert doc.ran(request) == 49


async def test_run_all_with_shuffled_late_posts_runs_in_document_order() -> None:
    """Run All marks every cell, then the posts arrive shuffled and late: each cell
    waits for the expected cells before it, and only for those."""
    doc = Document(30)
    queue = doc.queue()
    doc.marked.update(doc.positions)
    order = list(range(30))
    random.Random(7).shuffle(order)

    async def arrive() -> None:
        for i in order:
            await asyncio.sleep(random.random() * 0.005)
            doc.post(queue, i)

    poster = asyncio.ensure_future(arrive())
    ran = [doc.ran(await asyncio.wait_for(queue.get(), 5)) for _ in range(30)]
    await poster
    assert ran == list(range(30))
    assert doc.stale == []


async def test_cells_before_the_expected_ones_do_not_wait() -> None:
    doc = Document(10)
    queue = doc.queue(grace=60)
    doc.marked.update({"cell-3", "cell-7"})
    doc.post(queue, 3)
    assert doc.ran(await asyncio.wait_for(queue.get(), 0.1)) == 3
    # cell-7 is still expected; a request for cell 5, before it, does not wait for it.
    doc.marked.add("cell-5")
    doc.post(queue, 5)
    assert doc.ran(await asyncio.wait_for(queue.get(), 0.1)) == 5


async def test_a_mark_whose_request_never_comes_is_waited_for_only_for_the_grace() -> None:
    doc = Document(5)
    queue = doc.queue()
    doc.marked.update({"cell-1", "cell-2"})  # the page went away after posting cell 2
    loop = asyncio.get_running_loop()
    start = loop.time()
    doc.post(queue, 2)
    request = await asyncio.wait_for(queue.get(), 5)
    assert doc.ran(request) == 2
    assert loop.time() - start >= GRACE * 0.9
    assert doc.stale == [{"cell-1"}]


async def test_send_times_order_a_users_queued_cells_and_ties_go_by_the_document() -> None:
    """Cell 9 then cell 3 queued by hand while another runs: 9 first, as sent. Run All's
    posts share a millisecond or follow each other: document order."""
    doc = Document(12)
    queue = doc.queue()
    doc.post(queue, 3, sent=1_000_500)
    doc.post(queue, 9, sent=1_000_000)
    for i in (11, 10):
        doc.post(queue, i, sent=1_002_000)
    ran = [doc.ran(await asyncio.wait_for(queue.get(), 0.1)) for _ in range(4)]
    assert ran == [9, 3, 10, 11]


async def test_without_send_times_queued_requests_run_in_document_order() -> None:
    doc = Document(4)
    queue = doc.queue()
    for i in (3, 1, 2):
        doc.post(queue, i)
    assert [doc.ran(await queue.get()) for _ in range(3)] == [1, 2, 3]


async def test_after_an_error_the_rest_of_the_run_is_refused_while_it_arrives() -> None:
    doc = Document(6)
    queue = doc.queue()
    doc.marked.update(doc.positions)
    doc.post(queue, 0)
    doc.ran(await queue.get())  # cell 0 fails
    assert queue.abort_expected("d") == {f"cell-{i}" for i in range(1, 6)}
    assert not doc.post(queue, 3)
    assert len(queue) == 0
    # A request that comes once that run's requests stopped arriving runs.
    doc.active.discard("cell-3")
    await asyncio.sleep(GRACE * 1.2)
    assert doc.post(queue, 4)
    assert len(queue) == 1


@pytest.mark.parametrize(
    ("query", "sent"),
    [("1733480000123", 1733480000123), ("a=1&1733480000123", 1733480000123), ("", None),
     ("x", None), ("12345678901234567890", None), ("0", None), ("١٢٣", None)],
)  # fmt: skip
def test_the_send_time_is_read_from_the_query_as_jupyterlab_writes_it(
    query: str, sent: int | None
) -> None:
    assert sent_time(query) == sent
