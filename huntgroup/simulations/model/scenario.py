"""Scenario files: what to simulate, validated like the configuration.

Theory of operation
-------------------
A scenario names the groups configuration to route with (a path to the YAML
file that ``serve`` reads, relative to the scenario, or the same content
inline under ``config``), the horizon (``duration``, ``warmup``, ``drain``),
the randomness (``seed``, ``replications``), the traffic offered to each
group and the behaviour of members. ``load_scenario(path)`` reads the file,
validates it with the pydantic models below, checks what a single field
cannot (groups and members that exist, CSV files that parse), and returns a
:class:`Scenario` whose every path is resolved and every CSV loaded. Every
problem is reported at once as a ``ConfigError`` whose problems carry the
file and line (of the scenario, of the groups file, or of a CSV file).

Distributions are written ``{fixed: 60}`` (or a bare number), ``{exponential:
{mean: 180}}``, ``{lognormal: {mean: 180, sigma: 0.6}}`` or ``{empirical:
talk.csv}``; arrivals ``{poisson: {per_hour: 120}}``, ``{profile: {per_hour:
[24 values]}}`` or ``{trace: arrivals.csv}``. CSV files hold one number per
line (the first column); a first line that is not a number is a header;
blank lines and lines starting with ``#`` are skipped.

Invariants: a validated scenario only names groups of its configuration and
members of those groups; availability intervals are sorted, disjoint and
non-empty; empirical samples and traces are finite and non-negative.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
)

from huntgroup.config.loader import load_config, load_config_document, read_yaml_file
from huntgroup.config.models import Config
from huntgroup.config.safe_yaml import Document, parse_yaml
from huntgroup.engine.aio.file_checks import FILE_CHECKS
from huntgroup.errors import ConfigError, ConfigProblem

Loc = tuple[str | int, ...]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ----------------------------------------------------------------- distributions
class Fixed(_Model):
    fixed: float = Field(ge=0, allow_inf_nan=False)


class _Mean(_Model):
    mean: float = Field(gt=0, allow_inf_nan=False)


class Exponential(_Model):
    exponential: _Mean


class _LognormalParams(_Model):
    mean: float = Field(gt=0, allow_inf_nan=False)
    sigma: float = Field(gt=0, le=10, allow_inf_nan=False)


class Lognormal(_Model):
    lognormal: _LognormalParams


class Empirical(_Model):
    empirical: str = Field(min_length=1)


DIST_KINDS = ("fixed", "exponential", "lognormal", "empirical")


def _dist_kind(value: Any) -> str | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "number"
    if isinstance(value, dict) and len(value) == 1:
        (kind,) = value
        if kind in DIST_KINDS:
            return str(kind)
    if isinstance(value, Fixed | Exponential | Lognormal | Empirical):
        return type(value).__name__.lower()
    return None


Distribution = Annotated[
    Annotated[Fixed, Tag("fixed")]
    | Annotated[Exponential, Tag("exponential")]
    | Annotated[Lognormal, Tag("lognormal")]
    | Annotated[Empirical, Tag("empirical")]
    | Annotated[float, Tag("number"), Field(ge=0, allow_inf_nan=False)],
    Discriminator(
        _dist_kind,
        custom_error_type="distribution",
        custom_error_message=(
            "expected a distribution: a number, {fixed: S}, {exponential: {mean: S}}, "
            "{lognormal: {mean: S, sigma: X}} or {empirical: FILE.csv}"
        ),
    ),
]

DistSpec = Fixed | Exponential | Lognormal | Empirical | float


# ---------------------------------------------------------------------- arrivals
class _PerHour(_Model):
    per_hour: float = Field(ge=0, allow_inf_nan=False)


class Poisson(_Model):
    poisson: _PerHour


class _Profile(_Model):
    per_hour: tuple[float, ...]

    @field_validator("per_hour")
    @classmethod
    def _24(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if len(value) != 24:
            raise ValueError(f"expected 24 hourly rates (hour 0 to 23), got {len(value)}")
        if any(not math.isfinite(v) or v < 0 for v in value):
            raise ValueError("hourly rates must be finite and >= 0")
        return value


class Profile(_Model):
    profile: _Profile


class Trace(_Model):
    trace: str = Field(min_length=1)


def _arrival_kind(value: Any) -> str | None:
    if isinstance(value, dict) and len(value) == 1:
        (kind,) = value
        if kind in ("poisson", "profile", "trace"):
            return str(kind)
    if isinstance(value, Poisson | Profile | Trace):
        return type(value).__name__.lower()
    return None


Arrivals = Annotated[
    Annotated[Poisson, Tag("poisson")]
    | Annotated[Profile, Tag("profile")]
    | Annotated[Trace, Tag("trace")],
    Discriminator(
        _arrival_kind,
        custom_error_type="arrivals",
        custom_error_message=(
            "expected {poisson: {per_hour: N}}, {profile: {per_hour: [24 values]}} "
            "or {trace: FILE.csv}"
        ),
    ),
]


# ----------------------------------------------------------------------- traffic
class TrafficConfig(_Model):
    group: str
    arrivals: Arrivals
    talk_time: Distribution
    patience: Distribution | None = None


class CallLoad(_Model):
    """Calls of a member's own (direct calls to its line, or outgoing calls)."""

    per_hour: float = Field(gt=0, allow_inf_nan=False)
    talk_time: Distribution = Exponential(exponential=_Mean(mean=120))


Interval = tuple[float, float | None]


class MemberBehaviour(_Model):
    answer_probability: float = Field(1.0, ge=0, le=1)
    answer_delay: Distribution = Fixed(fixed=0)
    on_no_answer: Literal["ring", "decline"] = "ring"
    joined: tuple[Interval, ...] | None = None
    direct_calls: CallLoad | None = None
    outgoing_calls: CallLoad | None = None

    @field_validator("joined")
    @classmethod
    def _intervals(cls, value: tuple[Interval, ...] | None) -> tuple[Interval, ...] | None:
        if value is None:
            return None
        previous_end = -math.inf
        for start, end in value:
            if not math.isfinite(start) or start < 0:
                raise ValueError(f"interval start {start} must be finite and >= 0")
            if end is not None and not end > start:
                raise ValueError(f"interval [{start}, {end}] must end after it starts")
            if start < previous_end:
                raise ValueError("intervals must be sorted and must not overlap")
            previous_end = math.inf if end is None else end
        return value


class ScenarioFile(_Model):
    """The scenario file as written (paths not resolved yet)."""

    config: str | dict[str, Any]
    duration: float = Field(gt=0, allow_inf_nan=False)
    warmup: float = Field(0, ge=0, allow_inf_nan=False)
    drain: float = Field(3600, ge=0, allow_inf_nan=False)
    seed: int = 0
    replications: int = Field(1, ge=1, le=10_000)
    traffic: tuple[TrafficConfig, ...]
    members: dict[str, MemberBehaviour] = Field(default_factory=dict)


# ------------------------------------------------------------------- resolved
@dataclass(frozen=True, slots=True)
class Samples:
    """An empirical distribution or a trace: the numbers of a CSV file."""

    file: str
    values: tuple[float, ...]


ResolvedDist = Fixed | Exponential | Lognormal | Samples


@dataclass(frozen=True, slots=True)
class ResolvedLoad:
    per_hour: float
    talk_time: ResolvedDist


@dataclass(frozen=True, slots=True)
class Behaviour:
    """A member's behaviour with the default merged in and files loaded."""

    answer_probability: float
    answer_delay: ResolvedDist
    on_no_answer: Literal["ring", "decline"]
    joined: tuple[Interval, ...] | None
    direct_calls: ResolvedLoad | None
    outgoing_calls: ResolvedLoad | None


@dataclass(frozen=True, slots=True)
class Traffic:
    group: str
    arrivals: Poisson | Profile | Samples
    talk_time: ResolvedDist
    patience: ResolvedDist | None


@dataclass(frozen=True, slots=True)
class Scenario:
    """A validated scenario, ready for the driver."""

    file: str
    config: Config
    duration: float
    warmup: float
    drain: float
    seed: int
    replications: int
    traffic: tuple[Traffic, ...]
    behaviours: dict[str, Behaviour]  # every member key of the configuration

    def with_config(self, config: Config) -> Scenario:
        return Scenario(
            self.file,
            config,
            self.duration,
            self.warmup,
            self.drain,
            self.seed,
            self.replications,
            self.traffic,
            self.behaviours,
        )


# ---------------------------------------------------------------------- loading
def _load_groups_config(path: Path) -> Config:
    """The groups configuration that ``serve`` reads, from its YAML file.

    Kept in one function so that the project's configuration loader can take
    its place; raises ConfigError with the file and line of every problem.
    """
    return load_config(path, checks=FILE_CHECKS)


@dataclass(slots=True)
class Located:
    """A scenario read by the safe YAML reader, and where each field path sits.

    ``where`` turns a pydantic error location into (line, column, dotted
    path): it walks the document's positions as far as the location matches
    and skips the parts of a location that name no key of the document (union
    tags, model names), so that an error points at the innermost key or value
    that exists. A mapping or list is placed at its key, a scalar at its value.
    """

    file: str
    doc: Document
    index: dict[Loc, tuple[int, int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        locations = self.doc.locations
        for path, pos in locations.values.items():
            key = locations.keys.get(path)
            if key is not None and isinstance(_at(self.doc.data, path), dict | list):
                pos = key
            self.index[path] = (pos.line, pos.column)

    @property
    def data(self) -> dict[str, Any]:
        return self.doc.data

    def where(self, loc: Sequence[str | int]) -> tuple[int, int, str]:
        """(line, column, dotted path) of the innermost part of ``loc`` in the file."""
        matched: list[str | int] = []
        line, col = self.index.get((), (1, 1))
        last_missing: str | int | None = None
        for part in loc:
            key = (*matched, part)
            if key in self.index:
                matched.append(part)
                line, col = self.index[key]
                last_missing = None
            else:
                last_missing = part
        shown = [*matched] if last_missing is None else [*matched, last_missing]
        return line, col, ".".join(str(p) for p in shown)

    def problem(self, loc: Sequence[str | int], message: str) -> ConfigProblem:
        line, col, path = self.where(loc)
        return ConfigProblem(self.file, line, col, path, message)

    def validation_problems(self, error: ValidationError) -> list[ConfigProblem]:
        """One problem per pydantic error, placed at its line in this file."""
        problems = []
        for err in error.errors(include_url=False):
            message = str(err["msg"]).removeprefix("Value error, ")
            problems.append(self.problem(err["loc"], message))
        return problems


def _at(data: Any, path: Loc) -> Any:
    for part in path:
        if isinstance(data, dict):
            data = data.get(part)
        elif isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data):
            data = data[part]
        else:
            return None
    return data


_SCENARIO_MAPPING = "a scenario is a mapping (config, duration, traffic...)"
_FIRST_AT_LINE = re.compile(r" \(first at line \d+\)$")


def read_scenario_yaml(path: Path) -> Located:
    """Read a scenario with the configuration's safe YAML reader and its limits.

    Size, alias expansion, nesting depth and tags are limited as for a
    configuration file; every problem is a ``ConfigError`` at FILE:LINE:COL.
    """
    name = str(path)
    doc = parse_yaml(
        read_yaml_file(path),
        name,
        empty=f"empty scenario: {_SCENARIO_MAPPING}",
        top_level=_SCENARIO_MAPPING,
    )
    if doc.problems:  # duplicate keys, disallowed tags: a scenario has no best-effort mode
        raise ConfigError(
            sorted(
                (
                    dataclasses.replace(p, message=_FIRST_AT_LINE.sub("", p.message))
                    for p in doc.problems
                ),
                key=lambda p: (p.line, p.column),
            )
        )
    return Located(name, doc)


def _inline_config(located: Located, base: Path) -> Config:
    """The scenario's inline ``config``, validated exactly as a configuration file.

    The project's loader checks it (reworded messages, cross-field rules,
    music and TLS files relative to the scenario); problems are reported at
    their line in the scenario, with paths under ``config``.
    """
    doc = located.doc.subdocument(("config",))
    try:
        return load_config_document(doc, located.file, base.resolve(), checks=FILE_CHECKS)
    except ConfigError as exc:
        raise ConfigError(
            [
                dataclasses.replace(p, path=f"config.{p.path}" if p.path else "config")
                for p in exc.problems
            ]
        ) from None


def read_numbers(path: Path, *, what: str) -> tuple[float, ...]:
    """The numbers of a one-column CSV file; ConfigError with file:line on bad lines."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([ConfigProblem(str(path), 0, 0, "", f"cannot read: {exc}")]) from exc
    values: list[float] = []
    problems: list[ConfigProblem] = []
    first = True
    for n, raw in enumerate(lines, start=1):
        text = raw.strip()
        if not text or text.startswith("#"):
            continue
        cell = text.split(",")[0].strip()
        try:
            value = float(cell)
        except ValueError:
            if first:
                first = False
                continue  # a header line
            problems.append(ConfigProblem(str(path), n, 1, "", f"{cell!r} is not a number"))
            continue
        first = False
        if not math.isfinite(value) or value < 0:
            problems.append(
                ConfigProblem(str(path), n, 1, "", f"{what} must be finite and >= 0, got {cell}")
            )
            continue
        values.append(value)
    if not problems and not values:
        problems.append(ConfigProblem(str(path), 0, 0, "", f"no {what} in the file"))
    if problems:
        raise ConfigError(problems)
    return tuple(values)


class _Resolver:
    """Loads the files a scenario names, collecting every problem."""

    def __init__(self, located: Located, base: Path) -> None:
        self.located, self.base = located, base
        self.problems: list[ConfigProblem] = []

    def numbers(self, name: str, loc: Loc, what: str) -> Samples:
        path = self.base / name
        if not path.is_file():
            self.problems.append(self.located.problem(loc, f"no such file: {path}"))
            return Samples(str(path), (0.0,))
        try:
            return Samples(str(path), read_numbers(path, what=what))
        except ConfigError as exc:
            self.problems += exc.problems
            return Samples(str(path), (0.0,))

    def dist(self, spec: DistSpec, loc: Loc) -> ResolvedDist:
        if isinstance(spec, Empirical):
            return self.numbers(spec.empirical, (*loc, "empirical"), "samples")
        if isinstance(spec, int | float):
            return Fixed(fixed=float(spec))
        return spec

    def load(self, spec: CallLoad | None, loc: Loc) -> ResolvedLoad | None:
        if spec is None:
            return None
        return ResolvedLoad(spec.per_hour, self.dist(spec.talk_time, (*loc, "talk_time")))


def load_scenario(path: str | Path) -> Scenario:
    """Read, validate and resolve a scenario file; ConfigError lists every problem."""
    path = Path(path)
    located = read_scenario_yaml(path)
    try:
        raw = ScenarioFile.model_validate(located.data)
    except ValidationError as exc:
        raise ConfigError(located.validation_problems(exc)) from exc
    base = path.parent
    if isinstance(raw.config, str):
        config_path = base / raw.config
        if not config_path.is_file():
            raise ConfigError([located.problem(("config",), f"no such file: {config_path}")])
        config = _load_groups_config(config_path)
    else:
        config = _inline_config(located, base)
    return _resolve(raw, config, located, base)


def _resolve(raw: ScenarioFile, config: Config, located: Located, base: Path) -> Scenario:
    res = _Resolver(located, base)
    problems = res.problems
    groups = {g.name: g for g in config.groups}
    seen: set[str] = set()
    traffic: list[Traffic] = []
    if not raw.traffic:
        problems.append(located.problem(("traffic",), "no traffic: list at least one group"))
    for i, t in enumerate(raw.traffic):
        loc: Loc = ("traffic", i)
        if t.group not in groups:
            known = ", ".join(sorted(groups)) or "none"
            problems.append(
                located.problem((*loc, "group"), f"no group {t.group!r} (groups: {known})")
            )
        elif t.group in seen:
            problems.append(located.problem((*loc, "group"), f"group {t.group!r} listed twice"))
        seen.add(t.group)
        arrivals: Poisson | Profile | Samples
        if isinstance(t.arrivals, Trace):
            arrivals = res.numbers(t.arrivals.trace, (*loc, "arrivals", "trace"), "arrival times")
        else:
            arrivals = t.arrivals
        patience = None if t.patience is None else res.dist(t.patience, (*loc, "patience"))
        traffic.append(
            Traffic(t.group, arrivals, res.dist(t.talk_time, (*loc, "talk_time")), patience)
        )
    member_keys = sorted({m.key for g in config.groups for m in g.members})
    default = raw.members.get("default", MemberBehaviour())
    for key in raw.members:
        if key != "default" and key not in member_keys:
            problems.append(
                located.problem(("members", key), f"{key!r} is not a member of any group")
            )
    behaviours: dict[str, Behaviour] = {}
    for key in member_keys:
        spec = raw.members.get(key)
        loc = ("members", key if spec is not None else "default")
        merged = default
        if spec is not None:
            merged = default.model_copy(
                update={name: getattr(spec, name) for name in spec.model_fields_set}
            )
        behaviours[key] = Behaviour(
            answer_probability=merged.answer_probability,
            answer_delay=res.dist(merged.answer_delay, (*loc, "answer_delay")),
            on_no_answer=merged.on_no_answer,
            joined=merged.joined,
            direct_calls=res.load(merged.direct_calls, (*loc, "direct_calls")),
            outgoing_calls=res.load(merged.outgoing_calls, (*loc, "outgoing_calls")),
        )
    if raw.warmup >= raw.duration:
        problems.append(located.problem(("warmup",), "warmup must be shorter than duration"))
    if problems:
        raise ConfigError(problems)
    return Scenario(
        file=located.file,
        config=config,
        duration=raw.duration,
        warmup=raw.warmup,
        drain=raw.drain,
        seed=raw.seed,
        replications=raw.replications,
        traffic=tuple(traffic),
        behaviours=behaviours,
    )
