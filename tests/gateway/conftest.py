"""Fixtures: a real Jupyter Kernel Gateway on 127.0.0.1, and a real Jupyter server with
the extension whose kernels all live on it (``--GatewayClient.url``)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from ..conftest import Server, Session, free_port, jupyter_dirs


class KernelGateway:
    """A running ``jupyter kernelgateway`` (jupyter-kernel-gateway, its websocket
    personality), with kernels of this interpreter's ipykernel."""

    def __init__(self, home: Path, args: list[str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = home / "gateway.log"
        env = {**os.environ, **jupyter_dirs(home)}
        cmd = [
            sys.executable, "-m", "kernel_gateway",
            "--KernelGatewayApp.ip=127.0.0.1", f"--KernelGatewayApp.port={self.port}",
            "--KernelGatewayApp.port_retries=0",
            # GET /api/kernels: the server's GatewayMappingKernelManager lists the
            # gateway's kernels to refresh its models, and its culler does so first.
            "--JupyterWebsocketPersonality.list_kernels=True",
            *(args or []),
        ]  # fmt: skip
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(cmd, env=env, stdout=self._log, stderr=subprocess.STDOUT)
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gateway exited:\n{self.log()}")
            try:
                with urllib.request.urlopen(f"{self.url}/api/kernelspecs", timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"gateway did not start:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(20)
        self._log.close()


def gateway_server(root: Path, home: Path, gateway: KernelGateway, args: list[str]) -> Server:
    """Our server, with every kernel on ``gateway``."""
    return Server(
        root,
        home,
        [
            f"--GatewayClient.url={gateway.url}",
            "--YdocOutputsApp.room_cleanup_delay=1.0",
            "--YdocOutputsApp.autosave_delay=0.2",
            *args,
        ],
    )


@pytest.fixture(scope="package")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KernelGateway]:
    gw = KernelGateway(tmp_path_factory.mktemp("gateway-home"))
    yield gw
    gw.stop()


@pytest.fixture(scope="package")
def server(tmp_path_factory: pytest.TempPathFactory, gateway: KernelGateway) -> Iterator[Server]:
    srv = gateway_server(
        tmp_path_factory.mktemp("gateway-notebooks"),
        tmp_path_factory.mktemp("gateway-server-home"),
        gateway,
        [],
    )
    yield srv
    srv.stop()


@pytest.fixture
async def session(server: Server, gateway: KernelGateway) -> AsyncIterator[Session]:
    s = Session(server, server.http())
    yield s
    await s.close()
    assert server.proc.poll() is None, "the server died"
    assert gateway.proc.poll() is None, "the gateway died"
