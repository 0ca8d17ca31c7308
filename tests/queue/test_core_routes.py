"""The core's dispatch of events: one route per event type (``core._ROUTES``)."""

from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass
from typing import get_args

import pytest

from huntgroup.queue.actions import Bridge, Cancel, Ring
from huntgroup.queue.core import _ROUTES
from huntgroup.queue.events import CallArrived, CallHungUp, Event, MemberAnswered
from tests.support.core_harness import Harness, m, make_config


def test_every_event_type_has_a_route() -> None:
    assert set(_ROUTES) == set(get_args(Event))


@pytest.mark.native_incompatible  # an interpreted subclass of an event: a compiled class takes none
def test_an_event_subclass_takes_its_base_route_and_an_unknown_type_none() -> None:
    @dataclass(frozen=True, slots=True)
    class _TaggedHangUp(CallHungUp):
        """A driver's own kind of hang-up: routed as its base, as ``match`` did. (Made
        here: a compiled build refuses the class, and only this test is marked.)"""

        tag: str = ""

    h = Harness(make_config("ring_all", 2))
    rings = h.ev(CallArrived("c1", "G", "0600000001"), at=1.0)
    assert [a.member for a in rings if isinstance(a, Ring)] == [m(1), m(2)]
    assert Bridge("c1", m(1)) in h.ev(MemberAnswered("c1", m(1)), at=2.0)
    assert h.ev(_TaggedHangUp("c1", "x"), at=3.0) == []
    assert h.core.call_ids() == []
    assert h.core.handle(object(), now=4.0) == []  # type: ignore[arg-type]
    assert Cancel("c1", m(2)) in h.of(Cancel)


def test_every_event_keeps_its_dataclass_contract_with_the_quick_init() -> None:
    """Events are made by ``quick_init``'s ``__init__`` (issue 14): the same dataclasses."""
    arrived = CallArrived("c1", "G", "0600000001")
    assert arrived == CallArrived(call_id="c1", group="G", caller="0600000001", caller_name="")
    assert hash(arrived) == hash(dataclasses.replace(arrived))
    assert repr(CallHungUp("c1")) == "CallHungUp(call_id='c1')"
    with pytest.raises(dataclasses.FrozenInstanceError):
        arrived.group = "H"  # type: ignore[misc]
    with pytest.raises(TypeError):
        MemberAnswered("c1")  # type: ignore[call-arg]
    for kind in get_args(Event):
        assert kind.__init__.__qualname__ == f"{kind.__qualname__}.__init__"
        if not inspect.isfunction(kind.__init__):
            continue  # compiled by mypyc: its own __init__ in C (docs/native.md)
        assert kind.__init__.__code__.co_filename == "<string>"
        assert "__qi_set_0" in kind.__init__.__code__.co_names  # quick_init's, not dataclass's
