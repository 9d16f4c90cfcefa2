"""What every REST handler of the extension shares: typed access to its services, and the
Content-Type of answers that are not JSON."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from jupyter_server.base.handlers import APIHandler

if TYPE_CHECKING:
    from asyncio import Future

    from ..app import YdocOutputsApp

__all__ = ["BodyAPIHandler", "ExtensionAPIHandler"]


class ExtensionAPIHandler(APIHandler):
    """An API handler that answers errors as JSON ``{"message": ...}`` (APIHandler does)."""

    @property
    def extension(self) -> YdocOutputsApp:
        app: YdocOutputsApp = self.settings["ydoc_outputs"]
        return app


class BodyAPIHandler(ExtensionAPIHandler):
    """An API handler whose answer is ``body_type``, not JSON; its errors stay JSON.

    ``APIHandler.finish`` sets the Content-Type to ``application/json`` unless given
    ``set_content_type``, over whatever the handler set. So a handler that finished its
    body in one go answered JSON, and one that flushed part of it first (the header was
    sent by then) answered its own type: one endpoint, two types. Here the type is the
    default header, and ``finish`` keeps it for every answer that is not an error.
    """

    #: The Content-Type of a successful answer.
    body_type: ClassVar[str]

    def set_default_headers(self) -> None:
        super().set_default_headers()
        # Also set again when an error clears the headers; write_error then sets JSON.
        self.set_header("Content-Type", self.body_type)

    def finish(self, *args: Any, **kwargs: Any) -> Future[None]:
        if self.get_status() < 400:
            kwargs.setdefault("set_content_type", self.body_type)
        done: Future[None] = super().finish(*args, **kwargs)
        return done
