"""``GET api/ydoc-outputs/output/{document_id}/{cell_id}``: a cell's whole output, as text.

A cell past ``cell_output_chars`` keeps only its head and tail in the document; this
joins the head, the spill file and the tail again. For any other cell it is the text of
its outputs. Streams are given as printed, rich outputs by their ``text/plain``.
"""

from __future__ import annotations

from jupyter_server.auth.decorator import authorized
from tornado import web

from ..rooms.manager import RoomError
from ..ydoc.writer import find_code_cell, is_marker, output_dict, output_text
from .base import BodyAPIHandler

__all__ = ["OutputHandler"]


class OutputHandler(BodyAPIHandler):
    auth_resource = "contents"
    body_type = "text/plain; charset=UTF-8"

    @web.authenticated
    @authorized("read")
    async def get(self, document_id: str, cell_id: str) -> None:
        try:
            room = await self.extension.room_manager.get_notebook_room(document_id)
        except RoomError as e:
            raise web.HTTPError(e.status, e.message) from e
        ycell = find_code_cell(room.ynotebook, cell_id)
        if ycell is None:
            raise web.HTTPError(404, f"no code cell {cell_id!r} in {document_id!r}")
        # Taken now, in one go: the document may change while the file is streamed.
        head: list[str] = []
        tail: list[str] | None = None
        for output in ycell.get("outputs") or ():
            if is_marker(output):
                tail = []
                continue
            text = output_text(output_dict(output))
            (head if tail is None else tail).append(text)
        self.write("".join(head))
        if tail is not None and room.spill is not None:
            for chunk in room.spill.read(cell_id):
                self.write(chunk)
                await self.flush()
        self.finish("".join(tail or ()))
