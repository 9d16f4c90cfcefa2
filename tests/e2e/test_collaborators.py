"""The collaboration UI (jupyter-collaboration-ui) on our server: its collaborators panel,
fed by the ``JupyterLab:globalAwareness`` room, shows the other browser's user; an idle
tab opens no new collaboration websocket and none of them is closed."""

from __future__ import annotations

import asyncio
from typing import Any

from playwright.async_api import Page

from ..conftest import Server, write_notebook
from .conftest import Pages

#: Every websocket a page creates and how each closed, recorded in the page itself
#: (Playwright's websocket events do not carry close codes).
RECORD_SOCKETS = """
(() => {
  const Native = window.WebSocket;
  window.__sockets = [];
  window.WebSocket = class extends Native {
    constructor(url, protocols) {
      super(url, protocols);
      const entry = {url: String(url), code: null};
      window.__sockets.push(entry);
      this.addEventListener("close", (e) => { entry.code = e.code; });
    }
  };
})();
"""

ROOMS = "/api/collaboration/room/"
GLOBAL_AWARENESS = ROOMS + "JupyterLab:globalAwareness"
#: Seconds a tab is left alone.
IDLE = 20.0


async def sockets(page: Page) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = await page.evaluate("() => window.__sockets")
    return found


async def collaborators(page: Page) -> list[str]:
    """The names the collaborators panel lists (opened from the left sidebar)."""
    panel = page.locator("#jp-collaboration-panel")
    if not await panel.is_visible():
        await page.locator(".jp-SideBar.jp-mod-left .lm-TabBar-tab[title='Collaboration']").click()
    await panel.wait_for()
    names = panel.locator(".jp-CollaboratorsList .jp-CollaboratorHeader > span")
    return [n.strip() for n in await names.all_inner_texts()]


async def test_the_collaborators_panel_shows_the_other_user_and_idle_tabs_do_not_reconnect(
    lab: Server, pages: Pages
):
    path, _ = write_notebook(lab.root, "collaborators.ipynb", ["x = 1"])
    a = await pages.new_page()
    b = await pages.new_page()
    for page in (a, b):
        await page.add_init_script(RECORD_SOCKETS)
        await pages.open_notebook(path, page)
    # Each browser context is its own anonymous user of the token (jupyter_server's
    # IdentityProvider makes one per cookie-less login).
    a_user, b_user = [
        await p.evaluate("() => window.jupyterapp.serviceManager.user.identity") for p in (a, b)
    ]
    assert a_user["username"] != b_user["username"]

    # The stock panel lists the others, not the page's own user.
    for page, other in ((a, b_user), (b, a_user)):
        for _ in range(100):
            if await collaborators(page) == [other["display_name"]]:
                break
            await asyncio.sleep(0.1)
        assert await collaborators(page) == [other["display_name"]]
    # With the notebook each has open under the name.
    files = a.locator("#jp-collaboration-panel .jp-CollaboratorFile")
    await a.locator("#jp-collaboration-panel .jp-CollaboratorHeader").first.click()
    assert path in await files.all_inner_texts()
    await pages.screenshots("collaborators")

    before = {id(p): await sockets(p) for p in (a, b)}
    for page in (a, b):
        rooms = [s["url"] for s in before[id(page)] if ROOMS in s["url"]]
        assert any(GLOBAL_AWARENESS in url for url in rooms), rooms
        assert any("/json:notebook:" in url for url in rooms), rooms
    await asyncio.sleep(IDLE)
    for page in (a, b):
        after = await sockets(page)
        opened = [s["url"] for s in after[len(before[id(page)]) :]]
        assert not [url for url in opened if ROOMS in url], f"reconnected while idle: {opened}"
        closed = [s for s in after if ROOMS in s["url"] and s["code"] is not None]
        assert not closed, f"collaboration sockets closed while idle: {closed}"
        assert not [s for s in after if s["code"] == 4400], after
    # Still live after the idle time: B's user is still listed in A.
    assert await collaborators(a) == [b_user["display_name"]]
