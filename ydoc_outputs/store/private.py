"""Files only the server's user may read: the update store and the spill files hold every
output of every notebook, so they are created 0600 in directories 0700, as Jupyter keeps
its own secrets, whatever the umask."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

__all__ = ["PRIVATE_DIR", "PRIVATE_FILE", "make_private", "open_private", "private_dirs"]

log = logging.getLogger(__name__)

PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700


def private_dirs(path: Path) -> None:
    """Create the directory ``path`` and its missing parents, each 0700.

    A directory that already exists is left as it is: it may be one the user chose for
    other files too (``store_path``). What the extension puts in it is private anyway.
    """
    missing: list[Path] = []
    while not path.exists():
        missing.append(path)
        if path.parent == path:
            break
        path = path.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=PRIVATE_DIR)
        except FileExistsError:
            continue  # made meanwhile by someone else: theirs
        # mkdir's mode goes through the umask; an unusual umask could cut the owner's bits.
        os.chmod(directory, PRIVATE_DIR)


def make_private(path: Path, mode: int = PRIVATE_FILE) -> None:
    """Give the existing file or directory ``path`` the ``mode`` (by default 0600), as
    an older version may have left it 0644 or 0755. Nothing if it does not exist.

    A file the server may not change (another user's) is logged, not raised: the server
    works on, and the operator learns why the file is not private.
    """
    try:
        if stat.S_IMODE(os.stat(path).st_mode) != mode:
            os.chmod(path, mode)
    except FileNotFoundError:
        pass
    except PermissionError:
        log.warning("cannot make %s private (mode %o): not its owner", path, mode)


def open_private(path: Path, flags: int) -> int:
    """``os.open`` of a file that is created 0600, or made 0600 if it exists.

    Returns:
        The file descriptor.
    """
    fd = os.open(path, flags | os.O_CREAT, PRIVATE_FILE)
    try:
        # Created: the umask may have cut the mode. Existing: an older version's 0644.
        if stat.S_IMODE(os.fstat(fd).st_mode) != PRIVATE_FILE:
            os.fchmod(fd, PRIVATE_FILE)
    except PermissionError:
        log.warning("cannot make %s private (mode %o): not its owner", path, PRIVATE_FILE)
    except BaseException:
        os.close(fd)
        raise
    return fd
