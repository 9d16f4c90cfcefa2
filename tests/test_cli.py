"""``jupyter ydoc-outputs run | tail | export`` as a user runs them: real subprocesses
against a real server (found through its runtime file, as ``jupyter server list`` finds
it), real ipykernels, the notebook's real file on disk.
"""

from __future__ import annotations

import asyncio
import json
import os
import pty
import re
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import nbformat
import pytest

from .conftest import TOKEN, Server, Session, read_saved, write_notebook
from .test_execution import stream_text

JUPYTER = str(Path(sys.executable).with_name("jupyter"))


class Cli:
    """Runs ``jupyter ydoc-outputs`` against the test server; shuts down the sessions
    its runs started."""

    def __init__(self, server: Server, session: Session) -> None:
        self.server = server
        self.http = session.http
        self.env = {
            **os.environ,
            # Where the server wrote its jpserver-*.json, as `jupyter server list` reads.
            "JUPYTER_RUNTIME_DIR": str(server.log_path.parent / "runtime"),
            "JUPYTER_TOKEN": "",
            "PYTHONUNBUFFERED": "1",
        }
        self.paths: set[str] = set()

    def path(self, name: str) -> str:
        """The notebook as a user names it: its local path."""
        self.paths.add(name)
        return str(self.server.root / name)

    async def start(self, *args: str, **kwargs: object) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            JUPYTER, "ydoc-outputs", *args,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env=self.env, cwd=str(self.server.root), **kwargs,  # type: ignore[arg-type]
        )  # fmt: skip

    async def __call__(self, *args: str, timeout: float = 120) -> tuple[int, str, str]:
        proc = await self.start(*args)
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
        assert proc.returncode is not None
        return proc.returncode, out.decode(), err.decode()

    async def close(self) -> None:
        for s in (await self.http.get("/api/sessions")).json():
            if s["path"] in self.paths:
                await self.http.delete(f"/api/sessions/{s['id']}")


@pytest.fixture
async def cli(server: Server, session: Session) -> AsyncIterator[Cli]:
    c = Cli(server, session)
    yield c
    await c.close()


def one_line_error(rc: int, out: str, err: str, words: str) -> None:
    assert rc == 2, (rc, out, err)
    assert "Traceback" not in err and out == "", err
    assert err.count("\n") == 1 and words in err, err


async def saved_outputs(path: Path, cells: list[str], timeout: float = 20) -> dict[str, list]:
    """The outputs of ``cells`` in the file on disk, once each has a count (autosave)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        nb = await read_saved(path)
        by_id = {c["id"]: c for c in nb.cells}
        if all(by_id[c].get("execution_count") for c in cells):
            return {c: by_id[c]["outputs"] for c in cells}
        assert asyncio.get_running_loop().time() < deadline, "the outputs were never saved"
        await asyncio.sleep(0.1)


def lines(prefix: str, count: int, sleep: float = 0.0) -> str:
    """A cell printing ``{prefix} {i}`` lines, flushed one by one."""
    pause = f"\n    time.sleep({sleep})" if sleep else ""
    return f"import time\nfor i in range({count}):\n    print('{prefix}', i, flush=True){pause}"


async def test_run_exits_0_and_the_file_holds_every_output(cli: Cli):
    name, cells = write_notebook(
        cli.server.root,
        "cli-run.ipynb",
        [lines("first", 3), "print('second')\n21 * 2", lines("third", 3, 0.1)],
    )
    rc, out, err = await cli("run", cli.path(name))
    assert rc == 0, (out, err)
    expected = "first 0\nfirst 1\nfirst 2\nsecond\n42\nthird 0\nthird 1\nthird 2\n"
    assert out == expected
    saved = await saved_outputs(cli.server.root / name, cells)
    assert stream_text(saved[cells[0]]) == "first 0\nfirst 1\nfirst 2\n"
    assert stream_text(saved[cells[1]]) == "second\n"
    assert saved[cells[1]][1]["data"]["text/plain"] == "42"
    assert stream_text(saved[cells[2]]) == "third 0\nthird 1\nthird 2\n"
    nbformat.validate(await read_saved(cli.server.root / name))


async def test_run_stops_at_an_error_exits_1_and_prints_the_traceback(cli: Cli):
    name, cells = write_notebook(
        cli.server.root,
        "cli-error.ipynb",
        ["print('before')", "def f():\n    return 1 / 0\nf()", "print('never')"],
    )
    rc, out, err = await cli("run", cli.path(name))
    assert rc == 1, (out, err)
    assert out.startswith("before\n")
    assert "Traceback (most recent call last)" in out and "----> 3 f()" in out
    assert out.rstrip().endswith("ZeroDivisionError: division by zero")
    assert "never" not in out
    assert "\x1b[" not in out  # not a terminal: no colours
    assert (
        err
        == "jupyter-ydoc-outputs-run: error: cell 1 raised ZeroDivisionError: division by zero\n"
    )
    saved = await saved_outputs(cli.server.root / name, cells[:2])
    assert saved[cells[1]][-1]["ename"] == "ZeroDivisionError"


async def test_run_a_range_of_cells_on_a_named_kernel(cli: Cli):
    name, _ = write_notebook(
        cli.server.root, "cli-range.ipynb", ["print('zero')", "print('one')", "print('two')"]
    )
    rc, out, err = await cli("run", "--cells", "1:", "--kernel", "python3", cli.path(name))
    assert (rc, out) == (0, "one\ntwo\n"), err
    rc, out, err = await cli("run", "--cells", "0", cli.path(name))
    assert (rc, out) == (0, "zero\n"), err


async def test_run_detach_then_tail_follow_prints_every_line_once(cli: Cli):
    sources = [
        lines("alpha", 60, 0.02),
        "import sys\nprint('to stderr', file=sys.stderr, flush=True)\nprint('to stdout')",
        lines("beta", 300),
        "from IPython.display import display\ndisplay('shown')\n'result'",
        lines("gamma", 40, 0.02),
    ]
    name, cells = write_notebook(cli.server.root, "cli-follow.ipynb", sources)
    rc, out, err = await cli("run", "--detach", cli.path(name))
    assert rc == 0, err
    assert out.startswith("queued 5 cells of cli-follow.ipynb on kernel python3")
    rc, out, err = await cli("tail", "-f", "--until-idle", cli.path(name))
    assert rc == 0, err
    expected = (
        "".join(f"alpha {i}\n" for i in range(60))
        + "to stderr\nto stdout\n"
        + "".join(f"beta {i}\n" for i in range(300))
        + "'shown'\n'result'\n"
        + "".join(f"gamma {i}\n" for i in range(40))
    )
    assert out == expected
    # Once the run is over, tail prints the same, as it is now.
    rc, now, err = await cli("tail", cli.path(name))
    assert (rc, now) == (0, expected), err
    rc, one, err = await cli("tail", "--cell", "1", "--headers", cli.path(name))
    assert (rc, one) == (0, "--- cell 1 ---\nto stderr\nto stdout\n"), err
    rc, one, err = await cli("tail", "--cell", cells[3], cli.path(name))
    assert (rc, one) == (0, "'shown'\n'result'\n"), err


async def test_killing_tail_mid_run_loses_nothing(cli: Cli):
    name, cells = write_notebook(
        cli.server.root, "cli-kill.ipynb", [lines("n", 50, 0.05), "print('after')"]
    )
    rc, _, err = await cli("run", "--detach", cli.path(name))
    assert rc == 0, err
    tail = await cli.start("tail", "-f", cli.path(name))
    assert tail.stdout is not None
    first = await asyncio.wait_for(tail.stdout.readline(), 60)
    assert first.startswith(b"n ")
    tail.kill()
    await tail.wait()
    saved = await saved_outputs(cli.server.root / name, cells)
    assert stream_text(saved[cells[0]]) == "".join(f"n {i}\n" for i in range(50))
    assert stream_text(saved[cells[1]]) == "after\n"


PROGRESS = "for i in range(2001):\n    print(f'\\rstep {i}/2000', end='', flush=True)"


async def test_tail_of_a_progress_bar_prints_its_final_line(cli: Cli):
    name, _ = write_notebook(cli.server.root, "cli-progress.ipynb", [PROGRESS, "print('done')"])
    rc, _, err = await cli("run", "--detach", cli.path(name))
    assert rc == 0, err
    rc, out, err = await cli("tail", "-f", "--until-idle", cli.path(name))
    assert (rc, out) == (0, "step 2000/2000\ndone\n"), err


async def test_on_a_terminal_the_progress_bar_is_redrawn_in_place(cli: Cli):
    name, _ = write_notebook(
        cli.server.root,
        "cli-progress-tty.ipynb",
        ["import time\n" + PROGRESS.replace("flush=True)", "flush=True); time.sleep(0.002)")],
    )
    leader, follower = pty.openpty()
    proc = await asyncio.create_subprocess_exec(
        JUPYTER, "ydoc-outputs", "run", cli.path(name),
        stdin=follower, stdout=follower, stderr=asyncio.subprocess.PIPE, env=cli.env,
    )  # fmt: skip
    os.close(follower)
    cli.paths.add(name)
    written = bytearray()
    loop = asyncio.get_running_loop()
    while True:
        try:
            chunk = await loop.run_in_executor(None, os.read, leader, 65536)
        except OSError:  # EIO: the terminal's last writer is gone
            break
        if not chunk:
            break
        written += chunk
    os.close(leader)
    assert await proc.wait() == 0
    text = written.decode()
    redraws = text.count("\r\x1b[K")
    assert redraws > 3, text  # drawn again and again, in place
    # What the terminal shows in the end: one line, the last state.
    assert re.split(r"\r\x1b\[K", text)[-1].replace("\r\n", "\n") == "step 2000/2000\n"


async def test_errors_are_one_line_with_exit_code_2(cli: Cli, tmp_path: Path):
    name, _ = write_notebook(cli.server.root, "cli-errors.ipynb", ["1"])
    one_line_error(*await cli("run", "--token", "wrong", cli.path(name)), "refused the token (403")
    one_line_error(*await cli("tail", "--token", "wrong", cli.path(name)), "refused the token")
    one_line_error(*await cli("run", cli.path("missing.ipynb")), "no such notebook")
    one_line_error(*await cli("export", cli.path("missing.ipynb")), "no such notebook")
    url = cli.server.url
    one_line_error(
        *await cli("run", "--server", url, "--token", TOKEN, "missing.ipynb"),
        f"no such notebook on the server at {url}/: missing.ipynb",
    )
    outside, _ = write_notebook(tmp_path, "outside.ipynb", ["1"])
    one_line_error(*await cli("tail", str(tmp_path / outside)), "no running Jupyter server")
    one_line_error(
        *await cli("tail", "--server", "http://127.0.0.1:9", "--token", "t", "a.ipynb"),
        "cannot reach the Jupyter server",
    )
    one_line_error(*await cli("run", "--cells", "x:2", cli.path(name)), "--cells must be")
    one_line_error(*await cli("run", "--cells", "5:", cli.path(name)), "out of range")
    one_line_error(*await cli("tail", "--cell", "7", cli.path(name)), "no cell 7")
    one_line_error(*await cli("tail"), "expected one NOTEBOOK")
    rc, _, err = await cli()
    assert rc == 2 and "no subcommand" in err and err.count("\n") == 1


async def test_a_kernel_that_dies_ends_the_run_with_a_message(cli: Cli):
    # The pause lets the first cell's idle leave the kernel: os._exit skips zmq's linger,
    # and the server would then see the kernel die in the first cell.
    name, _ = write_notebook(
        cli.server.root,
        "cli-death.ipynb",
        ["print('alive', flush=True)", "import os, time\ntime.sleep(0.5)\nos._exit(1)"],
    )
    rc, out, err = await cli("run", cli.path(name))
    assert rc == 1, (out, err)
    assert out.startswith("alive\n")
    assert err == "jupyter-ydoc-outputs-run: error: cell 1: the kernel died while this cell ran\n"


async def test_export_writes_the_synced_notebook(cli: Cli, session: Session, tmp_path: Path):
    name, cells = write_notebook(cli.server.root, "cli-export.ipynb", ["print('exported')"])
    rc, _, err = await cli("run", cli.path(name))
    assert rc == 0, err
    target = tmp_path / "copy.ipynb"
    rc, out, err = await cli("export", cli.path(name), "-o", str(target))
    assert (rc, out) == (0, ""), err
    assert target.read_text() == await session.export(name)
    nb = nbformat.reads(target.read_text(), as_version=4)
    nbformat.validate(nb)
    assert stream_text(nb.cells[0].outputs) == "exported\n"
    rc, out, err = await cli("export", cli.path(name))
    assert rc == 0 and json.loads(out)["cells"][0]["id"] == cells[0], err


async def test_help_of_each_command(cli: Cli):
    for command, words in [
        ("run", ["--cells", "--detach", "--kernel", "--server", "--token"]),
        ("tail", ["-f", "--until-idle", "--cell", "--headers"]),
        ("export", ["-o"]),
    ]:
        rc, out, err = await cli(command, "--help")
        assert rc == 0, err
        assert all(word in out for word in words), out


async def test_ctrl_c_stops_following_without_a_traceback(cli: Cli):
    name, cells = write_notebook(cli.server.root, "cli-interrupt.ipynb", [lines("i", 40, 0.05)])
    run = await cli.start("run", cli.path(name))
    assert run.stdout is not None and run.stderr is not None
    assert (await asyncio.wait_for(run.stdout.readline(), 60)).startswith(b"i ")
    run.send_signal(signal.SIGINT)
    assert await asyncio.wait_for(run.wait(), 30) == 130
    err = (await run.stderr.read()).decode()
    assert "Traceback" not in err and "the run goes on on the server" in err, err
    # It did.
    saved = await saved_outputs(cli.server.root / name, cells, timeout=60)
    assert stream_text(saved[cells[0]]) == "".join(f"i {i}\n" for i in range(40))
