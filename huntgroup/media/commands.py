"""The media commands: what the B2BUA's media plan tells the media driver, and back.

Theory of operation
-------------------
The planner (:mod:`huntgroup.media.offer_answer`) decides; the asyncio media
layer (``engine/aio/media_io.py``) carries these commands out, per call
(``session``):

- :class:`OpenPort`: bind a port as soon as our SDP names it;
- :class:`PlayMusic`: send the hold music from a side's port (the caller
  queued or held, or the member held by the caller);
- :class:`~huntgroup.media.announcements.PlayAnnouncement` (emitted by the
  B2BUA's announcements): play audio files over that music, which pauses
  meanwhile;
- :class:`StartRelay`: relay RTP between the caller port and the member port;
- :class:`ConfirmMedia`: the caller's dialog is confirmed, it may be sent to;
- :class:`CloseMedia`: stop and close the call's sockets.

Each side's address is latched (RTP hijacking, docs/security.md): a side whose
SDP address is unverified carries its signalling IP (``nat``,
``caller_nat``/``member_nat``) and is sent nothing before its first packet
from there; a caller whose SDP address is vouched for only by a source that
may be forged is ``unconfirmed`` until its first packet or ``ConfirmMedia``.
One fact comes back: :class:`RtpTimedOut`, a watched relay fell silent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from huntgroup.media.announcements import PlayAnnouncement
from huntgroup.media.g711 import Codec
from huntgroup.quick_init import quick_init

MediaSide = Literal["caller", "member"]


@dataclass(frozen=True, slots=True)
class PlayMusic:
    session: str
    port: int
    remote: tuple[str, int]
    codec: Codec
    payload_type: int
    music: str | None  # file path; None = the built-in music
    nat: str | None = None  # the caller's signalling IP when its SDP address is unverified
    # the caller's SDP address is vouched for by a source that may be forged (UDP, not a
    # trusted peer) and its dialog is not confirmed yet: nothing is sent to it before its
    # first packet from there or ConfirmMedia
    unconfirmed: bool = False
    side: MediaSide = "caller"  # who hears it: the caller (queued, or held by the member),
    # or the member (held by the caller); ``port`` is that side's port


@dataclass(frozen=True, slots=True, init=False)
class StartRelay:
    """Relay RTP between the two ports; each side is latched onto its SDP address,
    or, when that address is unverified (``*_nat``: its signalling IP), onto its
    first packet from the SDP address or that IP in the latch window, and is sent
    nothing before. ``caller_unconfirmed``: as :attr:`PlayMusic.unconfirmed`.
    ``watch``: both streams should flow (RTP inactivity timeout)."""

    session: str
    caller_port: int
    caller_remote: tuple[str, int]
    member_port: int
    member_remote: tuple[str, int]
    caller_nat: str | None = None
    member_nat: str | None = None
    watch: bool = True
    caller_unconfirmed: bool = False

    def __init__(
        self,
        session: str,
        caller_port: int,
        caller_remote: tuple[str, int],
        member_port: int,
        member_remote: tuple[str, int],
        caller_nat: str | None = None,
        member_nat: str | None = None,
        watch: bool = True,
        caller_unconfirmed: bool = False,
    ) -> None:
        object.__setattr__(self, "session", session)
        object.__setattr__(self, "caller_port", caller_port)
        object.__setattr__(self, "caller_remote", caller_remote)
        object.__setattr__(self, "member_port", member_port)
        object.__setattr__(self, "member_remote", member_remote)
        object.__setattr__(self, "caller_nat", caller_nat)
        object.__setattr__(self, "member_nat", member_nat)
        object.__setattr__(self, "watch", watch)
        object.__setattr__(self, "caller_unconfirmed", caller_unconfirmed)


quick_init(StartRelay)


@dataclass(frozen=True, slots=True, init=False)
class ConfirmMedia:
    """The caller's dialog is confirmed (its ACK to our 2xx came, with our To tag that a
    forger never sees): its SDP address, if vouched for, may be sent to from now on."""

    session: str
    port: int

    def __init__(self, session: str, port: int) -> None:
        object.__setattr__(self, "session", session)
        object.__setattr__(self, "port", port)


quick_init(ConfirmMedia)


@dataclass(frozen=True, slots=True)
class RtpTimedOut:
    """A fact from the media driver: no RTP came from ``silent`` for ``after`` seconds
    on a watched relay (see :class:`StartRelay`)."""

    session: str
    silent: tuple[MediaSide, ...]
    after: float


@dataclass(frozen=True, slots=True, init=False)
class OpenPort:
    """Bind a port as soon as our SDP names it (to the caller, or to members), so
    the first packets sent to it are never lost before music or relay start."""

    session: str
    port: int
    side: Literal["caller", "member"]

    def __init__(self, session: str, port: int, side: Literal["caller", "member"]) -> None:
        object.__setattr__(self, "session", session)
        object.__setattr__(self, "port", port)
        object.__setattr__(self, "side", side)


quick_init(OpenPort)


@dataclass(frozen=True, slots=True, init=False)
class CloseMedia:
    session: str
    ports: tuple[int, ...]

    def __init__(self, session: str, ports: tuple[int, ...]) -> None:
        object.__setattr__(self, "session", session)
        object.__setattr__(self, "ports", ports)


quick_init(CloseMedia)


MediaCommand = PlayMusic | StartRelay | OpenPort | ConfirmMedia | CloseMedia | PlayAnnouncement
