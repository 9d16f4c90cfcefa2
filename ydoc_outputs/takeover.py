"""Keeps this extension in charge of its routes, and the page on the stock frontend.

jupyter_server_ydoc, jupyter_server_nbmodel and jupyter_server_documents serve the same
routes (``api/collaboration/room``, ``api/kernels/{id}/execute``). Our
``jupyter_server_config.d`` file disables them, but a later config (``jupyter server
extension enable X`` writes the user's ``jupyter_server_config.json``) can enable one
again. Extensions load in alphabetical order and tornado matches each extension's rules
in the order they were added, so all three would then win over ``ydoc_outputs``. At
start-up this module finds who owns each route, moves our rules first, undoes what
jupyter_server_documents replaces in the server (session manager, kernel websocket), and
logs an ERROR for each of these extensions that is loaded at all.

Their JupyterLab extensions are installed with their packages whether or not their
server extension is enabled, and they turn off the stock collaboration frontend's
plugins (jupyter-docprovider's cell executor, document provider, timeline, fork
manager). A ``page_config_hook`` removes them from the page and turns those plugins on
again, so the page talks to this server the stock way.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from tornado.httputil import HTTPHeaders, HTTPServerRequest, RequestStartLine
from tornado.routing import Rule, RuleRouter
from tornado.web import ErrorHandler
from traitlets.utils.importstring import import_item

__all__ = [
    "RIVAL_EXTENSIONS",
    "RIVAL_LABEXTENSIONS",
    "PageConfigHook",
    "keep_stock_frontend",
    "loaded_rivals",
    "log_rivals",
    "neutralize_rival_classes",
    "probe_paths",
    "route_owners",
    "take_charge",
    "take_over_routes",
    "undo_rivals",
]

#: Server extensions that serve our routes (and patch the server besides).
RIVAL_EXTENSIONS = ("jupyter_server_documents", "jupyter_server_nbmodel", "jupyter_server_ydoc")

#: Their JupyterLab extensions, which replace the stock frontend's cell executor (both)
#: and document provider (server-documents).
RIVAL_LABEXTENSIONS = ("@datalayer/jupyter-server-nbmodel", "@jupyter-ai-contrib/server-documents")

PageConfigHook = Callable[[Any, dict[str, Any]], dict[str, Any]]

_PROBE_KERNEL = "00000000-0000-4000-8000-000000000000"


def undo_rivals(app: Any) -> None:
    """Before our settings are made: name each rival extension enabled, and put back
    what they replaced in the server."""
    serverapp = app.serverapp
    log_rivals(loaded_rivals(serverapp), app.log)
    neutralize_rival_classes(serverapp, app.log)


def take_charge(app: Any, page_config: dict[str, Any]) -> None:
    """Once our handlers are added: our routes first, the stock frontend in the page, and
    ``page_config`` (from old settings, see legacy_config.py) in the page config."""
    web_app = app.serverapp.web_app
    web_app.settings.setdefault("page_config_data", {}).update(page_config)
    hook = web_app.settings.get("page_config_hook")
    if not getattr(hook, "keeps_stock_frontend", False):
        web_app.settings["page_config_hook"] = keep_stock_frontend(hook)
    take_over_routes(web_app, app.serverapp.base_url, own_handlers(app), app.log)


def own_handlers(app: Any) -> set[type]:
    """The handler classes of ``app``'s routes."""
    return {spec[1] for spec in app.handlers}


def probe_paths(base_url: str) -> dict[str, tuple[str, str]]:
    """A request of each kind the stock frontend makes: route name -> (method, path)."""
    return {
        "session": ("PUT", f"{base_url}api/collaboration/session/probe.ipynb"),
        "room": ("GET", f"{base_url}api/collaboration/room/json:notebook:probe"),
        "execute": ("POST", f"{base_url}api/kernels/{_PROBE_KERNEL}/execute"),
    }


def route_owners(web_app: Any, base_url: str) -> dict[str, type]:
    """The handler class tornado picks for each of :func:`probe_paths`' requests."""
    owners: dict[str, type] = {}
    for route, (method, path) in probe_paths(base_url).items():
        request = HTTPServerRequest(
            start_line=RequestStartLine(method, path, "HTTP/1.1"),
            headers=HTTPHeaders({"Host": "localhost"}),
        )
        delegate = web_app.find_handler(request)
        owners[route] = delegate.handler_class
    return owners


def _package(cls: type) -> str:
    return cls.__module__.split(".", 1)[0]


def _holds(rule: Rule, ours: frozenset[type]) -> bool:
    target = rule.target
    if isinstance(target, RuleRouter):
        return any(_holds(r, ours) for r in target.rules)
    return target in ours


def take_over_routes(
    web_app: Any, base_url: str, ours: Iterable[type], log: logging.Logger
) -> dict[str, str]:
    """Make our handlers answer our routes; return route -> package that had it.

    ``ExtensionApp._prepare_handlers`` adds each extension's rules in one
    ``add_handlers`` call, which tornado inserts into ``default_router.rules`` just
    before its last rule (jupyter_server's own handlers): extensions loaded earlier win.
    Our rules move to the front, keeping their order and that of the others.
    """
    own = frozenset(ours)
    # tornado's ErrorHandler answers a route nobody serves (404): not taken by anyone.
    before = {
        route: owner
        for route, owner in route_owners(web_app, base_url).items()
        if owner not in own and owner is not ErrorHandler
    }
    if not before:
        return {}
    rules: list[Rule] = web_app.default_router.rules
    rules[:] = [r for r in rules if _holds(r, own)] + [r for r in rules if not _holds(r, own)]
    after = route_owners(web_app, base_url)
    for route, owner in before.items():
        method, path = probe_paths(base_url)[route]
        if after[route] in own:
            log.error(
                "ydoc_outputs: %s %s was served by %s (%s), loaded before ydoc_outputs; "
                "ydoc_outputs' routes now come first, so the page's %s requests reach "
                "ydoc_outputs",
                method, path, _package(owner), _name(owner), route,
            )  # fmt: skip
        else:
            log.error(
                "ydoc_outputs: %s %s is still served by %s (%s) after moving "
                "ydoc_outputs' routes first: disable %s",
                method, path, _package(after[route]), _name(after[route]),
                _package(after[route]),
            )  # fmt: skip
    taken = {route: _package(owner) for route, owner in before.items()}
    return taken


def loaded_rivals(serverapp: Any) -> list[str]:
    """The rival server extensions enabled in this server with something to load (not
    collaboration.py's stand-in for jupyter_server_ydoc, which has no extension points)."""
    extensions = serverapp.extension_manager.extensions
    return [
        name
        for name in RIVAL_EXTENSIONS
        if name in extensions
        and extensions[name].enabled
        and getattr(extensions[name], "extension_points", None)
    ]


def log_rivals(names: list[str], log: logging.Logger) -> None:
    """One ERROR per rival extension enabled, saying what it does and how to stop it."""
    for name in names:
        log.error(
            "ydoc_outputs: the server extension %s is enabled (a config file loaded after "
            "ydoc_outputs.json, such as ~/.jupyter/jupyter_server_config.json, turned it "
            "on); it serves the same collaboration and execution routes and patches the "
            "server. ydoc_outputs keeps its routes and undoes what it can; run "
            "'jupyter server extension disable %s' to remove it",
            name, name,
        )  # fmt: skip


def neutralize_rival_classes(serverapp: Any, log: logging.Logger) -> list[str]:
    """Put back jupyter_server's own session manager and kernel websocket connection
    where a rival replaced them; return what was put back.

    jupyter_server_documents sets ``ServerApp.session_manager_class`` (its manager opens
    its own room for each notebook session, and autosaves the file from it) and
    ``kernel_websocket_connection_class`` when it links. Runs before our settings, so
    ``kernel_questions_on_subshell`` sees the default connection class.
    """
    settings = serverapp.web_app.settings
    restored: list[str] = []
    connection = settings.get("kernel_websocket_connection_class")
    if connection is not None and _package(connection) in RIVAL_EXTENSIONS:
        default = _import(serverapp.trait_defaults("kernel_websocket_connection_class"))
        settings["kernel_websocket_connection_class"] = default
        serverapp.kernel_websocket_connection_class = default
        restored.append(
            f"kernel_websocket_connection_class {_name(connection)} -> {_name(default)}"
        )
    manager = serverapp.session_manager
    if _package(type(manager)) in RIVAL_EXTENSIONS:
        default = _import(serverapp.trait_defaults("session_manager_class"))
        fresh = default(
            parent=serverapp,
            log=serverapp.log,
            kernel_manager=serverapp.kernel_manager,
            contents_manager=serverapp.contents_manager,
        )
        serverapp.session_manager = fresh
        settings["session_manager"] = fresh
        restored.append(f"session_manager {_name(type(manager))} -> {_name(default)}")
    for change in restored:
        log.error("ydoc_outputs: put back jupyter_server's %s", change)
    return restored


def _import(value: Any) -> Any:
    return import_item(value) if isinstance(value, str) else value


def _name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def keep_stock_frontend(previous: PageConfigHook | None = None) -> PageConfigHook:
    """A jupyterlab_server ``page_config_hook`` that removes the rival JupyterLab
    extensions from the page and enables the plugins only they disabled.

    jupyterlab_server's ``get_page_config`` lists every installed federated extension
    (the page loads each one's ``remoteEntry``, disabled or not, and it may provide
    shared modules such as ``@jupyter/docprovider``), and adds the plugins each lists in
    ``jupyterlab.disabledExtensions`` of its ``package.json`` to ``disabledExtensions``.
    Removing the extension from ``federated_extensions`` keeps its code out of the page;
    naming it in ``disabledExtensions`` too covers a prebuilt (source) install.
    """

    def hook(handler: Any, page_config: dict[str, Any]) -> dict[str, Any]:
        if previous is not None:
            page_config = previous(handler, page_config)
        return _strip_rivals(page_config, _installed_labextensions(handler), _pinned(handler))

    hook.keeps_stock_frontend = True  # type: ignore[attr-defined]
    return hook


def _strip_rivals(
    page_config: dict[str, Any],
    installed: dict[str, list[str]],
    pinned: set[str],
) -> dict[str, Any]:
    """``installed``: each installed labextension's own ``disabledExtensions``;
    ``pinned``: plugins the admin disabled by name (labconfig/page_config.json)."""
    federated = page_config.get("federated_extensions") or []
    page_config["federated_extensions"] = [
        e for e in federated if e.get("name") not in RIVAL_LABEXTENSIONS
    ]
    theirs = {p for name in RIVAL_LABEXTENSIONS for p in installed.get(name, [])}
    others = {p for name, ps in installed.items() if name not in RIVAL_LABEXTENSIONS for p in ps}
    release = theirs - others - pinned
    disabled = [p for p in page_config.get("disabledExtensions") or [] if p not in release]
    disabled += [name for name in RIVAL_LABEXTENSIONS if name not in disabled]
    page_config["disabledExtensions"] = disabled
    return page_config


def _installed_labextensions(handler: Any) -> dict[str, list[str]]:
    from jupyterlab_server.config import get_federated_extensions

    app = handler.extensionapp
    found = get_federated_extensions(app.extra_labextensions_path + app.labextensions_path)
    return {
        name: list(data.get("jupyterlab", {}).get("disabledExtensions") or [])
        for name, data in found.items()
    }


def _pinned(handler: Any) -> set[str]:
    """Plugins disabled in the page config files (not by an extension's package.json)."""
    from jupyterlab_server.config import get_static_page_config

    pinned: set[str] = set()
    sources: list[Any] = [get_static_page_config(level="all")]
    settings_dir = getattr(handler.extensionapp, "app_settings_dir", None)
    if settings_dir:
        path = Path(settings_dir) / "page_config.json"
        if path.is_file() and path.stat().st_size:
            sources.append(json.loads(path.read_text()))
    for source in sources:
        disabled = source.get("disabledExtensions") or {}
        if isinstance(disabled, dict):
            pinned.update(k for k, v in disabled.items() if v)
        else:
            pinned.update(disabled)
    return pinned
