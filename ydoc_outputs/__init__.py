"""ydoc-outputs: notebook output that survives the browser.

Importing this package stays cheap (the pure ``ydoc_outputs.outputs`` core must not
pull in tornado, zmq or pycrdt), so the extension app is imported lazily.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__"]


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    from .app import YdocOutputsApp

    return [{"module": "ydoc_outputs", "app": YdocOutputsApp}]
