"""What every REST handler of the extension shares: typed access to its services, and the
Content-Type of answers that are not JSON."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, ClassVar

from jupyter_server.base.handlers import APIHandler
from tornado import web

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

    def json_object(self, max_bytes: int) -> dict[str, Any]:
        """The request body, a JSON object of at most ``max_bytes`` (an empty body: {}).

        Raises:
            HTTPError: 413 if it is larger, 400 if it is not a JSON object.
        """
        if len(self.request.body) > max_bytes:
            raise web.HTTPError(413, f"body larger than {max_bytes} bytes")
        try:
            body = json.loads(self.request.body or b"{}")
        except (ValueError, RecursionError) as e:
            # ValueError: not JSON, not UTF-8, or an integer of more than 4300 digits;
            # RecursionError: nested too deep.
            raise web.HTTPError(400, f"body is not JSON: {e}"[:200]) from e
        if not isinstance(body, dict):
            raise web.HTTPError(400, "body must be a JSON object")
        return body


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
