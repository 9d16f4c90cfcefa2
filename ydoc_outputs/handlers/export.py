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
from ..store.notebook import load_notebook, notebook_json
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
            text = notebook_json(room.ynotebook)
        else:
            model = await ensure_async(self.contents_manager.get(api_path, type="notebook"))
            ynotebook = YNotebook()
            load_notebook(ynotebook, model["content"])
            text = notebook_json(ynotebook)
        self.finish(text)
