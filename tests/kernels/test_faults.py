"""How a running cell ends, from what was observed of its kernel (pure, no kernel)."""

from __future__ import annotations

from ydoc_outputs.kernels.faults import CellWatch, Fault, KernelSnapshot, Verdict

P1, P2 = object(), object()


def snap(*, present: bool = True, stopping: bool = False, process: object | None = P1,
         alive: bool | None = None) -> KernelSnapshot:  # fmt: skip
    return KernelSnapshot(present, stopping, process, alive)


def test_a_cell_that_finishes_undisturbed_ends_normally() -> None:
    watch = CellWatch(P1)
    watch.observe(snap(alive=True))
    assert watch.verdict() is None
    watch.finish()
    assert watch.verdict() == Verdict(None)


def test_a_dead_process_ends_the_cell_at_once() -> None:
    watch = CellWatch(P1)
    watch.observe(snap(alive=False))
    assert watch.verdict() == Verdict(Fault.DIED)


def test_the_restarter_reports_a_death() -> None:
    watch = CellWatch(P1)
    watch.restarter_fired()
    assert watch.verdict() == Verdict(Fault.DIED)
    # ... which stays a death when the restarted process shows up.
    watch.observe(snap(process=P2, alive=True))
    assert watch.verdict() == Verdict(Fault.DIED)


def test_restart_interrupts_first_so_the_cell_finishes_then_says_restarted() -> None:
    watch = CellWatch(P1)
    watch.observe(snap(stopping=True, alive=True))
    watch.finish()  # KeyboardInterrupt, then idle: not a normal end
    assert watch.verdict() is None
    watch.shutdown_reply(restart=True)
    assert watch.verdict() == Verdict(Fault.RESTARTED)


def test_shutdown_reply_before_the_interrupted_cell_finishes() -> None:
    watch = CellWatch(P1)
    watch.shutdown_reply(restart=False)
    assert watch.verdict() is None  # its last output and idle are still to come
    watch.finish()
    assert watch.verdict() == Verdict(Fault.SHUT_DOWN)


def test_a_kernel_stuck_in_shutdown_ends_the_cell_when_its_process_goes() -> None:
    watch = CellWatch(P1)
    watch.shutdown_reply(restart=True)
    watch.observe(snap(stopping=True, process=None, alive=False))
    assert watch.verdict() == Verdict(Fault.RESTARTED)


def test_a_cell_that_ignores_the_interrupt_ends_when_the_stop_is_overdue() -> None:
    watch = CellWatch(P1)
    watch.stop_overdue()  # not stopping: nothing to give up on
    assert watch.verdict() is None
    watch.shutdown_reply(restart=False)
    assert watch.verdict() is None
    watch.stop_overdue()
    assert watch.verdict() == Verdict(Fault.SHUT_DOWN)


def test_without_any_hint_from_the_kernel_the_new_process_says_restarted() -> None:
    watch = CellWatch(P1)
    watch.observe(snap(stopping=True))
    watch.observe(snap(stopping=True, process=None))  # reaped: not a death, a stop
    assert watch.verdict() is None
    watch.observe(snap(process=P2, alive=True))
    assert watch.verdict() == Verdict(Fault.RESTARTED)


def test_removal_from_the_kernel_manager_is_a_shutdown() -> None:
    watch = CellWatch(P1)
    watch.observe(snap(stopping=True))
    watch.observe(snap(present=False, stopping=True, process=None))
    assert watch.verdict() == Verdict(Fault.SHUT_DOWN)


def test_a_new_process_announcing_itself_ends_the_cell() -> None:
    watch = CellWatch(None)  # a remote kernel: no process to compare
    watch.observe(snap(process=None, alive=True))
    assert watch.verdict() is None
    watch.kernel_started()
    assert watch.verdict() == Verdict(Fault.RESTARTED)


def test_error_texts_say_what_happened() -> None:
    assert Fault.DIED.error() == ("KernelDied", "the kernel died while this cell ran")
    ename, evalue = Fault.RESTARTED.cancelled()
    assert ename == "Cancelled"
    assert evalue == "the kernel was restarted, so this cell did not run"
