"""Widgets in stock JupyterLab with ipywidgets and tqdm, for cells the server runs: a
tqdm.notebook bar renders as a widget (not its text fallback) and advances in the tab that
runs it, in a tab reloaded mid-run and in a second browser that joins mid-run (their
kernel_info and comm_info requests go to the control channel, where the kernel answers
while the cell runs); the kernel indicator says Busy throughout; a reopened notebook shows the
finished bar, from the kernel or, once the kernel restarted, from the widget state saved
in the notebook."""

from __future__ import annotations

import asyncio
import re

import httpx
from playwright.async_api import Page

from ..conftest import TOKEN, Server, write_notebook
from .conftest import Pages, cell, output_text, prompt, run_cell, wait_kernel_idle
from .test_browser import kernels_idle

#: About 10 s, as a training loop would.
TQDM = (
    "from tqdm.notebook import tqdm\nimport time\nfor i in tqdm(range(60)):\n    time.sleep(0.17)"
)

#: Long enough (24 s) to reload a page and open another while it runs.
SLOW = TQDM.replace("0.17", "0.4")

#: The rendered bar: ipywidgets' progress view, and tqdm's right-hand label.
BAR = ".jp-OutputArea-output .widget-hprogress .progress-bar"
LABEL = ".jp-OutputArea-output .widget-hbox .widget-html-content"


async def bar(page: Page) -> tuple[float, str]:
    """How far the first cell's rendered bar is (percent) and what tqdm's label says."""
    widget = cell(page, 0)
    await widget.locator(BAR).wait_for(timeout=30_000)
    style = await widget.locator(BAR).get_attribute("style") or ""
    found = re.search(r"width:\s*([\d.]+)%", style)
    label = (await widget.locator(LABEL).last.inner_text()).strip()
    return (float(found.group(1)) if found else 0.0), label


async def advancing(page: Page) -> None:
    """The bar moves on by itself within a few seconds."""
    first, _ = await bar(page)
    for _ in range(60):
        await asyncio.sleep(0.1)
        now, _ = await bar(page)
        if now > first:
            return
    raise AssertionError(f"the bar stayed at {first}%")


async def finished(page: Page) -> str:
    for _ in range(300):
        width, label = await bar(page)
        if label.startswith("60/60"):
            assert width == 100.0
            return label
        await asyncio.sleep(0.1)
    raise AssertionError(f"the bar never finished: {await bar(page)}")


async def indicator(page: Page) -> str | None:
    """What the page's kernel indicator says: busy, idle, unknown..."""
    return await page.locator(
        ".jp-NotebookPanel:visible .jp-Notebook-ExecutionIndicator"
    ).get_attribute("data-status")


async def no_text_fallback(page: Page) -> None:
    text = await cell(page, 0).locator(".jp-OutputArea").inner_text()
    assert "it/s]" not in text or await cell(page, 0).locator(BAR).count() == 1
    assert await cell(page, 0).locator(".jp-RenderedText").count() == 0, text


async def test_a_tqdm_bar_is_live_and_the_kernel_busy_in_the_tab_that_runs_it(
    lab: Server, pages: Pages
):
    path, _ = write_notebook(lab.root, "tqdm-live.ipynb", [TQDM])
    page = await pages.open_notebook(path)
    await run_cell(page, 0)
    await cell(page, 0).locator(BAR).wait_for(timeout=30_000)
    # Sampled every 0.5 s while it runs: Busy, and the bar further along each second.
    statuses, widths = [], []
    while await prompt(page, 0) == "[*]:":
        statuses.append(await indicator(page))
        widths.append((await bar(page))[0])
        await asyncio.sleep(0.5)
    await pages.screenshots("tqdm-live")
    assert len(statuses) >= 10, statuses
    # The last sample may see the idle that ends the cell before its prompt changes.
    assert set(statuses[:-1]) == {"busy"}, statuses
    assert widths == sorted(widths) and widths[-1] > widths[0], widths
    assert len(set(widths)) >= 8, widths
    assert (await finished(page)).startswith("60/60")
    await no_text_fallback(page)


async def test_a_tqdm_bar_after_a_reload_mid_run_and_in_a_second_browser(lab: Server, pages: Pages):
    path, _ = write_notebook(lab.root, "tqdm-reload.ipynb", [SLOW])
    page = await pages.open_notebook(path)
    await run_cell(page, 0)
    await cell(page, 0).locator(BAR).wait_for(timeout=30_000)
    await asyncio.sleep(2)
    await page.reload()
    await page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=60_000)
    second = await pages.open_notebook(path, wait_idle=False)
    for p in (page, second):
        assert await prompt(p, 0) == "[*]:"
        await advancing(p)
        # They missed the kernel's busy for the cell, and are told of it on connecting.
        await p.wait_for_selector(
            ".jp-NotebookPanel:visible .jp-Notebook-ExecutionIndicator[data-status='busy']",
            timeout=5_000,
        )
    await pages.screenshots("tqdm-reload-mid-run")
    for p in (page, second):
        await finished(p)
        await no_text_fallback(p)


async def test_a_finished_bar_is_shown_after_reopening_and_after_a_kernel_restart(
    lab: Server, pages: Pages
):
    path, _ = write_notebook(lab.root, "tqdm-reopen.ipynb", [TQDM])
    page = await pages.open_notebook(path)
    await run_cell(page, 0)
    await cell(page, 0).locator(BAR).wait_for(timeout=30_000)
    for context in pages.contexts:
        for p in context.pages:
            await p.close()
    await kernels_idle(lab)
    # Reopened once the cell finished, from the kernel's models.
    page = await pages.open_notebook(path)
    assert (await finished(page)).startswith("60/60")
    # The kernel restarted: its models are gone; the state saved in the notebook shows.
    async with httpx.AsyncClient(headers={"Authorization": f"token {TOKEN}"}) as http:
        sessions = (await http.get(f"{lab.url}/api/sessions")).json()
        (kernel,) = [s["kernel"] for s in sessions if s["path"] == path]
        r = await http.post(f"{lab.url}/api/kernels/{kernel['id']}/restart")
        assert r.status_code == 200, r.text
    await page.reload()
    await page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=60_000)
    await wait_kernel_idle(page)
    assert (await finished(page)).startswith("60/60")
    await no_text_fallback(page)
    await pages.screenshots("tqdm-after-restart")


SLIDER = ["import ipywidgets as w\ns = w.IntSlider(value=3)\ns", "print('value', s.value)"]


async def test_a_slider_moved_in_a_reloaded_page_changes_the_kernels_value(
    lab: Server, pages: Pages
):
    path, _ = write_notebook(lab.root, "slider.ipynb", SLIDER)
    page = await pages.open_notebook(path)
    await run_cell(page, 0)
    await cell(page, 0).locator(".widget-slider .widget-readout").wait_for(timeout=30_000)
    await wait_kernel_idle(page)
    await page.reload()
    await page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=60_000)
    readout = cell(page, 0).locator(".widget-slider .widget-readout")
    await readout.wait_for(timeout=30_000)
    assert (await readout.inner_text()).strip() == "3"
    # Typed into the slider's readout, as a user sets an exact value.
    await readout.click()
    await page.keyboard.press("Control+A")
    await page.keyboard.type("42")
    await page.keyboard.press("Enter")
    await page.wait_for_function(
        "() => document.querySelector('.jp-Cell .widget-slider .widget-readout')"
        ".innerText.trim() === '42'"
    )
    await run_cell(page, 1)
    for _ in range(300):
        if "value 42" in await output_text(page, 1):
            break
        await asyncio.sleep(0.1)
    assert await output_text(page, 1) == "value 42"
    await pages.screenshots("slider-after-reload")


OUTPUT_WIDGET = (
    "import ipywidgets as w, time\nout = w.Output()\ndisplay(out)\n"
    "with out:\n    for i in range(3):\n        print('epoch', i)\n        time.sleep(1)\n"
    "print('after')"
)


async def cell_output(page: Page) -> str:
    """All the first cell shows as output, the Output widget's included."""
    text: str = await cell(page, 0).locator(".jp-Cell-outputArea").inner_text()
    return text


async def widget_text(page: Page, needle: str) -> str:
    widget = cell(page, 0).locator(".widget-output")
    text = ""
    for _ in range(300):
        if await widget.count():
            text = await widget.inner_text()
            if needle in text:
                return text
        await asyncio.sleep(0.1)
    raise AssertionError(f"{needle!r} never showed in the Output widget: {text!r}")


async def test_prints_inside_an_output_widget_show_inside_it_live_and_after_reload(
    lab: Server, pages: Pages
):
    path, _ = write_notebook(lab.root, "output-widget.ipynb", [OUTPUT_WIDGET])
    page = await pages.open_notebook(path)
    await run_cell(page, 0)
    # Live, while the block still runs.
    await widget_text(page, "epoch 0")
    assert await prompt(page, 0) == "[*]:"
    await widget_text(page, "epoch 2")
    await wait_kernel_idle(page)
    whole = await cell_output(page)
    assert whole.count("epoch 0") == 1 and "after" in whole, whole  # in the widget only
    await pages.screenshots("output-widget")
    await page.reload()
    await page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=60_000)
    text = await widget_text(page, "epoch 2")
    assert "epoch 0" in text and "after" not in text
    assert (await cell_output(page)).count("epoch 1") == 1


INTERACT = (
    "from ipywidgets import interact\n@interact(x=(0, 10))\ndef f(x=3):\n    print('x is', x)"
)


async def test_interact_output_is_in_its_widget_and_follows_the_slider(lab: Server, pages: Pages):
    path, _ = write_notebook(lab.root, "interact.ipynb", [INTERACT])
    page = await pages.open_notebook(path)
    await run_cell(page, 0)
    await widget_text(page, "x is 3")
    await wait_kernel_idle(page)
    assert (await cell_output(page)).count("x is 3") == 1  # not left in the cell as well
    readout = cell(page, 0).locator(".widget-slider .widget-readout")
    await readout.click()
    await page.keyboard.press("Control+A")
    await page.keyboard.type("7")
    await page.keyboard.press("Enter")
    text = await widget_text(page, "x is 7")
    assert "x is 3" not in text
    await page.reload()
    await page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=60_000)
    text = await widget_text(page, "x is 7")
    assert "x is 3" not in await cell_output(page)
    await pages.screenshots("interact")


async def test_the_kernel_is_busy_after_restart_kernel_and_run_all(lab: Server, pages: Pages):
    path, _ = write_notebook(
        lab.root,
        "restart-run-all.ipynb",
        [TQDM.replace("range(60)", "range(35)") + "\nprint('first')", "print('second')"],
    )
    page = await pages.open_notebook(path)
    # JupyterLab's debugger sends a burst of debug_requests (on control, which this
    # server passes through untouched) when a page connects; a restart within it cancels
    # one, and JupyterLab logs "Could not restore the debugger state". A user reads the
    # page first.
    await asyncio.sleep(3)
    # The command of Kernel > "Restart Kernel and Run All Cells…", then its dialog.
    await page.evaluate("() => { window.jupyterapp.commands.execute('notebook:restart-run-all'); }")
    await page.locator(".jp-Dialog .jp-Dialog-button.jp-mod-accept").click()
    await cell(page, 0).locator(BAR).wait_for(timeout=30_000)
    # Sampled every 0.5 s while cell 0 (a tqdm bar) runs: Busy (it said Unknown, then
    # Idle).
    statuses = []
    while await prompt(page, 0) == "[*]:":
        statuses.append(await indicator(page))
        await asyncio.sleep(0.5)
    assert len(statuses) >= 6, statuses
    assert set(statuses[:-1]) == {"busy"}, statuses
    await cell(page, 1).locator(".jp-OutputArea").get_by_text("second").wait_for(timeout=30_000)
    await wait_kernel_idle(page)
