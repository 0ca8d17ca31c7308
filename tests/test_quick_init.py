"""huntgroup.quick_init: the same frozen dataclasses, made without ``object.__setattr__``."""

from __future__ import annotations

import dataclasses
import inspect
import sys

import pytest

from huntgroup.engine.b2bua.context import Transmit
from huntgroup.engine.sip.address import Peer
from huntgroup.engine.sip.fields import CSeq, NameAddress, Via
from huntgroup.engine.sip.headers import Headers
from huntgroup.engine.sip.message import Request, Response
from huntgroup.engine.sip.transaction import RequestReceived, ResponseReceived, SendMessage
from huntgroup.engine.sip.uri import SipUri, parse_uri
from huntgroup.media.commands import CloseMedia, ConfirmMedia, OpenPort, StartRelay
from huntgroup.media.sdp import (
    Attribute,
    Connection,
    MediaDescription,
    Origin,
    SessionDescription,
)
from huntgroup.quick_init import quick_init


def _stores_through_object_setattr(cls: type) -> bool:
    """True when ``cls.__init__`` is the one ``dataclass`` writes for a frozen class: it
    stores each field with ``object.__setattr__``. A compiled ``__init__`` (mypyc's, no
    Python function) sets its slots in C: quicker still, never this."""
    init = cls.__init__
    return inspect.isfunction(init) and "__setattr__" in init.__code__.co_names


def _compiled(cls: type) -> bool:
    """True when ``cls``'s module is a mypyc extension (``scripts/build_native.sh``)."""
    return str(getattr(sys.modules[cls.__module__], "__file__", "")).endswith((".so", ".pyd"))


URI = parse_uri("sip:alice@192.0.2.1:5060")
HEADERS = Headers([("Via", "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1"), ("Call-ID", "a@b")])


HOT = (Peer, Via, NameAddress, CSeq, SipUri, Request, Response, SendMessage, RequestReceived,
       ResponseReceived, Transmit, Origin, Connection, Attribute, MediaDescription,
       SessionDescription, StartRelay, ConfirmMedia, OpenPort, CloseMedia)  # fmt: skip


@pytest.mark.parametrize("cls", HOT, ids=lambda c: c.__name__)
def test_the_objects_made_per_message_are_set_without_object_setattr(cls: type) -> None:
    assert dataclasses.is_dataclass(cls) and cls.__dataclass_params__.frozen  # type: ignore[attr-defined]
    assert not _stores_through_object_setattr(cls)


@pytest.mark.parametrize("cls", HOT, ids=lambda c: c.__name__)
def test_a_hot_class_has_the_quickest_init_of_its_build(cls: type) -> None:
    """In a compiled build, mypyc makes a class with another decorator than
    ``@dataclass`` an ordinary Python class (attributes read by name, the ``__init__``
    run by the interpreter): ``quick_init`` is applied after the class, not above it,
    and the class keeps its compiled ``__init__``. Interpreted, the ``__init__`` is the
    one ``quick_init`` wrote (its globals hold the slots' setters)."""
    if _compiled(cls):
        assert not inspect.isfunction(cls.__init__)
    else:
        assert "__qi_set_0" in cls.__init__.__globals__


def test_the_check_sees_a_dataclass_init() -> None:
    @dataclasses.dataclass(frozen=True, slots=True)
    class Plain:
        x: int

    assert _stores_through_object_setattr(Plain)
    assert not _stores_through_object_setattr(quick_init(Plain))
    assert Plain(1).x == 1


def test_same_object_as_the_dataclass_init() -> None:
    via = Via("UDP", "h", port=5060, params=(("branch", "z9hG4bK1"),))
    assert via == Via(transport="UDP", host="h", port=5060, params=(("branch", "z9hG4bK1"),))
    assert repr(Via("UDP", "h")) == "Via(transport='UDP', host='h', port=None, params=())"
    assert hash(via) == hash(Via("UDP", "h", 5060, (("branch", "z9hG4bK1"),)))
    assert dataclasses.replace(via, port=5061).port == 5061
    with pytest.raises(dataclasses.FrozenInstanceError):
        via.port = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        Via("UDP")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Via("UDP", "h", nope=1)  # type: ignore[call-arg]
    if inspect.isfunction(SipUri.__init__):  # ours (interpreted), named as the class's
        assert SipUri.__init__.__qualname__ == "SipUri.__init__"
    request = Request("INVITE", URI, HEADERS)
    assert request.body == b""
    assert RequestReceived(None, request, Peer("h", 1, "UDP")).key is None  # type: ignore[arg-type]
    if inspect.isfunction(MediaDescription.__init__):
        assert MediaDescription.__init__.__defaults__ is not None


def test_refuses_a_class_it_would_change() -> None:
    @dataclasses.dataclass(frozen=True, slots=True)
    class Factory:
        items: list[int] = dataclasses.field(default_factory=list)

    @dataclasses.dataclass(frozen=True, slots=True)
    class Post:
        x: int

        def __post_init__(self) -> None:
            pass

    @dataclasses.dataclass(frozen=True)
    class NoSlots:
        x: int

    @dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
    class KeywordOnly:
        x: int

    @dataclasses.dataclass(frozen=True, slots=True)
    class WithInitVar:  # review: fields() leaves the InitVar out of the new __init__
        x: int
        y: dataclasses.InitVar[int] = 0

    for cls in (Factory, Post, NoSlots, KeywordOnly, WithInitVar):
        with pytest.raises(TypeError):
            quick_init(cls)


def test_a_field_name_cannot_hide_the_setters() -> None:
    """Review: a field called ``_set_x`` beside ``x`` hid the setter of ``x``."""

    @quick_init
    @dataclasses.dataclass(frozen=True, slots=True)
    class Crowded:
        x: int
        _set_x: int = 7
        _default_x: str = "d"

    made = Crowded(1)
    assert (made.x, made._set_x, made._default_x) == (1, 7, "d")
    assert Crowded(1, 2, "e") == Crowded(x=1, _set_x=2, _default_x="e")


def test_an_init_that_is_no_python_function_is_kept() -> None:
    """A mypyc-compiled ``__init__`` (not a Python function) is quicker than ours: kept."""

    @dataclasses.dataclass(frozen=True, slots=True, init=False)
    class Compiledish:
        x: int

    native = object.__init__  # stands for a compiled __init__: a slot wrapper, no code
    Compiledish.__init__ = native  # type: ignore[method-assign]
    assert quick_init(Compiledish).__init__ is native


def test_an_explicit_init_is_replaced_when_interpreted() -> None:
    @dataclasses.dataclass(frozen=True, slots=True, init=False)
    class Explicit:
        x: int
        y: str = ""

        def __init__(self, x: int, y: str = "") -> None:
            object.__setattr__(self, "x", x)
            object.__setattr__(self, "y", y)

    written = Explicit.__init__
    made = quick_init(Explicit)
    assert made.__init__ is not written and not _stores_through_object_setattr(made)
    assert Explicit(1) == Explicit(1, "") and Explicit(2, "a").y == "a"
