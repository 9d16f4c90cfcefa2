"""Stop the server's logger from building records that no handler will write.

traitlets configures an application's logger at DEBUG and its console handler at
``log_level`` (INFO by default), so that ``logging_config`` may add a handler that
wants more. Every ``log.debug`` call then builds a ``LogRecord`` and hands it to handlers
that drop it. jupyter_server's activity watcher makes one for every iopub message of
every kernel (``activity on ...``): thousands a second for a cell that prints with
``flush()``. Raising the logger's level to the lowest level of the handlers its records
reach changes nothing that is written.
"""

from __future__ import annotations

import logging

__all__ = ["skip_unwritten_levels"]


def skip_unwritten_levels(logger: logging.Logger) -> int | None:
    """Raise ``logger``'s level to the lowest level of the handlers its records reach.

    Returns:
        The new level, or None if it was left alone (no handler, or one that takes
        every level the logger already passes).
    """
    levels: list[int] = []
    current: logging.Logger | None = logger
    while current is not None:
        levels += [handler.level for handler in current.handlers]
        if not current.propagate:
            break
        current = current.parent
    if not levels:
        return None  # only logging's last resort: leave it as it is
    lowest = min(levels)
    if lowest <= logger.getEffectiveLevel():
        return None
    logger.setLevel(lowest)
    return lowest
