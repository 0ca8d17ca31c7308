"""The server's gauges and counters, read when Prometheus scrapes, at no cost in between.

Theory of operation
-------------------
:class:`ServerCollector` is a prometheus_client custom collector: it holds
no state of its own, and each scrape reads what the server already keeps:

- the gauges of the moment: calls, registered contacts, transactions,
  subscriptions, media sessions, RTP ports, connections (``Server.gauges``,
  the ``stats:`` line's), the admission probe's event-loop lag and CPU load,
  whether the node is draining; per group, the callers waiting and the oldest
  wait (``RoutingCore.waiting``, as the wallboard and ``ctl queues`` count
  them), and how many members are in each state (``RoutingCore.member_states``);
- the counters of the ``stats:`` line (``SipCounters``, ``MediaCounters``,
  ``ConnectionCounters``) under Prometheus names: :data:`COUNTERS` maps every
  field to one family, a field that is one reason among several of the same
  thing (RTP drops, admission refusals) to a label value of a shared family;
- SIP messages by method and status code (``SipTraffic``, counted where each
  message passes in the B2BUA);
- the call records' counts (``Server.reports.counters``: sink failures, and
  the PostgreSQL writer's pending, written, dropped records).

Nothing is counted twice: the ``stats:`` line and ``/metrics`` read the same
fields. A scrape costs a walk over the groups and their members, on the event
loop; it never touches a call's path.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from huntgroup.engine.b2bua import B2BUA
from huntgroup.engine.b2bua.stats import OTHER_STATUS, SipTraffic
from huntgroup.queue.availability import MemberState

if TYPE_CHECKING:
    from huntgroup.engine.aio.server import Server


@dataclass(frozen=True, slots=True)
class Family:
    """One counter family of ``/metrics`` fed by fields of the server's counters.

    ``fields``: (counters, field, label value); counters is "sip" (the B2BUA's
    ``SipCounters``), "media" (``MediaCounters``) or "conn" (``ConnectionCounters``);
    the label value is "" when the family has no label."""

    name: str
    help: str
    fields: tuple[tuple[str, str, str], ...]
    label: str = ""


COUNTERS: tuple[Family, ...] = (
    Family(
        "huntgroup_sip_messages_received",
        "SIP messages received (parsed, or refused from their bytes).",
        (("sip", "messages_in", ""),),
    ),
    Family(
        "huntgroup_sip_malformed",
        "SIP messages refused by the parser (400 sent when a response could be formed).",
        (("sip", "malformed", ""),),
    ),
    Family(
        "huntgroup_sip_undeliverable",
        "Requests failed by an ICMP error or a refused connection.",
        (("sip", "undeliverable", ""),),
    ),
    Family(
        "huntgroup_sip_request_errors",
        "Requests whose handling failed, answered 400 or 500 all the same.",
        (("sip", "request_errors", ""),),
    ),
    Family(
        "huntgroup_internal_errors",
        "Inputs that hit a bug (one WARNING line 'internal error' each).",
        (("sip", "internal_errors", ""),),
    ),
    Family(
        "huntgroup_new_invites",
        "INVITEs that would start a call (taken in or refused).",
        (("sip", "invites", ""),),
    ),
    Family(
        "huntgroup_calls_accepted",
        "New INVITEs taken in as calls (feature codes included).",
        (("sip", "calls", ""),),
    ),
    Family(
        "huntgroup_calls_bridged",
        "Calls connected to a member, a forward target or the upstream.",
        (("sip", "bridged", ""),),
    ),
    Family(
        "huntgroup_admission_refusals",
        "New requests refused with 503 before they became calls, by reason: limits "
        "(server.limits), overload (the node is saturated), flood (over the source's rate), "
        "auth_lockout (the source or line is locked out by server.auth).",
        (
            ("sip", "over_limits", "limits"),
            ("sip", "overload_refused", "overload"),
            ("sip", "flood_refused", "flood"),
            ("sip", "auth_locked_out", "auth_lockout"),
        ),
        "reason",
    ),
    Family(
        "huntgroup_flood_dropped",
        "INVITEs and REGISTERs past twice their source's rate, not answered.",
        (("sip", "flood_dropped", ""),),
    ),
    Family(
        "huntgroup_auth_failures",
        "Failed digest authentications (wrong answer, unknown login, another line's).",
        (("sip", "auth_failures", ""),),
    ),
    Family(
        "huntgroup_auth_lockouts",
        "Sources, numbers or (address, line) pairs locked out by server.auth.",
        (("sip", "auth_lockouts", ""),),
    ),
    Family(
        "huntgroup_session_refreshes",
        "Session refreshes (re-INVITE or UPDATE, RFC 4028) the server sent.",
        (("sip", "session_refreshes", ""),),
    ),
    Family(
        "huntgroup_sessions_expired",
        "Calls ended because a session was not refreshed, or our refresh failed.",
        (("sip", "sessions_expired", ""),),
    ),
    Family(
        "huntgroup_calls_max_duration_ended",
        "Calls ended by server.calls.max_duration.",
        (("sip", "max_duration_ended", ""),),
    ),
    Family(
        "huntgroup_rtp_packets_sent",
        "RTP packets sent, by kind: music (hold music and announcements), relayed "
        "(between the legs of bridged calls).",
        (("media", "music_packets", "music"), ("media", "relayed", "relayed")),
        "kind",
    ),
    Family(
        "huntgroup_rtp_packets_dropped",
        "Datagrams on RTP ports dropped, by reason: bad_header (not RTP), "
        "unexpected_source (not the call's peer), idle (a port no call uses), "
        "send_error (the system refused to send).",
        (
            ("media", "dropped_bad_header", "bad_header"),
            ("media", "dropped_unexpected_source", "unexpected_source"),
            ("media", "dropped_idle", "idle"),
            ("media", "send_errors", "send_error"),
        ),
        "reason",
    ),
    Family(
        "huntgroup_rtp_timeouts",
        "Bridged relayed calls ended: a side sent no RTP for server.media.rtp_timeout.",
        (("media", "rtp_timeouts", ""),),
    ),
    Family(
        "huntgroup_connections_accepted",
        "TCP and TLS connections taken in (within the caps).",
        (("conn", "conn_accepted", ""),),
    ),
    Family(
        "huntgroup_connections_refused",
        "TCP and TLS connections refused or not opened, by cap: per_source "
        "(server.connections.max_per_source), total.",
        (("conn", "conn_refused_source", "per_source"), ("conn", "conn_refused_total", "total")),
        "cap",
    ),
    Family(
        "huntgroup_connections_closed",
        "TCP and TLS connections closed by the server, by reason: message_timeout, "
        "idle_timeout, write_overflow (the peer did not read).",
        (
            ("conn", "conn_message_timeouts", "message_timeout"),
            ("conn", "conn_idle_timeouts", "idle_timeout"),
            ("conn", "conn_write_overflows", "write_overflow"),
        ),
        "reason",
    ),
    Family(
        "huntgroup_keepalives_answered",
        "RFC 5626 CRLF keep-alives answered.",
        (("conn", "keepalive_pongs", ""),),
    ),
    Family(
        "huntgroup_sip_responses_dropped",
        "Responses not sent: the TCP/TLS connection of their request was gone.",
        (("conn", "responses_dropped", ""),),
    ),
)
"""Every field of the ``stats:`` counters, under its Prometheus name."""

GAUGES: dict[str, tuple[str, str]] = {
    "calls_active": ("huntgroup_calls_active", "Calls in progress (ringing, queued or bridged)."),
    "contacts": ("huntgroup_registered_contacts", "Registered contacts of lines."),
    "transactions": ("huntgroup_sip_transactions", "SIP transactions open."),
    "auth_tracked": (
        "huntgroup_auth_tracked_entries",
        "Entries of the failed-authentication tables (sources and numbers).",
    ),
    "subscriptions": (
        "huntgroup_subscriptions",
        "Supervision-key subscriptions served (dialog events, RFC 4235).",
    ),
    "phones_watched": (
        "huntgroup_phones_watched",
        "Members' phones the server is subscribed to (server.subscriptions.watch_phones).",
    ),
    "rtp_ports_in_use": (
        "huntgroup_rtp_ports_in_use",
        "RTP ports taken from server.media.rtp_ports.",
    ),
    "media_sessions": (
        "huntgroup_media_sessions",
        "Calls with RTP streams on the server (music or relay).",
    ),
    "connections": (
        "huntgroup_connections",
        "TCP and TLS connections open, both directions.",
    ),
}
"""The gauges of ``Server.gauges`` under their Prometheus names."""
RECORDS: dict[str, tuple[str, str, bool]] = {
    "records_sink_errors": (
        "huntgroup_records_sink_errors",
        "Call records or member changes a report sink failed to take.",
        True,
    ),
    "records_file_dropped": (
        "huntgroup_records_file_dropped",
        "Lines of the call-record files dropped: records.max_queued_lines were waiting.",
        True,
    ),
    "records_pending": (
        "huntgroup_records_pending",
        "Call records waiting to be written to PostgreSQL (the batch being written included).",
        False,
    ),
    "records_written": (
        "huntgroup_records_written",
        "Call records committed to PostgreSQL.",
        True,
    ),
    "records_dropped": (
        "huntgroup_records_dropped",
        "Call records dropped: records.postgres.max_pending (or max_pending_bytes) were "
        "already waiting.",
        True,
    ),
    "records_rejected": (
        "huntgroup_records_rejected",
        "Call records the database refused (bad data): logged as dead letters, not retried.",
        True,
    ),
    "records_db_failures": (
        "huntgroup_records_db_failures",
        "Batches of call records that failed to be written and were tried again.",
        True,
    ),
}
"""The call records' counts of ``Server.reports.counters`` (name, help, is a counter);
the PostgreSQL ones only with ``records.postgres``."""
PER_GROUP_GAUGES = frozenset({"queued"})
"""The gauges of ``Server.gauges`` shown per group instead (``huntgroup_queue_callers``)."""


class ServerCollector(Collector):
    """Reads the server's gauges and counters at each scrape (see the module docstring)."""

    def __init__(self, server: Server) -> None:
        self.server = server

    def collect(self) -> Iterable[Metric]:
        server = self.server
        b2bua: B2BUA | None = getattr(server, "b2bua", None)
        if b2bua is None:
            return  # not started yet: nothing to read
        now = server.loop.time()
        yield from gauges(server.gauges(), b2bua, now=now)
        yield from groups(b2bua, now=now)
        yield from counters(
            {"sip": b2bua.counters, "media": server.media.counters, "conn": server.conn_counters}
        )
        yield from traffic(b2bua.traffic)
        yield from records(server.reports.counters())
        yield from shared_bindings(server, b2bua)


def gauges(values: dict[str, int], b2bua: B2BUA, *, now: float) -> Iterator[Metric]:
    """The gauges of the moment."""
    for key, (name, text) in GAUGES.items():
        yield GaugeMetricFamily(name, text, value=values[key])
    admission = b2bua.admission
    yield GaugeMetricFamily(
        "huntgroup_event_loop_lag_seconds",
        "Sustained lag of the event loop or of the SIP receive queue: the lateness that "
        "lasted (the admission probe's, against server.limits.max_loop_lag).",
        value=admission.lag(now=now),
    )
    yield GaugeMetricFamily(
        "huntgroup_cpu_load_ratio",
        "Share of the time the process is busy, on a CPU or waiting for one, about 1 s "
        "average (the admission probe's, against server.limits.max_load).",
        value=admission.load(now=now),
    )
    yield GaugeMetricFamily(
        "huntgroup_overload_shedding_ratio",
        "Share (0..1) of new calls refused with 503 right now because the node is "
        "overloaded; 0 when it is not.",
        value=admission.shedding(now=now),
    )
    yield GaugeMetricFamily(
        "huntgroup_draining",
        "1 while the node shuts down (new calls get 503), else 0.",
        value=0 if b2bua.accepting else 1,
    )


def groups(b2bua: B2BUA, *, now: float) -> Iterator[Metric]:
    """Per group: the callers waiting and the longest wait, and its members by state."""
    callers = GaugeMetricFamily(
        "huntgroup_queue_callers",
        "Callers of the group not answered yet (queued, or being offered).",
        labels=["group"],
    )
    oldest = GaugeMetricFamily(
        "huntgroup_queue_oldest_wait_seconds",
        "Seconds the caller of the group waiting longest has waited (0: nobody waits).",
        labels=["group"],
    )
    members = GaugeMetricFamily(
        "huntgroup_members",
        "Members of the group by state (free, ringing, talking, wrap_up, unavailable, "
        "paused, logged_out).",
        labels=["group", "state"],
    )
    core = b2bua.core
    for group in b2bua.config.groups:
        name = group.name
        waiting = core.waiting(name)  # what the wallboard and `ctl queues` show
        callers.add_metric([name], len(waiting))
        first = min((w.arrival for w in waiting), default=now)
        oldest.add_metric([name], max(0.0, now - first))
        states = Counter(core.member_states(name, now=now).values())
        for state in MemberState:
            members.add_metric([name, state.value], states[state])
    yield callers
    yield oldest
    yield members


def counters(sources: dict[str, object]) -> Iterator[Metric]:
    """The ``stats:`` counters under their Prometheus names (:data:`COUNTERS`)."""
    for family in COUNTERS:
        labels = [family.label] if family.label else []
        metric = CounterMetricFamily(family.name, family.help, labels=labels)
        for source, field, value in family.fields:
            metric.add_metric([value] if family.label else [], getattr(sources[source], field))
        yield metric


def traffic(counts: SipTraffic) -> Iterator[Metric]:
    """SIP messages in and out by method and by status code."""
    for name, text, by_method in (
        ("huntgroup_sip_requests_received", "SIP requests received", counts.requests_in),
        ("huntgroup_sip_requests_sent", "SIP requests sent", counts.requests_out),
    ):
        metric = CounterMetricFamily(
            name, text + ', by method (unknown methods: "other").', labels=["method"]
        )
        for method, value in by_method.items():
            metric.add_metric([method], value)
        yield metric
    for name, text, by_code in (
        ("huntgroup_sip_responses_received", "SIP responses received", counts.responses_in),
        ("huntgroup_sip_responses_sent", "SIP responses sent", counts.responses_out),
    ):
        metric = CounterMetricFamily(
            name,
            text + ', by status code (outside 100-699: "other"; retransmissions included).',
            labels=["code"],
        )
        for code, value in sorted(by_code.items()):
            metric.add_metric(["other" if code == OTHER_STATUS else str(code)], value)
        yield metric


def records(values: dict[str, int]) -> Iterator[Metric]:
    """The call records' counts (:data:`RECORDS`), those the server has."""
    for key, value in values.items():
        name, text, counter = RECORDS[key]
        if counter:
            yield CounterMetricFamily(name, text, value=value)
        else:
            yield GaugeMetricFamily(name, text, value=value)


def shared_bindings(server: Server, b2bua: B2BUA) -> Iterator[Metric]:
    """Registrations shared with the other nodes (only with a shared state store): the
    other nodes' bindings held, and what was refused or left out, by reason."""
    driver = getattr(server, "bindings", None)
    if driver is None:
        return
    table = b2bua.shared
    yield GaugeMetricFamily(
        "huntgroup_shared_bindings",
        "Other nodes' registered contacts this node holds (shared registrations).",
        value=len(table),
    )
    problems = CounterMetricFamily(
        "huntgroup_shared_bindings_problems",
        "Shared registrations refused or left out: bad_value (not UTF-8 or too large), "
        "bad_share (malformed), too_many_nodes, left_out (an own binding beyond the "
        "receivers' limits), write_refused (Redis refused a write).",
        labels=["reason"],
    )
    for reason, value in (
        ("bad_value", driver.bad_values),
        ("bad_share", table.bad_shares),
        ("too_many_nodes", table.refused_nodes),
        ("left_out", table.left_out),
        ("write_refused", driver.refused),
    ):
        problems.add_metric([reason], value)
    yield problems
