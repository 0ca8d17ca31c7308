"""An in-test SIP world around the sans-I/O B2BUA: a scripted clock and fake phones.

Theory of operation
-------------------
:class:`Network` owns one :class:`~huntgroup.engine.b2bua.B2BUA` (built the
way the server builds it, with seeded randomness) and a clock that only moves
when a test says so. :meth:`Network.at` fires the B2BUA's timers in order up
to a time, like ``tests/support/core_harness.py`` does for the group core.

Every output is routed at once: a :class:`Transmit` is parsed with the real
parser and dropped in the inbox of the :class:`Phone` listening at its
destination (or kept in ``Network.stray`` if nobody listens there); media
commands are kept in ``Network.media``, call records in ``Network.records``. A
phone's inbox holds each distinct datagram once: byte-identical retransmissions are counted in
``Phone.copies`` and not queued again, so tests can assert a flow message by
message and check retransmissions separately.

Phones never answer by themselves. A test drives them with the handles they
return: :class:`UacCall` for a call a phone places (INVITE, ACK, CANCEL, BYE,
re-INVITE, INFO) and :class:`UasCall` for an INVITE a phone received (1xx,
2xx with SDP, 4xx/6xx, BYE). Messages are written as text, byte by byte, so a
test sees exactly what a real peer would send.
"""

from __future__ import annotations

import itertools
import random
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from huntgroup.config.models import Config
from huntgroup.engine.b2bua import B2BUA, Output, Transmit
from huntgroup.engine.b2bua.call_records import CallRecord, MemberChange, QueueEvent, RecordOutput
from huntgroup.engine.sip import digest
from huntgroup.engine.sip.address import Peer
from huntgroup.engine.sip.message import Message, Request, Response
from huntgroup.engine.sip.parser import SipParseError, parse_datagram
from huntgroup.media.call_media import MediaMode
from huntgroup.media.commands import CloseMedia, MediaCommand, PlayMusic, StartRelay
from huntgroup.media.offer_answer import MediaPlanner

CRLF = "\r\n"
HOST = "127.0.0.1"
B2B_PEER = Peer(HOST, 5060, "UDP")
LOCAL = Peer(HOST, 5060, "UDP")
SECRET = b"b2bua-test-secret-0123456789abcdef"
RTP_RANGE = (40000, 40999)
DOMAIN = "voip.example.net"


def sdp(
    port: int,
    *,
    codecs: Iterable[tuple[int, str]] = ((0, "PCMU"),),
    event: int | None = 101,
    host: str = HOST,
    session: int = 1,
) -> bytes:
    """An SDP body with one audio stream on ``port`` (G.711 and telephone-event by default)."""
    codecs = list(codecs)
    formats = [str(pt) for pt, _ in codecs] + ([str(event)] if event is not None else [])
    lines = [
        "v=0",
        f"o=peer {session} 1 IN IP4 {host}",
        "s=-",
        f"c=IN IP4 {host}",
        "t=0 0",
        f"m=audio {port} RTP/AVP {' '.join(formats)}",
    ]
    lines += [f"a=rtpmap:{pt} {name}/8000" for pt, name in codecs]
    if event is not None:
        lines += [f"a=rtpmap:{event} telephone-event/8000", f"a=fmtp:{event} 0-15"]
    lines.append("a=sendrecv")
    return (CRLF.join(lines) + CRLF).encode()


def build(start: str, headers: Iterable[tuple[str, str]], body: bytes = b"") -> bytes:
    """A SIP message as bytes; Content-Length is always added, last."""
    items = [*headers, ("Content-Length", str(len(body)))]
    head = start + CRLF + "".join(f"{n}: {v}{CRLF}" for n, v in items) + CRLF
    return head.encode("utf-8", "surrogateescape") + body  # bytes a peer copied back


def response_bytes(
    request: Request,
    status: int,
    reason: str,
    *,
    to_tag: str | None = None,
    contact: str | None = None,
    body: bytes = b"",
    extra: Iterable[tuple[str, str]] = (),
) -> bytes:
    """A UAS response to ``request`` (§8.2.6): Via, From, To, Call-ID, CSeq copied."""
    headers: list[tuple[str, str]] = [("Via", v) for v in request.headers.get_all("Via")]
    headers.append(("From", request.headers.get("From") or ""))
    to = request.headers.get("To") or ""
    if to_tag is not None and ";tag=" not in to:
        to = f"{to};tag={to_tag}"
    headers += [
        ("To", to),
        ("Call-ID", request.call_id),
        ("CSeq", f"{request.cseq.number} {request.cseq.method}"),
    ]
    if contact is not None:
        headers.append(("Contact", contact))
    headers += list(extra)
    if body:
        headers.append(("Content-Type", "application/sdp"))
    return build(f"SIP/2.0 {status} {reason}", headers, body)


@dataclass(slots=True)
class Received:
    at: float
    message: Message
    data: bytes


class Network:
    """The B2BUA, the scripted clock, and the phones around it."""

    def __init__(
        self,
        config: Config,
        *,
        now: float = 0.0,
        media_mode: MediaMode = "relay",
        node_id: str = "",
    ) -> None:
        self.now = now
        self.config = config
        self.planner = MediaPlanner(HOST, RTP_RANGE, random.Random(2), mode=media_mode)
        self.b2b = B2BUA(
            config,
            now=now,
            locals_=[LOCAL],
            rng=random.Random(1),
            secret=SECRET,
            media=self.planner,
            node_id=node_id,
        )
        self.phones: dict[tuple[str, int], Phone] = {}
        self.media: list[MediaCommand] = []
        self.stray: list[Transmit] = []
        self.records: list[CallRecord] = []  # call records, in the order the calls ended
        self.queue_events: list[QueueEvent] = []  # queue_log events, as they came
        self.member_changes: list[MemberChange] = []
        self.transmits: list[tuple[float, Transmit]] = []
        # every answer of get_timer is checked against all its sources asked afresh
        # (its cache of the rarely changing ones must never hide a due time)
        self.check_timers = True

    def timer(self) -> float | None:
        """``b2b.get_timer()``, checked (``check_timers``) against every source's own."""
        due = self.b2b.get_timer()
        if self.check_timers:
            b2b = self.b2b
            sources = (
                b2b.layer, b2b.core, b2b.registrar, b2b.shared, b2b.guard,
                b2b.subscriptions, b2b.watches,
            )  # fmt: skip
            dues = [source.get_timer() for source in sources] + [b2b.next_timer()]
            fresh = min((d for d in dues if d is not None), default=None)
            assert due == fresh, f"get_timer() gave {due}, its sources {fresh}"
        return due

    # -- phones
    def phone(self, name: str, port: int, user: str | None = None) -> Phone:
        phone = Phone(self, name, port, user or name)
        self.phones[(HOST, port)] = phone
        return phone

    # -- inputs
    def deliver(self, data: bytes, source: Peer) -> list[Output]:
        outputs = self.b2b.receive_datagram(data, source, now=self.now)
        self._route(outputs)
        return outputs

    def at(self, t: float) -> None:
        """Move the clock to ``t``, firing every timer due on the way, in order."""
        for _ in range(100_000):
            due = self.timer()
            if due is None or due > t:
                break
            self.now = max(self.now, due)
            self._route(self.b2b.handle_timer(now=self.now))
        else:
            raise AssertionError(f"the B2BUA's timer does not move past {self.now}")
        self.now = max(self.now, t)

    def advance(self, dt: float) -> None:
        self.at(self.now + dt)

    def shutdown(self, grace: float) -> None:
        self._route(self.b2b.begin_shutdown(now=self.now, grace=grace))

    def _route(self, outputs: list[Output]) -> None:
        for out in outputs:
            if isinstance(out, Transmit):
                self.transmits.append((self.now, out))
                dest = out.destination
                phone = self.phones.get((dest.host, dest.port))
                if phone is None:
                    self.stray.append(out)
                else:
                    phone.receive(out.data, self.now)
            elif isinstance(out, RecordOutput):
                if isinstance(out.record, CallRecord):
                    self.records.append(out.record)
                elif isinstance(out.record, QueueEvent):
                    self.queue_events.append(out.record)
                else:
                    self.member_changes.append(out.record)
            else:
                self.media.append(out)
        self.timer()  # what the driver asks after every input it carried out

    # -- media views
    def media_of(self, kind: type) -> list[MediaCommand]:
        return [m for m in self.media if isinstance(m, kind)]

    @property
    def relays(self) -> list[StartRelay]:
        return [m for m in self.media if isinstance(m, StartRelay)]

    @property
    def music(self) -> list[PlayMusic]:
        return [m for m in self.media if isinstance(m, PlayMusic)]

    @property
    def closes(self) -> list[CloseMedia]:
        return [m for m in self.media if isinstance(m, CloseMedia)]

    @property
    def ports_in_use(self) -> int:
        return self.planner.ports.in_use


class Phone:
    """A fake SIP phone at 127.0.0.1:``port`` whose user part is ``user``."""

    def __init__(self, net: Network, name: str, port: int, user: str) -> None:
        self.net = net
        self.name = name
        self.user = user
        self.peer = Peer(HOST, port, "UDP")
        self.uri = f"sip:{user}@{HOST}:{port}"
        self.contact = f"<{self.uri}>"
        self.inbox: list[Received] = []
        self.log: list[Received] = []
        self.copies: Counter[bytes] = Counter()
        self.unparsable: list[bytes] = []
        self._ids = itertools.count(1)

    def __repr__(self) -> str:
        return f"Phone({self.name})"

    # -- receiving
    def receive(self, data: bytes, now: float) -> None:
        try:
            message = parse_datagram(data)
        except SipParseError:
            self.unparsable.append(data)
            return
        item = Received(now, message, data)
        self.log.append(item)
        self.copies[data] += 1
        if self.copies[data] == 1:
            self.inbox.append(item)

    def summary(self) -> list[str]:
        return [_describe(r.message) for r in self.inbox]

    def take(self, what: str | int, *, method: str | None = None) -> Message:
        """Remove and return the first unread message that is ``what``.

        ``what`` is a request method, or a status code (then ``method`` may
        name the CSeq method of the response).
        """
        for i, item in enumerate(self.inbox):
            if _matches(item.message, what, method):
                del self.inbox[i]
                return item.message
        raise AssertionError(f"{self.name}: no {what} {method or ''} in {self.summary()}")

    def request(self, method: str) -> Request:
        message = self.take(method)
        assert isinstance(message, Request)
        return message

    def response(self, status: int, method: str = "INVITE") -> Response:
        message = self.take(status, method=method)
        assert isinstance(message, Response)
        return message

    def next(self) -> Message:
        assert self.inbox, f"{self.name}: nothing received"
        return self.inbox.pop(0).message

    def has(self, what: str | int, *, method: str | None = None) -> bool:
        return any(_matches(r.message, what, method) for r in self.inbox)

    def quiet(self) -> None:
        """Assert that nothing unread is waiting."""
        assert not self.inbox, f"{self.name} got unexpected {self.summary()}"

    def drop(self, pred: Callable[[Message], bool] | None = None) -> None:
        """Forget unread messages (all, or those ``pred`` selects)."""
        self.inbox = [r for r in self.inbox if pred is not None and not pred(r.message)]

    def count(self, what: str | int, *, method: str | None = None) -> int:
        """Datagrams received (retransmissions included) that are ``what``."""
        return sum(1 for r in self.log if _matches(r.message, what, method))

    # -- sending
    def send(self, data: bytes) -> list[Output]:
        return self.net.deliver(data, self.peer)

    def new_id(self, what: str) -> str:
        return f"{what}-{self.name}-{next(self._ids)}"

    def branch(self) -> str:
        return "z9hG4bK" + self.new_id("br")

    def via(self, branch: str) -> str:
        return f"SIP/2.0/UDP {HOST}:{self.peer.port};branch={branch};rport"

    def invite(
        self,
        number: str,
        *,
        body: bytes | None = None,
        rtp: int = 10000,
        max_forwards: int = 70,
        from_user: str | None = None,
        display: str = "",
        extra: Iterable[tuple[str, str]] = (),
        content_type: str = "application/sdp",
    ) -> UacCall:
        """Send an INVITE to ``number`` at the B2BUA's domain."""
        call = UacCall(
            phone=self,
            ruri=f"sip:{number}@{DOMAIN}",
            call_id=self.new_id("call") + "@test",
            from_tag=self.new_id("tag"),
            from_uri=f"sip:{from_user or self.user}@{DOMAIN}",
            display=display,
        )
        call.body = sdp(rtp) if body is None else body
        call.send_invite(max_forwards=max_forwards, extra=extra, content_type=content_type)
        return call

    def simple(
        self,
        method: str,
        ruri: str,
        *,
        to_tag: str | None = None,
        extra: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        max_forwards: int = 70,
    ) -> list[Output]:
        """An out-of-dialog request (OPTIONS, BYE, MESSAGE...)."""
        to = f"<{ruri}>" + (f";tag={to_tag}" if to_tag else "")
        headers = [
            ("Via", self.via(self.branch())),
            ("Max-Forwards", str(max_forwards)),
            ("From", f"<sip:{self.user}@{DOMAIN}>;tag={self.new_id('tag')}"),
            ("To", to),
            ("Call-ID", self.new_id("ood") + "@test"),
            ("CSeq", f"1 {method}"),
            *extra,
        ]
        return self.send(build(f"{method} {ruri} SIP/2.0", headers, body))

    def register(
        self,
        number: str,
        *,
        call_id: str,
        cseq: int,
        authorization: str | None = None,
        expires: int = 3600,
        extra: Sequence[tuple[str, str]] = (),
    ) -> list[Output]:
        uri = f"sip:{number}@{DOMAIN}"
        headers = [
            ("Via", self.via(self.branch())),
            ("Max-Forwards", "70"),
            ("From", f"<{uri}>;tag={self.new_id('tag')}"),
            ("To", f"<{uri}>"),
            ("Call-ID", call_id),
            ("CSeq", f"{cseq} REGISTER"),
            ("Contact", f"<sip:{number}@{HOST}:{self.peer.port}>;expires={expires}"),
        ]
        if authorization is not None:
            headers.append(("Authorization", authorization))
        headers.extend(extra)
        return self.send(build(f"REGISTER sip:{DOMAIN} SIP/2.0", headers))

    def respond(
        self,
        request: Request,
        status: int,
        reason: str = "",
        *,
        to_tag: str | None = None,
        body: bytes = b"",
        contact: bool = False,
    ) -> list[Output]:
        """Answer any request (CANCEL, BYE, re-INVITE, INFO...) with ``status``."""
        data = response_bytes(
            request,
            status,
            reason or _reason(status),
            to_tag=to_tag if to_tag is not None else (self.new_id("tag") if status > 100 else None),
            contact=self.contact if contact else None,
            body=body,
        )
        return self.send(data)

    def answering(self, invite: Request) -> UasCall:
        """A handle on an INVITE this phone received."""
        return UasCall(self, invite, self.new_id("tag"))


@dataclass(slots=True)
class UacCall:
    """A call a phone placed: the INVITE it sent and the dialog that follows."""

    phone: Phone
    ruri: str
    call_id: str
    from_tag: str
    from_uri: str
    display: str = ""
    body: bytes = b""
    branch: str = ""
    cseq: int = 1
    invite_cseq: int = 1
    invite_bytes: bytes = b""
    remote_tag: str | None = None
    remote_target: str | None = None
    local_cseq: int = 1

    @property
    def from_header(self) -> str:
        name = f'"{self.display}" ' if self.display else ""
        return f"{name}<{self.from_uri}>;tag={self.from_tag}"

    def to_header(self) -> str:
        return f"<{self.ruri}>" + (f";tag={self.remote_tag}" if self.remote_tag else "")

    def send_invite(
        self,
        *,
        max_forwards: int = 70,
        extra: Iterable[tuple[str, str]] = (),
        content_type: str = "application/sdp",
    ) -> list[Output]:
        self.branch = self.phone.branch()
        self.invite_cseq = self.cseq
        headers = [
            ("Via", self.phone.via(self.branch)),
            ("Max-Forwards", str(max_forwards)),
            ("From", self.from_header),
            ("To", f"<{self.ruri}>"),
            ("Call-ID", self.call_id),
            ("CSeq", f"{self.cseq} INVITE"),
            ("Contact", self.phone.contact),
            *extra,
        ]
        if self.body:
            headers.append(("Content-Type", content_type))
        self.invite_bytes = build(f"INVITE {self.ruri} SIP/2.0", headers, self.body)
        return self.phone.send(self.invite_bytes)

    def retransmit_invite(self) -> list[Output]:
        return self.phone.send(self.invite_bytes)

    def confirmed(self, response: Response) -> None:
        """Learn the dialog from a 2xx (or 1xx with tag)."""
        self.remote_tag = response.to.tag
        contacts = response.contacts
        if contacts:
            self.remote_target = str(contacts[0].uri)

    def ack(self, response: Response | None = None) -> list[Output]:
        """The ACK of a 2xx: a new transaction, sent to the remote target."""
        if response is not None:
            self.confirmed(response)
        assert self.remote_tag and self.remote_target, "no dialog to ACK"
        headers = [
            ("Via", self.phone.via(self.phone.branch())),
            ("Max-Forwards", "70"),
            ("From", self.from_header),
            ("To", self.to_header()),
            ("Call-ID", self.call_id),
            ("CSeq", f"{self.invite_cseq} ACK"),
        ]
        return self.phone.send(build(f"ACK {self.remote_target} SIP/2.0", headers))

    def ack_failure(self, response: Response) -> list[Output]:
        """The ACK of a non-2xx final response: same branch as the INVITE (§17.1.1.3)."""
        headers = [
            ("Via", self.phone.via(self.branch)),
            ("Max-Forwards", "70"),
            ("From", self.from_header),
            ("To", response.headers.get("To") or ""),
            ("Call-ID", self.call_id),
            ("CSeq", f"{self.invite_cseq} ACK"),
        ]
        return self.phone.send(build(f"ACK {self.ruri} SIP/2.0", headers))

    def cancel(self) -> list[Output]:
        headers = [
            ("Via", self.phone.via(self.branch)),
            ("Max-Forwards", "70"),
            ("From", self.from_header),
            ("To", f"<{self.ruri}>"),
            ("Call-ID", self.call_id),
            ("CSeq", f"{self.invite_cseq} CANCEL"),
        ]
        return self.phone.send(build(f"CANCEL {self.ruri} SIP/2.0", headers))

    def in_dialog(
        self,
        method: str,
        *,
        body: bytes = b"",
        content_type: str = "application/sdp",
        branch: str | None = None,
    ) -> bytes:
        """An in-dialog request as bytes (not sent)."""
        assert self.remote_tag and self.remote_target, "no dialog"
        self.cseq += 1
        headers = [
            ("Via", self.phone.via(branch or self.phone.branch())),
            ("Max-Forwards", "70"),
            ("From", self.from_header),
            ("To", self.to_header()),
            ("Call-ID", self.call_id),
            ("CSeq", f"{self.cseq} {method}"),
        ]
        if method == "INVITE":
            headers.append(("Contact", self.phone.contact))
            self.invite_cseq = self.cseq
        if body:
            headers.append(("Content-Type", content_type))
        return build(f"{method} {self.remote_target} SIP/2.0", headers, body)

    def bye(self) -> list[Output]:
        return self.phone.send(self.in_dialog("BYE"))

    def reinvite(self, body: bytes) -> list[Output]:
        return self.phone.send(self.in_dialog("INVITE", body=body))

    def info(self, body: bytes, content_type: str = "application/dtmf-relay") -> list[Output]:
        return self.phone.send(self.in_dialog("INFO", body=body, content_type=content_type))


@dataclass(slots=True)
class UasCall:
    """An INVITE a phone received, and the dialog its 2xx creates."""

    phone: Phone
    invite: Request
    tag: str
    cseq: int = 100
    answered: bool = False
    extra_sent: list[bytes] = field(default_factory=list)

    def reply(
        self, status: int, *, rtp: int | None = None, body: bytes | None = None
    ) -> list[Output]:
        """1xx / 2xx (with an SDP answer on ``rtp``) / failure to the INVITE."""
        if body is None:
            body = sdp(rtp or (20000 + self.phone.peer.port)) if 200 <= status < 300 else b""
        contact = self.phone.contact if status < 300 and status > 100 else None
        if 200 <= status < 300:
            self.answered = True
        data = response_bytes(
            self.invite,
            status,
            _reason(status),
            to_tag=self.tag if status > 100 else None,
            contact=contact,
            body=body,
        )
        self.extra_sent.append(data)
        return self.phone.send(data)

    def resend_last(self) -> list[Output]:
        return self.phone.send(self.extra_sent[-1])

    def in_dialog(self, method: str, *, body: bytes = b"") -> bytes:
        inv = self.invite
        self.cseq += 1
        contacts = inv.contacts
        target = str(contacts[0].uri) if contacts else str(inv.from_.uri)
        headers = [
            ("Via", self.phone.via(self.phone.branch())),
            ("Max-Forwards", "70"),
            ("From", f"{inv.headers.get('To')};tag={self.tag}"),
            ("To", inv.headers.get("From") or ""),
            ("Call-ID", inv.call_id),
            ("CSeq", f"{self.cseq} {method}"),
        ]
        if method == "INVITE":
            headers.append(("Contact", self.phone.contact))
        if body:
            headers.append(("Content-Type", "application/sdp"))
        return build(f"{method} {target} SIP/2.0", headers, body)

    def bye(self) -> list[Output]:
        return self.phone.send(self.in_dialog("BYE"))


# ---------------------------------------------------------------- digest


def digest_authorization(
    challenge: str,
    *,
    username: str,
    password: str,
    method: str,
    uri: str,
    cnonce: str = "0a4f113b",
    nc: str = "00000001",
) -> str:
    """An ``Authorization`` value answering one ``WWW-Authenticate`` challenge (RFC 7616)."""
    return digest.authorization(
        digest.parse_challenge(challenge),
        username=username,
        password=password,
        method=method,
        uri=uri,
        cnonce=cnonce,
        nc=int(nc, 16),
    )


def parse_challenge(value: str) -> dict[str, str]:
    """The parameters of a ``Digest ...`` challenge, unquoted, names lower-cased."""
    scheme, params = digest.parse_auth_params(value, what="challenge")
    assert scheme == "Digest", value
    return params


# ---------------------------------------------------------------- helpers


def allow_of(message: Message) -> set[str]:
    """The methods of every Allow header (a list may be split over several lines)."""
    return {m.strip() for v in message.headers.get_all("Allow") for m in v.split(",") if m.strip()}


def _matches(message: Message, what: str | int, method: str | None) -> bool:
    if isinstance(what, int):
        return (
            isinstance(message, Response)
            and message.status == what
            and (method is None or message.cseq.method == method)
        )
    return isinstance(message, Request) and message.method == what


def _describe(message: Message) -> str:
    if isinstance(message, Request):
        return f"{message.method} (CSeq {message.cseq})"
    return f"{message.status} (CSeq {message.cseq})"


_REASONS = {
    100: "Trying",
    180: "Ringing",
    183: "Session Progress",
    200: "OK",
    404: "Not Found",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    603: "Decline",
}


def _reason(status: int) -> str:
    return _REASONS.get(status, "Whatever")


# ---------------------------------------------------------------- configs

PILOT = "0140000000"
GROUP = "Support"
LINE_A = "0102030405"
LINE_B = "0102030406"
PASSWORD = "s3cret"
CALLER_NUMBER = "0612345678"


def member_uri(i: int) -> str:
    """The fixed URI of member ``i`` (1-based): sip:m{i}@127.0.0.1:700{i}."""
    return f"sip:m{i}@{HOST}:{7000 + i}"


def make_config(
    algorithm: str = "linear",
    members: int = 3,
    *,
    member_lines: Iterable[str] = (),
    lines: Iterable[dict[str, object]] = (),
    queue: dict[str, object] | None = None,
    **group: object,
) -> Config:
    """One group ``Support`` (pilot 0140000000) of fixed-URI members m1..mN, then
    the ``member_lines`` as further members; lines LINE_A and LINE_B exist."""
    from huntgroup.config.models import GroupConfig, LineConfig, MemberConfig, QueueConfig

    line_cfgs: dict[str, dict[str, object]] = {
        LINE_A: {"number": LINE_A, "name": "Alice Martin", "password": PASSWORD},
        LINE_B: {"number": LINE_B, "name": "Bob", "password": PASSWORD},
    }
    for extra in lines:
        number = str(extra["number"])
        line_cfgs[number] = {**line_cfgs.get(number, {"password": PASSWORD}), **extra}
    members_cfg = [MemberConfig(uri=member_uri(i), position=i) for i in range(1, members + 1)]
    members_cfg += [
        MemberConfig(line=number, position=members + 1 + j) for j, number in enumerate(member_lines)
    ]
    settings: dict[str, object] = {
        "name": GROUP,
        "pilot": PILOT,
        "algorithm": algorithm,
        "members": tuple(members_cfg),
        "queue": QueueConfig(**(queue or {})),
    }
    settings.update(group)
    return Config(
        lines=tuple(LineConfig(**d) for d in line_cfgs.values()),
        groups=(GroupConfig(**settings),),
    )
