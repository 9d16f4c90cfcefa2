"""jupyter_server_ydoc's settings (YDocExtension.*) mapped onto ours, with a warning."""

from __future__ import annotations

import logging
import math
from typing import Any

import pytest
from traitlets.config import Config

from ydoc_outputs.app import YdocOutputsApp
from ydoc_outputs.legacy_config import apply_legacy_settings, find_legacy_settings


def applied(
    caplog: pytest.LogCaptureFixture, section: str = "YDocExtension", **values: Any
) -> tuple[YdocOutputsApp, dict[str, Any], list[str]]:
    config = Config()
    config[section] = Config(values)
    app = YdocOutputsApp(config=config)
    with caplog.at_level(logging.WARNING, "legacy"):
        page = apply_legacy_settings(app, logging.getLogger("legacy"))
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    return app, page, warnings


def test_document_cleanup_delay_is_room_cleanup_delay(caplog: pytest.LogCaptureFixture) -> None:
    app, _, [warning] = applied(caplog, document_cleanup_delay=5)
    assert app.room_cleanup_delay == 5.0
    assert "YDocExtension.document_cleanup_delay" in warning
    assert "YdocOutputsApp.room_cleanup_delay = 5.0" in warning


def test_document_cleanup_delay_none_keeps_rooms_open(caplog: pytest.LogCaptureFixture) -> None:
    app, _, [warning] = applied(caplog, document_cleanup_delay=None)
    assert math.isinf(app.room_cleanup_delay)
    assert "rooms stay open" in warning


def test_document_save_delay_is_autosave_delay(caplog: pytest.LogCaptureFixture) -> None:
    app, _, [warning] = applied(caplog, document_save_delay=2.5)
    assert app.autosave_delay == 2.5
    assert "YdocOutputsApp.autosave_delay" in warning


def test_document_save_delay_none_saves_only_on_request(caplog: pytest.LogCaptureFixture) -> None:
    app, _, [warning] = applied(caplog, document_save_delay=None)
    assert math.isinf(app.autosave_delay)
    assert "no autosave" in warning


def test_file_poll_interval_keeps_its_name(caplog: pytest.LogCaptureFixture) -> None:
    app, _, [warning] = applied(caplog, file_poll_interval=7)
    assert app.file_poll_interval == 7.0
    assert "YdocOutputsApp.file_poll_interval" in warning


def test_our_own_setting_wins_over_the_old_name(caplog: pytest.LogCaptureFixture) -> None:
    config = Config()
    config.YDocExtension.document_cleanup_delay = 5
    config.YdocOutputsApp.room_cleanup_delay = 9
    app = YdocOutputsApp(config=config)
    with caplog.at_level(logging.WARNING):
        apply_legacy_settings(app, logging.getLogger("legacy"))
    assert app.room_cleanup_delay == 9.0
    assert "is set too and wins" in caplog.records[0].getMessage()


def test_file_stop_poll_on_errors_after_is_accepted_and_ignored(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app, page, [warning] = applied(caplog, file_stop_poll_on_errors_after=60)
    assert page == {}
    assert app.file_poll_interval == 1.0
    assert "ignored" in warning and "keeps checking after an error" in warning


def test_server_side_execution_false_is_ignored(caplog: pytest.LogCaptureFixture) -> None:
    _, page, [warning] = applied(caplog, server_side_execution=False)
    assert page == {}
    assert "is ignored: ydoc_outputs always runs cells on the server" in warning


def test_server_side_execution_true_is_not_needed(caplog: pytest.LogCaptureFixture) -> None:
    _, page, [warning] = applied(caplog, server_side_execution=True)
    assert page == {}
    assert "not needed" in warning


def test_disable_rtc_turns_collaboration_off_in_the_page(caplog: pytest.LogCaptureFixture) -> None:
    _, page, [warning] = applied(caplog, disable_rtc=True)
    assert page == {"disableRTC": "true", "serverSideExecution": "false"}
    assert "without collaboration" in warning and "YdocOutputsApp.disable_rtc" in warning


def test_disable_rtc_false_changes_nothing(caplog: pytest.LogCaptureFixture) -> None:
    _, page, _ = applied(caplog, disable_rtc=False)
    assert page == {}


def test_the_old_names_are_aliases_on_our_app(caplog: pytest.LogCaptureFixture) -> None:
    app, page, warnings = applied(
        caplog, "YdocOutputsApp", document_cleanup_delay=None, document_save_delay=3,
        disable_rtc=True,
    )  # fmt: skip
    assert math.isinf(app.room_cleanup_delay)
    assert app.autosave_delay == 3.0
    assert page["disableRTC"] == "true"
    assert len(warnings) == 3
    assert all("YdocOutputsApp." in w for w in warnings)


def test_command_line_values_are_text_until_read() -> None:
    """--YDocExtension.document_save_delay=None reaches the config as text."""
    config = Config()
    app = YdocOutputsApp()
    app.parse_command_line(
        ["--YDocExtension.document_save_delay=None", "--YDocExtension.disable_rtc=True"]
    )
    config.merge(app.config)
    found = {s.name: s.value for s in find_legacy_settings(config)}
    assert found == {"document_save_delay": None, "disable_rtc": True}


def test_our_file_poll_interval_is_not_an_alias() -> None:
    config = Config()
    config.YdocOutputsApp.file_poll_interval = 3
    assert find_legacy_settings(config) == []
