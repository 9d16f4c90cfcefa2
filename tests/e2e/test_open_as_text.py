""" "Open With → Editor" on a notebook, in stock JupyterLab: the editor shows the
notebook's JSON, and the notebook is never emptied or corrupted by it."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from playwright.async_api import Page

from ..conftest import Server, write_notebook
from .conftest import Pages, cell, output_text, prompt, run_cell, wait_kernel_idle
from .test_browser import ALL_LINES, TEN_SECONDS, kernels_idle, lines, wait_for_lines

EDITOR_SOURCE = """() => {
  const widget = window.jupyterapp.shell.currentWidget;
  return widget && widget.hasClass('jp-FileEditor') || widget.content?.hasClass?.('jp-FileEditor')
    ? widget.content.model.sharedModel.getSource() : null;
}"""


async def open_in_editor(page: Page, path: str) -> None:
    """The command behind "Open With → Editor" in the file browser's context menu."""
    await page.evaluate(
        "path => window.jupyterapp.commands.execute('docmanager:open', {path, factory: 'Editor'})",
        path,
    )
    await page.wait_for_selector(".jp-FileEditor .cm-content", timeout=30_000)


async def editor_source(page: Page, timeout: float = 30) -> str:
    """The editor's text, once it holds the synced document (not the empty one before)."""
    handle = await page.wait_for_function(
        f"() => {{ const s = ({EDITOR_SOURCE})(); return s ? s : null; }}",
        timeout=timeout * 1000,
    )
    source: str = await handle.json_value()
    return source


async def close_editor(page: Page) -> None:
    await page.evaluate("() => window.jupyterapp.shell.currentWidget.close()")
    await page.wait_for_selector(".jp-FileEditor", state="detached", timeout=10_000)


def saved_outputs(lab: Server, path: str) -> list[Any]:
    notebook = json.loads((lab.root / path).read_text())
    return [c.get("outputs") for c in notebook["cells"]]


async def saved_with_output(lab: Server, path: str, text: str, timeout: float = 20) -> str:
    """The file, once its first cell has run: count 1, and its first output ``text``."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        on_disk = (lab.root / path).read_text()
        first = json.loads(on_disk)["cells"][0]
        outputs = first["outputs"]
        ran = first["execution_count"] == 1
        if ran and outputs and "".join(outputs[0].get("text", "")) == text:
            return on_disk
        assert asyncio.get_running_loop().time() < deadline, on_disk
        await asyncio.sleep(0.1)


async def test_open_with_editor_shows_the_json_and_keeps_the_notebook(lab: Server, pages: Pages):
    path, _ = write_notebook(lab.root, "as-text.ipynb", ["print('kept')", "40 + 2"])
    page = await pages.open_notebook(path)
    await run_cell(page, 0)
    await page.wait_for_function(
        "() => document.querySelector('.jp-Cell .jp-InputPrompt').innerText.trim() === '[1]:'"
    )
    # Autosaved: 0.5 s after the change, or later when the last save took long (the
    # next waits 19 times as long as the last took, store/autosave.py SAVE_SPACING).
    on_disk = await saved_with_output(lab, path, "kept\n")

    await open_in_editor(page, path)
    text = await editor_source(page)
    assert json.loads(text) == json.loads(on_disk)
    await asyncio.sleep(3)  # past an autosave and a file poll of both rooms
    assert (lab.root / path).read_text() == on_disk
    await close_editor(page)
    await asyncio.sleep(3)  # past room_cleanup_delay (2 s): the text room closed
    assert (lab.root / path).read_text() == on_disk

    # The notebook still opens, with its cells and outputs.
    await page.reload()
    await page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=60_000)
    await wait_kernel_idle(page)
    assert await output_text(page, 0) == "kept"
    assert await prompt(page, 0) == "[1]:"
    assert await cell(page, 1).locator(".jp-InputArea").inner_text() != ""


async def test_open_with_editor_while_a_cell_runs(lab: Server, pages: Pages):
    path, _ = write_notebook(lab.root, "as-text-running.ipynb", [TEN_SECONDS])
    page = await pages.open_notebook(path)
    await run_cell(page, 0)
    await wait_for_lines(page, 0, 3)
    await open_in_editor(page, path)
    assert json.loads(await editor_source(page))["nbformat"] == 4
    await kernels_idle(lab)
    await asyncio.sleep(2)  # the last output saved, and the text view reloaded it
    # The editor followed the notebook's saves: it shows every line.
    await page.wait_for_function(f"() => ({EDITOR_SOURCE})()?.includes('line 49')", timeout=10_000)
    await close_editor(page)
    await asyncio.sleep(3)
    [outputs] = saved_outputs(lab, path)
    assert lines("".join("".join(o["text"]) for o in outputs)) == ALL_LINES

    await page.reload()
    await page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=60_000)
    assert await wait_for_lines(page, 0, 50) == ALL_LINES
    assert await prompt(page, 0) == "[1]:"
