"""Trusted output in stock JupyterLab: HTML that a cell run by the server produced keeps
its styles in the page that ran it, in a reloaded page and in another browser, as when
JupyterLab runs it (the page that ran it through our labextension, which makes a built
cell follow its metadata.trusted)."""

from __future__ import annotations

import asyncio

from playwright.async_api import Page

from ..conftest import Server, write_notebook
from .conftest import Pages, cell, run_cell, wait_kernel_idle

STYLED = (
    "from IPython.display import HTML\n"
    "HTML('<style>.ydoc-trust-probe {color: rgb(255, 0, 0)}</style>"
    '<b class="ydoc-trust-probe">styled</b>\')'
)


#: Whether the page's model of the first cell is trusted (through window.jupyterapp,
#: which the lab fixture exposes).
TRUSTED_CELL_0 = """() => {
    const panel = window.jupyterapp.shell.currentWidget;
    return panel.content.widgets[0].model.trusted;
}"""


async def probe_color(page: Page) -> str:
    probe = cell(page, 0).locator(".ydoc-trust-probe")
    await probe.wait_for(timeout=30_000)
    color: str = await probe.evaluate("e => getComputedStyle(e).color")
    return color


async def test_html_run_by_the_server_is_trusted_where_it_ran_after_reload_and_elsewhere(
    lab: Server, pages: Pages
):
    path, _ = write_notebook(lab.root, "trusted.ipynb", [STYLED])
    page = await pages.open_notebook(path)
    watching = await pages.open_notebook(path)  # open before the run, in another browser
    assert not await page.evaluate(TRUSTED_CELL_0)  # an unsigned file: built untrusted
    await run_cell(page, 0)
    await page.wait_for_function(
        "() => document.querySelector('.jp-Cell .jp-InputPrompt').innerText.trim() === '[1]:'"
    )
    # The tab that ran it, and one that watched, without a reload.
    assert await probe_color(page) == "rgb(255, 0, 0)"
    assert await probe_color(watching) == "rgb(255, 0, 0)"
    assert await page.evaluate(TRUSTED_CELL_0)
    await page.reload()
    await page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=60_000)
    await wait_kernel_idle(page)
    # Untrusted HTML loses its <style>: the colour is the page's own.
    assert await probe_color(page) == "rgb(255, 0, 0)"
    other = await pages.open_notebook(path)  # another browser
    assert await probe_color(other) == "rgb(255, 0, 0)"


STYLER = (
    "import pandas as pd\n"
    "pd.DataFrame({'a': [1, 3, 2]}).style.highlight_max(color='rgb(255, 255, 0)')"
)


async def test_a_pandas_styler_keeps_its_highlight_where_it_ran_and_after_reload(
    lab: Server, pages: Pages
):
    path, _ = write_notebook(lab.root, "styler.ipynb", [STYLER])
    page = await pages.open_notebook(path)
    await run_cell(page, 0)

    async def backgrounds(page: Page) -> list[str]:
        cells = cell(page, 0).locator(".jp-RenderedHTMLCommon table tbody td")
        await cells.first.wait_for(timeout=60_000)
        colours: list[str] = await cells.evaluate_all(
            "tds => tds.map(td => getComputedStyle(td).backgroundColor)"
        )
        return colours

    # Only the highest value (3, the second row) is highlighted, by the Styler's <style>.
    yellow = "rgb(255, 255, 0)"
    for _ in range(100):
        found = await backgrounds(page)
        if yellow in found:
            break
        await asyncio.sleep(0.1)
    assert found[1] == yellow and found.count(yellow) == 1, found
    await page.reload()
    await page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=60_000)
    found = await backgrounds(page)
    assert found[1] == yellow and found.count(yellow) == 1, found
