"""jupyterlab-chat in stock JupyterLab with our server as its RTC provider: a `.chat` file
opens as a chat on the shared document (the ``text:chat:{fileId}`` room, never
jupyterlab-chat's websocket fallback ``api/chat/ws``); a message sent in one browser shows
in another, stays after a reload and is saved to the file."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from playwright.async_api import Page

from ..conftest import TOKEN, Server
from .conftest import Pages

PANEL = ".jp-lab-chat-main-panel"
#: MUI's multiline input keeps a hidden twin textarea for sizing.
INPUT = f"{PANEL} .jp-chat-input-textfield textarea:not([aria-hidden='true'])"
MESSAGE = f"{PANEL} .jp-chat-rendered-message"


async def open_chat(pages: Pages, path: str, page: Page | None = None) -> tuple[Page, list[str]]:
    """Open ``path`` in a fresh page (or ``page``); return it and the websocket URLs it
    opens from then on."""
    page = page or await pages.new_page()
    sockets: list[str] = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    workspace = uuid.uuid4().hex
    await page.goto(f"{pages.lab.url}/lab/workspaces/{workspace}/tree/{path}?token={TOKEN}")
    await page.locator(INPUT).wait_for(timeout=60_000)
    return page, sockets


async def messages(page: Page) -> list[str]:
    return [t.strip() for t in await page.locator(MESSAGE).all_inner_texts()]


async def wait_message(page: Page, body: str, timeout: float = 15.0) -> None:
    for _ in range(int(timeout / 0.1)):
        if body in await messages(page):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{body!r} not shown: {await messages(page)}")


async def saved_chat(lab: Server, path: str, body: str, timeout: float = 15.0) -> Any:
    """The chat file once it holds a message ``body`` (the server saves it)."""
    content: Any = None
    for _ in range(int(timeout / 0.1)):
        try:
            content = json.loads((lab.root / path).read_text())
        except ValueError:  # empty, or being rewritten in place
            content = None
        if content and any(m.get("body") == body for m in content.get("messages", [])):
            return content
        await asyncio.sleep(0.1)
    raise AssertionError(f"{body!r} never saved to {path}: {content}")


async def test_a_chat_message_reaches_another_browser_survives_a_reload_and_is_saved(
    lab: Server, pages: Pages
):
    path = f"chat-{uuid.uuid4().hex[:6]}.chat"
    async with lab.http() as http:
        r = await http.put(f"/api/contents/{path}", json={"type": "file", "format": "text",
                                                         "content": ""})  # fmt: skip
        assert r.status_code == 201, r.text
        r = await http.put(
            f"/api/collaboration/session/{path}", json={"format": "text", "type": "chat"}
        )
        assert r.status_code in (200, 201), r.text
        room = f"text:chat:{r.json()['fileId']}"

    a, a_sockets = await open_chat(pages, path)
    b, b_sockets = await open_chat(pages, path)
    # jupyterlab-chat chose its collaborative model: it found an RTC provider enabled.
    rtc = await a.evaluate(
        "() => JSON.parse(document.getElementById('jupyter-config-data').textContent)"
        ".serverSessionRtcInfo"
    )
    assert rtc["enabled"] is True and rtc["provider"] == "jupyter_server_ydoc", rtc

    body = f"hello from A {uuid.uuid4().hex[:8]}"
    await a.locator(INPUT).click()
    await a.keyboard.type(body)
    await a.keyboard.press("Enter")
    await wait_message(a, body)
    await wait_message(b, body)
    # B shows who sent it: A's user, a different anonymous user of the token.
    a_user = await a.evaluate("() => window.jupyterapp.serviceManager.user.identity")
    b_user = await b.evaluate("() => window.jupyterapp.serviceManager.user.identity")
    assert a_user["username"] != b_user["username"]
    assert a_user["display_name"] in await b.locator(PANEL).inner_text()

    await b.reload()
    await b.locator(INPUT).wait_for(timeout=60_000)
    await wait_message(b, body)
    assert (await messages(b)).count(body) == 1

    saved = await saved_chat(lab, path, body)
    (message,) = [m for m in saved["messages"] if m["body"] == body]
    assert message["sender"] == a_user["username"]
    assert saved["users"][a_user["username"]]["display_name"] == a_user["display_name"]

    # Every page used the chat's room on the shared document, never the fallback.
    for sockets in (a_sockets, b_sockets):
        assert any(f"/api/collaboration/room/{room}" in url for url in sockets), sockets
        assert not any("/api/chat/ws" in url for url in sockets), sockets
    assert len([u for u in b_sockets if f"/room/{room}" in u]) == 2  # before and after reload
    await pages.screenshots("chat")
