"""What jupyter_ydoc cannot load is refused before the document is touched (pure logic)."""

from __future__ import annotations

from typing import Any

import pytest
from jupyter_ydoc import YNotebook

from ydoc_outputs.store.notebook import InvalidNotebook, load_notebook, loading_problem


def _cell(**fields: Any) -> dict[str, Any]:
    return {"cell_type": "code", "execution_count": None, "id": "c", "metadata": {},
            "outputs": [], "source": "1", **fields}  # fmt: skip


def _nb(*cells: Any, **fields: Any) -> dict[str, Any]:
    return {"cells": list(cells), "metadata": {}, "nbformat": 4, "nbformat_minor": 5, **fields}


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ([], "the notebook is a list, not an object"),
        (_nb(metadata=[]), "the notebook's metadata is not an object"),
        ({"metadata": {}, "nbformat": 4, "nbformat_minor": 5}, "the notebook has no list of cells"),
        (_nb("x"), "cell 0 is a str, not an object"),
        (_nb(_cell(), {"source": "1"}), "cell 1 has no cell_type"),
        (_nb({k: v for k, v in _cell().items() if k != "source"}), "cell 0 has no source"),
        (_nb(_cell(source=["a", 1])), "cell 0 has no source"),
        (_nb(_cell(metadata=[])), "cell 0 has metadata that is not an object"),
        (_nb(_cell(id=["a"])), "cell 0 has an id that is not a string"),
        (_nb(_cell(outputs={})), "cell 0 has outputs that are not a list"),
        (_nb(_cell(outputs=["text"])), "cell 0 has an output that is not an object"),
        (
            _nb(_cell(outputs=[{"output_type": "stream", "name": "stdout", "text": 3}])),
            "cell 0 has a stream output whose text",
        ),
    ],
)
def test_a_notebook_that_cannot_be_loaded_leaves_the_document_as_it_was(
    content: Any, problem: str
) -> None:
    nb = YNotebook()
    load_notebook(nb, _nb(_cell(source="kept")))
    before = nb.ydoc.get_state()
    reason = loading_problem(content)
    assert reason is not None and reason.startswith(problem)
    with pytest.raises(InvalidNotebook, match=problem.split(" (")[0]):
        load_notebook(nb, content)
    assert nb.ydoc.get_state() == before
    assert nb.get()["cells"][0]["source"] == "kept"


@pytest.mark.parametrize(
    "content",
    [
        _nb(),
        _nb(_cell(source=["a\n", "b"])),
        _nb({"cell_type": "markdown", "id": "m", "metadata": {}, "source": "# x"}),
        _nb(_cell(outputs=[{"output_type": "stream", "name": "stdout", "text": ["a\n", "b"]}])),
        # Invalid nbformat, but loadable: loaded as jupyter_server reads it; export says 409.
        _nb(_cell(extra=1)),
    ],
)
def test_what_jupyter_ydoc_can_load_is_loaded(content: dict[str, Any]) -> None:
    assert loading_problem(content) is None
    nb = YNotebook()
    load_notebook(nb, content)
    assert len(nb.ycells) == max(1, len(content["cells"]))
