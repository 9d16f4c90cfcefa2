"""Fixtures for browser tests: ``jupyter lab`` with the extension, headless Chromium.

Chromium comes from Debian's package (``/usr/bin/chromium``, or ``YDOC_E2E_CHROMIUM``),
driven by Python Playwright; no browser is downloaded. Without it the tests that need a
browser are skipped, and the run ends with a warning that says so, unless
``YDOC_OUTPUTS_REQUIRE_BROWSER=1`` (CI, ``.ci/run``): then a missing browser stops the run
before any test. ``YDOC_E2E_JUPYTER`` may name another ``jupyter`` executable (e.g. a venv
with stock jupyter-collaboration) for a control run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from ..conftest import TOKEN, Server

CHROMIUM = os.environ.get("YDOC_E2E_CHROMIUM", "/usr/bin/chromium")
#: The browser's executable, if there is one (a path, or a name found on PATH).
CHROMIUM_FOUND = shutil.which(CHROMIUM)
REQUIRE_BROWSER = os.environ.get("YDOC_OUTPUTS_REQUIRE_BROWSER", "") not in ("", "0")
MISSING_BROWSER = (
    f"no Chromium at {CHROMIUM} (install Debian's chromium package, or set "
    "YDOC_E2E_CHROMIUM to a Chromium executable)"
)
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
RESULTS = Path(__file__).resolve().parents[2] / "test-results"

#: Records, in the page, each kernel message JupyterLab's kernel connection handles: its
#: header's session, and whether it was dropped ("Canceling handling of old message":
#: the connection takes each arriving message's session as the kernel's and drops a
#: message still queued whose session no longer matches). Every connection of the page
#: shares the prototype patched here.
WATCH_DROPS = """() => {
  if (window.__ydocHandled) return true;
  const kernel = window.jupyterapp?.shell.currentWidget?.sessionContext?.session?.kernel;
  if (!kernel) return false;
  const proto = Object.getPrototypeOf(kernel);
  const handle = proto._handleMessage;
  if (typeof handle !== 'function') return false;
  const handled = window.__ydocHandled = [];
  proto._handleMessage = async function (msg) {
    const entry = [msg.header.session, msg.header.msg_type, false];
    handled.push(entry);
    try {
      return await handle.call(this, msg);
    } catch (e) {
      if (String(e?.message).startsWith('Canceling handling of old message')) entry[2] = true;
      throw e;
    }
  };
  return true;
}"""

#: Console messages of stock JupyterLab that are not errors of ours.
BENIGN_CONSOLE = [
    re.compile(r"Failed to load resource: the server responded with a status of 404.*favicon"),
    # With ipywidgets installed, each page's widget manager opens a jupyter.widget.control
    # comm when it connects to the kernel, which the kernel closes on iopub: every other
    # page of that kernel then logs this for a comm it never had (@jupyterlab/services'
    # _handleCommClose). Stock JupyterLab does the same with two pages on one kernel.
    re.compile(r"^Comm not found for comm id [0-9a-f-]+$"),
]


def _needs_browser(item: pytest.Item) -> bool:
    return "browser" in getattr(item, "fixturenames", ())


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if CHROMIUM_FOUND or REQUIRE_BROWSER:
        return
    skip = pytest.mark.skip(reason=f"browser test not run: {MISSING_BROWSER}")
    for item in items:
        if _needs_browser(item):
            item.add_marker(skip)


def pytest_collection_finish(session: pytest.Session) -> None:
    if CHROMIUM_FOUND or not REQUIRE_BROWSER:
        return
    needed = sum(map(_needs_browser, session.items))
    if needed:
        pytest.exit(
            f"YDOC_OUTPUTS_REQUIRE_BROWSER is set and {needed} selected tests need a browser, "
            f"but there is {MISSING_BROWSER}",
            returncode=pytest.ExitCode.USAGE_ERROR,
        )


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if CHROMIUM_FOUND:
        return
    skipped = [
        r
        for r in terminalreporter.stats.get("skipped", [])
        if "browser test not run" in str(r.longrepr)
    ]
    if skipped:
        terminalreporter.section("BROWSER TESTS NOT RUN", sep="!", red=True, bold=True)
        terminalreporter.write_line(
            f"{len(skipped)} browser tests were skipped: {MISSING_BROWSER}. "
            "This run does not cover the stock JupyterLab frontend; CI runs them "
            "(YDOC_OUTPUTS_REQUIRE_BROWSER=1).",
            red=True, bold=True,
        )  # fmt: skip


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


#: The lab server's cell_output_chars.
OUTPUT_LIMIT = 200_000


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("lab-notebooks")
    home = tmp_path_factory.mktemp("lab-home")
    settings = home / "lab-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False})
    )
    jupyter = os.environ.get("YDOC_E2E_JUPYTER")
    server = Server(
        root,
        home,
        [
            # window.jupyterapp, to read what a page's document context knows.
            "--LabApp.expose_app_in_browser=True",
            "--YdocOutputsApp.room_cleanup_delay=2.0",
            "--YdocOutputsApp.autosave_delay=0.5",
            # Small enough for test_a_runaway_cell_renders_head_marker_and_tail.
            f"--YdocOutputsApp.cell_output_chars={OUTPUT_LIMIT}",
            "--YdocOutputsApp.stream_segment_chars=10000",
        ]
        if not jupyter
        else [],
        command=[jupyter, "lab"] if jupyter else [sys.executable, "-m", "jupyterlab"],
        env={
            "JUPYTERLAB_SETTINGS_DIR": str(home / "lab-settings"),
            "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
        },
    )
    yield server
    server.stop()


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM_FOUND, args=CHROMIUM_ARGS)
        yield b
        await b.close()


class Pages:
    """Opens pages in fresh browser contexts; records console errors and dialogs."""

    def __init__(self, browser: Browser, lab: Server) -> None:
        self.browser = browser
        self.lab = lab
        self.contexts: list[BrowserContext] = []
        self.pages: list[Page] = []
        self.errors: list[str] = []

    async def new_page(self, context: BrowserContext | None = None) -> Page:
        if context is None:
            context = await self.browser.new_context(viewport={"width": 1280, "height": 900})
            self.contexts.append(context)
        page = await context.new_page()
        # On every load of the page (a reload too), as soon as the notebook has a kernel.
        poll = f"const w = setInterval(() => {{ if (({WATCH_DROPS})()) clearInterval(w); }}, 20);"
        await page.add_init_script(poll)
        page.on("console", lambda m: self._console(m.type, m.text))
        page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))
        self.pages.append(page)
        return page

    def _console(self, kind: str, text: str) -> None:
        if kind == "error" and not any(p.search(text) for p in BENIGN_CONSOLE):
            self.errors.append(f"console: {text}")

    async def open_notebook(
        self, path: str, page: Page | None = None, *, wait_idle: bool = True
    ) -> Page:
        page = page or await self.new_page()
        # A workspace of its own, so that no other notebook is restored beside this one.
        workspace = uuid.uuid4().hex
        await page.goto(f"{self.lab.url}/lab/workspaces/{workspace}/tree/{path}?token={TOKEN}")
        await page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=60_000)
        if wait_idle:
            await wait_kernel_idle(page)
        return page

    async def dropped(self) -> list[str]:
        """Kernel messages a page dropped although their kernel went on: a message of
        the same session was handled after them. (A restart drops what the old kernel
        still had queued, as in stock JupyterLab; that kernel sends nothing after.)"""
        found = []
        for page in self.pages:
            if page.is_closed():
                continue
            handled = await page.evaluate("() => window.__ydocHandled || []")
            for i, (session, msg_type, dropped) in enumerate(handled):
                if dropped and any(s == session and not d for s, _, d in handled[i + 1 :]):
                    found.append(f"{msg_type} of session {session}")
        return found

    async def screenshots(self, name: str) -> None:
        RESULTS.mkdir(exist_ok=True)
        for i, page in enumerate(self.pages):
            if not page.is_closed():
                await page.screenshot(path=str(RESULTS / f"{name}-{i}.png"), full_page=True)

    async def dialogs(self) -> list[str]:
        found = []
        for page in self.pages:
            if not page.is_closed():
                for dialog in await page.locator(".jp-Dialog").all():
                    found.append(await dialog.inner_text())
        return found


@pytest.fixture
async def pages(
    request: pytest.FixtureRequest, browser: Browser, lab: Server
) -> AsyncIterator[Pages]:
    p = Pages(browser, lab)
    yield p
    report = getattr(request.node, "report_call", None)
    failed = report is None or report.failed
    try:
        dialogs = await p.dialogs()
        dropped = await p.dropped()
        if failed or dialogs or p.errors or dropped:
            await p.screenshots(re.sub(r"[^\w.-]", "_", request.node.name))
    finally:
        for context in p.contexts:
            await context.close()
    assert not dialogs, f"error dialogs were shown: {dialogs}"
    assert not dropped, f"the page dropped kernel messages: {dropped}"
    assert not p.errors, f"browser errors: {p.errors}"


async def wait_kernel_idle(page: Page, timeout: float = 60_000) -> None:
    await page.wait_for_selector(
        ".jp-NotebookPanel:visible .jp-Notebook-ExecutionIndicator[data-status='idle']",
        timeout=timeout,
    )


def cell(page: Page, index: int) -> Any:
    return page.locator(".jp-NotebookPanel:visible .jp-Notebook .jp-Cell").nth(index)


async def run_cell(page: Page, index: int) -> None:
    """Select a cell and run it in place (Ctrl+Enter), like a user."""
    await cell(page, index).locator(".jp-InputPrompt").click()
    await page.keyboard.press("Escape")
    await page.keyboard.press("Control+Enter")


async def output_text(page: Page, index: int) -> str:
    area = cell(page, index).locator(".jp-OutputArea")
    if await area.count() == 0:
        return ""
    text: str = await area.inner_text()
    return text.strip()


async def prompt(page: Page, index: int) -> str:
    text: str = await cell(page, index).locator(".jp-InputPrompt").inner_text()
    return text.strip()
