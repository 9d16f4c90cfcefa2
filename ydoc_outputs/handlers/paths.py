"""Which file an API path names: the file ``api/contents`` serves at it, under one spelling.

The endpoints that take a path (session, export) resolve it here first. So ``./a.ipynb``,
``sub/../a.ipynb`` and ``a.ipynb/`` are all ``a.ipynb``, with one file id and so one room,
and a hidden file is as absent as the contents API makes it.
"""

from __future__ import annotations

import posixpath
from typing import Any

from jupyter_core.utils import ensure_async
from tornado import web

__all__ = ["normalize_api_path", "visible_file"]


def normalize_api_path(path: str) -> str:
    """``path`` as jupyter_server's ``to_os_path`` reads it, relative to the root: empty
    parts dropped, ``.`` and ``x/..`` collapsed (lexically, as it does).

    Raises:
        tornado.web.HTTPError: 404 if the path leads out of the root directory, as
            jupyter_server's contents manager answers.
    """
    parts = [part for part in path.split("/") if part]
    normal = posixpath.normpath("/".join(parts)) if parts else ""
    if normal == ".":
        return ""
    if normal == ".." or normal.startswith("../"):
        raise web.HTTPError(404, f"{path!r} is outside the root directory")
    return normal


async def visible_file(contents_manager: Any, path: str) -> str:
    """The normalized API path of the file at ``path``, if the contents API serves it.

    Asks the contents manager itself, as jupyter_server's ``ContentsHandler.get`` does:
    a hidden path is refused unless ``allow_hidden``, then the manager's own ``get``
    decides (it refuses hidden files too, and paths outside the root).

    Raises:
        tornado.web.HTTPError: 404 for a path that names no file: missing, hidden, a
            directory, outside the root, or one the system cannot look up; the same
            answer for each, so that none
            tells whether a hidden file exists. Other errors of the contents manager
            (403 for a file it may not read) as it raised them.
    """
    missing = web.HTTPError(404, f"no file at {path!r}")
    try:
        api_path = normalize_api_path(path)
        if not api_path:
            raise missing  # the root directory
        if not contents_manager.allow_hidden and await ensure_async(
            contents_manager.is_hidden(api_path)
        ):
            raise missing
        model = await ensure_async(contents_manager.get(api_path, content=False))
    except web.HTTPError as e:
        if e.status_code == 404:
            raise missing from None
        raise
    except OSError:
        # The hidden check stats the path: a name too long for the system, or a path
        # through a file (``a.ipynb/x``). A path the system cannot look up names no file.
        raise missing from None
    if model.get("type") == "directory":
        raise missing
    return api_path
