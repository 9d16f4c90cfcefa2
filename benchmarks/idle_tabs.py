"""IDLE TABS: what open but idle JupyterLab tabs cost the server: ours, stock, bare.

Three ``jupyter lab`` servers run side by side: ours (ydoc_outputs, with whatever the
project's venv has installed: the collaboration UI, jupyterlab-chat, ipywidgets), stock
jupyter-collaboration (the ``nbmodel`` alternative's venv, see alternatives.py) and bare
JupyterLab (the project's venv with no collaboration at all: ydoc_outputs,
jupyterlab_chat and jupyter_server_fileid not loaded, the collaboration frontends
disabled in the page; the floor every collaboration server adds to), all with the same
JupyterLab settings. In each round, each server is measured twice:
with no page open (its baseline), then with 4 headless Chromium tabs, each a browser of
its own with a notebook of its own open (its room, its kernel, the
``JupyterLab:globalAwareness`` room; bare: the notebook from ``api/contents`` and its
kernel, no room), left alone; the servers take turns going first.
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

__all__ = ["BARE_DISABLED_LABEXTENSIONS", "BARE_DISABLED_SERVER", "STOCK", "TABS", "TARGET",
           "run"]  # fmt: skip

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
#: Server extensions of the project's venv that bare JupyterLab does not load: ours, the
#: chat (which runs on collaboration rooms) and the file ids collaboration needs.
BARE_DISABLED_SERVER = ("ydoc_outputs", "jupyterlab_chat", "jupyter_server_fileid")
#: Frontend extensions of the project's venv disabled in bare JupyterLab's page: every
#: one that speaks to a collaboration server (left: ipywidgets, pygments).
BARE_DISABLED_LABEXTENSIONS = (
    "@jupyter/docprovider-extension",
    "@jupyter/collaboration-extension",
    "jupyterlab-chat-extension",
    "ydoc-outputs",
    "@datalayer/jupyter-server-nbmodel",
    "@jupyter-ai-contrib/server-documents",
)


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


class BareLabServer(ServerProcess):
    """``jupyter lab`` in the project's venv with no collaboration at all: the server
    extensions of ``BARE_DISABLED_SERVER`` off and the frontend extensions of
    ``BARE_DISABLED_LABEXTENSIONS`` disabled, both in the server's own Jupyter config
    folder (which comes before the venv's). Checked on start: none of those server
    extensions loaded, no collaboration endpoint, and the page config served on
    ``/lab`` disables those frontends and not JupyterLab's own file browser."""

    #: The page's disabled frontend extensions, and the federated ones left enabled.
    page_disabled: list[str]
    page_enabled: list[str]

    async def __aenter__(self) -> BareLabServer:
        config = self.home / "config"
        (config / "labconfig").mkdir(parents=True)
        (config / "jupyter_server_config.json").write_text(
            json.dumps(
                {"ServerApp": {"jpserver_extensions": dict.fromkeys(BARE_DISABLED_SERVER, False)}}
            )
        )
        (config / "labconfig" / "page_config.json").write_text(
            json.dumps({"disabledExtensions": dict.fromkeys(BARE_DISABLED_LABEXTENSIONS, True)})
        )
        self._start([], command=[sys.executable, "-m", "jupyterlab"], env=_lab_env(self.home))
        await self._check()
        return self

    async def _check(self) -> None:
        log = self.log()
        if "jupyterlab | extension was successfully loaded" not in log:
            raise RuntimeError(f"bare: jupyterlab not loaded:\n{log}")
        loaded = [name for name in BARE_DISABLED_SERVER if f"{name} | extension was" in log]
        if loaded:
            raise RuntimeError(f"bare: {loaded} loaded:\n{log}")
        http = self.session.http
        response = await http.put(
            "/api/collaboration/session/x.ipynb", json={"format": "json", "type": "notebook"}
        )
        if response.status_code != 404:
            raise RuntimeError(f"bare: api/collaboration answers {response.status_code}")
        page = (await http.get("/lab")).text
        start = page.index(">", page.index('id="jupyter-config-data"')) + 1
        config = json.loads(page[start : page.index("</script>", start)])
        disabled = set(config["disabledExtensions"])
        missing = set(BARE_DISABLED_LABEXTENSIONS) - disabled
        if missing:
            raise RuntimeError(f"bare: the page does not disable {sorted(missing)}")
        if "@jupyterlab/filebrowser-extension:defaultFileBrowser" in disabled:
            raise RuntimeError("bare: the page has no file browser")
        self.page_disabled = sorted(disabled)
        self.page_enabled = sorted(
            ext["name"] for ext in config["federated_extensions"] if ext["name"] not in disabled
        )


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
        #: Websockets opened to ``api/collaboration`` at any time, counting or not.
        self.collaboration_sockets = 0

    def watch(self, page: Any) -> None:
        page.on("websocket", self._socket)
        page.on("request", self._request)

    def _socket(self, ws: Any) -> None:
        self.sockets += self.counting
        if "/api/collaboration/" in ws.url:
            self.collaboration_sockets += 1
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
    #: Collaboration websockets the tabs opened, start-up included (bare: must be 0).
    collaboration_sockets: int = 0


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
    side.collaboration_sockets += traffic.collaboration_sockets
    if isinstance(server, BareLabServer) and traffic.collaboration_sockets:
        raise RuntimeError("bare: the tabs opened a collaboration websocket")
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
        bare = Side("bare", await stack.enter_async_context(BareLabServer()))
        sides = [ours, stock, bare]
        p = await stack.enter_async_context(async_playwright())
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        await asyncio.sleep(settle)  # start-up done
        for i in range(options.repeat):
            # Taking turns: no side always follows the same other's tabs.
            shift = i % len(sides)
            for side in sides[shift:] + sides[:shift]:
                await _round(browser, side, seconds, settle)
        await browser.close()
    return _table(options, seconds, settle, ours, stock, bare)


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


def _table(
    options: Options, seconds: float, settle: float, ours: Side, stock: Side, bare: Side
) -> Table:
    sides = (ours, stock, bare)
    table = Table(
        f"IDLE TABS: server CPU over {seconds:.0f} s, no page open, then {TABS} idle "
        f"JupyterLab tabs (headless Chromium, a notebook each), ours, stock "
        f"jupyter-collaboration and bare JupyterLab (no collaboration); medians of "
        f"{options.repeat} rounds, every side in each round",
        ["side", "server CPU (% of a core)", "each round", "websockets opened while idle",
         f"< {TARGET * 100:.0f}%"],
    )  # fmt: skip
    for side in sides:
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
        # What the collaboration adds to the floor, in points of a core.
        added = [a - b for a, b in zip(side.tabs, bare.tabs, strict=True)]
        table.rows.append(
            [f"{side.name} - bare, {TABS} idle tabs (points)",
             f"{(median(side.tabs) - median(bare.tabs)) * 100:+.2f}",
             " ".join(f"{x * 100:+.2f}" for x in added), "-", "-"]
        )  # fmt: skip
    for side in sides:
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
        "side - bare: what each collaboration server adds to bare JupyterLab with the same "
        "tabs, in points of a core: of the medians, each round's (same round) in its column; "
        f"to stay under {TARGET * 100:.0f}%, a collaboration server may add at most "
        f"{(TARGET - median(bare.tabs)) * 100:.2f} points to bare JupyterLab's median",
        "what the tabs sent or got while idle, per second of all tabs (mean of the rounds): "
        + "; ".join(_traffic(side, seconds, options.repeat) for side in sides)
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
        "extensions besides (jupyterlab-chat, ipywidgets). All: the same lab settings "
        "(news and update checks off), notebooks and workspace URLs.",
        f"bare: the project's venv without the server extensions {', '.join(BARE_DISABLED_SERVER)}"
        f" (checked in its log; api/collaboration answers 404) and with "
        f"{', '.join(BARE_DISABLED_LABEXTENSIONS)} disabled in its page config (checked in "
        f"the /lab page); frontends left: {', '.join(_bare_enabled(bare))}; its tabs opened "
        f"{bare.collaboration_sockets} api/collaboration websockets (checked: none).",
        "server CPU: utime + stime of /proc/<pid>/stat (all its threads, ended ones "
        "included; 10 ms ticks, within 0.07 points over 30 s) over the window's wall time; "
        "kernels, browsers and the other servers are other processes.",
        f"each round waits {settle:.0f} s after the last tab showed an idle kernel before "
        "measuring, and closes the tabs and kernels after; rooms are closed "
        f"{CLEANUP_DELAY} s after their last client (ours: room_cleanup_delay, stock: "
        "document_cleanup_delay), before the next baseline.",
    ]
    return table


def _bare_enabled(bare: Side) -> list[str]:
    server = bare.server
    return server.page_enabled if isinstance(server, BareLabServer) else []


if __name__ == "__main__":
    from .run import main

    main([*sys.argv[1:], "idle_tabs"])
