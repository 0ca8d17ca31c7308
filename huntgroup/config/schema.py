"""JSON Schema of the configuration file, for editors and other tools.

The schema is generated from the pydantic models (so it can never disagree
with the loader about names, types, defaults and enums) and then annotated
with the descriptions below, which are written for administrators and carry
the seed's French labels where there is one. Editors that speak
yaml-language-server pick it up from a first-line comment::

    # yaml-language-server: $schema=huntgroup.schema.json

Invariant: every field of every model has a description (tests enforce it),
so adding a key to the models without documenting it fails the build.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from huntgroup.config.models import (
    NUMBER_RE,
    AdminConfig,
    AnnouncementsConfig,
    AuthConfig,
    CallsConfig,
    Config,
    ConnectionsConfig,
    GroupConfig,
    LimitsConfig,
    LineConfig,
    MediaConfig,
    MemberConfig,
    MetricsConfig,
    NoAnswerConfig,
    PeriodicAnnouncement,
    PositionAnnouncement,
    PostgresRecordsConfig,
    QueueConfig,
    RecordsConfig,
    ServerConfig,
    SipTimers,
    StateAuthConfig,
    StateTlsConfig,
    SubscriptionsConfig,
    TlsConfig,
)

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

MODELS: tuple[type[BaseModel], ...] = (
    Config,
    ServerConfig,
    StateAuthConfig,
    StateTlsConfig,
    MediaConfig,
    SipTimers,
    TlsConfig,
    ConnectionsConfig,
    LimitsConfig,
    AdminConfig,
    MetricsConfig,
    AuthConfig,
    CallsConfig,
    SubscriptionsConfig,
    AdminConfig,
    LineConfig,
    GroupConfig,
    QueueConfig,
    AnnouncementsConfig,
    PeriodicAnnouncement,
    PositionAnnouncement,
    NoAnswerConfig,
    MemberConfig,
    RecordsConfig,
    PostgresRecordsConfig,
)

MODEL_DESCRIPTIONS: dict[str, str] = {
    "Config": "huntgroup configuration: the SIP server, the lines (user licences) and the "
    "call groups.",
    "ServerConfig": "Where the SIP server listens and how it reaches the rest of the network.",
    "MediaConfig": "Audio (RTP) handling: our address in SDP, the RTP port range, relay mode.",
    "SipTimers": "RFC 3261 timer base values in seconds; the defaults suit almost every network.",
    "ConnectionsConfig": "TCP and TLS connections: how long one may take to send a message "
    "or stay idle, and how many may be open from one source and in total.",
    "LimitsConfig": "Admission limits: beyond them, new calls get 503 and calls in progress "
    "keep the capacity.",
    "AuthConfig": "Digest authentication hardening: legacy answers, and the limits on failed "
    "authentications (per source IP, per line) with their lockouts.",
    "CallsConfig": "Dead calls: session timers (RFC 4028) and the longest a call may last.",
    "SubscriptionsConfig": "Supervision keys («touches de supervision», BLF): the dialog "
    "event package (RFC 4235) served to lines, its bounds and expiry, and the server's own "
    "subscriptions to phones that report their calls.",
    "MetricsConfig": "/metrics (Prometheus): the bound on per-member series.",
    "AdminConfig": "The operators' HTTP listener: /healthz, /readyz, /metrics, the JSON "
    "control API and the wallboard. Off unless listen is set; outside loopback it needs a "
    "bearer token.",
    "StateAuthConfig": "Credentials of the Redis of server.state, from the environment or a "
    "file (never written in this file).",
    "StateTlsConfig": "TLS to the Redis of server.state (rediss:// or rediss+sentinel://): the "
    "CA, a client certificate, verification.",
    "TlsConfig": "SIP over TLS: our certificate for tls: listen addresses, and how the "
    "certificates of peers we call over TLS are checked.",
    "LineConfig": "A line (user licence, «licence»): its 10-digit number is also its SIP login.",
    "GroupConfig": "A call group («groupement d'appels»): a pilot number, an algorithm, "
    "members and a queue.",
    "QueueConfig": "The waiting queue («file d'attente») of a group.",
    "AnnouncementsConfig": "What a waiting caller is told over the hold music: a greeting on "
    "entry, a message every N seconds, their position in the queue.",
    "PeriodicAnnouncement": "A message played every 'every' seconds while the caller waits "
    "(the music pauses meanwhile).",
    "PositionAnnouncement": "The caller's position in the queue, said every 'every' seconds "
    "from prompt files.",
    "NoAnswerConfig": "Where a call goes when nobody answers.",
    "MemberConfig": "A member of a group: a line or a fixed SIP URI, with a position (1 = first).",
    "RecordsConfig": "Call records: one per call that reached the server, written to a JSON-lines "
    "file, an Asterisk queue_log file and/or PostgreSQL (docs/operations.md, 'Call records').",
    "PostgresRecordsConfig": "Call records in PostgreSQL: the connection string (from exactly one "
    "of dsn, dsn_env, dsn_file; never a password in this file) and the writer's batching.",
}

FIELD_DESCRIPTIONS: dict[str, dict[str, str]] = {
    "Config": {
        "server": "The SIP server: listen addresses, domain, upstream proxy, media, state store.",
        "lines": "The lines (user licences) that register to this server.",
        "groups": "The call groups (hunt groups).",
        "records": "Where call records go: JSON lines, Asterisk queue_log, PostgreSQL "
        "(none by default).",
    },
    "RecordsConfig": {
        "jsonl": "A JSON-lines file: one object per call record and member change, appended, "
        "reopened on SIGHUP (log rotation); null: none.",
        "queue_log": "An Asterisk queue_log file (ENTERQUEUE, CONNECT, COMPLETECALLER...) for "
        "queue report tools, reopened on SIGHUP; null: none.",
        "max_queued_lines": "Lines waiting for a file's writer thread, per file; beyond (a disk "
        "that cannot keep up), new lines are dropped, counted and logged.",
        "postgres": "Write call records to PostgreSQL (create the tables with 'huntgroup records "
        "init-db'); null: no database.",
    },
    "PostgresRecordsConfig": {
        "dsn": "A libpq connection string or URI without a password (use ~/.pgpass, dsn_env "
        "or dsn_file for one), e.g. 'host=db.example.net dbname=huntgroup user=huntgroup'.",
        "dsn_env": "The name of an environment variable holding the connection string.",
        "dsn_file": "A file holding the connection string (readable by the server only).",
        "batch_size": "Records written per transaction, at most.",
        "max_pending": "Records kept in memory while the database is unreachable; beyond, new "
        "records are dropped, counted and logged (calls never wait).",
        "max_pending_bytes": "The estimated memory those records may hold (1 KiB each plus "
        "0.25 KiB per offer); beyond, new records are dropped like beyond max_pending.",
        "flush_interval": "Seconds between two writes when fewer than batch_size records wait.",
        "spool": "A file (mode 0600) for the records not written at shutdown, written first at "
        "the next start; null: they are lost (one ERROR line). Relative to this file.",
    },
    "ServerConfig": {
        "listen": "Addresses to listen on, as TRANSPORT:HOST:PORT (udp, tcp or tls; IPv6 in "
        "brackets, e.g. 'udp:[::1]:5060').",
        "domain": "Our SIP domain, also the registrar's digest realm.",
        "upstream": "SIP URI of the core proxy where lines' other calls go "
        "(e.g. 'sip:core.example.net:5060'); null: none.",
        "trusted_peers": "IP addresses or CIDR networks of the RFC 3325 trust domain besides "
        "the upstream: SBCs or proxies in front of our phones (none broader than /8 IPv4 "
        "or /32 IPv6). Their P-Asserted-Identity is kept and may make a call internal; "
        "they may register contacts on other hosts. Default: none.",
        "media": "Audio (RTP) settings.",
        "state": "Where shared state lives: 'memory' (one node), a redis:// or rediss:// URL, "
        "or redis+sentinel://HOST:PORT,HOST:PORT/MASTER/DB (several nodes). No password in "
        "the URL: use state_auth.",
        "state_auth": "Redis credentials: username, and the password from password_env or "
        "password_file.",
        "state_tls": "TLS to Redis: CA, client certificate and key, verification.",
        "timers": "SIP transaction timers (T1, T2, T4) in seconds.",
        "shutdown_grace": "Seconds to let calls in progress finish on shutdown.",
        "tls": "SIP over TLS: certificate, key, and peer verification.",
        "connections": "TCP and TLS connections: message deadline, idle timeout, caps.",
        "limits": "Admission limits on new calls (503 beyond them).",
        "auth": "Digest authentication hardening: legacy answers, failure limits, lockouts.",
        "calls": "Calls in progress: session timers (RFC 4028) and the longest call.",
        "subscriptions": "Supervision keys (BLF, RFC 4235 dialog events): bounds, expiry, "
        "what a watcher sees, subscriptions to phones.",
        "admin": "The operators' HTTP listener (health, metrics, control API, wallboard).",
        "digest_algorithms": (
            "Digest algorithms offered to lines, preferred first (RFC 8760). Some phones "
            "only read the first challenge: list MD5 first, or only MD5, for them."
        ),
    },
    "MediaConfig": {
        "address": "IP address written in our SDP (where peers send RTP to us).",
        "rtp_ports": "RTP port range 'LOW-HIGH' (at least 2 ports, 1024..65535).",
        "mode": "relay: audio flows through the server; direct: between the phones.",
        "music": "The server's default hold music («musique d'attente»): an audio file, "
        "relative to the configuration file, heard by the other party when a direct call "
        "is put on hold, and by callers of groups and lines that name no music of their "
        "own; null: the built-in music.",
        "latch_window": "Seconds after a stream starts in which a peer whose SDP address is "
        "not its (public) signalling IP, nor a trusted peer's, may latch: its first RTP "
        "packet from its SDP address or its signalling IP (any port) fixes the address; it "
        "is sent nothing before. Other peers' RTP is only taken from their SDP address.",
        "rtp_timeout": "Seconds without RTP from a side of a bridged, relayed call not on "
        "hold before the call is ended on both sides (BYE); 0 or null: never. Not in "
        "direct media.",
    },
    "ConnectionsConfig": {
        "message_timeout": "Seconds from the first byte of a message on a TCP or TLS "
        "connection until it is complete, and from the accept of an incoming connection "
        "until its first complete message (CRLF keep-alives do not count); beyond, the "
        "connection is closed.",
        "idle_timeout": "Seconds a TCP or TLS connection may stay without receiving anything "
        "(a CRLF keep-alive counts) before it is closed; above the registration expiry (3600 "
        "s) so that phones keep their registration connections.",
        "max_per_source": "TCP and TLS connections open at once from one IP address (one /64 "
        "for IPv6); beyond, new ones are closed at once.",
        "max_total": "TCP and TLS connections open at once, both directions; beyond, new ones "
        "are closed at once. null: what the open-files limit leaves once every RTP port and "
        "a margin are kept for media.",
        "outgoing_reserve": "Places of max_total that incoming connections never take: kept "
        "for the connections the server opens (upstream, TCP and TLS members), so that a "
        "flood of incoming connections cannot stop calls; max_total must be above it.",
    },
    "LimitsConfig": {
        "max_calls": "Calls in progress at once (ringing, queued or bridged); beyond, new "
        "calls get 503 with Retry-After. null: no limit.",
        "max_call_rate": "New calls per second (with a burst of one second's worth); beyond, "
        "503 with Retry-After. null: no limit.",
        "max_internal_forwards": "Forwards to our own numbers (lines, pilots) one call may "
        "follow; one more gets 483 Too Many Hops, a number seen twice 482 Loop Detected.",
        "max_loop_lag": "Seconds input may be handled late (the event loop, or the SIP "
        "datagrams queued in the kernel) for half a second (a quarter of a second at twice "
        "it, 125 ms at four times it) before a share of new calls gets 503. One late "
        "moment (a garbage collection, other processes on the cores) does not count. "
        "null: never.",
        "max_load": "Share of the time (0..1, averaged over about 1 s) the process may be "
        "busy, on a CPU or waiting for one, before a share of new calls gets 503. "
        "null: never.",
        "per_source_invite_rate": "New INVITEs per second from one IP address; beyond, 503 "
        "with Retry-After, and past twice the rate no answer. null: no limit.",
        "per_source_invite_burst": "INVITEs one IP address may send at once before its rate "
        "applies.",
        "per_source_register_rate": "REGISTERs per second from one IP address; beyond, 503 "
        "with Retry-After, and past twice the rate no answer. null: no limit.",
        "per_source_register_burst": "REGISTERs one IP address may send at once before its "
        "rate applies.",
        "per_source_table": "Source addresses tracked by the per-source limits at once; the "
        "least recently seen is forgotten first.",
    },
    "AuthConfig": {
        "allow_legacy_digest": "Accept RFC 2069 digest answers (no qop, no nc), which can be "
        "replayed for a nonce's lifetime; a warning is logged at start. Only for very old phones.",
        "failure_window": "Seconds over which failed authentications are counted.",
        "max_failures_per_source": "Failed authentications from one source IP address within "
        "the window before that address is locked out.",
        "max_failures_per_line": "Failed authentications of one number (known or not) within "
        "the window before that number is locked out (its registered hosts are spared).",
        "lockout_base": "Seconds of a first lockout; each further one of the same source or "
        "line lasts twice as long as the one before.",
        "lockout_max": "Longest lockout, in seconds.",
        "max_tracked": "Bound of each table: sources and lines with failures, and digest "
        "nonces whose count is tracked against replays (least recent dropped first).",
    },
    "CallsConfig": {
        "session_expires": "Session interval in seconds (RFC 4028 Session-Expires, >= 90) "
        "offered to members and the most we accept from callers.",
        "min_se": "The shortest session interval accepted (Min-SE, >= 90); shorter gets 422.",
        "max_duration": "Seconds an answered call may last before the server ends it on both "
        "sides. null: no limit.",
    },
    "SubscriptionsConfig": {
        "enabled": "Serve SUBSCRIBE for the dialog event package (BLF keys); false: 489.",
        "max_subscriptions": "Subscriptions kept at once on this node; beyond, 503 with "
        "Retry-After.",
        "max_per_line": "Subscriptions one line may hold at once (one per BLF key); beyond, 403.",
        "min_expires": "Shortest subscription accepted, in seconds; shorter gets 423 with "
        "Min-Expires.",
        "default_expires": "Subscription duration when the SUBSCRIBE has no Expires, in seconds.",
        "max_expires": "Longest subscription granted, in seconds (a longer Expires is cut down).",
        "show_remote": "Whose identity a watcher sees in a dialog: never; lines (only our own "
        "lines and pilots); all (outside callers too, unless they asked for privacy).",
        "watch_phones": "Subscribe to the dialog events of the phones of group members, so "
        "calls they make or take without the server count as busy: auto (only a phone whose "
        "REGISTER lists dialog in Allow-Events), true (every registered member's phone), false.",
        "watch_expires": "Expires asked for in those subscriptions, in seconds.",
        "watch_retry": "Seconds before a phone that refused them (489, 405, 501, or no "
        "answer) is asked again.",
    },
    "StateAuthConfig": {
        "username": "Redis ACL user (Redis 6+); null: the default user.",
        "password_env": "Name of the environment variable holding the Redis password.",
        "password_file": "File holding the Redis password instead (relative to the "
        "configuration file; chmod 600; one trailing newline ignored).",
        "sentinel_password_env": "With redis+sentinel://: the environment variable holding "
        "the sentinels' own password (their requirepass); null: sentinels without one.",
        "sentinel_password_file": "With redis+sentinel://: the file holding the sentinels' "
        "password instead (chmod 600).",
    },
    "StateTlsConfig": {
        "ca": "PEM file of the CAs that sign the Redis server's certificate; null: the "
        "system's CAs.",
        "certificate": "PEM client certificate, for a Redis with tls-auth-clients; null: none.",
        "private_key": "PEM key of the client certificate (null: inside the certificate file).",
        "verify": "Check the server's certificate and its name or IP address against the "
        "URL's host; false only for tests.",
    },
    "AdminConfig": {
        "listen": "HOST:PORT of the admin HTTP listener (e.g. '127.0.0.1:9090', IPv6 in "
        "brackets); null: off. A non-loopback address needs token_env or token_file.",
        "token_env": "Name of the environment variable holding the bearer token; every "
        "endpoint but /healthz then needs 'Authorization: Bearer TOKEN'.",
        "token_file": "File holding the bearer token (relative to the configuration file; "
        "surrounding whitespace ignored), instead of token_env.",
        "max_connections": "Admin HTTP connections open at once; more are closed at once.",
        "allowed_hosts": "Host names a browser may use to reach the listener besides IP "
        "addresses, localhost and the listen host (a proxy's public name); others get 421 "
        "(checked without a token only).",
        "service_level": "The wallboard's service-level threshold, in seconds: the share of "
        "a group's calls answered within it, today.",
        "metrics": "/metrics (Prometheus text format): bounds of its series.",
    },
    "MetricsConfig": {
        "max_member_series": "Members with a series of their own in "
        "huntgroup_member_answered_total, the first in the file's order (all groups "
        'together); the others count as member="other" of their group. 0: none.',
    },
    "TlsConfig": {
        "certificate": "PEM file with our certificate (and its chain), relative to the "
        "configuration file; needed by tls: listen addresses.",
        "private_key": "PEM file with the certificate's private key; null: it is in the "
        "certificate file.",
        "ca": "PEM bundle of the authorities that sign the certificates of members and the "
        "upstream we call over TLS (sips: or ;transport=tls); null: the system's.",
        "verify_peers": "Check the certificate and name of peers we call over TLS; false "
        "accepts any certificate (a lab with self-signed phones only).",
    },
    "SipTimers": {
        "t1": "RTT estimate (default 0.5 s).",
        "t2": "Maximum retransmit interval for non-INVITE requests (default 4 s).",
        "t4": "Maximum time a message stays in the network (default 5 s).",
    },
    "LineConfig": {
        "number": "The line's number (digits, optional leading +); also its SIP login. Quote it.",
        "name": "The licence's name («nom de la licence»): the display name of the line's "
        "calls (From and P-Asserted-Identity of its internal and outgoing calls, the caller "
        "name members see on group calls from it). Printable text, at most 64 characters; "
        "quotes and backslashes are escaped in SIP.",
        "music": "The line's own hold music: an audio file, relative to the configuration "
        "file, heard by the other party when this line puts a call on hold; null: the "
        "group's music for a group call, else server.media.music.",
        "password": "SIP digest password (or give ha1_md5 / ha1_sha256 instead).",
        "ha1_md5": "MD5 of 'number:domain:password', 32 hex digits, instead of the password.",
        "ha1_sha256": "SHA-256 of 'number:domain:password', 64 hex digits, instead of the "
        "password.",
        "forward_busy": "Where the line's direct calls go when it is busy (number or SIP URI); "
        "null: 486 Busy.",
        "forward_no_answer": "Where the line's direct calls go when unanswered (number or SIP "
        "URI); null: none.",
        "no_answer_timeout": "Seconds a direct call rings before forward_no_answer applies.",
    },
    "GroupConfig": {
        "name": "The group's name (1 to 64 characters, unique); shown as display name with "
        "pilot_as_caller_id.",
        "pilot": "The pilot number («pilote»): the number callers dial to reach the group. "
        "Quote it.",
        "algorithm": "How calls are distributed («Distribution d'appel»): ring_all (Sonner "
        "toutes les lignes), linear (Linéaire), circular (Circulaire), round_robin (Uniforme "
        "(Round Robin)), least_active (Uniforme (la moins active)).",
        "no_answer_timeout": "Seconds a member rings before the next one is tried.",
        "wrap_up": "Seconds after a group call before the member is offered another one.",
        "call_waiting": "Offer calls to members who are already on a call.",
        "hunt_direct_calls": "«La recherche est-elle appliquée aux lignes appelées "
        "directement ?»: a busy member's direct call from outside the company is distributed "
        "to the group.",
        "pilot_as_caller_id": "«L'information du pilote est délivrée comme l'identification "
        "de l'appelant»: members see the pilot number instead of the caller's.",
        "priority": "A member of several groups takes the waiting callers of the group with "
        "the higher priority first (-1000 to 1000, default 0; equal: the earliest arrival).",
        "queue": "The waiting queue («file d'attente»).",
        "no_answer": "What happens when nobody answers.",
        "members": "The members of the group, each with a position (1 = first).",
    },
    "QueueConfig": {
        "max_length": "«Longueur maximale de file d'attente»: callers that may wait; 0 = no queue.",
        "max_wait": "«Durée maximale en secondes de la file d'attente des appels»: seconds "
        "from arrival to an answer before the call is released or overflows; null: no limit.",
        "music": "Hold music («musique d'attente») audio file, relative to the configuration "
        "file, for callers waiting in the queue and for a group call put on hold; null: the "
        "server's default music (server.media.music).",
        "answer": "true: answer queued callers (200 OK) with music; false: music as early media "
        "(183).",
        "overflow_to": "Number or SIP URI for a full queue, max_wait or when_empty; null: "
        "486 Busy Here / release.",
        "when_empty": "When no member of the group is available (all logged out or "
        "unreachable): wait (callers queue as usual) or overflow (callers go to overflow_to "
        "at once, on arrival and while waiting; null overflow_to: 480).",
        "announcements": "Messages to waiting callers: greeting, periodic message, position.",
    },
    "AnnouncementsConfig": {
        "greeting": "Audio file played once when the caller enters the queue, before the "
        "music; relative to the configuration file; null: none.",
        "periodic": "A message every N seconds over the music; null: none.",
        "position": "Tell the caller their position in the queue every N seconds; null: never.",
    },
    "PeriodicAnnouncement": {
        "file": "The message's audio file, relative to the configuration file.",
        "every": "Seconds between two messages, the first this long after the caller entered "
        "the queue (1 to 3600).",
    },
    "PositionAnnouncement": {
        "prompts": "A directory holding the prompt files you-are-caller, in-queue (optional) "
        "and 0 to 9 (10 to 99 optional), any audio extension; or a mapping of those names "
        "to files.",
        "every": "Seconds between two position announcements, the first this long after the "
        "caller entered the queue (1 to 3600).",
    },
    "NoAnswerConfig": {
        "forward_to": "Number or SIP URI where the call goes when nobody answers (linear after "
        "its pass, or after 'after' seconds); null: 480.",
        "after": "Seconds of hunting after which any algorithm forwards to forward_to; null: "
        "never.",
    },
    "MemberConfig": {
        "line": "Number of a line above, reached at its registered contacts.",
        "uri": "Or a fixed SIP URI (sip:user@host:port).",
        "position": "Position in the group, 1 = first; unique within the group.",
        "joined": "Whether the member is logged in to the group («connecté»); false: not "
        "offered calls.",
    },
}

# Patterns that an editor can check as the admin types (the loader checks them too).
FIELD_PATTERNS: dict[tuple[str, str], str] = {
    ("LineConfig", "number"): NUMBER_RE.pattern,
    ("GroupConfig", "pilot"): NUMBER_RE.pattern,
    ("MediaConfig", "rtp_ports"): r"^[0-9]{1,5}-[0-9]{1,5}$",
}


def json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a huntgroup configuration file."""
    schema = Config.model_json_schema(mode="validation")
    definitions: dict[str, Any] = schema.get("$defs", {})
    for model in MODELS:
        name = model.__name__
        node = schema if model is Config else definitions[name]
        node["description"] = MODEL_DESCRIPTIONS[name]
        for field, text in FIELD_DESCRIPTIONS[name].items():
            node["properties"][field]["description"] = text
    for (model_name, field), pattern in FIELD_PATTERNS.items():
        definitions[model_name]["properties"][field]["pattern"] = pattern
    return {
        "$schema": SCHEMA_DIALECT,
        **{k: v for k, v in schema.items() if k != "title"},
        "title": "huntgroup configuration",
    }
