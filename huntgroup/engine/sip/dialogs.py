"""Dialogs (RFC 3261 §12) as the B2BUA keeps them, and in-dialog request building.

Theory of operation
-------------------
A :class:`Dialog` is our half of one dialog: Call-ID, our tag and the peer's,
the URIs of From/To as we write them, the peer's target (its Contact), the
route set, our CSeq counter, and the hop to send in-dialog requests to. The
caller's dialog is built from the INVITE we answer (UAS side, §12.1.1); a
member's dialog from the 2xx to the INVITE we sent (UAC side, §12.1.2).

``request()`` builds any in-dialog request (BYE, re-INVITE, UPDATE, INFO) and
``ack_for_2xx()`` the ACK of a 2xx, which is end to end and belongs to no
transaction (§13.2.2.4). Via branches come from the injected random source.

Invariant: the local CSeq only grows; the ACK reuses the INVITE's number.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from huntgroup.engine.sip.address import Peer
from huntgroup.engine.sip.fields import NameAddress
from huntgroup.engine.sip.headers import Headers
from huntgroup.engine.sip.message import Request, Response
from huntgroup.engine.sip.uri import Uri


@dataclass(slots=True, init=False)
class Dialog:
    call_id: str
    local: NameAddress  # with our tag
    remote: NameAddress  # with the peer's tag
    remote_target: Uri
    route_set: list[str]
    peer: Peer
    me: Peer  # ourselves on the transport the dialog uses
    local_cseq: int
    remote_cseq: int = 0
    local_sdp: bytes = b""  # the last SDP we sent on it (a session refresh offers it again)

    def __init__(
        self,
        call_id: str,
        local: NameAddress,
        remote: NameAddress,
        remote_target: Uri,
        route_set: list[str],
        peer: Peer,
        me: Peer,
        local_cseq: int,
        remote_cseq: int = 0,
        local_sdp: bytes = b"",
    ) -> None:
        self.call_id = call_id
        self.local = local
        self.remote = remote
        self.remote_target = remote_target
        self.route_set = route_set
        self.peer = peer
        self.me = me
        self.local_cseq = local_cseq
        self.remote_cseq = remote_cseq
        self.local_sdp = local_sdp

    @property
    def local_tag(self) -> str:
        return self.local.tag or ""

    @property
    def remote_tag(self) -> str:
        return self.remote.tag or ""

    def request(
        self,
        method: str,
        rng: random.Random,
        *,
        body: bytes = b"",
        content_type: str | None = None,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> Request:
        self.local_cseq += 1
        return self._build(method, self.local_cseq, rng, body, content_type, headers)

    def ack_for_2xx(self, invite_cseq: int, rng: random.Random) -> Request:
        return self._build("ACK", invite_cseq, rng, b"", None, ())

    def _build(
        self,
        method: str,
        cseq: int,
        rng: random.Random,
        body: bytes,
        content_type: str | None,
        headers: tuple[tuple[str, str], ...],
    ) -> Request:
        items: list[tuple[str, str]] = [
            ("Via", self.me.via(rng)),
            ("Max-Forwards", "70"),
            ("From", str(self.local)),
            ("To", str(self.remote)),
            ("Call-ID", self.call_id),
            ("CSeq", f"{cseq} {method}"),
        ]
        items += [("Route", r) for r in self.route_set]
        if method in ("INVITE", "UPDATE"):
            items.append(("Contact", self.me.contact()))
        items += list(headers)
        if content_type and body:
            items.append(("Content-Type", content_type))
            if content_type.split(";")[0].strip().lower() == "application/sdp":
                self.local_sdp = body
        return Request(method=method, uri=self.remote_target, headers=Headers(items), body=body)


def uas_dialog(invite: Request, response: Response, peer: Peer, me: Peer) -> Dialog:
    """Our dialog with the sender of ``invite``, which we answered with ``response``."""
    contacts = invite.contacts
    target = contacts[0].uri if contacts else invite.from_.uri
    return Dialog(
        call_id=invite.call_id,
        local=response.to,
        remote=invite.from_,
        remote_target=target,
        route_set=list(invite.headers.get_all("Record-Route")),
        peer=peer,
        me=me,
        local_cseq=0,
        remote_cseq=invite.cseq.number,
        local_sdp=response.body,
    )


def uac_dialog(invite: Request, response: Response, peer: Peer, me: Peer) -> Dialog:
    """Our dialog with the UA that answered ``invite`` with ``response`` (a 2xx)."""
    contacts = response.contacts
    target = contacts[0].uri if contacts else invite.uri
    return Dialog(
        call_id=invite.call_id,
        local=invite.from_,
        remote=response.to,
        remote_target=target,
        route_set=list(reversed(response.headers.get_all("Record-Route"))),
        peer=peer,
        me=me,
        local_cseq=invite.cseq.number,
        local_sdp=invite.body,
    )
