"""The server's logger skips the levels none of its handlers writes (real loggers)."""

from __future__ import annotations

import logging

import pytest

from ydoc_outputs.hostlog import skip_unwritten_levels


@pytest.fixture
def logger() -> logging.Logger:
    """A logger set up as traitlets sets up an application's: DEBUG, console at INFO.

    Made outside logging's registry, under a root of its own: pytest attaches its
    capturing handlers (which take every level) to registered loggers.
    """
    root = logging.Logger("root-of-test")
    logger = logging.Logger("ServerApp", logging.DEBUG)
    logger.parent = root
    console = logging.StreamHandler()
    console.setLevel(logging.INFO)
    logger.addHandler(console)
    return logger


def test_debug_records_nobody_writes_are_no_longer_made(logger: logging.Logger) -> None:
    made: list[logging.LogRecord] = []
    factory = logging.getLogRecordFactory()

    def counting(*args: object, **kwargs: object) -> logging.LogRecord:
        record = factory(*args, **kwargs)  # type: ignore[arg-type]
        made.append(record)
        return record

    logging.setLogRecordFactory(counting)
    try:
        logger.debug("activity on %s", "kernel")
        assert len(made) == 1  # built, then dropped by the INFO handler
        assert skip_unwritten_levels(logger) == logging.INFO
        # setLevel clears the level caches of registered loggers; this one is not.
        logger._cache.clear()  # type: ignore[attr-defined]
        logger.debug("activity on %s", "kernel")
        logger.info("written")
        assert [record.getMessage() for record in made] == ["activity on kernel", "written"]
    finally:
        logging.setLogRecordFactory(factory)


def test_a_handler_that_wants_debug_keeps_it(logger: logging.Logger) -> None:
    logger.addHandler(logging.NullHandler())  # level NOTSET: takes everything
    assert skip_unwritten_levels(logger) is None
    assert logger.isEnabledFor(logging.DEBUG)


def test_handlers_reached_by_propagation_count(logger: logging.Logger) -> None:
    assert logger.parent is not None
    logger.parent.addHandler(debug := logging.NullHandler())
    assert skip_unwritten_levels(logger) is None
    debug.setLevel(logging.WARNING)
    assert skip_unwritten_levels(logger) == logging.INFO
    logger.setLevel(logging.DEBUG)
    logger.propagate = False  # traitlets' own setting: the parent's handlers no longer count
    debug.setLevel(logging.NOTSET)
    assert skip_unwritten_levels(logger) == logging.INFO


def test_a_logger_without_handlers_is_left_alone() -> None:
    assert skip_unwritten_levels(logging.Logger("lonely", logging.DEBUG)) is None
