"""SIP option tags: the extensions we support, and the check of a request's ``Require``.

Theory of operation
-------------------
An extension is named by an option tag (RFC 3261 §19.2). A UAC lists in
``Supported`` (§20.37) the ones it understands, and in ``Require`` (§20.32)
the ones the UAS must understand to process the request. A UAS that does not
understand one of the ``Require`` tags refuses the request with 420 Bad
Extension and lists them in ``Unsupported`` (§8.2.2.3, §20.40); every request
is so checked except CANCEL and ACK (their ``Require`` is that of their
INVITE). ``Proxy-Require`` (§20.29) is for proxies: a UAS ignores it.

:data:`SUPPORTED` is what the server understands: ``timer`` (RFC 4028
session timers), ``norefersub`` (RFC 4488: a REFER with ``Refer-Sub:
false`` creates no subscription, engine/b2bua/transfer.py) and ``path``
(RFC 3327: a REGISTER's Path is stored with its bindings and becomes the
Route set of requests to them, engine/b2bua/lines.py). Reliable
provisional responses (``100rel``, RFC 3262) are *not* supported, so an INVITE
with ``Require: 100rel`` is refused with 420 ``Unsupported: 100rel``, and our
own requests never list ``100rel`` in ``Supported`` (a member must then not
send a reliable provisional, §3 of RFC 3262).

Tags are matched without regard to case (a lenient reading: RFC 3261 does not
say). ``Unsupported`` echoes each unknown tag as it came, once, only when it
is a token (anything else could not be an option tag: the request is
malformed, 400), and at most :data:`MAX_LISTED` of them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from huntgroup.engine.sip.grammar import bad, is_token, split_list
from huntgroup.engine.sip.message import Message, Request

__all__ = [
    "MAX_LISTED",
    "SUPPORTED",
    "option_tags",
    "supported_value",
    "unsupported_required",
]

SUPPORTED: Final = frozenset({"norefersub", "path", "timer"})
"""The option tags this server understands (lower case)."""

MAX_LISTED: Final = 16
"""At most this many unknown tags are echoed in ``Unsupported`` (a hostile request may
list hundreds)."""

EXEMPT_METHODS: Final = frozenset({"ACK", "CANCEL"})
"""Requests whose ``Require`` is not checked (§8.2.2.3)."""


def option_tags(message: Message, header: str) -> tuple[str, ...]:
    """The option tags of every ``header`` field of ``message``, in order, as written.

    Raises :class:`~huntgroup.errors.RemoteProtocolError` (400) for an empty element or
    an item that is not a token.
    """
    tags: list[str] = []
    for value in message.headers.get_all(header):
        for item in split_list(value):
            if not is_token(item):
                raise bad(f"Bad {header} option tag")
            tags.append(item)
    return tuple(tags)


def unsupported_required(message: Message, supported: Iterable[str] = SUPPORTED) -> tuple[str, ...]:
    """The ``Require`` tags of a request that we do not understand (§8.2.2.3), each
    once, at most :data:`MAX_LISTED`; () when it may be processed (or it is a CANCEL
    or an ACK). Raises :class:`~huntgroup.errors.RemoteProtocolError` (400) for a malformed
    ``Require``."""
    if isinstance(message, Request) and message.method in EXEMPT_METHODS:
        return ()
    known = {tag.lower() for tag in supported}
    unknown: dict[str, str] = {}
    for tag in option_tags(message, "Require"):
        if tag.lower() not in known and tag.lower() not in unknown:
            unknown[tag.lower()] = tag
    return tuple(unknown.values())[:MAX_LISTED]


def supported_value(supported: Iterable[str] = SUPPORTED) -> str:
    """The ``Supported`` header value listing ``supported`` (sorted: a stable value)."""
    return ", ".join(sorted(supported))
