"""The dialog event package's document (RFC 4235 §4): application/dialog-info+xml.

Theory of operation
-------------------
:func:`render` writes the document a notifier sends in NOTIFY: the
``<dialog-info>`` root with its ``version`` (one counter per subscription,
starting at 0 and growing by one per NOTIFY, §4.1.1), ``state`` (always
``full`` here: every document lists every dialog the entity has, so a
watcher never has to merge) and ``entity`` (the URI watched); then one
``<dialog>`` element per dialog, with its ``id``, its ``direction``
(``initiator`` for a call the entity placed, ``recipient`` for one it
receives), its ``<state>`` (``early``, ``confirmed`` or ``terminated``) and,
when the notifier chooses to show it, the ``<remote><identity>`` of the
other party. An entity with no dialog is idle: a document without
``<dialog>`` elements.

:func:`parse` reads the documents a phone sends us (its own dialogs, RFC 4235
§4) into :class:`DialogInfo`: version, full or partial, and the dialogs'
ids, Call-IDs, states and directions. The body is hostile: it is bounded in
size, a document type declaration (and so any entity, the "billion laughs")
is refused before the XML parser sees it, and every field read is bounded;
anything malformed raises :class:`~huntgroup.errors.ProtocolError`.

:func:`allowed_events` reads the event packages a request says its sender
notifies (``Allow-Events``, compact ``u``; RFC 6665 §8.2.2, RFC 3265
§3.3.7): a REGISTER listing ``dialog`` tells the registrar that the phone
answers a dialog SUBSCRIBE. The list is read strictly: any item that is not
an ``event-type`` (a token without dots, then ``.template`` parts) makes the
whole header say nothing, so a hostile value never adds a package.

This is a leaf of the SIP library: it knows nothing about calls or lines.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from typing import Literal
from xml.sax.saxutils import escape, quoteattr

from huntgroup.engine.sip.message import Request
from huntgroup.errors import ProtocolError

CONTENT_TYPE = "application/dialog-info+xml"
EVENT = "dialog"
NAMESPACE = "urn:ietf:params:xml:ns:dialog-info"
MAX_BODY = 65536
"""The largest dialog-info document :func:`parse` reads."""
MAX_DIALOGS = 64
"""Dialog elements read from one document; the rest are ignored."""
MAX_FIELD = 256
"""Characters kept of an id, a Call-ID or a state read from a document."""

MAX_ALLOWED_EVENTS = 64
"""Items of Allow-Events read; a longer list says nothing (no phone lists that many)."""
_EVENT_TYPE = re.compile(r"[A-Za-z0-9\-!%*_+`'~]+(?:\.[A-Za-z0-9\-!%*_+`'~]+)*")
"""RFC 6665 §8.4: event-type = event-package *( "." event-template ), token-nodot each."""

DialogState = Literal["trying", "proceeding", "early", "confirmed", "terminated"]
Direction = Literal["initiator", "recipient"]
STATES: tuple[DialogState, ...] = ("trying", "proceeding", "early", "confirmed", "terminated")


@dataclass(frozen=True, slots=True)
class DialogEntry:
    """One ``<dialog>`` element: ``remote`` (a SIP URI) and ``remote_name`` are shown
    only when given."""

    id: str
    state: DialogState
    direction: Direction | None = None
    remote: str | None = None
    remote_name: str = ""

    def ended(self) -> DialogEntry:
        """The same dialog, terminated."""
        return DialogEntry(self.id, "terminated", self.direction, self.remote, self.remote_name)


def event_of(request: Request) -> str:
    """The event package of a SUBSCRIBE or NOTIFY (``Event``, compact ``o``), without
    its parameters, lower case; "" when absent."""
    value = request.headers.get("Event") or ""
    return value.split(";", 1)[0].strip().lower()


def allowed_events(request: Request) -> frozenset[str]:
    """The event packages ``request``'s Allow-Events headers list, lower case (RFC 6665
    §8.2.2); empty when there is none, or when any item is not an event-type or there
    are more than :data:`MAX_ALLOWED_EVENTS` (the header then says nothing)."""
    items = [
        item.strip(" \t")
        for value in request.headers.get_all("Allow-Events")
        for item in value.split(",")
    ]
    if len(items) > MAX_ALLOWED_EVENTS or not all(_EVENT_TYPE.fullmatch(i) for i in items):
        return frozenset()
    return frozenset(i.lower() for i in items)


def render(entity: str, version: int, dialogs: tuple[DialogEntry, ...]) -> bytes:
    """The full-state document of ``entity`` (a SIP URI) at ``version``."""
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>\n',
        f'<dialog-info xmlns="{NAMESPACE}" version="{version}" state="full" '
        f"entity={quoteattr(entity)}>\n",
    ]
    for d in dialogs:
        direction = f" direction={quoteattr(d.direction)}" if d.direction else ""
        parts.append(f"  <dialog id={quoteattr(d.id)}{direction}>\n")
        parts.append(f"    <state>{d.state}</state>\n")
        if d.remote is not None:
            name = f" display={quoteattr(d.remote_name)}" if d.remote_name else ""
            parts.append(f"    <remote><identity{name}>{escape(d.remote)}</identity></remote>\n")
        parts.append("  </dialog>\n")
    parts.append("</dialog-info>\n")
    return "".join(parts).encode()


@dataclass(frozen=True, slots=True)
class ReportedDialog:
    """A dialog a phone reports: its id, Call-ID (may be empty), state, direction."""

    id: str
    call_id: str
    state: DialogState
    direction: Direction | None


@dataclass(frozen=True, slots=True)
class DialogInfo:
    """A parsed document: its version, full or partial, and its dialogs."""

    version: int
    full: bool
    dialogs: tuple[ReportedDialog, ...]


def parse(body: bytes) -> DialogInfo:
    """Read a dialog-info document (see the module docstring); ProtocolError if malformed."""
    if len(body) > MAX_BODY:
        raise ProtocolError("dialog-info document too large")
    if b"<!" in body:  # DOCTYPE, ENTITY, comments, CDATA: none is needed, all refused
        raise ProtocolError("dialog-info document with a declaration")
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError as err:
        raise ProtocolError(f"dialog-info document is not XML: {err}") from err
    if root.tag != f"{{{NAMESPACE}}}dialog-info":
        raise ProtocolError("not a dialog-info document")
    raw_version = root.get("version", "")
    if not raw_version.isdigit() or len(raw_version) > 10:
        raise ProtocolError("dialog-info version is not a number")
    state = root.get("state", "")
    if state not in ("full", "partial"):
        raise ProtocolError("dialog-info state is neither full nor partial")
    dialogs: list[ReportedDialog] = []
    for element in root.iter(f"{{{NAMESPACE}}}dialog"):
        if len(dialogs) >= MAX_DIALOGS:
            break
        dialogs.append(_dialog(element))
    return DialogInfo(int(raw_version), state == "full", tuple(dialogs))


def _dialog(element: ElementTree.Element) -> ReportedDialog:
    ident = element.get("id", "")[:MAX_FIELD]
    if not ident:
        raise ProtocolError("dialog element without id")
    found = element.find(f"{{{NAMESPACE}}}state")
    text = (found.text or "").strip().lower()[:MAX_FIELD] if found is not None else ""
    state = next((s for s in STATES if s == text), None)
    if state is None:
        raise ProtocolError("dialog element without a known state")
    raw = element.get("direction")
    direction: Direction | None = (
        "initiator" if raw == "initiator" else "recipient" if raw == "recipient" else None
    )
    return ReportedDialog(ident, element.get("call-id", "")[:MAX_FIELD], state, direction)
