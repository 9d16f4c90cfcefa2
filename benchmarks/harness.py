"""Shared plumbing of the benchmarks: a real server with the extension, a bare kernel, clocks.

``ExtensionServer`` runs ``jupyter server`` with ydoc_outputs in a subprocess (the test
suite's ``Server``), ``BareKernel`` is the baseline (jupyter_client alone, no server), and
``StreamTailWatch`` tells, cheaply on each Y message, when a client's copy of a cell
holds a given end of stream text.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from jupyter_client.manager import start_new_async_kernel
from pycrdt import Array, Map, Text

from tests.conftest import Server, Session, write_notebook
from tests.yclient import YClient

__all__ = [
    "RUN_TIMEOUT",
    "BareKernel",
    "BareRun",
    "ExtensionServer",
    "Options",
    "RoomClient",
    "ServerProcess",
    "StreamTailWatch",
    "cell_map",
    "process_cpu_seconds",
    "process_total_cpu_seconds",
    "stream_text",
    "wait_cell_idle",
]

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
#: Longest wait for one execution before the benchmark gives up.
RUN_TIMEOUT = 300.0


@dataclass(frozen=True)
class Options:
    """What every benchmark is asked to do.

    Attributes:
        quick: A smoke run: smaller workloads, same code paths.
        repeat: How many times each measurement is taken; the median is reported.
    """

    quick: bool = False
    repeat: int = 3


def process_cpu_seconds(pid: int) -> float:
    """CPU time that process ``pid`` (all its threads) has used so far, in seconds.

    Sums the nanosecond run times of its threads (``/proc/<pid>/task/*/schedstat``);
    without schedstats, falls back to utime + stime from ``/proc/<pid>/stat``, which
    counts in clock ticks (10 ms).
    """
    try:
        return (
            sum(
                int(path.read_text().split()[0])
                for path in Path(f"/proc/{pid}/task").glob("*/schedstat")
            )
            / 1e9
        )
    except (OSError, ValueError, IndexError):
        return process_total_cpu_seconds(pid)


def process_total_cpu_seconds(pid: int) -> float:
    """CPU time that process ``pid`` has used so far, in seconds, threads that have ended
    included: utime + stime from ``/proc/<pid>/stat``, in clock ticks (10 ms).

    Coarser than :func:`process_cpu_seconds`, but a thread that ends during a window
    (a pool's idle worker) does not take the time it ran out of the count, which can
    make the sum of the live threads' times go down.
    """
    stat = Path(f"/proc/{pid}/stat").read_text()
    # Fields after the command name, which is in parentheses and may hold spaces.
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


# -- the server under test -------------------------------------------------------------


@dataclass
class RoomClient:
    """A y-websocket client connected to a notebook's room.

    Attributes:
        client: The client, holding its own copy of the document.
        room: The room name, ``json:notebook:{file_id}``: the ``document_id`` to execute in.
    """

    client: YClient
    room: str


class ServerProcess:
    """A ``jupyter server`` in a subprocess, in throwaway directories (the test suite's
    ``Server``), with a REST session. Use as ``async with``; kernels started through it
    are shut down and the server stopped on exit. Subclasses start it in
    ``__aenter__`` with :meth:`_start`."""

    def __init__(self, args: list[str] | None = None, prefix: str = "ydoc-outputs-bench-") -> None:
        """Prepare a server; ``args`` are extra command-line options (traitlets config)."""
        self._args = args or []
        self._tmp = tempfile.TemporaryDirectory(prefix=prefix)
        self.root = Path(self._tmp.name) / "notebooks"
        self._home = Path(self._tmp.name) / "home"
        self._server: Server | None = None
        self._session: Session | None = None

    def _start(self, args: list[str], **options: Any) -> None:
        """Start the process (``options``: ``Server``'s ``command`` and ``env``)."""
        self.root.mkdir(exist_ok=True)
        self._home.mkdir(exist_ok=True)
        # Server() waits for the process to answer; nothing else runs on the loop yet.
        self._server = Server(self.root, self._home, args, **options)
        self._session = Session(self._server, self._server.http())

    async def _before_close(self) -> None:
        """What a subclass must end before the kernels and the server are stopped."""

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self._before_close()
            if self._session is not None:
                await self._session.close()
        except BaseException:
            if self._server is not None:  # the server's side of the story, before it goes
                print("server log (last 40 lines):", *self.log().splitlines()[-40:],
                      sep="\n  ", file=sys.stderr)  # fmt: skip
            raise
        finally:
            if self._server is not None:
                self._server.stop()
            self._tmp.cleanup()

    @property
    def session(self) -> Session:
        assert self._session is not None, "use the server in `async with`"
        return self._session

    @property
    def home(self) -> Path:
        """The server's throwaway home; its Jupyter data dir is ``home / "data"``."""
        return self._home

    @property
    def pid(self) -> int:
        """The server's process id (its CPU time is what the benchmarks charge it)."""
        assert self._server is not None, "use the server in `async with`"
        return self._server.proc.pid

    def log(self) -> str:
        """What the server process has written so far."""
        assert self._server is not None, "use the server in `async with`"
        return self._server.log()

    def write_notebook(self, name: str, sources: list[str]) -> list[str]:
        """Write a notebook of code cells into the server's root; return the cell ids."""
        _, ids = write_notebook(self.root, name, sources)
        return ids

    async def start_kernel(self) -> str:
        """Start a ``python3`` kernel through the server's REST API; return its id."""
        return await self.session.start_kernel()

    async def replace_kernel(self, kernel_id: str) -> str:
        """Shut a kernel down and start a new one (a new process); return its id."""
        response = await self.session.http.delete(f"/api/kernels/{kernel_id}")
        if response.status_code != 204:
            raise RuntimeError(f"shutdown failed: {response.status_code} {response.text}")
        return await self.start_kernel()


class ExtensionServer(ServerProcess):
    """A ``jupyter server`` with ydoc_outputs: ``async with ExtensionServer() as server:``."""

    async def __aenter__(self) -> ExtensionServer:
        self._start(self._args)
        return self

    async def _room(self, path: str) -> tuple[str, str]:
        """Open a collaboration session on ``path``: its room's name and websocket URL."""
        session = await self.session.open(path)
        return session["room"], self.session.server.ws_url(session["room"], session["sessionId"])

    async def open_room(self, path: str) -> tuple[str, str]:
        """Open a collaboration session on ``path`` (one per page): the room's name, the
        ``document_id`` to execute in, and the session's websocket URL, for a client of
        another process."""
        return await self._room(path)

    async def room_url(self, path: str) -> str:
        """Open a collaboration session on ``path``; the websocket URL of its room."""
        return (await self._room(path))[1]

    async def connect(self, path: str) -> RoomClient:
        """Open a collaboration session on ``path`` and connect one synced client."""
        room, url = await self._room(path)
        client = YClient(url)
        await client.connect()
        return RoomClient(client, room)

    async def execute(self, kernel_id: str, room: str, cell_id: str) -> None:
        """POST ``api/kernels/{kernel_id}/execute`` for one cell; it answers at once."""
        response = await self.session.execute(kernel_id, room, cell_id)
        if response.status_code != 202:
            raise RuntimeError(f"execute failed: {response.status_code} {response.text}")


# -- reading a client's document cheaply -----------------------------------------------


def cell_map(client: YClient, cell_id: str) -> Map[Any]:
    """The Y map of cell ``cell_id`` in the client's document (stable while it exists)."""
    for ycell in client.notebook.ycells:
        if isinstance(ycell, Map) and ycell.get("id") == cell_id:
            return ycell
    raise KeyError(cell_id)


class StreamTailWatch:
    """Notes when a cell's last output's text ends with ``suffix``, after a fresh start.

    Add it to ``YClient.listeners`` just before the execution starts: it is called on
    every message the client applies. A cell that is re-run still shows its previous
    output until the server clears it, so the watch only fires once it has seen the
    cell's outputs empty. It reads only the last output's ``Text`` (one stream segment),
    never the whole document, so the watch does not become the bottleneck.

    Attributes:
        done: Set when the suffix was seen.
        seen_at: ``time.perf_counter()`` when the suffix was seen.
        messages: How many messages the client applied while watching.
    """

    def __init__(self, cell: Map[Any], suffix: str) -> None:
        self._cell = cell
        self._suffix = suffix
        self._cleared = False
        self.done = asyncio.Event()
        self.seen_at = 0.0
        self.messages = 0

    def __call__(self) -> None:
        if self.done.is_set():
            return
        self.messages += 1
        outputs = self._cell.get("outputs")
        if not isinstance(outputs, Array) or len(outputs) == 0:
            self._cleared = True
            return
        if not self._cleared:
            return
        last = outputs[len(outputs) - 1]
        text = last.get("text") if isinstance(last, Map | dict) else None
        if isinstance(text, list):  # an alternative stores outputs as plain JSON
            text = text[-1] if text else ""
        if isinstance(text, Text | str) and str(text).endswith(self._suffix):
            self.seen_at = time.perf_counter()
            self.done.set()


def stream_text(cell: Map[Any], name: str = "stdout") -> str:
    """All the text of the cell's ``name`` stream outputs, joined (reads every segment).

    Outputs may be Y maps holding a ``Text`` (ours, nbmodel) or plain JSON values
    (jupyter-server-documents).
    """
    outputs = cell.get("outputs")
    if not isinstance(outputs, Array):
        return ""
    texts = []
    for output in outputs:
        is_stream = isinstance(output, Map | dict) and output.get("output_type") == "stream"
        if is_stream and output.get("name") == name:
            text = output.get("text", "")
            texts.append("".join(text) if isinstance(text, list) else str(text))
    return "".join(texts)


async def wait_cell_idle(client: YClient, cell: Map[Any], timeout: float = RUN_TIMEOUT) -> None:
    """Wait until the client's copy of ``cell`` ran (has a count) and is idle again."""
    await client.wait_for(
        lambda: cell.get("execution_state") == "idle" and cell.get("execution_count") is not None,
        timeout,
    )


# -- the baseline: a kernel and jupyter_client, nothing else ---------------------------


@dataclass(frozen=True)
class BareRun:
    """One execution on a bare kernel.

    Attributes:
        seconds: From sending the execute request to receiving the awaited stream text.
        messages: iopub messages of the execution, from busy to idle.
        stdout: All the stdout stream text received.
    """

    seconds: float
    messages: int
    stdout: str


class BareKernel:
    """A ``python3`` kernel driven by an ``AsyncKernelClient`` in this process.

    Use as ``async with BareKernel() as kernel:``; the kernel is shut down on exit.
    """

    def __init__(self) -> None:
        self._manager: Any = None
        self._client: Any = None

    async def __aenter__(self) -> BareKernel:
        # The kernel's own log (a warning about TCP without encryption) is only noise here.
        self._manager, self._client = await start_new_async_kernel(
            kernel_name="python3", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._client.stop_channels()
        await self._manager.shutdown_kernel(now=True)

    async def run(
        self, code: str, suffix: str = "", on_stream: Callable[[str], None] | None = None
    ) -> BareRun:
        """Execute ``code`` and consume its iopub messages until the kernel is idle.

        Args:
            code: The code to run.
            suffix: The end of the last stream message awaited; the time is taken when it
                arrives (or at idle if it is empty).
            on_stream: Called with the text of each stream message as it arrives.

        Returns:
            The time to the awaited stream text and the number of iopub messages.
        """
        client = self._client
        start = time.perf_counter()
        msg_id = client.execute(code, allow_stdin=False, stop_on_error=True)
        seen_at: float | None = None
        messages = 0
        stdout: list[str] = []
        while True:
            msg = await client.get_iopub_msg(timeout=RUN_TIMEOUT)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            messages += 1
            msg_type, content = msg["msg_type"], msg["content"]
            if msg_type == "stream":
                if on_stream is not None:
                    on_stream(content["text"])
                if seen_at is None and suffix and content["text"].endswith(suffix):
                    seen_at = time.perf_counter()
                if content["name"] == "stdout":
                    stdout.append(content["text"])
            elif msg_type == "status" and content["execution_state"] == "idle":
                break
        end = time.perf_counter()
        reply = await client.get_shell_msg(timeout=RUN_TIMEOUT)
        while reply["parent_header"].get("msg_id") != msg_id:
            reply = await client.get_shell_msg(timeout=RUN_TIMEOUT)
        if reply["content"]["status"] != "ok":
            raise RuntimeError(f"baseline execution failed: {reply['content']}")
        if suffix and seen_at is None:
            raise RuntimeError(f"baseline never printed {suffix!r}")
        return BareRun((seen_at or end) - start, messages, "".join(stdout))
