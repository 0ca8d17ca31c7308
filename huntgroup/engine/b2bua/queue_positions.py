"""Queue positions for the queue_log: the callers waiting in each group's queue, in order.

Theory of operation
-------------------
Asterisk's queue_log gives a caller's position in its queue, the number of
callers ahead of it plus one: when it enters (``ENTERQUEUE``), and when it
leaves unanswered (``ABANDON``, ``EXITWITHTIMEOUT``...), by which time callers
ahead of it may have gone. :class:`QueuePositions` keeps, per group, the call
keys of the callers that entered the group's queue and are neither answered
nor gone, in the order they entered: a dict, for its insertion order and its
removal in constant time. A caller whose call is being offered to a member
still waits, as in Asterisk (so it differs from the core's queue, which holds
the callers not being offered, in the order they will be served).

Entering is a dict insertion; leaving walks the callers ahead. Both are bounded
by the calls in progress (``server.limits.max_calls``); a group is dropped
when its last caller leaves. The positions are this node's: each node has its
own queue (the state store keeps one per node) and its own queue_log.
"""

from __future__ import annotations


class QueuePositions:
    """The callers waiting in each group's queue, by call key, in the order they entered."""

    def __init__(self) -> None:
        self.groups: dict[str, dict[str, None]] = {}

    def enter(self, group: str, key: str) -> int:
        """The call ``key`` enters ``group``'s queue, behind the callers waiting there: its
        position (1: nobody ahead)."""
        waiting = self.groups.setdefault(group, {})
        waiting[key] = None
        return len(waiting)

    def leave(self, group: str, key: str) -> int:
        """The call ``key`` leaves ``group``'s queue (answered or gone): the position it had
        (0: it was not there)."""
        waiting = self.groups.get(group)
        if waiting is None or key not in waiting:
            return 0
        position = 1
        for other in waiting:
            if other == key:
                break
            position += 1
        del waiting[key]
        if not waiting:
            del self.groups[group]
        return position
