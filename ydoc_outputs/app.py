"""The Jupyter Server extension: configuration, wiring and page config."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jupyter_core.paths import jupyter_data_dir
from jupyter_server.extension.application import ExtensionApp
from jupyter_server.services.kernels.connection.channels import ZMQChannelsWebsocketConnection
from traitlets import Bool, Float, Int, Unicode

from .collaboration import (
    CollaborationAPI,
    DocumentsRoomsView,
    stand_in_for_jupyter_server_ydoc,
)
from .collector import freeze_long_lived
from .handlers.execute import ExecuteHandler
from .handlers.export import ExportHandler
from .handlers.fork import ForkHandler, TimelineHandler, UndoRedoHandler
from .handlers.output import OutputHandler
from .handlers.run import RunHandler
from .hostlog import skip_unwritten_levels
from .kernels import activity
from .kernels.service import ExecutionService
from .kernels.websocket import QuestionsConnection
from .outputs.reducer import OutputLimits
from .rooms.budget import ConnectionCounter, PendingBudget
from .rooms.events import CollaborationEvents
from .rooms.forks import Forks
from .rooms.handlers import RoomWebsocketHandler
from .rooms.limits import WebsocketLimits
from .rooms.manager import RoomManager
from .rooms.session import SessionHandler
from .rooms.sync import AWARENESS_INTERVAL, CACHE_BYTES
from .store.ystore import UpdateStore

__all__ = ["YdocOutputsApp"]

_kernel_id = r"(?P<kernel_id>\w+-\w+-\w+-\w+-\w+)"


class YdocOutputsApp(ExtensionApp):
    """Server-side notebook outputs in a shared Y document."""

    name = "ydoc_outputs"

    room_cleanup_delay = Float(
        60.0,
        config=True,
        help="Seconds a room stays open after its last client left and its kernel "
        "finished its last cell of it; then it is saved and closed.",
    )
    autosave_delay = Float(
        1.0,
        config=True,
        help="Seconds from kernel output to the save of its document to disk, and from "
        "the last of a run of other changes (typing) to theirs (for a big notebook, at "
        "least 19 times as long as its last save took).",
    )
    run_order_grace = Float(
        0.5,
        config=True,
        help="Seconds after a notebook's last execution request during which a cell that "
        "a page marked to run (Run All marks its cells before it posts them) is waited "
        "for by the cells after it. No request waits otherwise: a lone Shift+Enter "
        "runs at once. See docs/architecture.md, 'Execution order'.",
    )
    run_order_window = Float(
        None,
        allow_none=True,
        config=True,
        help="Deprecated and ignored: the execution order no longer waits a fixed time "
        "for requests to arrive (see run_order_grace).",
    )
    output_batch_interval = Float(
        0.01,
        config=True,
        help="Seconds the server waits after writing a batch of kernel output before it "
        "reads the next one, so that output arriving meanwhile is written in one Y "
        "transaction and sent to each client in one message. Adds at most this much "
        "latency to continuous output; the first message after quiet is written at once.",
    )
    stream_segment_chars = Int(
        65536,
        config=True,
        help="A stream output longer than this continues in a new stream output at the "
        "next line, so that appending stays cheap however much a cell prints.",
    )
    cell_output_chars = Int(
        10_000_000,
        config=True,
        help="The most output a cell keeps in the notebook, in characters (stream text and "
        "the strings of rich outputs). Past it the cell keeps its first and its last half, "
        "with a marker between them that links to the whole output; the middle goes to a "
        "spill file (spill_path). Bounds memory and notebook size under a runaway print "
        "loop. 0 keeps everything.",
    )
    spill_path = Unicode(
        "",
        config=True,
        help="Directory of the spill files of truncated cells, served by "
        "GET api/ydoc-outputs/output/{document_id}/{cell_id}. Empty: ydoc_outputs/spill in "
        "the Jupyter data dir.",
    )
    store_path = Unicode(
        "",
        config=True,
        help="SQLite file holding every Y update of every room, so that output survives a "
        "server restart or crash. Empty: ydoc_outputs/updates.db in the Jupyter data dir.",
    )
    store_squash_after = Float(
        3600.0,
        config=True,
        help="When a room closes, its stored Y history older than this many seconds is "
        "squashed into one update, so the store does not grow without bound.",
    )
    file_poll_interval = Float(
        1.0,
        config=True,
        help="Seconds between checks of an open document's file: a file changed by another "
        "program is reloaded into its room, a rename updates its path, a deletion ends it. "
        "0 disables the checks.",
    )
    max_body_bytes = Int(
        64 * 1024,
        config=True,
        help="Largest request body accepted by the execute and run endpoints.",
    )
    websocket_max_message_bytes = Int(
        WebsocketLimits.max_message_bytes,
        config=True,
        help="Largest frame a room websocket client may send; a larger one closes the "
        "connection with code 1009.",
    )
    websocket_max_pending_bytes = Int(
        WebsocketLimits.max_pending_bytes,
        config=True,
        help="Bytes that may wait to be sent to a room websocket client that does not read "
        "them; past this the client is closed with code 4408 (it resyncs on reconnection). "
        "The whole-document sync being sent to it does not count.",
    )
    websocket_max_total_pending_bytes = Int(
        256 * 1024 * 1024,
        config=True,
        help="Bytes that may wait to be sent on all room websockets together (a large "
        "message queued for many clients counts once). A message that would take them "
        "past this first closes the connections holding the most, code 4408 (among equals, "
        "those waiting longest); they resync on reconnection. 0: no limit.",
    )
    websocket_max_connections_per_user = Int(
        300,
        config=True,
        help="Room websockets one user (by username) may have open at once: each "
        "JupyterLab tab opens one per open document, and one for global awareness. More "
        "are refused with HTTP 429 before the upgrade, which the frontend retries with "
        "back-off. 0: no limit.",
    )
    awareness_max_bytes = Int(
        WebsocketLimits.max_awareness_bytes,
        config=True,
        help="Largest awareness message (cursors, user names), which the room echoes to "
        "every client; a larger one closes the sender with code 1009.",
    )
    awareness_rate_limit = Float(
        WebsocketLimits.awareness_rate,
        config=True,
        help="Awareness messages per second one connection may send, sustained, after "
        "awareness_burst; more closes it with code 4429. 0 disables the limit.",
    )
    awareness_interval = Float(
        AWARENESS_INTERVAL,
        config=True,
        help="Seconds between two awareness updates (cursors, user names) to a room's "
        "clients: each gets at most one per interval, holding the latest state of every "
        "client that changed, so a room of N busy clients costs the server N messages per "
        "interval, not N per cursor move. The first change after a quiet interval goes "
        "at once. 0 sends each client's update to every client at once.",
    )
    awareness_burst = Int(
        WebsocketLimits.awareness_burst,
        config=True,
        help="Awareness messages one connection may send at once before "
        "awareness_rate_limit applies.",
    )
    sync_request_rate_limit = Float(
        WebsocketLimits.request_rate,
        config=True,
        help="Sync step 1 and save requests per second one connection may send, sustained, "
        "after sync_request_burst (each makes the server encode or save the whole "
        "document); more closes it with code 4429. 0 disables the limit.",
    )
    sync_request_burst = Int(
        WebsocketLimits.request_burst,
        config=True,
        help="Sync step 1 and save requests one connection may send at once before "
        "sync_request_rate_limit applies.",
    )

    freeze_startup_objects = Bool(
        True,
        config=True,
        help="Once the server has started, move every object it holds out of Python's "
        "garbage collector (gc.freeze()), so that full collections during output walk only "
        "newer objects: without it each pauses the server, and every client's output, for "
        "about 100 ms.",
    )

    skip_unwritten_log_levels = Bool(
        True,
        config=True,
        help="Once the server has started, raise the level of its logger to the lowest "
        "level of its handlers (traitlets sets the logger to DEBUG and the handler to "
        "log_level), so that debug calls no handler writes cost nothing: jupyter_server "
        "makes one for every iopub message of every kernel. Turn off to add DEBUG "
        "handlers to the server's logger while it runs.",
    )

    batched_activity_watch = Bool(
        True,
        config=True,
        help="Read each kernel's iopub for jupyter_server's activity tracking (last "
        "activity, busy or idle) in batches, unpacking only headers, instead of one event "
        "loop pass and a full unpacking per message: the same rules at a fraction of the "
        "cost, with last_activity and execution_state at most 50 ms late.",
    )

    kernel_questions_on_subshell = Bool(
        True,
        config=True,
        help="Answer what a page opened or reloaded mid-run asks before it shows the "
        "running cell's widgets: jupyter_server's own kernel_info_request goes to the "
        "control channel; a page's kernel_info_request and comm_info_request go to a "
        "subshell of its connection (kernels with subshells, such as ipykernel 7); the "
        "server answers a widget's request_state from the models it keeps; and the page "
        "is told the kernel is busy with the running cell. Without it such a page shows "
        "'Loading widget...' until the cell ends. Applies only where jupyter_server's "
        "default kernel websocket is in use.",
    )

    sync_cache_bytes = Int(
        CACHE_BYTES,
        config=True,
        help="Bytes of memory, over all open rooms, for the encoded whole document each "
        "room keeps to answer its next fresh client (a reload, a reconnection after a "
        "network blip) without encoding the document again; the changes made since are "
        "sent after it, until they outgrow an eighth of it (or 1 MiB). The answer least "
        "recently sent is dropped first; a room's answer goes when the room closes. "
        "0: encode the document for every fresh client.",
    )

    malloc_trim_threshold = Int(
        4 << 20,
        config=True,
        help="While a flood of output lasts (and a few seconds after), bytes of free "
        "memory at the top of one of malloc's heaps that glibc gives back to the system "
        "at once (mallopt M_TRIM_THRESHOLD); otherwise 32 MiB, with the mmap threshold "
        "fixed at 32 MiB. glibc otherwise raises this threshold as large blocks are "
        "freed, up to 64 MiB per thread's arena, and zmq's I/O threads allocate every "
        "kernel message: after a flood of output, tens of megabytes stayed in the "
        "process. Affects the whole server process. 0: leave glibc's own thresholds.",
    )

    record_timing = Bool(
        False,
        config=True,
        help="Record each run's timing in the cell's metadata.execution, as JupyterLab "
        "does when its notebook setting recordTiming is on (the ISO dates of "
        "iopub.status.busy, iopub.execute_input, shell.execute_reply.started, "
        "shell.execute_reply and iopub.status.idle); when off, a run deletes it, as "
        "JupyterLab does then. That setting lives in the page and is not sent with an "
        "execute request, so the server has its own: turn both on together.",
    )

    # jupyter_server_ydoc's names (c.YDocExtension.*), also accepted here, each mapped
    # onto ours with a warning (legacy_config.py; docs/configuration.md).
    disable_rtc = Bool(
        None,
        allow_none=True,
        config=True,
        help="True: pages open notebooks without collaboration (page config disableRTC), "
        "so they run cells themselves and output is not written on the server.",
    )
    document_cleanup_delay = Float(
        None, allow_none=True, config=True, help="Old name of room_cleanup_delay (None: inf)."
    )
    document_save_delay = Float(
        None, allow_none=True, config=True, help="Old name of autosave_delay (None: inf)."
    )
    file_stop_poll_on_errors_after = Float(
        None, allow_none=True, config=True, help="Ignored: the file watcher keeps checking."
    )
    server_side_execution = Bool(
        None, allow_none=True, config=True, help="Ignored: cells always run on the server."
    )

    room_manager: RoomManager
    forks: Forks
    execution: ExecutionService
    websocket_limits: WebsocketLimits
    websocket_budget: PendingBudget
    websocket_connections: ConnectionCounter

    def initialize(self) -> None:  # type: ignore[override]
        from .legacy_config import apply_legacy_settings
        from .takeover import take_charge, undo_rivals

        # Before our settings are made: old settings applied, rivals' replacements undone.
        page_config = apply_legacy_settings(self, self.log)
        if self.run_order_window is not None:
            self.log.warning(
                "YdocOutputsApp.run_order_window is deprecated and ignored: no execution "
                "request waits a fixed time any more (see YdocOutputsApp.run_order_grace)"
            )
        undo_rivals(self)
        super().initialize()  # type: ignore[no-untyped-call]
        # Our routes first, whatever loaded before; the stock frontend kept in the page.
        take_charge(self, page_config)

    def initialize_settings(self) -> None:
        serverapp = self.serverapp
        assert serverapp is not None
        # The package's module loggers go through the server's own: its handlers, format
        # and --log-level (else their INFO lines, such as rooms opened and closed, and
        # files reloaded from disk, would go nowhere).
        logging.getLogger(__package__).parent = serverapp.log
        data_dir = Path(jupyter_data_dir()) / "ydoc_outputs"
        events = CollaborationEvents(
            getattr(serverapp, "event_logger", None),
            lambda file_id: self.settings["file_id_manager"].get_path(file_id),
        )
        self.room_manager = RoomManager(
            serverapp.contents_manager,
            lambda: self.settings["file_id_manager"],
            cleanup_delay=self.room_cleanup_delay,
            autosave_delay=self.autosave_delay,
            limits=OutputLimits(
                stream_segment_chars=self.stream_segment_chars,
                cell_output_chars=self.cell_output_chars,
            ),
            store=UpdateStore(self.store_path or data_dir / "updates.db"),
            squash_after=self.store_squash_after,
            file_poll_interval=self.file_poll_interval,
            spill_root=Path(self.spill_path) if self.spill_path else data_dir / "spill",
            output_url=self._output_url,
            sync_cache_bytes=self.sync_cache_bytes,
            awareness_interval=self.awareness_interval,
            record_timing=self.record_timing,
            events=events,
        )
        self.room_manager.hold_renames_for_saves()
        self.forks = Forks(self.room_manager)
        self.execution = ExecutionService(
            serverapp.kernel_manager,
            self.room_manager,
            self.run_order_grace,
            self.output_batch_interval,
            flood_trim_threshold=self.malloc_trim_threshold or None,
        )
        self.room_manager.on_cells_changed = self.execution.cells_changed
        self.websocket_limits = WebsocketLimits(
            max_message_bytes=self.websocket_max_message_bytes,
            max_awareness_bytes=self.awareness_max_bytes,
            awareness_rate=self.awareness_rate_limit,
            awareness_burst=self.awareness_burst,
            request_rate=self.sync_request_rate_limit,
            request_burst=self.sync_request_burst,
            max_pending_bytes=self.websocket_max_pending_bytes,
        )
        self.websocket_budget = PendingBudget(self.websocket_max_total_pending_bytes)
        self.websocket_connections = ConnectionCounter(self.websocket_max_connections_per_user)
        self.settings["ydoc_outputs"] = self
        # jupyter-server-ydoc's API, for the extensions built on it; and the room lookups
        # of jupyter_server_documents for tools that take its API whenever it can be
        # imported, enabled or not.
        self.settings["jupyter_server_ydoc"] = CollaborationAPI(self)
        if importlib.util.find_spec("jupyter_server_documents") is not None:
            self.settings["yroom_manager"] = DocumentsRoomsView(self.room_manager)
        if self.batched_activity_watch and not activity.install(serverapp.kernel_manager):
            self.log.info(
                "ydoc_outputs: the kernel manager %s watches activity its own way; left as is",
                type(serverapp.kernel_manager).__name__,
            )
        # Make stock JupyterLab (jupyter-docprovider) run cells through our endpoint.
        page_config: dict[str, Any] = serverapp.web_app.settings.setdefault("page_config_data", {})
        page_config["serverSideExecution"] = "true"
        _untrack_subshell_requests(serverapp.kernel_manager, page_config)
        # self.settings is what jupyter_server writes over the web app's settings next.
        settings = self.settings
        if self.kernel_questions_on_subshell:
            if settings.get("kernel_websocket_connection_class") is ZMQChannelsWebsocketConnection:
                settings["kernel_websocket_connection_class"] = QuestionsConnection
            else:
                self.log.info(
                    "ydoc_outputs: kernel websockets are %s; kernel_questions_on_subshell left off",
                    settings.get("kernel_websocket_connection_class"),
                )

    def _link_jupyter_server_extension(self, serverapp: Any) -> None:
        super()._link_jupyter_server_extension(serverapp)
        # Before any extension loads: those that look for jupyter_server_ydoc by name
        # (jupyterlab-chat) find it enabled, and this extension serving it.
        stand_in_for_jupyter_server_ydoc(serverapp)

    def _output_url(self, document_id: str, cell_id: str) -> str:
        """The URL of a cell's whole output (see OutputHandler)."""
        assert self.serverapp is not None
        base: str = self.serverapp.base_url
        return (
            f"{base}api/ydoc-outputs/output/{quote(document_id, safe='')}/{quote(cell_id, safe='')}"
        )

    def initialize_handlers(self) -> None:
        self.handlers.extend(
            [
                (r"/api/collaboration/session/(.*)", SessionHandler),
                (r"/api/collaboration/room/(.*)", RoomWebsocketHandler),
                (rf"/api/kernels/{_kernel_id}/execute", ExecuteHandler),
                (r"/api/ydoc-outputs/export/(.*)", ExportHandler),
                (r"/api/ydoc-outputs/output/([^/]+)/([^/]+)", OutputHandler),
                (r"/api/ydoc-outputs/run/(.*)", RunHandler),
                (r"/api/collaboration/fork/(.*)", ForkHandler),
                (r"/api/collaboration/timeline/(.*)", TimelineHandler),
                (r"/api/collaboration/undo_redo/(.*)", UndoRedoHandler),
            ]
        )

    async def _start_jupyter_server_extension(self, serverapp: Any) -> None:
        from .takeover import own_handlers, take_over_routes

        # Again, for routes another extension added after ours were (none logs nothing).
        take_over_routes(serverapp.web_app, serverapp.base_url, own_handlers(self), self.log)
        if self.skip_unwritten_log_levels:
            level = skip_unwritten_levels(serverapp.log)
            if level is not None:
                serverapp.log.info(
                    "ydoc_outputs: the server's logger now skips levels below %s, which "
                    "no handler writes",
                    logging.getLevelName(level),
                )
        if self.freeze_startup_objects:
            frozen = freeze_long_lived()
            self.log.debug("froze %d start-up objects out of the garbage collector", frozen)

    async def stop_extension(self) -> None:
        await self.execution.stop()
        await self.room_manager.stop()


#: Requests JupyterLab (4.6, which sends comm messages over a subshell per comm target
#: when the kernel has subshells, as ipykernel 7 does) sends on the control channel, e.g.
#: when a cell opens its first widget; the kernel answers each with a busy and an idle
#: status of its own.
SUBSHELL_MESSAGE_TYPES = [
    "create_subshell_request", "create_subshell_reply",
    "delete_subshell_request", "delete_subshell_reply",
    "list_subshell_request", "list_subshell_reply",
]  # fmt: skip


def _untrack_subshell_requests(kernel_manager: Any, page_config: dict[str, Any]) -> None:
    """Keep the page's kernel indicator Busy while the server runs a cell.

    A page that runs a cell itself shows Busy until that cell's idle, whatever else the
    kernel does. A cell run by the server is not the page's: the indicator then shows the
    kernel's status as the page last heard it, and the idle of the page's
    ``create_subshell_request`` (sent when a cell opens its first widget) made it Idle in
    the middle of a tqdm.notebook loop. JupyterLab skips the status messages of the request
    types in the page config's ``untracked_message_types`` (jupyter_server's list, which
    already holds ``comm_info_request`` and ``kernel_info_request``, for the same reason
    and for culling); subshell management joins them. jupyterlab_server copies the list
    into the page config at start-up, before or after this runs: both are updated.
    """
    untracked = getattr(kernel_manager, "untracked_message_types", None)
    if not isinstance(untracked, list):
        return
    added = [t for t in SUBSHELL_MESSAGE_TYPES if t not in untracked]
    kernel_manager.untracked_message_types = [*untracked, *added]
    if "untracked_message_types" in page_config:
        page_config["untracked_message_types"] = list(kernel_manager.untracked_message_types)
