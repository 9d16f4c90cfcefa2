"""A light HTTP/1.1 client transport for the simulated page's requests.

The page that the latency benchmark simulates is a browser, which in real use runs on
the user's machine, not beside the server. The benchmark runs it on the server's two
cores, so whatever CPU its client spends is taken from the server and the kernel.
httpx's default transport (httpcore over anyio) spent about 2.5 ms of CPU per request
here, most of a Run All's 100 POSTs' cost on the client side (py-spy: 45% of the
benchmark process's samples in the transport, a fifth of those in anyio looking up the
running async library). This transport does what the benchmark needs of HTTP/1.1 and no
more: keep-alive connections to one host, requests with a body of known length,
responses with ``Content-Length`` or chunked bodies, read whole.
"""

from __future__ import annotations

import asyncio
import contextlib

import httpx

__all__ = ["KeepAliveTransport"]

_Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class KeepAliveTransport(httpx.AsyncBaseTransport):
    """HTTP/1.1 over plain asyncio streams, keeping idle connections for reuse.

    It puts no limit on concurrent connections: the page's transport in front of it
    (``PageTransport``) does, in the browser's order.
    """

    def __init__(self) -> None:
        self._idle: dict[tuple[str, int], list[_Connection]] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.scheme != "http":
            raise httpx.UnsupportedProtocol(f"only http:// here, not {request.url.scheme}")
        host, port = request.url.host, request.url.port or 80
        body = await request.aread()
        head = [f"{request.method} {request.url.raw_path.decode('ascii')} HTTP/1.1"]
        head.append(f"Host: {host}:{port}")
        for name, value in request.headers.multi_items():
            if name.lower() not in ("host", "content-length", "transfer-encoding", "connection"):
                head.append(f"{name}: {value}")
        head.append(f"Content-Length: {len(body)}")
        data = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body
        pool = self._idle.setdefault((host, port), [])
        reused = bool(pool)
        reader, writer = pool.pop() if pool else await asyncio.open_connection(host, port)
        try:
            writer.write(data)
            status, headers, content = await _read_response(reader, request.method)
        except (ConnectionError, asyncio.IncompleteReadError) as e:
            writer.close()
            if reused:  # the server closed an idle connection: once more on a new one
                return await self.handle_async_request(request)
            raise httpx.ReadError(str(e), request=request) from e
        except BaseException:
            writer.close()
            raise
        if any(k.lower() == "connection" and v.lower() == "close" for k, v in headers):
            writer.close()
        else:
            pool.append((reader, writer))
        return httpx.Response(status, headers=headers, content=content, request=request)

    async def aclose(self) -> None:
        writers = [writer for pool in self._idle.values() for _reader, writer in pool]
        self._idle.clear()
        for writer in writers:
            writer.close()
        for writer in writers:
            with contextlib.suppress(OSError):
                await writer.wait_closed()


async def _read_response(
    reader: asyncio.StreamReader, method: str
) -> tuple[int, list[tuple[str, str]], bytes]:
    """Read one response: its status, headers and whole body."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers.append((name.strip(), value.strip()))
    fields = {name.lower(): value for name, value in headers}
    if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        return status, headers, b""
    if fields.get("transfer-encoding", "").lower() == "chunked":
        chunks = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                while await reader.readuntil(b"\r\n") != b"\r\n":
                    pass  # trailer fields, up to the empty line that ends the body
                break
            chunks.append((await reader.readexactly(size + 2))[:-2])
        return status, headers, b"".join(chunks)
    length = fields.get("content-length")
    if length is None:
        raise ConnectionError("a response without a length: the connection cannot be kept")
    return status, headers, await reader.readexactly(int(length))
