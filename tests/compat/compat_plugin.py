"""Fixtures of jupyter_server_ydoc's pytest plugin, against ydoc_outputs.

scripts/compat runs jupyter-collaboration's own server tests (from the
jupyter-server-ydoc sdist) with this module in place of
``jupyter_server_ydoc.pytest_plugin``. It defines the same fixture names, so the
tests run unchanged; only ``jp_server_config`` differs in substance: it enables
``ydoc_outputs`` (and ``jupyter_server_fileid``) instead of ``jupyter_server_ydoc``.
The two fixtures that build jupyter_server_ydoc's own classes skip.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import nbformat
import pytest
from httpx_ws import aconnect_ws
from jupyter_ydoc import YNotebook, YUnicode
from pycrdt import Provider
from pycrdt.websocket.websocket import HttpxWebsocket

NOT_APPLICABLE = (
    "builds jupyter_server_ydoc's internal classes (DocumentRoom, FileLoader, "
    "SQLiteYStore), which ydoc_outputs does not have"
)


@pytest.fixture
def rtc_document_save_delay() -> float:
    return 1


@pytest.fixture
def rtc_document_cleanup_delay() -> float:
    return 60


@pytest.fixture
def jp_server_config(
    jp_root_dir: Path,
    tmp_path: Path,
    rtc_document_save_delay: float,
    rtc_document_cleanup_delay: float,
) -> dict[str, Any]:
    # The update store and the spill files live beside the served root, not in it, so
    # that they never show up as files of the contents API.
    state = tmp_path / "ydoc_outputs"
    return {
        "ServerApp": {
            "jpserver_extensions": {
                "ydoc_outputs": True,
                "jupyter_server_fileid": True,
                # The sdist's package is importable during the run (its tests import
                # its internals): it must not serve the same routes.
                "jupyter_server_ydoc": False,
            },
            "token": "",
            "password": "",
            "disable_check_xsrf": True,
        },
        "BaseFileIdManager": {
            "root_dir": str(jp_root_dir),
            "db_path": str(tmp_path / "file_id.db"),
            "db_journal_mode": "OFF",
        },
        # jupyter_server_ydoc's YDocExtension.document_save_delay and
        # document_cleanup_delay, under the names ydoc_outputs accepts.
        "YdocOutputsApp": {
            "autosave_delay": rtc_document_save_delay,
            "room_cleanup_delay": rtc_document_cleanup_delay,
            "store_path": str(state / "updates.db"),
            "spill_path": str(state / "spill"),
        },
    }


def _room_url(port: int, base_url: str, room_id: str) -> str:
    return f"http://127.0.0.1:{port}{base_url}api/collaboration/room/{room_id}"


@pytest.fixture
def rtc_fetch_session(jp_fetch: Any) -> Callable[[str, str, str], Awaitable[Any]]:
    """PUT api/collaboration/session/{path}: the room of a file, as a page asks for it."""

    def fetch(format: str, type: str, path: str) -> Awaitable[Any]:
        body = json.dumps({"format": format, "type": type})
        return jp_fetch("api", "collaboration", "session", path, method="PUT", body=body)

    return fetch


@pytest.fixture
def rtc_connect_doc_client(
    jp_http_port: int, jp_base_url: str, rtc_fetch_session: Any
) -> Callable[[str, str, str], Awaitable[tuple[Any, str]]]:
    """Ask for a session, then give an (unopened) websocket to its room and the room id."""

    async def connect(format: str, type: str, path: str) -> tuple[Any, str]:
        response = await rtc_fetch_session(format, type, path)
        session = json.loads(response.body)
        room_id = f"{session['format']}:{session['type']}:{session['fileId']}"
        url = _room_url(jp_http_port, jp_base_url, room_id)
        return aconnect_ws(f"{url}?sessionId={session['sessionId']}"), room_id

    return connect


@pytest.fixture
def rtc_connect_awareness_client(
    jp_http_port: int, jp_base_url: str
) -> Callable[[str], Awaitable[Any]]:
    async def connect(room_id: str) -> Any:
        return aconnect_ws(_room_url(jp_http_port, jp_base_url, room_id))

    return connect


@pytest.fixture
def rtc_connect_fork_client(jp_http_port: int, jp_base_url: str) -> Callable[[str], Awaitable[Any]]:
    # A fork's room has no session: its id is the one the fork endpoint answered.
    async def connect(room_id: str) -> Any:
        return aconnect_ws(_room_url(jp_http_port, jp_base_url, room_id))

    return connect


@pytest.fixture
def rtc_get_forks_client(jp_fetch: Any) -> Callable[[str], Awaitable[Any]]:
    async def get(root_roomid: str) -> Any:
        return await jp_fetch("api", "collaboration", "fork", root_roomid, method="GET")

    return get


@pytest.fixture
def rtc_create_fork_client(jp_fetch: Any) -> Callable[..., Awaitable[Any]]:
    async def create(
        root_roomid: str,
        synchronize: bool,
        title: str | None = None,
        description: str | None = None,
    ) -> Any:
        body = {"synchronize": synchronize, "title": title, "description": description}
        return await jp_fetch(
            "api", "collaboration", "fork", root_roomid, method="PUT", body=json.dumps(body)
        )

    return create


@pytest.fixture
def rtc_delete_fork_client(jp_fetch: Any) -> Callable[[str, bool], Awaitable[Any]]:
    async def delete(fork_roomid: str, merge: bool) -> Any:
        return await jp_fetch(
            "api",
            "collaboration",
            "fork",
            fork_roomid,
            method="DELETE",
            params={"merge": "true" if merge else "false"},
        )

    return delete


@pytest.fixture
def rtc_add_doc_to_store(
    rtc_connect_doc_client: Any,
) -> Callable[[str, str, str], Awaitable[None]]:
    """Open the file's room with a client until it holds the file's content.

    The room then has the document in memory and in the update store, as
    jupyter_server_ydoc's fixture leaves it in its SQLite store.
    """

    async def add(format: str, type: str, path: str) -> None:
        document = YNotebook() if type == "notebook" else YUnicode()
        key = "cells" if type == "notebook" else "source"
        loaded = asyncio.Event()
        document.observe(lambda target, _event: target == key and loaded.set())
        websocket, room_id = await rtc_connect_doc_client(format, type, path)
        async with websocket as ws, Provider(document.ydoc, HttpxWebsocket(ws, room_id)):
            await loaded.wait()
            await asyncio.sleep(0.1)

    return add


def _write_file(root: Path, path: str, content: str) -> Path:
    target = root / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(content)
    return target


@pytest.fixture
def rtc_create_file(
    jp_root_dir: Path, jp_serverapp: Any, rtc_add_doc_to_store: Any
) -> Callable[..., Awaitable[tuple[str, str]]]:
    """Write a text file under the served root; index it, or open its room, on request."""
    file_ids = jp_serverapp.web_app.settings["file_id_manager"]

    async def create(
        path: str, content: str | None = None, index: bool = False, store: bool = False
    ) -> tuple[str, str]:
        text = content or ""
        _write_file(jp_root_dir, path, text)
        if index:
            file_ids.index(path)
        if store:
            await rtc_add_doc_to_store("text", "file", path)
        return path, text

    return create


@pytest.fixture
def rtc_create_notebook(
    jp_root_dir: Path, jp_serverapp: Any, rtc_add_doc_to_store: Any
) -> Callable[..., Awaitable[tuple[str, str]]]:
    """Write a notebook (an empty one by default); index it, or open its room, on request."""
    file_ids = jp_serverapp.web_app.settings["file_id_manager"]

    async def create(
        path: str, content: str | None = None, index: bool = False, store: bool = False
    ) -> tuple[str, str]:
        if not path.endswith(".ipynb"):
            raise ValueError(f"a notebook's name ends with .ipynb: {path}")
        text = content if content is not None else nbformat.writes(nbformat.v4.new_notebook())
        _write_file(jp_root_dir, path, text)
        if index:
            file_ids.index(path)
        if store:
            await rtc_add_doc_to_store("json", "notebook", path)
        return path, text

    return create


@pytest.fixture
def rtc_create_SQLite_store() -> None:
    pytest.skip(NOT_APPLICABLE)


@pytest.fixture
def rtc_create_mock_document_room() -> None:
    pytest.skip(NOT_APPLICABLE)
