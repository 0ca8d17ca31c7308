"""What each ended call adds to ``/metrics``: calls by outcome, wait and talk, who answered.

Theory of operation
-------------------
:class:`CallMetrics` is a report sink (``Server.reports``): the server hands
it every :class:`~huntgroup.engine.b2bua.call_records.CallRecord` once its
call has ended, and it moves prometheus_client counters and histograms of
the server's own registry:

- ``huntgroup_calls_total{group,outcome}`` for a call to a group (pilot),
  ``huntgroup_line_calls_total{kind,outcome}`` for a direct or outgoing call;
- ``huntgroup_wait_seconds{group,answered}``: every group call's wait
  (``answered`` "true" or "false"), so that a service level is one ratio of
  two series; ``huntgroup_talk_seconds{group}``: the talk of answered calls;
- ``huntgroup_member_answered_total{group,member}``: calls each member took;
- ``huntgroup_member_changes_total{action}``: logins, logouts, pauses.

Per-member series are bounded. Members come from the configuration, so the
set is finite, but a file may list thousands: the first
``max_member_series`` (group, member) pairs, in the file's order, get a
series of their own, every other member's calls count under
``member="other"`` of its group (a member key is a line number or a SIP URI,
never "other"). The configuration is looked at again whenever its object
changes (a reload): the series of members and groups it no longer has are
dropped from the registry, and freed places go to members that had none, in
order. Group names are bounded by the file alone.

The cost per call is a handful of dict look-ups and counter increments, on
the event loop; nothing here runs per SIP message.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Histogram

from huntgroup.config.models import Config
from huntgroup.engine.b2bua.call_records import CallRecord, MemberChange

OUTCOMES = ("answered", "abandoned", "timeout", "queue_full", "no_answer", "forwarded", "refused")
"""The outcomes of a call record (docs/operations.md, "Call records")."""
WAIT_BUCKETS = (1.0, 2.0, 5.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0, 180.0, 300.0, 600.0)
"""Seconds: the usual service-level thresholds (10, 15, 20, 30, 60 s) are bucket bounds."""
TALK_BUCKETS = (10.0, 30.0, 60.0, 120.0, 180.0, 300.0, 600.0, 900.0, 1800.0, 3600.0)
"""Seconds: from a wrong number to an hour-long call."""
OTHER_MEMBER = "other"
"""The member label of every member beyond ``max_member_series`` (or no longer listed)."""
MEMBER_ACTIONS = ("login", "logout", "pause", "unpause")
ANSWERED = {True: "true", False: "false"}


class CallMetrics:
    """The report sink behind the call metrics (see the module docstring)."""

    def __init__(
        self,
        registry: CollectorRegistry,
        config_of: Callable[[], Config],
        *,
        max_member_series: int,
    ) -> None:
        self.config_of = config_of
        self.max_member_series = max_member_series
        self.calls = Counter(
            "huntgroup_calls",
            "Calls to a group that ended, by group and outcome.",
            ["group", "outcome"],
            registry=registry,
        )
        self.line_calls = Counter(
            "huntgroup_line_calls",
            "Calls that reached no group (kind: direct to a line, or outgoing), by outcome.",
            ["kind", "outcome"],
            registry=registry,
        )
        self.wait = Histogram(
            "huntgroup_wait_seconds",
            "Seconds a group call waited before it was answered or ended "
            "(answered: whether a member answered it).",
            ["group", "answered"],
            buckets=WAIT_BUCKETS,
            registry=registry,
        )
        self.talk = Histogram(
            "huntgroup_talk_seconds",
            "Seconds answered group calls lasted once answered.",
            ["group"],
            buckets=TALK_BUCKETS,
            registry=registry,
        )
        self.member_answered = Counter(
            "huntgroup_member_answered",
            "Group calls a member answered (members beyond "
            'server.admin.metrics.max_member_series count as member="other").',
            ["group", "member"],
            registry=registry,
        )
        self.member_changes = Counter(
            "huntgroup_member_changes",
            "Member logins, logouts, pauses and unpauses, by action.",
            ["action"],
            registry=registry,
        )
        self._config: Config | None = None
        self._groups: frozenset[str] = frozenset()
        self._members: frozenset[tuple[str, str]] = frozenset()  # with a series of their own
        self._seen_groups: set[str] = set()  # groups with series (configured or not)
        self._seen_members: set[tuple[str, str]] = set()  # member labels with a series

    # ------------------------------------------------------------- the sink
    def call_ended(self, record: CallRecord) -> None:
        """One ended call."""
        self.follow_config()
        group, outcome = record.group, record.outcome
        if group is None:
            self.line_calls.labels(record.kind, outcome).inc()
            return
        self._seen_groups.add(group)
        self.calls.labels(group, outcome).inc()
        answered = outcome == "answered"
        self.wait.labels(group, ANSWERED[answered]).observe(max(0.0, record.wait))
        if not answered:
            return
        self.talk.labels(group).observe(max(0.0, record.talk))
        if record.member is not None:
            label = self.member_label(group, record.member)
            self._seen_members.add((group, label))
            self.member_answered.labels(group, label).inc()

    def member_changed(self, change: MemberChange) -> None:
        """A member logged in or out, paused or unpaused."""
        if change.action in MEMBER_ACTIONS:
            self.member_changes.labels(change.action).inc()

    # ------------------------------------------------------- bounded series
    def member_label(self, group: str, member: str) -> str:
        """The ``member`` label of ``member`` of ``group``: itself, or "other"."""
        return member if (group, member) in self._members else OTHER_MEMBER

    def follow_config(self) -> None:
        """Look at the configuration again when it changed (see the module docstring)."""
        config = self.config_of()
        if config is self._config:
            return
        self._config = config
        pairs = [(g.name, m.key) for g in config.groups for m in g.ordered_members()]
        self._groups = frozenset(g.name for g in config.groups)
        self._members = frozenset(pairs[: self.max_member_series])
        for group in self._seen_groups - self._groups:
            self._drop_group(group)
        self._seen_groups &= self._groups
        for group, label in list(self._seen_members):
            gone = group not in self._groups
            if gone or (label != OTHER_MEMBER and (group, label) not in self._members):
                self.member_answered.remove(group, label)
                self._seen_members.discard((group, label))

    def _drop_group(self, group: str) -> None:
        """Remove every series of a group the configuration no longer has."""
        for outcome in OUTCOMES:
            self.calls.remove(group, outcome)  # a series that does not exist is no error
        for answered in ANSWERED.values():
            self.wait.remove(group, answered)
        self.talk.remove(group)
