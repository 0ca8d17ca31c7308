"""What a new configuration changes, in words an admin reads before or after a reload.

Theory of operation
-------------------
:func:`config_changes` compares two validated configurations and returns one
line per change, in file order: ``server`` settings (which need a restart),
lines added/removed/changed, groups added/removed, and per group its
settings and its members (added, removed, moved, joined flag). Lines are
matched by number, groups by name, members by their line number or URI, so
reordering the file is not a change. Secrets are never printed: a changed
password or hash reads "secret changed".

``huntgroup diff OLD NEW`` prints these lines, and the server logs them on
each SIGHUP reload.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from huntgroup.config.models import Config, GroupConfig, LineConfig, MemberConfig

SECRETS = frozenset({"password", "ha1_md5", "ha1_sha256"})


def config_changes(old: Config, new: Config) -> list[str]:
    """Every difference from ``old`` to ``new``, one readable line each ([] when none)."""
    out = [
        f"server: {change} (takes effect at the next restart)"
        for change in _fields(old.server.model_dump(), new.server.model_dump())
    ]
    out += _lines(old.lines, new.lines)
    out += _groups(old.groups, new.groups)
    return out


def _lines(old: tuple[LineConfig, ...], new: tuple[LineConfig, ...]) -> list[str]:
    before = {line.number: line for line in old}
    after = {line.number: line for line in new}
    out = [f"line {n}: removed" for n in before if n not in after]
    for number, line in after.items():
        if number not in before:
            out.append(f"line {number}: added")
            continue
        changes = _fields(before[number].model_dump(), line.model_dump())
        out += [f"line {number}: {change}" for change in changes]
    return out


def _groups(old: tuple[GroupConfig, ...], new: tuple[GroupConfig, ...]) -> list[str]:
    before = {g.name: g for g in old}
    after = {g.name: g for g in new}
    out = [
        f"group {name}: removed (its waiting calls are released)"
        for name in before
        if name not in after
    ]
    for name, group in after.items():
        if name not in before:
            out.append(f"group {name}: added (pilot {group.pilot})")
            continue
        settings_old = before[name].model_dump(exclude={"members"})
        settings_new = group.model_dump(exclude={"members"})
        out += [f"group {name}: {change}" for change in _fields(settings_old, settings_new)]
        out += [f"group {name}: {change}" for change in _members(before[name], group)]
    return out


def _members(old: GroupConfig, new: GroupConfig) -> list[str]:
    before = {m.key: m for m in old.members}
    after = {m.key: m for m in new.members}
    out = [f"member {key} removed" for key in before if key not in after]
    for key, member in after.items():
        was: MemberConfig | None = before.get(key)
        if was is None:
            state = "" if member.joined else ", not joined"
            out.append(f"member {key} added at position {member.position}{state}")
            continue
        if was.position != member.position:
            out.append(f"member {key} position {was.position} -> {member.position}")
        if was.joined != member.joined:
            out.append(f"member {key} joined {_show(was.joined)} -> {_show(member.joined)}")
    return out


def _fields(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> list[str]:
    """``key old -> new`` for each leaf that differs (nested mappings as dotted keys)."""
    out: list[str] = []
    for key in new:
        a, b = old.get(key), new[key]
        name = f"{prefix}{key}"
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            out += _fields(a, b, f"{name}.")
        elif a != b:
            if key in SECRETS:
                out.append(f"{name}: secret changed" if b is not None else f"{name}: removed")
            else:
                out.append(f"{name} {_show(a)} -> {_show(b)}")
    return out


def _show(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    return str(value)
