"""Stock JupyterLab 4 in headless Chromium against the extension and its prebuilt page plugin."""

from __future__ import annotations

import asyncio

import httpx

from ..conftest import TOKEN, Server, write_notebook
from .conftest import OUTPUT_LIMIT, Pages, cell, output_text, prompt, run_cell, wait_kernel_idle

TEN_SECONDS = (
    "import time\nfor i in range(50):\n    print(f'line {i}', flush=True)\n    time.sleep(0.2)"
)
ALL_LINES = [f"line {i}" for i in range(50)]


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("line ")]


async def wait_for_lines(page, index: int, count: int, timeout: float = 30) -> list[str]:
    """Wait until the rendered output of a cell shows at least ``count`` lines."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        seen = lines(await output_text(page, index))
        if len(seen) >= count:
            return seen
        assert asyncio.get_running_loop().time() < deadline, f"only {len(seen)} lines: {seen}"
        await asyncio.sleep(0.1)


async def kernels_idle(lab: Server, timeout: float = 60) -> None:
    async with httpx.AsyncClient(headers={"Authorization": f"token {TOKEN}"}) as http:
        for _ in range(int(timeout * 5)):
            kernels = (await http.get(f"{lab.url}/api/kernels")).json()
            if all(k["execution_state"] == "idle" for k in kernels):
                return
            await asyncio.sleep(0.2)
    raise AssertionError("kernels never became idle")


async def test_reload_mid_run_keeps_the_live_output(lab: Server, pages: Pages):
    path, _ = write_notebook(lab.root, "reload.ipynb", [TEN_SECONDS])
    page = await pages.open_notebook(path)
    await run_cell(page, 0)
    await wait_for_lines(page, 0, 1)
    await asyncio.sleep(2)
    await page.reload()
    await page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=60_000)
    # Lines keep arriving on the reloaded page without anyone clicking anything.
    before = len(await wait_for_lines(page, 0, 1))
    assert before < 50
    await wait_for_lines(page, 0, before + 3)
    assert await prompt(page, 0) == "[*]:"
    assert await wait_for_lines(page, 0, 50) == ALL_LINES
    await wait_kernel_idle(page)
    await page.wait_for_function(
        "() => document.querySelector('.jp-Cell .jp-InputPrompt').innerText.trim() === '[1]:'"
    )
    assert lines(await output_text(page, 0)) == ALL_LINES


async def test_a_second_browser_joins_mid_run(lab: Server, pages: Pages):
    path, _ = write_notebook(lab.root, "second.ipynb", [TEN_SECONDS])
    first = await pages.open_notebook(path)
    await run_cell(first, 0)
    await wait_for_lines(first, 0, 5)
    second = await pages.open_notebook(path, wait_idle=False)  # a separate browser context
    joined_with = len(await wait_for_lines(second, 0, 1))
    assert joined_with < 50
    await wait_for_lines(second, 0, joined_with + 3)  # live in the second page too
    assert await wait_for_lines(first, 0, 50) == ALL_LINES
    assert await wait_for_lines(second, 0, 50) == ALL_LINES
    await wait_kernel_idle(first)
    await wait_kernel_idle(second)
    assert await output_text(first, 0) == await output_text(second, 0)
    assert await prompt(first, 0) == await prompt(second, 0) == "[1]:"


async def test_everything_is_there_after_closing_every_page(lab: Server, pages: Pages):
    path, _ = write_notebook(lab.root, "closed.ipynb", [TEN_SECONDS])
    page = await pages.open_notebook(path)
    await run_cell(page, 0)
    await wait_for_lines(page, 0, 3)
    for context in pages.contexts:
        for p in context.pages:
            await p.close()
    await kernels_idle(lab)
    page = await pages.open_notebook(path)
    assert lines(await output_text(page, 0)) == ALL_LINES
    assert await prompt(page, 0) == "[1]:"


async def test_run_all_runs_cells_in_order(lab: Server, pages: Pages):
    path, _ = write_notebook(
        lab.root,
        "runall.ipynb",
        ["import time\ntime.sleep(0.5)\nx = ['first']\nprint(x)", "x.append('second')\nprint(x)",
         "x.append('third')\nprint(x)"],
    )  # fmt: skip
    page = await pages.open_notebook(path)
    await menu(page, "Run", "runmenu:run-all")
    await page.wait_for_function(
        "() => [...document.querySelectorAll('.jp-Cell .jp-InputPrompt')]"
        ".map(e => e.innerText.trim()).join(',') === '[1]:,[2]:,[3]:'",
        timeout=60_000,
    )
    assert [await output_text(page, i) for i in range(3)] == [
        "['first']", "['first', 'second']", "['first', 'second', 'third']",
    ]  # fmt: skip


async def test_run_all_of_a_40_cell_chain_runs_in_order_five_times(lab: Server, pages: Pages):
    """Every cell needs the one before it: a cell run out of order fails (NameError or
    AssertionError). Run All from the menu, five times in a row, on one page."""
    sources = ["import time\ntime.sleep(0.5)\nran = [0]"] + [
        f"assert ran[-1] == {i - 1}, ran\nran.append({i})" for i in range(1, 40)
    ]
    path, ids = write_notebook(lab.root, "chain40.ipynb", sources)
    page = await pages.open_notebook(path)
    async with httpx.AsyncClient(
        base_url=lab.url, headers={"Authorization": f"token {TOKEN}"}
    ) as http:
        last = 0
        for repetition in range(5):
            await menu(page, "Run", "runmenu:run-all")
            for _ in range(600):
                cells = (await http.get(f"/api/ydoc-outputs/export/{path}")).json()["cells"]
                counts = [c["execution_count"] for c in cells]
                if all(isinstance(n, int) and n > last for n in counts):
                    break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError(f"run {repetition} did not finish: {counts}")
            assert counts == list(range(last + 1, last + 41)), (repetition, counts)
            errors = [o for c in cells for o in c["outputs"] if o["output_type"] == "error"]
            assert errors == [], (repetition, errors)
            assert [c["id"] for c in cells] == ids
            last = counts[-1]
    await wait_kernel_idle(page)


async def test_interrupt_and_restart_from_the_ui(lab: Server, pages: Pages):
    path, _ = write_notebook(
        lab.root,
        "interrupt.ipynb",
        ["import time\nprint('sleeping', flush=True)\ntime.sleep(60)", "40 + 2"],
    )
    page = await pages.open_notebook(path)
    await run_cell(page, 0)
    await wait_for_lines_text(page, 0, "sleeping")
    await menu(page, "Kernel", "kernelmenu:interrupt")
    await wait_for_lines_text(page, 0, "KeyboardInterrupt")
    await page.wait_for_function(
        "() => document.querySelector('.jp-Cell .jp-InputPrompt').innerText.trim() === '[1]:'"
    )
    await wait_kernel_idle(page)
    # Restart from the menu; its confirmation dialog is expected.
    await menu(page, "Kernel", "kernelmenu:restart")
    await page.locator(".jp-Dialog .jp-Dialog-button.jp-mod-accept").click()
    await page.wait_for_selector(".jp-Dialog", state="detached")
    await wait_kernel_idle(page)
    await run_cell(page, 1)
    await wait_for_lines_text(page, 1, "42")
    await page.wait_for_function(
        "() => document.querySelectorAll('.jp-Cell .jp-InputPrompt')[1].innerText.trim() === '[1]:'"
    )


async def menu(page, title: str, command: str) -> None:
    """Choose a command from the menu bar, as a user does."""
    await page.locator(".lm-MenuBar-item", has_text=title).first.click()
    await page.locator(f".lm-Menu-item[data-command='{command}']").click()


async def wait_for_lines_text(page, index: int, text: str, timeout: float = 30) -> None:
    await (
        cell(page, index)
        .locator(".jp-OutputArea")
        .get_by_text(text)
        .first.wait_for(timeout=timeout * 1000)
    )


async def page_knows_saved_file(lab: Server, page, path: str, text: str) -> None:
    """Wait until ``text`` is saved in ``path`` and ``page``'s context has its hash."""
    async with httpx.AsyncClient(headers={"Authorization": f"token {TOKEN}"}) as http:
        for _ in range(100):
            if text in (lab.root / path).read_text():
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError(f"{text!r} was never saved")
        reply = await http.get(f"{lab.url}/api/contents/{path}?content=0&hash=1")
    saved_hash = reply.json()["hash"]
    await page.wait_for_function(
        "h => window.jupyterapp.shell.currentWidget.context.contentsModel.hash === h",
        arg=saved_hash,
    )


async def test_collaborative_editing_and_save(lab: Server, pages: Pages):
    path, _ = write_notebook(lab.root, "collab.ipynb", ["print('hello')", "1"])
    a = await pages.open_notebook(path)
    b = await pages.open_notebook(path)
    await run_cell(a, 0)
    await wait_for_lines_text(b, 0, "hello")
    # Typing in one page appears in the other.
    await cell(a, 1).locator(".cm-content").click()
    await a.keyboard.press("End")
    await a.keyboard.type(" + 41")
    await cell(b, 1).locator(".cm-content").get_by_text("1 + 41").wait_for()
    # JupyterLab checks the file's hash against the one its page knows before it saves.
    # Our autosave tells pages each new hash through the document, but a Ctrl+S in the
    # moment between the write and the page hearing of it shows "File Changed" (as with
    # jupyter-collaboration: its issue 312). So Ctrl+S once page a knows the autosave.
    await page_knows_saved_file(lab, a, path, "1 + 41")
    # Ctrl+S duplicates neither outputs nor cells.
    await a.keyboard.press("Control+s")
    await asyncio.sleep(1.5)
    for page in (a, b):
        assert await page.locator(".jp-NotebookPanel .jp-Cell").count() == 2
        assert await output_text(page, 0) == "hello"
    saved = (lab.root / path).read_text()
    assert saved.count('"hello\\n"') == 1
    assert "1 + 41" in saved


async def test_text_files_open_and_save(lab: Server, pages: Pages):
    (lab.root / "script.py").write_text("print('hi')\n")
    page = await pages.new_page()
    await page.goto(f"{lab.url}/lab/tree/script.py?reset&token={TOKEN}")
    editor = page.locator(".jp-FileEditor .cm-content")
    await editor.get_by_text("print('hi')").wait_for(timeout=60_000)
    await editor.click()
    await page.keyboard.press("Control+End")
    await page.keyboard.type("# typed")
    await page.keyboard.press("Control+s")
    for _ in range(50):
        if "# typed" in (lab.root / "script.py").read_text():
            break
        await asyncio.sleep(0.1)
    assert (lab.root / "script.py").read_text() == "print('hi')\n# typed"
    await asyncio.sleep(6)  # past the frontend's 5 s "taking some time to load" dialog


async def test_a_runaway_cell_renders_head_marker_and_tail(lab: Server, pages: Pages):
    """Past cell_output_chars the browser shows the head, the marker and a tail that
    keeps moving: the server's deletions of old tail outputs render like its appends."""
    count = 40_000  # 12 characters a line: more than twice the limit
    code = (
        "import time\n"
        f"for i in range({count}):\n"
        "    print(f'line {i:06d}')\n"
        "    if i % 2000 == 0:\n"
        "        time.sleep(0.2)"
    )
    path, _ = write_notebook(lab.root, "runaway.ipynb", [code])
    page = await pages.open_notebook(path)
    await run_cell(page, 0)
    await page.get_by_text("[ydoc-outputs] This cell printed more than").wait_for(timeout=60_000)
    await wait_kernel_idle(page)
    await page.wait_for_function(
        "() => document.querySelector('.jp-Cell .jp-InputPrompt').innerText.trim() === '[1]:'"
    )
    text = await output_text(page, 0)
    children = cell(page, 0).locator(".jp-OutputArea-child")
    shown = [await children.nth(i).inner_text() for i in range(await children.count())]
    print([(len(t), t[:30], t[-30:]) for t in shown])
    async with httpx.AsyncClient(headers={"Authorization": f"token {TOKEN}"}) as http:
        nb = (await http.get(f"{lab.url}/api/ydoc-outputs/export/{path}")).json()
    print(
        "DOC",
        [(o["output_type"], "".join(o.get("text", ""))[:25]) for o in nb["cells"][0]["outputs"]][
            :6
        ],
    )
    head, marker, tail = text.partition("[ydoc-outputs] This cell printed more than")
    assert marker, text[:300]
    head_lines, tail_lines = lines(head), lines(tail)
    # The head is the start, the tail the end, each one run of consecutive lines.
    assert head_lines == [f"line {i:06d}" for i in range(len(head_lines))]
    first = count - len(tail_lines)
    assert tail_lines == [f"line {i:06d}" for i in range(first, count)]
    assert len(head) + len(tail) <= OUTPUT_LIMIT + 10_000 + 1_000
    # The marker's link serves the whole output.
    async with httpx.AsyncClient(headers={"Authorization": f"token {TOKEN}"}) as http:
        link = await cell(page, 0).locator("a", has_text="whole output").get_attribute("href")
        assert link is not None
        whole = await http.get(f"{lab.url}{link}")
    assert whole.status_code == 200, whole.text
    assert whole.text.splitlines() == [f"line {i:06d}" for i in range(count)]
