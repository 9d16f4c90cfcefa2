"""scripts/demo prints a URL that opens the example notebook, not /lab."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import threading
import time
import urllib.parse
from pathlib import Path

import httpx
import pytest

from .conftest import free_port, jupyter_dirs

ROOT = Path(__file__).resolve().parents[1]
URL = re.compile(r"http://127\.0\.0\.1:\d+/\S*\?token=\w+")


def test_the_url_the_demo_prints_opens_the_example_notebook(tmp_path: Path) -> None:
    if not (ROOT / ".venv" / "bin" / "jupyter").exists():
        pytest.skip("scripts/demo runs .venv/bin/jupyter, and there is no .venv here")
    port = free_port()
    env = {**os.environ, "YDOC_DEMO_NO_INSTALL": "1", **jupyter_dirs(tmp_path)}
    demo = subprocess.Popen(
        [str(ROOT / "scripts" / "demo"), f"--ServerApp.port={port}", "--ServerApp.port_retries=0"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    assert demo.stdout is not None
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(line) for line in demo.stdout or ()])
    reader.start()
    output: list[str] = []
    try:
        url = None
        deadline = time.monotonic() + 60
        while url is None and time.monotonic() < deadline and demo.poll() is None:
            try:
                output.append(lines.get(timeout=0.5))
            except queue.Empty:
                continue
            found = URL.search(output[-1])
            url = found.group(0) if found else None
        assert url is not None, "no URL printed:\n" + "".join(output)
        parts = urllib.parse.urlsplit(url)
        assert parts.path == "/lab/tree/long_running.ipynb", url
        token = urllib.parse.parse_qs(parts.query)["token"][0]
        # The page of that URL opens this file, and the server's root holds it.
        page = httpx.get(url, timeout=30)
        assert page.status_code == 200
        assert re.search(r'"treePath":\s*"long_running.ipynb"', page.text)
        base = f"{parts.scheme}://{parts.netloc}"
        model = httpx.get(
            f"{base}/api/contents/long_running.ipynb",
            params={"content": "0"},
            headers={"Authorization": f"token {token}"},
            timeout=30,
        )
        assert model.status_code == 200, model.text
        assert model.json()["type"] == "notebook"
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGTERM)
        try:
            demo.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait()
        reader.join()
        demo.stdout.close()
