"""``POST api/kernels/{kernel_id}/execute``: run a cell of a shared document on the server.

The body is ``{"cell_id": ..., "document_id": "json:notebook:{file_id}"}``, as sent by
jupyter-docprovider's server-side executor. The answer (202) comes at once; the
execution goes on if the request is dropped, and its output goes into the document.
"""

from __future__ import annotations

from typing import Any

from jupyter_core.utils import ensure_async
from jupyter_server.auth.decorator import authorized
from tornado import web

from ..kernels.queue import sent_time
from ..rooms.manager import RoomError, RoomManager
from .base import ExtensionAPIHandler

__all__ = ["ExecuteHandler"]


#: Longest ``cell_id`` or ``document_id`` accepted. nbformat cell ids have at most 64
#: characters and room names are ``json:notebook:`` and a uuid; a longer id cannot name
#: anything, and refusing it early keeps huge strings out of lookups and logs.
MAX_ID_CHARS = 256


class ExecuteHandler(ExtensionAPIHandler):
    auth_resource = "kernels"

    def _body(self) -> dict[str, Any]:
        body = self.json_object(self.extension.max_body_bytes)
        for key in ("cell_id", "document_id"):
            if not isinstance(body.get(key), str) or not body[key]:
                raise web.HTTPError(400, f"{key!r} must be a non-empty string")
            if len(body[key]) > MAX_ID_CHARS:
                raise web.HTTPError(400, f"{key!r} longer than {MAX_ID_CHARS} characters")
        return body

    @web.authenticated
    @authorized("execute")
    async def post(self, kernel_id: str) -> None:
        # Running a cell reads the notebook and writes its outputs into it (and to disk):
        # executing on the kernel is not enough, the notebook must be writable too.
        user = self.current_user
        if not await ensure_async(self.authorizer.is_authorized(self, user, "write", "contents")):
            raise web.HTTPError(403, "not authorized to write notebooks (contents)")
        body = self._body()
        cell_id: str = body["cell_id"]
        document_id: str = body["document_id"]
        kernels = self.kernel_manager
        if kernel_id not in kernels:
            raise web.HTTPError(404, f"no kernel with id {kernel_id!r}")
        if not await ensure_async(kernels.get_kernel(kernel_id).is_alive()):
            raise web.HTTPError(409, f"kernel {kernel_id!r} is dead: restart it first")
        rooms: RoomManager = self.extension.room_manager
        try:
            room = await rooms.get_notebook_room(document_id)
        except RoomError as e:
            raise web.HTTPError(e.status, e.message) from e
        # The cell's place among the code cells, should it be gone when the queue decides.
        found = room.cells.find(cell_id)
        if found is None:
            rooms.maybe_clean_up(room)
            raise web.HTTPError(404, f"no cell {cell_id!r} in {document_id!r}")
        ycell, position = found
        if ycell.get("cell_type") != "code":
            rooms.maybe_clean_up(room)
            raise web.HTTPError(400, f"cell {cell_id!r} is not a code cell")
        code = str(ycell["source"])
        await self.extension.execution.submit(
            kernel_id, room, cell_id, code, position,
            sent=sent_time(self.request.query),
            sender=getattr(user, "username", None) if user is not None else None,
        )  # fmt: skip
        self.set_status(202)
        self.finish(
            {
                "kernel_id": kernel_id,
                "document_id": document_id,
                "cell_id": cell_id,
                "status": "queued",
            }
        )
