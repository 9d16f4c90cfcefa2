"""Which Jupyter server serves a notebook, and the REST calls the commands make to it.

Servers are found as ``jupyter server list`` finds them: from the ``jpserver-*.json``
files of Jupyter's runtime directory, each naming a server's URL, token and root
directory. Every failure becomes a :class:`CliError` with a one-line message.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest, HTTPResponse

__all__ = [
    "EXIT_FAILED",
    "EXIT_USAGE",
    "CliError",
    "ServerTarget",
    "find_target",
]

#: A cell raised, or the kernel died while it ran.
EXIT_FAILED = 1
#: Usage, connection, authentication or missing-notebook errors.
EXIT_USAGE = 2

#: Seconds a request may take (a run's request starts a kernel when it has none).
REQUEST_TIMEOUT = 120.0


class CliError(Exception):
    """An error to show as one line on stderr, ending the command with ``code``."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def _running_servers() -> list[dict[str, Any]]:
    # jupyter_server's own reader of the runtime files (it also drops those of dead
    # processes); imported here because it takes a while and only this needs it.
    from jupyter_server.serverapp import list_running_servers

    return list(list_running_servers())


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _api_path(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def _same_server(a: str, b: str) -> bool:
    def key(url: str) -> tuple[str, str, str]:
        parts = urlsplit(url)
        host = (parts.hostname or "").replace("localhost", "127.0.0.1")
        return parts.scheme, f"{host}:{parts.port}", parts.path.rstrip("/")

    return key(a) == key(b)


@dataclass(frozen=True)
class ServerTarget:
    """A notebook on a server: where to send requests, and the notebook's API path."""

    #: The server's URL with its base URL, ending with "/".
    url: str
    token: str
    #: The notebook's path relative to the server's root directory ("/"-separated).
    path: str

    def api(self, route: str) -> str:
        return self.url + route

    def ws_url(self, route: str) -> str:
        parts = urlsplit(self.url + route)
        scheme = "wss" if parts.scheme == "https" else "ws"
        return urlunsplit((scheme, parts.netloc, parts.path, parts.query, ""))

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"token {self.token}"} if self.token else {}

    @property
    def quoted_path(self) -> str:
        return quote(self.path, safe="/")

    async def request(
        self, method: str, route: str, body: dict[str, Any] | None = None
    ) -> HTTPResponse:
        """Send a request; a refused answer or no answer at all raises CliError."""
        request = HTTPRequest(
            self.api(route),
            method=method,
            headers={**self.headers, "Content-Type": "application/json"},
            body=json.dumps(body) if body is not None else None,
            request_timeout=REQUEST_TIMEOUT,
            follow_redirects=False,
        )
        try:
            response = await AsyncHTTPClient().fetch(request, raise_error=False)
        except HTTPClientError as e:  # a timeout (599)
            raise CliError(f"no answer from the Jupyter server at {self.url}: {e}") from None
        except OSError as e:
            reason = e.strerror or str(e)
            raise CliError(f"cannot reach the Jupyter server at {self.url}: {reason}") from None
        if response.code == 599:
            error = response.error
            raise CliError(f"cannot reach the Jupyter server at {self.url}: {error}")
        if response.code >= 400:
            raise self._refused(response)
        return response

    async def json(
        self, method: str, route: str, body: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        response = await self.request(method, route, body)
        try:
            value = json.loads(response.body)
        except ValueError:
            value = None
        if not isinstance(value, dict):
            raise CliError(f"the server at {self.url} answered {route} with no JSON object")
        return value

    def _refused(self, response: HTTPResponse) -> CliError:
        try:
            message = json.loads(response.body).get("message") or ""
        except (ValueError, AttributeError):
            message = ""
        message = " ".join(str(message).split())[:300]
        code = response.code
        if code in (401, 403):
            lowered = message.lower()
            # A request without valid credentials is refused before anything else, as
            # "Forbidden", or for a POST as one missing its XSRF argument (a token
            # request needs none).
            if not message or any(w in lowered for w in ("authenticat", "forbidden", "xsrf")):
                return CliError(
                    f"the Jupyter server at {self.url} refused the token ({code} {response.reason})"
                    ": pass the right one with --token"
                )
            return CliError(f"not allowed by the Jupyter server at {self.url}: {message}")
        if code == 404 and message.startswith("no file at"):
            return CliError(f"no such notebook on the server at {self.url}: {self.path}")
        if code == 404 and not message:
            return CliError(
                f"the Jupyter server at {self.url} has no ydoc-outputs API: is the extension "
                "enabled (jupyter server extension list)?"
            )
        return CliError(f"the server at {self.url} refused: {message or response.reason} ({code})")


def find_target(notebook: str, server: str | None, token: str | None) -> ServerTarget:
    """The server and API path of ``notebook``.

    Without ``server``: the running server whose root directory holds the notebook (the
    deepest one if several do), with its token. With ``server``: that URL, the token
    given or ``JUPYTER_TOKEN`` or the one of a running server at that URL, and the
    notebook's path relative to that server's root if it is a local file under it, else
    ``notebook`` as the server's own path.

    Raises:
        CliError: No such local notebook, or no running server serves it.
    """
    local = Path(notebook).expanduser()
    if server is None:
        if not local.is_file():
            raise CliError(f"no such notebook: {notebook}")
        absolute = local.resolve()
        found: list[tuple[Path, dict[str, Any]]] = []
        for info in _running_servers():
            root = info.get("root_dir") or info.get("notebook_dir")
            if not isinstance(root, str):
                continue
            root_path = Path(root).expanduser().resolve()
            if _inside(absolute, root_path):
                found.append((root_path, info))
        if not found:
            raise CliError(
                f"no running Jupyter server serves {absolute} (none listed by 'jupyter server "
                "list' has it under its root directory): start one, or pass --server URL "
                "--token TOKEN"
            )
        root_path, info = max(found, key=lambda item: len(item[0].parts))
        url = str(info["url"])
        return ServerTarget(
            _with_slash(url), token if token is not None else str(info.get("token") or ""),
            _api_path(absolute, root_path),
        )  # fmt: skip
    url = _with_slash(server)
    if not urlsplit(url).scheme.startswith("http"):
        raise CliError(f"--server must be an http(s) URL, not {server!r}")
    token = token if token is not None else (os.environ.get("JUPYTER_TOKEN") or None)
    known: list[dict[str, Any]] = []
    if token is None or local.is_file():
        # The runtime files tell the token, and the root a local path is relative to.
        known = [info for info in _running_servers() if _same_server(str(info.get("url")), url)]
    if token is None:
        token = str(known[0].get("token") or "") if known else ""
    path = notebook.replace(os.sep, "/")
    for info in known:
        root = info.get("root_dir")
        if isinstance(root, str) and local.is_file():
            root_path = Path(root).expanduser().resolve()
            if _inside(local.resolve(), root_path):
                path = _api_path(local.resolve(), root_path)
                break
    path = "/".join(part for part in path.split("/") if part and part != ".")
    if not path:
        raise CliError(f"no notebook named: {notebook!r}")
    return ServerTarget(url, token, path)


def _with_slash(url: str) -> str:
    return url if url.endswith("/") else url + "/"
