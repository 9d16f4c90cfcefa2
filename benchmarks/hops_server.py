"""``jupyter server`` with timestamps at each hop of an execution, for benchmarks/hops.py.

Wraps, in this process only, the functions a cell's run goes through and appends
``{CLOCK_MONOTONIC ns} {hop}`` lines to the file named by ``YDOC_HOPS_LOG``. The
monotonic clock is system-wide on Linux, so the client's lines compare with these.
"""

from __future__ import annotations

import functools
import os
import sys
import time
from collections.abc import Callable
from typing import Any

_LOG = open(os.environ["YDOC_HOPS_LOG"], "a", buffering=1)  # noqa: SIM115 (process-long)


def _mark(hop: str) -> None:
    _LOG.write(f"{time.monotonic_ns()} {hop}\n")


def _around(owner: Any, name: str, hop: str) -> None:
    """Mark ``hop`` when ``owner.name`` is called (and ``hop.done`` when it returns)."""
    original: Callable[..., Any] = getattr(owner, name)
    if hasattr(original, "__code__") and original.__code__.co_flags & 0x80:  # async

        @functools.wraps(original)
        async def wrapped_async(*args: Any, **kwargs: Any) -> Any:
            _mark(hop)
            result = await original(*args, **kwargs)
            _mark(f"{hop}.done")
            return result

        setattr(owner, name, wrapped_async)
        return

    @functools.wraps(original)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        _mark(hop)
        result = original(*args, **kwargs)
        _mark(f"{hop}.done")
        return result

    setattr(owner, name, wrapped)


def main() -> None:
    from ydoc_outputs.handlers.execute import ExecuteHandler
    from ydoc_outputs.kernels.iopub import IopubReader
    from ydoc_outputs.kernels.runner import KernelRunner
    from ydoc_outputs.rooms.channel import WebsocketChannel
    from ydoc_outputs.ydoc.writer import OutputWriter

    _around(ExecuteHandler, "post", "handler")
    _around(KernelRunner, "_send", "send")  # start_cell's write, then execute_request
    _around(IopubReader, "first", "iopub.wait")  # .done: the first message has arrived
    _around(KernelRunner, "_dispatch", "dispatch")
    _around(OutputWriter, "apply", "transaction")
    _around(WebsocketChannel, "send_nowait", "websocket")

    from jupyter_server.serverapp import main as server_main

    sys.argv[0] = "jupyter-server"
    sys.exit(server_main())


if __name__ == "__main__":
    main()
