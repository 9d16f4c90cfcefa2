"""Fixtures: a real Jupyter server process with the extension, real kernels, Y clients."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, ClassVar

import httpx
import nbformat
import pytest

from .yclient import YClient

TOKEN = "test-token-" + uuid.uuid4().hex


def jupyter_dirs(home: Path) -> dict[str, str]:
    """Environment variables that give a Jupyter process config, data and runtime
    directories of its own under ``home`` (nothing of the user's is read or written)."""
    return {
        "JUPYTER_CONFIG_DIR": str(home / "config"),
        "JUPYTER_DATA_DIR": str(home / "data"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "JUPYTER_PLATFORM_DIRS": "1",
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Server:
    """A running ``jupyter server`` with ydoc_outputs, on 127.0.0.1."""

    #: The servers running now: a failing test's report ends with their logs' tails.
    live: ClassVar[set[Server]] = set()

    def __init__(
        self,
        root: Path,
        home: Path,
        args: list[str],
        *,
        command: list[str] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.root = root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = home / "server.log"
        env = {**os.environ, **jupyter_dirs(home), **(env or {})}
        cmd = [
            *(command or [sys.executable, "-m", "jupyter_server"]),
            "--no-browser", "--allow-root",
            f"--ServerApp.port={self.port}", "--ServerApp.ip=127.0.0.1",
            "--ServerApp.port_retries=0",
            f"--ServerApp.root_dir={root}",
            f"--IdentityProvider.token={TOKEN}",
            *args,
        ]  # fmt: skip
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(cmd, env=env, stdout=self._log, stderr=subprocess.STDOUT)
        Server.live.add(self)
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited:\n{self.log()}")
            try:
                req = urllib.request.Request(
                    f"{self.url}/api/status", headers={"Authorization": f"token {TOKEN}"}
                )
                with urllib.request.urlopen(req, timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"server did not start:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_tail(self, lines: int = 80) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def kill(self) -> None:
        """SIGKILL: no clean-up at all, as in a crash."""
        self.proc.kill()
        self.proc.wait(20)
        self._log.close()
        Server.live.discard(self)

    def stop(self) -> None:
        Server.live.discard(self)
        if self.proc.poll() is not None:
            self._log.close()  # killed, or died on its own: the log file is still open
            return
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(20)  # reaped: else a ResourceWarning fails the session
        self._log.close()

    def http(self, token: str | None = TOKEN) -> httpx.AsyncClient:
        headers = {"Authorization": f"token {token}"} if token else {}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=30)

    def ws_url(self, room: str, session_id: str | None, token: str | None = TOKEN) -> str:
        query = []
        if session_id is not None:
            query.append(f"sessionId={session_id}")
        if token is not None:
            query.append(f"token={token}")
        return f"ws://127.0.0.1:{self.port}/api/collaboration/room/{room}?{'&'.join(query)}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """A failing test's report shows the end of each running server's log: on CI, the
    only trace of what the server did."""
    report = yield
    if report.failed and call.when == "call":
        for server in sorted(Server.live, key=lambda s: str(s.log_path)):
            try:
                tail = server.log_tail()
            except OSError:
                continue
            report.sections.append((f"end of {server.log_path}", tail))
    return report


def write_notebook(root: Path, name: str, sources: list[str]) -> tuple[str, list[str]]:
    """Write a notebook of code cells; return its path and its cell ids."""
    ids = [f"cell-{i}-{uuid.uuid4().hex[:8]}" for i in range(len(sources))]
    nb = {
        "cells": [
            {"cell_type": "code", "execution_count": None, "id": cid, "metadata": {},
             "outputs": [], "source": src}
            for cid, src in zip(ids, sources, strict=True)
        ],
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                    "language": "python"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }  # fmt: skip
    (root / name).write_text(json.dumps(nb))
    return name, ids


async def read_saved(path: Path) -> Any:
    """Read a notebook the server may be rewriting right now.

    Jupyter's file writer rewrites a file in place, so a reader can catch it half
    written; read again once the writer is done.
    """
    for _ in range(100):
        try:
            return nbformat.reads(path.read_text(), as_version=4)
        except nbformat.reader.NotJSONError:
            await asyncio.sleep(0.05)
    raise AssertionError(f"{path} never became readable")


class Session:
    """Test helper around one server: sessions, kernels, executions and clients."""

    def __init__(self, server: Server, http: httpx.AsyncClient) -> None:
        self.server = server
        self.http = http
        self.kernels: list[str] = []

    async def open(self, path: str) -> dict[str, Any]:
        r = await self.http.put(
            f"/api/collaboration/session/{path}", json={"format": "json", "type": "notebook"}
        )
        assert r.status_code in (200, 201), r.text
        body: dict[str, Any] = r.json()
        body["room"] = f"json:notebook:{body['fileId']}"
        return body

    async def client(self, path: str) -> YClient:
        session = await self.open(path)
        client = YClient(self.server.ws_url(session["room"], session["sessionId"]))
        await client.connect()
        return client

    async def prepare(self, path: str) -> tuple[str, str, YClient]:
        """Start a kernel and connect a client to the notebook at ``path``.

        Returns:
            The kernel id, the room name (the notebook's document id) and the client.
        """
        kernel = await self.start_kernel()
        client = await self.client(path)
        room: str = (await self.open(path))["room"]
        return kernel, room, client

    async def start_kernel(self) -> str:
        r = await self.http.post("/api/kernels", json={"name": "python3"})
        assert r.status_code == 201, r.text
        kernel_id: str = r.json()["id"]
        self.kernels.append(kernel_id)
        return kernel_id

    async def execute(self, kernel_id: str, room: str, cell_id: str) -> httpx.Response:
        return await self.http.post(
            f"/api/kernels/{kernel_id}/execute", json={"cell_id": cell_id, "document_id": room}
        )

    async def export(self, path: str) -> str:
        r = await self.http.get(f"/api/ydoc-outputs/export/{path}")
        assert r.status_code == 200, r.text
        return r.text

    async def close(self) -> None:
        for kernel_id in self.kernels:
            await self.http.delete(f"/api/kernels/{kernel_id}")
        await self.http.aclose()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("notebooks")
    home = tmp_path_factory.mktemp("jupyter-home")
    srv = Server(
        root,
        home,
        [
            "--YdocOutputsApp.room_cleanup_delay=1.0",
            "--YdocOutputsApp.autosave_delay=0.2",
        ],
    )
    yield srv
    srv.stop()


@pytest.fixture
async def session(server: Server) -> AsyncIterator[Session]:
    s = Session(server, server.http())
    yield s
    await s.close()
    assert server.proc.poll() is None, "the server died"
