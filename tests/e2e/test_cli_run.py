"""A run started from the terminal, watched in JupyterLab: ``jupyter ydoc-outputs run
--detach``, then the notebook opened in a browser mid-run shows the running cell ``[*]``,
the queued one ``[*]`` too, and the output arriving live."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import httpx

from ..conftest import TOKEN, Server, write_notebook
from .conftest import Pages, output_text, prompt, wait_kernel_idle
from .test_browser import lines, wait_for_lines

JUPYTER = str(Path(sys.executable).with_name("jupyter"))

#: 20 s: long enough for a page to open mid-run on a loaded machine.
LINES = 80
SLOW = (
    f"import time\nfor i in range({LINES}):\n    print(f'line {{i}}', flush=True)\n"
    "    time.sleep(0.25)"
)


async def test_a_run_started_from_the_cli_shows_live_in_a_page_opened_mid_run(
    lab: Server, pages: Pages
):
    path, _ = write_notebook(lab.root, "cli-detach.ipynb", [SLOW, "print('queued cell ran')"])
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(lab.log_path.parent / "runtime")}
    proc = await asyncio.create_subprocess_exec(
        JUPYTER, "ydoc-outputs", "run", "--detach", str(lab.root / path),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    assert out.decode().startswith("queued 2 cells of cli-detach.ipynb"), out
    try:
        page = await pages.open_notebook(path, wait_idle=False)
        joined_with = len(await wait_for_lines(page, 0, 1))
        assert joined_with < LINES - 8  # opened mid-run
        assert await prompt(page, 0) == "[*]:"
        assert await prompt(page, 1) == "[*]:"  # queued behind it
        await wait_for_lines(page, 0, joined_with + 4)  # live
        await pages.screenshots("cli-run-detach-mid-run")
        everything = [f"line {i}" for i in range(LINES)]
        assert await wait_for_lines(page, 0, LINES, timeout=60) == everything
        await page.wait_for_function(
            "() => [...document.querySelectorAll('.jp-Cell .jp-InputPrompt')]"
            ".map(e => e.innerText.trim()).join(',') === '[1]:,[2]:'",
            timeout=30_000,
        )
        assert await output_text(page, 1) == "queued cell ran"
        assert lines(await output_text(page, 0)) == everything
        await wait_kernel_idle(page)
        # The server saved the run (autosave): the page does not show the tab as unsaved.
        await page.wait_for_selector(
            ".lm-TabBar-tab.jp-mod-current:not(.jp-mod-dirty)", timeout=10_000
        )
        await pages.screenshots("cli-run-detach-done")
    finally:
        async with httpx.AsyncClient(headers={"Authorization": f"token {TOKEN}"}) as http:
            for s in (await http.get(f"{lab.url}/api/sessions")).json():
                if s["path"] == path:
                    await http.delete(f"{lab.url}/api/sessions/{s['id']}")
