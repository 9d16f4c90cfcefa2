"""Spill files: what a truncated cell no longer holds, appended, read back, private;
kept under a room name (those kept under a file id alone move there)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from ydoc_outputs.store.spill import SpillStore


def test_spill_files_kept_under_the_file_id_move_to_the_room(tmp_path: Path):
    old = SpillStore(tmp_path, "abc")
    old.append("cell", "middle of the output\n")
    old.close()
    new = SpillStore(tmp_path, "json:notebook:abc", former="abc")
    assert new.directory != old.directory
    assert "".join(new.read("cell")) == "middle of the output\n"
    assert not old.directory.exists()


def test_rooms_of_one_file_keep_their_own_spill_files(tmp_path: Path):
    notebook = SpillStore(tmp_path, "json:notebook:abc", former="abc")
    notebook.append("cell", "notebook output")
    other = SpillStore(tmp_path, "text:file:abc")
    assert list(other.read("cell")) == []
    notebook.close()


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_spill_files_are_private_whatever_the_umask(tmp_path: Path, umask_022: None):
    # A spill file is a cell's output: only the server's user may read it.
    root = tmp_path / "ydoc_outputs" / "spill"
    spill = SpillStore(root, "json:notebook:abc")
    spill.append("cell", "secret output\n")
    try:
        assert "".join(spill.read("cell")) == "secret output\n"
        assert mode(spill.path("cell")) == 0o600
        assert mode(spill.directory) == 0o700
        assert mode(root) == 0o700
        assert mode(tmp_path / "ydoc_outputs") == 0o700
        # Cleared and spilled again: created again, private again.
        spill.clear("cell")
        spill.append("cell", "again\n")
        assert mode(spill.path("cell")) == 0o600
    finally:
        spill.close()


def test_existing_spill_files_are_made_private(tmp_path: Path, umask_022: None):
    # As an older version left them: a directory 0755 and a file 0644.
    spill = SpillStore(tmp_path, "json:notebook:abc")
    spill.directory.mkdir(mode=0o755)
    spill.path("cell").write_text("before\n")
    assert (mode(spill.directory), mode(spill.path("cell"))) == (0o755, 0o644)
    spill.append("cell", "after\n")
    try:
        assert (mode(spill.directory), mode(spill.path("cell"))) == (0o700, 0o600)
        assert "".join(spill.read("cell")) == "before\nafter\n"
    finally:
        spill.close()


def test_clearing_a_cell_of_a_document_that_never_spilled_touches_no_file(tmp_path: Path):
    spill = SpillStore(tmp_path, "json:notebook:abc")
    spill.clear("cell")  # each run of a cell clears its spill file
    assert not spill.directory.exists()
    spill.append("cell", "dropped\n")
    spill.clear("cell")
    assert list(spill.read("cell")) == []
    spill.close()


def test_spill_files_left_by_an_earlier_server_are_cleared(tmp_path: Path):
    earlier = SpillStore(tmp_path, "json:notebook:abc")
    earlier.append("cell", "dropped\n")
    earlier.close()
    spill = SpillStore(tmp_path, "json:notebook:abc")
    spill.clear("cell")
    assert list(spill.read("cell")) == []
