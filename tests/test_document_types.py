"""Every document type jupyter_ydoc registers is served with a file's durability, a
third-party type included; rooms with no file serve awareness (who is online).

The third-party type is a package this test writes and puts on the server's path, with
a ``jupyter_ydoc`` entry point, as JupyterCAD's ``jupytercad-core`` does for ``.jcad``
files: nothing in ydoc_outputs names it.
"""

from __future__ import annotations

import asyncio
import json
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from jupyter_ydoc import YBlob, YUnicode
from pycrdt import Array, Map, Text

from .conftest import Server, Session
from .yclient import YClient

PACKAGE = '''
"""A document type like JupyterCAD's: a map of named objects, saved as JSON."""
import json
from functools import partial
from jupyter_ydoc.ybasedoc import YBaseDoc
from pycrdt import Map


class YShapes(YBaseDoc):
    def __init__(self, ydoc=None, awareness=None):
        super().__init__(ydoc, awareness)
        self._yobjects = self._ydoc.get("objects", type=Map)

    @property
    def version(self):
        return "1.0.0"

    def get(self):
        return json.dumps({"objects": self._yobjects.to_py() or {}}, sort_keys=True, indent=1)

    def set(self, value):
        objects = json.loads(value).get("objects", {}) if value.strip() else {}
        with self._ydoc.transaction():
            self._yobjects.clear()
            for name, shape in objects.items():
                self._yobjects[name] = Map(shape)

    def observe(self, callback):
        self.unobserve()
        self._subscriptions[self._ystate] = self._ystate.observe(partial(callback, "state"))
        self._subscriptions[self._yobjects] = self._yobjects.observe_deep(
            partial(callback, "objects")
        )
'''


def install_shapes_package(site: Path) -> None:
    """Write the package and its metadata (with the entry point) into ``site``."""
    (site / "ydoc_shapes").mkdir(parents=True)
    (site / "ydoc_shapes" / "__init__.py").write_text(textwrap.dedent(PACKAGE))
    info = site / "ydoc_shapes-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: ydoc-shapes\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[jupyter_ydoc]\nshapes = ydoc_shapes:YShapes\n")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("site")
    install_shapes_package(path)
    sys.path.insert(0, str(path))
    yield path
    sys.path.remove(str(path))


@pytest.fixture(scope="module")
def typed_server(tmp_path_factory: pytest.TempPathFactory, site: Path) -> Iterator[Server]:
    srv = Server(
        tmp_path_factory.mktemp("typed"),
        tmp_path_factory.mktemp("typed-home"),
        [
            "--YdocOutputsApp.room_cleanup_delay=0.5",
            "--YdocOutputsApp.autosave_delay=0.1",
            "--YdocOutputsApp.file_poll_interval=0.1",
        ],
        env={"PYTHONPATH": str(site)},
    )
    yield srv
    srv.stop()


@pytest.fixture
async def typed(typed_server: Server) -> AsyncIterator[Session]:
    s = Session(typed_server, typed_server.http())
    yield s
    await s.close()
    assert typed_server.proc.poll() is None, "the server died"


async def room_url(session: Session, path: str, fmt: str, kind: str) -> str:
    r = await session.http.put(
        f"/api/collaboration/session/{path}", json={"format": fmt, "type": kind}
    )
    assert r.status_code in (200, 201), r.text
    info = r.json()
    return session.server.ws_url(f"{fmt}:{kind}:{info['fileId']}", info["sessionId"])


async def wait_for_file(path: Path, predicate: Any) -> str:
    for _ in range(100):
        text = path.read_text() if path.exists() else ""
        if predicate(text):
            return text
        await asyncio.sleep(0.05)
    raise AssertionError(f"{path} never matched; it holds {text!r}")


async def test_a_third_party_type_is_served_loaded_edited_and_saved(typed: Session):
    from ydoc_shapes import YShapes  # written by the site fixture

    root = typed.server.root
    (root / "model.shapes").write_text(json.dumps({"objects": {"box": {"w": 1}}}))
    url = await room_url(typed, "model.shapes", "text", "shapes")
    a, b = YClient(url, YShapes()), YClient(url, YShapes())
    await a.connect()
    await b.connect()
    assert json.loads(a.document.get()) == {"objects": {"box": {"w": 1}}}
    a.document.ydoc.get("objects", type=Map)["ball"] = Map({"r": 2})
    await b.wait_for(lambda: "ball" in json.loads(b.document.get())["objects"])
    saved = await wait_for_file(root / "model.shapes", lambda t: "ball" in t)
    assert json.loads(saved) == {"objects": {"ball": {"r": 2}, "box": {"w": 1}}}
    await a.disconnect()
    await b.disconnect()


async def test_an_update_that_makes_a_document_unsavable_is_refused(typed: Session):
    """A shapes document whose objects hold bytes cannot be written as JSON: the update
    is refused (4400) before it reaches the room, and the file keeps its content."""
    from ydoc_shapes import YShapes

    root = typed.server.root
    (root / "guarded.shapes").write_text(json.dumps({"objects": {"box": {"w": 1}}}))
    url = await room_url(typed, "guarded.shapes", "text", "shapes")
    bad, watcher = YClient(url, YShapes()), YClient(url, YShapes())
    await bad.connect()
    await watcher.connect()
    bad.document.ydoc.get("objects", type=Map)["blob"] = b"\x00\x01"
    await asyncio.wait_for(bad.closed.wait(), 10)
    assert bad.close_code == 4400
    fresh = YClient(url, YShapes())
    await fresh.connect()
    assert json.loads(fresh.document.get()) == {"objects": {"box": {"w": 1}}}
    assert "blob" not in watcher.document.get()
    assert json.loads((root / "guarded.shapes").read_text()) == {"objects": {"box": {"w": 1}}}
    await fresh.disconnect()
    await watcher.disconnect()


async def test_a_type_installed_after_start_is_served(typed: Session, site: Path):
    """Entry points are read again when a room names a type not seen yet."""
    from ydoc_shapes import YShapes

    late = site / "ydoc_late"
    late.mkdir()
    (late / "__init__.py").write_text("from ydoc_shapes import YShapes as YLate\n")
    info = site / "ydoc_late-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: ydoc-late\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[jupyter_ydoc]\nlate = ydoc_late:YLate\n")
    (typed.server.root / "x.late").write_text('{"objects": {}}')
    # Entry points are read again at most once a second (a client naming unknown types
    # must not make the server scan its packages on every request).
    deadline = asyncio.get_running_loop().time() + 5
    while True:
        r = await typed.http.put(
            "/api/collaboration/session/x.late", json={"format": "text", "type": "late"}
        )
        if r.status_code != 400 or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.2)
    assert r.status_code in (200, 201), r.text
    client = YClient(typed.server.ws_url(f"text:late:{r.json()['fileId']}", None), YShapes())
    await client.connect()
    await client.disconnect()


async def test_unicode_and_blob_rooms_load_and_save(typed: Session):
    root = typed.server.root
    (root / "notes.md").write_text("# title\n")
    url = await room_url(typed, "notes.md", "text", "unicode")
    client = YClient(url, YUnicode())
    await client.connect()
    assert client.document.get() == "# title\n"
    client.document.ydoc.get("source", type=Text).insert(8, "more\n")
    await wait_for_file(root / "notes.md", lambda t: t == "# title\nmore\n")
    await client.disconnect()

    data = bytes(range(256))
    (root / "data.bin").write_bytes(data)
    url = await room_url(typed, "data.bin", "base64", "blob")
    blob = YClient(url, YBlob())
    await blob.connect()
    assert blob.document.get() == data
    blob.document.set(data[::-1])
    for _ in range(100):
        if (root / "data.bin").read_bytes() == data[::-1]:
            break
        await asyncio.sleep(0.05)
    assert (root / "data.bin").read_bytes() == data[::-1]
    await blob.disconnect()


async def test_a_blob_that_is_not_bytes_is_refused(typed: Session):
    root = typed.server.root
    (root / "keep.bin").write_bytes(b"keep")
    url = await room_url(typed, "keep.bin", "base64", "blob")
    client = YClient(url, YBlob())
    await client.connect()
    client.document.ydoc.get("source", type=Map)["bytes"] = Array([1, 2])
    await asyncio.wait_for(client.closed.wait(), 10)
    assert client.close_code == 4400
    assert (root / "keep.bin").read_bytes() == b"keep"  # never rewritten


async def test_global_awareness_room_shares_who_is_online(typed: Session):
    """``JupyterLab:globalAwareness`` (the collaborators panel): every page hears every
    other page's user, and a page that leaves is removed from the others' view."""
    url = typed.server.ws_url("JupyterLab:globalAwareness", None)
    a, b = YClient(url), YClient(url)
    await a.connect()
    await b.connect()
    await a.set_awareness({"user": {"name": "Ada"}})
    await b.set_awareness({"user": {"name": "Bob"}})

    def names(client: YClient) -> set[str]:
        states = client.awareness.states.values()
        return {s["user"]["name"] for s in states if s and "user" in s}

    await a.wait_for(lambda: names(a) == {"Ada", "Bob"})
    await b.wait_for(lambda: names(b) == {"Ada", "Bob"})
    await b.disconnect()
    await a.wait_for(lambda: names(a) == {"Ada"})
    assert a.close_code is None  # never refused: an idle tab has nothing to reconnect for
    await a.disconnect()


async def test_a_file_its_kind_would_save_with_less_is_not_opened_as_that_kind(typed: Session):
    """A notebook opened as a chat would be saved back as an empty chat at the first
    edit: refused (4400) before anything loads, and the file is untouched. A chat written
    by hand, without the keys jupyterlab-chat adds, opens: saving only adds them."""
    from jupyterlab_chat.ychat import YChat

    root = typed.server.root
    notebook = json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5})
    (root / "precious.ipynb").write_text(notebook)
    client = YClient(await room_url(typed, "precious.ipynb", "text", "chat"), YChat())
    await client.connect(wait_synced=False)
    await asyncio.wait_for(client.closed.wait(), 10)
    assert client.close_code == 4400
    assert "would lose" in (client.close_reason or "")
    assert (root / "precious.ipynb").read_text() == notebook

    message = {"type": "msg", "body": "hi", "id": "1", "time": 1, "sender": "u", "raw_time": False}
    (root / "hand.chat").write_text(json.dumps({"messages": [message], "users": {}}))
    chat = YClient(await room_url(typed, "hand.chat", "text", "chat"), YChat())
    await chat.connect()
    assert [m.body for m in chat.document.get_messages()] == ["hi"]
    await chat.disconnect()


async def test_a_file_changed_into_what_its_room_would_lose_is_not_saved_over(typed: Session):
    """Another program rewrote a shapes file as something else: the room keeps its
    document and does not write it over the file, even after an edit."""
    from ydoc_shapes import YShapes

    root = typed.server.root
    (root / "moved.shapes").write_text(json.dumps({"objects": {"box": {"w": 1}}}))
    url = await room_url(typed, "moved.shapes", "text", "shapes")
    client = YClient(url, YShapes())
    await client.connect()
    other = json.dumps({"cells": [], "objects": {}})  # "cells" would be lost
    (root / "moved.shapes").write_text(other)
    for _ in range(100):  # the watcher checks every 0.1 s here
        if "moved.shapes changed into something" in typed.server.log():
            break
        await asyncio.sleep(0.05)
    assert "would lose what the file holds" in typed.server.log()
    client.document.ydoc.get("objects", type=Map)["ball"] = Map({"r": 2})
    await asyncio.sleep(1)  # ten autosave delays: none may write
    assert (root / "moved.shapes").read_text() == other
    await client.disconnect()
