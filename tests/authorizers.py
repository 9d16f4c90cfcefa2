"""Jupyter Server authorizers (and an identity provider) for tests, loaded by the server
process.

Configured with ``--ServerApp.authorizer_class=tests.authorizers.DenyContents`` (the
server gets the repository root on its ``PYTHONPATH``). Each denies every action on one
resource type and allows everything else, so a test can check both what is refused and
that what is allowed still works.
"""

from __future__ import annotations

from typing import Any

from jupyter_server.auth.authorizer import Authorizer
from jupyter_server.auth.identity import IdentityProvider, User

__all__ = ["DenyContents", "DenyKernels", "UserFromQuery"]


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


class UserFromQuery(IdentityProvider):
    """A request authenticated by the token is made by the user named in its ``user``
    query argument ("owner" without one), so that one test opens connections as several
    users (``--ServerApp.identity_provider_class=tests.authorizers.UserFromQuery``).
    Jupyter's own provider makes every token request without a cookie a new user."""

    async def _get_user(self, handler: Any) -> User | None:
        user = await super()._get_user(handler)
        if user is None:
            return None
        return User(username=handler.get_argument("user", "owner"))
