"""One object per call: the caller's leg (:class:`Call`) and the INVITEs we sent (:class:`Leg`).

Theory of operation
-------------------
A :class:`Call` is everything the B2BUA keeps about one caller's INVITE: its
server transaction and dialog, its media (:class:`CallMedia`), its session
timer and 2xx retransmitter, its id in the group core, and its member legs.
A :class:`Leg` is one INVITE we sent for it (to a member's contact, to a
forwarding target, or out through the upstream), with its own dialog and
session timer once it answered.

States are enums: a call is :attr:`CallState.EARLY` until the caller got our
2xx, then :attr:`CallState.ANSWERED`, and :attr:`CallState.ENDED` once over (it
is then forgotten by the index in the same step). A leg goes
:attr:`LegState.CALLING` → :attr:`LegState.PROCEEDING` (a provisional came) →
:attr:`LegState.CONFIRMED` (its 2xx, ACKed) → :attr:`LegState.ENDED`.

The lookups from SIP to these objects (transaction keys, dialog keys, core
ids) are kept in one place, :mod:`huntgroup.engine.b2bua.index`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Literal

from huntgroup.engine.b2bua.session_timer import SessionTimer
from huntgroup.engine.sip.address import Peer
from huntgroup.engine.sip.dialogs import Dialog
from huntgroup.engine.sip.message import Request
from huntgroup.engine.sip.transaction import TransactionKey, TwoXXRetransmitter
from huntgroup.media.call_media import CallMedia

DialogKey = tuple[str, str, str]
"""(Call-ID, our tag, the peer's tag): how an in-dialog request finds its dialog."""
MediaSide = Literal["caller", "member"]
"""The side of a direct-media call that a re-INVITE goes to."""


class CallState(Enum):
    """Where the caller's leg stands."""

    EARLY = "early"  # no 2xx sent to the caller yet
    ANSWERED = "answered"  # our 2xx went to the caller: its dialog is confirmed
    ENDED = "ended"  # over: final response or BYE sent, the call forgotten


class LegState(Enum):
    """Where one INVITE we sent stands."""

    CALLING = "calling"  # sent, nothing back yet (a CANCEL must wait, §9.1)
    PROCEEDING = "proceeding"  # a provisional response came
    CONFIRMED = "confirmed"  # answered with a 2xx and ACKed
    ENDED = "ended"  # failed, cancelled or hung up


@dataclass(slots=True, init=False)
class Leg:
    """One INVITE we sent: to a member's contact, or to a forwarding target."""

    id: str
    call: str  # the key of its call
    member: str  # "" for a forwarding or outgoing leg
    invite: Request
    tx: TransactionKey
    destination: Peer
    me: Peer
    state: LegState = LegState.CALLING
    cancel_pending: bool = False
    cancelled: bool = False
    dialog: Dialog | None = None
    session: SessionTimer | None = None  # RFC 4028, once the leg is confirmed

    def __init__(
        self,
        id: str,
        call: str,
        member: str,
        invite: Request,
        tx: TransactionKey,
        destination: Peer,
        me: Peer,
        state: LegState = LegState.CALLING,
        cancel_pending: bool = False,
        cancelled: bool = False,
        dialog: Dialog | None = None,
        session: SessionTimer | None = None,
    ) -> None:
        self.id = id
        self.call = call
        self.member = member
        self.invite = invite
        self.tx = tx
        self.destination = destination
        self.me = me
        self.state = state
        self.cancel_pending = cancel_pending
        self.cancelled = cancelled
        self.dialog = dialog
        self.session = session


@dataclass(slots=True)
class Announcing:
    """What a queued caller is told, and when (:mod:`huntgroup.engine.b2bua.announcements`)."""

    group: str  # the group whose queue.announcements apply
    periodic_at: float | None  # the next periodic message (None: none)
    position_at: float | None  # the next position announcement (None: none)
    due: float | None = None  # the armed timer: the earlier of the two


@dataclass(slots=True, init=False)
class Call:
    """The caller's leg and everything hanging off it."""

    key: str
    invite: Request
    tx: TransactionKey
    source: Peer
    me: Peer
    to_tag: str
    media: CallMedia
    number: str  # our number the call is at: the one dialled, then each forward to ours
    arrived: float = 0.0  # ``now`` of its INVITE (the operators' views show its age)
    state: CallState = CallState.EARLY
    ringing_sent: bool = False
    early_media: bool = False  # a 183 with our SDP went to the caller (queue.answer: false)
    dialog: Dialog | None = None
    retransmit: TwoXXRetransmitter | None = None
    legs: dict[str, Leg] = field(default_factory=dict)
    bridged: str | None = None  # leg id
    core_id: str = ""  # its id in the group core, for its whole life (forwards included)
    outgoing_line: str | None = None  # a line's own call out through the upstream
    caller_line_id: str | None = None  # core id of the calling line's own activity
    feature: bool = False  # a feature-code call (*51/*52): answered, then hung up
    dialog_keys: list[DialogKey] = field(default_factory=list)
    reinvite_pending: bool = False
    media_update_after_ack: bool = False  # direct media: re-INVITE the caller once it ACKs
    media_updates: int = 0  # re-INVITEs sent to put the media end to end
    media_again: bool = False  # direct media: end to end, but a side changed (a transfer)
    hold_retries: int = 0  # direct media: 491s to the re-INVITE moving a held party to music
    music: str | None = None  # while held: the music file ("" = built-in); None otherwise
    announcing: Announcing | None = None  # while held: greeting, periodic, position
    # RFC 3325: the line the caller is authenticated as (None: an outside caller), and the
    # P-Asserted-Identity values the server vouches for when it presents the caller.
    verified_line: str | None = None
    asserted: tuple[str, ...] = ()
    privacy: str | None = None  # the caller's Privacy header, sent along with the PAI
    session: SessionTimer | None = None  # RFC 4028 on the caller's dialog, once answered
    transfer: Transfer | None = None  # a blind or attended transfer under way (REFER)
    refer_passed: int = 0  # CSeq of the caller's REFER passed on to the member's phone

    def __init__(
        self,
        key: str,
        invite: Request,
        tx: TransactionKey,
        source: Peer,
        me: Peer,
        to_tag: str,
        media: CallMedia,
        number: str,
        arrived: float = 0.0,
        state: CallState = CallState.EARLY,
        ringing_sent: bool = False,
        early_media: bool = False,
        dialog: Dialog | None = None,
        retransmit: TwoXXRetransmitter | None = None,
        legs: dict[str, Leg] | None = None,
        bridged: str | None = None,
        core_id: str = "",
        outgoing_line: str | None = None,
        caller_line_id: str | None = None,
        feature: bool = False,
        dialog_keys: list[DialogKey] | None = None,
        reinvite_pending: bool = False,
        media_update_after_ack: bool = False,
        media_updates: int = 0,
        media_again: bool = False,
        hold_retries: int = 0,
        music: str | None = None,
        announcing: Announcing | None = None,
        verified_line: str | None = None,
        asserted: tuple[str, ...] = (),
        privacy: str | None = None,
        session: SessionTimer | None = None,
        transfer: Transfer | None = None,
        refer_passed: int = 0,
    ) -> None:
        self.key = key
        self.invite = invite
        self.tx = tx
        self.source = source
        self.me = me
        self.to_tag = to_tag
        self.media = media
        self.number = number
        self.arrived = arrived
        self.state = state
        self.ringing_sent = ringing_sent
        self.early_media = early_media
        self.dialog = dialog
        self.retransmit = retransmit
        self.legs = {} if legs is None else legs
        self.bridged = bridged
        self.core_id = core_id
        self.outgoing_line = outgoing_line
        self.caller_line_id = caller_line_id
        self.feature = feature
        self.dialog_keys = [] if dialog_keys is None else dialog_keys
        self.reinvite_pending = reinvite_pending
        self.media_update_after_ack = media_update_after_ack
        self.media_updates = media_updates
        self.media_again = media_again
        self.hold_retries = hold_retries
        self.music = music
        self.announcing = announcing
        self.verified_line = verified_line
        self.asserted = asserted
        self.privacy = privacy
        self.session = session
        self.transfer = transfer
        self.refer_passed = refer_passed

    def session_of(self, which: str) -> tuple[SessionTimer | None, Dialog | None]:
        """The session timer and dialog of the caller (``which`` = "") or of a confirmed leg."""
        if self.state is CallState.ENDED:
            return None, None
        if not which:
            if self.state is CallState.ANSWERED:
                return self.session, self.dialog
            return None, None
        leg = self.legs.get(which)
        if leg is None or leg.state is not LegState.CONFIRMED:
            return None, None
        return leg.session, leg.dialog

    def timer_of(self, dialog: Dialog) -> tuple[SessionTimer | None, str]:
        """The session timer of ``dialog`` (one of the call's) and its ``which``."""
        if dialog is self.dialog:
            return self.session, ""
        for leg in self.legs.values():
            if leg.dialog is dialog:
                return leg.session, leg.id
        return None, ""

    def refreshing(self) -> bool:
        """One of our refresh re-INVITEs is under way on one of the call's dialogs."""
        if self.session is not None and self.session.refreshing_invite:
            return True
        return any(
            x.session is not None and x.session.refreshing_invite for x in self.legs.values()
        )

    def other_side(self, leg: Leg | None) -> Dialog | None:
        """The dialog a request on ``leg`` (None: the caller's) is relayed to, once bridged."""
        if self.bridged is None:
            return None
        if leg is None:
            bridged = self.legs.get(self.bridged)
            return bridged.dialog if bridged else None
        return self.dialog if leg.id == self.bridged else None  # e.g. a transferor's leg


@dataclass(slots=True)
class Transfer:
    """A REFER we accepted from the member of leg ``leg`` (RFC 3515): its outcome goes
    back in NOTIFYs on ``dialog`` while ``subscribed`` (RFC 4488: ``Refer-Sub: false``
    turns that off), until ``expires`` at the latest; then the leg gets our BYE."""

    leg: str
    dialog: Dialog
    subscribed: bool
    expires: float


@dataclass(frozen=True, slots=True)
class RelayedRequest:
    """An in-dialog request we relayed: its answer goes back in server transaction ``server``."""

    server: TransactionKey
    dialog: Dialog  # the dialog it was relayed on


@dataclass(frozen=True, slots=True)
class MediaUpdate:
    """Direct media: our re-INVITE of ``side`` of call ``call`` with the other side's SDP."""

    call: str
    side: MediaSide
    dialog: Dialog


@dataclass(frozen=True, slots=True)
class HoldReinvite:
    """Direct media: our re-INVITE moving ``side`` (the held party) onto our hold music."""

    call: str
    side: MediaSide
    dialog: Dialog


@dataclass(frozen=True, slots=True)
class SessionRefresh:
    """RFC 4028: our refresh of the session of ``which`` ("" the caller, else a leg id)."""

    call: str
    which: str
    dialog: Dialog


@dataclass(frozen=True, slots=True)
class JoinOffer:
    """Attended transfer: our re-INVITE of leg ``leg``, moved into call ``call``, whose
    member now talks to that call's caller; ``leg`` "": the moved leg is the call's
    caller side now (a transfer from the caller's side), talking to its member."""

    call: str
    leg: str
    dialog: Dialog


@dataclass(frozen=True, slots=True)
class ReferNotify:
    """A NOTIFY we sent the transferor of call ``call`` (RFC 3515)."""

    call: str


OurReinvite = MediaUpdate | HoldReinvite | JoinOffer
"""One of our re-INVITEs with an SDP offer (:func:`.our_requests.reinvite`)."""

OurRequest = RelayedRequest | MediaUpdate | HoldReinvite | SessionRefresh | JoinOffer | ReferNotify
"""A request we sent inside one of a call's dialogs, awaiting its final answer."""
