"""The size bookkeeping of one cell's outputs, for the per-cell output limit.

Pure arithmetic: :class:`CellBudget` says where the truncation marker goes and how many
outputs after it to drop; the reducer turns that into operations.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .ops import OutputDict

__all__ = ["CellBudget", "output_chars"]


def output_chars(output: OutputDict) -> int:
    """The size of an output for the cell limit: the characters of its strings."""
    total = 0
    for key in ("text", "data", "traceback", "ename", "evalue"):
        value = output.get(key)
        if isinstance(value, str):
            total += len(value)
        elif isinstance(value, dict):
            total += sum(len(v) if isinstance(v, str) else len(str(v)) for v in value.values())
        elif isinstance(value, list):
            total += sum(len(v) for v in value if isinstance(v, str))
    return total


@dataclass
class CellBudget:
    """Sizes of a cell's outputs, in characters, and its truncation marker once placed.

    JupyterLab merges consecutive stream outputs of one name into one output of its
    model, yet applies deletions by the document's index. So the marker goes where no
    merged run precedes it (the head never holds two consecutive outputs of one stream),
    and outputs after it are dropped in bulk: the writer deletes the whole tail and
    appends what is kept, which every frontend model renders alike.

    Attributes:
        sizes: The size of each output, by index (the marker counts 0).
        streams: The stream name of each output, or None for other outputs.
        total: The sum of ``sizes``.
        marker: The marker's index, once the cell passed its limit.
        head: Characters before the marker.
    """

    sizes: list[int] = field(default_factory=list)
    streams: list[str | None] = field(default_factory=list)
    total: int = 0
    marker: int | None = None
    head: int = 0

    def append(self, size: int, stream: str | None = None) -> None:
        self.sizes.append(size)
        self.streams.append(stream)
        self.total += size

    def resize(self, index: int, size: int) -> None:
        if index < len(self.sizes):
            change = size - self.sizes[index]
            self.total += change
            if self.marker is not None and index < self.marker:
                self.head += change
            self.sizes[index] = size

    def place_marker(self, incoming: int, limit: int) -> int | None:
        """Where the marker goes, if an output of ``incoming`` characters passes ``limit``
        for the first time: after the outputs that fit in half the limit, up to the first
        continuation of a stream (a runaway print keeps its first segment)."""
        if self.marker is not None or self.total + incoming <= limit:
            return None
        index = head = 0
        while index < len(self.sizes) and head + self.sizes[index] <= limit // 2:
            stream = self.streams[index]
            if index and stream is not None and self.streams[index - 1] == stream:
                break
            head += self.sizes[index]
            index += 1
        self.sizes.insert(index, 0)
        self.streams.insert(index, None)
        self.marker, self.head = index, head
        return index

    def drop(self, incoming: int, limit: int) -> int:
        """How many outputs after the marker to drop before an output of ``incoming``
        characters: none while the tail fits in what the head leaves of ``limit``, else
        enough to bring it down to a quarter of that (a rewrite of the tail then costs a
        third of what was printed since the last one)."""
        if self.marker is None:
            return 0
        first = self.marker + 1
        budget = limit - self.head
        tail = self.total - self.head
        if tail + incoming <= budget:
            return 0
        count = 0
        while first + count < len(self.sizes) and tail + incoming > budget // 4:
            tail -= self.sizes[first + count]
            count += 1
        self.total -= sum(self.sizes[first : first + count])
        del self.sizes[first : first + count]
        del self.streams[first : first + count]
        return count

    def drop_all(self) -> int:
        """Drop every output after the marker; how many there were."""
        if self.marker is None:
            return 0
        first = self.marker + 1
        count = len(self.sizes) - first
        self.total -= sum(self.sizes[first:])
        del self.sizes[first:]
        del self.streams[first:]
        return count
