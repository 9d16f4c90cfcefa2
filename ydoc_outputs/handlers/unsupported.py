"""jupyter-collaboration endpoints we do not implement yet: a clear JSON 501.

The stock frontend calls timeline, fork and undo/redo only when a user opens those
features, and tolerates an error answer.
"""

from __future__ import annotations

from jupyter_server.auth.decorator import authorized
from tornado import web

from .base import ExtensionAPIHandler

__all__ = ["UnsupportedHandler"]


class UnsupportedHandler(ExtensionAPIHandler):
    auth_resource = "contents"

    def _refuse(self, feature: str) -> None:
        raise web.HTTPError(501, f"ydoc-outputs does not implement collaboration {feature} yet")

    @web.authenticated
    @authorized("read")
    def get(self, feature: str, _rest: str = "") -> None:
        self._refuse(feature)

    @web.authenticated
    @authorized("write")
    def put(self, feature: str, _rest: str = "") -> None:
        self._refuse(feature)

    @web.authenticated
    @authorized("write")
    def post(self, feature: str, _rest: str = "") -> None:
        self._refuse(feature)

    @web.authenticated
    @authorized("write")
    def delete(self, feature: str, _rest: str = "") -> None:
        self._refuse(feature)
