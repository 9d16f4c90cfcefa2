"""AWARENESS: what a room of collaborators moving their cursors costs the server.

60 y-websocket clients of one notebook each send an awareness update (JupyterLab's
state, with a moving cursor) 40 times a second for 10 s, under the per-connection rate
limit of 50. Meanwhile a separate process times ``GET api/status`` every 50 ms: it waits
for the event loop that serves the rooms, as every request and every kernel message
does. Each side is a server of its own, in turns, round after round:

- ``idle``: the same 60 clients connected, sending nothing (the floor);
- ``echo at once``: ``awareness_interval=0``, each update sent to every client as it
  comes, which is the cost of the room before updates were merged (it forwarded each
  message to every client);
- ours: the default interval, and half of it.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import websockets
from pycrdt import Encoder, create_awareness_message

from tests.conftest import TOKEN

from .harness import ExtensionServer, Options, process_cpu_seconds
from .report import Table, median

__all__ = ["TARGET_P50_MS", "run"]

#: Updates a second each client sends (the rate limit is 50).
RATE = 40
#: ``api/status`` median latency target under that load, in milliseconds.
TARGET_P50_MS = 20.0
#: Seconds between two timed ``api/status`` requests.
PROBE_EVERY = 0.05

#: The sides: a name, the server's ``awareness_interval`` (None: its default), and
#: whether the clients send anything.
SIDES: tuple[tuple[str, float | None, bool], ...] = (
    ("idle (the clients connected, none sending)", None, False),
    ("echo at once (awareness_interval=0)", 0.0, True),
    ("ours, awareness_interval=0.05", 0.05, True),
    ("ours, awareness_interval=0.1 (default)", None, True),
)

#: Times ``api/status`` from a process of its own, so that the clients' work in this one
#: does not count as the server's. Prints the latencies, in seconds, as JSON.
_PROBE = """
import http.client, json, sys, time
port, token, seconds, every = int(sys.argv[1]), sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
headers = {"Authorization": "token " + token}
latencies = []
end = time.monotonic() + seconds
while time.monotonic() < end:
    tick = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", "/api/status", headers=headers)
    conn.getresponse().read()
    conn.close()
    latencies.append(time.monotonic() - tick)
    time.sleep(max(0.0, every - (time.monotonic() - tick)))
print(json.dumps(latencies))
"""


def _frame(client_id: int, clock: int, name: str, head: int) -> bytes:
    state = {
        "user": {
            "username": name,
            "name": f"Anonymous {name}",
            "display_name": f"Anonymous {name}",
            "initials": name[:2].upper(),
            "avatar_url": None,
            "color": "var(--jp-collaborator-color3)",
        },
        "current": "notebook:awareness.ipynb",
        "cursors": [{"anchor": head, "head": head, "primary": True, "empty": True}],
    }
    encoder = Encoder()
    encoder.write_var_uint(1)
    encoder.write_var_uint(client_id)
    encoder.write_var_uint(clock)
    encoder.write_var_string(json.dumps(state, separators=(",", ":")))
    return create_awareness_message(encoder.to_bytes())


@dataclass
class Result:
    """One run of one side."""

    status_ms: list[float] = field(default_factory=list)
    server_cpu: float = 0.0  # share of a core over the run
    clients_cpu: float = 0.0
    sent_per_s: float = 0.0  # updates sent per client and second
    received_per_s: float = 0.0  # awareness messages received per client and second
    received_kb_per_s: float = 0.0  # their bytes, per client and second
    closed: int = 0  # clients the server closed during the run

    def percentile(self, q: float) -> float:
        ordered = sorted(self.status_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


class Reader:
    """Reads one connection to the end, counting the awareness messages it gets."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.messages = 0
        self.bytes = 0
        self.closed = False
        self.task = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        try:
            async for message in self.ws:
                if isinstance(message, bytes) and message[:1] == b"\x01":
                    self.messages += 1
                    self.bytes += len(message)
        except websockets.ConnectionClosed:
            pass
        self.closed = True


async def _send(connections: list[Any], seconds: float) -> int:
    """Each connection sends ``RATE`` updates a second; ticks missed are skipped, not
    made up (a burst would only measure the rate limit). Returns the updates sent."""
    sent = 0
    start = time.monotonic()
    tick = 0
    while True:
        now = time.monotonic()
        if now - start >= seconds:
            return sent
        for i, ws in enumerate(connections):
            try:
                await ws.send(_frame(1000 + i, tick + 1, f"u{i}", tick))
                sent += 1
            except websockets.ConnectionClosed:
                pass
        tick = int((time.monotonic() - start) * RATE) + 1
        await asyncio.sleep(max(0.0, start + tick / RATE - time.monotonic()))


async def _one(interval: float | None, sending: bool, clients: int, seconds: float) -> Result:
    args = [] if interval is None else [f"--YdocOutputsApp.awareness_interval={interval}"]
    async with ExtensionServer(args) as server:
        server.write_notebook("awareness.ipynb", ["1"])
        url = await server.room_url("awareness.ipynb")
        connections = [await websockets.connect(url, max_size=None) for _ in range(clients)]
        readers = [Reader(ws) for ws in connections]
        await asyncio.sleep(1.0)  # the room's first syncs, not charged to the run
        port = server.session.server.port
        probe = await asyncio.create_subprocess_exec(
            sys.executable, "-c", _PROBE, str(port), TOKEN, str(seconds), str(PROBE_EVERY),
            stdout=subprocess.PIPE,
        )  # fmt: skip
        received = [(r.messages, r.bytes) for r in readers]
        cpu, own_cpu, start = process_cpu_seconds(server.pid), time.process_time(), time.monotonic()
        sent = await _send(connections, seconds) if sending else 0
        if not sending:
            await asyncio.sleep(seconds)
        wall = time.monotonic() - start
        result = Result(
            server_cpu=(process_cpu_seconds(server.pid) - cpu) / wall,
            clients_cpu=(time.process_time() - own_cpu) / wall,
            sent_per_s=sent / clients / wall,
        )
        got = [(r.messages - m, r.bytes - b) for r, (m, b) in zip(readers, received, strict=True)]
        result.received_per_s = sum(m for m, _ in got) / clients / wall
        result.received_kb_per_s = sum(b for _, b in got) / clients / wall / 1024
        out, _ = await probe.communicate()
        result.status_ms = [x * 1000 for x in json.loads(out)]
        result.closed = sum(r.closed for r in readers)
        for ws in connections:
            await ws.close()
        for reader in readers:
            reader.task.cancel()
    return result


async def run(options: Options) -> Table:
    clients, seconds = (20, 3.0) if options.quick else (60, 10.0)
    runs: dict[str, list[Result]] = {name: [] for name, _, _ in SIDES}
    for turn in range(options.repeat):
        order = SIDES[turn % len(SIDES) :] + SIDES[: turn % len(SIDES)]
        for name, interval, sending in order:
            runs[name].append(await _one(interval, sending, clients, seconds))
    table = Table(
        f"AWARENESS: {clients} clients of one notebook, each sending {RATE} awareness updates "
        f"a second for {seconds:.0f} s; GET api/status timed every {PROBE_EVERY * 1000:.0f} ms "
        f"(medians of {options.repeat} runs per side, sides in turns)",
        ["side", "status p50 ms", "status p99 ms", "server CPU", "clients CPU",
         "sent /s/client", "received /s/client", "KB/s/client", "closed",
         f"p50 < {TARGET_P50_MS:.0f} ms", "p50 of each run"],
    )  # fmt: skip
    for name, _, sending in SIDES:
        results = runs[name]
        p50 = median([r.percentile(0.5) for r in results])
        verdict = "-" if not sending or "echo" in name else ("yes" if p50 < TARGET_P50_MS else "NO")
        table.rows.append(
            [
                name,
                f"{p50:.1f}",
                f"{median([r.percentile(0.99) for r in results]):.1f}",
                f"{median([r.server_cpu for r in results]) * 100:.0f}%",
                f"{median([r.clients_cpu for r in results]) * 100:.0f}%",
                f"{median([r.sent_per_s for r in results]):.1f}",
                f"{median([r.received_per_s for r in results]):,.0f}",
                f"{median([r.received_kb_per_s for r in results]):,.0f}",
                str(max(r.closed for r in results)),
                verdict,
                " ".join(f"{r.percentile(0.5):.1f}" for r in results),
            ]
        )
    table.notes += [
        "status: latency of GET api/status from a process of its own (connection included), "
        f"one request every {PROBE_EVERY * 1000:.0f} ms over the run.",
        "server CPU, clients CPU: CPU time of the server process, and of this process with "
        "every client, over the run's wall time (100% = 1 core). All share the 2 cores.",
        "sent: updates each client managed to send a second (ticks it missed are skipped). "
        "received: awareness messages each client got a second, and their bytes.",
        "closed: clients the server closed during a run (the most of any run).",
    ]
    return table
