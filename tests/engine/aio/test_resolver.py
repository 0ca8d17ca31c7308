"""HostResolver: names resolved off the loop, once per name at a time, cached, failures too."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from huntgroup.engine.aio.resolver import MAX_WAITING, HostResolver, is_address
from tests.support.waiting import async_wait_until

V4 = (socket.AF_INET, socket.SOCK_DGRAM, 17, "", ("192.0.2.10", 0))
V6 = (socket.AF_INET6, socket.SOCK_DGRAM, 17, "", ("2001:db8::10", 0, 0, 0))


class FakeDns:
    """Stands for loop.getaddrinfo: counts lookups, answers after a tick, or fails."""

    def __init__(self, answers: dict[str, list[Any]]) -> None:
        self.answers = answers
        self.lookups: list[str] = []

    async def __call__(self, host: str, port: Any, **_: Any) -> list[Any]:
        self.lookups.append(host)
        await asyncio.sleep(0)
        if host not in self.answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return self.answers[host]


def run(body: Any) -> None:
    asyncio.run(body())


def collect(resolver: HostResolver, host: str, out: list[str]) -> None:
    resolver.resolve(host, out.append, lambda: out.append("FAILED"))


def test_one_lookup_per_name_serves_every_waiting_datagram_in_order() -> None:
    async def body() -> None:
        loop = asyncio.get_running_loop()
        dns = FakeDns({"pbx.example": [V6, V4]})
        loop.getaddrinfo = dns  # type: ignore[method-assign]
        resolver = HostResolver(loop, [socket.AF_INET, socket.AF_INET6])
        out: list[str] = []
        for _ in range(3):
            collect(resolver, "pbx.example", out)
        assert out == [], "nothing is sent before the answer"
        await async_wait_until(lambda: len(out) == 3, timeout=10)
        assert out == ["192.0.2.10"] * 3, "IPv4 preferred, every datagram delivered"
        collect(resolver, "pbx.example", out)
        assert out[-1] == "192.0.2.10" and dns.lookups == ["pbx.example"], "cached"

    run(body)


def test_a_name_that_does_not_resolve_fails_its_datagrams_and_is_remembered() -> None:
    async def body() -> None:
        loop = asyncio.get_running_loop()
        dns = FakeDns({})
        loop.getaddrinfo = dns  # type: ignore[method-assign]
        resolver = HostResolver(loop, [socket.AF_INET], negative_ttl=0.05)
        out: list[str] = []
        collect(resolver, "dead.invalid", out)
        collect(resolver, "dead.invalid", out)
        await async_wait_until(lambda: len(out) == 2, timeout=10)
        assert out == ["FAILED", "FAILED"]
        collect(resolver, "dead.invalid", out)
        assert out[-1] == "FAILED" and dns.lookups == ["dead.invalid"], "negative cache"
        await asyncio.sleep(0.06)  # the behaviour: the negative entry (0.05 s) expires
        collect(resolver, "dead.invalid", out)
        await async_wait_until(lambda: len(out) == 4, timeout=10)
        assert dns.lookups == ["dead.invalid"] * 2, "looked up again once expired"

    run(body)


def test_only_families_the_server_sends_from_and_a_bounded_wait() -> None:
    async def body() -> None:
        loop = asyncio.get_running_loop()
        loop.getaddrinfo = FakeDns({"v6only.example": [V6]})  # type: ignore[method-assign]
        resolver = HostResolver(loop, [socket.AF_INET])
        out: list[str] = []
        for _ in range(MAX_WAITING + 2):
            collect(resolver, "v6only.example", out)
        assert out == ["FAILED", "FAILED"], "beyond the bound, datagrams fail at once"
        await async_wait_until(lambda: len(out) == MAX_WAITING + 2, timeout=10)
        assert out == ["FAILED"] * (MAX_WAITING + 2), "no IPv4 address: undeliverable"

    run(body)


def test_addresses_are_told_from_names() -> None:
    assert is_address("127.0.0.1") and is_address("::1") and is_address("2001:db8::1")
    assert not is_address("localhost") and not is_address("pbx.example.net")
