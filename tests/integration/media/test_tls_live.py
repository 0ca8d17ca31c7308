"""SIP over TLS with the live server: phones registered over TLS, members called over TLS.

The server's certificate is the example one (self-signed, for 127.0.0.1); a
phone trusts it as its CA. Members the server calls at ``;transport=tls``
URIs present a certificate that ``server.tls.ca`` must vouch for: the example
one passes, a stranger's self-signed one is refused, and that member is then
skipped at once like an unreachable one.
"""

from __future__ import annotations

import re
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from huntgroup.engine.sip import digest as digest_auth
from tests.support.media_live_harness import (
    LOOPBACK,
    RtpSocket,
    ServerProcess,
    SipUA,
    answer_bye,
    answer_invite,
    await_answer,
    closing_all,
    invite_pilot,
    make_config,
    sdp_offer,
    start_server,
)
from tests.support.ports import free_port_range

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
CERT = ROOT / "examples" / "tls" / "example-cert.pem"
KEY = ROOT / "examples" / "tls" / "example-key.pem"
LINE, PASSWORD, DOMAIN = "0102030405", "tls-Pass-1", "test.invalid"


class TlsPhone:
    """A SIP peer on one TLS connection: sends messages, reads them back framed."""

    def __init__(self, sock: ssl.SSLSocket) -> None:
        self.sock = sock
        self.buffer = b""
        local = sock.getsockname()
        self.host, self.port = str(local[0]), int(local[1])

    @classmethod
    def connect(cls, port: int) -> TlsPhone:
        context = ssl.create_default_context(cafile=str(CERT))
        raw = socket.create_connection((LOOPBACK, port), timeout=5)
        return cls(context.wrap_socket(raw, server_hostname=LOOPBACK))

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read(self, timeout: float = 5.0) -> tuple[str, dict[str, str], bytes]:
        """The next message: start line, headers (lower-case names, first value), body."""
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in self.buffer or not self._complete():
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            chunk = self.sock.recv(65535)
            assert chunk, "the server closed the TLS connection"
            self.buffer += chunk
        head, _, rest = self.buffer.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers.setdefault(name.strip().lower(), value.strip())
        length = int(headers.get("content-length", "0"))
        body, self.buffer = rest[:length], rest[length:]
        return lines[0], headers, body

    def _complete(self) -> bool:
        head, _, rest = self.buffer.partition(b"\r\n\r\n")
        m = re.search(rb"(?im)^(?:content-length|l)\s*:\s*(\d+)", head)
        return len(rest) >= (int(m.group(1)) if m else 0)

    def close(self) -> None:
        self.sock.close()


def register(phone: TlsPhone, authorization: str | None, cseq: int) -> bytes:
    lines = [
        f"REGISTER sip:{DOMAIN} SIP/2.0",
        f"Via: SIP/2.0/TLS {phone.host}:{phone.port};branch=z9hG4bKtlsreg{cseq};rport",
        "Max-Forwards: 70",
        f"From: <sip:{LINE}@{DOMAIN}>;tag=reg1",
        f"To: <sip:{LINE}@{DOMAIN}>",
        "Call-ID: tls-register@test",
        f"CSeq: {cseq} REGISTER",
        f"Contact: <sip:{LINE}@{phone.host}:{phone.port};transport=tls>",
        "Expires: 300",
    ]
    if authorization:
        lines.append(f"Authorization: {authorization}")
    return ("\r\n".join([*lines, "Content-Length: 0", "", ""])).encode()


def digest(challenge: str, uri: str) -> str:
    return digest_auth.authorization(
        digest_auth.parse_challenge(challenge),
        username=LINE,
        password=PASSWORD,
        method="REGISTER",
        uri=uri,
        cnonce="c0ffee",
    )


def respond(phone: TlsPhone, headers: dict[str, str], status: str, body: bytes) -> None:
    lines = [f"SIP/2.0 {status}"]
    lines += [f"{name}: {headers[name.lower()]}" for name in ("Via", "From")]
    lines.append(f"To: {headers['to']};tag=tlsphone")
    lines += [f"{name}: {headers[name.lower()]}" for name in ("Call-ID", "CSeq")]
    lines.append(f"Contact: <sip:{LINE}@{phone.host}:{phone.port};transport=tls>")
    if body:
        lines.append("Content-Type: application/sdp")
    phone.send(("\r\n".join([*lines, f"Content-Length: {len(body)}", "", ""])).encode() + body)


def tls_port(server: ServerProcess) -> int:
    m = re.search(r"listening on tls:127\.0\.0\.1:(\d+)", server.log())
    assert m, server.log()
    return int(m.group(1))


def tls_config(members: list[dict[str, Any]], *, ca: Path | None = None) -> dict[str, Any]:
    config = make_config(rtp_ports=free_port_range(4), members=members)
    config["server"]["listen"].append(f"tls:{LOOPBACK}:0")
    config["server"]["tls"] = {"certificate": str(CERT), "private_key": str(KEY)}
    if ca is not None:
        config["server"]["tls"]["ca"] = str(ca)
    config["lines"] = [{"number": LINE, "password": PASSWORD}]
    config["server"]["digest_algorithms"] = ["MD5"]
    return config


def test_a_phone_registers_over_tls_and_is_called_back_on_its_connection(
    tmp_path: Path,
) -> None:
    server = start_server(tmp_path, tls_config([{"line": LINE, "position": 1}]))
    phone = TlsPhone.connect(tls_port(server))
    caller, caller_audio = SipUA("caller", server.sip), RtpSocket()
    with closing_all(phone, caller, caller_audio, server):
        phone.send(register(phone, None, 1))
        start, headers, _ = phone.read()
        assert start.startswith("SIP/2.0 401"), start
        phone.send(register(phone, digest(headers["www-authenticate"], f"sip:{DOMAIN}"), 2))
        start, headers, _ = phone.read()
        assert start.startswith("SIP/2.0 200"), start
        # A call to the group reaches the line over the TLS connection it registered on.
        call_id = invite_pilot(caller, caller_audio.port, ("PCMU",))
        start, invite, _ = phone.read()
        assert start.startswith("INVITE "), start
        assert invite["via"].startswith("SIP/2.0/TLS "), invite["via"]
        assert ";transport=tls" in invite["contact"]
        respond(phone, invite, "200 OK", sdp_offer(40000))
        start, _, _ = phone.read()
        assert start.startswith("ACK "), start
        call = await_answer(caller, call_id)
        call.hang_up()
        start, bye, _ = phone.read()
        assert start.startswith("BYE "), start
        respond(phone, bye, "200 OK", b"")


class TlsMember:
    """A member listening for TLS with ``cert``: answers the first INVITE it gets."""

    def __init__(self, cert: Path, key: Path) -> None:
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(str(cert), str(key))
        self.listener = socket.create_server((LOOPBACK, 0))
        self.listener.settimeout(10)
        self.port = int(self.listener.getsockname()[1])
        self.invites: list[str] = []
        self.handshake_errors: list[str] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        try:
            raw, _ = self.listener.accept()
        except OSError:
            return
        try:
            sock = self.context.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError) as err:
            self.handshake_errors.append(str(err))
            raw.close()
            return
        phone = TlsPhone(sock)
        try:
            start, headers, _ = phone.read(timeout=10)
            self.invites.append(start)
            respond(phone, headers, "200 OK", sdp_offer(40002))
            phone.read(timeout=10)  # ACK
            start, headers, _ = phone.read(timeout=30)  # BYE
            respond(phone, headers, "200 OK", b"")
        except (OSError, AssertionError):
            pass
        finally:
            phone.close()

    def close(self) -> None:
        self.listener.close()
        self._thread.join(timeout=5)


@pytest.fixture
def stranger_cert(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """A self-signed certificate for 127.0.0.1 that the server has no reason to trust."""
    cert, key = tmp_path / "stranger.pem", tmp_path / "stranger-key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-days", "2", "-subj", "/CN=stranger",
            "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    yield cert, key


def test_a_member_is_called_over_tls_when_its_certificate_is_trusted(tmp_path: Path) -> None:
    member = TlsMember(CERT, KEY)
    uri = f"sip:agent@{LOOPBACK}:{member.port};transport=tls"
    server = start_server(tmp_path, tls_config([{"uri": uri, "position": 1}], ca=CERT))
    caller, caller_audio = SipUA("caller", server.sip), RtpSocket()
    with closing_all(caller, caller_audio, member, server):
        call_id = invite_pilot(caller, caller_audio.port, ("PCMU",))
        call = await_answer(caller, call_id, timeout=10)
        call.hang_up()
    assert member.invites and member.invites[0].startswith("INVITE sip:agent@127.0.0.1")


def test_a_member_with_an_untrusted_certificate_is_skipped_at_once(
    tmp_path: Path, stranger_cert: tuple[Path, Path]
) -> None:
    stranger = TlsMember(*stranger_cert)
    backup = SipUA("backup", ("0.0.0.0", 0))
    members = [
        {"uri": f"sip:agent@{LOOPBACK}:{stranger.port};transport=tls", "position": 1},
        {"uri": f"sip:backup@{LOOPBACK}:{backup.port}", "position": 2},
    ]
    config = tls_config(members, ca=CERT)
    config["groups"][0]["no_answer_timeout"] = 20
    server = start_server(tmp_path, config)
    caller, caller_audio, backup_audio = SipUA("caller", server.sip), RtpSocket(), RtpSocket()
    with closing_all(caller, caller_audio, backup_audio, backup, stranger, server):
        call_id = invite_pilot(caller, caller_audio.port, ("PCMU",))
        invite, _ = answer_invite(backup, backup_audio.port, timeout=10)
        call = await_answer(caller, call_id)
        call.hang_up()
        answer_bye(backup, invite.call_id)
    assert not stranger.invites, "an INVITE went to a peer whose certificate is not trusted"
    assert "TLS connection to 127.0.0.1" in server.log() and "CERTIFICATE_VERIFY_FAILED" in (
        server.log()
    )
