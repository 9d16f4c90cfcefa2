"""A test-only server extension: reaches ``settings["jupyter_server_ydoc"]`` from inside the
server process, as extensions built on jupyter-collaboration do, and records the
collaboration events.

Enabled with ``--ServerApp.jpserver_extensions={"tests.collab_probe": true}`` (the server
gets the repository root on its ``PYTHONPATH``). Every endpoint is authenticated:

- ``GET api/test-probe/events``: every event of the session, awareness and fork schemas
  emitted so far, in order, each with its ``schema_id``.
- ``POST api/test-probe/document``: ``get_document(**args)``; the document is kept under a
  handle, so that a later ``GET api/test-probe/document/{handle}`` reads the *same* object
  again, and ``POST api/test-probe/document/{handle}/append`` appends a markdown cell to it.
- ``GET api/test-probe/room/{name}``: the open room's document, read through
  ``ywebsocket_server.room_exists / get_room``, the way jupyter-ai-tools reads it.
- ``POST api/test-probe/ai-tools``: calls a function of ``jupyter_ai_tools`` (jupyter-ai's
  notebook tools), or, where that package is not installed, the same calls it makes.
"""

from __future__ import annotations

import json
import traceback
import uuid
from typing import Any

from jupyter_server.base.handlers import APIHandler
from tornado import web

__all__ = ["SCHEMAS"]

SCHEMAS = [
    "https://schema.jupyter.org/jupyter_collaboration/session/v1",
    "https://schema.jupyter.org/jupyter_collaboration/awareness/v1",
    "https://schema.jupyter.org/jupyter_collaboration/fork/v1",
]

_events: list[dict[str, Any]] = []
_documents: dict[str, Any] = {}


def _jsonable(document: Any) -> Any:
    return json.loads(json.dumps(document.get(), default=str))


class _ProbeHandler(APIHandler):
    @property
    def collaboration(self) -> Any:
        return self.settings["jupyter_server_ydoc"]

    def body(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.request.body or b"{}")
        return value


class EventsHandler(_ProbeHandler):
    @web.authenticated
    def get(self) -> None:
        self.finish({"events": _events})


class DocumentHandler(_ProbeHandler):
    @web.authenticated
    async def post(self) -> None:
        document = await self.collaboration.get_document(**self.body())
        if document is None:
            self.finish({"handle": None})
            return
        handle = uuid.uuid4().hex
        _documents[handle] = document
        self.finish(
            {"handle": handle, "class": type(document).__name__, "content": _jsonable(document)}
        )


class HeldDocumentHandler(_ProbeHandler):
    @web.authenticated
    def get(self, handle: str) -> None:
        self.finish({"content": _jsonable(_documents[handle])})

    @web.authenticated
    def post(self, handle: str) -> None:
        """Append a markdown cell to the held document."""
        document = _documents[handle]
        source = self.body()["source"]
        document.append_cell({"cell_type": "markdown", "source": source, "metadata": {}})
        self.finish({"content": _jsonable(document)})


class RoomHandler(_ProbeHandler):
    @web.authenticated
    async def get(self, name: str) -> None:
        server = self.collaboration.ywebsocket_server
        if not server.room_exists(name):
            self.finish({"exists": False})
            return
        room = await server.get_room(name)
        document = room._document
        self.finish(
            {
                "exists": True,
                "room_id": room.room_id,
                "content": _jsonable(document) if document is not None else None,
            }
        )


class AIToolsHandler(_ProbeHandler):
    """Runs one notebook tool: ``{"tool": name, "args": {...}, "jsd": bool, "mimic": bool}``.

    ``jsd: false`` makes jupyter-ai-tools take its jupyter_server_ydoc path although
    jupyter_server_documents is importable (it chooses by import, not by what is
    enabled); ``mimic: true`` makes its calls here instead of importing it.
    """

    @web.authenticated
    async def post(self) -> None:
        body = self.body()
        try:
            if body.get("mimic"):
                result = await _mimic(self.settings, body["tool"], body.get("args", {}))
            else:
                result = await _real(body["tool"], body.get("args", {}), body.get("jsd", True))
        except Exception as e:
            self.finish({"error": repr(e), "traceback": traceback.format_exc()})
            return
        self.finish({"result": result})


async def _real(tool: str, args: dict[str, Any], jsd: bool) -> Any:
    import jupyter_ai_tools.utils as utils
    from jupyter_ai_tools.toolkits import notebook

    saved = utils.JSD_PRESENT
    utils.JSD_PRESENT = saved and jsd
    try:
        return await getattr(notebook, tool)(**args)
    finally:
        utils.JSD_PRESENT = saved


async def _mimic(settings: dict[str, Any], tool: str, args: dict[str, Any]) -> Any:
    """jupyter-ai-tools 0.7's calls (``utils.get_file_id``, ``get_room``,
    ``get_jupyter_ydoc``, ``read_notebook_json``, ``add_cell``), made here."""
    import os

    from jupyter_server.serverapp import ServerApp

    serverapp = ServerApp.instance()
    absolute = os.path.realpath(os.path.join(serverapp.root_dir, args["file_path"]))
    if tool == "read_notebook_json":
        with open(absolute, encoding="utf-8") as f:
            return json.load(f)
    if tool != "add_cell":
        raise ValueError(tool)
    file_id = settings["file_id_manager"].get_id(absolute)
    server = settings["jupyter_server_ydoc"].ywebsocket_server
    room_id = f"json:notebook:{file_id}"
    room = await server.get_room(room_id) if server.room_exists(room_id) else None
    if room is None:
        raise LookupError(f"no open room for {args['file_path']}")
    ydoc = room._document
    cell = {"cell_type": args.get("cell_type", "code"), "source": ""}
    if cell["cell_type"] == "code":
        cell.update(execution_count=None, outputs=[])
    ycell = ydoc.create_ycell(cell)
    ydoc.ycells.append(ycell)
    # _atomic_replace_cell_source
    source = ycell["source"]
    source.clear()
    source += args.get("content") or ""
    return None


async def _listener(logger: Any, schema_id: str, data: dict[str, Any]) -> None:
    _events.append({"schema_id": schema_id, **data})


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "tests.collab_probe"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    for schema_id in SCHEMAS:
        serverapp.event_logger.add_listener(schema_id=schema_id, listener=_listener)
    base = serverapp.web_app.settings["base_url"].rstrip("/")
    serverapp.web_app.add_handlers(
        ".*$",
        [
            (f"{base}/api/test-probe/events", EventsHandler),
            (f"{base}/api/test-probe/document", DocumentHandler),
            (f"{base}/api/test-probe/document/([0-9a-f]+)", HeldDocumentHandler),
            (f"{base}/api/test-probe/room/(.+)", RoomHandler),
            (f"{base}/api/test-probe/ai-tools", AIToolsHandler),
        ],
    )
