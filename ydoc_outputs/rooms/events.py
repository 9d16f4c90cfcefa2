"""The jupyter events of jupyter-server-ydoc, emitted by our rooms.

Extensions built on jupyter-collaboration listen to them: jupyterlab-chat and jupyter-ai
attach to a chat when its room says ``initialize`` / ``Room initialized``, and let go on
``clean``. Same schema ids, fields and messages as jupyter-server-ydoc 3.0.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = [
    "AWARENESS_SCHEMA_ID",
    "FORK_SCHEMA_ID",
    "SESSION_SCHEMA_ID",
    "CollaborationEvents",
]

SESSION_SCHEMA_ID = "https://schema.jupyter.org/jupyter_collaboration/session/v1"
AWARENESS_SCHEMA_ID = "https://schema.jupyter.org/jupyter_collaboration/awareness/v1"
FORK_SCHEMA_ID = "https://schema.jupyter.org/jupyter_collaboration/fork/v1"

_SCHEMAS = Path(__file__).parent.parent / "events"

log = logging.getLogger(__name__)


class CollaborationEvents:
    """Emits the three event kinds through the server's ``EventLogger``.

    Args:
        event_logger: ``serverapp.event_logger`` (None: nothing is emitted).
        path_of: The path of a file id, if it still has one.
    """

    def __init__(self, event_logger: Any, path_of: Callable[[str], str | None]) -> None:
        self._logger = event_logger
        self._path_of = path_of
        if event_logger is None:
            return
        for name in ("session", "awareness", "fork"):
            try:
                event_logger.register_event_schema(_SCHEMAS / f"{name}.yaml")
            except Exception as e:
                # Registered already (by another extension that ships the same schema).
                log.debug("event schema %s not registered: %r", name, e)

    def _emit(self, schema_id: str, data: dict[str, Any]) -> None:
        if self._logger is None:
            return
        try:
            self._logger.emit(schema_id=schema_id, data=data)
        except Exception:
            # A listener's or the schema's fault must never break a room.
            log.exception("emitting %s failed", schema_id)

    def session(
        self, room: str, action: str | None, msg: str, level: str = "INFO", path: str | None = None
    ) -> None:
        """A document room's event: ``action`` is initialize, load, save, overwrite,
        clean, or None (an error)."""
        if path is None:
            path = self._path_of(room.split(":", 2)[-1]) or ""
        data: dict[str, Any] = {"level": level, "room": room, "path": path, "msg": msg}
        if action is not None:
            data["action"] = action
        self._emit(SESSION_SCHEMA_ID, data)

    def awareness(self, room: str, username: str, action: str) -> None:
        """A user's connection joined or left ``room``."""
        self._emit(AWARENESS_SCHEMA_ID, {"roomid": room, "username": username, "action": action})

    def fork(self, fork_room: str, info: dict[str, Any], username: str, action: str) -> None:
        """A fork was created or deleted."""
        data = {"fork_roomid": fork_room, "fork_info": info, "username": username, "action": action}
        self._emit(FORK_SCHEMA_ID, data)
