"""Read a kernel's iopub messages in batches, at a fraction of jupyter_client's cost.

jupyter_client's ``get_iopub_msg`` costs about 150 µs a message on this project's 2-core
machine: an asyncio poll and receive per message, then ``Session.deserialize``, which
also parses every date of the header and parent header with dateutil. At 1,000 flushed
lines a second that was the largest part of the server's work. Where the client's iopub
channel is a ZMQ socket of this process (every local kernel), this reader waits for it
with one poll, then takes whatever has arrived with non-blocking receives on a
synchronous shadow of the same socket, and decodes each message itself: signature
checked as ``Session`` checks it, JSON parts unpacked as the session's unpacker would,
dates left as the strings they are (nothing downstream reads them). ``Session``'s replay
check (a set of recent signatures) is left out: only the kernel publishes on the socket
this subscribes to. Any other client (a gateway's, whose channels are websockets) is
read through ``get_iopub_msg``.

Per message, the Python around each C call is what costs (a flushed line's message is
half a kilobyte): pyzmq's ``recv_multipart`` asks ``RCVMORE`` through an enum lookup per
frame, ``Session.sign`` copies an ``hmac.HMAC`` wrapper and ``json.loads`` goes through
two Python layers per part. :class:`MessageDecoder` does the same work with fewer of them.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import json.scanner
import logging
import os
import queue
from collections.abc import Callable
from typing import Any

import zmq
import zmq.asyncio
from jupyter_client.session import Session, json_unpacker

from ..outputs.ops import KernelMessage

__all__ = ["DELIMITER", "IopubReader", "MessageDecoder", "MessageError", "decode"]

log = logging.getLogger(__name__)

#: Frames of a message after the routing identities: delimiter, then signature, header,
#: parent header, metadata and content (then binary buffers, if any).
DELIMITER = b"<IDS|MSG>"
#: Values a copy of a dict may share with the original (a header's are all of these).
_SCALARS = (str, int, float, bool, type(None))
#: The metadata part of almost every iopub message.
_EMPTY_JSON_OBJECT = b"{}"

#: What ``json.loads`` calls in the end, to read one value from an index of a string.
_scan_once = json.scanner.make_scanner(json.JSONDecoder())  # type: ignore[arg-type]
#: The key pads of HMAC (RFC 2104).
_INNER_PAD = bytes(x ^ 0x36 for x in range(256))
_OUTER_PAD = bytes(x ^ 0x5C for x in range(256))


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class MessageError(ValueError):
    """A message that is not a well-formed, correctly signed Jupyter message."""


def _json_part(part: bytes) -> Any:
    """``json_unpacker(part)`` (jupyter_client's default unpacker) with fewer Python
    layers: the C scanner reads the value; anything else (leading or trailing
    whitespace, extra data, an error) goes through ``json_unpacker`` itself."""
    if part == _EMPTY_JSON_OBJECT:
        return {}
    text = part.decode("utf8", "replace")
    try:
        value, end = _scan_once(text, 0)
    except StopIteration:
        return json_unpacker(text)
    if end != len(text):
        return json_unpacker(text)
    return value


class _Signer:
    """HMAC of a message's four signed parts, as ``Session.sign`` computes it (RFC 2104,
    as ``hmac`` does), from hash states keyed once: two ``copy()`` of C objects per
    message, where ``Session.sign`` copies a Python ``hmac.HMAC`` wrapper too."""

    def __init__(self, key: bytes, digest: Callable[..., Any]) -> None:
        inner, outer = digest(), digest()
        size = inner.block_size
        if len(key) > size:
            key = digest(key).digest()
        key = key.ljust(size, b"\0")
        inner.update(key.translate(_INNER_PAD))
        outer.update(key.translate(_OUTER_PAD))
        self._inner, self._outer = inner, outer

    def sign(self, parts: list[bytes]) -> bytes:
        inner = self._inner.copy()
        for part in parts:
            inner.update(part)
        outer = self._outer.copy()
        outer.update(inner.digest())
        digest: str = outer.hexdigest()
        return digest.encode()


def _signer(session: Session) -> Callable[[list[bytes]], bytes]:
    """The fastest function that signs as ``session.sign`` does (checked on a sample)."""
    try:
        signer = _Signer(session.key, session.digest_mod)
        sample = [b"header", b"parent", b"{}", b'{"text": "\xc3\xa9"}']
        if signer.sign(sample) == session.sign(sample):
            return signer.sign
    except Exception:  # a digest without block_size or copy(): the session's own way
        pass
    return session.sign


class MessageDecoder:
    """Checks and unpacks the messages of one session, as ``session`` would (signature
    included), but without parsing dates.

    Args:
        session: The client's session: its key, signature scheme and unpacker.
    """

    def __init__(self, session: Session) -> None:
        self._sign = _signer(session) if session.auth is not None else None
        unpack = session.unpack
        self._unpack: Callable[[bytes], Any] = _json_part if unpack is json_unpacker else unpack
        #: The last parent header unpacked, as received and as unpacked (flat).
        self._parent_part: bytes | None = None
        self._parent: dict[str, Any] = {}

    def decode(self, frames: list[bytes]) -> KernelMessage:
        """The message of a multipart ZMQ message.

        Raises:
            MessageError: Malformed, or its signature does not match the session's key.
        """
        try:
            start = frames.index(DELIMITER) + 1
        except ValueError:
            raise MessageError("no delimiter") from None
        if len(frames) - start < 5:
            raise MessageError(
                f"{len(frames) - start} frames after the delimiter, expected at least 5"
            )
        signature, header_bytes, parent_bytes, metadata_bytes, content_bytes = frames[
            start : start + 5
        ]
        if self._sign is not None:
            if not signature:
                raise MessageError("unsigned message")
            signed = [header_bytes, parent_bytes, metadata_bytes, content_bytes]
            if not hmac.compare_digest(signature, self._sign(signed)):
                raise MessageError("invalid signature")
        try:
            unpack = self._unpack
            header = unpack(header_bytes)
            message: KernelMessage = {
                "header": header,
                "msg_id": header.get("msg_id"),
                "msg_type": header.get("msg_type"),
                "parent_header": self._parent_header(parent_bytes),
                "metadata": unpack(metadata_bytes),
                "content": unpack(content_bytes),
                "buffers": [memoryview(buffer) for buffer in frames[start + 5 :]],
            }
        except Exception as e:
            raise MessageError(f"cannot unpack: {e!r}") from e
        return message

    def _parent_header(self, part: bytes) -> Any:
        """The unpacked parent header: every output of a cell has the same one, so the
        last one is kept and copied (each message gets a dict of its own, as before)."""
        if part == self._parent_part:
            return dict(self._parent)
        value = self._unpack(part)
        if isinstance(value, dict) and all(isinstance(v, _SCALARS) for v in value.values()):
            self._parent_part, self._parent = part, value
            return dict(value)
        return value


def decode(session: Session, frames: list[bytes]) -> KernelMessage:
    """The message of a multipart ZMQ message, checked and unpacked like ``session``
    would (signature included), but without parsing dates. (A reader keeps one
    :class:`MessageDecoder`; this makes one per call.)

    Raises:
        MessageError: Malformed, or its signature does not match the session's key.
    """
    return MessageDecoder(session).decode(frames)


class IopubReader:
    """The iopub messages of one started kernel client (not safe to share between tasks).

    Args:
        client: A jupyter_client (or gateway) kernel client whose channels are started.
    """

    def __init__(self, client: Any) -> None:
        self._client = client
        self._socket: zmq.asyncio.Socket | None = None
        self._shadow: zmq.Socket[Any] | None = None
        #: A copy of the socket's FD, watched while waiting, and that wait.
        self._fd: int | None = None
        self._waiting: asyncio.Future[None] | None = None
        socket = getattr(getattr(client, "iopub_channel", None), "socket", None)
        session = getattr(client, "session", None)
        if isinstance(socket, zmq.asyncio.Socket) and isinstance(session, Session):
            self._socket = socket
            self._shadow = zmq.Socket.shadow(socket.underlying)
            self._decoder = MessageDecoder(session)

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
            await self._readable()

    async def _readable(self) -> None:
        """Return once a message may have arrived.

        The socket's FD is watched only while this waits. pyzmq's asyncio socket watches
        it from its first wait on for good, and ZMQ signals on it whenever output starts
        arriving again after a read emptied the socket: that woke the event loop once a
        batch, in the middle of the pump's pause. The FD only signals a change (it is
        edge-triggered), so the socket is asked once the watch is set up. A copy of the
        FD is watched, leaving pyzmq's registration of its own, if any, alone.
        """
        assert self._shadow is not None and self._socket is not None
        if self._socket.closed:
            raise zmq.ZMQError(zmq.ENOTSOCK)
        if self._fd is None:
            socket_fd = self._shadow.get(zmq.FD)
            assert isinstance(socket_fd, int)
            self._fd = os.dup(socket_fd)
        fd = self._fd
        loop = asyncio.get_running_loop()
        self._waiting = signalled = loop.create_future()
        loop.add_reader(fd, _resolve, signalled)
        try:
            events = self._shadow.get(zmq.EVENTS)
            if not (isinstance(events, int) and events & zmq.POLLIN):
                await signalled
        finally:
            if self._waiting is signalled:  # else close() ended the wait
                self._waiting = None
                loop.remove_reader(fd)

    def close(self) -> None:
        """Release the copy of the socket's FD (before the socket is closed); a wait
        under way fails as a read of a closed socket."""
        waiting, self._waiting = self._waiting, None
        if waiting is not None and self._fd is not None:
            waiting.get_loop().remove_reader(self._fd)
            if not waiting.done():
                waiting.set_exception(zmq.ZMQError(zmq.ENOTSOCK))
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def ready(self, limit: int) -> list[KernelMessage]:
        """Up to ``limit`` messages that have arrived, without waiting for more.

        Only for a fast reader (see :meth:`more` for any). A message that is malformed
        or badly signed is logged and skipped.
        """
        assert self._shadow is not None and self._socket is not None
        if self._socket.closed:
            # The shadow would use the freed socket: fail like a read of a closed one.
            raise zmq.ZMQError(zmq.ENOTSOCK)
        recv = self._shadow.recv
        decode = self._decoder.decode
        messages: list[KernelMessage] = []
        while len(messages) < limit:
            # recv_multipart, without its enum lookup of RCVMORE for every frame: a
            # frame says itself whether more follow. The frames of one message arrive
            # together, so only the first receive can find nothing.
            try:
                frame = recv(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                break
            frames = [frame.bytes]
            while frame.more:
                frame = recv(zmq.NOBLOCK, copy=False)
                frames.append(frame.bytes)
            try:
                messages.append(decode(frames))
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
