"""Decoding iopub messages without jupyter_client's reader, and reading them in batches
from a real ZMQ socket (no kernel: a socket this test writes to)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest
import zmq
import zmq.asyncio
from jupyter_client.session import Session

from ydoc_outputs.kernels.iopub import IopubReader, MessageDecoder, MessageError, decode
from ydoc_outputs.kernels.pump import _drain_shell

KEY = b"0123456789abcdef"


def frames(session: Session, msg_type: str = "stream", **content: Any) -> list[bytes]:
    """A message as a kernel sends it: identities, delimiter, signature, four JSON parts."""
    parent = session.msg("execute_request", {"code": "print(1)"})
    msg = session.msg(msg_type, content or {"name": "stdout", "text": "1\n"}, parent=parent)
    return [b"kernel.1234.stream", *session.serialize(msg)]


def test_a_signed_message_decodes_like_jupyter_client_except_dates() -> None:
    session = Session(key=KEY)
    raw = frames(session)
    ours = decode(session, raw)
    _, parts = session.feed_identities(raw)
    theirs = session.deserialize(parts)
    assert ours["content"] == theirs["content"] == {"name": "stdout", "text": "1\n"}
    assert ours["msg_type"] == theirs["msg_type"] == "stream"
    assert ours["msg_id"] == theirs["msg_id"]
    assert ours["parent_header"]["msg_id"] == theirs["parent_header"]["msg_id"]
    # Dates stay strings: nothing downstream reads them, and parsing them was costly.
    assert isinstance(ours["header"]["date"], str)
    assert ours["header"]["date"] == theirs["header"]["date"].isoformat().replace("+00:00", "Z")


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda f: [*f[:2], b"0" * 64, *f[3:]], id="wrong signature"),
        pytest.param(lambda f: [*f[:2], b"", *f[3:]], id="unsigned"),
        pytest.param(
            lambda f: [*f[:6], b'{"name": "stdout", "text": "2\\n"}', *f[7:]], id="changed content"
        ),
        pytest.param(lambda f: [x for x in f if x != b"<IDS|MSG>"], id="no delimiter"),
        pytest.param(lambda f: f[:5], id="too few frames"),
    ],
)
def test_a_message_that_is_not_what_the_kernel_signed_is_refused(tamper: Any) -> None:
    session = Session(key=KEY)
    with pytest.raises(MessageError):
        decode(session, tamper(frames(session)))


def test_without_a_key_messages_are_unsigned_and_accepted() -> None:
    session = Session(key=b"")
    assert decode(session, frames(session))["content"]["text"] == "1\n"


def test_parts_that_are_not_json_are_refused() -> None:
    session = Session(key=KEY)
    raw = frames(session)
    raw[-1] = b"{not json"
    raw[2] = session.sign(raw[3:7])
    with pytest.raises(MessageError, match="cannot unpack"):
        decode(session, raw)


@pytest.fixture
async def pair() -> AsyncIterator[tuple[zmq.asyncio.Socket, zmq.asyncio.Socket]]:
    context = zmq.asyncio.Context()
    sender = context.socket(zmq.PUSH)
    port = sender.bind_to_random_port("tcp://127.0.0.1")
    receiver = context.socket(zmq.PULL)
    receiver.connect(f"tcp://127.0.0.1:{port}")
    yield sender, receiver
    sender.close(linger=0)
    receiver.close(linger=0)
    context.term()


async def test_the_reader_waits_then_takes_everything_that_arrived(
    pair: tuple[zmq.asyncio.Socket, zmq.asyncio.Socket],
) -> None:
    sender, receiver = pair
    session = Session(key=KEY)
    reader = IopubReader(SimpleNamespace(iopub_channel=SimpleNamespace(socket=receiver),
                                         session=session))  # fmt: skip
    assert reader.fast
    waiting = asyncio.ensure_future(reader.first())
    await asyncio.sleep(0.05)
    assert not waiting.done()  # nothing sent yet
    for i in range(5):
        await sender.send_multipart(frames(session, text=f"{i}\n", name="stdout"))
    first = await asyncio.wait_for(waiting, 10)
    assert [m["content"]["text"] for m in first] == ["0\n"]
    rest: list[Any] = []
    while len(rest) < 4:
        rest += reader.ready(2)  # at most 2 at a time
        await asyncio.sleep(0.01)
    assert [m["content"]["text"] for m in rest] == ["1\n", "2\n", "3\n", "4\n"]
    assert reader.ready(10) == []


async def test_the_reader_skips_a_bad_message_and_keeps_the_next(
    pair: tuple[zmq.asyncio.Socket, zmq.asyncio.Socket], caplog: pytest.LogCaptureFixture
) -> None:
    sender, receiver = pair
    session = Session(key=KEY)
    reader = IopubReader(SimpleNamespace(iopub_channel=SimpleNamespace(socket=receiver),
                                         session=session))  # fmt: skip
    forged = Session(key=b"another key")
    await sender.send_multipart(frames(forged, text="forged\n", name="stdout"))
    await sender.send_multipart([b"not a message"])
    await sender.send_multipart(frames(session, text="good\n", name="stdout"))
    messages = await asyncio.wait_for(reader.first(), 10)
    assert [m["content"]["text"] for m in messages] == ["good\n"]
    assert "invalid signature" in caplog.text and "no delimiter" in caplog.text


async def test_a_closed_socket_fails_the_read_instead_of_crashing(
    pair: tuple[zmq.asyncio.Socket, zmq.asyncio.Socket],
) -> None:
    _, receiver = pair
    reader = IopubReader(SimpleNamespace(iopub_channel=SimpleNamespace(socket=receiver),
                                         session=Session(key=KEY)))  # fmt: skip
    receiver.close(linger=0)
    with pytest.raises(zmq.ZMQError):
        reader.ready(10)


async def test_a_client_without_a_zmq_socket_is_read_through_get_iopub_msg() -> None:
    """A gateway's client (websocket channels) keeps jupyter_client's own reader."""
    queued = [{"content": {"text": "a"}}, {"content": {"text": "b"}}]

    class GatewayLikeClient:
        iopub_channel = SimpleNamespace(socket=None)

        async def get_iopub_msg(self, timeout: float | None = None) -> Any:
            import queue

            if queued:
                return queued.pop(0)
            if timeout == 0:
                raise queue.Empty
            await asyncio.sleep(3600)

    reader = IopubReader(GatewayLikeClient())
    assert not reader.fast
    assert await reader.first() == [{"content": {"text": "a"}}]
    assert await reader.more(10) == [{"content": {"text": "b"}}]
    assert await reader.more(10) == []


async def test_the_reader_watches_the_socket_only_while_it_waits(
    pair: tuple[zmq.asyncio.Socket, zmq.asyncio.Socket],
) -> None:
    """Output that arrives while nobody waits (the pump's pause between batches) must not
    wake the event loop: the socket's FD is watched during a wait only."""
    sender, receiver = pair
    session = Session(key=KEY)
    reader = IopubReader(SimpleNamespace(iopub_channel=SimpleNamespace(socket=receiver),
                                         session=session))  # fmt: skip
    loop = asyncio.get_running_loop()
    waiting = asyncio.ensure_future(reader.first())
    await asyncio.sleep(0.05)
    assert reader._fd is not None
    await sender.send_multipart(frames(session))
    assert len(await asyncio.wait_for(waiting, 10)) == 1
    assert not loop.remove_reader(reader._fd)  # no longer watched
    # A wait that the connection's close ends fails like a read of a closed socket.
    waiting = asyncio.ensure_future(reader.first())
    await asyncio.sleep(0.05)
    fd = reader._fd
    reader.close()
    with pytest.raises(zmq.ZMQError):
        await asyncio.wait_for(waiting, 10)
    assert reader._fd is None and not loop.remove_reader(fd)


@pytest.mark.parametrize("scheme", ["hmac-sha256", "hmac-sha512", "hmac-md5"])
@pytest.mark.parametrize("key", [KEY, b"k" * 200], ids=["short key", "key longer than a block"])
def test_signatures_are_checked_as_session_checks_them(scheme: str, key: bytes) -> None:
    session = Session(key=key, signature_scheme=scheme)
    raw = frames(session)
    assert decode(session, raw)["content"]["text"] == "1\n"
    with pytest.raises(MessageError, match="invalid signature"):
        decode(Session(key=key + b"x", signature_scheme=scheme), raw)


def test_each_message_gets_a_parent_header_of_its_own() -> None:
    session = Session(key=KEY)
    decoder = MessageDecoder(session)
    parent = session.msg("execute_request", {"code": "print(1)"})
    one, two = (
        decoder.decode([b"t", *session.serialize(session.msg("stream", {}, parent=parent))])
        for _ in range(2)
    )
    assert one["parent_header"] == two["parent_header"]
    assert one["parent_header"]["msg_id"] == parent["header"]["msg_id"]
    one["parent_header"]["msg_id"] = "changed"
    assert two["parent_header"]["msg_id"] == parent["header"]["msg_id"]


@pytest.mark.parametrize(
    "part", [b' {"a": 1}', b'{"a": 1} ', b'{"a": "\\u00e9"}', b'{"a": 1}{}', b"\xff{}", b"{}"]
)
def test_json_parts_unpack_as_json_unpacker_unpacks_them(part: bytes) -> None:
    from jupyter_client.session import json_unpacker

    from ydoc_outputs.kernels.iopub import _json_part

    try:
        expected = json_unpacker(part)
    except ValueError as e:
        with pytest.raises(type(e)):
            _json_part(part)
    else:
        assert _json_part(part) == expected


async def test_shell_replies_are_decoded_from_the_socket_and_a_bad_one_skipped(
    pair: tuple[zmq.asyncio.Socket, zmq.asyncio.Socket], caplog: pytest.LogCaptureFixture
) -> None:
    sender, receiver = pair
    session = Session(key=KEY)
    client = SimpleNamespace(shell_channel=SimpleNamespace(socket=receiver), session=session)
    replies: list[Any] = []
    drain = asyncio.ensure_future(_drain_shell(client, replies.append))
    try:
        bad = frames(session, "execute_reply", status="ok", execution_count=1)
        bad[2] = b"0" * 64
        await sender.send_multipart(bad)
        await sender.send_multipart(
            frames(session, "execute_reply", status="ok", execution_count=2)
        )
        for _ in range(1000):
            if replies:
                break
            await asyncio.sleep(0.01)
        [reply] = replies
        assert reply["msg_type"] == "execute_reply"
        assert reply["content"]["execution_count"] == 2
        assert isinstance(reply["header"]["date"], str)  # as the page gets it, unparsed
        assert "dropping a shell message: invalid signature" in caplog.text
    finally:
        drain.cancel()
        await asyncio.gather(drain, return_exceptions=True)
