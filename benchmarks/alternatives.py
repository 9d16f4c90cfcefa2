"""The alternatives ydoc_outputs is compared with, run from PyPI in venvs of their own.

``AlternativeServer(kind)`` offers the methods of ``harness.ExtensionServer`` (``root``,
``pid``, ``write_notebook``, ``connect``, ``start_kernel``, ``execute``, ``http_get``), so
a benchmark runs the same workload against either. Each alternative is pip-installed
once, at exact versions, into ``.bench-venvs/<kind>`` (``ensure_venv``): ydoc_outputs is
not installed there, so it cannot be loaded by accident, and the alternative's
dependencies cannot disturb the project's venv. Self-check:
``python -m benchmarks.alternatives nbmodel`` (or ``documents``).

``nbmodel``: jupyter-server-nbmodel with jupyter-collaboration, the established way to
run cells on the server with outputs written into jupyter-collaboration's Y rooms.
``execute`` does what nbmodel's own JupyterLab plugin (``NotebookCellServerExecutor``,
which replaces the stock ``jupyter-docprovider`` executor: nbmodel 0.2.9 needs the
source in the request, which the stock executor does not send) does:

- ``POST api/kernels/{kernel_id}/execute`` with ``{"code": <the cell's source>,
  "metadata": {"cell_id", "document_id": <room>, "document_path", "record_timing":
  false}}``; the server answers 202 with a ``Location`` to poll;
- then it polls that location in the background, after 0.1, 0.2, 0.4, 0.8 s and every
  second after that, until the request is done (``poll=False`` turns this off). Every
  poll answers the JSON of all the outputs so far: a cost the real frontend puts on
  that server, which ours never pays. Polling also frees the result, which nbmodel
  otherwise keeps in memory for ever.

Quirks of nbmodel 0.2.9 that matter to a comparison:

- Outputs are written into the document per kernel message, one transaction each.
- Each stream message costs time in the length of the whole stream so far: the text is
  rebuilt as a list of characters (to apply ``\\r`` and ``\\b``), read back from the Y
  text and compared with it character by character in a Python loop. Many small
  messages (``print(i, flush=True)``) make it quadratic: 2,000 such lines took 3 s of
  server CPU here, 8,000 took 25 s, and a second run of the same cell 40 s.
- It reads iopub in the same loop that does that work, so a fast producer overflows
  ZeroMQ's queues (high-water mark 1,000 messages) and the kernel drops the rest: the
  document keeps an exact prefix of the lines (8,476 of 10,000 in one run here), the
  ``idle`` status is lost too, and nbmodel then waits for it for ever (no timeout): the
  cell stays "running" and the kernel's queue is stuck. A benchmark must expect a
  timeout with an incomplete text from it on large ``flush=True`` workloads.
- It keeps a second copy of every message's output (as a separate nbformat output) in
  memory for the request status endpoint.
- The cell gets ``execution_state = "running"`` and ``execution_count = None`` when the
  run starts, and ``execution_count`` with ``execution_state = "idle"`` in one
  transaction when the execute reply arrives, so ``harness.wait_cell_idle`` works.
- jupyter-collaboration also stores every Y update in SQLite (as ours does) and saves
  the notebook 1 s after a change (ours: ``autosave_delay``, 1 s by default).
- Not mirrored: the plugin also clears the cell's outputs from the browser before the
  request (the server clears them again when the run starts).

``documents``: jupyter-server-documents 0.3.3 (jupyter-ai-contrib) can run the workload:
it has its own server-side execution. ``execute`` does what its JupyterLab plugin
(``server-cell-executor``) does: ``POST api/kernels/{kernel_id}/execute`` with
``{"document_id": <room>, "cells": [{"cell_id", "source_hash": <MurmurHash2 of the
source>}], "client_id", "request_id", "previous_request_id"}``, answered 200 at once;
nothing is polled. The room must first be attached to the kernel by a kernel session
(``POST api/sessions``, as JupyterLab does on opening a notebook), which ``execute``
does on the first execution of each kernel and room: the first run is slower, so warm
up first (as ``ingest`` does). Quirks:

- It has no ``api/collaboration/session`` endpoint: ``connect`` gets the file id from
  ``POST api/fileid/index?path=`` and joins ``json:notebook:{file_id}`` as its frontend
  does.
- Each stream message becomes an output of its own, appended as a plain JSON value (a
  ``dict`` in a pycrdt client, not a ``Map`` with a ``Text``): ``harness.stream_text``
  and ``harness.StreamTailWatch`` see no output there; ``stream_text_any`` here reads
  both shapes. The saved ``.ipynb`` keeps one output per message too.
- It keeps no store of Y updates (no crash durability): less work than ours does.
- It reads iopub in a worker of its own and appends without reading back: 8,000
  ``flush=True`` lines reached the client complete in 4.7 s here (3.7 s of server CPU),
  as about 8,000 outputs.
- ``execution_state`` becomes "running" when the request is queued and "idle" on the
  kernel's idle status; ``execution_count`` is written at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import struct
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from pycrdt import Array, Map

from tests.yclient import YClient

from .harness import RoomClient, ServerProcess, cell_map

__all__ = [
    "ALTERNATIVES",
    "VENVS",
    "Alternative",
    "AlternativeServer",
    "ensure_venv",
    "smoke",
    "stream_text_any",
]

#: Where the alternatives' venvs are kept (git-ignored); one folder per kind.
VENVS = Path(__file__).resolve().parent.parent / ".bench-venvs"
#: The file in a venv that lists what was installed in it; a venv without it, or with
#: other requirements, is made again.
_STAMP = "bench-requirements.txt"


@dataclass(frozen=True)
class Alternative:
    """One alternative to ydoc_outputs and how to run it.

    Attributes:
        kind: Its short name, the venv's folder name.
        title: What it is, for messages.
        requirements: Exact pip requirements, all verified to run the workload together.
        extension: The server extension that must be loaded (checked in the log).
        args: Extra ``jupyter server`` options; ``{home}`` is the server's scratch folder.
    """

    kind: str
    title: str
    requirements: tuple[str, ...]
    extension: str
    args: tuple[str, ...] = ()


# Pinned: the figures must not change under us with a new release. The libraries that
# do the Y work (pycrdt, pycrdt-websocket, jupyter-ydoc) and the server and kernel are
# the versions the project's own venv runs, so the comparison is of the designs.
_COMMON = (
    "jupyter_server==2.21.1",
    "jupyter_client==8.10.0",
    "ipykernel==7.4.0",
    "pycrdt==0.14.13",
    "jupyter-ydoc==4.2.1",
    "tornado==6.6.1",
    "pyzmq==27.3.0",
)

ALTERNATIVES: dict[str, Alternative] = {
    "nbmodel": Alternative(
        kind="nbmodel",
        title="jupyter-server-nbmodel with jupyter-collaboration",
        requirements=(
            "jupyter-server-nbmodel==0.2.9",
            "jupyter-kernel-client==1.0.2",
            "jupyter-collaboration==5.0.4",
            "jupyter-server-ydoc==3.0.4",
            "jupyter-docprovider==3.0.4",
            "jupyter-collaboration-ui==3.0.4",
            "jupyterlab==4.6.6",
            "jupyter_server_fileid==0.10.0",
            "pycrdt-websocket==0.16.5",
            "pycrdt-store==0.1.5",
            *_COMMON,
        ),
        extension="jupyter_server_nbmodel",
        args=(
            # What the stock frontend reads to run cells through the server.
            "--YDocExtension.server_side_execution=True",
            # Both default to files in the current or root folder: keep them in scratch.
            "--SQLiteYStore.db_path={home}/jupyter_ystore.db",
            "--YDocExtension.session_store_path={home}/collaboration_sessions.json",
        ),
    ),
    "documents": Alternative(
        kind="documents",
        title="jupyter-server-documents",
        requirements=(
            "jupyter-server-documents==0.3.3",
            "jupyter_server_fileid==0.9.3",
            "jupyter-docprovider==3.0.4",
            "jupyter-collaboration-ui==3.0.4",
            *_COMMON,
        ),
        extension="jupyter_server_documents",
    ),
}


def _alternative(kind: str) -> Alternative:
    try:
        return ALTERNATIVES[kind]
    except KeyError:
        raise ValueError(
            f"unknown alternative {kind!r} (choose from {', '.join(ALTERNATIVES)})"
        ) from None


def ensure_venv(name: str) -> Path:
    """Return the venv of alternative ``name``, making it first if needed.

    The venv is made with ``python3 -m venv`` (what ``scripts/test`` makes the project's
    venv with, so both run the same Python) and filled from PyPI with the alternative's
    pinned requirements; it is kept under ``.bench-venvs/`` and reused while its
    requirements are the same. Blocks: it runs before anything else is timed.
    """
    alternative = _alternative(name)
    venv = VENVS / name
    wanted = "\n".join(alternative.requirements) + "\n"
    stamp = venv / _STAMP
    if stamp.is_file() and stamp.read_text() == wanted and (venv / "bin" / "python").exists():
        return venv
    if venv.exists():
        shutil.rmtree(venv)
    VENVS.mkdir(exist_ok=True)
    python = shutil.which("python3") or sys.executable
    print(f"making {venv} for {alternative.title}:", flush=True)
    for requirement in alternative.requirements:
        print(f"  {requirement}", flush=True)
    subprocess.run([python, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
         "--disable-pip-version-check", *alternative.requirements],
        check=True,
    )  # fmt: skip
    stamp.write_text(wanted)
    return venv


def _murmur2(text: str) -> str:
    """MurmurHash2 (seed 0) of ``text`` in UTF-8, in decimal: jupyter-server-documents'
    ``source_hash``, which its frontend computes from the source the user ran."""
    data = text.encode()
    m = 0x5BD1E995
    h = len(data) & 0xFFFFFFFF
    end = len(data) - len(data) % 4
    for (k,) in struct.iter_unpack("<I", data[:end]):
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> 24
        k = (k * m) & 0xFFFFFFFF
        h = ((h * m) & 0xFFFFFFFF) ^ k
    tail = data[end:]
    if len(tail) == 3:
        h ^= tail[2] << 16
    if len(tail) >= 2:
        h ^= tail[1] << 8
    if tail:
        h ^= tail[0]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return str(h)


class AlternativeServer(ServerProcess):
    """An alternative's ``jupyter server`` in a subprocess, in throwaway directories.

    Use as ``async with AlternativeServer("nbmodel") as server:``; it has the methods
    of ``harness.ExtensionServer``. Kernels started through it are shut down and the
    server stopped on exit. Its Jupyter config and data folders are fresh ones, and it
    runs with its own venv's Python and nothing of the project's on its path.

    Attributes:
        kind: Which alternative (a key of ``ALTERNATIVES``).
        root: The server's root folder, where notebooks are written.
        polls: How many request polls ``execute`` made (nbmodel, with ``poll``).
    """

    def __init__(
        self,
        kind: str,
        *,
        poll: bool = True,
        args: list[str] | None = None,
        app: str = "jupyter_server",
        env: dict[str, str] | None = None,
    ) -> None:
        """Prepare a server.

        Args:
            kind: ``"nbmodel"`` or ``"documents"``.
            poll: For nbmodel, poll each request as its JupyterLab plugin does.
            args: Extra command-line options (traitlets config).
            app: The module run with the venv's ``python -m``: ``"jupyterlab"`` serves
                the JupyterLab page too (nbmodel's venv has it).
            env: Extra environment variables for the server (not the venv's isolation,
                which they cannot override).
        """
        super().__init__(args, prefix=f"ydoc-outputs-bench-{kind}-")
        self.kind = kind
        self._alternative = _alternative(kind)
        self._app = app
        self._env = dict(env or {})
        self._poll = poll
        self.polls = 0
        self._polling: set[asyncio.Task[None]] = set()
        # Per room: the notebook's path and the client connected to it.
        self._paths: dict[str, str] = {}
        self._clients: dict[str, YClient] = {}
        # documents: kernels attached to rooms (by a kernel session), the sessions' ids,
        # and the last request per room.
        self._attached: set[tuple[str, str]] = set()
        self._sessions: dict[tuple[str, str], str] = {}
        self._last_request: dict[str, str] = {}

    async def __aenter__(self) -> AlternativeServer:
        venv = ensure_venv(self.kind)
        self.root.mkdir()
        # jupyter-server-fileid 0.9 (documents) does not make its data folder itself.
        for folder in ("config", "data", "runtime"):
            (self._home / folder).mkdir(parents=True)
        bin_dir = venv / "bin"
        env = {
            **self._env,
            "VIRTUAL_ENV": str(venv),
            "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
            # Nothing of the project's (ydoc_outputs) may be importable there.
            "PYTHONPATH": "",
            "JUPYTER_PATH": "",
            "JUPYTER_CONFIG_PATH": "",
        }
        args = [arg.format(home=self._home) for arg in self._alternative.args]
        self._start(
            [*args, *self._args],
            command=[str(bin_dir / "python"), "-m", self._app],
            env=env,
        )
        self._check_extensions()
        return self

    def _check_extensions(self) -> None:
        """Fail early if the alternative is not loaded, or if ours is."""
        assert self._server is not None
        deadline = time.monotonic() + 10
        while True:
            log = self._server.log()
            if f"{self._alternative.extension} | extension was successfully loaded" in log:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self._alternative.extension} not loaded:\n{log}")
            time.sleep(0.1)
        if "ydoc_outputs" in log:
            raise RuntimeError(f"ydoc_outputs must not run in the alternative:\n{log}")
        if "Traceback" in log:
            raise RuntimeError(f"the alternative started with an error:\n{log}")

    async def _before_close(self) -> None:
        for task in self._polling:
            task.cancel()
        await asyncio.gather(*self._polling, return_exceptions=True)
        # A server with a client still connected takes 20 s to stop (then is killed).
        for client in self._clients.values():
            with contextlib.suppress(Exception):
                await client.disconnect()

    async def http_get(self, path: str) -> httpx.Response:
        """GET ``path`` (e.g. ``api/contents/x.ipynb``) from the server, with the token."""
        return await self.session.http.get(path if path.startswith("/") else f"/{path}")

    async def _room(self, path: str) -> tuple[str, str]:
        """The room of the notebook at ``path`` and its websocket URL, found as the
        alternative's frontend finds them."""
        server = self.session.server
        if self.kind == "nbmodel":
            session = await self.session.open(path)  # PUT api/collaboration/session/{path}
            room: str = session["room"]
            return room, server.ws_url(room, session["sessionId"])
        response = await self.session.http.post("/api/fileid/index", params={"path": path})
        response.raise_for_status()
        room = f"json:notebook:{response.json()['id']}"
        return room, server.ws_url(room, None)

    async def room_url(self, path: str) -> str:
        """The websocket URL of the room of the notebook at ``path``."""
        return (await self._room(path))[1]

    async def connect(self, path: str) -> RoomClient:
        """Join the notebook's room at ``path`` as the alternative's frontend does, and
        connect one synced client."""
        room, url = await self._room(path)
        client = YClient(url)
        await client.connect()
        self._paths[room] = path
        self._clients[room] = client
        return RoomClient(client, room)

    async def replace_kernel(self, kernel_id: str) -> str:
        """Shut a kernel down and start a new one; for documents, as JupyterLab does it
        for a notebook: its kernel session is deleted (which shuts the kernel down), and
        the next execution makes one with the new kernel."""
        attached = [key for key in self._sessions if key[0] == kernel_id]
        if not attached:
            return await super().replace_kernel(kernel_id)
        for key in attached:
            session_id = self._sessions.pop(key)
            self._attached.discard(key)
            self._last_request.pop(key[1], None)  # requests are chained per kernel
            response = await self.session.http.delete(f"/api/sessions/{session_id}")
            if response.status_code != 204:
                raise RuntimeError(f"session delete: {response.status_code} {response.text}")
        return await self.start_kernel()

    async def execute(self, kernel_id: str, room: str, cell_id: str) -> None:
        """Run one cell as the alternative's frontend does; return once it is accepted.

        ``room`` must have been joined with ``connect``: the cell's source is read from
        that client's copy, as the frontend reads it from its own.
        """
        client = self._clients.get(room)
        if client is None:
            raise KeyError(f"connect to {room!r} first")
        source = str(cell_map(client, cell_id).get("source", ""))
        if self.kind == "nbmodel":
            await self._execute_nbmodel(kernel_id, room, cell_id, source)
        else:
            await self._execute_documents(kernel_id, room, cell_id, source, client)

    async def _execute_nbmodel(self, kernel_id: str, room: str, cell_id: str, source: str) -> None:
        body = {
            "code": source,
            "metadata": {
                "cell_id": cell_id,
                "document_id": room,
                "document_path": self._paths[room],
                "record_timing": False,
            },
        }
        response = await self.session.http.post(f"/api/kernels/{kernel_id}/execute", json=body)
        if response.status_code != 202:
            raise RuntimeError(f"execute failed: {response.status_code} {response.text}")
        if self._poll:
            task = asyncio.create_task(self._poll_request(response.headers["location"]))
            self._polling.add(task)
            task.add_done_callback(self._polling.discard)

    async def _poll_request(self, url: str) -> None:
        """Poll an nbmodel request as its frontend does, until it is no longer pending."""
        interval = 0.1
        while True:
            await asyncio.sleep(interval)
            interval = min(1.0, interval * 2)
            self.polls += 1
            response = await self.session.http.get(url)
            if response.status_code != 202:
                return

    async def _execute_documents(
        self, kernel_id: str, room: str, cell_id: str, source: str, client: YClient
    ) -> None:
        if (kernel_id, room) not in self._attached:
            # JupyterLab's kernel session for the notebook: attaches the room to the kernel.
            path = self._paths[room]
            response = await self.session.http.post(
                "/api/sessions",
                json={"path": path, "name": Path(path).name, "type": "notebook",
                      "kernel": {"id": kernel_id}},
            )  # fmt: skip
            if response.status_code != 201:
                raise RuntimeError(f"session failed: {response.status_code} {response.text}")
            self._attached.add((kernel_id, room))
            self._sessions[(kernel_id, room)] = response.json()["id"]
        request_id = str(uuid.uuid4())
        body: dict[str, object] = {
            "document_id": room,
            "cells": [{"cell_id": cell_id, "source_hash": _murmur2(source)}],
            "client_id": str(client.document.ydoc.client_id),
            "request_id": request_id,
        }
        previous = self._last_request.get(room)
        if previous is not None:
            body["previous_request_id"] = previous
        self._last_request[room] = request_id
        response = await self.session.http.post(f"/api/kernels/{kernel_id}/execute", json=body)
        if response.status_code != 200:
            raise RuntimeError(f"execute failed: {response.status_code} {response.text}")


def stream_text_any(cell: Map[Any], name: str = "stdout") -> str:
    """All the text of the cell's ``name`` stream outputs, joined, whatever their shape.

    ``harness.stream_text`` reads outputs that are Y maps (ours, nbmodel); this also
    reads the plain JSON outputs jupyter-server-documents appends. Reads every output.
    """
    outputs = cell.get("outputs")
    if not isinstance(outputs, Array):
        return ""
    parts: list[str] = []
    for output in outputs:
        value = output.to_py() if isinstance(output, Map) else output
        if (
            isinstance(value, dict)
            and value.get("output_type") == "stream"
            and value.get("name") == name
        ):
            text = value.get("text", "")
            parts.append("".join(text) if isinstance(text, list) else str(text))
    return "".join(parts)


# -- self-check ------------------------------------------------------------------------


async def smoke(kind: str) -> None:
    """Run one cell that prints 2,000 lines on the alternative; print what happened.

    Checks that the server starts, that one client receives every line in order and
    sees the cell finish, and that the notebook is saved with its outputs.
    """
    lines = 2000
    expected = "".join(f"{i}\n" for i in range(lines))
    path = "smoke.ipynb"
    async with AlternativeServer(kind) as server:
        print(f"{server.kind}: server pid {server.pid}, root {server.root}", flush=True)
        (cell_id,) = server.write_notebook(path, [f"for i in range({lines}): print(i)"])
        kernel_id = await server.start_kernel()
        room = await server.connect(path)
        client = room.client
        cell = cell_map(client, cell_id)
        last_line_at: list[float] = []

        def watch() -> None:
            if not last_line_at and stream_text_any(cell).endswith(f"{lines - 1}\n"):
                last_line_at.append(time.perf_counter())

        client.listeners.append(watch)
        start = time.perf_counter()
        await server.execute(kernel_id, room.room, cell_id)
        accepted = time.perf_counter() - start
        await client.wait_for(
            lambda: (
                bool(last_line_at)
                and cell.get("execution_state") == "idle"
                and cell.get("execution_count") is not None
            ),
            timeout=120,
        )
        finished = time.perf_counter() - start
        client.listeners.remove(watch)
        text = stream_text_any(cell)
        outputs = cell.get("outputs")
        print(
            f"accepted in {accepted * 1000:.0f} ms; last line after "
            f"{last_line_at[0] - start:.3f} s; idle with execution_count "
            f"{cell.get('execution_count')} after {finished:.3f} s",
            flush=True,
        )
        print(
            f"client's text is exactly all {lines} lines: {text == expected} "
            f"({len(text)} chars in {len(outputs) if outputs is not None else 0} outputs)",
            flush=True,
        )
        # The notebook on disk, through the contents API, once the autosave wrote it.
        saved_after: float | None = None
        deadline = time.perf_counter() + 15
        while True:
            response = await server.http_get(f"api/contents/{path}")
            response.raise_for_status()
            model: dict[str, Any] = response.json()
            saved: dict[str, Any] = model["content"]["cells"][0]
            if _saved_stdout(saved) == expected and saved.get("execution_count") is not None:
                saved_after = time.perf_counter() - start
                break
            if time.perf_counter() > deadline:
                break
            await asyncio.sleep(0.2)
        print(
            f"GET api/contents/{path}: {response.status_code}, last_modified "
            f"{model.get('last_modified')}, cell execution_count "
            f"{saved.get('execution_count')}, {len(saved.get('outputs', []))} outputs, "
            + (
                f"all lines saved {saved_after:.1f} s after the execute"
                if saved_after is not None
                else "NOT all lines saved within 15 s"
            ),
            flush=True,
        )
        if kind == "nbmodel":
            print(f"request polls: {server.polls}", flush=True)
        with contextlib.suppress(Exception):
            await client.disconnect()


def _saved_stdout(cell: dict[str, Any]) -> str:
    """The stdout text of a cell of a notebook's JSON (text as a string or lines)."""
    return "".join(
        "".join(output["text"]) if isinstance(output["text"], list) else output["text"]
        for output in cell.get("outputs", [])
        if output.get("output_type") == "stream" and output.get("name") == "stdout"
    )


def main(argv: list[str]) -> None:
    """``python -m benchmarks.alternatives KIND``: the self-check of one alternative."""
    kinds = argv or ["nbmodel"]
    for kind in kinds:
        _alternative(kind)
    for kind in kinds:
        asyncio.run(smoke(kind))


if __name__ == "__main__":
    main(sys.argv[1:])
