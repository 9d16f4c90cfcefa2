"""IDLE TABS: what open but idle JupyterLab tabs cost the server, ours and stock.

Two ``jupyter lab`` servers run side by side: ours (ydoc_outputs, with whatever the
project's venv has installed: the collaboration UI, jupyterlab-chat, ipywidgets) and
stock jupyter-collaboration (the ``nbmodel`` alternative's venv, see alternatives.py),
both with the same JupyterLab settings. In each round, each server is measured twice:
with no page open (its baseline), then with 4 headless Chromium tabs, each a browser of
its own with a notebook of its own open (its room, its kernel, the
``JupyterLab:globalAwareness`` room), left alone; the servers take turns going first.
A server's CPU time is read from ``/proc/<pid>/stat`` (all its threads, ended ones too)
over the window; the kernels, the browsers and the other server are other processes
and do not count.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tests.conftest import TOKEN

from .alternatives import ALTERNATIVES, AlternativeServer
from .harness import Options, ServerProcess, process_total_cpu_seconds
from .report import Table, median, slower_rounds

__all__ = ["STOCK", "TABS", "TARGET", "run"]

#: Tabs left open.
TABS = 4
#: Server CPU with the tabs open, as a share of one core.
TARGET = 0.01
#: The alternative whose venv holds stock jupyter-collaboration and JupyterLab.
STOCK = "nbmodel"
CHROMIUM = os.environ.get("YDOC_E2E_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update"]  # fmt: skip
#: Seconds a room is kept after its last client left, on both sides (the defaults keep
#: it 60 s, and each polls its file every second): the next baseline has no room open.
CLEANUP_DELAY = 2


def _lab_env(home: Path) -> dict[str, str]:
    """Write JupyterLab's settings into ``home``; the environment that points the server
    at them and at a workspaces folder of its own there. Both sides get the same: the
    news and update checks off (they would poll)."""
    settings = home / "lab-settings"
    plugin = settings / "@jupyterlab" / "apputils-extension"
    plugin.mkdir(parents=True)
    (plugin / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False})
    )
    return {
        "JUPYTERLAB_SETTINGS_DIR": str(settings),
        "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
    }


class LabServer(ServerProcess):
    """``jupyter lab`` with the extension, in the project's venv."""

    async def __aenter__(self) -> LabServer:
        self._start(
            [f"--YdocOutputsApp.room_cleanup_delay={CLEANUP_DELAY}", *self._args],
            command=[sys.executable, "-m", "jupyterlab"],
            env=_lab_env(self.home),
        )
        return self


class StockLabServer(AlternativeServer):
    """``jupyter lab`` with stock jupyter-collaboration, in the ``STOCK`` alternative's
    venv (which also loads jupyter-server-nbmodel: idle, it runs nothing)."""

    def __init__(self) -> None:
        super().__init__(
            STOCK,
            app="jupyterlab",
            args=[f"--YDocExtension.document_cleanup_delay={CLEANUP_DELAY}"],
        )

    async def __aenter__(self) -> StockLabServer:
        self._env.update(_lab_env(self.home))
        await super().__aenter__()
        return self


async def _cpu(pid: int, seconds: float) -> float:
    """The share of one core process ``pid`` used over the next ``seconds``.

    From the process's utime + stime, not its live threads' run times: a thread that
    ends in the window (the stock server's idle workers did, a few seconds after the
    tabs opened) would take its whole run time out of the sum, and the figure went below
    zero."""
    cpu, start = process_total_cpu_seconds(pid), time.monotonic()
    await asyncio.sleep(seconds)
    return (process_total_cpu_seconds(pid) - cpu) / (time.monotonic() - start)


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


@dataclass
class Side:
    """One server and what was measured on it, round by round."""

    name: str
    server: ServerProcess
    baseline: list[float] = field(default_factory=list)
    tabs: list[float] = field(default_factory=list)
    reconnects: list[int] = field(default_factory=list)
    requests: Counter[str] = field(default_factory=Counter)
    frames: int = 0


async def _open_tabs(browser: Any, server: ServerProcess, traffic: Traffic) -> list[Any]:
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


async def _round(browser: Any, side: Side, seconds: float, settle: float) -> None:
    """One round on one server: its baseline, then its tabs; tabs and kernels closed after."""
    server = side.server
    side.baseline.append(await _cpu(server.pid, seconds))
    traffic = Traffic()
    contexts = await _open_tabs(browser, server, traffic)
    await asyncio.sleep(settle)  # the pages' start-up requests, the rooms' first saves
    traffic.counting = True
    side.tabs.append(await _cpu(server.pid, seconds))
    traffic.counting = False
    side.reconnects.append(traffic.sockets)
    side.requests += traffic.requests
    side.frames += traffic.room_frames
    for context in contexts:
        await context.close()
    for kernel in (await server.session.http.get("/api/kernels")).json():
        await server.session.http.delete(f"/api/kernels/{kernel['id']}")
    await asyncio.sleep(settle)  # rooms closed before the next baseline


async def run(options: Options) -> Table:
    from playwright.async_api import async_playwright

    seconds, settle = (5.0, 3.0) if options.quick else (30.0, 10.0)
    async with contextlib.AsyncExitStack() as stack:
        ours = Side("ours", await stack.enter_async_context(LabServer()))
        stock = Side("stock", await stack.enter_async_context(StockLabServer()))
        p = await stack.enter_async_context(async_playwright())
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        await asyncio.sleep(settle)  # start-up done
        for i in range(options.repeat):
            # Taking turns: neither side always follows the other's tabs.
            for side in (ours, stock) if i % 2 == 0 else (stock, ours):
                await _round(browser, side, seconds, settle)
        await browser.close()
    return _table(options, seconds, settle, ours, stock)


def _rounds(values: list[float]) -> str:
    return " ".join(f"{x * 100:.2f}" for x in values)


def _traffic(side: Side, seconds: float, rounds: int) -> str:
    window = seconds * rounds
    return (
        f"{side.name}: {side.frames / window:.2f} websocket frames on the collaboration rooms; "
        f"{sum(side.requests.values()) / window:.2f} HTTP requests ("
        + ", ".join(f"{path} {n / window:.2f}" for path, n in side.requests.most_common())
        + ")"
    )


def _table(options: Options, seconds: float, settle: float, ours: Side, stock: Side) -> Table:
    table = Table(
        f"IDLE TABS: server CPU over {seconds:.0f} s, no page open, then {TABS} idle "
        f"JupyterLab tabs (headless Chromium, a notebook each), ours and stock "
        f"jupyter-collaboration; medians of {options.repeat} rounds, every side in each round",
        ["side", "server CPU (% of a core)", "each round", "websockets opened while idle",
         f"< {TARGET * 100:.0f}%"],
    )  # fmt: skip
    for side in (ours, stock):
        table.rows.append(
            [f"{side.name}: no tab (baseline)", f"{median(side.baseline) * 100:.2f}%",
             _rounds(side.baseline), "-", "-"]
        )  # fmt: skip
        table.rows.append(
            [f"{side.name}: {TABS} idle tabs", f"{median(side.tabs) * 100:.2f}%",
             _rounds(side.tabs), str(max(side.reconnects)),
             "yes" if median(side.tabs) < TARGET else "NO"]
        )  # fmt: skip
    ratios = [a / b for a, b in zip(ours.tabs, stock.tabs, strict=True) if b > 0]
    table.rows.append(
        [f"ours / stock, {TABS} idle tabs",
         f"{median(ours.tabs) / median(stock.tabs):.2f}x" if median(stock.tabs) > 0 else "-",
         " ".join(f"{r:.2f}" for r in ratios), "-", "-"]
    )  # fmt: skip
    for side in (ours, stock):
        extra = median(side.tabs) - median(side.baseline)
        table.notes.append(
            f"{side.name}: the tabs add {extra * 100:.2f} points of a core"
            + (
                f" ({median(side.tabs) / median(side.baseline):.1f}x the baseline)"
                if median(side.baseline) > 0
                else ""
            )
        )
    slower, rounds, p = slower_rounds(ours.tabs, stock.tabs)
    table.notes += [
        f"ours - stock with the tabs: {(median(ours.tabs) - median(stock.tabs)) * 100:+.2f} "
        f"points of a core (medians); ours used more in {slower} of {rounds} rounds "
        f"(sign test p = {p:.2f}); ratio: of the medians, each round's in its column",
        "what the tabs sent or got while idle, per second of all tabs (mean of the rounds): "
        + "; ".join(_traffic(side, seconds, options.repeat) for side in (ours, stock))
        + ": JupyterLab's own polling, apart from the room frames",
        "stock: "
        + ", ".join(
            r
            for r in ALTERNATIVES[STOCK].requirements
            if r.startswith(
                (
                    "jupyter-collaboration",
                    "jupyter-server-ydoc",
                    "jupyter-docprovider",
                    "jupyterlab==",
                )
            )
        )
        + f" (the {STOCK!r} alternative's venv, which also loads jupyter-server-nbmodel and "
        "its executor plugin: idle, no cell runs). Ours has the project venv's frontend "
        "extensions besides (jupyterlab-chat, ipywidgets). Both: the same lab settings "
        "(news and update checks off), notebooks and workspace URLs.",
        "server CPU: utime + stime of /proc/<pid>/stat (all its threads, ended ones "
        "included; 10 ms ticks, within 0.07 points over 30 s) over the window's wall time; "
        "kernels, browsers and the other server are other processes.",
        f"each round waits {settle:.0f} s after the last tab showed an idle kernel before "
        "measuring, and closes the tabs and kernels after; rooms are closed "
        f"{CLEANUP_DELAY} s after their last client (ours: room_cleanup_delay, stock: "
        "document_cleanup_delay), before the next baseline.",
    ]
    return table


if __name__ == "__main__":
    from .run import main

    main([*sys.argv[1:], "idle_tabs"])
