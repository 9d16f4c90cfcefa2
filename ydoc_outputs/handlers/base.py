"""What every REST handler of the extension shares: typed access to its services."""

from __future__ import annotations

from typing import TYPE_CHECKING

from jupyter_server.base.handlers import APIHandler

if TYPE_CHECKING:
    from ..app import YdocOutputsApp

__all__ = ["ExtensionAPIHandler"]


class ExtensionAPIHandler(APIHandler):
    """An API handler that answers errors as JSON ``{"message": ...}`` (APIHandler does)."""

    @property
    def extension(self) -> YdocOutputsApp:
        app: YdocOutputsApp = self.settings["ydoc_outputs"]
        return app
