"""The shell channel on real ZMQ sockets (no kernel: a ROUTER this test answers from):
requests sent, and replies received however a send and a reply interleave."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest
import zmq
import zmq.asyncio
from jupyter_client.session import Session

from ydoc_outputs.kernels.pump import KernelConnection, _drain_shell

KEY = b"0123456789abcdef"


@pytest.fixture
async def sockets() -> AsyncIterator[tuple[zmq.asyncio.Socket, zmq.asyncio.Socket]]:
    """A kernel's shell ROUTER and a client's DEALER, connected."""
    context = zmq.asyncio.Context()
    kernel = context.socket(zmq.ROUTER)
    port = kernel.bind_to_random_port("tcp://127.0.0.1")
    shell = context.socket(zmq.DEALER)
    shell.connect(f"tcp://127.0.0.1:{port}")
    yield kernel, shell
    kernel.close(linger=0)
    shell.close(linger=0)
    context.term()


def _reply(session: Session, parent_id: str, count: int) -> list[bytes]:
    msg = session.msg("execute_reply", {"status": "ok", "execution_count": count})
    msg["parent_header"] = {"msg_id": parent_id}
    return session.serialize(msg)


@pytest.mark.parametrize(
    "send",
    [
        "send_shell",
        pytest.param("Session.send", marks=pytest.mark.xfail(
            strict=True, reason="jupyter_client's send: why the runner does not use it")),
    ],
)  # fmt: skip
async def test_a_reply_that_arrives_while_a_request_is_sent_is_received(
    sockets: tuple[zmq.asyncio.Socket, zmq.asyncio.Socket], send: str
) -> None:
    """A reply arrives while the event loop is busy, then the next request is sent
    before the loop sees it: the send must not take the reply's wake-up."""
    kernel, shell = sockets
    session = Session(key=KEY)
    connection = KernelConnection(None, "k")
    connection.client = SimpleNamespace(session=session, shell_channel=SimpleNamespace(
        socket=shell, send=lambda msg: session.send(shell, msg)))  # fmt: skip

    def request(msg_type: str) -> str:
        if send == "send_shell":
            return connection.send_shell(msg_type, {})
        msg = session.msg(msg_type, {})
        connection.client.shell_channel.send(msg)
        return str(msg["header"]["msg_id"])

    replies: list[Any] = []
    drain = asyncio.ensure_future(_drain_shell(connection.client, replies.append))
    try:
        first = request("kernel_info_request")
        identity = (await kernel.recv_multipart())[0]
        await asyncio.sleep(0.1)  # the drain waits for a reply
        await kernel.send_multipart([identity, *_reply(session, first, 1)])
        time.sleep(0.3)  # the event loop is busy while the reply arrives...
        request("execute_request")  # ...and sends the next request before it looks
        for _ in range(300):
            if replies:
                break
            await asyncio.sleep(0.01)
        assert [r["parent_header"]["msg_id"] for r in replies] == [first]
    finally:
        drain.cancel()
        await asyncio.gather(drain, return_exceptions=True)


async def test_a_request_on_a_closed_socket_fails_as_session_send_did(
    sockets: tuple[zmq.asyncio.Socket, zmq.asyncio.Socket],
) -> None:
    _, shell = sockets
    connection = KernelConnection(None, "k")
    connection.client = SimpleNamespace(session=Session(key=KEY),
                                        shell_channel=SimpleNamespace(socket=shell))  # fmt: skip
    shell.close(linger=0)
    with pytest.raises(zmq.ZMQError):
        connection.send_shell("kernel_info_request", {})


async def test_a_gateway_channel_sends_through_its_own_send() -> None:
    sent: list[Any] = []
    connection = KernelConnection(None, "k")
    channel = SimpleNamespace(socket=None, send=sent.append)
    connection.client = SimpleNamespace(session=Session(key=KEY), shell_channel=channel)
    msg_id = connection.send_shell("execute_request", {"code": "1"})
    assert [m["header"]["msg_id"] for m in sent] == [msg_id]
    assert sent[0]["content"] == {"code": "1"}
