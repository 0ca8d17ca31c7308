"""The deep checks of the files a configuration names, for the loader.

:mod:`huntgroup.config.loader` checks that music and TLS files exist and can
be read; whether they are *usable* needs the media and TLS code, which the
configuration layer must not import. This module sits above both, beside the
command line and the drivers, and gives them :data:`FILE_CHECKS` to pass to
``load_config(..., checks=FILE_CHECKS)``: audio that decodes to hold music,
a certificate that matches its key, a CA bundle that loads.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from huntgroup.config.loader import FileChecks
from huntgroup.config.models import TlsConfig
from huntgroup.engine.aio.tls import client_context, server_context
from huntgroup.errors import MediaError
from huntgroup.media.audio import check_music_file


def unplayable_music(path: Path) -> str | None:
    """Why the audio file at ``path`` cannot be played as hold music, or None."""
    try:
        check_music_file(path)
    except MediaError as err:
        return f"music file cannot be played: {err}"
    return None


def unusable_tls_files(settings: TlsConfig) -> list[tuple[str, str]]:
    """The ``(server.tls key, why)`` of each TLS file the server could not load."""
    problems: list[tuple[str, str]] = []
    if settings.certificate is not None:
        try:
            server_context(settings)
        except (OSError, ssl.SSLError, ValueError) as err:
            problems.append(("certificate", f"cannot use the certificate and its key: {err}"))
    if settings.ca is not None:
        try:
            client_context(settings)
        except (OSError, ssl.SSLError, ValueError) as err:
            problems.append(("ca", f"cannot use the CA bundle: {err}"))
    return problems


FILE_CHECKS = FileChecks(music=unplayable_music, tls=unusable_tls_files)
"""Every check the server itself would make when it loads the files."""
