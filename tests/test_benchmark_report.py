"""The benchmarks' verdict on "ours is slower" (benchmarks/report.py): a sign test over
rounds that ran both sides, so that a difference of medians within the rounds' own
spread is not taken for a slower server. And the latency benchmark's own pieces
(benchmarks/latency.py): Run All's chain of cells, and the page's network."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import time

import httpx
import pytest

from benchmarks.latency import PageTransport, nearest_rank, run_all_sources
from benchmarks.report import SIGNIFICANCE, slower_rounds


def test_losing_every_round_is_slower() -> None:
    slower, rounds, p = slower_rounds([1.2] * 9, [1.1] * 9)
    assert (slower, rounds) == (9, 9)
    assert p == pytest.approx(1 / 512)
    assert p < SIGNIFICANCE


def test_losing_seven_rounds_of_nine_is_within_chance() -> None:
    ours = [1.2, 1.2, 1.2, 1.2, 1.2, 1.2, 1.2, 1.0, 1.0]
    slower, rounds, p = slower_rounds(ours, [1.1] * 9)
    assert (slower, rounds) == (7, 9)
    assert p == pytest.approx((36 + 9 + 1) / 512)  # 7, 8 or 9 of 9 by chance
    assert p > SIGNIFICANCE


def test_ties_do_not_count_and_unpaired_runs_are_left_out() -> None:
    slower, rounds, p = slower_rounds([1.0, 2.0, 3.0, 9.0], [1.0, 1.0, 4.0])
    assert (slower, rounds) == (1, 2)
    assert p == pytest.approx(3 / 4)


def test_winning_every_round() -> None:
    assert slower_rounds([1.0] * 5, [2.0] * 5) == (0, 5, 1.0)


# -- benchmarks/latency.py: Run All's cells and the page's network ---------------------


def _run(sources: list[str], namespace: dict[str, object]) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        for source in sources:
            exec(source, namespace)
    return out.getvalue()


def test_run_all_cells_print_their_order() -> None:
    sources = run_all_sources(5)
    assert _run(sources, {}) == "[0, 1, 2, 3, 4]\n"


def test_run_all_cell_out_of_order_raises_even_after_a_previous_run() -> None:
    sources = run_all_sources(5)
    namespace: dict[str, object] = {}
    _run(sources, namespace)
    _run(sources[:1], namespace)  # the first cell starts the chain afresh
    with pytest.raises(KeyError):
        _run([sources[2]], namespace)


def test_nearest_rank() -> None:
    values = [float(v) for v in range(1, 31)]
    assert nearest_rank(values, 0.99) == 30.0
    assert nearest_rank(values, 0.5) == 15.0
    assert nearest_rank([7.0], 0.99) == 7.0


async def test_page_network_stamps_execute_posts_and_keeps_their_order() -> None:
    arrived: list[tuple[str, str]] = []

    async def server(request: httpx.Request) -> httpx.Response:
        cell = json.loads(request.content)["cell_id"] if request.method == "POST" else "-"
        arrived.append((cell, request.url.query.decode()))
        await asyncio.sleep(0.01)
        return httpx.Response(202)

    network = PageTransport(httpx.MockTransport(server), connections=2)
    async with httpx.AsyncClient(base_url="http://page", transport=network) as http:
        await asyncio.gather(
            *(http.post("/api/kernels/k/execute", json={"cell_id": f"c{i}"}) for i in range(8)),
            http.get("/api/kernels"),
        )
    # Made in this order, sent in this order, two at a time.
    assert [cell for cell, _ in arrived] == [f"c{i}" for i in range(8)] + ["-"]
    stamps = [query for cell, query in arrived if cell != "-"]
    assert all(stamp.isdigit() and abs(int(stamp) / 1000 - time.time()) < 60 for stamp in stamps)
    assert arrived[-1] == ("-", "")  # only execute POSTs are stamped


async def test_page_network_holds_each_post_back_its_cells_delay() -> None:
    cells: list[str] = []

    async def server(request: httpx.Request) -> httpx.Response:
        cells.append(json.loads(request.content)["cells"][0]["cell_id"])  # documents' shape
        return httpx.Response(200)

    network = PageTransport(httpx.MockTransport(server))
    network.delays = {"a": 0.15, "b": 0.0, "c": 0.05}
    async with httpx.AsyncClient(base_url="http://page", transport=network) as http:
        await asyncio.gather(
            *(http.post("/api/kernels/k/execute", json={"cells": [{"cell_id": c}]}) for c in "abc")
        )
    assert cells == ["b", "c", "a"]
    assert network.delays == {}


async def test_keep_alive_transport_reuses_connections_and_reads_both_body_kinds() -> None:
    """The page's light HTTP/1.1 client (benchmarks/pagehttp.py) against a real socket:
    requests go out whole, bodies of known length and chunked ones come back whole, and
    a second request goes over the connection the first one used."""
    from benchmarks.pagehttp import KeepAliveTransport

    seen: list[tuple[int, bytes]] = []
    handlers: list[asyncio.Task[None]] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handlers.append(asyncio.current_task())  # type: ignore[arg-type]
        connection = id(writer)
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
                length = next(
                    int(line.split(":", 1)[1])
                    for line in head.split("\r\n")
                    if line.lower().startswith("content-length:")
                )
                body = await reader.readexactly(length)
                seen.append((connection, head.split("\r\n", 1)[0].encode() + b" " + body))
                if head.startswith("GET /chunked"):
                    writer.write(
                        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                        b"5\r\nhello\r\n6; x=1\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n"
                    )
                else:
                    answer = b'{"status": "queued"}'
                    writer.write(
                        b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\n"
                        + f"Content-Length: {len(answer)}\r\n\r\n".encode()
                        + answer
                    )
                await writer.drain()
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    transport = KeepAliveTransport()
    try:
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=base, transport=transport) as http:
            posted = await http.post("/api/kernels/k/execute?123", json={"cell_id": "c1"})
            chunked = await http.get("/chunked")
    finally:
        # The client closed its connection: each handler reads the end and closes its own.
        await asyncio.wait_for(asyncio.gather(*handlers), 5)
        server.close()
        await server.wait_closed()
    assert posted.status_code == 202
    assert posted.json() == {"status": "queued"}
    assert chunked.status_code == 200
    assert chunked.content == b"hello world"
    assert [line for _, line in seen] == [
        b'POST /api/kernels/k/execute?123 HTTP/1.1 {"cell_id":"c1"}',
        b"GET /chunked HTTP/1.1 ",
    ]
    assert seen[0][0] == seen[1][0]  # one connection, kept alive
