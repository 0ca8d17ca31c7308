"""TLS for SIP (RFC 3261 §26.2.1, RFC 5922 for the identity checks): the two SSL contexts.

Theory of operation
-------------------
``tls:`` listen entries accept phones over TLS with the server's own
certificate (:func:`server_context`). Requests the server sends to a
``sips:`` URI or a ``;transport=tls`` URI open a TLS connection of their own
(:func:`client_context`), which checks the peer's certificate against
``server.tls.ca`` (or the system's CAs) and its name or IP address against
the URI's host, unless ``server.tls.verify_peers`` is false. A phone that
registered over TLS is reached back over its own connection (phones do not
accept incoming TLS), so no certificate is asked of phones.

TLS 1.2 is the minimum. Both contexts are built once, at start; building
them is also how ``huntgroup check`` proves the files are usable.
"""

from __future__ import annotations

import ssl

from huntgroup.config.models import TlsConfig


def server_context(cfg: TlsConfig) -> ssl.SSLContext:
    """The context of ``tls:`` listen entries; OSError/ssl.SSLError if the files are unusable."""
    if cfg.certificate is None:
        raise ValueError("server.tls.certificate is needed to listen on TLS")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cfg.certificate, cfg.private_key)
    return context


def client_context(cfg: TlsConfig) -> ssl.SSLContext:
    """The context of connections we open; OSError/ssl.SSLError if ``cfg.ca`` is unusable."""
    context = ssl.create_default_context(cafile=cfg.ca)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if not cfg.verify_peers:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context
