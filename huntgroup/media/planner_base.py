"""What every part of the media planner works on: our address, the RTP ports, our
``o=`` sessions.

Theory of operation
-------------------
:class:`PlannerBase` holds what the parts of
:class:`~huntgroup.media.offer_answer.MediaPlanner` share: the address our SDP
names, the mode (``server.media.mode``: ``relay`` or ``direct``), the
allocator of RTP port pairs (``server.media.rtp_ports``), the generator of our
``o=`` session ids, and the numbering of media sessions. The planner is built
from it and its parts by concern: offer/answer and what flows
(:mod:`~huntgroup.media.offer_answer`), direct media
(:mod:`~huntgroup.media.direct_media`) and call hold
(:mod:`~huntgroup.media.hold_media`).

Every port allocated for a call goes back through :meth:`PlannerBase._release`,
once (see the invariant of :mod:`~huntgroup.media.offer_answer`).
"""

from __future__ import annotations

import itertools
import random

from huntgroup.media.call_media import CallMedia, MediaMode
from huntgroup.media.ports import PortAllocator
from huntgroup.media.sdp import Connection, Origin


class PlannerBase:
    """The address, mode, ports and random numbers of the media planner."""

    def __init__(
        self,
        address: str,
        port_range: tuple[int, int],
        rng: random.Random,
        *,
        mode: MediaMode = "relay",
        port_rng: random.Random | None = None,
    ) -> None:
        """``port_rng`` draws the RTP ports (default ``rng``): the driver gives a
        ``random.SystemRandom``, tests a seeded generator."""
        self.address = address
        self.mode: MediaMode = mode
        self.ports = PortAllocator(port_range, rng=port_rng or rng)
        self._rng = rng
        self._sessions = itertools.count(1)

    def _release(self, media: CallMedia) -> tuple[int, ...]:
        ports = (media.caller_port,) + ((media.member_port,) if media.member_port else ())
        for port in ports:
            self.ports.release(port)
        return ports

    def _origin(self) -> Origin:
        ours = Connection.for_address(self.address)
        return Origin("huntgroup", self._rng.getrandbits(62), 1, self.address, ours.addr_type)
