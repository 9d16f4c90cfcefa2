"""jupyter_server_ydoc's settings (``c.YDocExtension.*``), read and mapped onto ours.

Admins moving from jupyter-collaboration have these in their config. The server keeps
a config section for a class that is not loaded, so they are still in
``serverapp.config.YDocExtension``; the same names on ``YdocOutputsApp`` are accepted as
aliases. Each one found is applied to its counterpart, with a WARNING saying which
setting to use instead. A counterpart set explicitly wins over the old name.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, cast

from traitlets import Bool, Float, TraitType
from traitlets.config import Config

__all__ = [
    "LEGACY_NAMES",
    "LegacySetting",
    "apply_legacy_settings",
    "find_legacy_settings",
    "rtc_page_config",
]

#: jupyter_server_ydoc's trait names, and their type there.
LEGACY_NAMES: dict[str, type[TraitType[Any, Any]]] = {
    "disable_rtc": Bool,
    "document_cleanup_delay": Float,
    "document_save_delay": Float,
    "file_poll_interval": Float,
    "file_stop_poll_on_errors_after": Float,
    "server_side_execution": Bool,
}


@dataclass(frozen=True)
class LegacySetting:
    """One old setting found in the config."""

    section: str
    name: str
    value: Any

    @property
    def origin(self) -> str:
        return f"{self.section}.{self.name}"


def find_legacy_settings(config: Config) -> list[LegacySetting]:
    """The old settings in ``config``: ``YDocExtension``'s, then the aliases on
    ``YdocOutputsApp`` (``file_poll_interval`` there is ours, not an alias)."""
    found: list[LegacySetting] = []
    for section in ("YDocExtension", "YdocOutputsApp"):
        if section not in config:
            continue
        values = config[section]
        for name, trait_type in LEGACY_NAMES.items():
            if name not in values:
                continue
            if section == "YdocOutputsApp" and name == "file_poll_interval":
                continue
            found.append(LegacySetting(section, name, _value(values[name], trait_type, name)))
    return found


def _value(raw: Any, trait_type: type[TraitType[Any, Any]], name: str) -> Any:
    """A value from a config file, or the text of a command-line one."""
    trait = trait_type(None, allow_none=True)
    trait.name = name
    if isinstance(raw, str):  # --YDocExtension.x=... stays text until a class reads it
        raw = trait.from_string(raw)
    return None if raw is None else cast(Any, trait).validate(None, raw)


def apply_legacy_settings(app: Any, log: logging.Logger) -> dict[str, Any]:
    """Apply each old setting in ``app.config`` to its counterpart on ``app``.

    Returns:
        The page config entries the old settings call for (see :func:`rtc_page_config`).
    """
    ours = app.config["YdocOutputsApp"] if "YdocOutputsApp" in app.config else Config()
    page: dict[str, Any] = {}
    for setting in find_legacy_settings(app.config):
        name, value = setting.name, setting.value
        if name in ("document_cleanup_delay", "document_save_delay", "file_poll_interval"):
            target = {
                "document_cleanup_delay": "room_cleanup_delay",
                "document_save_delay": "autosave_delay",
                "file_poll_interval": "file_poll_interval",
            }[name]
            mapped = math.inf if value is None else float(value)
            if target in ours:
                log.warning(
                    "ydoc_outputs: %s = %r is jupyter_server_ydoc's setting; "
                    "YdocOutputsApp.%s = %r is set too and wins: remove %s",
                    setting.origin, value, target, getattr(app, target), setting.origin,
                )  # fmt: skip
                continue
            setattr(app, target, mapped)
            log.warning(
                "ydoc_outputs: %s = %r is jupyter_server_ydoc's setting; applied as "
                "YdocOutputsApp.%s = %r%s. Set that instead",
                setting.origin, value, target, mapped, _meaning(target, mapped),
            )  # fmt: skip
        elif name == "file_stop_poll_on_errors_after":
            log.warning(
                "ydoc_outputs: %s = %r is jupyter_server_ydoc's setting and is ignored: "
                "ydoc_outputs checks an open file every file_poll_interval seconds and "
                "keeps checking after an error (each is logged); a deleted file closes "
                "its room, so a missing file is not polled forever. Remove it; "
                "YdocOutputsApp.file_poll_interval = 0 stops the checks",
                setting.origin, value,
            )  # fmt: skip
        elif name == "server_side_execution":
            if value is False:
                log.warning(
                    "ydoc_outputs: %s = False is ignored: ydoc_outputs always runs cells "
                    "on the server, since that is how output reaches the notebook with no "
                    "browser open. To have pages run cells themselves (and lose output "
                    "when they close), set YdocOutputsApp.disable_rtc = True, or disable "
                    "ydoc_outputs. Remove %s",
                    setting.origin, setting.origin,
                )  # fmt: skip
            else:
                log.warning(
                    "ydoc_outputs: %s = %r is not needed: ydoc_outputs always runs cells "
                    "on the server. Remove it",
                    setting.origin, value,
                )  # fmt: skip
        elif name == "disable_rtc":
            page.update(rtc_page_config(bool(value)))
            if value:
                log.warning(
                    "ydoc_outputs: %s = True: pages open notebooks without collaboration "
                    "(page config disableRTC), so they run cells themselves and output "
                    "printed while no page is open is lost, as without ydoc_outputs. "
                    "%s",
                    setting.origin,
                    "Remove it to have output written on the server"
                    if setting.section == "YdocOutputsApp"
                    else "Set YdocOutputsApp.disable_rtc instead, or remove it",
                )  # fmt: skip
            elif setting.section == "YDocExtension":
                log.warning("ydoc_outputs: %s = False is the default; remove it", setting.origin)
    return page


def _meaning(target: str, value: float) -> str:
    if math.isinf(value):
        return {
            "room_cleanup_delay": " (rooms stay open until the server stops)",
            "autosave_delay": " (no autosave: files are written on a client's save request)",
            "file_poll_interval": "",
        }[target]
    return ""


def rtc_page_config(disable_rtc: bool) -> dict[str, Any]:
    """Page config for ``disable_rtc``: the stock frontend reads ``disableRTC`` ("true":
    no shared document, so nothing for the server to run cells in), and the cell executor
    then runs cells in the page."""
    if disable_rtc:
        return {"disableRTC": "true", "serverSideExecution": "false"}
    return {}
