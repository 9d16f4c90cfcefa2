"""What happened to a kernel while a cell ran, and how that cell must end.

No I/O here: :class:`CellWatch` takes observations (snapshots of the kernel manager's
state, iopub hints, restarter callbacks) and decides when the running cell is over
and whether a fault ended it. The runner feeds it; ``monitor.py`` takes the snapshots.

Why several sources: jupyter_client interrupts a kernel before it shuts it down, so a
restarted or shut-down cell usually *finishes* (KeyboardInterrupt, then idle) just
before the process goes; only the kernel manager's state says the run was cut short.
ipykernel also broadcasts its ``shutdown_reply`` on iopub at once, which tells a restart
from a shutdown. A kernel that dies says nothing: the process is gone, and the
restarter's callback or the next poll of the process tells.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

__all__ = ["CellWatch", "Fault", "KernelSnapshot", "Verdict"]


class Fault(Enum):
    """Why a cell was cut short; the value is the ``ename`` of its error output."""

    DIED = "KernelDied"
    RESTARTED = "KernelRestarted"
    SHUT_DOWN = "KernelShutdown"
    #: Not the kernel's fault: the Jupyter server itself stops.
    SERVER_STOPPED = "ServerStopped"

    @property
    def what(self) -> str:
        """What happened, as a clause."""
        return {
            Fault.DIED: "the kernel died",
            Fault.RESTARTED: "the kernel was restarted",
            Fault.SHUT_DOWN: "the kernel was shut down",
            Fault.SERVER_STOPPED: "the server stopped",
        }[self]

    def error(self) -> tuple[str, str]:
        """The ``(ename, evalue)`` of the error output of the cell that was running."""
        return self.value, f"{self.what} while this cell ran"

    def cancelled(self) -> tuple[str, str]:
        """The ``(ename, evalue)`` of the error output of the cell that was about to run,
        when no cell was running to say what happened (the cells queued behind it are
        left as stock leaves them: no output, ``[ ]``)."""
        return "Cancelled", f"{self.what}, so this cell did not run"


@dataclass(frozen=True, slots=True)
class KernelSnapshot:
    """The kernel manager's view of one kernel at one moment.

    Attributes:
        present: The server still manages the kernel (not shut down and removed).
        stopping: A shutdown or a restart of the kernel is under way.
        process: Identifies the kernel process (its ``Popen``); None when there is no
            process or the kernel manager does not expose it (remote kernels).
        alive: Whether the process is alive; None when not checked.
    """

    present: bool
    stopping: bool
    process: object | None
    alive: bool | None = None


@dataclass(frozen=True, slots=True)
class Verdict:
    """How a cell ends: normally (``fault`` None) or cut short by ``fault``."""

    fault: Fault | None


class CellWatch:
    """Observes the kernel while one cell runs and decides when and how the cell ends.

    The first classification wins: a kernel that died and is then restarted by the
    server's restarter stays "died".
    """

    def __init__(self, process: object | None) -> None:
        """Start watching a cell that runs in ``process`` (see :class:`KernelSnapshot`)."""
        self._process = process
        #: What cut the cell short, once known.
        self.fault: Fault | None = None
        #: A shutdown or restart began while the cell ran (latched).
        self.stopping = False
        #: The process that ran the cell is gone: no more output will come from it.
        self.gone = False
        #: The kernel reported the cell idle.
        self.finished = False

    def _classify(self, fault: Fault) -> None:
        if self.fault is None:
            self.fault = fault

    def observe(self, snapshot: KernelSnapshot) -> None:
        """Take a snapshot of the kernel manager's state."""
        if not snapshot.present:
            self.gone = True
            self._classify(Fault.SHUT_DOWN)
            return
        if snapshot.stopping:
            self.stopping = True
        if self._process is not None and snapshot.process is not self._process:
            self.gone = True
            if snapshot.process is not None:
                # A new process: a restart. A death would have been classified first,
                # by the restarter's callback or by seeing the process dead.
                self._classify(Fault.RESTARTED)
        if snapshot.alive is False:
            self.gone = True
        if self.gone and not self.stopping:
            # Gone without a shutdown or restart having been asked for.
            self._classify(Fault.DIED)

    def shutdown_reply(self, restart: bool) -> None:
        """The kernel broadcast a ``shutdown_reply``: it is going away."""
        self.stopping = True
        self._classify(Fault.RESTARTED if restart else Fault.SHUT_DOWN)

    def kernel_started(self) -> None:
        """A new kernel process announced itself (iopub ``status: starting``)."""
        self.gone = True
        self._classify(Fault.RESTARTED)

    def restarter_fired(self) -> None:
        """The server's restarter found the kernel dead (it restarts it, or gives up)."""
        self.gone = True
        self._classify(Fault.DIED)

    def finish(self) -> None:
        """The kernel reported the cell idle."""
        self.finished = True

    def stop_overdue(self) -> None:
        """The kernel has been stopping for a while and the cell is still not over.

        An interrupted cell ends within milliseconds; one that ignores the interrupt
        would keep the cell running until jupyter_client terminates the process,
        seconds later. Stop waiting for its last output.
        """
        if self.stopping:
            self.gone = True

    def verdict(self) -> Verdict | None:
        """How the cell ends, or None while that is not known yet.

        A cell that finishes while its kernel is being stopped was interrupted by that
        stop: it waits until the stop is known to be a restart or a shutdown.
        """
        if self.fault is not None and (self.finished or self.gone):
            return Verdict(self.fault)
        if self.finished and not self.stopping and self.fault is None:
            return Verdict(None)
        return None
