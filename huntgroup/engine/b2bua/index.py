"""The one index of calls: from what SIP and the core name to the :class:`Call` it belongs to.

Theory of operation
-------------------
Messages name a call in several ways: the server transaction of the caller's
INVITE (a CANCEL), a dialog key (an ACK, a BYE, a re-INVITE), the client
transaction of one of our INVITEs (a member's response), a Call-ID (a 2xx
retransmitted after its transaction ended), a core call id (a core action).
:class:`CallIndex` holds every one of these tables, and nothing else does:
:meth:`CallIndex.forget` removes a call from all of them in one step.

Two tables outlive calls on purpose, each entry until its transaction ends:
``orphans``, the legs of ended calls still owed a CANCEL or a late 2xx's
ACK+BYE, and ``requests``, the in-dialog requests we sent (relayed,
direct-media re-INVITEs, session refreshes) whose answers are still due.
"""

from __future__ import annotations

from collections.abc import Container

from huntgroup.engine.b2bua.calls import Call, DialogKey, Leg, LegState, OurRequest
from huntgroup.engine.sip.transaction import TransactionKey


class CallIndex:
    """Every call in progress, and every way of finding one."""

    __slots__ = (
        "by_core",
        "by_dialog",
        "by_invite",
        "calls",
        "legs_by_call_id",
        "legs_by_tx",
        "orphans",
        "requests",
    )

    def __init__(self) -> None:
        self.calls: dict[str, Call] = {}  # by call key
        self.by_core: dict[str, Call] = {}  # core call id -> call
        self.by_invite: dict[TransactionKey, Call] = {}  # the caller's INVITE -> call
        self.by_dialog: dict[DialogKey, tuple[Call, Leg | None]] = {}  # None: the caller's
        self.legs_by_tx: dict[TransactionKey, tuple[Call, Leg]] = {}  # our INVITE -> leg
        self.legs_by_call_id: dict[str, tuple[Call, Leg]] = {}
        self.orphans: dict[TransactionKey, Leg] = {}  # legs of ended calls, still open
        self.requests: dict[TransactionKey, OurRequest] = {}  # ours, in a call's dialogs

    def __len__(self) -> int:
        return len(self.calls)

    def add(self, call: Call) -> None:
        """A caller's INVITE taken in."""
        self.calls[call.key] = call
        self.by_invite[call.tx] = call

    def add_core_id(self, call: Call, core_id: str) -> None:
        """``call`` is ``core_id`` in the core, for its whole life (the core follows
        forwards to our own numbers under the same id)."""
        call.core_id = core_id
        self.by_core[core_id] = call

    def add_dialog(self, call: Call, key: DialogKey, leg: Leg | None) -> None:
        """A dialog of ``call``: the caller's (``leg`` None) or that of a confirmed leg."""
        self.by_dialog[key] = (call, leg)
        call.dialog_keys.append(key)

    def add_leg(self, call: Call, leg: Leg) -> None:
        """An INVITE sent for ``call``."""
        call.legs[leg.id] = leg
        found = (call, leg)
        self.legs_by_tx[leg.tx] = found
        self.legs_by_call_id[leg.invite.call_id] = found

    def move_leg(self, call: Call, leg: Leg, tx: TransactionKey) -> None:
        """``leg``'s INVITE was sent again, in client transaction ``tx``."""
        self.legs_by_tx.pop(leg.tx, None)
        leg.tx = tx
        self.legs_by_tx[tx] = (call, leg)

    def move_leg_to(self, leg: Leg, old: Call, new: Call) -> None:
        """Attended transfer: confirmed ``leg`` of ``old`` belongs to ``new`` from now on."""
        del old.legs[leg.id]
        new.legs[leg.id] = leg
        leg.call = new.key
        found = (new, leg)
        if leg.tx in self.legs_by_tx:
            self.legs_by_tx[leg.tx] = found
        self.legs_by_call_id[leg.invite.call_id] = found
        for key in [k for k in old.dialog_keys if self.by_dialog.get(k, (None, None))[1] is leg]:
            old.dialog_keys.remove(key)
            self.add_dialog(new, key, leg)

    def move_leg_to_caller(self, leg: Leg, old: Call, new: Call, transferor: Leg) -> None:
        """Attended transfer from the caller's side: confirmed ``leg`` of ``old`` is
        ``new``'s caller side from now on, and ``new``'s caller dialog so far is that of
        ``transferor``, a leg of ``new`` (kept for the transfer's NOTIFYs and BYE)."""
        for key in new.dialog_keys:
            found = self.by_dialog.get(key)
            if found is not None and found[1] is None:
                self.by_dialog[key] = (new, transferor)
        new.legs[transferor.id] = transferor
        del old.legs[leg.id]
        self.legs_by_tx.pop(leg.tx, None)
        self.legs_by_call_id.pop(leg.invite.call_id, None)
        for key in [k for k in old.dialog_keys if self.by_dialog.get(k, (None, None))[1] is leg]:
            old.dialog_keys.remove(key)
            self.add_dialog(new, key, None)

    def forget(self, call: Call, open_transactions: Container[TransactionKey]) -> None:
        """Remove ``call`` from every table. Its legs whose INVITE transaction is still
        open and unanswered become orphans: they still owe a CANCEL, or may answer late."""
        self.calls.pop(call.key, None)
        self.by_invite.pop(call.tx, None)
        self.by_core.pop(call.core_id, None)
        for key in call.dialog_keys:
            self.by_dialog.pop(key, None)
        for leg in call.legs.values():
            self.legs_by_call_id.pop(leg.invite.call_id, None)
            self.legs_by_tx.pop(leg.tx, None)
            if (
                leg.state is LegState.CALLING or leg.state is LegState.PROCEEDING
            ) and leg.tx in open_transactions:
                self.orphans[leg.tx] = leg

    def drop(self, call: Call) -> None:
        """The last resort when :meth:`forget` failed: at least the call is gone."""
        self.calls.pop(call.key, None)
        self.by_invite.pop(call.tx, None)

    def sizes(self) -> dict[str, int]:
        """The size of every table (all zero when no call is in progress and every
        transaction is over)."""
        return {
            "calls": len(self.calls),
            "by_core": len(self.by_core),
            "by_invite": len(self.by_invite),
            "by_dialog": len(self.by_dialog),
            "legs_by_tx": len(self.legs_by_tx),
            "legs_by_call_id": len(self.legs_by_call_id),
            "orphans": len(self.orphans),
            "requests": len(self.requests),
        }
