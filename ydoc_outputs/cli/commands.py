"""What ``run``, ``tail`` and ``export`` do, given their parsed options.

``run`` asks the server to queue the cells (``POST api/ydoc-outputs/run/{path}``), then
follows them as ``tail -f`` does; ``tail`` reads the notebook from the export endpoint, or
follows it live through its room; ``export`` writes what the export endpoint answers.
"""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Callable
from typing import Any, TextIO

from pycrdt import Array, Map

from .connection import EXIT_FAILED, CliError, ServerTarget, find_target
from .mirror import CellScope, NotebookMirror
from .render import OutputRecord, TerminalPrinter, output_text

__all__ = ["export", "parse_cells", "run", "tail"]

#: The ``ename`` of the error output the server writes when a cell is cut short
#: (kernels/faults.py): not the cell's own error.
FAULTS = {
    "KernelDied": "the kernel died",
    "KernelRestarted": "the kernel was restarted",
    "KernelShutdown": "the kernel was shut down",
    "ServerStopped": "the server stopped",
    "Cancelled": "the cell was cancelled",
}


#: The run command's name in its messages.
RUN_NAME = "jupyter-ydoc-outputs-run"


def interrupted_note(notebook: str) -> str:
    """What ``run`` says when Ctrl+C stops it following."""
    return (
        "stopped following; the run goes on on the server (follow it: "
        f"jupyter ydoc-outputs tail -f --until-idle {shlex.quote(notebook)})"
    )


def parse_cells(spec: str) -> tuple[int | None, int | None]:
    """``--cells``: ``A:B``, ``A:``, ``:B`` or ``A`` (one cell), indices from 0.

    Raises:
        CliError: Not of that form.
    """
    text = spec.strip()
    if not text:
        return None, None
    parts = text.split(":")
    try:
        if len(parts) == 1:
            index = int(parts[0])
            values: list[int | None] = [index, index + 1]
        elif len(parts) == 2:
            values = [int(p) if p.strip() else None for p in parts]
        else:
            raise ValueError(text)
    except ValueError:
        raise CliError(f"--cells must be A:B, A:, :B or A (indices from 0), not {spec!r}") from None
    if any(v is not None and v < 0 for v in values):
        raise CliError(f"--cells takes indices from 0, not {spec!r}")
    return values[0], values[1]


def _bound(value: int | None) -> str:
    return "" if value is None else str(value)


def _printer(headers: bool = False) -> TerminalPrinter:
    out: TextIO = sys.stdout
    if hasattr(out, "reconfigure"):
        out.reconfigure(errors="replace")
    return TerminalPrinter(out, tty=out.isatty(), headers=headers)


def _note(message: str) -> None:
    sys.stdout.flush()
    print(message, file=sys.stderr, flush=True)


# -- export --------------------------------------------------------------------------


async def _exported(target: ServerTarget) -> bytes:
    response = await target.request("GET", f"api/ydoc-outputs/export/{target.quoted_path}")
    return bytes(response.body)


async def export(notebook: str, server: str | None, token: str | None, output: str | None) -> int:
    target = find_target(notebook, server, token)
    body = await _exported(target)
    if output is None:
        sys.stdout.buffer.write(body)
        sys.stdout.buffer.flush()
        return 0
    try:
        with open(output, "wb") as f:
            f.write(body)
    except OSError as e:
        raise CliError(f"cannot write {output}: {e.strerror or e}") from None
    return 0


# -- tail ----------------------------------------------------------------------------


def _cell_scope(
    cells: list[tuple[str | None, str | None]], cell: str | None, path: str
) -> CellScope:
    """Which code cells ``--cell`` names: ``cells`` are (id, type) of every cell."""
    if cell is None:
        return lambda _cell_id, _index: True
    if cell.isdigit() and not any(cid == cell for cid, _ in cells):
        index = int(cell)
        if index >= len(cells):
            raise CliError(f"no cell {index} in {path}: it has {len(cells)} cells")
        cell_id, cell_type = cells[index]
    else:
        found = [(cid, kind) for cid, kind in cells if cid == cell]
        if not found:
            raise CliError(f"no cell with id {cell!r} in {path}")
        cell_id, cell_type = found[0]
    if cell_type != "code" or cell_id is None:
        raise CliError(f"cell {cell} of {path} is not a code cell")
    return lambda cid, _index: cid == cell_id


def _print_notebook(nb: dict[str, Any], cell: str | None, path: str, headers: bool) -> None:
    cells = nb.get("cells")
    cells = cells if isinstance(cells, list) else []
    kinds = [(c.get("id"), c.get("cell_type")) for c in cells if isinstance(c, dict)]
    scope = _cell_scope(kinds, cell, path)
    printer = _printer(headers)
    for index, c in enumerate(cells):
        if not isinstance(c, dict) or c.get("cell_type") != "code":
            continue
        if not scope(str(c.get("id")), index):
            continue
        for output in c.get("outputs") or ():
            if isinstance(output, dict):
                record = OutputRecord(label=f"cell {index}")
                text = output_text(output)
                printer.update(record, text)
                printer.finish(record)
    printer.close()


async def _follow(
    target: ServerTarget,
    scope_of: Callable[[Array[Any]], CellScope],
    *,
    until_idle: bool,
    headers: bool = False,
) -> Array[Any]:
    """Print the followed cells' outputs live; with ``until_idle``, return the synced
    cells once none of the followed ones is running. ``scope_of`` makes the scope from
    the synced cells."""
    from .room import open_room

    client = await open_room(target)
    ycells: Array[Any] = client.notebook.ycells
    printer = _printer(headers)
    mirror = NotebookMirror(ycells, printer, scope_of(ycells))
    mirror.start()
    try:
        while not (until_idle and not mirror.running()):
            await client.receive_one()
        mirror.finish()
        return ycells
    finally:
        mirror.stop()
        printer.close()
        client.close()


async def tail(
    notebook: str,
    server: str | None,
    token: str | None,
    *,
    follow: bool,
    until_idle: bool,
    cell: str | None,
    headers: bool,
) -> int:
    target = find_target(notebook, server, token)
    if not follow:
        body = await _exported(target)
        try:
            nb = json.loads(body)
        except ValueError:
            raise CliError(f"the server at {target.url} exported no JSON notebook") from None
        _print_notebook(nb, cell, target.path, headers)
        return 0

    def scope_of(ycells: Array[Any]) -> CellScope:
        kinds = [
            (c.get("id"), c.get("cell_type")) if isinstance(c, Map) else (None, None)
            for c in ycells
        ]
        return _cell_scope(kinds, cell, target.path)

    await _follow(target, scope_of, until_idle=until_idle, headers=headers)
    return 0


# -- run -----------------------------------------------------------------------------


def _verdict(ycells: Array[Any], cell_ids: list[str]) -> tuple[int, str, dict[str, Any]] | None:
    """The first of ``cell_ids`` that ended with an error: its index, id and error."""
    wanted = set(cell_ids)
    first: tuple[int, str, dict[str, Any]] | None = None
    order = {cid: i for i, cid in enumerate(cell_ids)}
    for index, ycell in enumerate(ycells):
        if not isinstance(ycell, Map) or ycell.get("id") not in wanted:
            continue
        outputs = ycell.get("outputs")
        for output in outputs if isinstance(outputs, Array) else ():
            if isinstance(output, Map) and output.get("output_type") == "error":
                cell_id = str(ycell.get("id"))
                if first is None or order[cell_id] < order[first[1]]:
                    error = output.to_py()
                    first = (index, cell_id, error if isinstance(error, dict) else {})
                break
    return first


async def run(
    notebook: str,
    server: str | None,
    token: str | None,
    *,
    start: int | None,
    stop: int | None,
    kernel: str | None,
    detach: bool,
) -> int:
    target = find_target(notebook, server, token)
    body: dict[str, Any] = {"start": start, "stop": stop}
    if kernel:
        body["kernel_name"] = kernel
    queued = await target.json("POST", f"api/ydoc-outputs/run/{target.quoted_path}", body)
    cell_ids = [str(c) for c in queued.get("cell_ids") or ()]
    if not cell_ids:
        where = "" if start is None and stop is None else f" {_bound(start)}:{_bound(stop)}"
        _note(f"nothing to run: no code cell in {target.path}{where}")
        return 0
    if detach:
        cells = f"{len(cell_ids)} cell{'s' if len(cell_ids) > 1 else ''}"
        print(
            f"queued {cells} of {target.path} on kernel "
            f"{queued.get('kernel_name')} ({queued.get('kernel_id')}); follow them with: "
            f"jupyter ydoc-outputs tail -f --until-idle {shlex.quote(notebook)}",
            flush=True,
        )
        return 0
    wanted = set(cell_ids)
    ycells = await _follow(
        target, lambda _ycells: lambda cid, _index: cid in wanted, until_idle=True
    )
    failed = _verdict(ycells, cell_ids)
    if failed is None:
        return 0
    index, _, error = failed
    ename, evalue = str(error.get("ename", "")), str(error.get("evalue", ""))
    if ename in FAULTS:
        _note(f"{RUN_NAME}: error: cell {index}: {evalue or FAULTS[ename]}")
    else:
        _note(f"{RUN_NAME}: error: cell {index} raised {ename}: {evalue}".rstrip(": "))
    return EXIT_FAILED
