"""The pure core imports nothing from the I/O layers, and exports what it declares."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import ydoc_outputs.outputs

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = ["asyncio", "jupyter_client", "jupyter_server", "pycrdt", "tornado", "zmq"]
# Modules whose public names the package re-exports (``stream`` is the reducer's own).
MODULES = ["mapping", "ops", "reducer", "routing", "text"]

PROBE = f"""
import json, sys
import ydoc_outputs.outputs
forbidden = {FORBIDDEN!r}
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in forbidden)))
"""


def test_importing_the_core_loads_no_io_layer() -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert json.loads(result.stdout) == []


def test_every_exported_name_exists_and_submodules_are_reexported() -> None:
    package = ydoc_outputs.outputs
    for name in package.__all__:
        assert hasattr(package, name), name
    for module_name in MODULES:
        module = importlib.import_module(f"ydoc_outputs.outputs.{module_name}")
        for name in module.__all__:
            assert getattr(module, name) is getattr(package, name), f"{module_name}.{name}"
