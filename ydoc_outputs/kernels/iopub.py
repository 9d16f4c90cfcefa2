"""Read a kernel's iopub messages in batches, at a fraction of jupyter_client's cost.

jupyter_client's ``get_iopub_msg`` costs about 150 µs a message on this project's 2-core
machine: an asyncio poll and receive per message, then ``Session.deserialize``, which
also parses every date of the header and parent header with dateutil. At 1,000 flushed
lines a second that was the largest part of the server's work. Where the client's iopub
channel is a ZMQ socket of this process (every local kernel), this reader waits for it
with one poll, then takes whatever has arrived with non-blocking receives on a
synchronous shadow of the same socket, and decodes each message itself: signature
checked as ``Session`` checks it, JSON parts unpacked with the session's unpacker, dates
left as the strings they are (nothing downstream reads them). ``Session``'s replay
check (a set of recent signatures) is left out: only the kernel publishes on the socket
this subscribes to. Any other client (a gateway's, whose channels are websockets) is
read through ``get_iopub_msg``.
"""

from __future__ import annotations

import hmac
import logging
import queue
from typing import Any

import zmq
import zmq.asyncio
from jupyter_client.session import Session

from ..outputs.ops import KernelMessage

__all__ = ["DELIMITER", "IopubReader", "MessageError", "decode"]

log = logging.getLogger(__name__)

#: Frames of a message after the routing identities: delimiter, then signature, header,
#: parent header, metadata and content (then binary buffers, if any).
DELIMITER = b"<IDS|MSG>"


class MessageError(ValueError):
    """A message that is not a well-formed, correctly signed Jupyter message."""


def decode(session: Session, frames: list[bytes]) -> KernelMessage:
    """The message of a multipart ZMQ message, checked and unpacked like ``session``
    would (signature included), but without parsing dates.

    Raises:
        MessageError: Malformed, or its signature does not match the session's key.
    """
    try:
        start = frames.index(DELIMITER) + 1
    except ValueError:
        raise MessageError("no delimiter") from None
    parts = frames[start:]
    if len(parts) < 5:
        raise MessageError(f"{len(parts)} frames after the delimiter, expected at least 5")
    signature, header_bytes, parent_bytes, metadata_bytes, content_bytes = parts[:5]
    if session.auth is not None:
        if not signature:
            raise MessageError("unsigned message")
        if not hmac.compare_digest(signature, session.sign(parts[1:5])):
            raise MessageError("invalid signature")
    try:
        unpack = session.unpack
        header = unpack(header_bytes)
        message: KernelMessage = {
            "header": header,
            "msg_id": header.get("msg_id"),
            "msg_type": header.get("msg_type"),
            "parent_header": unpack(parent_bytes),
            "metadata": unpack(metadata_bytes),
            "content": unpack(content_bytes),
            "buffers": [memoryview(buffer) for buffer in parts[5:]],
        }
    except Exception as e:
        raise MessageError(f"cannot unpack: {e!r}") from e
    return message


class IopubReader:
    """The iopub messages of one started kernel client (not safe to share between tasks).

    Args:
        client: A jupyter_client (or gateway) kernel client whose channels are started.
    """

    def __init__(self, client: Any) -> None:
        self._client = client
        self._socket: zmq.asyncio.Socket | None = None
        self._shadow: zmq.Socket[Any] | None = None
        socket = getattr(getattr(client, "iopub_channel", None), "socket", None)
        session = getattr(client, "session", None)
        if isinstance(socket, zmq.asyncio.Socket) and isinstance(session, Session):
            self._socket = socket
            self._shadow = zmq.Socket.shadow(socket.underlying)
            self._session = session

    @property
    def fast(self) -> bool:
        """Whether messages are read from the socket directly."""
        return self._shadow is not None

    async def first(self) -> list[KernelMessage]:
        """Wait until at least one message has arrived; return it (or them).

        Cancelling the wait loses nothing: no message is taken before it returns.
        """
        if self._socket is None:
            return [await self._client.get_iopub_msg()]
        while True:
            messages = self.ready(1)
            if messages:
                return messages
            await self._socket.poll()  # until readable

    def ready(self, limit: int) -> list[KernelMessage]:
        """Up to ``limit`` messages that have arrived, without waiting for more.

        Only for a fast reader (see :meth:`more` for any). A message that is malformed
        or badly signed is logged and skipped.
        """
        assert self._shadow is not None and self._socket is not None
        if self._socket.closed:
            # The shadow would use the freed socket: fail like a read of a closed one.
            raise zmq.ZMQError(zmq.ENOTSOCK)
        messages: list[KernelMessage] = []
        while len(messages) < limit:
            try:
                frames = self._shadow.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            try:
                messages.append(decode(self._session, frames))
            except MessageError as e:
                log.warning("dropping an iopub message: %s", e)
        return messages

    async def more(self, limit: int) -> list[KernelMessage]:
        """Up to ``limit`` messages that have arrived, without waiting for more."""
        if self._shadow is not None:
            return self.ready(limit)
        messages: list[KernelMessage] = []
        while len(messages) < limit:
            try:
                messages.append(await self._client.get_iopub_msg(timeout=0))
            except queue.Empty:
                break
        return messages
