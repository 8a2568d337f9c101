"""Broker credentials from settings: TLS and SASL (PLAIN, SCRAM-SHA-256/512) for Faust."""

from __future__ import annotations

import ssl

from faust.auth import SASLCredentials, SSLCredentials
from faust.types.auth import CredentialsT

from streams.settings import Settings


def ssl_context(settings: Settings) -> ssl.SSLContext:
    """A client TLS context: the CA file (or system CAs) and an optional client certificate."""
    context = ssl.create_default_context(
        ssl.Purpose.SERVER_AUTH, cafile=settings.ssl_cafile or None
    )
    if settings.ssl_certfile:
        context.load_cert_chain(settings.ssl_certfile, settings.ssl_keyfile or None)
    return context


def broker_credentials(settings: Settings) -> CredentialsT | None:
    """Faust `broker_credentials` for the configured security protocol (None: plaintext)."""
    protocol = settings.security_protocol
    if protocol == "PLAINTEXT":
        return None
    if protocol == "SSL":
        return SSLCredentials(ssl_context(settings))
    return SASLCredentials(
        username=settings.sasl_username,
        password=settings.sasl_password.get_secret_value(),
        mechanism=settings.sasl_mechanism,
        ssl_context=ssl_context(settings) if protocol == "SASL_SSL" else None,
    )
