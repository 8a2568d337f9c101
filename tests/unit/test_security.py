"""Broker credentials built from JOURNEYSTREAM_* settings."""

import ssl

import pytest
from faust.auth import SASLCredentials, SSLCredentials
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth
from faust.types.auth import AuthProtocol, SASLMechanism

from streams.security import broker_credentials
from streams.settings import Settings, SettingsError


def test_plaintext_has_no_credentials() -> None:
    assert broker_credentials(Settings.from_env({})) is None


def test_sasl_scram_over_tls_reaches_aiokafka() -> None:
    env = {
        "JOURNEYSTREAM_SECURITY_PROTOCOL": "SASL_SSL",
        "JOURNEYSTREAM_SASL_MECHANISM": "SCRAM-SHA-256",
        "JOURNEYSTREAM_SASL_USERNAME": "journey",
        "JOURNEYSTREAM_SASL_PASSWORD": "pa55",
    }
    creds = broker_credentials(Settings.from_env(env))
    assert isinstance(creds, SASLCredentials)
    assert creds.protocol is AuthProtocol.SASL_SSL
    assert creds.mechanism is SASLMechanism.SCRAM_SHA_256
    auth = credentials_to_aiokafka_auth(creds)
    assert auth["security_protocol"] == "SASL_SSL"
    assert auth["sasl_mechanism"] == "SCRAM-SHA-256"
    assert auth["sasl_plain_username"] == "journey" and auth["sasl_plain_password"] == "pa55"
    assert isinstance(auth["ssl_context"], ssl.SSLContext)
    assert "pa55" not in repr(creds)


def test_tls_only() -> None:
    creds = broker_credentials(Settings.from_env({"JOURNEYSTREAM_SECURITY_PROTOCOL": "SSL"}))
    assert isinstance(creds, SSLCredentials)
    assert credentials_to_aiokafka_auth(creds)["security_protocol"] == "SSL"


def test_sasl_without_password_is_a_clear_error() -> None:
    with pytest.raises(SettingsError, match="SASL needs"):
        Settings.from_env({"JOURNEYSTREAM_SECURITY_PROTOCOL": "SASL_PLAINTEXT"})
    with pytest.raises(SettingsError, match="SECURITY_PROTOCOL"):
        Settings.from_env({"JOURNEYSTREAM_SECURITY_PROTOCOL": "TLS"})
