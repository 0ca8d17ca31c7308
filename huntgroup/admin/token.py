"""The admin listener's bearer token: read from the environment or a file, never the YAML.

The token is read once, when the listener starts. A token that is configured but
cannot be read (variable unset, file missing or unreadable) or is too short is an
error that stops the server from starting: an operator who asked for protection
must never get an open listener instead.
"""

from __future__ import annotations

import hmac
import os

from huntgroup.config.models import AdminConfig
from huntgroup.engine.aio.secret_file import SecretFileError, read_secret_file
from huntgroup.errors import HuntgroupError

MIN_TOKEN_LENGTH = 16
"""The shortest token accepted, in characters: a guessable token protects nothing."""
MAX_TOKEN_LENGTH = 4096


class AdminTokenError(HuntgroupError):
    """The configured admin token cannot be used (the server refuses to start)."""


def read_token(admin: AdminConfig, environ: dict[str, str] | None = None) -> str | None:
    """The token ``admin`` names (None: no token configured, the listener is open)."""
    env = os.environ if environ is None else environ
    if admin.token_env is not None:
        token = env.get(admin.token_env, "").strip()
        where = f"environment variable {admin.token_env}"
        if not token:
            raise AdminTokenError(f"server.admin.token_env: {where} is unset or empty")
    elif admin.token_file is not None:
        where = f"file {admin.token_file}"
        try:
            raw = read_secret_file(admin.token_file, MAX_TOKEN_LENGTH)
        except SecretFileError as err:
            raise AdminTokenError(f"server.admin.token_file: {where}: {err}") from None
        try:
            token = raw.decode("ascii").strip()
        except UnicodeDecodeError as err:
            raise AdminTokenError(f"server.admin.token_file: {where} is not ASCII") from err
    else:
        return None
    if not MIN_TOKEN_LENGTH <= len(token) <= MAX_TOKEN_LENGTH:
        raise AdminTokenError(
            f"the admin token in {where} must be {MIN_TOKEN_LENGTH} to {MAX_TOKEN_LENGTH} "
            f"characters (it has {len(token)})"
        )
    if not all(0x21 <= ord(c) <= 0x7E for c in token):
        raise AdminTokenError(f"the admin token in {where} holds spaces or control characters")
    return token


def authorized(header: str | None, token: str) -> bool:
    """Whether an ``Authorization`` header carries ``Bearer <token>`` (in constant time)."""
    if header is None:
        return False
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), token.encode())
