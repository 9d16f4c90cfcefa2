"""``GET api/ydoc-outputs/export/{path}``: the notebook as it is synced now, as .ipynb JSON.

From the open room if there is one, else from disk; in both cases exactly the text
the autosave writes (nbformat 4.5).
"""

from __future__ import annotations

from jupyter_server.auth.decorator import authorized
from jupyter_ydoc import YNotebook
from tornado import web

from ..rooms.manager import ROOM_PREFIX
from ..store.documents import read_file
from ..store.notebook import InvalidNotebook, exported_json, load_notebook
from .base import BodyAPIHandler
from .paths import visible_file

__all__ = ["ExportHandler"]


class ExportHandler(BodyAPIHandler):
    auth_resource = "contents"
    # As jupyter_server serves a notebook it is asked to download.
    body_type = "application/x-ipynb+json"

    @web.authenticated
    @authorized("read")
    async def get(self, path: str) -> None:
        # The file the contents API serves at ``path``, under the spelling its room's
        # file id was indexed with (so ``./a.ipynb`` finds the open room of ``a.ipynb``).
        api_path = await visible_file(self.contents_manager, path)
        file_id = self.settings["file_id_manager"].get_id(api_path)
        rooms = self.extension.room_manager
        room = rooms.notebook_room(ROOM_PREFIX + file_id) if file_id else None
        if room is not None:
            ynotebook = room.ynotebook
        else:
            model = await read_file(self.contents_manager, api_path, type="notebook")
            ynotebook = YNotebook()
        try:
            if room is None:
                load_notebook(ynotebook, model["content"])
            text = exported_json(ynotebook)
        except InvalidNotebook as e:
            # No client update can make it so (the guard runs the same checks); the
            # file can, written by another program or a text view of it.
            raise web.HTTPError(409, f"{path!r} cannot be exported: {e}") from e
        self.finish(text)
