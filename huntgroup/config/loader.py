"""Loading a configuration file into a frozen :class:`Config`.

Theory of operation, in three passes over one text:

1. :func:`~huntgroup.config.safe_yaml.parse_yaml` reads untrusted YAML into
   plain data plus the line/column of every node (size, alias, depth and tag
   limits are enforced there).
2. pydantic validates the data against :class:`Config`; each error is mapped
   back to the YAML node of its field path (an unknown key to the key itself,
   a missing key to the enclosing mapping) and reworded for admins.
3. Cross-field rules (:func:`semantic_problems`: duplicate pilots, positions,
   unknown lines...) and the hold-music files are checked. They run even when
   pass 2 failed, on a best-effort view of the data, so that one run of
   ``huntgroup check`` lists every problem of the file.

The loader only checks that the files the configuration names (music, TLS)
exist and can be read. Whether they are usable (audio that decodes, a key
that matches its certificate) is asked of :class:`FileChecks` given by the
caller: the command line and the drivers pass
:data:`huntgroup.engine.aio.file_checks.FILE_CHECKS`, so this package never imports the
media or TLS code (nor numpy or ssl).

Invariants: the result is either a valid ``Config`` (with every
music setting resolved to an absolute, readable file) or a ``ConfigError``
listing every problem found, sorted by position; no other exception escapes
for any input text.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from huntgroup.config.announcement_files import announcement_files
from huntgroup.config.messages import explain
from huntgroup.config.models import (
    NUMBER_RE,
    AnnouncementsConfig,
    Config,
    GroupConfig,
    LineConfig,
    MemberConfig,
    NoAnswerConfig,
    QueueConfig,
    TlsConfig,
    semantic_problems,
)
from huntgroup.config.safe_yaml import MAX_BYTES, Document, Position, parse_yaml
from huntgroup.errors import ConfigError, ConfigProblem

FieldPath = tuple[str | int, ...]

__all__ = [
    "MAX_BYTES",
    "load_config",
    "load_config_document",
    "load_config_text",
    "read_yaml_file",
    "summarize",
]


def _dotted(path: FieldPath) -> str:
    return ".".join(str(p) for p in path)


def _problem(filename: str, pos: Position, path: FieldPath, message: str) -> ConfigProblem:
    return ConfigProblem(filename, pos.line, pos.column, _dotted(path), message)


def _playable(_: Path) -> str | None:
    return None


def _usable(_: TlsConfig) -> list[tuple[str, str]]:
    return []


@dataclass(frozen=True, slots=True)
class FileChecks:
    """Whether the files a configuration names are usable, beyond readable.

    ``music(path)``: why that audio file cannot be played, or None.
    ``tls(settings)``: the ``(server.tls key, why)`` of each file that cannot be
    used. The defaults accept every readable file.
    """

    music: Callable[[Path], str | None] = _playable
    tls: Callable[[TlsConfig], list[tuple[str, str]]] = _usable


PATH_ONLY = FileChecks()
"""Files are checked to exist and be readable, nothing more."""


def load_config(path: str | os.PathLike[str], *, checks: FileChecks = PATH_ONLY) -> Config:
    """Read, validate and return the configuration file at ``path``.

    Raises ``ConfigError`` when the file cannot be read or is invalid.
    """
    text = read_yaml_file(path)
    base_dir = Path(os.fspath(path)).resolve().parent
    return load_config_text(text, os.fspath(path), base_dir, checks=checks)


def read_yaml_file(path: str | os.PathLike[str]) -> str:
    """The text of a YAML file (configuration or scenario), at most ``MAX_BYTES`` of UTF-8.

    Raises ``ConfigError`` (named ``path``) when the file cannot be read, is
    too large or is not UTF-8.
    """
    file = Path(os.fspath(path))
    name = os.fspath(path)

    def unreadable(reason: str) -> ConfigError:
        return ConfigError([ConfigProblem(name, 0, 0, "", f"cannot read the file: {reason}")])

    try:
        with file.open("rb") as handle:
            data = handle.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise unreadable("no such file") from None
    except IsADirectoryError:
        raise unreadable("it is a directory") from None
    except PermissionError:
        raise unreadable("permission denied") from None
    except OSError as exc:
        raise unreadable(exc.strerror or str(exc)) from None
    if len(data) > MAX_BYTES:
        raise ConfigError(
            [
                ConfigProblem(
                    name,
                    1,
                    1,
                    "",
                    f"the file is larger than {MAX_BYTES // 1024} KiB; refusing to read it",
                )
            ]
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ConfigError(
            [
                ConfigProblem(
                    name,
                    line,
                    column,
                    "",
                    f"not valid UTF-8 (byte 0x{data[exc.start]:02x}); save the file as UTF-8",
                )
            ]
        ) from None


def load_config_text(
    text: str, filename: str, base_dir: Path, *, checks: FileChecks = PATH_ONLY
) -> Config:
    """Validate configuration ``text``; ``filename`` is only used in messages.

    Relative music paths (``server.media.music``, ``lines[].music``, ``queue.music``)
    are resolved against ``base_dir``.
    """
    return load_config_document(parse_yaml(text, filename), filename, base_dir, checks=checks)


def load_config_document(
    doc: Document, filename: str, base_dir: Path, *, checks: FileChecks = PATH_ONLY
) -> Config:
    """Validate an already parsed configuration document (passes 2 and 3).

    ``doc`` may be a part of a larger file (a scenario's inline ``config``, see
    :meth:`~huntgroup.config.safe_yaml.Document.subdocument`): its positions
    are those of that file, named ``filename``; relative paths are resolved
    against ``base_dir``.
    """
    problems: list[ConfigProblem] = list(doc.problems)
    reported: set[FieldPath] = set(doc.problem_paths)

    def fresh(path: FieldPath) -> bool:
        return not any(path[: len(r)] == r for r in reported)

    cfg: Config | None = None
    try:
        cfg = Config.model_validate(doc.data)
    except ValidationError as exc:
        found = _validation_problems(exc, doc, filename)
        problems += [p for path, p in found if fresh(path)]
        reported |= {path for path, _ in found}
    view = cfg if cfg is not None else _best_effort_view(doc.data)
    for path, message in semantic_problems(view):
        if fresh(path):
            message = _FIRST_AT.sub(lambda m: _first_at_line(m, doc), message)
            problems.append(_problem(filename, doc.locations.of_value(path), path, message))
    music, music_problems = _check_music(doc, filename, base_dir, checks)
    problems += music_problems
    announcements, misfits = announcement_files(
        _items(doc.data.get("groups")),
        base_dir,
        lambda value: _resolve_music(value, base_dir, checks, what="announcement"),
    )
    problems += [_problem(filename, doc.locations.of_value(p), p, m) for p, m in misfits]
    tls, tls_problems = _check_tls(doc, filename, base_dir, checks)
    problems += tls_problems
    if problems or cfg is None:
        problems.sort(key=lambda p: (p.line, p.column))
        raise ConfigError(problems)
    cfg = _with_music(cfg, music)
    cfg = _with_announcements(cfg, announcements, filename)
    if tls:
        server = cfg.server
        cfg = cfg.model_copy(
            update={"server": server.model_copy(update={"tls": server.tls.model_copy(update=tls)})}
        )
    return _with_records_paths(_with_admin_token_path(cfg, base_dir), base_dir)


def _with_records_paths(cfg: Config, base_dir: Path) -> Config:
    """The files of ``records:`` (``jsonl``, ``queue_log``, ``postgres.spool``) relative to
    the configuration file, made absolute (they are opened when the server starts)."""

    def absolute(path: str | None) -> str | None:
        return path if path is None else str(base_dir / Path(path).expanduser())

    records = cfg.records
    postgres = records.postgres
    if postgres is not None:
        postgres = postgres.model_copy(update={"spool": absolute(postgres.spool)})
    update = {
        "jsonl": absolute(records.jsonl),
        "queue_log": absolute(records.queue_log),
        "postgres": postgres,
    }
    return cfg.model_copy(update={"records": records.model_copy(update=update)})


def _with_admin_token_path(cfg: Config, base_dir: Path) -> Config:
    """``server.admin.token_file`` relative to the configuration file, made absolute (the
    token itself is read when the listener starts: it may be written after the check)."""
    admin = cfg.server.admin
    if admin.token_file is None or os.path.isabs(admin.token_file):
        return cfg
    path = str(base_dir / admin.token_file)
    server = cfg.server.model_copy(update={"admin": admin.model_copy(update={"token_file": path})})
    return cfg.model_copy(update={"server": server})


_FIRST_AT = re.compile(r"\(first at ([A-Za-z0-9_.]+)\)")


def _first_at_line(match: re.Match[str], doc: Document) -> str:
    """Rewrite "(first at groups.0.pilot)" as "(first at line 12)" for admins."""
    path = tuple(int(p) if p.isdigit() else p for p in match.group(1).split("."))
    return f"(first at line {doc.locations.of_value(path).line})"


def _validation_problems(
    exc: ValidationError, doc: Document, filename: str
) -> list[tuple[FieldPath, ConfigProblem]]:
    problems: list[tuple[FieldPath, ConfigProblem]] = []
    for error in exc.errors(include_url=False):
        path: FieldPath = tuple(error["loc"])
        kind = error["type"]
        ctx: Mapping[str, Any] = error.get("ctx") or {}
        raw = doc.locations.plain_scalars.get(path)
        message = explain(kind, path, error.get("input"), ctx, raw, error["msg"])
        if kind == "missing":
            pos = doc.locations.of_value(path[:-1])
        elif kind == "extra_forbidden":
            pos = doc.locations.of_key(path)
        else:
            pos = doc.locations.of_value(path)
        problems.append((path, _problem(filename, pos, path, message)))
    return problems


class _Unmatchable:
    """A stand-in for an invalid value: equal to nothing but itself, never a duplicate."""

    def __repr__(self) -> str:
        return f"<invalid {id(self):x}>"


def _text(value: Any) -> Any:
    return value if isinstance(value, str) else _Unmatchable()


def _target(value: Any) -> str | None:
    """A forwarding target as written (for the loop check), None when it is not text."""
    return value if isinstance(value, str) else None


def _items(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _fields(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _best_effort_view(data: Mapping[str, Any]) -> Config:
    """The fields that cross-field rules read, with invalid values made unmatchable.

    Items keep their indexes so that problem paths match the file. No
    validation runs here (``model_construct``): this view is only ever passed
    to :func:`semantic_problems`.
    """
    lines = []
    for raw in _items(data.get("lines")):
        number = _fields(raw).get("number")
        valid = isinstance(number, str) and NUMBER_RE.match(number)
        line_fields: dict[str, Any] = {"number": number if valid else _Unmatchable()}
        for key in ("forward_busy", "forward_no_answer"):
            line_fields[key] = _target(_fields(raw).get(key))
        lines.append(LineConfig.model_construct(**line_fields))
    groups = []
    for raw_group in _items(data.get("groups")):
        group = _fields(raw_group)
        members = []
        for raw_member in _items(group.get("members")):
            member = _fields(raw_member)
            position = member.get("position")
            line, uri = member.get("line"), member.get("uri")
            member_fields: dict[str, Any] = {
                "position": position if type(position) is int else _Unmatchable(),
                "line": line if isinstance(line, str) else None,
                "uri": uri if isinstance(uri, str) or isinstance(line, str) else _Unmatchable(),
            }
            members.append(MemberConfig.model_construct(**member_fields))
        overflow = _target(_fields(group.get("queue")).get("overflow_to"))
        forward_to = _target(_fields(group.get("no_answer")).get("forward_to"))
        groups.append(
            GroupConfig.model_construct(
                name=_text(group.get("name")),
                pilot=_text(group.get("pilot")),
                members=tuple(members),
                queue=QueueConfig.model_construct(overflow_to=overflow),
                no_answer=NoAnswerConfig.model_construct(forward_to=forward_to),
            )
        )
    return Config.model_construct(lines=tuple(lines), groups=tuple(groups))


def _music_fields(doc: Document) -> Iterator[tuple[FieldPath, object]]:
    """Every music setting of the file: ``server.media.music``, each line's ``music``
    and each group's ``queue.music``, with its field path."""
    yield (
        ("server", "media", "music"),
        _fields(_fields(doc.data.get("server")).get("media")).get("music"),
    )
    for i, raw_line in enumerate(_items(doc.data.get("lines"))):
        yield ("lines", i, "music"), _fields(raw_line).get("music")
    for i, raw_group in enumerate(_items(doc.data.get("groups"))):
        yield ("groups", i, "queue", "music"), _fields(_fields(raw_group).get("queue")).get("music")


def _check_music(
    doc: Document, filename: str, base_dir: Path, checks: FileChecks
) -> tuple[dict[FieldPath, str], list[ConfigProblem]]:
    """Resolve every music setting; return {field path: absolute path}."""
    resolved: dict[FieldPath, str] = {}
    problems: list[ConfigProblem] = []
    for path, music in _music_fields(doc):
        if not isinstance(music, str):
            continue  # absent, null, or a type error that validation reports
        if music.strip():
            target, message = _resolve_music(music, base_dir, checks)
        else:
            target, message = music, "empty music path; use null for the default music"
        if message is None:
            resolved[path] = target
        else:
            problems.append(_problem(filename, doc.locations.of_value(path), path, message))
    return resolved, problems


TLS_FILES = ("certificate", "private_key", "ca")


def _check_tls(
    doc: Document, filename: str, base_dir: Path, checks: FileChecks
) -> tuple[dict[str, str], list[ConfigProblem]]:
    """Resolve ``server.tls`` files and load them as the server will; {key: absolute path}."""
    raw = _fields(_fields(doc.data.get("server")).get("tls"))
    resolved: dict[str, str] = {}
    problems: list[ConfigProblem] = []

    def problem(key: str, message: str) -> None:
        path: FieldPath = ("server", "tls", key)
        problems.append(_problem(filename, doc.locations.of_value(path), path, message))

    for key in TLS_FILES:
        value = raw.get(key)
        if not isinstance(value, str):
            continue  # null, absent, or a type error that validation reports
        target, message = _resolve_file(value, base_dir, "TLS file", "TLS file path")
        if message is None:
            resolved[key] = target
        else:
            problem(key, message)
    if problems or not resolved:
        return resolved, problems
    try:
        settings = TlsConfig.model_validate({**raw, **resolved})
    except ValidationError:
        return resolved, problems  # reported by validation
    for key, message in checks.tls(settings):
        problem(key, message)
    return resolved, problems


def _resolve_file(value: str, base_dir: Path, what: str, path_word: str) -> tuple[str, str | None]:
    """The absolute path of a file the configuration names and, when unusable, why."""
    if not value.strip():
        return value, f"empty {path_word}; use null for none"
    try:
        target = (base_dir / Path(value).expanduser()).resolve()
        if not target.exists():
            return str(target), f"{what} not found: {_short(str(target))}"
        if not target.is_file():
            return str(target), f"{path_word} is not a regular file: {_short(str(target))}"
        if not os.access(target, os.R_OK):
            return str(target), f"{what} is not readable: {_short(str(target))}"
    except (OSError, RuntimeError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return value, f"invalid {path_word} {_short(value)}: {reason}"
    return str(target), None


def _short(text: str, limit: int = 120) -> str:
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


def _resolve_music(
    music: str, base_dir: Path, checks: FileChecks, *, what: str = "music"
) -> tuple[str, str | None]:
    """The absolute path of a music file (or another audio file: ``what``, e.g. an
    announcement) and, when it is unusable, why."""
    target, message = _resolve_file(music, base_dir, f"{what} file", f"{what} path")
    if message is not None:
        return target, message
    try:
        unplayable = checks.music(Path(target))
        if unplayable is not None:  # the check words it for music
            return target, unplayable.replace("music file", f"{what} file", 1)
    except (OSError, RuntimeError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return music, f"invalid {what} path {_short(music)}: {reason}"
    return target, None


def _with_music(cfg: Config, music: dict[FieldPath, str]) -> Config:
    """``cfg`` with every music setting replaced by its absolute path."""
    if not music:
        return cfg
    server = cfg.server
    media_music = music.get(("server", "media", "music"))
    if media_music is not None:
        media = server.media.model_copy(update={"music": media_music})
        server = server.model_copy(update={"media": media})
    lines = tuple(
        line.model_copy(update={"music": music[("lines", i, "music")]})
        if ("lines", i, "music") in music
        else line
        for i, line in enumerate(cfg.lines)
    )
    groups = tuple(
        g.model_copy(update={"queue": g.queue.model_copy(update={"music": path})})
        if (path := music.get(("groups", i, "queue", "music"))) is not None
        else g
        for i, g in enumerate(cfg.groups)
    )
    return cfg.model_copy(update={"server": server, "lines": lines, "groups": groups})


def _with_announcements(cfg: Config, resolved: dict[int, dict[str, Any]], filename: str) -> Config:
    """Put each group's announcements with their files resolved (prompt directories made
    mappings) in place."""
    groups = list(cfg.groups)
    for i, update in resolved.items():
        group = groups[i]
        try:
            announcements = AnnouncementsConfig.model_validate(update)
        except ValidationError as exc:  # cannot be: the same values passed above
            path: FieldPath = ("groups", i, "queue", "announcements")
            raise ConfigError([_problem(filename, Position(1, 1), path, str(exc))]) from None
        queue = group.queue.model_copy(update={"announcements": announcements})
        groups[i] = group.model_copy(update={"queue": queue})
    return cfg.model_copy(update={"groups": tuple(groups)}) if resolved else cfg


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def summarize(cfg: Config) -> str:
    """One line describing a valid configuration, for ``huntgroup check``."""
    members = sum(len(g.members) for g in cfg.groups)
    return (
        f"ok: {_plural(len(cfg.groups), 'group')}, {_plural(len(cfg.lines), 'line')}, "
        f"{_plural(members, 'member')}, listening on {' '.join(cfg.server.listen)}"
    )


def config_warnings(cfg: Config) -> list[str]:
    """What ``huntgroup check`` warns about in a valid configuration (not errors)."""
    warnings: list[str] = []
    for i, line in enumerate(cfg.lines):
        if line.password is not None or (line.ha1_md5 is None) == (line.ha1_sha256 is None):
            continue
        only, other, algorithm = (
            ("ha1_md5", "ha1_sha256", "MD5")
            if line.ha1_md5 is not None
            else ("ha1_sha256", "ha1_md5", "SHA-256")
        )
        warnings.append(
            f"lines.{i} ({line.number}): warning: only {only} is set, so the line is "
            f"challenged with {algorithm} alone: phones that lack it cannot register, and "
            f"the narrowed challenge sets the line apart from the other numbers (a prober "
            f"learns it exists unless enough lines look the same); give it a password, or "
            f'{other} too (docs/security.md, "Enumeration and password guessing")'
        )
    return warnings
