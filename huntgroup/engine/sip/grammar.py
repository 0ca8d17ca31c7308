"""Low-level SIP grammar helpers (RFC 3261 §25): character classes, quoted
strings, list splitting and ``;name=value`` parameters.

Theory of operation: the message parser first unfolds header lines, so every
function here works on a single logical header value (a ``str`` decoded from
UTF-8 with ``surrogateescape``, so any byte survives a round trip). Each
function either returns a well-formed result or raises
:class:`~huntgroup.errors.RemoteProtocolError` with status 400; nothing else
escapes.

Invariants:

- ``split_list`` never splits inside a quoted string or inside ``<...>``.
- ``parse_params`` keeps parameter order and the original spelling of names and
  values; look-ups through :func:`param_lookup` are case-insensitive on names.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from huntgroup.errors import RemoteProtocolError

ALPHANUM = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
TOKEN_CHARS = ALPHANUM | frozenset("-.!%*_+`'~")
# "word" (Call-ID) adds these to token.
WORD_CHARS = TOKEN_CHARS | frozenset('()<>:\\"/[]?{}')
WSP = " \t"

Params = tuple[tuple[str, str | None], ...]
"""Ordered parameters: ``(name, value)``; ``value`` is ``None`` for a bare name."""


_TOKEN_CLASS = "[" + re.escape("".join(sorted(TOKEN_CHARS))) + "]"
_TOKEN_RE = re.compile(_TOKEN_CLASS + "+")
# quoted-string (RFC 3261 §25.1): qdtext is any character but a control (HTAB
# aside), '"' and '\\' (UTF8-NONASCII included); quoted-pair escapes %x00-7F
# except CR and LF.
_QUOTED_RE = re.compile(r'"(?:[^"\\\x00-\x08\x0a-\x1f\x7f]|\\[\x00-\x09\x0b\x0c\x0e-\x7f])*"')
# gen-value = token / host / quoted-string (§25.1): a hostname or an IPv4
# address is a token; an IPv6 address is written in brackets, or bare where
# the grammar asks for one (Via received, §20.42). Lexical rules only: a
# parameter that holds an address is checked as one by its reader.
_IPV6 = r"[0-9A-Fa-f.]*:[0-9A-Fa-f:.]*|\[[0-9A-Fa-f:.]+\]"
_GEN_VALUE_RE = re.compile(f"{_IPV6}|{_TOKEN_CLASS}+")
_PLAIN_PARAM = re.compile(f";({_TOKEN_CLASS}+)(?:=({_IPV6}|{_TOKEN_CLASS}+))?" r"(?=;|\Z)")
_WORD_RE = re.compile("[" + re.escape("".join(sorted(WORD_CHARS))) + "]+")


# is_token and is_word take ASCII letters and digits (a subset of both classes: tags,
# most branches, methods, Call-ID parts) with two string methods: a regular expression
# call costs a few thousand instructions of set-up, more than the scan itself.


def is_token(text: str) -> bool:
    """True when ``text`` is a non-empty RFC 3261 token."""
    return (text.isascii() and text.isalnum()) or _TOKEN_RE.fullmatch(text) is not None


def is_word(text: str) -> bool:
    """True when ``text`` is a non-empty RFC 3261 word (Call-ID part)."""
    return (text.isascii() and text.isalnum()) or _WORD_RE.fullmatch(text) is not None


def bad(message: str) -> RemoteProtocolError:
    """The error for a syntax problem: status 400 with ``message`` as reason."""
    return RemoteProtocolError(message, status=400)


def skip_ws(text: str, pos: int) -> int:
    """Index of the first non-whitespace character at or after ``pos``."""
    n = len(text)
    while pos < n and text[pos] in WSP:
        pos += 1
    return pos


def scan_quoted(text: str, pos: int) -> int:
    """``text[pos]`` is a double quote: return the index just past the closing one.

    The quoted-string follows RFC 3261 §25.1: no control character but HTAB
    inside, and a backslash escapes one US-ASCII character other than CR and
    LF (quoted-pair).
    """
    match = _QUOTED_RE.match(text, pos)
    if match is None:
        raise bad("Invalid quoted string")
    return match.end()


def scan_token(text: str, pos: int) -> int:
    """The index just past the token that starts at ``pos`` (``pos`` when there is none)."""
    match = _TOKEN_RE.match(text, pos)
    return pos if match is None else match.end()


def unquote(text: str) -> str:
    """The content of a quoted string, escapes resolved; other text unchanged."""
    if len(text) < 2 or text[0] != '"' or text[-1] != '"':
        return text
    if "\\" not in text:  # nothing escaped: the content as it is
        return text[1:-1]
    out: list[str] = []
    i = 1
    end = len(text) - 1
    while i < end:
        c = text[i]
        if c == "\\" and i + 1 < end:
            out.append(text[i + 1])
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def quote(text: str) -> str:
    """``text`` as a quoted string, escaping backslashes and double quotes."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def split_list(value: str) -> list[str]:
    """Split a header value on commas outside quotes and angle brackets.

    Returns the stripped elements; an empty element (``a,,b``) raises 400.
    """
    items: list[str] = []
    start = 0
    i = 0
    n = len(value)
    angle = False
    while i < n:
        c = value[i]
        if c == '"':
            i = scan_quoted(value, i)
            continue
        if c == "<":
            angle = True
        elif c == ">":
            angle = False
        elif c == "," and not angle:
            items.append(value[start:i].strip(WSP))
            start = i + 1
        i += 1
    if angle:
        raise bad("Unbalanced '<'")
    items.append(value[start:].strip(WSP))
    if any(not item for item in items):
        raise bad("Empty element in header list")
    return items


def parse_params(text: str, pos: int, *, what: str) -> tuple[Params, int]:
    """Parse ``*( SEMI generic-param )`` from ``text[pos:]``.

    Stops at the end of text. A value is a gen-value (RFC 3261 §25.1): a
    token (host names and IPv4 addresses are tokens), an IPv6 reference in
    brackets, or a quoted string, kept with its quotes (see :func:`unquote`).
    Raises 400 naming ``what`` on anything else.
    """
    params: list[tuple[str, str | None]] = []
    n = len(text)
    # Fast path for the usual spelling, ``;name`` or ``;name=token``, with no
    # whitespace or quotes: a parameter is taken only when ``;`` or the end
    # follows, so anything else is left whole to the general loop below.
    fast = _PLAIN_PARAM.match
    while pos < n:
        plain = fast(text, pos)
        if plain is None:
            break
        params.append((plain.group(1), plain.group(2)))
        pos = plain.end()
    pos = skip_ws(text, pos)
    while pos < n:
        if text[pos] != ";":
            raise bad(f"Invalid {what}: unexpected {text[pos]!r}")
        pos = skip_ws(text, pos + 1)
        start = pos
        pos = scan_token(text, pos)
        name = text[start:pos]
        if not name:
            raise bad(f"Invalid {what}: empty parameter")
        pos = skip_ws(text, pos)
        value: str | None = None
        if pos < n and text[pos] == "=":
            pos = skip_ws(text, pos + 1)
            if pos < n and text[pos] == '"':
                end = scan_quoted(text, pos)
                value = text[pos:end]
                pos = end
            else:
                plain_value = _GEN_VALUE_RE.match(text, pos)
                if plain_value is None:
                    raise bad(f"Invalid {what}: bad value for {name!r}")
                value = plain_value.group()
                pos = plain_value.end()
            pos = skip_ws(text, pos)
        params.append((name, value))
    return tuple(params), pos


def param_lookup(params: Sequence[tuple[str, str | None]], name: str) -> tuple[bool, str | None]:
    """``(present, value)`` of the first parameter called ``name`` (any case)."""
    key = name.lower()
    for pname, pvalue in params:
        if pname.lower() == key:
            return True, pvalue
    return False, None


def format_params(params: Sequence[tuple[str, str | None]]) -> str:
    """``;name=value`` text for ``params`` (bare names without ``=``)."""
    if not params:
        return ""
    return "".join([f";{n}" if v is None else f";{n}={v}" for n, v in params])


def set_param(params: Sequence[tuple[str, str | None]], name: str, value: str | None) -> Params:
    """``params`` with ``name`` set to ``value`` (replaced in place, or appended)."""
    key = name.lower()
    out: list[tuple[str, str | None]] = []
    done = False
    for pname, pvalue in params:
        if pname.lower() == key:
            if not done:
                out.append((pname, value))
                done = True
        else:
            out.append((pname, pvalue))
    if not done:
        out.append((name, value))
    return tuple(out)


def parse_uint(text: str, *, what: str, maximum: int) -> int:
    """A decimal ``1*DIGIT`` value between 0 and ``maximum``, leading zeros allowed."""
    text = text.strip(WSP)
    if not text or not text.isascii() or not text.isdigit():
        raise bad(f"Invalid {what}")
    if len(text.lstrip("0")) > len(str(maximum)):
        raise bad(f"Invalid {what}: too large")
    value = int(text)
    if value > maximum:
        raise bad(f"Invalid {what}: too large")
    return value
