"""Tests of the pure core, ``ydoc_outputs.outputs`` (no server, kernel or Y document)."""
