"""The pages' kernel websockets: what a page asks before it can show a running cell's
widgets is answered while the cell runs.

A page that opens (or reloads) while the server runs a cell asks the kernel, before it
shows that cell's widgets: its ``kernel_info`` (JupyterLab's comm layer waits for it),
which widget models exist (``comm_info_request``), and each model's state (a ``comm_msg``
with ``method: request_state``). It asks on the main shell, where the questions wait
behind the running cell: every widget said "Loading widget..." until the cell ended. (A
page that runs its cells itself never meets this: it cannot reload mid-run without
losing the run.)

- ``kernel_info_request`` and ``comm_info_request`` go to a subshell of the page's
  connection when the kernel has subshells (ipykernel 7, JEP 91), which answers while
  the main shell is busy. The subshell is made once per connection and kernel process
  (``create_subshell_request`` on control, its reply kept from the page); until it
  exists the questions wait for it, and if the kernel makes none within
  ``SUBSHELL_TIMEOUT`` they go to the main shell as sent. Their replies come back on the
  shell channel, as the page expects.
- ``request_state`` cannot go there: ipykernel 7 routes a comm's messages to the shell
  that last published on it, the running cell's. The server keeps every widget model of
  the kernels it runs cells on (``outputs/widgets.py``), so it answers the page itself,
  as the kernel would: an ``update`` with the model's whole state, parented to the
  request, on this page's iopub only. The request still goes to the kernel, whose own
  answer (after the cell, or at once when it is idle) changes nothing.

Everything else goes where the page sent it, and a kernel without subshells gets every
message as it came.

A page that connects while the server runs a cell missed the kernel's busy for it, and
its kernel indicator said Unknown (or Idle) for the rest of the run; after "Restart Kernel
and Run All" too, since the page reconnects after a restart. Once such a connection is
open, it is told what it missed: a ``status: busy`` parented to the running cell's
execute request, on its iopub only. The kernel's own idle for that request ends it; in
case that idle was already on its way when the busy went, the connection checks every
``STATUS_CHECK`` seconds and sends the idle itself once the server runs nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from jupyter_client.jsonutil import json_default
from jupyter_server.services.kernels.connection.base import (
    deserialize_msg_from_ws_v1,
    serialize_binary_message,
    serialize_msg_to_ws_v1,
)
from jupyter_server.services.kernels.connection.channels import (
    ZMQChannelsWebsocketConnection,
)
from tornado.ioloop import IOLoop
from tornado.websocket import WebSocketClosedError

__all__ = ["QuestionsConnection", "is_question", "requested_state", "tell_pages"]

log = logging.getLogger(__name__)

V1 = "v1.kernel.websocket.jupyter.org"

#: Seconds to wait for the kernel to create a connection's subshell.
SUBSHELL_TIMEOUT = 5.0
#: Seconds between two checks that a cell a late page was told of still runs.
STATUS_CHECK = 0.5
#: Seconds a page that connected mid-run waits for its first kernel message before it is
#: told of the running cell anyway (what it is told carries that message's session).
FIRST_MESSAGE_WAIT = 2.0


def is_question(msg_type: str, header: dict[str, Any]) -> bool:
    """Whether a shell request is a read-only question for the connection's subshell."""
    if header.get("subshell_id"):
        return False  # the page chose a subshell itself
    return msg_type in ("kernel_info_request", "comm_info_request")


def requested_state(msg_type: str, content: Any) -> str | None:
    """The comm id whose state a ``request_state`` asks for, else None."""
    if msg_type != "comm_msg" or not isinstance(content, dict):
        return None
    data = content.get("data")
    comm_id = content.get("comm_id")
    if isinstance(data, dict) and data.get("method") == "request_state":
        return comm_id if isinstance(comm_id, str) else None
    return None


#: kernel id -> its pages' open connections, for what the server tells them itself.
_pages: dict[str, set[QuestionsConnection]] = {}


def tell_pages(kernel_id: str, comm_id: str, state: dict[str, Any], parent: dict[str, Any]) -> None:
    """A widget model's change, as the kernel would send it, to every page of a kernel.

    For an Output widget the server gave output (outputs/capture.py): the kernel hears
    of it only once the cell ends, so it cannot tell the pages itself while the cell runs.
    """
    content = {"comm_id": comm_id, "data": {"method": "update", "state": state,
                                           "buffer_paths": []}}  # fmt: skip
    for page in list(_pages.get(kernel_id, ())):
        try:
            page._send_to_page("comm_msg", content, parent, [])
        except Exception:
            log.debug("could not tell a page of %s", kernel_id, exc_info=True)


def _has_subshells(info: Any) -> bool:
    features = info.get("supported_features") if isinstance(info, dict) else None
    return isinstance(features, list) and "kernel subshells" in features


class QuestionsConnection(ZMQChannelsWebsocketConnection):
    """jupyter_server's kernel websocket, answering a page's questions mid-run."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._subshell_id: str | None = None
        #: The kernel process the subshell lives in: a restart ends every subshell.
        self._subshell_process: object = None
        #: msg_id of our create_subshell_request while it has no reply.
        self._creating: str | None = None
        #: Questions that wait for the subshell, as the page sent them.
        self._waiting: list[Any] = []
        #: The page closed its websocket. The last page of a kernel to leave keeps its
        #: channels (jupyter_server buffers the kernel's messages for its return), so
        #: ``channels`` does not tell.
        self._left = False
        #: The header of the last kernel message this page was sent, as sent (unparsed).
        self._last_header: Any = None
        #: The page is to be told of the running cell after its first kernel message.
        self._telling = False

    # -- a page that connects mid-run ------------------------------------------------------

    def connect(self) -> Any:
        connected = super().connect()
        if connected is not None:
            connected.add_done_callback(lambda _: self._opened())
        return connected

    def _opened(self) -> None:
        if self.channels:
            _pages.setdefault(self.kernel_id, set()).add(self)
        if self._last_header is not None:
            self._tell_what_runs()
            return
        # Not before the page has a message of the kernel (its kernel_info reply comes at
        # once): then what it is told carries the session of the kernel that runs now,
        # which after a restart the server may not have heard of yet.
        self._telling = True
        IOLoop.current().call_later(FIRST_MESSAGE_WAIT, self._tell_once)

    def _tell_once(self) -> None:
        if self._telling:
            self._telling = False
            self._tell_what_runs()

    def disconnect(self) -> Any:
        self._left = True
        pages = _pages.get(self.kernel_id)
        if pages is not None:
            pages.discard(self)
            if not pages:
                del _pages[self.kernel_id]
        self._delete_subshell()
        return super().disconnect()  # type: ignore[no-untyped-call]

    def _delete_subshell(self) -> None:
        """Give back the kernel thread of this page's subshell: a page that reloads
        gets a new connection, and each would otherwise leave one behind."""
        subshell_id, self._subshell_id = self._subshell_id, None
        control = self.channels.get("control") if self.channels else None
        if subshell_id is None or control is None or control.closed():
            return
        if self._subshell_process is not self._process():
            return  # the kernel restarted: the subshell went with its process
        with contextlib.suppress(Exception):
            self.session.send(control, "delete_subshell_request", {"subshell_id": subshell_id})

    def _runner(self) -> Any:
        extension = self.websocket_handler.settings.get("ydoc_outputs")
        return extension.execution.runner(self.kernel_id) if extension else None

    def _tell_what_runs(self) -> None:
        runner = self._runner()
        msg_id = runner.running_msg_id if runner is not None else None
        if msg_id is None or self._left or not self.channels:
            return
        parent = {"msg_id": msg_id, "msg_type": "execute_request"}
        self._send_to_page("status", {"execution_state": "busy"}, parent, [])
        loop = IOLoop.current()

        def check() -> None:
            if self._left or not self.channels:
                return  # the page left
            runner = self._runner()
            now = runner.running_msg_id if runner is not None else None
            if now == msg_id:
                loop.call_later(STATUS_CHECK, check)
            elif now is None:  # ended; its idle may have reached the page first
                self._send_to_page("status", {"execution_state": "idle"}, parent, [])
            # Another cell runs: the page heard its busy from the kernel itself.

        loop.call_later(STATUS_CHECK, check)

    def _send_to_page(
        self, msg_type: str, content: dict[str, Any], parent: dict[str, Any], buffers: list[bytes]
    ) -> None:
        """An iopub message from the kernel, as the kernel would send it, to this page only."""
        if self._left:
            return
        msg = self.session.msg(msg_type, content, parent=parent)
        # As the kernel would send it, with the kernel's session id. JupyterLab takes the
        # session of each message it receives as the kernel's, and drops a message still
        # queued for handling when a later one changed it: one from the server's own
        # session, arriving while the page still handled a widget's comm_opens, would
        # lose the models they create.
        session = self._kernel_session()
        if session is not None:
            msg["header"]["session"] = session
        if self.subprotocol == V1:
            parts = [self.session.pack(msg[key]) for key in
                     ("header", "parent_header", "metadata", "content")]  # fmt: skip
            frame: str | bytes = serialize_msg_to_ws_v1([*parts, *buffers], "iopub")
        else:
            msg["channel"] = "iopub"
            msg["buffers"] = buffers
            if buffers:
                frame = serialize_binary_message(msg)
            else:
                frame = json.dumps(msg, default=json_default)
        # The websocket may be closing before its on_close has told us (_left).
        with contextlib.suppress(WebSocketClosedError):
            self.write_message(frame, binary=isinstance(frame, bytes))

    def _kernel_session(self) -> str | None:
        """The session of the last kernel message sent to this page (sending the same
        changes nothing there), else of the last one the server received."""
        header = self._last_header
        if header is not None:
            with contextlib.suppress(Exception):
                if not isinstance(header, dict):
                    header = self.session.unpack(bytes(header))
                session = header.get("session")
                if isinstance(session, str) and session:
                    return session
        runner = self._runner()
        session = runner.kernel_session if runner is not None else None
        return session if isinstance(session, str) else None

    def request_kernel_info(self) -> Any:
        """jupyter_server's own question before it opens the websocket, on control.

        jupyter_server asks once per kernel, on the shell: a page that was the first to
        connect while a cell ran waited for the cell to end before its websocket even
        opened. Kernels answer it on control too (JEP 80).
        """
        if hasattr(self.kernel_manager, "_kernel_info_future"):
            return super().request_kernel_info()  # type: ignore[no-untyped-call]
        if self.kernel_info_channel is None:
            self.kernel_info_channel = self.multi_kernel_manager.connect_control(self.kernel_id)
        self.kernel_info_channel.on_recv(self._handle_kernel_info_reply)
        self.session.send(self.kernel_info_channel, "kernel_info_request")
        self.kernel_manager._kernel_info_future = self._kernel_info_future
        return asyncio.wrap_future(self._kernel_info_future)

    # -- incoming (page -> kernel) ---------------------------------------------------------

    def handle_incoming_message(self, incoming_msg: Any) -> None:
        parsed = None
        # What cannot be read is not ours to judge: jupyter_server reports it as it came.
        with contextlib.suppress(Exception):
            parsed = self._parse(incoming_msg)
        if parsed is not None:
            msg_type, header, content = parsed
            comm_id = requested_state(msg_type, content)
            if comm_id is not None:
                try:
                    self._answer_state(comm_id, header)
                except Exception:
                    log.warning("could not answer request_state of %s", comm_id, exc_info=True)
            elif is_question(msg_type, header) and self._kernel_has_subshells():
                self._ask_on_subshell(incoming_msg)
                return
        super().handle_incoming_message(incoming_msg)

    def _ask_on_subshell(self, incoming_msg: Any) -> None:
        if self._subshell_id is not None and self._subshell_process is not self._process():
            self._subshell_id = None  # the kernel restarted: its subshells are gone
        if self._subshell_id is not None:
            self._send_to_subshell(incoming_msg)
            return
        self._waiting.append(incoming_msg)
        if self._creating is None:
            self._create_subshell()

    def _parse(self, ws_msg: Any) -> tuple[str, dict[str, Any], Any] | None:
        """(msg_type, header, content of a comm_msg) of a shell message, else None."""
        if self.subprotocol == V1:
            if not isinstance(ws_msg, bytes):
                return None
            channel, msg_list = deserialize_msg_from_ws_v1(ws_msg)
            if channel != "shell" or len(msg_list) < 4:
                return None
            header = json.loads(msg_list[0])
            msg_type = str(header.get("msg_type", ""))
            content = json.loads(msg_list[3]) if msg_type == "comm_msg" else None
            return msg_type, header, content
        if not isinstance(ws_msg, str):
            return None  # the legacy binary form: left as it came
        msg = json.loads(ws_msg)
        if msg.get("channel", "shell") != "shell":
            return None
        header = msg.get("header") or {}
        return str(header.get("msg_type", "")), header, msg.get("content")

    def _answer_state(self, comm_id: str, request: dict[str, Any]) -> None:
        """Send this page a model's whole state, if the server keeps it."""
        runner = self._runner()
        found = runner.widgets.states.current(comm_id) if runner is not None else None
        if found is None:
            return
        state, paths, buffers = found
        content = {
            "comm_id": comm_id,
            "data": {"method": "update", "state": state, "buffer_paths": paths},
        }
        self._send_to_page("comm_msg", content, request, buffers)

    def _kernel_has_subshells(self) -> bool:
        future = getattr(self.kernel_manager, "_kernel_info_future", None)
        if future is None or not future.done() or future.cancelled():
            return False
        return _has_subshells(future.result())

    def _process(self) -> object:
        provisioner = getattr(self.kernel_manager, "provisioner", None)
        return getattr(provisioner, "process", None) or provisioner

    def _create_subshell(self) -> None:
        control = self.channels.get("control") if self.channels else None
        if control is None:
            self._flush(None)
            return
        sent = self.session.send(control, "create_subshell_request", {})
        self._creating = sent["header"]["msg_id"] if sent else None
        self._subshell_process = self._process()
        creating = self._creating

        def give_up() -> None:
            if self._creating == creating and creating is not None:
                log.warning("kernel %s made no subshell; questions go to the main shell",
                            self.kernel_id)  # fmt: skip
                self._creating = None
                self._flush(None)

        loop = IOLoop.current()
        loop.call_later(SUBSHELL_TIMEOUT, give_up)

    def _flush(self, subshell_id: str | None) -> None:
        waiting, self._waiting = self._waiting, []
        for ws_msg in waiting:
            if subshell_id is None:
                super().handle_incoming_message(ws_msg)
            else:
                self._send_to_subshell(ws_msg)

    def _send_to_subshell(self, ws_msg: Any) -> None:
        assert self._subshell_id is not None
        with contextlib.suppress(Exception):
            ws_msg = self._with_subshell(ws_msg, self._subshell_id)
        super().handle_incoming_message(ws_msg)

    def _with_subshell(self, ws_msg: Any, subshell_id: str) -> Any:
        if self.subprotocol == V1:
            channel, msg_list = deserialize_msg_from_ws_v1(ws_msg)
            header = json.loads(msg_list[0])
            header["subshell_id"] = subshell_id
            msg_list[0] = json.dumps(header).encode("utf-8")
            return serialize_msg_to_ws_v1(msg_list, channel)
        msg = json.loads(ws_msg)
        msg["header"]["subshell_id"] = subshell_id
        return json.dumps(msg)

    # -- outgoing (kernel -> page) ---------------------------------------------------------

    def _on_zmq_reply(self, stream: Any, msg_list: Any) -> None:
        if self._creating is not None and getattr(stream, "channel", None) == "control":
            reply = None
            with contextlib.suppress(Exception):
                reply = self._creation_reply(msg_list)
            if reply is not None:  # ours, not the page's
                self._creating = None
                subshell_id = reply.get("subshell_id")
                if reply.get("status") == "ok" and isinstance(subshell_id, str):
                    self._subshell_id = subshell_id
                    self._flush(subshell_id)
                else:
                    self._flush(None)
                return
        self._last_header = msg_list[0] if self.subprotocol == V1 else msg_list.get("header")
        super()._on_zmq_reply(stream, msg_list)  # type: ignore[no-untyped-call]
        if self._telling:
            self._tell_once()

    def _creation_reply(self, msg_list: Any) -> dict[str, Any] | None:
        """The content of the reply to our create_subshell_request, or None."""
        if self.subprotocol == V1:
            parent = self.session.unpack(msg_list[1])
            if parent.get("msg_id") != self._creating:
                return None
            content: dict[str, Any] = self.session.unpack(msg_list[3])
            return content
        if msg_list["parent_header"].get("msg_id") != self._creating:
            return None
        return dict(msg_list["content"])
