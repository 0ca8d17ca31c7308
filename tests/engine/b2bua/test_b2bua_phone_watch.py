"""The server's subscriptions to members' phones: their own calls feed LineActivity."""

from __future__ import annotations

import pytest

from huntgroup.engine.sip.message import Request
from huntgroup.queue.events import Event, LineActivity
from tests.engine.b2bua.test_b2bua_lines import register
from tests.engine.b2bua.test_b2bua_subscriptions import world
from tests.support.b2bua_peers import (
    DOMAIN,
    LINE_A,
    PASSWORD,
    PILOT,
    Network,
    Phone,
    build,
    response_bytes,
)

# spy() replaces the core's handle on the instance: a compiled RoutingCore has no instance
# dict to take it (scripts/test_native.sh leaves these out; they run interpreted)
pytestmark = pytest.mark.native_incompatible

FOREIGN = "elsewhere-1@phone"


def spy(net: Network) -> list[Event]:
    """The events the core is handed, in order."""
    seen: list[Event] = []
    core = net.b2b.core
    handle = core.handle

    def recording(event: Event, *, now: float) -> list[object]:
        seen.append(event)
        return handle(event, now=now)  # type: ignore[return-value]

    core.handle = recording  # type: ignore[method-assign]
    return seen


def activity(seen: list[Event]) -> list[tuple[str, bool]]:
    return [(e.member, e.busy) for e in seen if isinstance(e, LineActivity)]


def document(version: int, *dialogs: tuple[str, str, str], full: bool = True) -> bytes:
    items = "".join(
        f'<dialog id="{i}" call-id="{c}" direction="initiator"><state>{s}</state></dialog>'
        for i, c, s in dialogs
    )
    return (
        '<?xml version="1.0"?>\n<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" '
        f'version="{version}" state="{"full" if full else "partial"}" '
        f'entity="sip:{LINE_A}@{DOMAIN}">{items}</dialog-info>'
    ).encode()


class PhoneSide:
    """The phone's side of the server's subscription to it."""

    def __init__(self, phone: Phone) -> None:
        self.phone = phone
        self.subscribe = phone.request("SUBSCRIBE")
        self.cseq = 0

    def accept(self, expires: int = 600, status: int = 200) -> None:
        self.phone.send(
            response_bytes(
                self.subscribe,
                status,
                "OK",
                to_tag="ph1",
                contact=self.phone.contact,
                extra=[("Expires", str(expires))],
            )
        )

    def notify(
        self, body: bytes, *, state: str = "active;expires=600", ctype: str = ""
    ) -> list[object]:
        self.cseq += 1
        sub = self.subscribe
        headers = [
            ("Via", self.phone.via(self.phone.branch())),
            ("Max-Forwards", "70"),
            ("From", f"<sip:{LINE_A}@{DOMAIN}>;tag=ph1"),
            ("To", sub.headers.get("From") or ""),
            ("Call-ID", sub.call_id),
            ("CSeq", f"{self.cseq} NOTIFY"),
            ("Contact", self.phone.contact),
            ("Event", "dialog"),
            ("Subscription-State", state),
            ("Content-Type", ctype or "application/dialog-info+xml"),
        ]
        return list(
            self.phone.send(
                build(
                    f"NOTIFY {sub.headers.get('Contact')} SIP/2.0".replace("<", "").replace(
                        ">", ""
                    ),
                    headers,
                    body,
                )
            )
        )


def watched(**settings: object) -> tuple[Network, Phone, Phone, list[Event]]:
    net, alice, _bob, caller = world(watch_phones=True, **settings)
    seen = spy(net)
    register(alice, LINE_A, PASSWORD)
    return net, alice, caller, seen


def test_a_registered_member_line_is_subscribed_to() -> None:
    net, alice, _caller, _seen = watched()
    sub: Request = alice.request("SUBSCRIBE")
    assert sub.headers.get("Event") == "dialog"
    assert sub.headers.get("Accept") == "application/dialog-info+xml"
    assert sub.headers.get("Expires") == "600"
    assert str(sub.uri) == f"sip:{LINE_A}@127.0.0.1:7101"
    assert sub.to.uri.user == LINE_A  # type: ignore[union-attr]
    assert net.b2b.gauges()["phones_watched"] == 1


def test_a_call_of_the_phones_own_makes_the_line_busy_then_free() -> None:
    _net, alice, _caller, seen = watched()
    side = PhoneSide(alice)
    side.accept()
    side.notify(document(0))
    assert alice.response(200, "NOTIFY")
    assert activity(seen) == []
    side.notify(document(1, ("d1", FOREIGN, "confirmed")))
    alice.response(200, "NOTIFY")
    assert activity(seen) == [(LINE_A, True)]
    side.notify(document(2, ("d1", FOREIGN, "terminated"), full=False))
    alice.response(200, "NOTIFY")
    assert activity(seen) == [(LINE_A, True), (LINE_A, False)]


def test_calls_through_the_server_do_not_count_twice() -> None:
    _net, alice, caller, seen = watched()
    side = PhoneSide(alice)
    side.accept()
    caller.invite(PILOT)
    invite = alice.request("INVITE")  # our leg to alice: its Call-ID is ours
    side.notify(document(0, ("d1", invite.call_id, "early")))
    alice.response(200, "NOTIFY")
    assert activity(seen) == []


def test_a_phone_that_refuses_is_asked_again_only_after_watch_retry() -> None:
    net, alice, _caller, _seen = watched(watch_retry=600)
    side = PhoneSide(alice)
    side.accept(status=489)
    net.advance(590)
    assert not alice.has("SUBSCRIBE")
    net.advance(20)
    assert alice.has("SUBSCRIBE")


def test_a_phone_that_never_answers_backs_off_doubling() -> None:
    net, alice, _caller, _seen = watched()
    alice.request("SUBSCRIBE")  # never answered: timer F (32 s), then 60 s of back-off
    alice.drop()
    net.advance(32 + 59)
    assert not alice.has("SUBSCRIBE")
    net.advance(2)
    alice.request("SUBSCRIBE")
    alice.drop()
    net.advance(32 + 118)  # the second failure (at 124 s) waits twice as long
    assert not alice.has("SUBSCRIBE")
    net.advance(2)
    assert alice.has("SUBSCRIBE")


def test_the_watch_is_refreshed_before_the_phone_lets_it_expire() -> None:
    net, alice, _caller, _seen = watched()
    side = PhoneSide(alice)
    side.accept(expires=300)
    net.advance(230)
    assert not alice.has("SUBSCRIBE")
    net.advance(20)
    again = alice.request("SUBSCRIBE")
    assert again.to.tag == "ph1" and again.call_id == side.subscribe.call_id


def test_a_line_that_unregisters_is_no_longer_busy() -> None:
    net, alice, _caller, seen = watched()
    side = PhoneSide(alice)
    side.accept(expires=7200)
    side.notify(document(0, ("d1", FOREIGN, "confirmed")))
    assert activity(seen) == [(LINE_A, True)]
    net.advance(3700)  # the registration (3600 s) expired
    assert activity(seen) == [(LINE_A, True), (LINE_A, False)]


def test_hostile_documents_are_refused() -> None:
    _net, alice, _caller, seen = watched()
    side = PhoneSide(alice)
    side.accept()
    bomb = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>'
    side.notify(bomb)
    alice.response(400, "NOTIFY")
    side.notify(b"<dialog-info", ctype="application/dialog-info+xml")
    alice.response(400, "NOTIFY")
    side.notify(document(0), ctype="text/plain")
    alice.response(400, "NOTIFY")
    assert activity(seen) == []


# ------------------------------------------------------------------ watch_phones: auto

ADVERTISES = (("Allow-Events", "presence, dialog, message-summary"),)


def auto(*, extra: tuple[tuple[str, str], ...] = ADVERTISES) -> tuple[Network, Phone, list[Event]]:
    """The default configuration (``watch_phones: auto``); alice registers with ``extra``."""
    net, alice, _bob, _caller = world()
    assert net.config.server.subscriptions.watch_phones == "auto"
    seen = spy(net)
    assert register(alice, LINE_A, PASSWORD, extra=extra).status == 200
    return net, alice, seen


def test_auto_subscribes_to_a_phone_that_advertised_dialog_events() -> None:
    net, alice, seen = auto()
    side = PhoneSide(alice)
    assert side.subscribe.headers.get("Event") == "dialog"
    assert net.b2b.gauges()["phones_watched"] == 1
    side.accept()
    side.notify(document(0, ("d1", FOREIGN, "confirmed")))
    alice.response(200, "NOTIFY")
    assert activity(seen) == [(LINE_A, True)]


def test_auto_does_not_subscribe_to_a_phone_that_did_not() -> None:
    net, alice, _seen = auto(extra=(("Allow-Events", "presence, message-summary"),))
    net.advance(4000)
    assert not alice.has("SUBSCRIBE")
    assert net.b2b.gauges()["phones_watched"] == 0


def test_a_refresh_without_dialog_stops_the_watch_and_one_with_it_starts_another() -> None:
    net, alice, seen = auto()
    side = PhoneSide(alice)
    side.accept(expires=7200)
    side.notify(document(0, ("d1", FOREIGN, "confirmed")))
    alice.response(200, "NOTIFY")
    assert register(alice, LINE_A, PASSWORD, call_id="reg-2@test").status == 200
    assert activity(seen) == [(LINE_A, True), (LINE_A, False)]
    assert net.b2b.gauges()["phones_watched"] == 0
    assert not alice.has("SUBSCRIBE")
    assert register(alice, LINE_A, PASSWORD, call_id="reg-3@test", extra=ADVERTISES).status == 200
    again = alice.request("SUBSCRIBE")
    assert again.call_id != side.subscribe.call_id and again.to.tag is None
    assert net.b2b.gauges()["phones_watched"] == 1


def test_a_refresh_that_still_advertises_keeps_the_same_watch() -> None:
    net, alice, _seen = auto()
    PhoneSide(alice).accept()
    assert register(alice, LINE_A, PASSWORD, call_id="reg-2@test", extra=ADVERTISES).status == 200
    assert not alice.has("SUBSCRIBE")
    assert net.b2b.gauges()["phones_watched"] == 1


@pytest.mark.parametrize(
    "headers",
    [
        (("Allow-Events", "dialog.winfo"),),  # another event-type (a template of dialog)
        (("Allow-Events", "dialogue, presence"),),
        (("Allow-Events", "dialog;sla"),),  # no parameters in Allow-Events
        (("Allow-Events", "dia log"),),
        (("Allow-Events", '"dialog"'),),
        (("Allow-Events", "presence, dialog\u00e9"),),
        (("Allow-Events", ",".join(["x"] * 64 + ["dialog"])),),  # past MAX_ALLOWED_EVENTS
        (("Allow-Events", ""),),
        (("Event", "dialog"), ("Supported", "dialog")),  # other headers say nothing
    ],
)
def test_hostile_or_foreign_allow_events_never_start_a_watch(
    headers: tuple[tuple[str, str], ...],
) -> None:
    net, alice, _seen = auto(extra=headers)  # the REGISTER still gets its 200
    assert not alice.has("SUBSCRIBE")
    assert net.b2b.gauges()["phones_watched"] == 0


def test_an_allow_events_list_the_parser_cannot_split_is_a_malformed_register() -> None:
    _net, alice, _bob, _caller = world()
    alice.register(LINE_A, call_id="r@test", cseq=1, extra=(("Allow-Events", "presence,,dialog"),))
    alice.response(400, "REGISTER")  # as any malformed list header: never a watch
    assert not alice.has("SUBSCRIBE")


@pytest.mark.parametrize(
    "headers",
    [
        (("Allow-Events", "DIALOG"),),  # tokens are matched case-insensitively
        (("u", "presence , Dialog"),),  # the compact form
        (("Allow-Events", "presence"), ("Allow-Events", "dialog")),  # several headers
    ],
)
def test_allow_events_is_read_in_all_its_forms(headers: tuple[tuple[str, str], ...]) -> None:
    _net, alice, _seen = auto(extra=headers)
    assert alice.has("SUBSCRIBE")


def test_watch_phones_true_subscribes_without_the_header_and_false_never() -> None:
    net, alice, _bob, _caller = world(watch_phones=True)
    register(alice, LINE_A, PASSWORD)
    assert alice.has("SUBSCRIBE")
    net, alice, _bob, _caller = world(watch_phones=False)
    register(alice, LINE_A, PASSWORD, extra=ADVERTISES)
    net.advance(4000)
    assert not alice.has("SUBSCRIBE")
