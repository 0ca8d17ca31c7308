"""Path (RFC 3327): a REGISTER through a trusted proxy is reached back through it."""

from __future__ import annotations

from huntgroup.config.models import Config
from huntgroup.engine.sip.address import Peer
from huntgroup.engine.sip.extensions import SUPPORTED
from tests.engine.b2bua.test_b2bua_lines import register
from tests.support.b2bua_peers import (
    CALLER_NUMBER,
    LINE_A,
    PASSWORD,
    Network,
    Phone,
    make_config,
    response_bytes,
)

PROXY = "127.0.0.2"
PATH = f"<sip:{PROXY}:5070;lr>"


def trusting() -> Config:
    config = make_config("linear", members=1, member_lines=[LINE_A])
    server = config.server.model_copy(update={"trusted_peers": (PROXY,)})
    return config.model_copy(update={"server": server})


def world(config: Config) -> tuple[Network, Phone, Phone]:
    """The B2BUA, a proxy at 127.0.0.2:5070 relaying LINE_A's REGISTERs, and a caller."""
    net = Network(config)
    proxy = Phone(net, "proxy", 5070, LINE_A)
    proxy.peer = Peer(PROXY, 5070, "UDP")
    net.phones[(PROXY, 5070)] = proxy
    caller = net.phone("caller", 6000, CALLER_NUMBER)
    return net, proxy, caller


def test_path_is_stored_echoed_to_a_phone_supporting_it_and_routes_the_calls() -> None:
    net, proxy, caller = world(trusting())
    ok = register(proxy, LINE_A, PASSWORD, extra=(("Supported", "path"), ("Path", PATH)))
    assert ok.status == 200
    assert ok.headers.get_all("Path") == [PATH]  # RFC 3327 §5.3
    (binding,) = net.b2b.registrar.contacts(LINE_A, now=net.now)
    assert binding.path == (PATH,)
    caller.invite(LINE_A)
    invite = proxy.request("INVITE")  # sent to the first Path URI, not to the contact
    assert str(invite.uri) == f"sip:{LINE_A}@127.0.0.1:5070"
    assert invite.headers.get_all("Route") == [PATH]
    assert [t.destination for _, t in net.transmits if t.data.startswith(b"INVITE")] == [
        Peer(PROXY, 5070, "UDP")
    ]


def test_the_cancel_of_a_call_through_a_path_takes_the_same_route() -> None:
    _net, proxy, caller = world(trusting())
    register(proxy, LINE_A, PASSWORD, extra=(("Path", PATH),))
    call = caller.invite(LINE_A)
    invite = proxy.request("INVITE")
    proxy.answering(invite).reply(180)
    call.cancel()
    cancel = proxy.request("CANCEL")  # RFC 3261 §9.1: the INVITE's Route set
    assert cancel.headers.get_all("Route") == [PATH]
    assert str(cancel.uri) == str(invite.uri)


def test_path_is_stored_but_not_echoed_to_a_phone_not_supporting_it() -> None:
    net, proxy, _ = world(trusting())
    ok = register(proxy, LINE_A, PASSWORD, extra=(("Path", PATH),))
    assert ok.status == 200
    assert ok.headers.get_all("Path") == []
    assert [b.path for b in net.b2b.registrar.contacts(LINE_A, now=net.now)] == [(PATH,)]


def test_a_path_from_an_untrusted_host_is_refused() -> None:
    net, proxy, _ = world(make_config("linear", members=1, member_lines=[LINE_A]))
    ok = register(proxy, LINE_A, PASSWORD, extra=(("Path", PATH),))
    assert ok.status == 403
    assert not net.b2b.registrar.contacts(LINE_A, now=net.now)


def test_a_path_that_is_no_sip_address_or_too_long_is_a_400() -> None:
    for path in (("<tel:+33100000000>",), ("<sip:x;lr",), (PATH,) * 9):
        net, proxy, _ = world(trusting())
        ok = register(proxy, LINE_A, PASSWORD, extra=tuple(("Path", p) for p in path))
        assert ok.status == 400, path
        assert not net.b2b.registrar.contacts(LINE_A, now=net.now)


def test_path_is_supported() -> None:
    assert "path" in SUPPORTED


def test_a_phone_registered_through_a_path_is_watched_through_it() -> None:
    """Phone watching (dialog events) of a Path binding: the SUBSCRIBE and its refreshes
    go to the first Path hop with the Path as Route set (no Record-Route came back)."""
    net, proxy, _ = world(trusting())
    extra = (("Path", PATH), ("Allow-Events", "dialog"))
    assert register(proxy, LINE_A, PASSWORD, extra=extra).status == 200
    subscribe = proxy.request("SUBSCRIBE")
    assert subscribe.headers.get_all("Route") == [PATH]
    assert str(subscribe.uri) == f"sip:{LINE_A}@127.0.0.1:5070"
    proxy.send(
        response_bytes(
            subscribe, 200, "OK", to_tag="ph1", contact=proxy.contact, extra=[("Expires", "300")]
        )
    )
    net.advance(250)
    again = proxy.request("SUBSCRIBE")
    assert again.to.tag == "ph1" and again.headers.get_all("Route") == [PATH]
    sent = [t.destination for _, t in net.transmits if t.data.startswith(b"SUBSCRIBE")]
    assert set(sent) == {Peer(PROXY, 5070, "UDP")}  # the first, its refresh (retransmitted)
