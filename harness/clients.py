"""aiokafka clients of the commands (replay, forget, process) with the worker's broker security."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

from streams.security import broker_credentials
from streams.settings import Settings


def client_options(settings: Settings) -> dict[str, Any]:
    """aiokafka keyword arguments for the settings' TLS/SASL, converted as Faust does for workers.

    security_protocol always; sasl_mechanism, sasl_plain_username and sasl_plain_password
    with SASL_*; ssl_context (CA file, client certificate) with SSL and SASL_SSL.
    """
    return dict(credentials_to_aiokafka_auth(broker_credentials(settings)))


@dataclass(frozen=True)
class Connection:
    """Bootstrap servers and the security options every client of a command is built with."""

    bootstrap: str
    options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, settings: Settings) -> Connection:
        """The broker and security of these settings (those the worker uses)."""
        return cls(settings.bootstrap_servers, client_options(settings))

    def producer(self, **kwargs: Any) -> AIOKafkaProducer:
        """A producer (not started)."""
        return AIOKafkaProducer(bootstrap_servers=self.bootstrap, **self.options, **kwargs)

    def consumer(self, **kwargs: Any) -> AIOKafkaConsumer:
        """A consumer (not started)."""
        return AIOKafkaConsumer(bootstrap_servers=self.bootstrap, **self.options, **kwargs)

    def admin(self, **kwargs: Any) -> AIOKafkaAdminClient:
        """An admin client (not started)."""
        return AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, **self.options, **kwargs)


def connect(target: str | Connection) -> Connection:
    """A Connection; a bare bootstrap string (the embedded broker, tests) is plaintext."""
    return target if isinstance(target, Connection) else Connection(target)
