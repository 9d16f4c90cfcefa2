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

    Attributes:
        sizes: The size of each output, by index (the marker counts 0).
        total: Their sum.
        marker: The marker's index, once the cell passed its limit.
        head: Characters before the marker.
    """

    sizes: list[int] = field(default_factory=list)
    total: int = 0
    marker: int | None = None
    head: int = 0

    def append(self, size: int) -> None:
        self.sizes.append(size)
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
        for the first time: after the outputs that fit in half the limit."""
        if self.marker is not None or self.total + incoming <= limit:
            return None
        index = head = 0
        while index < len(self.sizes) and head + self.sizes[index] <= limit // 2:
            head += self.sizes[index]
            index += 1
        self.sizes.insert(index, 0)
        self.marker, self.head = index, head
        return index

    def drop_one(self, incoming: int, limit: int) -> bool:
        """Drop the first output after the marker if the tail and an output of
        ``incoming`` characters do not fit in the other half of ``limit``."""
        if self.marker is None:
            return False
        first = self.marker + 1
        if first >= len(self.sizes) or self.total - self.head + incoming <= limit // 2:
            return False
        self.total -= self.sizes.pop(first)
        return True
