"""Fixtures of the store tests."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


@pytest.fixture
def umask_022() -> Iterator[None]:
    """The common umask, under which files are created 0644 and directories 0755."""
    old = os.umask(0o022)
    yield
    os.umask(old)
