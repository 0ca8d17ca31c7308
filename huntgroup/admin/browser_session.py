"""A browser's pass to the wallboard when the admin listener has a token.

A browser's ``EventSource`` cannot send ``Authorization: Bearer``, so a browser
shows the token once: the login page (``/login``, served without the token,
holding no data) posts it in that header to ``/session`` (guarded like every
endpoint), which answers with the cookie :data:`COOKIE` (``HttpOnly``,
``SameSite=Strict``, ``Secure`` over HTTPS, a session cookie). The cookie holds
an HMAC of the token, not the token: it cannot be replayed as a bearer token,
and it only opens :data:`COOKIE_PATHS` (the wallboard's page, script and
event stream) with ``GET``: never the control API, never a request that
changes anything. Rotating the token voids every cookie. The token never
appears in a URL, so never in a log or a browser history.
"""

from __future__ import annotations

import hashlib
import hmac

from aiohttp import web

COOKIE = "huntgroup_admin"
COOKIE_PATHS = frozenset({"/", "/events", "/static/wallboard.js"})
"""What the cookie opens: the wallboard, read-only."""
LOGIN_PATHS = frozenset(
    {"/login", "/static/login.js", "/static/wallboard.css", "/static/favicon.svg"}
)
"""Served without the token: the login page and what it loads (no data in them)."""
SAFE_METHODS = frozenset({"GET", "HEAD"})
_PURPOSE = b"huntgroup admin listener: wallboard browser cookie, v1"

COOKIE_VALUE: web.AppKey[str | None] = web.AppKey("browser_cookie")
"""The cookie's expected value (None: no token, no cookie needed), for ``/session``."""


def cookie_value(token: str) -> str:
    """The cookie a browser holding ``token`` is given (an HMAC of the token)."""
    return hmac.new(token.encode(), _PURPOSE, hashlib.sha256).hexdigest()


def browser_authorized(request: web.Request, expected: str) -> bool:
    """Whether ``request`` is a wallboard read carrying the right cookie (constant time)."""
    if request.method not in SAFE_METHODS or request.path not in COOKIE_PATHS:
        return False
    given = request.cookies.get(COOKIE)
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def set_cookie(response: web.StreamResponse, value: str, *, secure: bool) -> None:
    """Give the browser its cookie on ``response``."""
    response.set_cookie(
        COOKIE, value, path="/", httponly=True, samesite="Strict", secure=secure or None
    )
