"""Jupyter Server authorizers for the authorization tests, loaded by the server process.

Configured with ``--ServerApp.authorizer_class=tests.authorizers.DenyContents`` (the
server gets the repository root on its ``PYTHONPATH``). Each denies every action on one
resource type and allows everything else, so a test can check both what is refused and
that what is allowed still works.
"""

from __future__ import annotations

from typing import Any

from jupyter_server.auth.authorizer import Authorizer

__all__ = ["DenyContents", "DenyKernels"]


class _DenyResource(Authorizer):
    """Refuses every action on :attr:`denied`; allows the rest."""

    denied = ""

    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        return resource != self.denied


class DenyContents(_DenyResource):
    """No reading or writing of files (``contents``); kernels are allowed."""

    denied = "contents"


class DenyKernels(_DenyResource):
    """No kernels (``kernels``): no start, no execute; files are allowed."""

    denied = "kernels"
