"""Route iopub messages to their cell: parent ``msg_id`` -> (document, cell).

A bounded LRU map, so late output (background threads) still finds its cell while
memory stays bounded however many cells run.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

__all__ = ["DEFAULT_MAX_ROUTES", "ParentRouter", "Route"]

DEFAULT_MAX_ROUTES = 10_000


@dataclass(frozen=True, slots=True)
class Route:
    """Where the output of one request goes.

    Attributes:
        document_id: The room name, ``json:notebook:{fileId}``.
        cell_id: The id of the code cell that made the request.
    """

    document_id: str
    cell_id: str


class ParentRouter:
    """Maps the ``msg_id`` of a request to the :class:`Route` of its output.

    Holds at most ``max_size`` routes; adding one more forgets the least recently
    added or looked-up route.
    """

    def __init__(self, max_size: int = DEFAULT_MAX_ROUTES) -> None:
        """Create an empty router.

        Args:
            max_size: How many routes to keep.

        Raises:
            ValueError: If ``max_size`` is less than 1.
        """
        if max_size < 1:
            raise ValueError(f"max_size must be at least 1, not {max_size}")
        self._max_size = max_size
        self._routes: OrderedDict[str, Route] = OrderedDict()

    @property
    def max_size(self) -> int:
        """How many routes the router keeps at most."""
        return self._max_size

    def add(self, msg_id: str, route: Route) -> None:
        """Remember that the output of request ``msg_id`` goes to ``route``."""
        self._routes[msg_id] = route
        self._routes.move_to_end(msg_id)
        while len(self._routes) > self._max_size:
            self._routes.popitem(last=False)

    def get(self, msg_id: str) -> Route | None:
        """Return the route of request ``msg_id`` (marking it recently used), or None."""
        route = self._routes.get(msg_id)
        if route is not None:
            self._routes.move_to_end(msg_id)
        return route

    def discard(self, msg_id: str) -> None:
        """Forget request ``msg_id``, if known."""
        self._routes.pop(msg_id, None)

    def __len__(self) -> int:
        return len(self._routes)

    def __contains__(self, msg_id: object) -> bool:
        return msg_id in self._routes
