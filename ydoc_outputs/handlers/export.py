"""``GET api/ydoc-outputs/export/{path}``: the notebook as it is synced now, as .ipynb JSON.

From the open room if there is one, else from disk; in both cases exactly the text
the autosave writes (nbformat 4.5).
"""

from __future__ import annotations

from jupyter_core.utils import ensure_async
from jupyter_server.auth.decorator import authorized
from jupyter_ydoc import YNotebook
from tornado import web

from ..rooms.manager import ROOM_PREFIX
from ..store.notebook import InvalidNotebook, exported_json, load_notebook
from .base import ExtensionAPIHandler

__all__ = ["ExportHandler"]


class ExportHandler(ExtensionAPIHandler):
    auth_resource = "contents"

    @web.authenticated
    @authorized("read")
    async def get(self, path: str) -> None:
        file_id = self.settings["file_id_manager"].get_id(path)
        rooms = self.extension.room_manager
        room = rooms.notebook_room(ROOM_PREFIX + file_id) if file_id else None
        if room is not None:
            ynotebook = room.ynotebook
        else:
            if not await ensure_async(self.contents_manager.file_exists(path)):
                raise web.HTTPError(404, f"no notebook at {path!r}")
            model = await ensure_async(self.contents_manager.get(path, type="notebook"))
            ynotebook = YNotebook()
            load_notebook(ynotebook, model["content"])
        try:
            text = exported_json(ynotebook)
        except InvalidNotebook as e:
            # No client update can make it so (the guard runs the same checks); the
            # file can, written by another program or a text view of it.
            raise web.HTTPError(409, f"{path!r} cannot be exported: {e}") from e
        self.set_header("Content-Type", "application/x-ipynb+json; charset=UTF-8")
        self.finish(text)
