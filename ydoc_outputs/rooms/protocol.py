"""The y-websocket wire format, checked before anything else reads a frame.

Message types and close codes of the contract with the stock frontend, and a reader
of lib0 encodings whose cost is bounded, unlike pycrdt's ``Decoder``.
"""

from __future__ import annotations

import enum
import json
from typing import Any

__all__ = [
    "AWARENESS_MESSAGE",
    "CLOSE_BAD_REQUEST",
    "CLOSE_NOT_FOUND",
    "CLOSE_RELOAD",
    "CLOSE_SERVER_ERROR",
    "CLOSE_TOO_BIG",
    "CLOSE_TOO_MANY",
    "CLOSE_TOO_SLOW",
    "RAW_MESSAGE",
    "SYNC_MESSAGE",
    "FrameError",
    "FrameReader",
    "MessageKind",
    "binary_frame_header",
    "check_message",
]

#: y-websocket message types (the first byte of every message).
SYNC_MESSAGE = 0
AWARENESS_MESSAGE = 1
#: Carries save requests and their replies (y-websocket's "auth" slot, reused by Jupyter).
RAW_MESSAGE = 2

# Websocket close codes (see DESIGN.md, wire contract, and docs/api.md).
CLOSE_RELOAD = 1003
CLOSE_TOO_BIG = 1009
CLOSE_BAD_REQUEST = 4400
CLOSE_TOO_SLOW = 4408
CLOSE_TOO_MANY = 4429
CLOSE_NOT_FOUND = 4404
CLOSE_SERVER_ERROR = 4500

#: Longest varUint accepted, in bytes (10 hold any 64-bit number). pycrdt's Python
#: decoder takes time quadratic in a varint's length: a 0.3 MB run of 0xff bytes blocked
#: the whole server for 7 s, 10 MB would for hours. So every frame is checked with the
#: bounded reader below before pycrdt reads it.
MAX_VARUINT_BYTES = 10
#: Browsers decode varUints as JavaScript numbers (lib0 throws past 2**53), so a larger
#: number in a message that is echoed to them (awareness) would break every client.
MAX_SAFE_INTEGER = 2**53 - 1


def binary_frame_header(size: int) -> bytes:
    """The header of a final, unmasked binary websocket frame of ``size`` bytes (RFC 6455,
    5.2), as a server sends it."""
    if size < 126:
        return bytes((0x82, size))
    if size <= 0xFFFF:
        return bytes((0x82, 126)) + size.to_bytes(2, "big")
    return bytes((0x82, 127)) + size.to_bytes(8, "big")


class MessageKind(enum.Enum):
    """What a well-formed y-websocket message asks of the server."""

    SYNC_REQUEST = enum.auto()  # sync step 1: answered with what the client lacks
    SYNC_UPDATE = enum.auto()  # sync step 2 or update: applied to the document
    AWARENESS = enum.auto()  # echoed to every client of the room
    SAVE = enum.auto()  # a raw message: varString action, varUint id
    OTHER = enum.auto()  # another message type (query awareness...): ignored


class FrameError(ValueError):
    """A malformed y-websocket message."""


class FrameReader:
    """Reads lib0 encodings with bounded cost, unlike pycrdt's ``Decoder``."""

    def __init__(self, data: bytes, start: int = 0, end: int | None = None) -> None:
        self.data = data
        self.pos = start
        self.end = len(data) if end is None else end

    def var_uint(self, limit: int | None = None) -> int:
        value = 0
        for i in range(MAX_VARUINT_BYTES):
            if self.pos >= self.end:
                raise FrameError("truncated varUint")
            byte = self.data[self.pos]
            self.pos += 1
            value |= (byte & 0x7F) << (7 * i)
            if byte < 0x80:
                if limit is not None and value > limit:
                    raise FrameError("varUint out of range")
                return value
        raise FrameError(f"varUint longer than {MAX_VARUINT_BYTES} bytes")

    def var_bytes(self) -> tuple[int, int]:
        """A length-prefixed byte string; returns its (start, end) in ``data``."""
        length = self.var_uint()
        start = self.pos
        if length > self.end - start:
            raise FrameError("truncated payload")
        self.pos = start + length
        return start, self.pos

    def var_string(self) -> str:
        start, end = self.var_bytes()
        try:
            return self.data[start:end].decode("utf-8")
        except UnicodeDecodeError as e:
            raise FrameError("string is not UTF-8") from e

    def finish(self) -> None:
        if self.pos != self.end:
            raise FrameError("trailing bytes")


def _reject_constant(name: str) -> Any:
    # Python's json accepts NaN and Infinity; the browsers' JSON.parse does not.
    raise FrameError(f"{name} is not JSON")


def _check_awareness_update(reader: FrameReader) -> None:
    """An awareness update exactly as browsers decode it (y-protocols ``awareness.js``).

    Every state is echoed to every client of the room, whose decoder throws on what is
    checked here: a number past 2**53, a state that is not JSON (the empty string too),
    NaN. A state must be an object, or null for a client that left.
    """
    count = reader.var_uint(MAX_SAFE_INTEGER)
    for _ in range(count):
        if reader.pos >= reader.end:
            raise FrameError("fewer awareness states than announced")
        reader.var_uint(MAX_SAFE_INTEGER)  # client id
        reader.var_uint(MAX_SAFE_INTEGER)  # clock
        text = reader.var_string()
        try:
            state = json.loads(text, parse_constant=_reject_constant)
        except (ValueError, RecursionError) as e:
            raise FrameError("awareness state is not JSON") from e
        if state is not None and not isinstance(state, dict):
            raise FrameError("awareness state is not an object")
    reader.finish()


def check_message(message: bytes) -> MessageKind:
    """Check the framing of one y-websocket message before pycrdt reads it.

    The payload of a sync message (an update or a state vector) is left to pycrdt's
    Rust decoder, whose cost is linear; everything pycrdt decodes in Python, and all of
    an awareness message, is checked here.

    Raises:
        FrameError: the message is malformed.
    """
    if not message:
        raise FrameError("empty message")
    reader = FrameReader(message, 1)
    message_type = message[0]
    if message_type == SYNC_MESSAGE:
        # pycrdt reads the sync type as one byte, not as a varUint.
        if len(message) < 2 or message[1] > 2:
            raise FrameError("unknown sync message type")
        reader.pos = 2
        reader.var_bytes()
        reader.finish()
        return MessageKind.SYNC_REQUEST if message[1] == 0 else MessageKind.SYNC_UPDATE
    if message_type == AWARENESS_MESSAGE:
        start, end = reader.var_bytes()
        reader.finish()
        _check_awareness_update(FrameReader(message, start, end))
        return MessageKind.AWARENESS
    if message_type == RAW_MESSAGE:
        reader.var_string()
        reader.var_uint()
        reader.finish()
        return MessageKind.SAVE
    return MessageKind.OTHER
