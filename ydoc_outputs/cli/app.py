"""``jupyter ydoc-outputs run | tail | export``: the command line, as Jupyter applications.

Each subcommand is a ``JupyterApp`` with its options as traitlets (``--help`` on each).
What they do lives in commands.py; here are the options, the one argument, and the
translation of every failure into one line on stderr and an exit code.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Coroutine
from typing import Any

from jupyter_core.application import JupyterApp, base_aliases, base_flags
from traitlets import Bool, Unicode

from .. import __version__
from .connection import EXIT_USAGE, CliError

__all__ = ["ExportCommand", "RunCommand", "TailCommand", "YdocOutputsCommand", "main"]

#: Exit code after Ctrl+C, as a shell reports a process ended by SIGINT.
EXIT_INTERRUPTED = 130

# The options of each command (module constants: traitlets reads them from the class).
_SERVER_ALIASES: dict[str, Any] = {
    **base_aliases,
    "server": "NotebookCommand.server",
    "token": "NotebookCommand.token",
}
_BASE_FLAGS: dict[str, Any] = dict(base_flags)
_RUN_ALIASES = {**_SERVER_ALIASES, "kernel": "RunCommand.kernel", "cells": "RunCommand.cells"}
_RUN_FLAGS = {
    **base_flags,
    "detach": ({"RunCommand": {"detach": True}}, "Queue the run and return at once."),
}
_TAIL_ALIASES = {**_SERVER_ALIASES, "cell": "TailCommand.cell"}
_TAIL_FLAGS = {
    **base_flags,
    "f": ({"TailCommand": {"follow": True}}, "Follow the outputs live."),
    "follow": ({"TailCommand": {"follow": True}}, "Follow the outputs live."),
    "until-idle": (
        {"TailCommand": {"follow": True, "until_idle": True}},
        "Follow, and stop once no followed cell is running or queued.",
    ),
    "headers": (
        {"TailCommand": {"headers": True}},
        "Print a '--- cell N ---' line before the output of each cell.",
    ),
}
_EXPORT_ALIASES = {
    **_SERVER_ALIASES,
    "o": "ExportCommand.output",
    "output": "ExportCommand.output",
}


class NotebookCommand(JupyterApp):
    """A subcommand about one notebook on a running Jupyter server."""

    version = __version__
    aliases: dict[str, Any] = _SERVER_ALIASES
    flags: dict[str, Any] = _BASE_FLAGS

    server = Unicode(
        None,
        allow_none=True,
        config=True,
        help="URL of the Jupyter server (with its base URL). Default: the running server "
        "(as 'jupyter server list' shows them) whose root directory holds the notebook.",
    )
    token = Unicode(
        None,
        allow_none=True,
        config=True,
        help="The server's token. Default: JUPYTER_TOKEN, or the running server's own.",
    )

    @property
    def notebook(self) -> str:
        """The one positional argument."""
        if len(self.extra_args) != 1:
            got = "none" if not self.extra_args else " ".join(self.extra_args)
            raise CliError(f"expected one NOTEBOOK argument, got {got} (see --help)")
        return str(self.extra_args[0])

    #: Said on stderr when Ctrl+C stops the command.
    interrupted: str | None = None

    async def main(self) -> int:
        """Do the command; return the exit code."""
        raise NotImplementedError

    def start(self) -> None:
        self.exit(self._run(self.main()))

    def _run(self, work: Coroutine[Any, Any, int]) -> int:
        """Run ``work``; every failure is one line on stderr, never a traceback."""
        try:
            return _run(work)
        except CliError as e:
            _fail(self.name, e.message)
            return e.code
        except KeyboardInterrupt:
            if self.interrupted:
                print(f"{self.name}: {self.interrupted}", file=sys.stderr, flush=True)
            return EXIT_INTERRUPTED
        except Exception as e:
            if int(self.log_level) <= logging.DEBUG:  # type: ignore[call-overload]
                raise  # --debug: the traceback
            _fail(self.name, f"unexpected {type(e).__name__}: {e} (--debug shows where)")
            return EXIT_USAGE


def _run(work: Coroutine[Any, Any, int]) -> int:
    try:
        return asyncio.run(work)
    except BrokenPipeError:
        # Read by something that stopped reading (``| head``): be quiet, as cat is.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_USAGE


def _fail(name: str, message: str) -> None:
    sys.stdout.flush()
    print(f"{name}: error: {message}", file=sys.stderr, flush=True)


class RunCommand(NotebookCommand):
    name = "jupyter-ydoc-outputs-run"
    description = """Run a notebook's code cells on a running Jupyter server, in order.

    The cells run on the kernel of the notebook's session (a session is started if
    there is none), one after the other, stopping at the first error: as Run All in
    JupyterLab. Their output goes into the notebook on the server, which saves it; a
    browser that opens the notebook meanwhile shows the run live. The run goes on if
    this command is stopped or its terminal closes.

    Without --detach, the output is followed as 'tail -f' does, and the exit code is the
    run's: 0, or 1 if a cell raised (its traceback is printed) or the kernel died.
    Exit code 2: the server, the notebook or the token was not found or not accepted.
    """
    examples = """
    jupyter ydoc-outputs run analysis.ipynb
    jupyter ydoc-outputs run analysis.ipynb --cells 3:10 --detach
    jupyter ydoc-outputs run nb.ipynb --server http://127.0.0.1:8888/ --token abc --kernel python3
    """
    aliases: dict[str, Any] = _RUN_ALIASES
    flags: dict[str, Any] = _RUN_FLAGS

    kernel = Unicode(
        None,
        allow_none=True,
        config=True,
        help="Kernel name for a new session. Default: the notebook's kernelspec.",
    )
    cells = Unicode(
        "",
        config=True,
        help="Cells to run, A:B by index among all cells from 0, B excluded (as a Python "
        "slice: 2:, :5, 3:4); a single index runs one cell. Default: all.",
    )
    detach = Bool(False, config=True, help="Queue the run and return at once.")

    async def main(self) -> int:
        from .commands import interrupted_note, parse_cells, run

        notebook = self.notebook
        start, stop = parse_cells(self.cells)
        if not self.detach:
            self.interrupted = interrupted_note(notebook)
        return await run(
            notebook, self.server, self.token,
            start=start, stop=stop, kernel=self.kernel, detach=self.detach,
        )  # fmt: skip


class TailCommand(NotebookCommand):
    name = "jupyter-ydoc-outputs-tail"
    description = """Print a notebook's outputs as text, as they are now on the server.

    Streams as printed, the text/plain of rich outputs, errors with their tracebacks.
    With -f, follow them live as the kernel writes them, through the notebook's room
    (as a browser does): each line is printed once; a progress bar drawn with '\\r' is
    redrawn in place on a terminal, and its last state is printed otherwise. Stop with
    Ctrl+C, or with --until-idle once no cell is running or queued.
    """
    examples = """
    jupyter ydoc-outputs tail analysis.ipynb
    jupyter ydoc-outputs tail -f --until-idle analysis.ipynb
    jupyter ydoc-outputs tail -f --cell 4 analysis.ipynb
    """
    aliases: dict[str, Any] = _TAIL_ALIASES
    flags: dict[str, Any] = _TAIL_FLAGS

    follow = Bool(False, config=True, help="Follow the outputs live.")
    until_idle = Bool(
        False, config=True, help="Stop following once no followed cell is running or queued."
    )
    cell = Unicode(
        "",
        config=True,
        help="Only this cell: its id, or its index among all cells from 0. Default: all.",
    )
    headers = Bool(False, config=True, help="Print a header line before each cell's output.")

    async def main(self) -> int:
        from .commands import tail

        return await tail(
            self.notebook, self.server, self.token,
            follow=self.follow, until_idle=self.until_idle, cell=self.cell or None,
            headers=self.headers,
        )  # fmt: skip


class ExportCommand(NotebookCommand):
    name = "jupyter-ydoc-outputs-export"
    description = """Write a notebook as the server holds it now, as .ipynb (nbformat 4.5).

    The state every browser sees, outputs of a run still going included: byte for byte
    what the server's autosave writes. To standard output, or to a file with -o.
    """
    examples = """
    jupyter ydoc-outputs export analysis.ipynb -o snapshot.ipynb
    """
    aliases: dict[str, Any] = _EXPORT_ALIASES

    output = Unicode("", config=True, help="File to write. Default: standard output.")

    async def main(self) -> int:
        from .commands import export

        return await export(self.notebook, self.server, self.token, output=self.output or None)


_SUBCOMMANDS = {
    "run": (RunCommand, RunCommand.description.splitlines()[0]),
    "tail": (TailCommand, TailCommand.description.splitlines()[0]),
    "export": (ExportCommand, ExportCommand.description.splitlines()[0]),
}


class YdocOutputsCommand(JupyterApp):
    name = "jupyter-ydoc-outputs"
    version = __version__
    description = """Run notebooks on a Jupyter server with ydoc-outputs, follow their output
    and export them, from a terminal. The server finds itself as 'jupyter server list'
    does: run these on the machine of the server (over ssh, for instance)."""
    examples = """
    jupyter ydoc-outputs run analysis.ipynb --detach
    jupyter ydoc-outputs tail -f --until-idle analysis.ipynb
    jupyter ydoc-outputs export analysis.ipynb -o snapshot.ipynb
    """
    subcommands: dict[str, Any] = _SUBCOMMANDS

    def start(self) -> None:
        if self.subapp is None:
            _fail(self.name, "no subcommand: use one of run, tail, export (see --help)")
            self.exit(EXIT_USAGE)
        super().start()


def main(argv: list[str] | None = None) -> None:
    """The ``jupyter-ydoc-outputs`` entry point."""
    YdocOutputsCommand.launch_instance(argv)
