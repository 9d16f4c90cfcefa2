"""Run the benchmarks and print one table each: ``python -m benchmarks.run [--quick]``."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Awaitable, Callable

from . import awareness, fanout, idle_tabs, ingest, latency, memory, reconnect
from .harness import Options
from .report import Table

__all__ = ["BENCHMARKS", "main"]

#: Every benchmark, by name, in the order they run.
BENCHMARKS: dict[str, Callable[[Options], Awaitable[Table]]] = {
    "ingest": ingest.run,
    "fanout": fanout.run,
    "reconnect": reconnect.run,
    "memory": memory.run,
    "awareness": awareness.run,
    "idle_tabs": idle_tabs.run,
    "latency": latency.run,
}


def _parse(argv: list[str] | None) -> tuple[Options, list[str]]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller workloads: a smoke run")
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs per measurement; the median is reported"
    )
    parser.add_argument(
        "names", nargs="*", metavar="NAME",
        help=f"benchmarks to run (default: all of {', '.join(BENCHMARKS)})",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    for name in args.names:
        if name not in BENCHMARKS:
            parser.error(f"unknown benchmark {name!r} (choose from {', '.join(BENCHMARKS)})")
    return Options(quick=args.quick, repeat=args.repeat), args.names or list(BENCHMARKS)


def _machine() -> str:
    load = os.getloadavg()[0]
    return f"{os.cpu_count()} CPUs, load average {load:.2f} (other processes add noise)"


async def _main(options: Options, names: list[str]) -> None:
    print(f"machine: {_machine()}\n", flush=True)
    for name in names:
        start = time.perf_counter()
        table = await BENCHMARKS[name](options)
        print(table.render(), flush=True)
        took = time.perf_counter() - start
        print(f"  ({name} took {took:.0f} s; then {_machine()})\n", flush=True)


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and run the chosen benchmarks."""
    options, names = _parse(argv)
    asyncio.run(_main(options, names))


if __name__ == "__main__":
    main(sys.argv[1:])
