"""``PUT api/collaboration/session/{path}``: the file id of a document, before its room.

The stock collaboration frontend asks here first, then opens the room
``{format}:{type}:{fileId}``. A path is resolved as the contents API resolves it
(:func:`~ydoc_outputs.handlers.paths.visible_file`), so every spelling of one file gets
its one file id, and a file the contents API hides is not found here either.
"""

from __future__ import annotations

from jupyter_server.auth.decorator import authorized
from tornado import web

from ..handlers.base import ExtensionAPIHandler
from ..handlers.paths import visible_file
from ..store.documents import kind_of

__all__ = ["SessionHandler"]

#: Largest request body, which is a tiny JSON object.
MAX_SESSION_BODY_BYTES = 4096


class SessionHandler(ExtensionAPIHandler):
    """The file id of ``path`` and this server's session id."""

    auth_resource = "contents"

    @web.authenticated
    @authorized
    async def put(self, path: str) -> None:
        body = self.json_object(MAX_SESSION_BODY_BYTES)
        fmt, content_type = body.get("format"), body.get("type")
        if not isinstance(fmt, str) or not isinstance(content_type, str):
            raise web.HTTPError(400, "'format' and 'type' must be strings")
        if kind_of(fmt, content_type) is None:
            raise web.HTTPError(
                400,
                f"unsupported document {fmt}:{content_type}: no installed package registers "
                "that type in the jupyter_ydoc entry point group, or it is not read in that format",
            )
        # Indexed under one spelling: another would get another file id, and so a second
        # room editing the same file.
        api_path = await visible_file(self.contents_manager, path)
        file_ids = self.settings["file_id_manager"]
        file_id = file_ids.get_id(api_path)
        status = 200
        if file_id is None:
            file_id = file_ids.index(api_path)
            status = 201
        if file_id is None:
            raise web.HTTPError(404, f"no file at {path!r}")
        self.set_status(status)
        self.finish(
            {
                "format": fmt,
                "type": content_type,
                "fileId": file_id,
                "sessionId": self.extension.room_manager.session_id,
            }
        )
