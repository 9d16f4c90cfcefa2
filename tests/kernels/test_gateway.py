"""kernels/gateway.py without a gateway: a gateway kernel's model, kept by the pump's
reading, against what refreshes from the gateway bring (tests/gateway/ runs it for real).

The stand-ins hold only what the watch reads and writes of jupyter_server's
``GatewayKernelManager`` and ``GatewayMappingKernelManager``; the activity rules are
jupyter_server's own list of untracked message types.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from jupyter_server.services.kernels.kernelmanager import MappingKernelManager

from ydoc_outputs.kernels.gateway import TIME_FORMAT, GatewayActivityWatch

UNTRACKED = set(MappingKernelManager.class_traits()["untracked_message_types"].default())
EARLIER = datetime(2026, 1, 1, tzinfo=timezone.utc)


class Mapping:
    """jupyter_server's mapping kernel manager, as far as the watch uses it."""

    def __init__(self) -> None:
        self.last_kernel_activity = EARLIER
        self._kernel_connections = {"k": 0}

    def track_message_type(self, message_type: Any) -> bool:
        return message_type not in UNTRACKED


class Kernel:
    """A GatewayKernelManager, as far as the watch uses it: ``refresh_model`` takes the
    gateway's answer (here: ``self.gateway``) as jupyter_server's does."""

    def __init__(self) -> None:
        self.parent = Mapping()
        self.kernel_id = "k"
        self.execution_state = "starting"
        self.last_activity = EARLIER
        self.kernel: dict[str, Any] = {"id": "k", "execution_state": "starting"}
        self.gateway: dict[str, Any] = {}

    async def refresh_model(self, model: Any = None) -> Any:
        model = dict(self.gateway) if model is None else model
        self.last_activity = datetime.strptime(model["last_activity"], TIME_FORMAT).replace(
            tzinfo=timezone.utc
        )
        self.execution_state = model["execution_state"]
        self.parent._kernel_connections["k"] = model["connections"]
        self.kernel = model
        return model


def status(state: str, parent_type: str | None, parent_id: str = "p") -> dict[str, Any]:
    parent = {"msg_id": parent_id, "msg_type": parent_type} if parent_type else {}
    return {"msg_type": "status", "parent_header": parent, "content": {"execution_state": state}}


def gateway_says(state: str, when: datetime, connections: int) -> dict[str, Any]:
    return {
        "id": "k",
        "execution_state": state,
        "last_activity": when.strftime(TIME_FORMAT),
        "connections": connections,
    }


def run(kernel: Kernel, watch: GatewayActivityWatch) -> None:
    watch.feed(
        "pump", [status("idle", "kernel_info_request"), status("busy", "execute_request")]
    )
    watch.feed("pump", [{"msg_type": "stream", "parent_header": {"msg_type": "execute_request"}}])
    watch.feed("pump", [status("idle", "execute_request")])


async def test_the_model_says_what_the_pump_read_at_once() -> None:
    kernel = Kernel()
    watch = GatewayActivityWatch(kernel)
    before = datetime.now(timezone.utc)
    run(kernel, watch)
    assert kernel.execution_state == kernel.kernel["execution_state"] == "idle"
    assert kernel.last_activity >= before
    assert kernel.kernel["last_activity"] == kernel.last_activity.strftime(TIME_FORMAT)
    assert kernel.parent.last_kernel_activity == kernel.last_activity


async def test_a_refresh_while_the_pump_reads_does_not_set_the_state_back() -> None:
    kernel = Kernel()
    watch = GatewayActivityWatch(kernel)
    run(kernel, watch)
    ours = kernel.last_activity
    # The gateway's answer was taken before it read the idle: busy, and earlier.
    kernel.gateway = gateway_says("busy", ours - timedelta(seconds=1), connections=1)
    model = await kernel.refresh_model()
    assert model is kernel.kernel
    assert (kernel.execution_state, model["execution_state"]) == ("idle", "idle")
    assert kernel.last_activity == ours
    assert model["last_activity"] == ours.strftime(TIME_FORMAT)
    # The server's own websocket is not a connection of the kernel.
    assert model["connections"] == kernel.parent._kernel_connections["k"] == 0

    # A later activity the gateway saw (its own reading) is taken, and a page counts.
    later = ours + timedelta(seconds=5)
    model = await kernel.refresh_model(gateway_says("idle", later, connections=2))
    assert kernel.last_activity == later
    assert model["connections"] == 1


async def test_between_two_connections_the_state_stays_the_servers_reading() -> None:
    kernel = Kernel()
    watch = GatewayActivityWatch(kernel)
    run(kernel, watch)
    watch.release("pump")  # the runner replaces its client after a fault
    # The gateway's own reading is stale (after a restart on new ports, for good).
    when = kernel.last_activity - timedelta(seconds=1)
    model = await kernel.refresh_model(gateway_says("busy", when, connections=1))
    assert (kernel.execution_state, model["execution_state"]) == ("idle", "idle")
    # The server's websocket is closed meanwhile: what the gateway counts is another's.
    assert model["connections"] == 1
    # The next connection goes on from the server's reading.
    watch.feed("pump2", [status("busy", "execute_request")])
    assert kernel.kernel["execution_state"] == "busy"
    model = await kernel.refresh_model(gateway_says("idle", when, connections=1))
    assert (model["execution_state"], model["connections"]) == ("busy", 0)


async def test_a_gateway_restart_makes_the_kernel_starting_then_idle() -> None:
    kernel = Kernel()
    watch = GatewayActivityWatch(kernel)
    watch.feed("pump", [status("busy", "execute_request")])
    # The kernel died mid-cell: the gateway's websocket says so, without a parent.
    watch.feed("pump", [{"msg_type": "stream", "parent_header": {}}, status("restarting", None)])
    assert kernel.kernel["execution_state"] == "starting"
    # The new process answers the runner's kernel_info.
    watch.feed(
        "pump",
        [status("busy", "kernel_info_request", "q"), status("idle", "kernel_info_request", "q")],
    )
    assert kernel.kernel["execution_state"] == "idle"
    # A gateway whose restarter gave up: dead, as jupyter_server's rules record it.
    watch.feed("pump", [status("dead", None)])
    assert kernel.kernel["execution_state"] == "dead"
