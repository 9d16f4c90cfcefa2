"""Tables of benchmark results, printed as aligned plain text."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["Table", "median", "slower_rounds"]

#: The sign test's level: a side is slower only if chance alone would make it lose that
#: many rounds less often than this.
SIGNIFICANCE = 0.05


def median(values: Sequence[float]) -> float:
    """The median of ``values`` (which must not be empty)."""
    return float(statistics.median(values))


def slower_rounds(ours: Sequence[float], theirs: Sequence[float]) -> tuple[int, int, float]:
    """Paired times of the same rounds: in how many rounds ours took longer, out of how
    many (rounds where both took the same time do not count), and the one-sided sign
    test's p-value, the chance of ours losing that many rounds or more if neither side
    were faster. Below :data:`SIGNIFICANCE`, ours is slower; above it, a difference
    of the medians is within what the rounds' own spread makes by chance."""
    pairs = [(a, b) for a, b in zip(ours, theirs, strict=False) if a != b]
    rounds = len(pairs)
    slower = sum(a > b for a, b in pairs)
    p = sum(math.comb(rounds, k) for k in range(slower, rounds + 1)) / 2**rounds
    return slower, rounds, p


@dataclass
class Table:
    """One benchmark's results: a title, a header row, data rows and notes below.

    Attributes:
        title: What was measured, printed above the table.
        headers: The column headers; the first column is left-aligned, the rest right.
        rows: The data rows, already formatted as strings.
        notes: Lines printed under the table (how figures were measured, caveats).
    """

    title: str
    headers: Sequence[str]
    rows: list[Sequence[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def render(self) -> str:
        """The table as text, columns aligned, ending with a newline."""
        widths = [len(h) for h in self.headers]
        for row in self.rows:
            widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]

        def line(cells: Sequence[str]) -> str:
            first, *rest = cells
            parts = [first.ljust(widths[0])]
            parts += [c.rjust(w) for c, w in zip(rest, widths[1:], strict=True)]
            return "  ".join(parts).rstrip()

        out = [self.title, line(self.headers), line(["-" * w for w in widths])]
        out += [line(row) for row in self.rows]
        out += [f"  {note}" for note in self.notes]
        return "\n".join(out) + "\n"
