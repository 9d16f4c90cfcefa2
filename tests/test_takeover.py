"""Other collaboration servers installed and enabled beside us: our routes still win.

jupyter-server-nbmodel and jupyter-server-documents are installed in the test venv (the
``test`` extra). Their own config.d files enable them; ours disables them; here a later
user config enables them again, as ``jupyter server extension enable`` does.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import tornado.web

from ydoc_outputs.takeover import (
    RIVAL_LABEXTENSIONS,
    _strip_rivals,
    route_owners,
    take_over_routes,
)

from .conftest import Server, Session, write_notebook
from .test_execution import run_to_idle

RIVALS = ["jupyter_server_documents", "jupyter_server_nbmodel"]


@pytest.fixture(scope="module")
def rival_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    for name in RIVALS:
        pytest.importorskip(name)
    root = tmp_path_factory.mktemp("notebooks")
    home = tmp_path_factory.mktemp("jupyter-home")
    config = home / "config"
    config.mkdir()
    # What `jupyter server extension enable X` writes: the user's config, read after
    # the environment's jupyter_server_config.d (ours among them).
    (config / "jupyter_server_config.json").write_text(
        json.dumps({"ServerApp": {"jpserver_extensions": dict.fromkeys(RIVALS, True)}})
    )
    srv = Server(root, home, ["--YdocOutputsApp.room_cleanup_delay=1.0"])
    yield srv
    srv.stop()


@pytest.fixture
async def rival_session(rival_server: Server) -> AsyncIterator[Session]:
    s = Session(rival_server, rival_server.http())
    yield s
    await s.close()
    assert rival_server.proc.poll() is None, "the server died"


async def test_cells_run_through_our_server_with_rivals_enabled(
    rival_server: Server, rival_session: Session
) -> None:
    log = rival_server.log()
    # Both really are loaded (else this test proves nothing).
    for name in RIVALS:
        assert re.search(rf"{name} \| extension was successfully loaded", log), log
    path, [cell] = write_notebook(rival_server.root, "rivals.ipynb", ["print('ours')\n6 * 7"])
    kernel, room, client = await rival_session.prepare(path)
    r = await rival_session.execute(kernel, room, cell)
    assert r.status_code == 202, r.text  # jupyter_server_documents answers 400 to this body
    await run_to_idle(client, cell)
    outputs = client.outputs(cell)
    assert [o["output_type"] for o in outputs] == ["stream", "execute_result"]
    assert outputs[0]["text"] == "ours\n"
    assert outputs[1]["data"]["text/plain"] == "42"
    await client.disconnect()

    log = rival_server.log()
    errors = [line for line in log.splitlines() if "ydoc_outputs:" in line and "[E " in line]
    for name in RIVALS:
        assert any(f"the server extension {name} is enabled" in e for e in errors), errors
    # jupyter_server_documents loads first, so it had taken the room and execute routes.
    for route in (r"api/collaboration/room/\S+", r"api/kernels/\S+/execute"):
        assert any(
            re.search(rf"{route} was served by jupyter_server_documents \(", e)
            and "ydoc_outputs' routes now come first" in e
            for e in errors
        ), errors
    assert any("put back jupyter_server's session_manager" in e for e in errors), errors
    assert any("put back jupyter_server's kernel_websocket_connection_class" in e for e in errors)


async def test_the_lab_page_keeps_the_stock_collaboration_frontend(
    rival_session: Session,
) -> None:
    r = await rival_session.http.get("/lab")
    assert r.status_code == 200, r.text
    match = re.search(r'<script id="jupyter-config-data" type="application/json">(.*?)</script>',
                      r.text, re.S)  # fmt: skip
    assert match, r.text[:2000]
    page = json.loads(match.group(1))
    names = [e["name"] for e in page["federated_extensions"]]
    assert "@jupyter/docprovider-extension" in names
    assert "@jupyter/collaboration-extension" in names  # jupyter-collaboration-ui
    for rival in RIVAL_LABEXTENSIONS:
        assert rival not in names
        assert rival in page["disabledExtensions"]
    # What nbmodel's and server-documents' package.json disabled is enabled again; what
    # docprovider itself disables stays disabled.
    for plugin in (
        "@jupyter/docprovider-extension:notebook-cell-executor",
        "@jupyter/docprovider-extension:websocket-provider-document-factory",
        "@jupyter/docprovider-extension:forkManager",
    ):
        assert plugin not in page["disabledExtensions"]
    assert "@jupyterlab/notebook-extension:cell-executor" in page["disabledExtensions"]
    assert page["serverSideExecution"] == "true"


# The route-owner check alone, on a bare tornado application.


class RivalExecute(tornado.web.RequestHandler):
    pass


RivalExecute.__module__ = "jupyter_server_nbmodel.handlers"


class OurExecute(tornado.web.RequestHandler):
    pass


class OurRoom(tornado.web.RequestHandler):
    pass


KERNEL = r"(?P<kernel_id>\w+-\w+-\w+-\w+-\w+)"


def app_with(*extensions: list[tuple[str, type]]) -> tornado.web.Application:
    """Each extension's rules added as ExtensionApp._prepare_handlers adds them."""
    app = tornado.web.Application([(r"/base/api/status", tornado.web.RequestHandler)])
    for rules in extensions:
        app.add_handlers(".*$", rules)
    return app


def test_a_rival_loaded_first_loses_its_routes_to_ours(caplog: pytest.LogCaptureFixture) -> None:
    rival = [(rf"/base/api/kernels/{KERNEL}/execute", RivalExecute)]
    ours = [
        (r"/base/api/collaboration/room/(.*)", OurRoom),
        (rf"/base/api/kernels/{KERNEL}/execute", OurExecute),
    ]
    app = app_with(rival, ours)
    assert route_owners(app, "/base/")["execute"] is RivalExecute
    log = logging.getLogger("test-takeover")
    with caplog.at_level(logging.ERROR, "test-takeover"):
        taken = take_over_routes(app, "/base/", {OurRoom, OurExecute}, log)
    assert taken == {"execute": "jupyter_server_nbmodel"}
    owners = route_owners(app, "/base/")
    assert owners["execute"] is OurExecute
    assert owners["room"] is OurRoom
    [record] = caplog.records
    assert record.levelno == logging.ERROR
    assert "jupyter_server_nbmodel" in record.getMessage()
    assert "routes now come first" in record.getMessage()
    # The rival's other rules and the server's own still answer.
    assert route_owners(app, "/base/")["session"] is tornado.web.ErrorHandler
    # Once ours lead, nothing is moved or logged again.
    caplog.clear()
    assert take_over_routes(app, "/base/", {OurRoom, OurExecute}, log) == {}
    assert caplog.records == []


def test_our_routes_loaded_first_are_left_alone(caplog: pytest.LogCaptureFixture) -> None:
    ours = [(rf"/base/api/kernels/{KERNEL}/execute", OurExecute)]
    rival = [(rf"/base/api/kernels/{KERNEL}/execute", RivalExecute)]
    app = app_with(ours, rival)
    rules = list(app.default_router.rules)
    with caplog.at_level(logging.ERROR):
        assert take_over_routes(app, "/base/", {OurExecute}, logging.getLogger("t")) == {}
    assert app.default_router.rules == rules
    assert caplog.records == []


def test_page_config_drops_rival_labextensions_and_what_only_they_disabled() -> None:
    page: dict[str, Any] = {
        "federated_extensions": [
            {"name": "@jupyter/docprovider-extension"},
            {"name": "@datalayer/jupyter-server-nbmodel"},
            {"name": "@jupyter-ai-contrib/server-documents"},
        ],
        "disabledExtensions": [
            "@jupyterlab/notebook-extension:cell-executor",
            "@jupyter/docprovider-extension:notebook-cell-executor",
            "@jupyter/docprovider-extension:forkManager",
            "@jupyter/docprovider-extension:statusBarTimeline",
        ],
    }
    installed = {
        "@jupyter/docprovider-extension": ["@jupyterlab/notebook-extension:cell-executor"],
        "@datalayer/jupyter-server-nbmodel": [
            "@jupyterlab/notebook-extension:cell-executor",
            "@jupyter/docprovider-extension:notebook-cell-executor",
        ],
        "@jupyter-ai-contrib/server-documents": [
            "@jupyter/docprovider-extension:forkManager",
            "@jupyter/docprovider-extension:statusBarTimeline",
        ],
    }
    # The admin disabled the timeline by name: it stays disabled.
    pinned = {"@jupyter/docprovider-extension:statusBarTimeline"}
    out = _strip_rivals(page, installed, pinned)
    assert [e["name"] for e in out["federated_extensions"]] == ["@jupyter/docprovider-extension"]
    assert out["disabledExtensions"] == [
        "@jupyterlab/notebook-extension:cell-executor",
        "@jupyter/docprovider-extension:statusBarTimeline",
        *RIVAL_LABEXTENSIONS,
    ]


def test_the_shipped_config_disables_every_rival() -> None:
    path = Path(__file__).parents[1] / "jupyter-config/jupyter_server_config.d/ydoc_outputs.json"
    enabled = json.loads(path.read_text())["ServerApp"]["jpserver_extensions"]
    assert enabled["ydoc_outputs"] is True
    for name in ["jupyter_server_ydoc", *RIVALS]:
        assert enabled[name] is False
