"""A seeded random walk over one file: no sequence of client requests may empty,
truncate or corrupt it, or leave a room that can no longer be saved.

Each step is one action of a careless or hostile user, against a real server: open and
close rooms of every kind the session endpoint accepts on the file (a notebook, the
notebook as text: "Open With → Editor", and as a jupyterlab-chat document, which is
refused unless the file holds what a chat keeps whole); valid and invalid edits, among them every
top-level key of the notebook schema set to a wrong type; saves (Ctrl+S); another
program rewriting the file; renames; exports; a server restart or crash. After every
step, the file is a valid notebook, or exactly a text that a text room's client held
(what it saved on purpose); an export succeeds with a valid notebook or answers 4xx
saying why. At the end, the notebook opens, takes an edit and saves it.

``YDOC_MODEL_SEED`` replays a walk, ``YDOC_MODEL_STEPS`` lengthens it (default 2,000);
the seed is printed and is in every assertion message.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import nbformat
import pytest
from jupyter_ydoc import YNotebook, YUnicode
from pycrdt import Array, Map, Text

from .conftest import Server, read_saved, write_notebook
from .test_hostile import save_frame
from .yclient import YClient

STEPS = int(os.environ.get("YDOC_MODEL_STEPS") or 2000)
SEED = int(os.environ.get("YDOC_MODEL_SEED") or random.randrange(1 << 32))

ARGS = [
    "--YdocOutputsApp.room_cleanup_delay=0.3",
    "--YdocOutputsApp.autosave_delay=0.1",
    "--YdocOutputsApp.file_poll_interval=0.3",
]

#: Each top-level key of the notebook schema, set to values of a wrong type.
WRONG_META = [
    ("nbformat", "x"), ("nbformat", None), ("nbformat", 3), ("nbformat", True),
    ("nbformat", [4]), ("nbformat_minor", -1), ("nbformat_minor", 10**6),
    ("nbformat_minor", "5"), ("nbformat_minor", None), ("nbformat_minor", 4),
    ("metadata", "x"), ("metadata", 1), ("metadata", [1]), ("metadata", None),
]  # fmt: skip


#: Says whether a refused update is in a notebook after all.
Present = Callable[[YNotebook], bool]


def _wrong_cells(nb: YNotebook, rng: random.Random) -> tuple[str, Present]:
    """``cells`` given something that is not a cell, or a cell with a wrong field."""
    choice = rng.randrange(5)
    if choice == 0 or not len(nb.ycells):
        value = rng.choice(["not a cell", 3, None, ["x"]])
        nb.ycells.append(value)
        return f"a cell {value!r}", lambda nb: any(not isinstance(c, Map) for c in nb.ycells)
    ycell = nb.ycells[rng.randrange(len(nb.ycells))]
    key, value = [("source", 42), ("cell_type", "spreadsheet"), ("metadata", "x"),
                  ("outputs", "x")][choice - 1]  # fmt: skip
    cell_id = ycell.get("id")
    ycell[key] = value
    return f"cell {cell_id}: {key}={value!r}", lambda nb: any(
        isinstance(c, Map) and c.get("id") == cell_id and c.get(key) == value for c in nb.ycells
    )


def new_cell(rng: random.Random) -> Map[Any]:
    """A cell as JupyterLab inserts it."""
    if rng.random() < 0.7:
        return Map({"cell_type": "code", "id": uuid.uuid4().hex[:12], "source": Text("x = 1"),
                    "metadata": Map(), "outputs": Array(), "execution_count": None})  # fmt: skip
    return Map({"cell_type": "markdown", "id": uuid.uuid4().hex[:12], "source": Text("# t"),
                "metadata": Map()})  # fmt: skip


def valid_notebook_text(rng: random.Random) -> str:
    """A notebook another program (or a user in the text editor) writes."""
    cells = [
        {"cell_type": "code", "execution_count": None, "id": f"o{i}", "metadata": {},
         "outputs": [], "source": f"print({rng.randrange(100)})"}
        for i in range(rng.randrange(1, 4))
    ]  # fmt: skip
    nb = {"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    return json.dumps(nb, indent=1) + "\n"


async def synced_or_closed(client: YClient) -> None:
    """Connect ``client`` and wait until it is synced or the server closed it."""
    await client.connect(wait_synced=False)
    await asyncio.wait(
        [asyncio.ensure_future(client.synced.wait()),
         asyncio.ensure_future(client.closed.wait())],
        timeout=30, return_when=asyncio.FIRST_COMPLETED,
    )  # fmt: skip


def _items(array: Array[Any]) -> list[Any]:
    """The items of a client's array. pycrdt's iterator now and then fails with "Index
    error" on a client's copy (it counts an item it cannot return): the items up to it."""
    items = []
    for i in range(len(array)):
        try:
            items.append(array[i])
        except ValueError:
            break
    return items


def _is_empty_chat(text: str) -> bool:
    """Whether ``text`` is a jupyterlab-chat document with no messages, users or
    attachments (what a chat room saves when it opens on an empty file)."""
    try:
        chat = json.loads(text)
    except ValueError:
        return False
    return (
        isinstance(chat, dict)
        and set(chat) == {"messages", "users", "attachments", "metadata"}
        and chat["messages"] == []
        and chat["users"] == {}
        and chat["attachments"] == {}
    )


class Walk:
    """The model: one file, the server, and the clients of its rooms."""

    def __init__(self, root: Path, home: Path, rng: random.Random) -> None:
        self.root = root
        self.home = home
        self.rng = rng
        self.path, _ = write_notebook(root, "walked.ipynb", ["print('first')", "x = 2"])
        self.server = Server(root, home, ARGS)
        self.http = self.server.http()
        self.clients: list[YClient] = []
        #: Every text a client of a text room held: what such a room may save on purpose.
        self.texts: set[str] = set()
        #: Whether a chat room opened on the file while it was empty.
        self.chat_on_empty = False
        self._checked_texts: set[str] = set()
        self._invalid_notebook_saved = False
        self.step = 0
        self.counts: dict[str, int] = {}
        #: Invalid edits of a cell that an outside change had removed: they change nothing.
        self.breaks_of_nothing = 0

    def context(self) -> str:
        return f"seed {SEED}, step {self.step}"

    # -- actions ---------------------------------------------------------------------------

    async def open_room(self, kind: str) -> YClient | None:
        fmt, type_ = ("json", "notebook") if kind == "notebook" else ("text", "file")
        r = await self.http.put(
            f"/api/collaboration/session/{self.path}", json={"format": fmt, "type": type_}
        )
        assert r.status_code in (200, 201), f"{self.context()}: {r.status_code} {r.text}"
        info = r.json()
        document = YNotebook() if kind == "notebook" else YUnicode()
        url = self.server.ws_url(f"{fmt}:{type_}:{info['fileId']}", info["sessionId"])
        client = YClient(url, document)
        if isinstance(document, YUnicode):
            source = document.ydoc.get("source", type=Text)
            client.listeners.append(lambda: self.texts.add(str(source)))
        await synced_or_closed(client)
        if client.synced.is_set():
            self.clients.append(client)
            return client
        else:
            # Refused only as the file allows: a notebook room of a file that a text room
            # made unreadable on purpose.
            assert kind == "notebook" and client.close_code == 4400, (
                f"{self.context()}: {kind} room refused: {client.close_code} {client.close_reason}"
            )
            assert self.client_wrote(self.disk_text()), self.context()
            await client.disconnect()
            return None

    async def peek_as_chat(self) -> None:
        """Open the file as a jupyterlab-chat document, and close it at once.

        A chat room on a notebook would save an empty chat over it at the first edit:
        it is refused (4400), unless the file holds what a chat keeps whole (an empty text
        a text room saved, say). Refused or not, the file stays as it was.
        """
        from jupyterlab_chat.ychat import YChat

        r = await self.http.put(
            f"/api/collaboration/session/{self.path}", json={"format": "text", "type": "chat"}
        )
        assert r.status_code in (200, 201), f"{self.context()}: {r.status_code} {r.text}"
        info = r.json()
        url = self.server.ws_url(f"text:chat:{info['fileId']}", info["sessionId"])
        client = YClient(url, YChat())
        before = self.disk_text()
        await synced_or_closed(client)
        if client.closed.is_set():
            assert client.close_code == 4400, f"{self.context()}: {client.close_code}"
        else:
            assert before.strip() == "" or self.client_wrote(before), self.context()
            # On an empty file (a text room emptied it) a chat room may open: the file is
            # then the chat it saves, as a new chat's would be.
            self.chat_on_empty = self.chat_on_empty or before.strip() == ""
        await client.disconnect()

    async def close_room(self) -> None:
        client = self.rng.choice(self.clients)
        self.clients.remove(client)
        await client.disconnect()

    def client_wrote(self, text: str) -> bool:
        """Whether ``text`` is what a client's room saved: a text room's text, or the
        empty chat a chat room opened on an empty file saves."""
        return text in self.texts or (self.chat_on_empty and _is_empty_chat(text))

    def clients_of(self, kind: type) -> list[YClient]:
        return [c for c in self.clients if isinstance(c.document, kind)]

    async def edit_notebook(self) -> None:
        nb = self.rng.choice(self.clients_of(YNotebook)).notebook
        cells = nb.ycells
        choice = self.rng.randrange(6)
        if choice == 0 or not len(cells):
            cells.insert(self.rng.randrange(len(cells) + 1), new_cell(self.rng))
        elif choice == 1:
            del cells[self.rng.randrange(len(cells))]
        elif choice in (2, 3):
            # A cell a text room saved with a typo in a key may lack its source or
            # metadata: the user edits another one.
            key, kind = ("source", Text) if choice == 2 else ("metadata", Map)
            fit = [c for c in _items(cells) if isinstance(c, Map) and isinstance(c.get(key), kind)]
            if not fit:
                return
            target = self.rng.choice(fit)[key]
            if isinstance(target, Text):
                where = self.rng.randrange(len(target) + 1)
                target.insert(where, self.rng.choice(["a", "\n", "é"]))
            else:
                target["tags"] = ["t"]
        elif choice == 4:
            metadata = nb.ydoc.get("meta", type=Map).get("metadata")
            if isinstance(metadata, Map):
                metadata["walk"] = self.step
        else:
            with nb.ydoc.transaction():  # a move, as JupyterLab makes it
                i = self.rng.randrange(len(cells))
                moved = cells[i].to_py()
                del cells[i]
                cells.insert(self.rng.randrange(len(cells) + 1), _to_y(moved))

    async def break_notebook(self) -> None:
        """An update nbformat would refuse: the server closes its sender with 4400, and
        the room never holds it."""
        client = self.rng.choice(self.clients_of(YNotebook))
        nb = client.notebook
        if self.rng.random() < 0.6:
            key, value = self.rng.choice(WRONG_META)
            meta = nb.ydoc.get("meta", type=Map)
            if value is None and key != "metadata" and self.rng.random() < 0.5:
                meta.pop(key, None)
                what = f"{key} removed"

                def present(nb: YNotebook) -> bool:
                    return key not in nb.ydoc.get("meta", type=Map)
            else:
                meta[key] = value
                what = f"{key}={value!r}"

                def present(nb: YNotebook) -> bool:
                    return nb.ydoc.get("meta", type=Map).get(key, ...) == value
        else:
            what, present = _wrong_cells(nb, self.rng)
        self.clients.remove(client)  # its copy holds the refused update: it must reload
        try:
            await asyncio.wait_for(client.closed.wait(), 5)
        except TimeoutError:
            # Not refused: right only if the update changed nothing in the room (it
            # edited a cell that an outside change had removed meanwhile).
            fresh = await self.open_room("notebook")  # the same room: a client holds it
            if fresh is not None:
                seen = fresh.notebook
            else:
                # A client may not join now: a text room saved something a notebook room
                # cannot load. The open room's document is read through the export.
                r = await self.http.get(f"/api/ydoc-outputs/export/{self.path}")
                assert r.status_code == 200, f"{self.context()}: {r.status_code} {r.text}"
                seen = YNotebook()
                seen.set(json.loads(r.text))
            await client.disconnect()
            assert not present(seen), f"{self.context()}: {what} was admitted"
            self.breaks_of_nothing += 1
            return
        assert client.close_code == 4400, f"{self.context()}: closed {client.close_code}"
        await client.disconnect()

    async def edit_text(self) -> None:
        doc = self.rng.choice(self.clients_of(YUnicode)).document
        source = doc.ydoc.get("source", type=Text)
        choice = self.rng.randrange(8)
        if choice < 4:  # the user rewrites the JSON into another valid notebook
            with doc.ydoc.transaction():
                del source[:]
                source += valid_notebook_text(self.rng)
        elif choice < 7:  # a typo: the JSON no longer parses, saved on purpose
            source.insert(self.rng.randrange(len(source) + 1), self.rng.choice(["}", "x", ","]))
        else:
            del source[:]  # the user empties the file, on purpose
        self.texts.add(str(source))

    def invalid_notebook_saved(self) -> bool:
        """Whether a text room's client held JSON that nbformat reads as a notebook but
        does not validate (a typo in a key): the notebook room loads such a file as it
        is, as jupyter_server does, and saves the invalid part as it came."""
        for text in self.texts - self._checked_texts:
            self._checked_texts.add(text)
            try:
                nbformat.validate(nbformat.reads(text, as_version=nbformat.NO_CONVERT))
            except nbformat.ValidationError:
                self._invalid_notebook_saved = True
            except Exception:
                continue  # not a notebook at all: no notebook room loads it
        return self._invalid_notebook_saved

    async def save(self) -> None:
        client = self.rng.choice(self.clients)
        await client._safe_send(save_frame(self.step))

    async def write_outside(self) -> None:
        """Another program (git checkout) rewrites the file with a valid notebook.

        As git and editors do, by renaming a new file over it: two programs writing one
        file in place at once (this one and the server's save) interleave their bytes,
        which no server can prevent.
        """
        new = self.root / f".outside-{self.step}"
        new.write_text(valid_notebook_text(self.rng))
        os.replace(new, self.root / self.path)

    async def rename(self) -> None:
        new = f"walked-{self.step}.ipynb"
        r = await self.http.patch(f"/api/contents/{self.path}", json={"path": new})
        assert r.status_code == 200, f"{self.context()}: rename {r.status_code} {r.text}"
        self.path = new

    async def export(self) -> None:
        r = await self.http.get(f"/api/ydoc-outputs/export/{self.path}")
        assert r.status_code < 500, f"{self.context()}: export {r.status_code} {r.text}"
        if r.status_code == 200:
            nbformat.validate(nbformat.reads(r.text, as_version=nbformat.NO_CONVERT))
        else:
            assert r.json()["message"], self.context()

    async def restart(self) -> None:
        for client in self.clients:
            await client.disconnect()
        self.clients = []
        await self.http.aclose()
        if self.rng.random() < 0.5:
            self.server.kill()  # a crash: no save, the update store holds the rest
        else:
            self.server.stop()
        self.server = Server(self.root, self.home, ARGS)
        self.http = self.server.http()

    async def settle(self) -> None:
        await asyncio.sleep(self.rng.choice([0.05, 0.2, 0.5]))

    # -- the walk --------------------------------------------------------------------------

    async def run(self, steps: int) -> None:
        actions = [
            (8, "open notebook", lambda: self.open_room("notebook"), lambda: True),
            (5, "open text", lambda: self.open_room("text"), lambda: True),
            (2, "peek as chat", self.peek_as_chat, lambda: True),
            (6, "close", self.close_room, lambda: bool(self.clients)),
            (30, "edit notebook", self.edit_notebook, lambda: bool(self.clients_of(YNotebook))),
            (6, "break notebook", self.break_notebook, lambda: bool(self.clients_of(YNotebook))),
            (8, "edit text", self.edit_text, lambda: bool(self.clients_of(YUnicode))),
            (6, "save", self.save, lambda: bool(self.clients)),
            (3, "write outside", self.write_outside, lambda: True),
            (2, "rename", self.rename, lambda: True),
            (6, "export", self.export, lambda: True),
            (0.3, "restart", self.restart, lambda: True),
            (10, "settle", self.settle, lambda: True),
        ]
        for self.step in range(steps):
            self.clients = [c for c in self.clients if not c.closed.is_set()]
            possible = [a for a in actions if a[3]()]
            _, name, action, _ = self.rng.choices(possible, [a[0] for a in possible])[0]
            await action()
            self.counts[name] = self.counts.get(name, 0) + 1
            await self.check_file()

    def disk_text(self) -> str:
        return (self.root / self.path).read_text(errors="surrogateescape")

    async def check_file(self) -> None:
        """The file is a valid notebook, or a text a text room's client held; and it is
        the only one: a save never recreates a file under a name it had."""
        files = [p.name for p in self.root.iterdir() if not p.name.startswith(".")]
        assert files == [self.path], f"{self.context()}: {files}"
        for _ in range(40):
            text = self.disk_text()
            if self.client_wrote(text):
                return
            try:
                notebook = nbformat.reads(text, as_version=nbformat.NO_CONVERT)
                if not self.invalid_notebook_saved():
                    nbformat.validate(notebook)
                # Else readable is the bar: what a text room saved invalid on purpose,
                # the notebook room saves on as it came (the guard keeps clients from
                # making it worse).
                return
            except Exception as e:
                error = e
            # Jupyter's writer rewrites a file in place: a reader can catch it half
            # written, or a client may not have received what its room saved yet.
            await asyncio.sleep(0.05)
        raise AssertionError(f"{self.context()}: the file is neither a valid notebook nor "
                             f"a text a client wrote ({error!r}): {text[:300]!r}")  # fmt: skip

    async def finish(self) -> None:
        """The notebook still opens, takes an edit and saves it."""
        for client in self.clients:
            await client.disconnect()
        self.clients = []
        await asyncio.sleep(1.0)
        if await self.open_room("notebook") is None:
            # A text room saved what is no notebook, on purpose: the user repairs it.
            (self.root / self.path).write_text(valid_notebook_text(self.rng))
            await asyncio.sleep(1.0)
            assert await self.open_room("notebook") is not None, self.context()
        [client] = self.clients
        client.notebook.ycells.append(new_cell(self.rng))
        client.notebook.ycells[-1]["metadata"]["final"] = True
        await client._safe_send(save_frame(999_999))
        for _ in range(100):
            saved = await read_saved(self.root / self.path)
            if saved.cells and saved.cells[-1].metadata.get("final"):
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError(f"{self.context()}: the final edit was never saved")
        if not self.invalid_notebook_saved():
            nbformat.validate(saved)
        await client.disconnect()

    async def close(self) -> None:
        for client in self.clients:
            await client.disconnect()
        await self.http.aclose()
        self.server.stop()


def _to_y(value: Any) -> Any:
    """A cell's plain dict as the Y types JupyterLab gives it."""
    cell = dict(value)
    cell["source"] = Text(cell.get("source", ""))
    cell["metadata"] = Map(cell.get("metadata", {}))
    if "outputs" in cell:
        cell["outputs"] = Array([Map(o) for o in cell["outputs"]])
    return Map(cell)


@pytest.fixture
async def walk(tmp_path: Path) -> AsyncIterator[Walk]:
    root, home = tmp_path / "root", tmp_path / "home"
    root.mkdir()
    home.mkdir()
    w = Walk(root, home, random.Random(SEED))
    yield w
    await w.close()
    log = w.server.log().split("Shutting down")[0]
    at = log.find("Traceback")
    assert at < 0, f"seed {SEED}: {log[max(0, at - 500) : at + 2500]}"


@pytest.mark.timeout(900)
async def test_no_sequence_of_requests_breaks_the_file(walk: Walk):
    print(f"model walk: seed {SEED}, {STEPS} steps (YDOC_MODEL_SEED, YDOC_MODEL_STEPS)")
    await walk.run(STEPS)
    await walk.finish()
    print(f"model walk: seed {SEED}: {walk.counts}, of nothing: {walk.breaks_of_nothing}")
    assert sum(walk.counts.values()) == STEPS
    assert walk.counts.get("break notebook", 0) > 0, walk.context()
