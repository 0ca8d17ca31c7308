"""Supervision keys: SUBSCRIBE to the dialog event package (RFC 4235 over RFC 6665)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from huntgroup.config.models import Config, SubscriptionsConfig
from huntgroup.engine.sip.dialog_info import parse
from huntgroup.engine.sip.message import Request, Response
from tests.engine.b2bua.test_b2bua_lines import register
from tests.support.b2bua_peers import (
    CALLER_NUMBER,
    DOMAIN,
    HOST,
    LINE_A,
    LINE_B,
    PASSWORD,
    PILOT,
    Network,
    Phone,
    allow_of,
    build,
    digest_authorization,
    make_config,
    response_bytes,
)


@dataclass
class Watcher:
    """A phone's BLF key: one subscription dialog to ``target``."""

    phone: Phone
    target: str
    call_id: str
    tag: str
    cseq: int = 0
    remote_tag: str | None = None
    notifies: list[Request] = field(default_factory=list)

    def send(
        self,
        *,
        expires: int | None = 600,
        event: str = "dialog",
        accept: str | None = "application/dialog-info+xml",
        authorization: str | None = None,
        header: str = "Proxy-Authorization",
    ) -> list[object]:
        self.cseq += 1
        uri = f"sip:{self.target}@{DOMAIN}"
        to = f"<{uri}>" + (f";tag={self.remote_tag}" if self.remote_tag else "")
        headers = [
            ("Via", self.phone.via(self.phone.branch())),
            ("Max-Forwards", "70"),
            ("From", f"<sip:{self.phone.user}@{DOMAIN}>;tag={self.tag}"),
            ("To", to),
            ("Call-ID", self.call_id),
            ("CSeq", f"{self.cseq} SUBSCRIBE"),
            ("Contact", self.phone.contact),
            ("Event", event),
        ]
        if expires is not None:
            headers.append(("Expires", str(expires)))
        if accept is not None:
            headers.append(("Accept", accept))
        if authorization is not None:
            headers.append((header, authorization))
        return list(self.phone.send(build(f"SUBSCRIBE {uri} SIP/2.0", headers)))

    def subscribe(self, *, expires: int | None = 600, password: str = PASSWORD) -> Response:
        """SUBSCRIBE, answer the challenge, return the final response."""
        self.send(expires=expires)
        challenge = self.phone.response(407, "SUBSCRIBE")
        value = challenge.headers.get_all("Proxy-Authenticate")[0]
        auth = digest_authorization(
            value,
            username=self.phone.user,
            password=password,
            method="SUBSCRIBE",
            uri=f"sip:{self.target}@{DOMAIN}",
        )
        self.send(expires=expires, authorization=auth)
        final = final_response(self.phone, "SUBSCRIBE")
        if 200 <= final.status < 300:
            self.remote_tag = final.to.tag
        return final

    def notify(self, status: int = 200) -> Request:
        """Take the next NOTIFY and answer it with ``status``."""
        request = self.phone.request("NOTIFY")
        self.notifies.append(request)
        data = response_bytes(request, status, "OK" if status == 200 else "Nope")
        self.phone.send(data)
        return request


def final_response(phone: Phone, method: str) -> Response:
    """The first final response to ``method`` in ``phone``'s inbox (taken)."""
    for i, item in enumerate(phone.inbox):
        message = item.message
        if (
            isinstance(message, Response)
            and message.cseq.method == method
            and message.status >= 200
        ):
            del phone.inbox[i]
            return message
    raise AssertionError(f"{phone.name}: no final response to {method} in {phone.summary()}")


def states(notify: Request) -> list[tuple[str, str | None]]:
    """(state, direction) of each dialog of a NOTIFY's document."""
    info = parse(notify.body)
    assert info.full
    return [(d.state, d.direction) for d in info.dialogs]


def world(config: Config | None = None, **settings: object) -> tuple[Network, Phone, Phone, Phone]:
    cfg = config or make_config("linear", members=0, member_lines=[LINE_A])
    if settings:
        subs = SubscriptionsConfig(**settings)  # type: ignore[arg-type]
        cfg = cfg.model_copy(
            update={"server": cfg.server.model_copy(update={"subscriptions": subs})}
        )
    net = Network(cfg)
    alice = net.phone("alice", 7101, LINE_A)
    bob = net.phone("bob", 7102, LINE_B)
    caller = net.phone("caller", 6000, CALLER_NUMBER)
    return net, alice, bob, caller


def watch(bob: Phone, target: str, n: int = 1, **kw: object) -> Watcher:
    w = Watcher(bob, target, call_id=f"blf-{target}-{n}@test", tag=f"w{n}")
    ok = w.subscribe(**kw)  # type: ignore[arg-type]
    assert ok.status == 200, ok.status
    return w


# ------------------------------------------------------------------ the document


def test_the_first_notify_follows_the_200_with_the_idle_full_state() -> None:
    _net, _alice, bob, _ = world()
    w = Watcher(bob, LINE_A, call_id="blf@test", tag="w1")
    ok = w.subscribe(expires=600)
    assert ok.headers.get("Expires") == "600"
    assert ok.headers.get("Contact")
    first = w.notify()
    assert first.headers.get("Event") == "dialog"
    assert first.headers.get("Subscription-State") == "active;expires=600"
    assert first.headers.get("Content-Type") == "application/dialog-info+xml"
    assert first.headers.get("Contact")
    assert first.call_id == "blf@test" and first.to.tag == "w1"
    info = parse(first.body)
    assert info.version == 0 and info.dialogs == ()
    assert f'entity="sip:{LINE_A}@{DOMAIN}"' in first.body.decode()
    bob.quiet()


def test_a_line_goes_early_confirmed_then_terminated_and_idle() -> None:
    net, alice, bob, caller = world()
    register(alice, LINE_A, PASSWORD)
    alice.drop()
    w = watch(bob, LINE_A)
    w.notify()
    call = caller.invite(PILOT)
    invite = alice.request("INVITE")
    assert states(w.notify()) == [("early", "recipient")]
    leg = alice.answering(invite)
    leg.reply(180)
    bob.quiet()  # 180 changes nothing the key shows
    leg.reply(200)
    alice.request("ACK")
    call.ack(caller.response(200))
    answered = w.notify()
    assert states(answered) == [("confirmed", "recipient")]
    leg.bye()
    ended = w.notify()
    assert states(ended) == [("terminated", "recipient")]
    net.advance(1)
    bob.quiet()
    versions = [parse(n.body).version for n in w.notifies]
    assert versions == [0, 1, 2, 3]


def test_outside_callers_are_not_shown_by_default() -> None:
    _net, alice, bob, caller = world(make_config("linear", members=0, member_lines=[LINE_A]))
    register(alice, LINE_A, PASSWORD)
    alice.drop()
    w = watch(bob, LINE_A)
    w.notify()
    caller.invite(PILOT)
    alice.request("INVITE")
    body = w.notify().body.decode()
    assert "<remote>" not in body and CALLER_NUMBER not in body


def test_show_remote_all_shows_outside_callers_unless_private() -> None:
    net, alice, bob, caller = world(show_remote="all")
    register(alice, LINE_A, PASSWORD)
    alice.drop()
    w = watch(bob, LINE_A)
    w.notify()
    caller.invite(PILOT, display="Jo")
    alice.request("INVITE")
    body = w.notify().body.decode()
    assert f'<identity display="Jo">sip:{CALLER_NUMBER}@{DOMAIN}</identity>' in body
    p = watch(bob, PILOT, n=2)
    p.notify()
    hidden = net.phone("hidden", 6002, "0677777777")
    hidden.invite(PILOT, extra=[("Privacy", "id")])  # alice is busy: it waits
    body = p.notify().body.decode()
    assert body.count("<dialog ") == 2 and body.count("<remote>") == 1  # Jo's only


def test_a_line_placing_a_call_is_the_initiator_and_lines_are_shown() -> None:
    _net, alice, bob, _caller = world()
    register(alice, LINE_A, PASSWORD)
    register(bob, LINE_B, PASSWORD, call_id="reg-b@test")
    alice.drop()
    bob.drop()
    on_bob = watch(alice, LINE_B)  # alice's key for bob
    on_bob.notify()
    on_alice = watch(bob, LINE_A, n=2)  # bob's key for alice
    on_alice.notify()
    bob.invite(PILOT)  # from bob's registered address: the call is his line's
    alice.request("INVITE")
    placed = on_bob.notify()
    assert states(placed) == [("early", "initiator")]
    assert f"<identity>sip:{PILOT}@{DOMAIN}</identity>" in placed.body.decode()
    rung = on_alice.notify()
    assert states(rung) == [("early", "recipient")]
    assert f'<identity display="">sip:{LINE_B}@{DOMAIN}' not in rung.body.decode()
    assert f"sip:{LINE_B}@{DOMAIN}</identity>" in rung.body.decode()


def test_a_pilot_shows_one_early_dialog_per_waiting_caller() -> None:
    net, alice, bob, caller = world(make_config("linear", members=0, member_lines=[LINE_A]))
    register(alice, LINE_A, PASSWORD)
    alice.drop()
    w = watch(bob, PILOT)
    assert parse(w.notify().body).dialogs == ()
    talking = caller.invite(PILOT)  # rings alice: waiting for the group
    invite = alice.request("INVITE")
    assert states(w.notify()) == [("early", "recipient")]
    leg = alice.answering(invite)
    leg.reply(200)
    alice.request("ACK")
    talking.ack(caller.response(200))
    assert states(w.notify()) == [("terminated", "recipient")]  # alice's call now
    waiting = net.phone("second", 6001, "0699999991")
    second = waiting.invite(PILOT)  # alice busy: queued, answered with music
    second.ack(waiting.response(200))
    assert states(w.notify()) == [("early", "recipient")]
    assert len(net.b2b.core.queue("Support")) == 1
    net.phone("third", 6003, "0699999993").invite(PILOT)
    assert states(w.notify()) == [("early", "recipient")] * 2
    second.bye()  # hangs up while waiting
    assert sorted(states(w.notify())) == [("early", "recipient"), ("terminated", "recipient")]


# ------------------------------------------------------------------ the subscription


def test_refresh_rearms_and_unsubscribe_ends_with_terminated() -> None:
    net, _alice, bob, _ = world()
    w = watch(bob, LINE_A, expires=120)
    w.notify()
    assert net.b2b.gauges()["subscriptions"] == 1
    net.advance(100)
    w.send(expires=300)
    ok = bob.response(200, "SUBSCRIBE")
    assert ok.headers.get("Expires") == "300"
    assert w.notify().headers.get("Subscription-State") == "active;expires=300"
    net.advance(250)
    bob.quiet()  # not expired: the refresh moved the end
    w.send(expires=0)
    bob.response(200, "SUBSCRIBE")
    final = w.notify()
    assert final.headers.get("Subscription-State") == "terminated;reason=timeout"
    assert len(net.b2b.subscriptions) == 0
    assert net.b2b.gauges()["subscriptions"] == 0
    net.advance(1000)
    bob.quiet()


def test_a_subscription_not_refreshed_ends_on_its_timer() -> None:
    net, _alice, bob, _ = world()
    w = watch(bob, LINE_A, expires=120)
    w.notify()
    net.advance(119)
    bob.quiet()
    net.advance(2)
    assert w.notify().headers.get("Subscription-State") == "terminated;reason=timeout"
    assert len(net.b2b.subscriptions) == 0
    assert net.b2b.subscriptions.get_timer() is None


def test_a_notify_answered_481_or_unanswered_removes_the_subscription() -> None:
    net, alice, bob, caller = world()
    w = watch(bob, LINE_A)
    w.notify(481)
    assert len(net.b2b.subscriptions) == 0
    w2 = watch(bob, LINE_A, n=2)
    bob.request("NOTIFY")  # never answered: the transaction times out (timer F)
    net.advance(40)
    assert len(net.b2b.subscriptions) == 0
    del w2, alice, caller


def test_notifies_coalesce_while_one_is_in_flight() -> None:
    net, alice, bob, caller = world()
    register(alice, LINE_A, PASSWORD)
    alice.drop()
    w = watch(bob, LINE_A)
    w.notify()
    call = caller.invite(PILOT)
    invite = alice.request("INVITE")
    pending = bob.request("NOTIFY")  # early: not answered yet
    leg = alice.answering(invite)
    leg.reply(200)
    alice.request("ACK")
    call.ack(caller.response(200))
    leg.bye()  # early, confirmed, terminated: one NOTIFY in flight meanwhile
    assert not bob.has("NOTIFY")
    bob.send(response_bytes(pending, 200, "OK"))
    latest = w.notify()
    assert states(latest) == [("terminated", "recipient")]
    net.advance(1)
    bob.quiet()


def test_refusals_other_event_accept_brief_unknown_target() -> None:
    net, _alice, bob, _ = world()
    w = Watcher(bob, LINE_A, call_id="e@test", tag="t")
    w.send(event="presence")
    bad = bob.response(489, "SUBSCRIBE")
    assert bad.headers.get("Allow-Events") == "dialog"
    w.send(accept="application/pidf+xml")
    bob.response(415, "SUBSCRIBE")
    assert watch_status(bob, LINE_A, expires=10) == 423
    assert watch_status(bob, "0199999999") == 404
    assert len(net.b2b.subscriptions) == 0


def watch_status(phone: Phone, target: str, **kw: object) -> int:
    w = Watcher(phone, target, call_id=f"x-{target}-{phone.new_id('c')}@test", tag="x")
    final = w.subscribe(**kw)  # type: ignore[arg-type]
    if final.status == 423:
        assert final.headers.get("Min-Expires") == "60"
    return final.status


def test_unauthenticated_or_wrong_password_never_subscribes() -> None:
    net, _alice, bob, _ = world()
    w = Watcher(bob, LINE_A, call_id="u@test", tag="t")
    w.send()
    challenge = bob.response(407, "SUBSCRIBE")
    assert challenge.headers.get_all("Proxy-Authenticate")
    w2 = Watcher(bob, LINE_A, call_id="u2@test", tag="t2")
    assert w2.subscribe(password="wrong").status == 403
    stranger = net.phone("x", 7200, "0188888888")  # no line: challenged, then refused
    assert Watcher(stranger, LINE_A, "s@test", "s").subscribe().status == 403
    assert len(net.b2b.subscriptions) == 0


def test_www_authenticate_answers_are_taken_too() -> None:
    _net, _alice, bob, _ = world()
    w = Watcher(bob, LINE_A, call_id="w@test", tag="t")
    w.send()
    challenge = bob.response(407, "SUBSCRIBE")
    auth = digest_authorization(
        challenge.headers.get_all("Proxy-Authenticate")[0],
        username=LINE_B,
        password=PASSWORD,
        method="SUBSCRIBE",
        uri=f"sip:{LINE_A}@{DOMAIN}",
    )
    w.send(authorization=auth, header="Authorization")
    assert final_response(bob, "SUBSCRIBE").status == 200


def test_the_table_and_each_line_are_bounded() -> None:
    net, alice, bob, _ = world(max_per_line=2, max_subscriptions=3)
    watch(bob, LINE_A, n=1)
    watch(bob, PILOT, n=2)
    assert watch_status(bob, LINE_A) == 403  # bob's third key
    watch(alice, LINE_B, n=4)
    assert watch_status(alice, PILOT) == 503  # the node's fourth
    assert len(net.b2b.subscriptions) == 3


def test_expires_above_the_maximum_is_cut_down_and_zero_is_a_fetch() -> None:
    net, _alice, bob, _ = world()
    w = Watcher(bob, LINE_A, call_id="m@test", tag="t")
    assert w.subscribe(expires=99999).headers.get("Expires") == "3600"
    w.notify()
    f = Watcher(bob, LINE_A, call_id="f@test", tag="f")
    assert f.subscribe(expires=0).headers.get("Expires") == "0"
    fetched = f.notify()
    assert fetched.headers.get("Subscription-State") == "terminated;reason=timeout"
    assert len(net.b2b.subscriptions) == 1


def test_options_names_the_methods_and_the_package() -> None:
    _net, _alice, bob, _ = world()
    bob.simple("OPTIONS", f"sip:{DOMAIN}")
    ok = bob.response(200, "OPTIONS")
    assert {"SUBSCRIBE", "NOTIFY"} <= allow_of(ok)
    assert ok.headers.get("Allow-Events") == "dialog"


def test_a_stray_notify_or_in_dialog_subscribe_gets_481() -> None:
    _net, _alice, bob, _ = world()
    bob.simple("NOTIFY", f"sip:{DOMAIN}", extra=[("Event", "dialog")])
    bob.response(481, "NOTIFY")
    bob.simple("SUBSCRIBE", f"sip:{LINE_A}@{DOMAIN}", to_tag="nope", extra=[("Event", "dialog")])
    bob.response(481, "SUBSCRIBE")


def test_disabled_answers_489() -> None:
    _net, _alice, bob, _ = world(enabled=False)
    Watcher(bob, LINE_A, call_id="d@test", tag="t").send()
    bob.response(489, "SUBSCRIBE")


def test_the_xml_of_a_ringing_line_reads_as_rfc_4235() -> None:
    _net, alice, bob, caller = world()
    register(alice, LINE_A, PASSWORD)
    alice.drop()
    w = watch(bob, LINE_A)
    w.notify()
    caller.invite(PILOT)
    body = w.notify().body.decode()
    assert re.search(
        r'<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="1" state="full" '
        rf'entity="sip:{LINE_A}@{DOMAIN}">\s*<dialog id="[^"]+" direction="recipient">\s*'
        r"<state>early</state>",
        body,
    ), body
    assert HOST not in body  # no address or Call-ID of the call is published


def test_a_reload_that_removes_the_watched_line_ends_with_noresource() -> None:
    net, _alice, bob, _ = world()
    w = watch(bob, LINE_A)
    w.notify()
    smaller = net.config.model_copy(
        update={
            "lines": tuple(x for x in net.config.lines if x.number != LINE_A),
            "groups": (),
        }
    )
    net._route(net.b2b.reload(smaller, now=net.now))
    final = w.notify()
    assert final.headers.get("Subscription-State") == "terminated;reason=noresource"
    assert len(net.b2b.subscriptions) == 0


def test_draining_ends_every_subscription_deactivated_and_refuses_new_ones() -> None:
    net, _alice, bob, _ = world()
    w = watch(bob, LINE_A)
    w.notify()
    net.shutdown(30)
    assert w.notify().headers.get("Subscription-State") == "terminated;reason=deactivated"
    Watcher(bob, PILOT, call_id="late@test", tag="l").send()
    bob.response(503, "SUBSCRIBE")


def test_no_phone_is_subscribed_to_unless_watch_phones() -> None:
    net, alice, _bob, _ = world()
    register(alice, LINE_A, PASSWORD)
    net._route(net.b2b.reload(net.config, now=net.now))
    net.advance(4000)
    assert not alice.has("SUBSCRIBE")
    assert not any(b"SUBSCRIBE" in t.data[:10] for _, t in net.transmits)


def test_a_trusted_peer_subscribes_for_the_line_it_asserts() -> None:
    cfg = make_config("linear", members=0, member_lines=[LINE_A])
    cfg = cfg.model_copy(
        update={"server": cfg.server.model_copy(update={"trusted_peers": ("127.0.0.1",)})}
    )
    _net, _alice, bob, _ = world(cfg)
    sbc = Watcher(bob, LINE_A, call_id="sbc@test", tag="s")
    bob.send(
        build(
            f"SUBSCRIBE sip:{LINE_A}@{DOMAIN} SIP/2.0",
            [
                ("Via", bob.via(bob.branch())),
                ("Max-Forwards", "70"),
                ("From", f"<sip:{LINE_B}@{DOMAIN}>;tag=s"),
                ("To", f"<sip:{LINE_A}@{DOMAIN}>"),
                ("Call-ID", "sbc@test"),
                ("CSeq", "1 SUBSCRIBE"),
                ("Contact", bob.contact),
                ("Event", "dialog"),
                ("P-Asserted-Identity", f"<sip:{LINE_B}@{DOMAIN}>"),
            ],
        )
    )
    assert final_response(bob, "SUBSCRIBE").status == 200
    assert sbc.notify().headers.get("Subscription-State") == "active;expires=600"
    Watcher(bob, LINE_A, call_id="nopai@test", tag="n").send()  # no PAI: digest as usual
    bob.response(407, "SUBSCRIBE")


def test_a_line_that_asked_for_privacy_is_not_shown() -> None:
    _net, alice, bob, _ = world()
    register(alice, LINE_A, PASSWORD)
    register(bob, LINE_B, PASSWORD, call_id="reg-b@test")
    alice.drop()
    bob.drop()
    on_alice = watch(bob, LINE_A)
    on_alice.notify()
    bob.invite(PILOT, extra=[("Privacy", "id")])
    alice.request("INVITE")
    assert "<remote>" not in on_alice.notify().body.decode()
