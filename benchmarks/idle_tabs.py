"""IDLE TABS: what open but idle JupyterLab tabs cost the server.

One ``jupyter lab`` with ydoc_outputs (and whatever the venv has installed: the
collaboration UI, jupyterlab-chat, ipywidgets), measured twice per round in the same
server: with no page open (the baseline), then with 4 headless Chromium tabs, each a
browser of its own with a notebook of its own open (its room, its kernel, the
``JupyterLab:globalAwareness`` room), left alone. The server's CPU time is read from
``/proc`` (its threads' run times) over the window; the kernels and the browsers are
other processes and do not count.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import uuid
from collections import Counter
from typing import Any
from urllib.parse import urlsplit

from tests.conftest import TOKEN

from .harness import Options, ServerProcess, process_cpu_seconds
from .report import Table, median

__all__ = ["TABS", "TARGET", "run"]

#: Tabs left open.
TABS = 4
#: Server CPU with the tabs open, as a share of one core.
TARGET = 0.01
CHROMIUM = os.environ.get("YDOC_E2E_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update"]  # fmt: skip


class LabServer(ServerProcess):
    """``jupyter lab`` with the extension, the news prompt off (it would poll)."""

    async def __aenter__(self) -> LabServer:
        settings = self.home / "lab-settings"
        (settings / "@jupyterlab" / "apputils-extension").mkdir(parents=True)
        (settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings")\
            .write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))  # fmt: skip
        self._start(
            self._args,
            command=[sys.executable, "-m", "jupyterlab"],
            env={"JUPYTERLAB_SETTINGS_DIR": str(settings),
                 "JUPYTERLAB_WORKSPACES_DIR": str(self.home / "workspaces")},
        )  # fmt: skip
        return self


async def _cpu(pid: int, seconds: float) -> float:
    """The share of one core process ``pid`` used over the next ``seconds``."""
    cpu, start = process_cpu_seconds(pid), time.monotonic()
    await asyncio.sleep(seconds)
    return (process_cpu_seconds(pid) - cpu) / (time.monotonic() - start)


class Traffic:
    """What the tabs send the server: websockets opened, HTTP requests by path, frames on
    the collaboration rooms. Counted only while ``counting`` is set."""

    def __init__(self) -> None:
        self.counting = False
        self.sockets = 0
        self.requests: Counter[str] = Counter()
        self.room_frames = 0

    def watch(self, page: Any) -> None:
        page.on("websocket", self._socket)
        page.on("request", self._request)

    def _socket(self, ws: Any) -> None:
        self.sockets += self.counting
        if "/api/collaboration/room/" in ws.url:
            ws.on("framesent", self._frame)
            ws.on("framereceived", self._frame)

    def _frame(self, _payload: Any) -> None:
        self.room_frames += self.counting

    def _request(self, request: Any) -> None:
        if self.counting:
            # api/sessions, api/kernels, api/contents...: the path without ids or query.
            parts = urlsplit(request.url).path.strip("/").split("/")
            self.requests["/".join(parts[:2]) if parts[0] == "api" else parts[0]] += 1


async def _open_tabs(browser: Any, server: LabServer, traffic: Traffic) -> list[Any]:
    contexts = []
    for i in range(TABS):
        name = f"idle-{uuid.uuid4().hex[:6]}-{i}.ipynb"
        server.write_notebook(name, ["x = 1"])
        context = await browser.new_context(viewport={"width": 1280, "height": 900})
        page = await context.new_page()
        traffic.watch(page)
        url = server.session.server.url
        await page.goto(f"{url}/lab/workspaces/{uuid.uuid4().hex}/tree/{name}?token={TOKEN}")
        await page.wait_for_selector(
            ".jp-NotebookPanel .jp-Notebook-ExecutionIndicator[data-status='idle']",
            timeout=120_000,
        )
        contexts.append(context)
    return contexts


async def run(options: Options) -> Table:
    from playwright.async_api import async_playwright

    seconds, settle = (5.0, 3.0) if options.quick else (30.0, 10.0)
    baseline: list[float] = []
    tabs: list[float] = []
    reconnects: list[int] = []
    requests: Counter[str] = Counter()
    frames = 0
    # Rooms closed in the settling time after the tabs (the default keeps them 60 s, and
    # each polls its file every second): the next baseline has no room open.
    cleanup = ["--YdocOutputsApp.room_cleanup_delay=2"]
    async with LabServer(cleanup) as server, async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        await asyncio.sleep(settle)  # start-up done
        for _ in range(options.repeat):
            baseline.append(await _cpu(server.pid, seconds))
            traffic = Traffic()
            contexts = await _open_tabs(browser, server, traffic)
            await asyncio.sleep(settle)  # the pages' start-up requests, the rooms' first saves
            traffic.counting = True
            tabs.append(await _cpu(server.pid, seconds))
            traffic.counting = False
            reconnects.append(traffic.sockets)
            requests += traffic.requests
            frames += traffic.room_frames
            for context in contexts:
                await context.close()
            for kernel in (await server.session.http.get("/api/kernels")).json():
                await server.session.http.delete(f"/api/kernels/{kernel['id']}")
            await asyncio.sleep(settle)  # rooms closed before the next baseline
        await browser.close()

    table = Table(
        f"IDLE TABS: server CPU over {seconds:.0f} s, no page open, then {TABS} idle "
        f"JupyterLab tabs (headless Chromium, a notebook each); medians of "
        f"{options.repeat} rounds, both sides in each round",
        ["side", "server CPU (% of a core)", "each round", "websockets opened while idle",
         f"< {TARGET * 100:.0f}%"],
    )  # fmt: skip
    table.rows.append(
        ["no tab (baseline)", f"{median(baseline) * 100:.2f}%",
         " ".join(f"{x * 100:.2f}" for x in baseline), "-", "-"]
    )  # fmt: skip
    table.rows.append(
        [f"{TABS} idle tabs", f"{median(tabs) * 100:.2f}%",
         " ".join(f"{x * 100:.2f}" for x in tabs), str(max(reconnects)),
         "yes" if median(tabs) < TARGET else "NO"]
    )  # fmt: skip
    extra = median(tabs) - median(baseline)
    table.notes += [
        f"the tabs add {extra * 100:.2f} points of a core "
        f"({median(tabs) / median(baseline):.1f}x the baseline)"
        if median(baseline) > 0
        else f"the tabs add {extra * 100:.2f} points of a core",
        "what the tabs sent or got while idle, per second of all tabs (mean of the rounds): "
        f"{frames / seconds / options.repeat:.2f} websocket frames on the collaboration rooms; "
        f"{sum(requests.values()) / seconds / options.repeat:.2f} HTTP requests ("
        + ", ".join(
            f"{path} {n / seconds / options.repeat:.2f}" for path, n in requests.most_common()
        )
        + "): JupyterLab's own polling, the same with any collaboration server",
        "server CPU: its threads' run time (/proc/<pid>/task/*/schedstat) over the window's "
        "wall time; kernels and browsers are other processes.",
        f"each round waits {settle:.0f} s after the last tab showed an idle kernel before "
        "measuring, and closes the tabs and kernels after; room_cleanup_delay=2, so that "
        "their rooms are closed before the next baseline.",
    ]
    return table


if __name__ == "__main__":
    from .run import main

    main([*sys.argv[1:], "idle_tabs"])
