"""``jupyter ydoc-outputs``: run notebooks on a server, follow and export them from a
terminal (the ``jupyter-ydoc-outputs`` entry point)."""

from __future__ import annotations

from .app import main

__all__ = ["main"]
