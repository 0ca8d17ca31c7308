"""What a browser must not make the admin listener do: cross-site requests and DNS rebinding.

Theory of operation
-------------------
Without a token (a loopback listener) any web page open in a browser on the
machine can send requests to ``http://127.0.0.1:PORT``: a form or a ``fetch``
with no body and no custom header is "simple" and goes without a CORS
preflight, so a page could pause members or reload; and a page whose name
later resolves to 127.0.0.1 (DNS rebinding) is same-origin with the listener
and could read the calls. Three checks, applied before the token's, close that:

1. ``Host`` must name the listener: an IP address (a browser sending one has
   navigated to that address, which no rebinding can do), ``localhost`` (or a
   name under ``.localhost``), the host of ``server.admin.listen``, or a name
   of ``server.admin.allowed_hosts`` (the proxy's public name). Otherwise
   ``421``: a rebound page carries its own name. Checked without a token only:
   with one, a rebound page has neither the token nor the cookie (bound to the
   listener's own name, ``SameSite=Strict``), and a scraper may name the node
   as it likes.
2. A request with an ``Origin`` must come from the listener's own origin, the
   scheme-less ``Origin`` host equal to ``Host`` (``403`` otherwise; ``null``
   too). Browsers send ``Origin`` on every cross-origin request and on every
   ``POST``; ``curl`` and ``huntgroup ctl`` send none.
3. A request that may change state (anything but ``GET`` and ``HEAD``) must
   carry a header no page can send cross-site without a preflight, which the
   listener never grants: ``Content-Type: application/json``,
   ``X-Huntgroup-Client`` (sent by ``huntgroup ctl``) or ``Authorization``
   (sent by the wallboard's sign-in form). Otherwise ``415``.

``/healthz`` skips the checks: a probe may name the node as it likes, and the
answer tells nothing.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from urllib.parse import urlsplit

from huntgroup.config.models import LOOPBACK_NAMES

CLIENT_HEADER = "X-Huntgroup-Client"
"""The header ``huntgroup ctl`` sends: a web page cannot add it without a preflight."""
SAFE_METHODS = frozenset({"GET", "HEAD"})
PREFLIGHTED_HEADERS = (CLIENT_HEADER, "Authorization")


def _hostname(host: str) -> str:
    """``host`` of a ``Host`` header (``name``, ``name:port``, ``[v6]:port``), lowercase."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    if host.count(":") == 1:
        host = host.split(":", 1)[0]
    return host.rstrip(".")


def _is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class RequestGuard:
    """The three checks of the module docstring, for one listener."""

    def __init__(self, listen_host: str, allowed_hosts: Iterable[str]) -> None:
        names = {_hostname(h) for h in allowed_hosts} | {_hostname(listen_host)}
        self.names = frozenset(names | set(LOOPBACK_NAMES))

    def host_allowed(self, host: str | None) -> bool:
        """Whether ``Host`` names this listener (a request without one is no browser's)."""
        if host is None:
            return True
        name = _hostname(host)
        return _is_address(name) or name in self.names or name.endswith(".localhost")

    @staticmethod
    def origin_allowed(origin: str | None, host: str | None) -> bool:
        """Whether ``Origin`` (if any) is the listener's own origin, reached as ``Host``."""
        if origin is None:
            return True
        parts = urlsplit(origin.strip())
        if parts.scheme not in ("http", "https") or host is None:
            return False
        return parts.netloc.lower() == host.strip().lower()

    @staticmethod
    def intent_shown(method: str, content_type: str | None, headers: Iterable[str]) -> bool:
        """Whether a request that may change state carries a header that needs a preflight."""
        if method in SAFE_METHODS:
            return True
        if content_type is not None and content_type.split(";")[0].strip().lower() == (
            "application/json"
        ):
            return True
        present = {h.lower() for h in headers}
        return any(h.lower() in present for h in PREFLIGHTED_HEADERS)
