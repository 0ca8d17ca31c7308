"""A real softphone: baresip registers with digest auth and auto-answers.

Without the server, baresip registers to a stand-in registrar built on
huntgroup's digest module and answers a SIPp caller (proves the generated
configuration). With the server (needs_server), it registers to huntgroup and
answers a call that reaches it through a group.

baresip 1.0 (libre) answers only MD5 digests and gives up ("Function not
implemented") when a challenge set contains SHA-256: its line stores only
``ha1_md5``, so that the server challenges it with MD5 alone.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.ports import PortAllocator
from tests.support.sip_harness import (
    DOMAIN,
    Baresip,
    DigestRegistrar,
    HuntgroupServer,
    Sipp,
    group,
    server_config,
)

pytestmark = pytest.mark.integration

LINE = "0102030405"
PASSWORD = "s3cret"
PILOT = "0140000000"


@pytest.fixture
def registrars() -> Iterator[list[DigestRegistrar]]:
    made: list[DigestRegistrar] = []
    yield made
    for registrar in made:
        registrar.close()


def _phone(tmp_path: Path, ports: PortAllocator, registrar_port: int) -> Baresip:
    return Baresip(
        workdir=tmp_path / "baresip",
        number=LINE,
        password=PASSWORD,
        registrar_port=registrar_port,
        sip_port=ports.port(),
    )


def test_baresip_registers_with_md5_digest_and_auto_answers(
    tmp_path: Path,
    ports: PortAllocator,
    sipp: Sipp,
    registrars: list[DigestRegistrar],
    baresips: list[Baresip],  # after registrars: the phone unregisters before they close
) -> None:
    registrar = DigestRegistrar(ports.port(), ["MD5"], PASSWORD)
    registrars.append(registrar)
    phone = _phone(tmp_path, ports, registrar.port)
    baresips.append(phone.start())
    phone.wait_registered()
    assert registrar.outcomes[0][0] == "MD5" and registrar.outcomes[0][2] == "ok"
    assert f"@127.0.0.1:{phone.sip_port}" in registrar.contacts[0]

    caller = sipp.call("caller", phone.sip_port, LINE, duration_ms=800)
    caller.expect_success()
    assert caller.final_status() == 200
    ok = caller.received(200)[0]
    assert "baresip" in (ok.header("Server") or ok.header("User-Agent") or "")
    assert "PCMU/8000" in ok.body
    assert "Call established" in phone.log()


def test_baresip_cannot_answer_a_sha256_first_challenge(
    tmp_path: Path,
    ports: PortAllocator,
    registrars: list[DigestRegistrar],
    baresips: list[Baresip],
) -> None:
    """Documents baresip 1.0: a challenge set listing SHA-256 makes it give up."""
    registrar = DigestRegistrar(ports.port(), ["SHA-256", "MD5"], PASSWORD)
    registrars.append(registrar)
    phone = _phone(tmp_path, ports, registrar.port)
    baresips.append(phone.start())
    with pytest.raises(AssertionError, match="did not register"):
        phone.wait_registered(attempts=30)
    assert registrar.outcomes == []


@pytest.mark.needs_server
def test_baresip_registers_to_huntgroup_and_answers_a_group_call(
    tmp_path: Path,
    ports: PortAllocator,
    sipp: Sipp,
    baresips: list[Baresip],
    start_server: Callable[[dict[str, Any]], HuntgroupServer],
) -> None:
    ha1 = hashlib.md5(f"{LINE}:{DOMAIN}:{PASSWORD}".encode()).hexdigest()
    config = server_config(
        ports,
        lines=[{"number": LINE, "name": "baresip", "ha1_md5": ha1}],
        groups=[group("G", PILOT, "linear", [LINE], no_answer_timeout=5)],
    )
    server = start_server(config)
    phone = _phone(tmp_path, ports, server.port)
    baresips.append(phone.start())
    phone.wait_registered()

    caller = sipp.call("caller", server.port, PILOT, duration_ms=1000)
    caller.expect_success()
    assert caller.final_status() == 200
    assert "Call established" in phone.log()
