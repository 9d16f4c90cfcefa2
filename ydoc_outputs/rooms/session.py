"""``PUT api/collaboration/session/{path}``: the file id of a document, before its room.

The stock collaboration frontend asks here first, then opens the room
``{format}:{type}:{fileId}``.
"""

from __future__ import annotations

import json

from jupyter_core.utils import ensure_async
from jupyter_server.auth.decorator import authorized
from tornado import web

from ..handlers.base import ExtensionAPIHandler
from ..store.documents import KINDS

__all__ = ["SessionHandler"]

#: Largest request body, which is a tiny JSON object.
MAX_SESSION_BODY_BYTES = 4096


class SessionHandler(ExtensionAPIHandler):
    """The file id of ``path`` and this server's session id."""

    auth_resource = "contents"

    @web.authenticated
    @authorized
    async def put(self, path: str) -> None:
        if len(self.request.body) > MAX_SESSION_BODY_BYTES:
            raise web.HTTPError(413, f"body larger than {MAX_SESSION_BODY_BYTES} bytes")
        try:
            body = json.loads(self.request.body or b"{}")
        except (ValueError, RecursionError) as e:
            # ValueError: not JSON, not UTF-8, or an integer of more than 4300 digits.
            raise web.HTTPError(400, f"body is not JSON: {e}"[:200]) from e
        if not isinstance(body, dict):
            raise web.HTTPError(400, "body must be a JSON object")
        fmt, content_type = body.get("format"), body.get("type")
        if not isinstance(fmt, str) or not isinstance(content_type, str):
            raise web.HTTPError(400, "'format' and 'type' must be strings")
        if (fmt, content_type) not in KINDS:
            served = ", ".join(f"{f}:{t}" for f, t in KINDS)
            raise web.HTTPError(400, f"unsupported document {fmt}:{content_type}; served: {served}")
        if not await ensure_async(self.contents_manager.file_exists(path)):
            raise web.HTTPError(404, f"no file at {path!r}")
        file_ids = self.settings["file_id_manager"]
        file_id = file_ids.get_id(path)
        status = 200
        if file_id is None:
            file_id = file_ids.index(path)
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
