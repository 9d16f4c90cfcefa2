"""``POST api/ydoc-outputs/run/{path}``: run a notebook's code cells on the server.

What ``jupyter ydoc-outputs run`` asks for. The cells go into the same execution queue
as a page's execute requests (one at a time, in document order, stop on error, the next
one sent ahead), on the kernel of the notebook's session, which is started if there is
none. The answer (202) comes at once; each queued cell already shows ``[*]`` in the
shared document, and the run goes on whatever happens to the request.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import Any

from jupyter_core.utils import ensure_async
from jupyter_server.auth.decorator import authorized
from pycrdt import Map
from tornado import web

from ..rooms.manager import ROOM_PREFIX, RoomError
from ..rooms.room import NotebookRoom
from .base import ExtensionAPIHandler
from .execute import MAX_ID_CHARS
from .paths import visible_file

__all__ = ["CellRange", "RunHandler", "cell_range"]


@dataclass(frozen=True)
class CellRange:
    """Cells ``start`` (included) to ``stop`` (excluded) by index among all of a
    notebook's cells, as a Python slice; None: from the first, to the last."""

    start: int | None = None
    stop: int | None = None

    def bounds(self, count: int) -> tuple[int, int]:
        """The range in a notebook of ``count`` cells.

        Raises:
            HTTPError: 400 if it does not fit.
        """
        start = 0 if self.start is None else self.start
        stop = count if self.stop is None else self.stop
        asked = f"{_or_empty(self.start)}:{_or_empty(self.stop)}"
        if start > count or stop > count:
            raise web.HTTPError(400, f"cells {asked} out of range: the notebook has {count} cells")
        if start > stop:
            raise web.HTTPError(400, f"cells {asked}: start after stop")
        return start, stop


def _or_empty(value: int | None) -> str:
    return "" if value is None else str(value)


def cell_range(body: dict[str, Any]) -> CellRange:
    """The ``start`` and ``stop`` of a run's body.

    Raises:
        HTTPError: 400 if either is not a non-negative integer or null.
    """
    values: dict[str, int | None] = {}
    for key in ("start", "stop"):
        value = body.get(key)
        # bool is an int in Python, not in JSON.
        if value is not None and (type(value) is not int or value < 0):
            raise web.HTTPError(400, f"{key!r} must be a non-negative integer or null")
        values[key] = value
    return CellRange(values["start"], values["stop"])


@dataclass(frozen=True)
class _Cell:
    cell_id: str
    index: int
    position: int
    code: str


def _code_cells(room: NotebookRoom, start: int, stop: int) -> list[_Cell]:
    """The code cells to run among cells ``start:stop``: blank ones are skipped (as
    JupyterLab skips them), and a duplicated id runs only where it first appears (the
    execution queue names cells by id)."""
    cells: list[_Cell] = []
    seen: set[str] = set()
    position = 0
    with room.ynotebook.ydoc.transaction():
        for index, ycell in enumerate(room.ynotebook.ycells):
            if index >= stop:
                break
            if not isinstance(ycell, Map) or ycell.get("cell_type") != "code":
                continue
            cell_id = ycell.get("id")
            if index >= start and isinstance(cell_id, str) and cell_id not in seen:
                code = str(ycell.get("source", ""))
                if code.strip():
                    cells.append(_Cell(cell_id, index, position, code))
            if isinstance(cell_id, str):
                seen.add(cell_id)
            position += 1
    return cells


def _metadata_kernel(room: NotebookRoom) -> str | None:
    """The kernel name the notebook's metadata asks for, if any."""
    metadata = room.ynotebook.ydoc.get("meta", type=Map).get("metadata")
    if isinstance(metadata, Map):
        metadata = metadata.to_py()
    spec = metadata.get("kernelspec") if isinstance(metadata, dict) else None
    name = spec.get("name") if isinstance(spec, dict) else None
    return name if isinstance(name, str) and name else None


class RunHandler(ExtensionAPIHandler):
    auth_resource = "kernels"

    async def _allowed(self, action: str, resource: str) -> None:
        user = self.current_user
        if not await ensure_async(self.authorizer.is_authorized(self, user, action, resource)):
            raise web.HTTPError(403, f"not authorized to {action} {resource}")

    def _kernel_name(self, body: dict[str, Any]) -> str | None:
        name = body.get("kernel_name")
        if name is None:
            return None
        if not isinstance(name, str) or not name or len(name) > MAX_ID_CHARS:
            raise web.HTTPError(
                400, f"'kernel_name' must be a string of 1 to {MAX_ID_CHARS} characters"
            )
        return name

    async def _session(
        self, api_path: str, wanted: str | None, room: NotebookRoom
    ) -> dict[str, Any]:
        """The notebook's session (started with a kernel if there is none)."""
        sessions: Any = self.session_manager
        if await sessions.session_exists(path=api_path):
            session: dict[str, Any] = await sessions.get_session(path=api_path)
            running = session["kernel"]["name"]
            if wanted is not None and wanted != running:
                raise web.HTTPError(
                    409,
                    f"{api_path!r} already has a session with kernel {running!r}, not "
                    f"{wanted!r}: shut it down first, or run without a kernel name",
                )
            return session
        # Starting a session is what POST api/sessions needs.
        await self._allowed("write", "sessions")
        name = wanted or _metadata_kernel(room) or self.kernel_manager.default_kernel_name
        specs = await ensure_async(self.kernel_spec_manager.get_all_specs())
        if name not in specs:
            told = "asked for" if wanted else "named in the notebook's metadata"
            raise web.HTTPError(400, f"no kernel {name!r} ({told}) is installed")
        session = await sessions.create_session(
            path=api_path, name=posixpath.basename(api_path), type="notebook", kernel_name=name
        )
        return session

    @web.authenticated
    @authorized("execute")
    async def post(self, path: str) -> None:
        # Running cells writes their outputs into the notebook, as the execute endpoint.
        await self._allowed("write", "contents")
        body = self.json_object(self.extension.max_body_bytes)
        cells = cell_range(body)
        kernel_name = self._kernel_name(body)
        api_path = await visible_file(self.contents_manager, path)
        if not api_path.endswith(".ipynb"):
            raise web.HTTPError(400, f"{api_path!r} is not a notebook (.ipynb)")
        file_ids = self.settings["file_id_manager"]
        file_id = file_ids.get_id(api_path) or file_ids.index(api_path)
        if file_id is None:
            raise web.HTTPError(404, f"no file at {path!r}")
        rooms = self.extension.room_manager
        try:
            room = await rooms.get_notebook_room(ROOM_PREFIX + file_id)
        except RoomError as e:
            raise web.HTTPError(e.status, e.message) from e
        try:
            start, stop = cells.bounds(len(room.ynotebook.ycells))
            chosen = _code_cells(room, start, stop)
            session = await self._session(api_path, kernel_name, room) if chosen else None
            kernel_id = session["kernel"]["id"] if session is not None else None
            if kernel_id is not None:
                kernels = self.kernel_manager
                if not await ensure_async(kernels.get_kernel(kernel_id).is_alive()):
                    raise web.HTTPError(409, f"kernel {kernel_id!r} is dead: restart it first")
            user = self.current_user
            sender = getattr(user, "username", None) if user is not None else None
            for cell in chosen:
                assert kernel_id is not None
                await self.extension.execution.submit(
                    kernel_id, room, cell.cell_id, cell.code, cell.position, sender=sender
                )
        finally:
            # Held by each queued cell; free to close if nothing was queued.
            rooms.maybe_clean_up(room)
        self.set_status(202)
        self.finish(
            {
                "path": api_path,
                "document_id": room.name,
                "session_id": session["id"] if session is not None else None,
                "kernel_id": kernel_id,
                "kernel_name": session["kernel"]["name"] if session is not None else None,
                "cell_ids": [cell.cell_id for cell in chosen],
                "cell_indices": [cell.index for cell in chosen],
                "status": "queued",
            }
        )
