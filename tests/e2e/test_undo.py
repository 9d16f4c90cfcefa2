"""Undo right after the server wrote a cell's output: the user's own last edit is undone,
the output the server wrote stays, in the page and in the document (the export)."""

from __future__ import annotations

import asyncio
from typing import Any

import nbformat
from playwright.async_api import Page

from ..conftest import Server, write_notebook
from .conftest import Pages, cell, output_text, run_cell, wait_kernel_idle

#: What the page's notebook model holds: each cell's source and outputs.
MODEL = (
    "() => window.jupyterapp.shell.currentWidget.content.model.sharedModel.cells"
    ".map(c => ({source: c.source, outputs: c.toJSON().outputs || []}))"
)


async def model(page: Page) -> list[dict[str, Any]]:
    cells: list[dict[str, Any]] = await page.evaluate(MODEL)
    return cells


async def exported(lab: Server, path: str, want: list[str], timeout: float = 15.0) -> Any:
    """The server's export once its cells' sources are ``want``."""
    nb: Any = None
    async with lab.http() as http:
        for _ in range(int(timeout / 0.1)):
            r = await http.get(f"/api/ydoc-outputs/export/{path}")
            assert r.status_code == 200, r.text
            nb = nbformat.reads(r.text, as_version=4)
            if [c.source for c in nb.cells] == want:
                return nb
            await asyncio.sleep(0.1)
    raise AssertionError(f"export never had {want}: {nb and [c.source for c in nb.cells]}")


async def wait_output(page: Page, index: int, text: str) -> None:
    for _ in range(300):
        if text in await output_text(page, index):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"cell {index} shows {await output_text(page, index)!r}")


def streams(nb_cell: Any) -> str:
    return "".join(o.get("text", "") for o in nb_cell.outputs if o["output_type"] == "stream")


async def test_ctrl_z_in_a_cell_undoes_the_users_edit_not_the_servers_output(
    lab: Server, pages: Pages
):
    path, _ = write_notebook(lab.root, "undo-editor.ipynb", ["x = 1", "print('out', 7)"])
    page = await pages.open_notebook(path)
    editor = cell(page, 0).locator(".cm-content")
    await editor.click()
    await page.keyboard.press("End")
    await page.keyboard.type(" + 41")
    await exported(lab, path, ["x = 1 + 41", "print('out', 7)"])
    await run_cell(page, 1)
    await wait_output(page, 1, "out 7")
    await wait_kernel_idle(page)

    await editor.click()
    await page.keyboard.press("Control+z")
    nb = await exported(lab, path, ["x = 1", "print('out', 7)"])
    assert streams(nb.cells[1]) == "out 7\n"
    assert await output_text(page, 1) == "out 7"
    cells = await model(page)
    assert [c["source"] for c in cells] == ["x = 1", "print('out', 7)"]
    assert [o.get("text") for o in cells[1]["outputs"]] == ["out 7\n"]


async def test_ctrl_z_in_the_cell_that_ran_undoes_its_edit_and_keeps_its_output(
    lab: Server, pages: Pages
):
    path, _ = write_notebook(lab.root, "undo-ran.ipynb", ["print('first')"])
    page = await pages.open_notebook(path)
    editor = cell(page, 0).locator(".cm-content")
    await editor.click()
    await page.keyboard.press("End")
    await page.keyboard.type("; print('edited')")
    await page.keyboard.press("Control+Enter")  # runs the edited source
    await wait_output(page, 0, "edited")
    await wait_kernel_idle(page)

    await editor.click()
    await page.keyboard.press("Control+z")
    nb = await exported(lab, path, ["print('first')"])
    # The output of the run stays, as it was written: the source is the user's to undo.
    assert streams(nb.cells[0]) == "first\nedited\n"
    assert nb.cells[0].execution_count == 1
    assert await output_text(page, 0) == "first\nedited"


async def test_z_in_command_mode_undoes_an_inserted_cell_and_keeps_the_output(
    lab: Server, pages: Pages
):
    path, _ = write_notebook(lab.root, "undo-notebook.ipynb", ["print('a')", "print('b')"])
    page = await pages.open_notebook(path)
    await cell(page, 1).locator(".jp-InputPrompt").click()
    await page.keyboard.press("Escape")
    await page.keyboard.press("b")  # a new cell below: a notebook-level edit
    await exported(lab, path, ["print('a')", "print('b')", ""])
    await run_cell(page, 0)
    await wait_output(page, 0, "a")
    await wait_kernel_idle(page)

    await page.keyboard.press("Escape")
    await page.keyboard.press("z")  # notebook:undo
    nb = await exported(lab, path, ["print('a')", "print('b')"])
    assert streams(nb.cells[0]) == "a\n"
    assert await page.locator(".jp-NotebookPanel:visible .jp-Cell").count() == 2
    assert await output_text(page, 0) == "a"
