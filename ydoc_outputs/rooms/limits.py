"""Per-connection limits of the room websocket (``YdocOutputsApp`` settings)."""

from __future__ import annotations

import time
from dataclasses import dataclass

__all__ = ["TokenBucket", "WebsocketLimits"]


@dataclass(frozen=True)
class WebsocketLimits:
    """What one room websocket connection may send (``YdocOutputsApp`` settings).

    Attributes:
        max_message_bytes: Largest frame; Tornado closes larger ones with 1009.
        max_awareness_bytes: Largest awareness message (echoed to every client); 1009.
        awareness_rate: Awareness messages per second, sustained; 4429 above.
        awareness_burst: Awareness messages accepted at once before the rate applies.
        request_rate: Sync step 1 and save requests per second, sustained; 4429 above.
            Each one makes the server encode or save the whole document.
        request_burst: Sync step 1 and save requests accepted at once.
        max_pending_bytes: Bytes waiting to be sent to a client that does not read;
            4408 when a message comes while more than this waits, and the client
            resyncs when it reconnects. One message larger than this is still sent,
            and the one sync step 2 (whole document) being sent does not count.
    """

    max_message_bytes: int = 10 * 1024 * 1024
    max_awareness_bytes: int = 64 * 1024
    awareness_rate: float = 50.0
    awareness_burst: int = 300
    request_rate: float = 2.0
    request_burst: int = 20
    max_pending_bytes: int = 32 * 1024 * 1024


class TokenBucket:
    """Allows ``burst`` events at once, then ``rate`` events per second.

    A rate of 0 or less allows everything.
    """

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = max(1, burst)
        self._tokens = float(self.burst)
        self._time = time.monotonic()

    def take(self) -> bool:
        """Spend one token; False if none is left (the event is over the limit)."""
        if self.rate <= 0:
            return True
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._time) * self.rate)
        self._time = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True
