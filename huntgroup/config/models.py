"""The configuration file as frozen pydantic models.

The key names and defaults are the contract with admins and QA scripts
(DESIGN.md, "The configuration file"): a key left out takes its default, an
unknown key is an error. Models are frozen so that a config can be handed to
the group core as a value; cross-field rules (duplicate pilots, positions,
unknown lines...) are checked by :func:`semantic_problems`, which returns
field paths so that the loader can point at the offending line.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Algorithm = Literal["ring_all", "linear", "circular", "round_robin", "least_active"]
ALGORITHMS: tuple[str, ...] = ("ring_all", "linear", "circular", "round_robin", "least_active")

NUMBER_RE = re.compile(r"^\+?[0-9]{2,15}$")
SIP_URI_RE = re.compile(r"^sips?:[^\s<>\"]+$", re.IGNORECASE)
LISTEN_RE = re.compile(r"^(udp|tcp|tls):(\[[0-9a-fA-F:.]+\]|[^:\[\]\s]+):([0-9]{1,5})$")

Path = tuple[str | int, ...]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


def _check_number(value: str) -> str:
    if not NUMBER_RE.match(value):
        raise ValueError(f"{value!r} is not a phone number (digits, optional leading +)")
    return value


def _check_target(value: str) -> str:
    """A forwarding target: a phone number or a SIP URI."""
    if NUMBER_RE.match(value) or SIP_URI_RE.match(value):
        return value
    raise ValueError(f"{value!r} is neither a phone number nor a sip:/sips: URI")


class MediaConfig(_Model):
    address: str = "127.0.0.1"
    rtp_ports: str = "20000-20999"
    mode: Literal["relay", "direct"] = "relay"

    @field_validator("rtp_ports")
    @classmethod
    def _ports(cls, value: str) -> str:
        m = re.fullmatch(r"([0-9]{1,5})-([0-9]{1,5})", value)
        if not m:
            raise ValueError("expected 'LOW-HIGH', e.g. '20000-20999'")
        low, high = int(m.group(1)), int(m.group(2))
        if not (1024 <= low <= high <= 65535):
            raise ValueError("ports must satisfy 1024 <= LOW <= HIGH <= 65535")
        if (high - low + 1) < 2:
            raise ValueError("the range must hold at least 2 ports (RTP and RTCP)")
        return value

    @property
    def port_range(self) -> tuple[int, int]:
        low, high = self.rtp_ports.split("-")
        return int(low), int(high)


class SipTimers(_Model):
    """RFC 3261 timer base values, in seconds."""

    t1: float = Field(0.5, gt=0, le=60)
    t2: float = Field(4.0, gt=0, le=600)
    t4: float = Field(5.0, gt=0, le=600)


class TlsConfig(_Model):
    certificate: str | None = None
    private_key: str | None = None
    ca: str | None = None
    verify_peers: bool = True


class LimitsConfig(_Model):
    max_calls: int | None = Field(None, ge=1)
    max_call_rate: float | None = Field(None, gt=0)
    # overload and floods (docs/security.md, "Overload and floods")
    max_loop_lag: float | None = Field(0.1, gt=0, le=10)
    max_load: float | None = Field(0.9, gt=0, le=1)
    per_source_invite_rate: float | None = Field(50.0, gt=0)
    per_source_invite_burst: int = Field(100, ge=1)
    per_source_register_rate: float | None = Field(50.0, gt=0)
    per_source_register_burst: int = Field(200, ge=1)
    per_source_table: int = Field(16384, ge=16, le=10_000_000)


class CallsConfig(_Model):
    """Dead calls: session timers (RFC 4028) and the longest call (docs/security.md)."""

    session_expires: int = Field(1800, ge=90, le=86400)
    min_se: int = Field(90, ge=90, le=86400)
    max_duration: float | None = Field(None, gt=0, le=604800)

    @model_validator(mode="after")
    def _min_below(self) -> CallsConfig:
        if self.min_se > self.session_expires:
            raise ValueError("min_se must not exceed session_expires")
        return self


class ServerConfig(_Model):
    listen: tuple[str, ...] = ("udp:0.0.0.0:5060", "tcp:0.0.0.0:5060")
    domain: str = "voip.example.net"
    upstream: str | None = None
    media: MediaConfig = MediaConfig()
    state: str = "memory"
    timers: SipTimers = SipTimers()
    shutdown_grace: float = Field(30.0, ge=0, le=3600)
    digest_algorithms: tuple[Literal["SHA-256", "MD5"], ...] = ("SHA-256", "MD5")
    tls: TlsConfig = TlsConfig()
    limits: LimitsConfig = LimitsConfig()
    calls: CallsConfig = CallsConfig()

    @field_validator("digest_algorithms")
    @classmethod
    def _algorithms(
        cls, value: tuple[Literal["SHA-256", "MD5"], ...]
    ) -> tuple[Literal["SHA-256", "MD5"], ...]:
        if not value or len(set(value)) != len(value):
            raise ValueError("list SHA-256 and/or MD5, each once, preferred first")
        return value

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("at least one listen address is needed")
        for item in value:
            m = LISTEN_RE.match(item)
            if not m or not (0 <= int(m.group(3)) <= 65535):
                raise ValueError(
                    f"{item!r} is not TRANSPORT:HOST:PORT (udp|tcp|tls, IPv6 in brackets)"
                )
        return value

    @field_validator("upstream")
    @classmethod
    def _upstream(cls, value: str | None) -> str | None:
        if value is not None and not SIP_URI_RE.match(value):
            raise ValueError(f"{value!r} is not a sip: URI")
        return value

    @field_validator("state")
    @classmethod
    def _state(cls, value: str) -> str:
        if value != "memory" and not re.match(r"^rediss?://", value):
            raise ValueError("expected 'memory' or a redis:// URL")
        return value


class LineConfig(_Model):
    number: str
    name: str = ""
    password: str | None = None
    ha1_md5: str | None = None
    ha1_sha256: str | None = None
    forward_busy: str | None = None
    forward_no_answer: str | None = None
    no_answer_timeout: float = Field(20, gt=0, le=600)

    _n = field_validator("number")(_check_number)

    @field_validator("forward_busy", "forward_no_answer")
    @classmethod
    def _fwd(cls, value: str | None) -> str | None:
        return None if value is None else _check_target(value)

    @field_validator("ha1_md5")
    @classmethod
    def _md5(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[0-9a-fA-F]{32}", value):
            raise ValueError("ha1_md5 must be 32 hexadecimal digits")
        return value

    @field_validator("ha1_sha256")
    @classmethod
    def _sha(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", value):
            raise ValueError("ha1_sha256 must be 64 hexadecimal digits")
        return value

    @model_validator(mode="after")
    def _one_secret(self) -> LineConfig:
        if self.password is None and self.ha1_md5 is None and self.ha1_sha256 is None:
            raise ValueError("a line needs 'password', 'ha1_md5' or 'ha1_sha256' to register")
        return self


class QueueConfig(_Model):
    max_length: int = Field(10, ge=0)
    max_wait: float | None = Field(120, gt=0)
    music: str | None = None
    answer: bool = True
    overflow_to: str | None = None

    @field_validator("overflow_to")
    @classmethod
    def _fwd(cls, value: str | None) -> str | None:
        return None if value is None else _check_target(value)


class NoAnswerConfig(_Model):
    forward_to: str | None = None
    after: float | None = Field(None, gt=0)

    @field_validator("forward_to")
    @classmethod
    def _fwd(cls, value: str | None) -> str | None:
        return None if value is None else _check_target(value)

    @model_validator(mode="after")
    def _after_needs_target(self) -> NoAnswerConfig:
        if self.after is not None and self.forward_to is None:
            raise ValueError("'after' needs 'forward_to': where should the call go?")
        return self


class MemberConfig(_Model):
    line: str | None = None
    uri: str | None = None
    position: int = Field(ge=1)
    joined: bool = True

    @field_validator("uri")
    @classmethod
    def _uri(cls, value: str | None) -> str | None:
        if value is not None and not SIP_URI_RE.match(value):
            raise ValueError(f"{value!r} is not a sip: URI")
        return value

    @model_validator(mode="after")
    def _one_target(self) -> MemberConfig:
        if (self.line is None) == (self.uri is None):
            raise ValueError("a member needs exactly one of 'line' or 'uri'")
        return self

    @property
    def key(self) -> str:
        """The member's identity: its line number or its SIP URI."""
        return self.line if self.line is not None else str(self.uri)


class GroupConfig(_Model):
    name: Annotated[str, Field(min_length=1, max_length=64)]
    pilot: str
    algorithm: Algorithm = "round_robin"
    no_answer_timeout: float = Field(15, gt=0, le=600)
    wrap_up: float = Field(0, ge=0, le=3600)
    call_waiting: bool = False
    hunt_direct_calls: bool = False
    pilot_as_caller_id: bool = False
    queue: QueueConfig = QueueConfig()
    no_answer: NoAnswerConfig = NoAnswerConfig()
    members: tuple[MemberConfig, ...] = ()

    _p = field_validator("pilot")(_check_number)

    def ordered_members(self) -> tuple[MemberConfig, ...]:
        return tuple(sorted(self.members, key=lambda m: m.position))


class Config(_Model):
    server: ServerConfig = ServerConfig()
    lines: tuple[LineConfig, ...] = ()
    groups: tuple[GroupConfig, ...] = ()

    def group(self, name: str) -> GroupConfig:
        for g in self.groups:
            if g.name == name:
                return g
        raise KeyError(name)

    def line(self, number: str) -> LineConfig | None:
        for line in self.lines:
            if line.number == number:
                return line
        return None

    def upstream_line(self, number: str) -> LineConfig | None:
        """The line ``number`` when it may call out through ``server.upstream``."""
        return self.line(number) if self.server.upstream is not None else None


def _duplicates(items: Iterator[tuple[Path, object]], what: str) -> list[tuple[Path, str]]:
    seen: dict[object, Path] = {}
    problems: list[tuple[Path, str]] = []
    for path, value in items:
        if value in seen:
            first = ".".join(str(p) for p in seen[value])
            problems.append((path, f"duplicate {what} {value!r} (first at {first})"))
        else:
            seen[value] = path
    return problems


def semantic_problems(cfg: Config) -> list[tuple[Path, str]]:
    """Cross-field rules that a single field cannot check, as (path, message)."""
    problems: list[tuple[Path, str]] = []
    problems += _duplicates(
        ((("lines", i, "number"), line.number) for i, line in enumerate(cfg.lines)), "line number"
    )
    problems += _duplicates(
        ((("groups", i, "name"), g.name) for i, g in enumerate(cfg.groups)), "group name"
    )
    if cfg.server.tls.certificate is None:
        for i, entry in enumerate(cfg.server.listen):
            if entry.startswith("tls:"):
                problems.append(
                    (("server", "listen", i), "a tls: address needs server.tls.certificate")
                )
    numbers = {line.number for line in cfg.lines}
    problems += _duplicates(
        ((("groups", i, "pilot"), g.pilot) for i, g in enumerate(cfg.groups)), "pilot"
    )
    for i, g in enumerate(cfg.groups):
        if g.pilot in numbers:
            problems.append((("groups", i, "pilot"), f"pilot {g.pilot!r} is also a line number"))
        problems += _duplicates(
            (
                (("groups", i, "members", j, "position"), m.position)
                for j, m in enumerate(g.members)
            ),
            "position",
        )
        problems += _duplicates(
            ((("groups", i, "members", j), m.key) for j, m in enumerate(g.members)), "member"
        )
        for j, m in enumerate(g.members):
            if m.line is not None and m.line not in numbers:
                problems.append(
                    (("groups", i, "members", j, "line"), f"no line {m.line!r} in 'lines'")
                )
    return problems
