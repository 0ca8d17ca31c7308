"""Reading a server-sent-events stream (text/event-stream) in tests.

:func:`next_event` reads one event (its ``event:`` and ``data:`` fields) from an
aiohttp response, or a comment (a heartbeat, ``: ...``) as the event ``":"``.
Bounded by ``timeout``, which only limits a failure.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import aiohttp


@dataclass(frozen=True)
class Event:
    name: str  # ":" for a comment line
    data: str

    def json(self) -> Any:
        return json.loads(self.data)


async def next_event(response: aiohttp.ClientResponse, *, timeout: float = 30.0) -> Event:
    """The next event or comment of ``response`` (``retry:`` lines are skipped)."""

    async def read() -> Event:
        name, data = "message", []
        while True:
            raw = await response.content.readline()
            if not raw:
                raise AssertionError("the event stream ended")
            line = raw.decode().rstrip("\n")
            if line.startswith(":"):
                return Event(":", line[1:].strip())
            if line == "":
                if data:
                    return Event(name, "\n".join(data))
                continue
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "event":
                name = value
            elif field == "data":
                data.append(value)

    return await asyncio.wait_for(read(), timeout)


async def next_snapshot(response: aiohttp.ClientResponse, *, timeout: float = 30.0) -> Any:
    """The JSON of the next ``snapshot`` event (heartbeats skipped), within ``timeout``."""

    async def read() -> Any:
        while True:
            event = await next_event(response, timeout=timeout)
            if event.name == "snapshot":
                return event.json()

    return await asyncio.wait_for(read(), timeout)
