"""Spill files belong to a room name; those kept under a file id alone move there."""

from __future__ import annotations

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
