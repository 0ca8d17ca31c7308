"""The dialog-info document (RFC 4235 §4): what we write, and reading what phones send."""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree

import pytest

from huntgroup.engine.sip.dialog_info import (
    MAX_ALLOWED_EVENTS,
    MAX_DIALOGS,
    NAMESPACE,
    DialogEntry,
    allowed_events,
    parse,
    render,
)
from huntgroup.engine.sip.message import Request
from huntgroup.engine.sip.parser import parse_datagram
from huntgroup.errors import ProtocolError
from tests.support.b2bua_peers import build

NS = {"d": NAMESPACE}


def test_an_idle_entity_is_a_document_without_dialogs() -> None:
    body = render("sip:0102@voip.test", 0, ())
    root = ElementTree.fromstring(body)
    assert root.tag == f"{{{NAMESPACE}}}dialog-info"
    assert root.attrib == {"version": "0", "state": "full", "entity": "sip:0102@voip.test"}
    assert root.findall("d:dialog", NS) == []


def test_dialogs_carry_id_direction_state_and_the_remote_when_given() -> None:
    entries = (
        DialogEntry("k1", "early", "recipient", "sip:0611@voip.test", 'Jo "the" <boss>'),
        DialogEntry("k2-out", "confirmed", "initiator"),
    )
    root = ElementTree.fromstring(render("sip:0102@voip.test", 7, entries))
    first, second = root.findall("d:dialog", NS)
    assert first.attrib == {"id": "k1", "direction": "recipient"}
    assert first.findtext("d:state", namespaces=NS) == "early"
    identity = first.find("d:remote/d:identity", NS)
    assert identity is not None and identity.text == "sip:0611@voip.test"
    assert identity.get("display") == 'Jo "the" <boss>'  # escaped, read back intact
    assert second.findtext("d:state", namespaces=NS) == "confirmed"
    assert second.find("d:remote", NS) is None
    assert root.get("version") == "7"


def test_ended_is_the_same_dialog_terminated() -> None:
    entry = DialogEntry("k1", "confirmed", "recipient", "sip:x@y")
    assert entry.ended() == DialogEntry("k1", "terminated", "recipient", "sip:x@y")


def test_what_we_write_we_read() -> None:
    body = render("sip:a@b", 3, (DialogEntry("k1", "early", "recipient"),))
    info = parse(body)
    assert info.version == 3 and info.full
    assert [(d.id, d.state, d.direction) for d in info.dialogs] == [("k1", "early", "recipient")]


def test_a_phones_partial_document_with_call_ids() -> None:
    body = (
        f'<dialog-info xmlns="{NAMESPACE}" version="12" state="partial" entity="sip:a@b">'
        '<dialog id="x" call-id="c1@p" local-tag="1" remote-tag="2" direction="initiator">'
        '<state event="rejected">terminated</state></dialog></dialog-info>'
    ).encode()
    info = parse(body)
    assert not info.full and info.version == 12
    assert info.dialogs[0].call_id == "c1@p" and info.dialogs[0].state == "terminated"


@pytest.mark.parametrize(
    "body",
    [
        b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaaaaaa">]><d>&a;</d>',
        b"<dialog-info",
        b'<other xmlns="urn:x" version="1" state="full"/>',
        f'<dialog-info xmlns="{NAMESPACE}" version="x" state="full"/>'.encode(),
        f'<dialog-info xmlns="{NAMESPACE}" version="1" state="odd"/>'.encode(),
        f'<dialog-info xmlns="{NAMESPACE}" version="1" state="full"><dialog id="a">'
        "<state>ringing</state></dialog></dialog-info>".encode(),
        f'<dialog-info xmlns="{NAMESPACE}" version="1" state="full"><dialog>'
        "<state>early</state></dialog></dialog-info>".encode(),
        b" " * 70000,
    ],
)
def test_hostile_or_malformed_documents_raise(body: bytes) -> None:
    with pytest.raises(ProtocolError):
        parse(body)


def test_only_so_many_dialogs_are_read() -> None:
    many = "".join(f'<dialog id="{i}"><state>early</state></dialog>' for i in range(200))
    body = f'<dialog-info xmlns="{NAMESPACE}" version="1" state="full">{many}</dialog-info>'
    assert len(parse(body.encode()).dialogs) == MAX_DIALOGS


def register_with(*headers: str) -> Request:
    fields = [
        ("Via", "SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1"),
        ("From", "<sip:100@example.com>;tag=1"),
        ("To", "<sip:100@example.com>"),
        ("Call-ID", "reg@test"),
        ("CSeq", "1 REGISTER"),
    ]
    for header in headers:
        name, _, value = header.partition(":")
        fields.append((name, value.strip()))
    message = parse_datagram(build("REGISTER sip:example.com SIP/2.0", fields))
    assert isinstance(message, Request)
    return message


@pytest.mark.parametrize(
    ("headers", "events"),
    [
        ((), set()),
        (("Allow-Events: dialog",), {"dialog"}),
        (("Allow-Events: Presence , DIALOG",), {"presence", "dialog"}),
        (("u: dialog",), {"dialog"}),
        (("Allow-Events: talk", "Allow-Events: dialog.winfo"), {"talk", "dialog.winfo"}),
        (("Allow-Events: dialog;sla",), set()),
        (("Allow-Events: dia log",), set()),
        (('Allow-Events: "dialog"',), set()),
        (("Allow-Events: dialog.",), set()),
        (("Allow-Events: .dialog",), set()),
        (("Allow-Events: dialog, pr\u00e9sence",), set()),
        (("Allow-Events:",), set()),
        ((f"Allow-Events: {','.join(['x'] * MAX_ALLOWED_EVENTS)},dialog",), set()),
    ],
)
def test_allow_events_is_read_strictly(headers: tuple[str, ...], events: set[str]) -> None:
    assert allowed_events(register_with(*headers)) == events
