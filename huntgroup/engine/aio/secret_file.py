"""Reading a secret (a password, a token) from a file an operator names.

A secret file must be private to the server's user: a file that its group or
others may read is refused, so that a mistake in its mode is found at start-up
rather than by whoever reads it next. At most ``limit`` bytes are read (one
more, so that the caller can tell an over-long secret from one that fits).
"""

from __future__ import annotations

import os
import stat

from huntgroup.errors import HuntgroupError


class SecretFileError(HuntgroupError):
    """The secret file cannot be used; the message says why (without the path)."""


def read_secret_file(path: str, limit: int) -> bytes:
    """The first ``limit + 1`` bytes of ``path``, once its mode is checked."""
    try:
        with open(path, "rb") as f:
            raw = f.read(limit + 1)
            mode = os.fstat(f.fileno()).st_mode
    except OSError as err:
        raise SecretFileError(f"cannot read it: {err.strerror or err}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SecretFileError(
            f"it is readable by others (mode {stat.S_IMODE(mode):o}); chmod 600 it"
        )
    return raw
