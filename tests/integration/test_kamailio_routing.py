"""The shipped kamailio.cfg, request by request, with a scripted node and phone.

A "node" here is a UDP socket listed in the dispatcher set that answers the
probes (OPTIONS) with 200 and records everything else; the "phone" and the
"stranger" are plain sockets. What is checked: a REGISTER reaches the node
with a Path naming Kamailio and the phone's address (RFC 3327), and the node's
INVITE along that Path reaches the phone, record-routed; nothing from outside
is relayed anywhere but to the node (a preloaded Route is dropped, an
in-dialog request to a stranger is refused 403, an asserted identity is
removed).
"""

from __future__ import annotations

import queue
import re
import secrets
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cluster import Kamailio
from tests.support.ports import PortAllocator
from tests.support.sip_messages import SipMessage, parse_message

pytestmark = [pytest.mark.integration]

HOST = "127.0.0.1"
WAIT = 10.0  # s: bounds a receive on a loaded machine; a healthy run takes milliseconds


class Peer:
    """A UDP SIP endpoint on 127.0.0.1; a node answers OPTIONS 200 by itself."""

    def __init__(self, port: int, *, answer_options: bool = False) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, port))
        self.sock.settimeout(0.1)
        self.port = port
        self.answer_options = answer_options
        self.inbox: queue.Queue[SipMessage] = queue.Queue()
        self.running = True
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while self.running:
            try:
                data, source = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            message = parse_message(data, source=source)
            if self.answer_options and message.method == "OPTIONS":
                self.sock.sendto(reply(message, 200, "OK"), source)
            else:
                self.inbox.put(message)

    def send(self, text: str, port: int) -> None:
        self.sock.sendto(text.replace("\n", "\r\n").encode(), (HOST, port))

    def next(self, wanted: str | int, *, wait: float = WAIT) -> SipMessage:
        """The next message that is the request ``wanted`` (a method) or a response of
        that status, skipping others (100 Trying...)."""
        while True:
            message = self.inbox.get(timeout=wait)
            if message.method == wanted or message.status == wanted:
                return message

    def nothing(self, *, wait: float = 1.0) -> list[SipMessage]:
        got: list[SipMessage] = []
        try:
            while True:
                got.append(self.inbox.get(timeout=wait))
        except queue.Empty:
            return got

    def close(self) -> None:
        self.running = False
        self.sock.close()
        self.thread.join(timeout=5)


def reply(request: SipMessage, status: int, reason: str, extra: str = "") -> bytes:
    lines = [f"SIP/2.0 {status} {reason}"]
    for name in ("Via", "Record-Route"):
        lines += [f"{name}: {v}" for v in request.headers_named(name)]
    for name in ("From", "To", "Call-ID", "CSeq"):
        lines.append(f"{name}: {request.header(name)}")
    lines += [line for line in extra.split("\n") if line]
    lines += ["Content-Length: 0", "", ""]
    return "\r\n".join(lines).encode()


def request(
    method: str, ruri: str, peer: Peer, *, to_tag: str = "", route: str = "", extra: str = ""
) -> str:
    tag = f";tag={to_tag}" if to_tag else ""
    routes = f"Route: {route}\n" if route else ""
    return (
        f"{method} {ruri} SIP/2.0\n"
        f"Via: SIP/2.0/UDP {HOST}:{peer.port};branch=z9hG4bK{secrets.token_hex(6)};rport\n"
        "Max-Forwards: 70\n"
        f"From: <sip:0611111111@{HOST}>;tag={secrets.token_hex(4)}\n"
        f"To: <{ruri}>{tag}\n"
        f"Call-ID: {secrets.token_hex(8)}@{HOST}\n"
        f"CSeq: 1 {method}\n"
        f"Contact: <sip:0611111111@{HOST}:{peer.port}>\n"
        f"{routes}{extra}"
        "Content-Length: 0\n\n"
    )


@pytest.fixture
def setup(tmp_path: Path, ports: PortAllocator) -> Iterator[tuple[Kamailio, Peer, Peer, Peer]]:
    node = Peer(ports.port(), answer_options=True)
    phone = Peer(ports.port())
    stranger = Peer(ports.port())
    kamailio = Kamailio(workdir=tmp_path / "kamailio", port=ports.port(), nodes={"n": node.port})
    try:
        kamailio.start()
        kamailio.wait_node("n", active=True)
        yield kamailio, node, phone, stranger
    finally:
        kamailio.stop()
        for peer in (node, phone, stranger):
            peer.close()


def test_register_gets_a_path_and_calls_come_back_through_it(
    setup: tuple[Kamailio, Peer, Peer, Peer],
) -> None:
    kamailio, node, phone, _ = setup
    phone.send(request("REGISTER", f"sip:voip.test:{kamailio.port}", phone), kamailio.port)
    register = node.next("REGISTER")
    (path,) = register.headers_named("Path")
    assert re.match(rf"<sip:{HOST}:{kamailio.port};lr;received=sip:{HOST}:{phone.port}", path), path
    node.sock.sendto(reply(register, 200, "OK", f"Path: {path}"), (HOST, kamailio.port))
    assert phone.next(200).call_id == register.call_id

    # The node calls the phone along the Path: Kamailio relays it, record-routed, to
    # the address the REGISTER came from (its "received"), not to the Contact (a
    # private address behind NAT, here one nothing listens on).
    contact = "sip:0611111111@192.0.2.1:5060"
    node.send(request("INVITE", contact, node, route=path), kamailio.port)
    invite = phone.next("INVITE")
    assert invite.source == (HOST, kamailio.port)
    assert invite.request_uri == contact
    assert any(f"{HOST}:{kamailio.port}" in rr for rr in invite.headers_named("Record-Route"))


def test_nothing_from_outside_is_relayed_but_to_a_node(
    setup: tuple[Kamailio, Peer, Peer, Peer],
) -> None:
    kamailio, node, phone, stranger = setup
    # A preloaded route towards a stranger is dropped: the INVITE goes to the node.
    route = f"<sip:{HOST}:{kamailio.port};lr>, <sip:{HOST}:{stranger.port};lr>"
    target = f"sip:victim@{HOST}:{stranger.port}"
    pai = "P-Asserted-Identity: <sip:0102030405@voip.test>\n"
    phone.send(request("INVITE", target, phone, route=route, extra=pai), kamailio.port)
    invite = node.next("INVITE")
    assert invite.request_uri == target
    # The nodes trust Kamailio: an identity asserted from outside does not pass.
    assert invite.header("P-Asserted-Identity") is None
    # An in-dialog request from outside to a stranger, along Kamailio: refused.
    phone.send(request("BYE", target, phone, to_tag="x1", route=route), kamailio.port)
    assert phone.next(403)
    # A node-less request pretending to come back along a Path: refused too.
    path = f"<sip:{HOST}:{kamailio.port};lr;received=sip:{HOST}:{stranger.port}>"
    phone.send(request("MESSAGE", target, phone, route=path), kamailio.port)
    assert node.next("MESSAGE").request_uri == target  # to the node, not the stranger
    assert stranger.nothing() == []
