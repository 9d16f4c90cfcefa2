"""Tests for ydoc_outputs.outputs.routing: parent msg_id -> (document, cell)."""

from __future__ import annotations

import dataclasses

import pytest

from ydoc_outputs.outputs.routing import DEFAULT_MAX_ROUTES, ParentRouter, Route

DOC = "json:notebook:file-1"


def test_add_get_discard() -> None:
    router = ParentRouter()
    router.add("m1", Route(DOC, "c1"))
    assert router.get("m1") == Route(DOC, "c1")
    assert "m1" in router
    assert len(router) == 1
    router.discard("m1")
    router.discard("m1")  # discarding twice is fine
    assert router.get("m1") is None
    assert len(router) == 0


def test_unknown_parent_gives_none() -> None:
    assert ParentRouter().get("nope") is None


def test_default_size() -> None:
    assert ParentRouter().max_size == DEFAULT_MAX_ROUTES == 10_000


def test_evicts_the_least_recently_used_route() -> None:
    router = ParentRouter(max_size=2)
    router.add("m1", Route(DOC, "c1"))
    router.add("m2", Route(DOC, "c2"))
    assert router.get("m1") is not None  # m1 is now more recent than m2
    router.add("m3", Route(DOC, "c3"))
    assert len(router) == 2
    assert router.get("m2") is None
    assert router.get("m1") == Route(DOC, "c1")
    assert router.get("m3") == Route(DOC, "c3")


def test_adding_a_known_parent_replaces_its_route() -> None:
    router = ParentRouter(max_size=2)
    router.add("m1", Route(DOC, "c1"))
    router.add("m1", Route(DOC, "c9"))
    assert len(router) == 1
    assert router.get("m1") == Route(DOC, "c9")


def test_stays_bounded() -> None:
    router = ParentRouter(max_size=100)
    for i in range(10_000):
        router.add(f"m{i}", Route(DOC, f"c{i}"))
    assert len(router) == 100
    assert router.get("m9999") == Route(DOC, "c9999")
    assert router.get("m0") is None


def test_max_size_must_be_positive() -> None:
    with pytest.raises(ValueError):
        ParentRouter(max_size=0)


def test_route_is_frozen_and_hashable() -> None:
    route = Route(DOC, "c1")
    with pytest.raises(dataclasses.FrozenInstanceError):
        route.cell_id = "c2"  # type: ignore[misc]
    assert {route: 1}[Route(DOC, "c1")] == 1
