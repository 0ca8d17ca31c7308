"""The audio files of ``queue.announcements``: each one resolved and checked like music.

Theory of operation
-------------------
A group's announcements name audio files: the ``greeting``, the ``periodic``
message's ``file``, and the position's ``prompts``, either a directory or a
mapping of prompt names to files. The loader (:mod:`huntgroup.config.loader`)
hands :func:`announcement_files` the raw document and a ``resolve`` function
that turns one path into an absolute, readable and playable file (or says why
not), the very check ``queue.music`` gets. A prompt directory is listed here:
each regular file whose name without its extension is a prompt name
(:data:`~huntgroup.config.models.PROMPT_NAMES`: ``you-are-caller``,
``in-queue``, ``0`` to ``99``) is that prompt; other files are ignored; two
files for one prompt, or a required prompt missing
(:data:`~huntgroup.config.models.REQUIRED_PROMPTS`), is a problem. At most
:data:`MAX_DIRECTORY_ENTRIES` entries are looked at.

The result is, per group index, the values to put in place (absolute paths,
the directory replaced by its mapping), and the problems as (field path,
message).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from huntgroup.config.models import PROMPT_NAMES, REQUIRED_PROMPTS

FieldPath = tuple[str | int, ...]
Resolve = Callable[[str], tuple[str, str | None]]
"""A path as written -> (its absolute path, why it cannot be used or None)."""

MAX_DIRECTORY_ENTRIES = 1000
"""Entries of a prompt directory looked at, at most (it holds about 100 files)."""

__all__ = ["MAX_DIRECTORY_ENTRIES", "announcement_files"]


def announcement_files(
    groups: list[Any], base_dir: Path, resolve: Resolve
) -> tuple[dict[int, dict[str, Any]], list[tuple[FieldPath, str]]]:
    """{group index: the ``queue.announcements`` with its files resolved}, and problems.

    Values that are not text (null, or a type error that validation reports) are
    left alone.
    """
    resolved: dict[int, dict[str, Any]] = {}
    problems: list[tuple[FieldPath, str]] = []
    for i, raw_group in enumerate(groups):
        raw = _fields(_fields(_fields(raw_group).get("queue")).get("announcements"))
        if not raw:
            continue
        at: FieldPath = ("groups", i, "queue", "announcements")
        update: dict[str, Any] = dict(raw)
        greeting = raw.get("greeting")
        if isinstance(greeting, str):
            update["greeting"] = _one(greeting, (*at, "greeting"), resolve, problems)
        periodic = _fields(raw.get("periodic"))
        if isinstance(periodic.get("file"), str):
            path = (*at, "periodic", "file")
            update["periodic"] = {
                **periodic,
                "file": _one(periodic["file"], path, resolve, problems),
            }
        position = _fields(raw.get("position"))
        prompts = position.get("prompts")
        path = (*at, "position", "prompts")
        if isinstance(prompts, str):
            found = _directory(prompts, base_dir, path, problems)
            mapping = {name: _one(file, path, resolve, problems) for name, file in found.items()}
            update["position"] = {**position, "prompts": mapping}
        elif isinstance(prompts, dict):
            mapping = {
                name: _one(file, (*path, name), resolve, problems)
                if isinstance(file, str)
                else file
                for name, file in prompts.items()
            }
            update["position"] = {**position, "prompts": mapping}
        resolved[i] = update
    return resolved, problems


def _one(
    value: str, path: FieldPath, resolve: Resolve, problems: list[tuple[FieldPath, str]]
) -> str:
    if not value.strip():
        problems.append((path, "empty file path; use null for none"))
        return value
    target, message = resolve(value)
    if message is not None:
        problems.append((path, message))
    return target


def _directory(
    value: str, base_dir: Path, path: FieldPath, problems: list[tuple[FieldPath, str]]
) -> dict[str, str]:
    """The prompt files of directory ``value``: {prompt name: file path}."""
    if not value.strip():
        problems.append((path, "empty prompt directory path"))
        return {}
    found: dict[str, str] = {}
    try:
        directory = (base_dir / Path(value).expanduser()).resolve()
        if not directory.is_dir():
            problems.append((path, f"prompt directory not found: {_short(str(directory))}"))
            return {}
        with os.scandir(directory) as entries:
            for count, entry in enumerate(entries):
                if count >= MAX_DIRECTORY_ENTRIES:
                    problems.append(
                        (path, f"more than {MAX_DIRECTORY_ENTRIES} entries in the prompt directory")
                    )
                    return {}
                name = entry.name.split(".", 1)[0] if "." in entry.name[1:] else entry.name
                if name not in PROMPT_NAMES or not entry.is_file():
                    continue
                if name in found:
                    problems.append(
                        (
                            path,
                            f"two files for prompt {name!r}: {_short(found[name])} and "
                            f"{_short(entry.path)}",
                        )
                    )
                    continue
                found[name] = entry.path
    except (OSError, RuntimeError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        problems.append((path, f"cannot read the prompt directory {_short(value)}: {reason}"))
        return {}
    missing = [name for name in REQUIRED_PROMPTS if name not in found]
    if missing:
        problems.append(
            (
                path,
                f"the prompt directory has no file for {', '.join(missing)} (expected e.g. "
                f"{missing[0]}.wav)",
            )
        )
    return found


def _fields(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _short(text: str, limit: int = 120) -> str:
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")
